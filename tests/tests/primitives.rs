//! The network primitives on the real kernel: every operation's happy path checked against
//! `ip -j`, its error codes, and its undo in a failing atomic request.

use std::process::Command;

use serde_json::{Value, json};
use tsim_client::{BlockingClient, ClientError, RequestOptions};
use tsim_protocol::{ErrorCode, Op, OpResult, ServerMessage};
use tsim_tests::{RawConn, TestHelper, groups, require_priv};

/// Runs `ip -n NS -j ARGS` and parses its output.
fn ip_json(ns: &str, args: &[&str]) -> Value {
    let out = Command::new("ip")
        .args(["-n", ns, "-j"])
        .args(args)
        .output()
        .expect("ip");
    assert!(
        out.status.success(),
        "ip -n {ns} -j {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    if text.trim().is_empty() {
        json!([])
    } else {
        serde_json::from_str(&text).expect("ip -j output")
    }
}

/// `ip -j` in the root namespace (or whatever namespace the tests run in).
fn root_json(args: &[&str]) -> Value {
    let out = Command::new("ip")
        .arg("-j")
        .args(args)
        .output()
        .expect("ip");
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn ops(values: &[Value]) -> Vec<Op> {
    values
        .iter()
        .map(|v| serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{v}: {e}")))
        .collect()
}

fn run(client: &BlockingClient, values: &[Value]) -> Result<Vec<OpResult>, ClientError> {
    client.request(ops(values), RequestOptions::default())
}

fn run_ok(client: &BlockingClient, values: &[Value]) -> Vec<OpResult> {
    run(client, values).unwrap_or_else(|e| panic!("{values:?}: {e}"))
}

fn atomic(client: &BlockingClient, values: &[Value]) -> Result<Vec<OpResult>, ClientError> {
    client.request(
        ops(values),
        RequestOptions {
            atomic: true,
            progress: false,
        },
    )
}

/// The error code and message of a failed request, asserting the failing index.
fn failure(result: Result<Vec<OpResult>, ClientError>, index: u32) -> (ErrorCode, String) {
    match result {
        Err(ClientError::Remote { error, .. }) => {
            assert_eq!(error.op_index, Some(index), "{error}");
            (error.code, error.message)
        }
        other => panic!("expected a failure at op {index}, got {other:?}"),
    }
}

fn expect_code(result: Result<Vec<OpResult>, ClientError>, code: ErrorCode) -> String {
    let (got, message) = failure(result, 0);
    assert_eq!(got, code, "{message}");
    message
}

/// A failing last operation, to roll an atomic request back.
fn fail_op() -> Value {
    json!({"op": "ns_delete", "name": "tsim-test-no-such-namespace"})
}

/// Two managed namespaces, `a` and `b`.
fn two_namespaces(helper: &TestHelper) -> (BlockingClient, String, String) {
    let client = helper.client();
    let (a, b) = (helper.ns("a"), helper.ns("b"));
    run_ok(
        &client,
        &[
            json!({"op": "ns_create", "name": a}),
            json!({"op": "ns_create", "name": b}),
        ],
    );
    (client, a, b)
}

/// The typed methods generated from the table of operations (`client.op()`) send the
/// operation and return its own result type.
#[test]
fn typed_methods_for_every_operation() {
    use tsim_client::protocol::ops::{LinkAddBridge, LinkList, NsDelete, Ping};
    require_priv!();
    let helper = TestHelper::start();
    let (client, a, _b) = two_namespaces(&helper);
    let ns = a.parse().unwrap();
    client.op().ping(Ping::default()).unwrap();
    let added = client
        .op()
        .link_add_bridge(LinkAddBridge {
            ns: a.parse().unwrap(),
            name: "br0".parse().unwrap(),
            ageing_time: None,
            mtu: None,
            up: true,
        })
        .unwrap();
    let links = client
        .op()
        .link_list(LinkList {
            ns,
            name: Some("br0".parse().unwrap()),
        })
        .unwrap();
    assert_eq!(links.links.len(), 1, "{links:?}");
    assert_eq!(links.links[0].index, added.index);
    assert_eq!(links.links[0].kind.as_deref(), Some("bridge"));
    // An error comes back as the helper's error, with its code.
    let err = client
        .op()
        .ns_delete(NsDelete {
            name: "tsim-test-no-such-namespace".parse().unwrap(),
        })
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFound), "{err}");
}

#[test]
fn links_veth_bridge_dummy_set_delete_flush() {
    require_priv!();
    let root_links = root_json(&["link"]);
    let root_routes = root_json(&["route", "show", "table", "all"]);
    let helper = TestHelper::start();
    let (client, a, b) = two_namespaces(&helper);

    let results = run_ok(
        &client,
        &[
            json!({"op": "link_add_bridge", "ns": b, "name": "br0", "ageing_time": 1234, "up": true}),
            json!({"op": "link_add_veth", "ns": a, "name": "v0", "peer_ns": b, "peer_name": "v1",
               "mtu": 1400, "mac": "02:00:00:00:00:aa", "peer_master": "br0", "up": true}),
        ],
    );
    let OpResult::LinkAddVeth(added) = &results[1] else {
        panic!("{results:?}")
    };
    let br = &ip_json(&b, &["-d", "link", "show", "br0"])[0];
    assert_eq!(br["linkinfo"]["info_kind"], "bridge");
    assert_eq!(br["linkinfo"]["info_data"]["ageing_time"], 1234);
    assert_eq!(br["group"], "1953720685");
    let v0 = &ip_json(&a, &["link", "show", "v0"])[0];
    assert_eq!(
        (v0["mtu"].as_u64(), v0["address"].as_str()),
        (Some(1400), Some("02:00:00:00:00:aa"))
    );
    assert_eq!(v0["operstate"], "UP");
    assert_eq!(v0["ifindex"].as_u64(), Some(u64::from(added.index)));
    assert!(
        v0["link_netnsid"].is_number(),
        "the peer lives in another namespace: {v0}"
    );
    let v1 = &ip_json(&b, &["link", "show", "v1"])[0];
    assert_eq!(
        (v1["master"].as_str(), v1["group"].as_str()),
        (Some("br0"), Some("1953720685"))
    );
    assert_eq!(v1["ifindex"].as_u64(), added.peer_index.map(u64::from));

    // link_list names the peer's namespace.
    let listed = run_ok(
        &client,
        &[json!({"op": "link_list", "ns": a, "name": "v0"})],
    );
    let OpResult::LinkList(l) = &listed[0] else {
        panic!()
    };
    let peer = l.links[0].peer.as_ref().expect("a peer");
    assert_eq!(peer.ns.as_ref().map(|n| n.as_str()), Some(b.as_str()));
    assert_eq!(Some(peer.index), added.peer_index);

    // Dummy: the kernels of these machines lack the driver; both paths are checked.
    match run(
        &client,
        &[json!({"op": "link_add_dummy", "ns": a, "name": "d0", "up": true})],
    ) {
        Ok(_) => assert_eq!(
            ip_json(&a, &["-d", "link", "show", "d0"])[0]["linkinfo"]["info_kind"],
            "dummy"
        ),
        Err(e) => {
            assert_eq!(e.code(), Some(ErrorCode::Unsupported), "{e}");
            assert!(e.to_string().contains("no dummy driver"), "{e}");
        }
    }

    // link_set: down, then MTU, MAC, rename and release from the bridge.
    run_ok(
        &client,
        &[
            json!({"op": "link_set", "ns": b, "name": "v1", "up": false, "nomaster": true, "mtu": 1300,
               "mac": "02:00:00:00:00:bb", "rename": "v1x"}),
        ],
    );
    let v1 = &ip_json(&b, &["link", "show", "v1x"])[0];
    assert_eq!(
        (v1["mtu"].as_u64(), v1["address"].as_str()),
        (Some(1300), Some("02:00:00:00:00:bb"))
    );
    assert!(
        v1.get("master").is_none() && v1["operstate"] == "DOWN",
        "{v1}"
    );
    run_ok(
        &client,
        &[json!({"op": "link_set", "ns": b, "name": "v1x", "master": "br0", "up": true})],
    );
    assert_eq!(ip_json(&b, &["link", "show", "v1x"])[0]["master"], "br0");

    // link_delete removes both ends; link_flush removes the rest of our group.
    run_ok(
        &client,
        &[json!({"op": "link_delete", "ns": a, "name": "v0"})],
    );
    assert!(
        ip_json(&b, &["link"])
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["ifname"] != "v1x")
    );
    let flushed = run_ok(&client, &[json!({"op": "link_flush", "ns": b})]);
    assert!(
        matches!(&flushed[0], OpResult::LinkFlush(f) if f.count == 1),
        "{flushed:?}"
    );
    let left: Vec<Value> = ip_json(&b, &["link"]).as_array().unwrap().clone();
    assert_eq!(left.len(), 1, "only lo stays: {left:?}");

    assert_eq!(
        root_json(&["link"]),
        root_links,
        "the root namespace's links changed"
    );
    assert_eq!(
        root_json(&["route", "show", "table", "all"]),
        root_routes,
        "the root namespace's routes changed"
    );
}

