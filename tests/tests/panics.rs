//! A panic in an operation rolls its request back and is answered `internal` with the
//! operation's index; the connection and the helper go on (finding 2 of the boundary review:
//! a panicking payload left a namespace `creating` until a restart, counted against its
//! owner's quota). The panics are injected with `TSIM_TEST_PANIC`, which only debug builds
//! read (`helper/src/base/test_hooks.rs`).

use std::process::Command;

use serde_json::{Value, json};
use tsim_tests::{
    HelperOptions, TestHelper, example_facts, ip_netns_list, require_priv, test_gid, text,
    tsimctl_as_nobody,
};

fn addrs(ns: &str) -> String {
    let out = Command::new("ip")
        .args(["-n", ns, "-o", "addr", "show"])
        .output()
        .unwrap();
    text(&out)
}

/// A helper serving group `group`, with a namespace quota of 2 and a panic at `point`, and
/// the example network.
fn start(group: u32, point: &str) -> TestHelper {
    let helper = TestHelper::start_with(HelperOptions {
        args: vec!["--quota-namespaces".into(), "2".into()],
        group: group.to_string(),
        env: vec![("TSIM_TEST_PANIC".into(), point.into())],
        ..HelperOptions::default()
    });
    helper.net_setup(&example_facts());
    helper
}

/// Runs the atomic batch `ops` as a member, expects `internal` at `index`, and checks that
/// nothing of it is left: no namespace, no host, no gateway on the router, the quota whole.
fn panics_and_leaves_nothing(helper: &TestHelper, group: u32, ops: &[Value], index: usize) {
    let file = helper.dir.path().join("batch.json");
    std::fs::write(&file, serde_json::to_vec(ops).unwrap()).unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let path = file.display().to_string();
    let out = tsimctl_as_nobody(helper, &[group], &["--json", "batch", "--atomic", &path]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let answer = text(&out);
    assert!(answer.contains("internal"), "{answer}");
    assert!(
        answer.contains(&format!("\"op_index\": {index}"))
            || answer.contains(&format!("\"op_index\":{index}"))
            || answer.contains(&format!("operation {index}")),
        "{answer}"
    );

    let (x, h) = (helper.ns("x"), helper.ns("h"));
    let names = ip_netns_list();
    assert!(!names.contains(&x) && !names.contains(&h), "{names:?}");
    let core = helper.ns("core");
    assert!(!addrs(&core).contains("10.9.9.1/24"), "{}", addrs(&core));
    let listed = helper.tsimctl(&["--json", "ns", "list"]);
    assert!(!text(&listed).contains(&x), "{}", text(&listed));
    assert!(helper.client().host_list().unwrap().is_empty());

    // The same connection's helper goes on; the names are free and the quota is whole.
    let out = helper.tsimctl(&["status"]);
    assert!(out.status.success(), "{}", text(&out));
    for name in [&x, &helper.ns("y")] {
        let out = tsimctl_as_nobody(helper, &[group], &["ns", "add", name]);
        assert!(out.status.success(), "ns add {name}: {}", text(&out));
    }
    for name in [&x, &helper.ns("y")] {
        let out = tsimctl_as_nobody(helper, &[group], &["ns", "del", name]);
        assert!(out.status.success(), "ns del {name}: {}", text(&out));
    }
}

fn ops(helper: &TestHelper, then_ping: bool) -> Vec<Value> {
    let mut ops = vec![
        json!({"op": "ns_create", "name": helper.ns("x")}),
        json!({"op": "host_add", "name": helper.ns("h"), "ip": "10.9.9.10/24", "router": helper.ns("core")}),
    ];
    if then_ping {
        ops.push(json!({"op": "ping"}));
    }
    ops
}

#[test]
fn a_panic_after_ns_create_and_host_add_undoes_both() {
    require_priv!();
    let group = test_gid(0);
    let helper = start(group, "dispatch:ping");
    panics_and_leaves_nothing(&helper, group, &ops(&helper, true), 2);
    assert!(helper.log().contains("Injected panic at dispatch:ping"));
}

#[test]
fn a_panic_inside_host_add_undoes_its_gateway_and_reservation() {
    require_priv!();
    let group = test_gid(0);
    let helper = start(group, "host_add:gateway");
    panics_and_leaves_nothing(&helper, group, &ops(&helper, false), 1);
    assert!(helper.log().contains("Injected panic at host_add:gateway"));
}
