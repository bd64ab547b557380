//! Requests run whole (dispatch, every handler, commit and rollback) against the fake kernel
//! of `kernel::fake`, without root: each operation's undo, and the property that an atomic
//! request failing at any step leaves the kernel exactly as it was.

use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tsim_protocol::{NsName, Op, Request, Response};

use crate::base::auth::Peer;
use crate::kernel::fake::FakeKernel;
use crate::managed::context::Helper;

/// The member every request runs for; it owns the test's namespaces.
const UID: u32 = 4242;

fn member() -> Peer {
    Peer {
        uid: UID,
        gid: UID,
        pid: 0,
        groups: Vec::new(),
        authorized: true,
        admin: false,
    }
}

fn ns() -> NsName {
    "fk-r1".parse().expect("a valid name")
}

/// One helper on a fake kernel, with one namespace.
struct Bench {
    fake: FakeKernel,
    helper: Arc<Helper>,
    _dir: tempfile::TempDir,
}

impl Bench {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let fake = FakeKernel::default();
        let helper = Helper::for_tests(dir.path(), &fake, &[ns()], UID);
        Self {
            fake,
            helper,
            _dir: dir,
        }
    }

    async fn run(&self, ops: &[Value], atomic: bool) -> Response {
        let ops: Vec<Op> = ops
            .iter()
            .map(|o| serde_json::from_value(o.clone()).expect("a valid operation"))
            .collect();
        let request = Request {
            id: 1,
            ops,
            atomic,
            progress: false,
        };
        super::request::run(
            &self.helper,
            &member(),
            request,
            &CancellationToken::new(),
            None,
        )
        .await
    }

    /// Runs `ops` one request each, committed, failures ignored: a state to start from.
    async fn start_from(&self, ops: &[Value]) {
        for o in ops {
            self.run(std::slice::from_ref(o), false).await;
        }
    }

    fn snapshot(&self) -> String {
        self.fake.snapshot(&ns())
    }
}

/// The lines only in `before` (`-`) and only in `after` (`+`).
fn diff(before: &str, after: &str) -> String {
    let (b, a): (Vec<&str>, Vec<&str>) = (before.lines().collect(), after.lines().collect());
    let gone = b
        .iter()
        .filter(|l| !a.contains(l))
        .map(|l| format!("- {l}"));
    let new = a
        .iter()
        .filter(|l| !b.contains(l))
        .map(|l| format!("+ {l}"));
    gone.chain(new).collect::<Vec<_>>().join("\n")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime")
}

fn op(kind: &str, args: Value) -> Value {
    let mut v = args;
    v["op"] = json!(kind);
    v["ns"] = json!(ns().as_str());
    v
}

/// What the undo tests start from: two dummies (up) and a bridge (down), addresses, a route, a rule and
/// a neighbour, so that every operation has something to change.
fn setup() -> Vec<Value> {
    vec![
        op("link_add_dummy", json!({"name": "d0", "up": true})),
        op("link_add_dummy", json!({"name": "d1", "up": true})),
        op("link_add_bridge", json!({"name": "br0"})),
        op("addr_add", json!({"dev": "d0", "addr": "10.0.0.1/24"})),
        op("addr_add", json!({"dev": "d0", "addr": "10.0.0.2/24"})),
        op("addr_add", json!({"dev": "d1", "addr": "10.1.0.1/24"})),
        op("route_add", json!({"dst": "10.9.0.0/16", "dev": "d0"})),
        op(
            "route_add",
            json!({"dst": "10.8.0.0/16", "dev": "d1", "table": 100}),
        ),
        op(
            "rule_add",
            json!({"from": "10.0.0.0/24", "table": 100, "pref": 100}),
        ),
        op(
            "neigh_replace",
            json!({"dev": "d1", "ip": "10.1.0.9", "lladdr": "02:00:00:00:00:09"}),
        ),
    ]
}