#[test]
fn link_errors() {
    require_priv!();
    let helper = TestHelper::start();
    let (client, a, b) = two_namespaces(&helper);
    run_ok(
        &client,
        &[json!({"op": "link_add_veth", "ns": a, "name": "v0", "peer_ns": b, "peer_name": "v1"})],
    );

    let m = expect_code(
        run(
            &client,
            &[
                json!({"op": "link_add_veth", "ns": a, "name": "v0", "peer_ns": b, "peer_name": "v9"}),
            ],
        ),
        ErrorCode::AlreadyExists,
    );
    assert!(m.contains("v0"), "{m}");
    let m = expect_code(
        run(
            &client,
            &[json!({"op": "link_set", "ns": a, "name": "nope0", "up": true})],
        ),
        ErrorCode::NotFound,
    );
    assert!(m.contains("nope0"), "{m}");
    expect_code(
        run(
            &client,
            &[json!({"op": "link_set", "ns": a, "name": "v0", "master": "nobr"})],
        ),
        ErrorCode::NotFound,
    );
    expect_code(
        run(
            &client,
            &[json!({"op": "link_set", "ns": a, "name": "v0", "master": "x", "nomaster": true})],
        ),
        ErrorCode::InvalidArgument,
    );
    expect_code(
        run(
            &client,
            &[json!({"op": "link_delete", "ns": a, "name": "nope0"})],
        ),
        ErrorCode::NotFound,
    );
    expect_code(
        run(
            &client,
            &[json!({"op": "link_list", "ns": a, "name": "nope0"})],
        ),
        ErrorCode::NotFound,
    );
    let m = expect_code(
        run(
            &client,
            &[json!({"op": "link_add_bridge", "ns": helper.ns("ghost"), "name": "br0"})],
        ),
        ErrorCode::NotFound,
    );
    assert!(m.contains(&helper.ns("ghost")), "{m}");

    // A namespace the helper does not manage is never touched, as either end.
    let foreign = helper.ns("foreign");
    assert!(
        Command::new("ip")
            .args(["netns", "add", &foreign])
            .status()
            .unwrap()
            .success()
    );
    expect_code(
        run(
            &client,
            &[
                json!({"op": "link_add_veth", "ns": a, "name": "v5", "peer_ns": foreign, "peer_name": "v6"}),
            ],
        ),
        ErrorCode::NotManaged,
    );
    expect_code(
        run(&client, &[json!({"op": "link_list", "ns": foreign})]),
        ErrorCode::NotManaged,
    );
    assert_eq!(ip_json(&foreign, &["link"]).as_array().unwrap().len(), 1);
    assert!(
        ip_json(&a, &["link"])
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["ifname"] != "v5")
    );
    Command::new("ip")
        .args(["netns", "del", &foreign])
        .status()
        .unwrap();

    // Invalid names are refused before anything runs.
    let mut raw = RawConn::handshake(&helper.socket);
    raw.send(&json!({"type": "request", "id": 1, "ops": [{"op": "link_add_bridge", "ns": a, "name": "a/b"}]}));
    match raw.recv() {
        Some(ServerMessage::Response(r)) => {
            assert_eq!(r.error.unwrap().code, ErrorCode::InvalidArgument)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn addresses() {
    require_priv!();
    let helper = TestHelper::start();
    let (client, a, b) = two_namespaces(&helper);
    run_ok(
        &client,
        &[
            json!({"op": "link_add_veth", "ns": a, "name": "v0", "peer_ns": b, "peer_name": "v1", "up": true}),
            json!({"op": "addr_add", "ns": a, "dev": "v0", "addr": "10.1.1.1/24", "broadcast": "10.1.1.255"}),
            json!({"op": "addr_add", "ns": a, "dev": "v0", "addr": "10.1.1.2/24", "secondary": true}),
            json!({"op": "addr_add", "ns": a, "dev": "v0", "addr": "2001:db8::1/64"}),
            json!({"op": "addr_add", "ns": a, "dev": "lo", "addr": "192.168.100.1/32", "scope": "host"}),
        ],
    );
    let info = ip_json(&a, &["addr", "show", "v0"])[0]["addr_info"].clone();
    let find = |ip: &str| {
        info.as_array()
            .unwrap()
            .iter()
            .find(|i| i["local"] == ip)
            .unwrap_or_else(|| panic!("{ip} in {info}"))
            .clone()
    };
    assert_eq!(find("10.1.1.1")["broadcast"], "10.1.1.255");
    assert_eq!(find("10.1.1.2")["secondary"], true);
    let v6 = find("2001:db8::1");
    assert_eq!(v6["prefixlen"], 64);
    assert!(
        v6.get("tentative").is_none(),
        "no duplicate-address detection: {v6}"
    );
    let lo = ip_json(&a, &["addr", "show", "lo"])[0]["addr_info"].clone();
    assert!(
        lo.as_array()
            .unwrap()
            .iter()
            .any(|i| i["local"] == "192.168.100.1" && i["scope"] == "host"),
        "{lo}"
    );

    let listed = run_ok(
        &client,
        &[json!({"op": "addr_list", "ns": a, "dev": "v0", "family": "inet"})],
    );
    let OpResult::AddrList(l) = &listed[0] else {
        panic!()
    };
    let addrs: Vec<String> = l.addrs.iter().map(|x| x.addr.to_string()).collect();
    assert_eq!(addrs, vec!["10.1.1.1/24", "10.1.1.2/24"]);
    assert!(l.addrs[1].secondary && !l.addrs[0].secondary);

    expect_code(
        run(
            &client,
            &[json!({"op": "addr_add", "ns": a, "dev": "v0", "addr": "10.1.1.1/24"})],
        ),
        ErrorCode::AlreadyExists,
    );
    expect_code(
        run(
            &client,
            &[json!({"op": "addr_delete", "ns": a, "dev": "v0", "addr": "10.9.9.9/24"})],
        ),
        ErrorCode::NotFound,
    );
    expect_code(
        run(
            &client,
            &[json!({"op": "addr_add", "ns": a, "dev": "nope0", "addr": "10.9.9.9/24"})],
        ),
        ErrorCode::NotFound,
    );
    let m = expect_code(
        run(
            &client,
            &[
                json!({"op": "addr_add", "ns": a, "dev": "v0", "addr": "2001:db8::9/64", "broadcast": "10.1.1.255"}),
            ],
        ),
        ErrorCode::InvalidArgument,
    );
    assert!(m.contains("IPv4"), "{m}");

    let mut raw = RawConn::handshake(&helper.socket);
    for (i, bad) in [
        "invalid-ip",
        "999.999.999.999/24",
        "10.1.1.1/99",
        "10.1.1.1",
        "",
    ]
    .iter()
    .enumerate()
    {
        let id = i as u64 + 1;
        raw.send(&json!({"type": "request", "id": id, "ops": [{"op": "addr_add", "ns": a, "dev": "v0", "addr": bad}]}));
        match raw.recv() {
            Some(ServerMessage::Response(r)) => {
                let e = r.error.expect("an error");
                assert_eq!(
                    (e.code, e.op_index),
                    (ErrorCode::InvalidArgument, Some(0)),
                    "{bad}"
                );
                assert!(e.message.contains("CIDR"), "{bad}: {}", e.message);
            }
            other => panic!("{other:?}"),
        }
    }

    run_ok(
        &client,
        &[json!({"op": "addr_delete", "ns": a, "dev": "v0", "addr": "2001:db8::1/64"})],
    );
    let info = ip_json(&a, &["addr", "show", "v0"])[0]["addr_info"].clone();
    assert!(
        info.as_array()
            .unwrap()
            .iter()
            .all(|i| i["local"] != "2001:db8::1")
    );
}

#[test]
fn routes() {
    require_priv!();
    let helper = TestHelper::start();
    let (client, a, b) = two_namespaces(&helper);
    run_ok(
        &client,
        &[
            json!({"op": "link_add_veth", "ns": a, "name": "v0", "peer_ns": b, "peer_name": "v1", "up": true}),
            json!({"op": "link_add_bridge", "ns": a, "name": "br9", "up": true}),
            json!({"op": "addr_add", "ns": a, "dev": "v0", "addr": "10.1.1.1/24"}),
            json!({"op": "addr_add", "ns": a, "dev": "br9", "addr": "10.7.7.1/24"}),
            json!({"op": "route_add", "ns": a, "dst": "10.2.0.0/16", "via": "10.1.1.2", "metric": 20, "proto": "static", "src": "10.1.1.1"}),
            json!({"op": "route_add", "ns": a, "dst": "10.3.0.0/16", "dev": "v0", "table": 100, "tos": 4}),
            json!({"op": "route_add", "ns": a, "dst": "0.0.0.0/0", "via": "10.1.1.254", "table": 5000}),
            json!({"op": "route_add", "ns": a, "dst": "10.66.0.0/16", "kind": "blackhole"}),
            json!({"op": "route_add", "ns": a, "dst": "10.67.0.0/16", "kind": "unreachable"}),
            json!({"op": "route_add", "ns": a, "dst": "10.68.0.0/16", "kind": "prohibit"}),
            json!({"op": "route_add", "ns": a, "dst": "10.50.0.0/16", "nexthops": [
            {"via": "10.1.1.2", "weight": 1}, {"via": "10.7.7.2", "dev": "br9", "weight": 3}]}),
        ],
    );
    let find = |routes: &Value, dst: &str| {
        routes
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["dst"] == dst)
            .unwrap_or_else(|| panic!("{dst} in {routes}"))
            .clone()
    };
    groups(vec![
        (
            "the kernel shows every kind of route as added",
            Box::new(|| {
                let main = ip_json(&a, &["route", "show"]);
                let r = find(&main, "10.2.0.0/16");
                assert_eq!(
                    (
                        r["gateway"].as_str(),
                        r["metric"].as_u64(),
                        r["protocol"].as_str()
                    ),
                    (Some("10.1.1.2"), Some(20), Some("static"))
                );
                assert_eq!(r["prefsrc"], "10.1.1.1");
                assert_eq!(find(&main, "10.66.0.0/16")["type"], "blackhole");
                assert_eq!(find(&main, "10.67.0.0/16")["type"], "unreachable");
                assert_eq!(find(&main, "10.68.0.0/16")["type"], "prohibit");
                let mp = find(&main, "10.50.0.0/16");
                let hops = mp["nexthops"].as_array().unwrap();
                assert_eq!(hops.len(), 2, "{mp}");
                assert_eq!(hops[1]["weight"], 3);
                let t100 = find(
                    &ip_json(&a, &["route", "show", "table", "100"]),
                    "10.3.0.0/16",
                );
                let tos = t100["tos"]
                    .as_str()
                    .and_then(|t| u8::from_str_radix(t.trim_start_matches("0x"), 16).ok());
                assert_eq!((t100["dev"].as_str(), tos), (Some("v0"), Some(4)), "{t100}");
                assert_eq!(
                    find(&ip_json(&a, &["route", "show", "table", "5000"]), "default")["gateway"],
                    "10.1.1.254"
                );
            }),
        ),
        (
            "reads: one table, all tables, and route_get",
            Box::new(|| {
                let listed = run_ok(
                    &client,
                    &[json!({"op": "route_list", "ns": a, "table": 5000})],
                );
                let OpResult::RouteList(l) = &listed[0] else {
                    panic!()
                };
                assert_eq!(l.routes.len(), 1);
                assert_eq!(
                    (l.routes[0].dst.to_string(), l.routes[0].table),
                    ("0.0.0.0/0".into(), 5000)
                );
                let listed = run_ok(
                    &client,
                    &[json!({"op": "route_list", "ns": a, "family": "inet"})],
                );
                let OpResult::RouteList(all) = &listed[0] else {
                    panic!()
                };
                for t in [100, 254, 255, 5000] {
                    assert!(all.routes.iter().any(|r| r.table == t), "table {t} missing");
                }
                let got = run_ok(
                    &client,
                    &[json!({"op": "route_get", "ns": a, "dst": "10.2.3.4"})],
                );
                let OpResult::RouteGet(g) = &got[0] else {
                    panic!()
                };
                assert_eq!(
                    (g.via.map(|v| v.to_string()), g.dev.as_deref()),
                    (Some("10.1.1.2".into()), Some("v0"))
                );
                let m = expect_code(
                    run(
                        &client,
                        &[json!({"op": "route_get", "ns": b, "dst": "10.2.3.4"})],
                    ),
                    ErrorCode::NotFound,
                );
                assert!(m.contains("no route to 10.2.3.4"), "{m}");
            }),
        ),
        (
            "replace changes the route with the same key; delete and flush remove",
            Box::new(|| {
                run_ok(
                    &client,
                    &[
                        json!({"op": "route_replace", "ns": a, "dst": "10.2.0.0/16", "via": "10.1.1.3", "metric": 20}),
                    ],
                );
                assert_eq!(
                    find(&ip_json(&a, &["route", "show"]), "10.2.0.0/16")["gateway"],
                    "10.1.1.3"
                );
                run_ok(
                    &client,
                    &[
                        json!({"op": "route_delete", "ns": a, "dst": "10.66.0.0/16", "kind": "blackhole"}),
                    ],
                );
                assert!(
                    ip_json(&a, &["route", "show"])
                        .as_array()
                        .unwrap()
                        .iter()
                        .all(|r| r["dst"] != "10.66.0.0/16")
                );
                let flushed = run_ok(
                    &client,
                    &[json!({"op": "route_flush", "ns": a, "table": 100})],
                );
                assert!(
                    matches!(&flushed[0], OpResult::RouteFlush(f) if f.count == 1),
                    "{flushed:?}"
                );
                assert!(
                    ip_json(&a, &["route", "show", "table", "100"])
                        .as_array()
                        .unwrap()
                        .is_empty()
                );
            }),
        ),
        (
            "errors",
            Box::new(|| {
                expect_code(
                    run(
                        &client,
                        &[
                            json!({"op": "route_add", "ns": a, "dst": "10.2.0.0/16", "via": "10.1.1.3", "metric": 20}),
                        ],
                    ),
                    ErrorCode::AlreadyExists,
                );
                expect_code(
                    run(
                        &client,
                        &[json!({"op": "route_delete", "ns": a, "dst": "10.99.0.0/16"})],
                    ),
                    ErrorCode::NotFound,
                );
                let m = expect_code(
                    run(
                        &client,
                        &[json!({"op": "route_add", "ns": a, "dst": "10.2.3.4/16", "dev": "v0"})],
                    ),
                    ErrorCode::InvalidArgument,
                );
                assert!(m.contains("did you mean 10.2.0.0/16"), "{m}");
                expect_code(
                    run(
                        &client,
                        &[
                            json!({"op": "route_add", "ns": a, "dst": "10.4.0.0/16", "dev": "nope0"}),
                        ],
                    ),
                    ErrorCode::NotFound,
                );
                let m = expect_code(
                    run(
                        &client,
                        &[
                            json!({"op": "route_add", "ns": a, "dst": "10.4.0.0/16", "via": "192.168.1.1"}),
                        ],
                    ),
                    ErrorCode::Kernel,
                );
                assert!(
                    m.contains("gateway"),
                    "the kernel's own message is passed on: {m}"
                );
                let mut raw = RawConn::handshake(&helper.socket);
                raw.send(&json!({"type": "request", "id": 1, "ops": [{"op": "route_add", "ns": a, "dst": "10.5.0.0/16", "dev": "v0", "table": 0}]}));
                match raw.recv() {
                    Some(ServerMessage::Response(r)) => {
                        let e = r.error.unwrap();
                        assert_eq!(e.code, ErrorCode::InvalidArgument);
                        assert!(
                            e.message.contains("table 0 is not a table"),
                            "{}",
                            e.message
                        );
                    }
                    other => panic!("{other:?}"),
                }
            }),
        ),
    ]);
}

#[test]
fn rules() {
    require_priv!();
    let helper = TestHelper::start();
    let (client, a, _) = two_namespaces(&helper);
    run_ok(
        &client,
        &[
            json!({"op": "rule_add", "ns": a, "pref": 100, "from": "10.1.1.0/24", "to": "10.2.0.0/16", "iif": "lo",
               "fwmark": 7, "fwmask": 255, "tos": 4, "dport": "1000-2000", "sport": 53, "ipproto": "udp", "table": 100}),
            json!({"op": "rule_add", "ns": a, "pref": 200, "oif": "lo", "table": 5000}),
            json!({"op": "rule_add", "ns": a, "pref": 300, "to": "10.66.0.0/16", "action": "blackhole"}),
            json!({"op": "rule_add", "ns": a, "pref": 301, "to": "10.67.0.0/16", "action": "unreachable"}),
            json!({"op": "rule_add", "ns": a, "pref": 302, "to": "10.68.0.0/16", "action": "prohibit"}),
            json!({"op": "rule_add", "ns": a, "pref": 400, "from": "2001:db8::/32", "table": "main"}),
        ],
    );
    let rules = ip_json(&a, &["rule"]);
    let by_pref = |p: u64| {
        rules
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["priority"] == p)
            .unwrap_or_else(|| panic!("{p} in {rules}"))
            .clone()
    };
    let r = by_pref(100);
    assert_eq!(
        (r["src"].as_str(), r["srclen"].as_u64(), r["dst"].as_str()),
        (Some("10.1.1.0"), Some(24), Some("10.2.0.0"))
    );
    assert_eq!(
        (
            r["iif"].as_str(),
            r["fwmark"].as_str(),
            r["fwmask"].as_str()
        ),
        (Some("lo"), Some("0x7"), Some("0xff"))
    );
    assert_eq!(
        (
            r["ipproto"].as_str(),
            r["dport_start"].as_u64(),
            r["dport_end"].as_u64()
        ),
        (Some("udp"), Some(1000), Some(2000))
    );
    let tos = r["tos"]
        .as_str()
        .and_then(|t| u8::from_str_radix(t.trim_start_matches("0x"), 16).ok());
    assert_eq!(
        (r["sport"].as_u64(), r["table"].as_str(), tos),
        (Some(53), Some("100"), Some(4))
    );
    assert_eq!(
        (by_pref(200)["oif"].as_str(), by_pref(200)["table"].as_str()),
        (Some("lo"), Some("5000"))
    );
    assert_eq!(by_pref(300)["action"], "blackhole");
    assert_eq!(by_pref(301)["action"], "unreachable");
    assert_eq!(by_pref(302)["action"], "prohibit");
    let v6 = ip_json(&a, &["-6", "rule"]);
    assert!(
        v6.as_array()
            .unwrap()
            .iter()
            .any(|r| r["priority"] == 400 && r["src"] == "2001:db8::"),
        "{v6}"
    );

    let listed = run_ok(
        &client,
        &[json!({"op": "rule_list", "ns": a, "family": "inet"})],
    );
    let OpResult::RuleList(l) = &listed[0] else {
        panic!()
    };
    let r = l.rules.iter().find(|r| r.pref == 100).unwrap();
    assert_eq!(
        (r.table, r.fwmark, r.dport.map(|p| p.to_string())),
        (Some(100), Some(7), Some("1000-2000".into()))
    );

    expect_code(
        run(
            &client,
            &[json!({"op": "rule_add", "ns": a, "pref": 200, "oif": "lo", "table": 5000})],
        ),
        ErrorCode::AlreadyExists,
    );
    expect_code(
        run(
            &client,
            &[json!({"op": "rule_add", "ns": a, "pref": 500, "from": "10.9.0.0/16"})],
        ),
        ErrorCode::InvalidArgument,
    );
    expect_code(
        run(
            &client,
            &[
                json!({"op": "rule_add", "ns": a, "pref": 500, "to": "10.9.0.0/16", "action": "blackhole", "table": 5}),
            ],
        ),
        ErrorCode::InvalidArgument,
    );
    expect_code(
        run(
            &client,
            &[json!({"op": "rule_delete", "ns": a, "pref": 999, "table": 5})],
        ),
        ErrorCode::NotFound,
    );

    run_ok(
        &client,
        &[json!({"op": "rule_delete", "ns": a, "pref": 200, "table": 5000})],
    );
    assert!(
        ip_json(&a, &["rule"])
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["priority"] != 200)
    );
}

