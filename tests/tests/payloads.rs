//! The firewall payloads of the real test networks, as the facts compiler makes them, pass the
//! helper's payload screen (`tsim_helper::payload`) line for line: the 10-router facts (raw and
//! JSON), the shared facts of `/work/shared/facts` when they are there, and the examples. No
//! privileges needed: the screen is pure.

use std::path::{Path, PathBuf};

use tsim_client::facts;
use tsim_helper::payload;
use tsim_tests::{example_facts, facts10};

/// Every facts directory whose payloads must pass.
fn facts_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![facts10(), facts10().join("../json"), example_facts()];
    // The project's shared facts, beside the repository, where they are.
    let beside = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/facts");
    for shared in [beside.join("raw"), beside.join("json")] {
        if shared.is_dir() {
            dirs.push(shared);
        }
    }
    dirs
}

#[test]
fn every_real_payload_passes_the_screen() {
    let (mut iptables, mut ipset) = (0, 0);
    for dir in facts_dirs() {
        let routers = facts::load_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let plan = facts::compile(&routers).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for router in &plan.topology.routers {
            if let Some(text) = &router.iptables {
                payload::check_iptables(text)
                    .unwrap_or_else(|e| panic!("{} {}: iptables: {e}", dir.display(), router.name));
                let lines = payload::iptables_lines(text).unwrap();
                assert_eq!(lines.len(), text.lines().count(), "{}", router.name);
                iptables += 1;
            }
            if let Some(text) = &router.ipset {
                payload::check_ipset(text)
                    .unwrap_or_else(|e| panic!("{} {}: ipset: {e}", dir.display(), router.name));
                ipset += 1;
            }
        }
    }
    // The 10-router network alone has a firewall on every router, and sets on some.
    assert!(
        iptables >= 10,
        "only {iptables} iptables payloads were found"
    );
    assert!(ipset >= 1, "no ipset payload was found");
}