/// An operation that always fails (there is no such address), to make a request roll back.
fn failing() -> Value {
    op("addr_delete", json!({"dev": "d0", "addr": "10.0.0.77/24"}))
}

/// Every netlink operation with its undo: run alone it changes the kernel (so the check
/// below is not empty), and followed by a failure in an atomic request it leaves the kernel
/// as it was.
#[test]
fn every_operation_is_undone() {
    let cases: Vec<(&str, Value)> = vec![
        (
            "link_add_dummy",
            op(
                "link_add_dummy",
                json!({"name": "d9", "up": true, "mtu": 1400}),
            ),
        ),
        (
            "link_add_bridge",
            op("link_add_bridge", json!({"name": "br9", "up": true})),
        ),
        (
            "link_set up",
            op("link_set", json!({"name": "br0", "up": true})),
        ),
        (
            "link_set down",
            op("link_set", json!({"name": "d0", "up": false})),
        ),
        (
            "link_set mtu",
            op("link_set", json!({"name": "d0", "mtu": 1280})),
        ),
        (
            "link_set mac",
            op(
                "link_set",
                json!({"name": "d0", "mac": "02:aa:bb:cc:dd:ee"}),
            ),
        ),
        (
            "link_set rename",
            op("link_set", json!({"name": "d1", "rename": "uplink"})),
        ),
        (
            "link_set master",
            op("link_set", json!({"name": "d1", "master": "br0"})),
        ),
        (
            "addr_add",
            op("addr_add", json!({"dev": "d1", "addr": "10.1.0.2/24"})),
        ),
        (
            "addr_add v6",
            op("addr_add", json!({"dev": "d1", "addr": "fd00::1/64"})),
        ),
        (
            "addr_delete secondary",
            op("addr_delete", json!({"dev": "d0", "addr": "10.0.0.2/24"})),
        ),
        (
            "addr_delete primary",
            op("addr_delete", json!({"dev": "d0", "addr": "10.0.0.1/24"})),
        ),
        (
            "addr_delete last",
            op("addr_delete", json!({"dev": "d1", "addr": "10.1.0.1/24"})),
        ),
        (
            "route_add",
            op(
                "route_add",
                json!({"dst": "10.7.0.0/16", "dev": "d0", "metric": 5}),
            ),
        ),
        (
            "route_replace new",
            op("route_replace", json!({"dst": "10.6.0.0/16", "dev": "d1"})),
        ),
        (
            "route_replace old",
            op("route_replace", json!({"dst": "10.9.0.0/16", "dev": "d1"})),
        ),
        (
            "route_delete",
            op("route_delete", json!({"dst": "10.9.0.0/16"})),
        ),
        (
            "route_delete table",
            op("route_delete", json!({"dst": "10.8.0.0/16", "table": 100})),
        ),
        (
            "rule_add",
            op(
                "rule_add",
                json!({"to": "10.5.0.0/16", "table": 100, "pref": 200}),
            ),
        ),
        (
            "rule_delete",
            op(
                "rule_delete",
                json!({"from": "10.0.0.0/24", "table": 100, "pref": 100}),
            ),
        ),
        (
            "neigh_replace new",
            op(
                "neigh_replace",
                json!({"dev": "d0", "ip": "10.0.0.9", "lladdr": "02:00:00:00:00:01"}),
            ),
        ),
        (
            "neigh_replace old",
            op(
                "neigh_replace",
                json!({"dev": "d1", "ip": "10.1.0.9", "lladdr": "02:00:00:00:00:02", "state": "noarp"}),
            ),
        ),
        (
            "neigh_delete",
            op("neigh_delete", json!({"dev": "d1", "ip": "10.1.0.9"})),
        ),
        ("route_flush", op("route_flush", json!({"table": 100}))),
        ("route_flush main", op("route_flush", json!({"table": 254}))),
        ("neigh_flush", op("neigh_flush", json!({}))),
    ];
    let rt = runtime();
    let mut failures = Vec::new();
    for (name, case) in &cases {
        rt.block_on(async {
            let bench = Bench::new();
            let r = bench.run(&setup(), false).await;
            assert!(r.error.is_none(), "set-up: {:?}", r.error);
            let before = bench.snapshot();

            let r = bench.run(&[case.clone(), failing()], true).await;
            let after = bench.snapshot();
            if r.error.as_ref().is_none_or(|e| e.op_index != Some(1)) {
                failures.push(format!(
                    "{name}: expected a failure at op 1, got {:?}",
                    r.error
                ));
            } else if after != before {
                failures.push(format!("{name}: not undone:\n{}", diff(&before, &after)));
            }

            let r = bench.run(std::slice::from_ref(case), false).await;
            if let Some(e) = r.error {
                failures.push(format!("{name}: fails on its own: {e:?}"));
            } else if bench.snapshot() == before {
                failures.push(format!(
                    "{name}: changes nothing, so its undo is not tested"
                ));
            }
        });
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The operations the table marks as not mutating (`Op::is_mutating`, which the Python
/// client's retry after a lost connection relies on) send no change to the kernel.
#[test]
fn reads_change_nothing() {
    let reads = [
        op("link_list", json!({})),
        op("addr_list", json!({})),
        op("route_list", json!({})),
        op("rule_list", json!({})),
        op("ns_list", json!({})),
        op("status", json!({})),
    ];
    runtime().block_on(async {
        let bench = Bench::new();
        let r = bench.run(&setup(), false).await;
        assert!(r.error.is_none(), "set-up: {:?}", r.error);
        for read in &reads {
            let parsed: Op = serde_json::from_value(read.clone()).expect("a valid operation");
            assert!(
                !parsed.is_mutating(),
                "{} is marked as mutating",
                parsed.name()
            );
            let (changes, before) = (bench.fake.changes(), bench.snapshot());
            let r = bench.run(std::slice::from_ref(read), false).await;
            assert!(r.error.is_none(), "{}: {:?}", parsed.name(), r.error);
            assert_eq!(
                bench.fake.changes(),
                changes,
                "{} sent a change",
                parsed.name()
            );
            assert_eq!(bench.snapshot(), before);
        }
    });
}

/// A random operation on a few names, so that operations collide often (the same link, the
/// same address, the same route).
fn any_op() -> impl Strategy<Value = Value> {
    let link = prop::sample::select(vec!["d0", "d1", "br0", "lo"]);
    let dev = prop::sample::select(vec!["d0", "d1", "br0"]);
    let addr = prop::sample::select(vec![
        "10.0.0.1/24",
        "10.0.0.2/24",
        "10.0.1.1/24",
        "10.0.0.9/32",
        "fd00::1/64",
    ]);
    let dst = prop::sample::select(vec!["10.9.0.0/16", "10.8.0.0/24", "0.0.0.0/0", "fd01::/64"]);
    let table = prop::option::of(prop::sample::select(vec![100u32, 254]));
    let metric = prop::option::of(prop::sample::select(vec![0u32, 10]));
    let neigh_ip = prop::sample::select(vec!["10.0.0.7", "10.0.0.8", "fd00::7"]);
    let state = prop::option::of(prop::sample::select(vec![
        "permanent",
        "noarp",
        "reachable",
        "stale",
    ]));
    prop_oneof![
        (prop::sample::select(vec!["d0", "d1"]), any::<bool>())
            .prop_map(|(name, up)| op("link_add_dummy", json!({"name": name, "up": up}))),
        Just(op("link_add_bridge", json!({"name": "br0"}))),
        (
            link.clone(),
            prop::option::of(any::<bool>()),
            prop::option::of(prop::sample::select(vec![1280u32, 1500])),
            prop::option::of(prop::sample::select(vec!["br0", "d0"])),
            any::<bool>(),
        )
            .prop_map(|(name, up, mtu, master, nomaster)| {
                let mut v = json!({"name": name});
                if let Some(up) = up {
                    v["up"] = json!(up);
                }
                if let Some(mtu) = mtu {
                    v["mtu"] = json!(mtu);
                }
                match (master, nomaster) {
                    (Some(m), false) => v["master"] = json!(m),
                    (None, true) => v["nomaster"] = json!(true),
                    _ => {}
                }
                op("link_set", v)
            }),
        (dev.clone(), addr.clone())
            .prop_map(|(dev, addr)| op("addr_add", json!({"dev": dev, "addr": addr}))),
        (dev.clone(), addr)
            .prop_map(|(dev, addr)| op("addr_delete", json!({"dev": dev, "addr": addr}))),
        (
            prop::sample::select(vec!["route_add", "route_replace", "route_delete"]),
            dst,
            prop::option::of(dev.clone()),
            table,
            metric,
        )
            .prop_map(|(kind, dst, dev, table, metric)| {
                let mut v = json!({"dst": dst});
                if let Some(dev) = dev {
                    v["dev"] = json!(dev);
                } else if kind != "route_delete" {
                    v["dev"] = json!("d0");
                }
                if let Some(t) = table {
                    v["table"] = json!(t);
                }
                if let Some(m) = metric {
                    v["metric"] = json!(m);
                }
                op(kind, v)
            }),
        (
            prop::sample::select(vec!["rule_add", "rule_delete"]),
            prop::sample::select(vec!["10.0.0.0/24", "10.1.0.0/16"]),
            prop::option::of(prop::sample::select(vec![100u32, 200])),
        )
            .prop_map(|(kind, from, pref)| {
                let mut v = json!({"from": from, "table": 100});
                if let Some(p) = pref {
                    v["pref"] = json!(p);
                }
                op(kind, v)
            }),
        (dev.clone(), neigh_ip.clone(), state).prop_map(|(dev, ip, state)| {
            let mut v = json!({"dev": dev, "ip": ip, "lladdr": "02:00:00:00:00:07"});
            if let Some(s) = state {
                v["state"] = json!(s);
            }
            op("neigh_replace", v)
        }),
        (dev, neigh_ip).prop_map(|(dev, ip)| op("neigh_delete", json!({"dev": dev, "ip": ip}))),
        prop::sample::select(vec![100u32, 254])
            .prop_map(|table| op("route_flush", json!({"table": table}))),
        Just(op("neigh_flush", json!({}))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// An atomic request that fails at its k-th change to the kernel, for every k, leaves
    /// the kernel exactly as it was; so does one that fails on its own.
    #[test]
    fn an_atomic_request_failing_at_any_step_changes_nothing(
        prefix in prop::collection::vec(any_op(), 0..6),
        ops in prop::collection::vec(any_op(), 1..7),
    ) {
        let rt = runtime();
        rt.block_on(async {
            let bench = Bench::new();
            bench.start_from(&prefix).await;
            let before = bench.snapshot();
            let changes_before = bench.fake.changes();
            let clean = bench.run(&ops, true).await;
            if clean.error.is_some() {
                let after = bench.snapshot();
                prop_assert!(after == before, "failed on its own ({:?}), yet changed:\n{}", clean.error, diff(&before, &after));
            }
            // Every change the request sent, its rollback's included: a failure injected
            // into the rollback (a second fault) leaves the request's own error as it was,
            // and is not this property's business.
            let sent = bench.fake.changes() - changes_before;
            for k in 1..=sent {
                let bench = Bench::new();
                bench.start_from(&prefix).await;
                let before = bench.snapshot();
                bench.fake.fail_change(k, libc::ENOBUFS);
                let r = bench.run(&ops, true).await;
                if clean.error.is_some() && r.error == clean.error {
                    continue;
                }
                prop_assert!(r.error.is_some(), "change {} failed, yet the request succeeded", k);
                let after = bench.snapshot();
                prop_assert!(
                    after == before,
                    "failing change {} left the kernel changed ({:?}):\n{}",
                    k,
                    r.error,
                    diff(&before, &after)
                );
            }
            Ok(())
        })?;
    }
}