#[test]
fn sysctls() {
    require_priv!();
    let helper = TestHelper::start();
    let (client, a, b) = two_namespaces(&helper);
    run_ok(
        &client,
        &[
            json!({"op": "link_add_veth", "ns": a, "name": "bond1.vl180", "peer_ns": b, "peer_name": "v1"}),
        ],
    );
    let results = run_ok(
        &client,
        &[
            json!({"op": "sysctl_set", "ns": a, "key": "net.ipv4.ip_forward", "value": "1"}),
            json!({"op": "sysctl_set", "ns": a, "key": "net.ipv4.conf.all.arp_ignore", "value": 1}),
            json!({"op": "sysctl_set", "ns": a, "key": "net.ipv4.conf.bond1.vl180.arp_announce", "value": "2"}),
            json!({"op": "sysctl_set", "ns": a, "key": "net.ipv4.ping_group_range", "value": "0 2147483647"}),
            json!({"op": "sysctl_get", "ns": a, "key": "net/ipv4/conf/bond1.vl180/arp_announce"}),
            json!({"op": "sysctl_get", "ns": b, "key": "net.ipv4.ip_forward"}),
        ],
    );
    let read = |i: usize| match &results[i] {
        OpResult::SysctlSet(r) | OpResult::SysctlGet(r) => (r.key.clone(), r.value.clone()),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        read(3).1.split_whitespace().collect::<Vec<_>>(),
        vec!["0", "2147483647"]
    );
    assert_eq!(
        read(4),
        ("net.ipv4.conf.bond1.vl180.arp_announce".into(), "2".into())
    );
    assert_eq!(read(5).1, "0", "another namespace is not affected");
    let check = |ns: &str, path: &str| {
        let out = Command::new("ip")
            .args(["netns", "exec", ns, "cat", path])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(check(&a, "/proc/sys/net/ipv4/ip_forward"), "1");
    assert_eq!(check(&a, "/proc/sys/net/ipv4/conf/all/arp_ignore"), "1");
    assert_eq!(
        check(&a, "/proc/sys/net/ipv4/conf/bond1.vl180/arp_announce"),
        "2"
    );

    for key in [
        "net.core.somaxconn",
        "net.ipv4.tcp_syncookies",
        "net.ipv6.conf.all.forwarding",
    ] {
        let m = expect_code(
            run(
                &client,
                &[json!({"op": "sysctl_set", "ns": a, "key": key, "value": "1"})],
            ),
            ErrorCode::NotAllowed,
        );
        assert!(m.contains(key) && m.contains("allow-list"), "{m}");
        expect_code(
            run(&client, &[json!({"op": "sysctl_get", "ns": a, "key": key})]),
            ErrorCode::NotAllowed,
        );
    }
    expect_code(
        run(
            &client,
            &[json!({"op": "sysctl_get", "ns": a, "key": "net.ipv4.conf.nope0.rp_filter"})],
        ),
        ErrorCode::NotFound,
    );
    let m = expect_code(
        run(
            &client,
            &[
                json!({"op": "sysctl_set", "ns": a, "key": "net.ipv4.conf.all.arp_ignore", "value": "--1"}),
            ],
        ),
        ErrorCode::InvalidArgument,
    );
    assert!(m.contains("refused"), "{m}");
    let mut raw = RawConn::handshake(&helper.socket);
    raw.send(&json!({"type": "request", "id": 1, "ops": [{"op": "sysctl_set", "ns": a, "key": "net.ipv4.ip_forward", "value": "1; reboot"}]}));
    assert!(
        matches!(raw.recv(), Some(ServerMessage::Response(r)) if r.error.as_ref().unwrap().code == ErrorCode::InvalidArgument)
    );
    raw.send(&json!({"type": "request", "id": 2, "ops": [{"op": "sysctl_get", "ns": a, "key": "net/ipv4/conf/../../../kernel/x"}]}));
    assert!(
        matches!(raw.recv(), Some(ServerMessage::Response(r)) if r.error.as_ref().unwrap().code == ErrorCode::InvalidArgument)
    );
}

#[test]
fn neighbours_and_netem() {
    require_priv!();
    let helper = TestHelper::start();
    let (client, a, b) = two_namespaces(&helper);
    run_ok(
        &client,
        &[
            json!({"op": "link_add_veth", "ns": a, "name": "v0", "peer_ns": b, "peer_name": "v1", "up": true}),
            json!({"op": "addr_add", "ns": a, "dev": "v0", "addr": "10.1.1.1/24"}),
            json!({"op": "neigh_replace", "ns": a, "dev": "v0", "ip": "10.1.1.9", "lladdr": "02:00:00:00:00:09"}),
            json!({"op": "neigh_replace", "ns": a, "dev": "v0", "ip": "10.1.1.8", "lladdr": "02:00:00:00:00:08", "state": "stale"}),
        ],
    );
    let neigh = ip_json(&a, &["neigh", "show", "dev", "v0"]);
    let find = |n: &Value, ip: &str| {
        n.as_array()
            .unwrap()
            .iter()
            .find(|e| e["dst"] == ip)
            .cloned()
    };
    let e = find(&neigh, "10.1.1.9").expect("entry");
    assert_eq!(
        (e["lladdr"].as_str(), e["state"][0].as_str()),
        (Some("02:00:00:00:00:09"), Some("PERMANENT"))
    );
    assert_eq!(find(&neigh, "10.1.1.8").unwrap()["state"][0], "STALE");
    run_ok(
        &client,
        &[
            json!({"op": "neigh_replace", "ns": a, "dev": "v0", "ip": "10.1.1.9", "lladdr": "02:00:00:00:00:99"}),
        ],
    );
    assert_eq!(
        find(&ip_json(&a, &["neigh"]), "10.1.1.9").unwrap()["lladdr"],
        "02:00:00:00:00:99"
    );
    run_ok(
        &client,
        &[json!({"op": "neigh_delete", "ns": a, "dev": "v0", "ip": "10.1.1.8"})],
    );
    assert!(find(&ip_json(&a, &["neigh"]), "10.1.1.8").is_none());
    let flushed = run_ok(&client, &[json!({"op": "neigh_flush", "ns": a})]);
    assert!(
        matches!(&flushed[0], OpResult::NeighFlush(f) if f.count >= 1),
        "{flushed:?}"
    );
    assert!(
        find(&ip_json(&a, &["neigh"]), "10.1.1.9").is_none(),
        "permanent entries are flushed too"
    );
    expect_code(
        run(
            &client,
            &[json!({"op": "neigh_delete", "ns": a, "dev": "v0", "ip": "10.1.1.7"})],
        ),
        ErrorCode::NotFound,
    );
    expect_code(
        run(
            &client,
            &[
                json!({"op": "neigh_replace", "ns": a, "dev": "nope0", "ip": "10.1.1.7", "lladdr": "02:00:00:00:00:07"}),
            ],
        ),
        ErrorCode::NotFound,
    );
    expect_code(
        run(
            &client,
            &[
                json!({"op": "neigh_replace", "ns": a, "dev": "v0", "ip": "10.1.1.7", "lladdr": "02:00:00:00:00:07", "state": "failed"}),
            ],
        ),
        ErrorCode::InvalidArgument,
    );

    // netem: the kernels of these machines lack it; both paths are checked.
    match run(
        &client,
        &[json!({"op": "netem_set", "ns": a, "dev": "v0", "delay_us": 1500})],
    ) {
        Ok(_) => {
            let out = Command::new("tc")
                .args(["-n", &a, "qdisc", "show", "dev", "v0"])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                text.contains("netem") && text.contains("delay 1.5ms"),
                "{text}"
            );
            run_ok(
                &client,
                &[json!({"op": "netem_delete", "ns": a, "dev": "v0"})],
            );
        }
        Err(e) => {
            assert_eq!(e.code(), Some(ErrorCode::Unsupported), "{e}");
            assert!(e.to_string().contains("netem"), "{e}");
        }
    }
    expect_code(
        run(
            &client,
            &[json!({"op": "netem_set", "ns": a, "dev": "v0", "delay_us": 61_000_000})],
        ),
        ErrorCode::InvalidArgument,
    );
    expect_code(
        run(
            &client,
            &[json!({"op": "netem_delete", "ns": a, "dev": "v0"})],
        ),
        ErrorCode::NotFound,
    );
}

