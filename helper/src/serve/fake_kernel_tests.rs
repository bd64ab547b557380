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

/// A second namespace, for what spans two (a veth's peer, a deletion).
fn ns2() -> NsName {
    "fk-r2".parse().expect("a valid name")
}

/// One helper on a fake kernel, with one namespace.
struct Bench {
    fake: FakeKernel,
    helper: Arc<Helper>,
    _dir: tempfile::TempDir,
}

impl Bench {
    fn new() -> Self {
        Self::with(&[ns(), ns2()])
    }

    /// A helper on a fake kernel with namespaces `names`.
    fn with(names: &[NsName]) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let fake = FakeKernel::default();
        let helper = Helper::for_tests(dir.path(), &fake, names, UID);
        Self {
            fake,
            helper,
            _dir: dir,
        }
    }

    async fn run(&self, ops: &[Value], atomic: bool) -> Response {
        self.run_as(&member(), ops, atomic).await
    }

    async fn run_as(&self, peer: &Peer, ops: &[Value], atomic: bool) -> Response {
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
        super::request::run(&self.helper, peer, request, &CancellationToken::new(), None).await
    }

    /// Runs `ops` one request each, committed, failures ignored: a state to start from.
    async fn start_from(&self, ops: &[Value]) {
        for o in ops {
            self.run(std::slice::from_ref(o), false).await;
        }
    }

    fn snapshot(&self) -> String {
        self.fake.snapshot()
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

/// What the firewall starts from: a user chain with a rule, a policy, and a set.
const RULES: &str = "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:LOGS - [0:0]\n-A INPUT -j LOGS\n-A LOGS -s 10.0.0.0/24 -j ACCEPT\nCOMMIT\n";
const SETS: &str =
    "create inside hash:net family inet hashsize 1024 maxelem 65536\nadd inside 10.0.0.0/24\n";

/// What the undo tests start from: two dummies (up) and a bridge (down), addresses, a route,
/// a rule, a neighbour, a sysctl, firewall rules and a set, so that every operation has
/// something to change.
fn setup() -> Vec<Value> {
    vec![
        op(
            "sysctl_set",
            json!({"key": "net.ipv4.ip_forward", "value": "1"}),
        ),
        op("iptables_restore", json!({"payload": RULES})),
        op("ipset_restore", json!({"payload": SETS})),
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
        (
            "ns_create",
            json!({"op": "ns_create", "name": "fk-r3", "ipv6": false}),
        ),
        (
            "ns_delete",
            json!({"op": "ns_delete", "name": ns2().as_str()}),
        ),
        (
            "link_add_veth across",
            op(
                "link_add_veth",
                json!({"name": "v0", "peer_ns": ns2().as_str(), "peer_name": "v1", "up": true}),
            ),
        ),
        (
            "link_add_veth within",
            op(
                "link_add_veth",
                json!({"name": "v0", "peer_ns": ns().as_str(), "peer_name": "v1", "master": "br0"}),
            ),
        ),
        (
            "sysctl_set",
            op(
                "sysctl_set",
                json!({"key": "net.ipv4.ip_forward", "value": "0"}),
            ),
        ),
        (
            "sysctl_set interface",
            op(
                "sysctl_set",
                json!({"key": "net.ipv4.conf.d0.rp_filter", "value": "2"}),
            ),
        ),
        (
            "iptables_restore",
            op(
                "iptables_restore",
                json!({"payload": "*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -o d0 -j MASQUERADE\nCOMMIT\n*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n"}),
            ),
        ),
        (
            "iptables_restore noflush",
            op(
                "iptables_restore",
                json!({"noflush": true, "payload": "*filter\n-A LOGS -j DROP\n-D INPUT -j LOGS\nCOMMIT\n"}),
            ),
        ),
        (
            "ip6tables_restore",
            op(
                "iptables_restore",
                json!({"ipv6": true, "payload": "*filter\n:INPUT DROP [0:0]\nCOMMIT\n"}),
            ),
        ),
        (
            "ipset_restore",
            op(
                "ipset_restore",
                json!({"exist": true, "payload": "create outside hash:ip family inet\nadd outside 192.0.2.1\nadd inside 10.9.0.0/16\n"}),
            ),
        ),
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
        beyond_netlink(),
    ]
}

/// The operations that reach past routing netlink: namespaces, veths between them, sysctls
/// and the firewall tools (payloads that apply, and one that a tool refuses at its line 3).
fn beyond_netlink() -> impl Strategy<Value = Value> {
    let other = prop::sample::select(vec!["fk-r2", "fk-r3"]);
    let key = prop::sample::select(vec![
        "net.ipv4.ip_forward",
        "net.ipv4.conf.d0.rp_filter",
        "net.ipv4.conf.default.rp_filter",
        "net.ipv4.conf.all.send_redirects",
    ]);
    let rules = prop::sample::select(vec![
        (
            false,
            "*filter\n:INPUT DROP [0:0]\n-A INPUT -i d0 -j ACCEPT\nCOMMIT\n",
        ),
        (
            true,
            "*filter\n-A INPUT -j DROP\nCOMMIT\n*nat\n-A POSTROUTING -o d1 -j MASQUERADE\nCOMMIT\n",
        ),
        (true, "*filter\n:SEEN - [0:0]\n-A SEEN -j RETURN\nCOMMIT\n"),
        (
            false,
            "*filter\n-A INPUT -j ACCEPT\n-A MISSING -j DROP\nCOMMIT\n",
        ),
    ]);
    let sets = prop::sample::select(vec![
        "create s1 hash:ip family inet\nadd s1 10.0.0.1\n",
        "add s1 10.0.0.2\n",
    ]);
    prop_oneof![
        other
            .clone()
            .prop_map(|name| json!({"op": "ns_create", "name": name})),
        other
            .clone()
            .prop_map(|name| json!({"op": "ns_delete", "name": name})),
        (other, prop::sample::select(vec!["v0", "d0"]), any::<bool>()).prop_map(
            |(peer_ns, name, up)| op(
                "link_add_veth",
                json!({"name": name, "peer_ns": peer_ns, "peer_name": "v1", "up": up})
            )
        ),
        (key, prop::sample::select(vec!["0", "1", "2"]))
            .prop_map(|(key, value)| op("sysctl_set", json!({"key": key, "value": value}))),
        (rules, any::<bool>()).prop_map(|((noflush, payload), ipv6)| op(
            "iptables_restore",
            json!({"payload": payload, "noflush": noflush, "ipv6": ipv6})
        )),
        (sets, any::<bool>()).prop_map(|(payload, exist)| op(
            "ipset_restore",
            json!({"payload": payload, "exist": exist})
        )),
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

/// Root, who may build the network.
fn root() -> Peer {
    Peer {
        uid: 0,
        gid: 0,
        admin: true,
        ..member()
    }
}

/// Two routers on one subnet, each with a firewall, a set and sysctls, and a stub network
/// behind the second: what `net setup` builds, hidden namespace and bridge included.
fn network() -> Value {
    json!({"op": "net_apply", "topology": {
        "bridges": [{"name": "br-0a090000-24", "subnet": "10.9.0.0/24"}],
        "routers": [
            {"name": "fk-r1", "interfaces": [{"name": "eth0", "up": true,
                "addrs": [{"addr": "10.9.0.1/24"}], "bridge": "br-0a090000-24", "hidden_end": "vfk1"}],
             "routes": [{"dst": "10.8.0.0/16", "via": "10.9.0.2", "dev": "eth0"}],
             "sysctls": [{"key": "net.ipv4.ip_forward", "value": "1"}],
             "ipset": "create inside hash:net family inet\nadd inside 10.9.0.0/24\n",
             "iptables": "*filter\n:FORWARD DROP [0:0]\n-A FORWARD -i eth0 -j ACCEPT\nCOMMIT\n"},
            {"name": "fk-r2", "interfaces": [{"name": "eth0", "up": true,
                "addrs": [{"addr": "10.9.0.2/24"}], "bridge": "br-0a090000-24", "hidden_end": "vfk2"}],
             "rules": [{"pref": 10, "from": "10.9.0.0/24", "table": 100}],
             "sysctls": [{"key": "net.ipv4.ip_forward", "value": "1"}],
             "iptables": "*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -o eth0 -j MASQUERADE\nCOMMIT\n"}
        ]}, "policy_tables": true})
}

/// Runs `ops` (as `peer`, atomic) once, then again on a fresh bench prepared by `prepare` for
/// every change `k` the first run sent, failing the `k`-th: each failing run must leave the
/// fake kernel exactly as `prepare` left it. Returns the failures.
async fn fails_cleanly_at_every_step<F, Fut>(peer: &Peer, prepare: F, ops: &[Value]) -> Vec<String>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Bench>,
{
    let bench = prepare().await;
    let before = bench.snapshot();
    let changes = bench.fake.changes();
    let r = bench.run_as(peer, ops, true).await;
    let mut failures = Vec::new();
    if let Some(e) = r.error {
        return vec![format!("the request fails on its own: {e:?}")];
    }
    if bench.snapshot() == before {
        return vec!["the request changes nothing".into()];
    }
    let sent = bench.fake.changes() - changes;
    for k in 1..=sent {
        let bench = prepare().await;
        let before = bench.snapshot();
        bench.fake.fail_change(k, libc::ENOBUFS);
        let r = bench.run_as(peer, ops, true).await;
        let after = bench.snapshot();
        let what = bench.fake.change(changes + k).unwrap_or_default();
        // Two kinds of step may fail without failing the request: what the answer reports
        // as a warning (a router's route or rule in `net setup`), and the router forgetting
        // a neighbour (the kernel learns it again).
        let reported = format!("{:?}", r.results).contains("No buffer space available");
        let best_effort = what.starts_with("DelNeighbour");
        if r.error.is_none() && (reported || best_effort) {
            continue;
        }
        if r.error.is_none() {
            failures.push(format!(
                "change {k} of {sent} ({what}) failed, yet the request succeeded: {:?}",
                r.results
            ));
        } else if after != before {
            failures.push(format!(
                "change {k} of {sent} ({what}) failed ({:?}), and the kernel was left changed:\n{}",
                r.error,
                diff(&before, &after)
            ));
        }
    }
    failures
}

/// `net setup` (namespaces, the hidden namespace and its bridge, veths between them,
/// addresses, routes, rules, sysctls, sets and firewall rules) failing at any of its steps
/// leaves nothing behind.
#[test]
fn a_network_set_up_failing_at_any_step_leaves_nothing() {
    runtime().block_on(async {
        let failures =
            fails_cleanly_at_every_step(&root(), || async { Bench::with(&[]) }, &[network()]).await;
        assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    });
}

/// A host added behind a router (its namespace, the veth to the bridge, its address and
/// route), and a host deleted, failing at any step leave the network as it was.
#[test]
fn hosts_added_or_deleted_failing_at_any_step_leave_the_network_as_it_was() {
    let host = json!({"op": "host_add", "name": "fk-h1", "ip": "10.9.0.10/24", "router": "fk-r1"});
    let with_network = || async {
        let bench = Bench::with(&[]);
        let r = bench.run_as(&root(), &[network()], false).await;
        assert!(r.error.is_none(), "net setup: {:?}", r.error);
        bench
    };
    let with_host = || async {
        let bench = with_network().await;
        let r = bench.run(std::slice::from_ref(&host), false).await;
        assert!(r.error.is_none(), "host add: {:?}", r.error);
        bench
    };
    runtime().block_on(async {
        let mut failures =
            fails_cleanly_at_every_step(&member(), with_network, std::slice::from_ref(&host)).await;
        let delete = json!({"op": "host_delete", "name": "fk-h1"});
        failures.extend(fails_cleanly_at_every_step(&member(), with_host, &[delete]).await);
        assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    });
}
