//! Fuzz target `compile`: the topology compiler on several routers' facts, and the helper's
//! checks on what it produces.
//!
//! The input is router files separated by NUL bytes, each a first line naming the router
//! and raw facts after it. The compiler must be deterministic and independent of the order
//! of the files; its topology must survive the wire and the helper's JSON record, pass the
//! helper's `validate` (also with policy routes left out by `effective`), and differ from
//! itself by nothing (`diff`); with the outside world added (`--internet`), the same, and
//! the difference from the plain topology is the internet router alone.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tsim_facts::{self as facts, RouterFacts};
use tsim_fuzz::{json_round_trip, round_trip, routers};
use tsim_helper::network;
use tsim_protocol::NsName;
use tsim_protocol::topology::Topology;

/// The hidden namespace's name, unless a router takes it.
const HIDDEN: &str = "tsim-hidden";

fn check(topology: &Topology) {
    round_trip(topology);
    json_round_trip(topology);
    let hidden: NsName = HIDDEN.parse().expect("a valid name");
    if topology.routers.iter().any(|r| r.name == hidden) {
        assert!(network::validate(topology, &hidden).is_err());
        return;
    }
    if let Err(e) = network::validate(topology, &hidden) {
        panic!("the helper refuses the compiled topology: {e}");
    }
    for policy in [false, true] {
        let eff = network::effective(topology, policy);
        if let Err(e) = network::validate(&eff, &hidden) {
            panic!("the helper refuses the effective topology (policy {policy}): {e}");
        }
        assert!(
            network::diff(&eff, &eff).is_empty(),
            "a topology differs from itself"
        );
        let empty = Topology::default();
        let d = network::diff(&empty, &eff);
        assert_eq!(d.add_routers.len(), eff.routers.len());
        assert_eq!(d.add_bridges.len(), eff.bridges.len());
    }
}

fuzz_target!(|data: &[u8]| {
    let facts: Vec<RouterFacts> = routers(data)
        .into_iter()
        .filter_map(|(name, source, text)| facts::parse_raw(&source, &name, &text).ok())
        .collect();
    let first = facts::compile(&facts);
    let again = facts::compile(&facts);
    assert_eq!(first, again, "the compiler is not deterministic");
    let mut reversed = facts.clone();
    reversed.reverse();
    let other = facts::compile(&reversed);
    match (&first, &other) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "the compiler depends on the order of the files"),
        (Err(_), Err(_)) => {}
        _ => panic!("the order of the files decides success: {first:?} / {other:?}"),
    }
    if let Ok(plan) = &first {
        check(&plan.topology);
        // With the outside world: still valid, and the difference is that one router.
        let mut with = plan.topology.clone();
        if facts::internet::add(&mut with).is_ok() {
            check(&with);
            let d = network::diff(&plan.topology, &with);
            assert_eq!(d.add_routers.len(), 1, "--internet adds one router");
            assert!(d.add_routers[0].internet);
            assert!(d.change_routers.is_empty() && d.remove_routers.is_empty());
            assert_eq!(network::diff(&with, &plan.topology).remove_routers.len(), 1);
        }
    }
});