#[test]
fn firewall_payloads() {
    require_priv!();
    let helper = TestHelper::start();
    let (client, a, b) = two_namespaces(&helper);
    let payload = "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\nCOMMIT\n";
    run_ok(
        &client,
        &[json!({"op": "iptables_restore", "ns": a, "payload": payload})],
    );
    let more = "*filter\n-A INPUT -p udp -m udp --dport 53 -j ACCEPT\nCOMMIT\n";
    run_ok(
        &client,
        &[json!({"op": "iptables_restore", "ns": a, "payload": more, "noflush": true})],
    );
    let saved = run_ok(
        &client,
        &[json!({"op": "iptables_save", "ns": a, "table": "filter", "counters": true})],
    );
    let OpResult::IptablesSave(s) = &saved[0] else {
        panic!()
    };
    assert!(s.payload.contains(":INPUT DROP"), "{}", s.payload);
    assert!(
        s.payload.contains("--dport 22") && s.payload.contains("--dport 53"),
        "noflush appends: {}",
        s.payload
    );
    assert!(
        s.payload.contains("[0:0] -A INPUT"),
        "counters were asked for: {}",
        s.payload
    );
    // The other namespace, and the namespace the tests run in, are untouched.
    let other = run_ok(&client, &[json!({"op": "iptables_save", "ns": b})]);
    let OpResult::IptablesSave(o) = &other[0] else {
        panic!()
    };
    assert!(!o.payload.contains("--dport 22"), "{}", o.payload);

    let bad = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p bogus -j ACCEPT\nCOMMIT\n";
    let m = expect_code(
        run(
            &client,
            &[json!({"op": "iptables_restore", "ns": a, "payload": bad})],
        ),
        ErrorCode::InvalidArgument,
    );
    assert!(
        m.contains("line 3"),
        "the tool's line number is passed on: {m}"
    );
    let still = run_ok(&client, &[json!({"op": "iptables_save", "ns": a})]);
    let OpResult::IptablesSave(s) = &still[0] else {
        panic!()
    };
    assert!(
        s.payload.contains("--dport 53"),
        "a rejected payload changes nothing: {}",
        s.payload
    );

    let sets = "create web hash:ip family inet hashsize 1024 maxelem 65536\nadd web 10.1.1.1\nadd web 10.1.1.2\n";
    run_ok(
        &client,
        &[json!({"op": "ipset_restore", "ns": a, "payload": sets})],
    );
    let saved = run_ok(&client, &[json!({"op": "ipset_save", "ns": a})]);
    let OpResult::IpsetSave(s) = &saved[0] else {
        panic!()
    };
    assert!(
        s.payload.contains("create web hash:ip") && s.payload.contains("add web 10.1.1.2"),
        "{}",
        s.payload
    );
    let m = expect_code(
        run(
            &client,
            &[json!({"op": "ipset_restore", "ns": a, "payload": "create web hash:ip\n"})],
        ),
        ErrorCode::InvalidArgument,
    );
    assert!(m.contains("line 1"), "{m}");
    run_ok(
        &client,
        &[
            json!({"op": "ipset_restore", "ns": a, "payload": "create web hash:ip\n", "exist": true}),
        ],
    );
    // A set type the kernel may lack: either it works, or it is `unsupported`.
    match run(
        &client,
        &[
            json!({"op": "ipset_restore", "ns": a, "payload": "create nn hash:net,net family inet\n"}),
        ],
    ) {
        Ok(_) => {}
        Err(e) => assert_eq!(e.code(), Some(ErrorCode::Unsupported), "{e}"),
    }
    expect_code(
        run(
            &client,
            &[json!({"op": "iptables_restore", "ns": a, "payload": "*filter\n\0COMMIT\n"})],
        ),
        ErrorCode::InvalidArgument,
    );

    // IPv6 too.
    let v6 = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";
    run_ok(
        &client,
        &[json!({"op": "iptables_restore", "ns": a, "payload": v6, "ipv6": true})],
    );
    let saved = run_ok(
        &client,
        &[json!({"op": "iptables_save", "ns": a, "ipv6": true})],
    );
    let OpResult::IptablesSave(s) = &saved[0] else {
        panic!()
    };
    assert!(s.payload.contains(":FORWARD DROP"), "{}", s.payload);
}

#[test]
fn a_host_sized_batch_is_one_request() {
    require_priv!();
    let helper = TestHelper::start();
    let client = helper.client();
    let (hidden, router, host) = (helper.ns("hid"), helper.ns("r1"), helper.ns("h1"));
    let results = client
        .request(
            ops(&[
                json!({"op": "ns_create", "name": hidden}),
                json!({"op": "link_add_bridge", "ns": hidden, "name": "br0", "up": true}),
                json!({"op": "ns_create", "name": router}),
                json!({"op": "link_add_veth", "ns": router, "name": "eth1", "peer_ns": hidden, "peer_name": "r1eth1", "peer_master": "br0", "up": true}),
                json!({"op": "addr_add", "ns": router, "dev": "eth1", "addr": "10.1.1.1/24"}),
                json!({"op": "ns_create", "name": host}),
                json!({"op": "link_add_veth", "ns": host, "name": "eth0", "peer_ns": hidden, "peer_name": "h1eth0", "peer_master": "br0", "up": true}),
                json!({"op": "addr_add", "ns": host, "dev": "eth0", "addr": "10.1.1.100/24"}),
                json!({"op": "route_add", "ns": host, "dst": "0.0.0.0/0", "via": "10.1.1.1"}),
                json!({"op": "route_get", "ns": host, "dst": "10.3.1.1"}),
            ]),
            RequestOptions { atomic: true, progress: false },
        )
        .unwrap();
    let OpResult::RouteGet(g) = &results[9] else {
        panic!()
    };
    assert_eq!(
        (g.via.map(|v| v.to_string()), g.dev.as_deref()),
        (Some("10.1.1.1".into()), Some("eth0"))
    );
    let lo = &ip_json(&host, &["link", "show", "lo"])[0];
    assert!(lo["flags"].as_array().unwrap().iter().any(|f| f == "UP"));
    let members: Vec<String> = ip_json(&hidden, &["link", "show", "master", "br0"])
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["ifname"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(members, vec!["r1eth1", "h1eth0"]);
    // The host reaches its router over the bridge: the router's neighbour table learns it.
    let arping = Command::new("ip")
        .args(["netns", "exec", &host, "cat", "/proc/net/arp"])
        .output()
        .unwrap();
    assert!(arping.status.success());
}

/// The tables of an `iptables-save` output that do something: comments and tables with no
/// rules and only ACCEPT policies (the same as no table) are left out.
fn effective_rules(save: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut table: Vec<&str> = Vec::new();
    for line in save.lines().filter(|l| !l.starts_with('#')) {
        table.push(line);
        if line == "COMMIT" {
            let empty = table.iter().all(|l| {
                l.starts_with('*')
                    || *l == "COMMIT"
                    || (l.starts_with(':') && l.split_whitespace().nth(1) == Some("ACCEPT"))
            });
            if !empty {
                out.push(table.join("\n"));
            }
            table.clear();
        }
    }
    out
}

/// One atomic request per kind of change, each failing at its last operation: afterwards
/// the namespace is exactly as before.
#[test]
fn every_kind_of_change_is_rolled_back() {
    require_priv!();
    let helper = TestHelper::start();
    let (client, a, b) = two_namespaces(&helper);
    run_ok(
        &client,
        &[
            json!({"op": "link_add_bridge", "ns": b, "name": "br0", "up": true}),
            json!({"op": "link_add_veth", "ns": a, "name": "v0", "peer_ns": b, "peer_name": "v1", "up": true, "mtu": 1500}),
            json!({"op": "addr_add", "ns": a, "dev": "v0", "addr": "10.1.1.1/24"}),
            json!({"op": "addr_add", "ns": a, "dev": "v0", "addr": "10.1.1.2/24"}),
            json!({"op": "route_add", "ns": a, "dst": "10.2.0.0/16", "via": "10.1.1.2", "metric": 5}),
            json!({"op": "route_add", "ns": a, "dst": "10.3.0.0/16", "dev": "v0", "table": 100}),
            json!({"op": "route_add", "ns": a, "dst": "10.4.0.0/16", "dev": "v0", "table": 100}),
            json!({"op": "rule_add", "ns": a, "pref": 100, "from": "10.1.1.0/24", "table": 100}),
            json!({"op": "neigh_replace", "ns": a, "dev": "v0", "ip": "10.1.1.9", "lladdr": "02:00:00:00:00:09"}),
            json!({"op": "sysctl_set", "ns": a, "key": "net.ipv4.conf.all.rp_filter", "value": "2"}),
            json!({"op": "iptables_restore", "ns": a, "payload": "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -s 10.9.9.9/32 -j DROP\nCOMMIT\n"}),
            json!({"op": "ipset_restore", "ns": a, "payload": "create keep hash:ip\nadd keep 10.1.1.1\n"}),
            // A link without an address, with a route and a neighbour through it: the first
            // address's undo (its deletion) would take both with it.
            json!({"op": "link_add_bridge", "ns": b, "name": "br1", "up": true}),
            json!({"op": "route_add", "ns": b, "dst": "10.6.0.0/16", "dev": "br1"}),
            json!({"op": "neigh_replace", "ns": b, "dev": "br1", "ip": "10.6.0.9", "lladdr": "02:00:00:00:00:69"}),
            // A link that is down, with a neighbour: bringing it up is undone by taking it
            // down, which takes the neighbour with it.
            json!({"op": "link_add_bridge", "ns": b, "name": "br2"}),
            json!({"op": "neigh_replace", "ns": b, "dev": "br2", "ip": "10.6.1.9", "lladdr": "02:00:00:00:00:6a"}),
        ],
    );
    let snapshot = |ns: &str| {
        let sysctl = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                "cat",
                "/proc/sys/net/ipv4/conf/all/rp_filter",
            ])
            .output()
            .unwrap();
        let fw = Command::new("ip")
            .args(["netns", "exec", ns, "iptables-save"])
            .output()
            .unwrap();
        let sets = Command::new("ip")
            .args(["netns", "exec", ns, "ipset", "save"])
            .output()
            .unwrap();
        let fw = effective_rules(&String::from_utf8_lossy(&fw.stdout));
        // The configuration of each link; a bridge's MAC and carrier follow its ports, so
        // they are left out.
        let links: Vec<Value> = ip_json(ns, &["-d", "link"])
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                let kind = l["linkinfo"]["info_kind"].clone();
                let up = l["flags"].as_array().unwrap().iter().any(|f| f == "UP");
                let mac = if kind == "bridge" {
                    Value::Null
                } else {
                    l["address"].clone()
                };
                json!([
                    l["ifname"],
                    kind,
                    l["mtu"],
                    l.get("master"),
                    l["group"],
                    up,
                    mac
                ])
            })
            .collect();
        // A route's flags (linkdown) follow the carrier, not the configuration; the
        // kernel's own routes of a link that went down and up come back in another order.
        let mut routes: Vec<String> = ip_json(ns, &["route", "show", "table", "all"])
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r.as_object_mut().unwrap().remove("flags");
                r.to_string()
            })
            .collect();
        routes.sort();
        json!({
            "link": links,
            "addr": ip_json(ns, &["addr"]).as_array().unwrap().iter().map(|l| json!([l["ifname"], l["addr_info"].as_array().unwrap().iter().map(|a| json!([a["local"], a["prefixlen"], a.get("secondary")])).collect::<Vec<_>>()])).collect::<Vec<_>>(),
            "route": routes,
            "rule": ip_json(ns, &["rule"]),
            "neigh": ip_json(ns, &["neigh"]).as_array().unwrap().iter().filter(|n| n["state"][0] == "PERMANENT").cloned().collect::<Vec<_>>(),
            "sysctl": String::from_utf8_lossy(&sysctl.stdout).trim(),
            "iptables": fw,
            "ipset": String::from_utf8_lossy(&sets.stdout),
        })
    };
    let before_a = snapshot(&a);
    let before_b = snapshot(&b);
    let cases: Vec<(&str, Vec<Value>)> = vec![
        (
            "link add",
            vec![
                json!({"op": "link_add_veth", "ns": a, "name": "v7", "peer_ns": b, "peer_name": "v8", "peer_master": "br0", "up": true}),
                json!({"op": "link_add_bridge", "ns": a, "name": "br7"}),
            ],
        ),
        (
            "link set",
            vec![
                json!({"op": "link_set", "ns": b, "name": "v1", "up": false, "master": "br0", "mtu": 1400, "mac": "02:00:00:00:00:77", "rename": "v1x"}),
            ],
        ),
        (
            "address add",
            vec![json!({"op": "addr_add", "ns": a, "dev": "v0", "addr": "10.8.8.8/24"})],
        ),
        (
            "address delete",
            vec![json!({"op": "addr_delete", "ns": a, "dev": "v0", "addr": "10.1.1.1/24"})],
        ),
        (
            "first address of a link",
            vec![json!({"op": "addr_add", "ns": b, "dev": "br1", "addr": "10.6.6.1/24"})],
        ),
        (
            "link down",
            vec![json!({"op": "link_set", "ns": b, "name": "br1", "up": false})],
        ),
        (
            "link up",
            vec![json!({"op": "link_set", "ns": b, "name": "br2", "up": true})],
        ),
        (
            "new MAC",
            vec![json!({"op": "link_set", "ns": b, "name": "br1", "mac": "02:00:00:00:01:01"})],
        ),
        (
            "route add",
            vec![
                json!({"op": "route_add", "ns": a, "dst": "10.5.0.0/16", "via": "10.1.1.2", "table": 200}),
            ],
        ),
        (
            "route replace",
            vec![
                json!({"op": "route_replace", "ns": a, "dst": "10.2.0.0/16", "via": "10.1.1.3", "metric": 5}),
            ],
        ),
        (
            "route delete",
            vec![json!({"op": "route_delete", "ns": a, "dst": "10.2.0.0/16"})],
        ),
        (
            "route flush",
            vec![json!({"op": "route_flush", "ns": a, "table": 100})],
        ),
        (
            "rule add",
            vec![
                json!({"op": "rule_add", "ns": a, "pref": 150, "to": "10.9.0.0/16", "action": "prohibit"}),
            ],
        ),
        (
            "rule delete",
            vec![json!({"op": "rule_delete", "ns": a, "pref": 100})],
        ),
        (
            "neighbour replace",
            vec![
                json!({"op": "neigh_replace", "ns": a, "dev": "v0", "ip": "10.1.1.9", "lladdr": "02:00:00:00:00:99"}),
            ],
        ),
        (
            "neighbour delete",
            vec![json!({"op": "neigh_delete", "ns": a, "dev": "v0", "ip": "10.1.1.9"})],
        ),
        (
            "neighbour flush",
            vec![json!({"op": "neigh_flush", "ns": a})],
        ),
        (
            "sysctl",
            vec![
                json!({"op": "sysctl_set", "ns": a, "key": "net.ipv4.conf.all.rp_filter", "value": "0"}),
            ],
        ),
        (
            "iptables",
            vec![
                json!({"op": "iptables_restore", "ns": a, "payload": "*filter\n:INPUT DROP [0:0]\nCOMMIT\n*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j RETURN\nCOMMIT\n"}),
            ],
        ),
        (
            "ipset",
            vec![
                json!({"op": "ipset_restore", "ns": a, "payload": "create other hash:ip\nadd keep 10.1.1.2\n", "exist": true}),
            ],
        ),
        (
            "everything at once",
            vec![
                json!({"op": "link_add_veth", "ns": a, "name": "v7", "peer_ns": b, "peer_name": "v8", "up": true}),
                json!({"op": "addr_add", "ns": a, "dev": "v7", "addr": "10.7.7.1/24"}),
                json!({"op": "route_add", "ns": a, "dst": "10.77.0.0/16", "via": "10.7.7.2"}),
                json!({"op": "route_delete", "ns": a, "dst": "10.2.0.0/16"}),
                json!({"op": "rule_delete", "ns": a, "pref": 100}),
                json!({"op": "sysctl_set", "ns": a, "key": "net.ipv4.conf.all.rp_filter", "value": "1"}),
                json!({"op": "addr_delete", "ns": a, "dev": "v0", "addr": "10.1.1.1/24"}),
            ],
        ),
    ];
    let mut failures = Vec::new();
    for (kind, mut ops) in cases {
        let last = ops.len() as u32;
        ops.push(fail_op());
        let (code, _) = failure(atomic(&client, &ops), last);
        assert_eq!(code, ErrorCode::NotFound, "{kind}");
        for (ns, before) in [(&a, &before_a), (&b, &before_b)] {
            let after = snapshot(ns);
            let differ: Vec<String> = before
                .as_object()
                .unwrap()
                .iter()
                .filter(|(key, value)| after.get(key.as_str()) != Some(value))
                .map(|(key, value)| format!("{key}: before {value}\n  after {}", after[key]))
                .collect();
            failures
                .extend((!differ.is_empty()).then(|| {
                    format!("{kind} was not rolled back in {ns}:\n{}", differ.join("\n"))
                }));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
