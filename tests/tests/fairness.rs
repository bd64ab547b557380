//! Fair sharing between the users of one helper, tried as a hostile member of the group
//! would (findings 5 and 7 of the boundary review): connections per uid and the slots kept
//! for root, a cap on a request's running time, concurrent service starts against the
//! quota, gateways that would take over a router's routes, a member's changes to the `eth0`
//! its host shares a bridge through, operations that cannot be undone in atomic requests,
//! and idle exit while services run.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tsim_tests::{
    HelperOptions, NOBODY, RawConn, TestHelper, batch_file, example_facts, ip_netns_list,
    require_priv, test_gid, text, tsimctl_as_nobody, tsimctl_for_anyone,
};

/// Starts `tsimctl ARGS` as uid `NOBODY` in `group`, without waiting.
fn spawn_member(helper: &TestHelper, group: u32, args: &[&str]) -> Child {
    Command::new("setpriv")
        .arg(format!("--reuid={NOBODY}"))
        .arg(format!("--regid={NOBODY}"))
        .arg(format!("--groups={group}"))
        .arg(tsimctl_for_anyone(helper.dir.path()))
        .arg("--socket")
        .arg(&helper.socket)
        .args(args)
        .current_dir("/")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("setpriv")
}

/// The number of connections the helper serves now.
fn connections(helper: &TestHelper) -> u64 {
    let out = helper.tsimctl(&["--json", "status"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    // The status call's own connection counts too.
    v["connections"].as_u64().unwrap_or(0).saturating_sub(1)
}

fn wait_for(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `n` member connections, each holding a long request, opened one at a time (a probe of
/// the count takes a slot while it runs, which could turn away a member that connects just
/// then).
fn hold_connections(helper: &TestHelper, group: u32, n: u64) -> Vec<Child> {
    let hold = batch_file(
        helper,
        "hold.json",
        &[json!({"op": "ping", "delay_ms": 15000})],
    );
    let mut held = Vec::new();
    for i in 1..=n {
        held.push(spawn_member(helper, group, &["batch", &hold]));
        std::thread::sleep(Duration::from_millis(300));
        wait_for("a member connection", || connections(helper) >= i);
    }
    held
}

#[test]
fn one_member_cannot_take_every_connection() {
    require_priv!();
    let group = test_gid(0);
    let helper = TestHelper::start_with(HelperOptions {
        args: [
            "--max-connections",
            "6",
            "--reserved-connections",
            "2",
            "--quota-connections",
            "3",
        ]
        .map(String::from)
        .to_vec(),
        group: group.to_string(),
        ..HelperOptions::default()
    });
    // Three connections held by one member (a long ping each).
    let mut held = hold_connections(&helper, group, 3);
    // The fourth is over the uid's quota.
    let out = tsimctl_as_nobody(&helper, &[group], &["ping"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("quota_exceeded"), "{}", text(&out));
    assert!(text(&out).contains("--quota-connections"), "{}", text(&out));
    // Root takes the slots members may not: 3 held + 3 root connections = the limit.
    let roots: Vec<RawConn> = (0..3).map(|_| RawConn::handshake(&helper.socket)).collect();
    let mut over = RawConn::connect(&helper.socket);
    match over.recv() {
        Some(tsim_protocol::ServerMessage::Error(e)) => {
            assert_eq!(e.code, tsim_protocol::ErrorCode::Busy, "{e:?}")
        }
        other => panic!("a connection over the limit got {other:?}"),
    }
    drop(roots);
    for child in &mut held {
        let _ = child.kill();
        let _ = child.wait();
    }
}

#[test]
fn members_leave_the_reserved_slots_to_root() {
    require_priv!();
    let group = test_gid(0);
    let helper = TestHelper::start_with(HelperOptions {
        args: ["--max-connections", "4", "--reserved-connections", "2"]
            .map(String::from)
            .to_vec(),
        group: group.to_string(),
        ..HelperOptions::default()
    });
    let mut held = hold_connections(&helper, group, 2);
    let out = tsimctl_as_nobody(&helper, &[group], &["ping"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("busy"), "{}", text(&out));
    // Root still gets in.
    helper.client().ping().unwrap();
    for child in &mut held {
        let _ = child.kill();
        let _ = child.wait();
    }
}

#[test]
fn a_request_that_runs_too_long_is_undone_and_answered_timeout() {
    require_priv!();
    let helper = TestHelper::start_with(HelperOptions {
        args: vec!["--max-request-secs".into(), "1".into()],
        ..HelperOptions::default()
    });
    let x = helper.ns("x");
    let file = batch_file(
        &helper,
        "long.json",
        &[
            json!({"op": "ns_create", "name": x}),
            json!({"op": "ping", "delay_ms": 30000}),
        ],
    );
    let started = Instant::now();
    let out = helper.tsimctl(&["batch", "--atomic", &file]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("timeout"), "{}", text(&out));
    assert!(text(&out).contains("--max-request-secs"), "{}", text(&out));
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(!ip_netns_list().contains(&x));
    // Ten thousand pings are cut short the same way.
    let many: Vec<Value> = (0..10_000)
        .map(|_| json!({"op": "ping", "delay_ms": 100}))
        .collect();
    let file = batch_file(&helper, "many.json", &many);
    let out = helper.tsimctl(&["batch", &file]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("timeout"), "{}", text(&out));
}

#[test]
fn concurrent_service_starts_stay_within_the_quota() {
    require_priv!();
    let group = test_gid(0);
    let helper = TestHelper::start_with(HelperOptions {
        args: vec!["--quota-services".into(), "2".into()],
        group: group.to_string(),
        ..HelperOptions::default()
    });
    let ns = helper.ns("svc");
    let out = tsimctl_as_nobody(&helper, &[group], &["ns", "add", &ns]);
    assert!(out.status.success(), "{}", text(&out));
    let starts: Vec<Child> = (0..12)
        .map(|i| {
            let port = (7000 + i).to_string();
            spawn_member(
                &helper,
                group,
                &[
                    "svc",
                    "start",
                    "--ns",
                    &ns,
                    "--ip",
                    "127.0.0.1",
                    "--port",
                    &port,
                ],
            )
        })
        .collect();
    let mut started = 0;
    for child in starts {
        let out = child.wait_with_output().unwrap();
        if out.status.success() {
            started += 1;
        } else {
            assert!(text(&out).contains("quota_exceeded"), "{}", text(&out));
        }
    }
    assert_eq!(started, 2, "services started past the quota of 2");
    let out = helper.tsimctl(&["--json", "svc", "list"]);
    assert_eq!(text(&out).matches("\"port\"").count(), 2, "{}", text(&out));
}

#[test]
fn gateways_never_take_over_routes_and_members_keep_to_their_prefix() {
    require_priv!();
    let group = test_gid(0);
    let helper = TestHelper::start_with(HelperOptions {
        group: group.to_string(),
        ..HelperOptions::default()
    });
    helper.net_setup(&example_facts());
    let core = helper.ns("core");
    let host_add = |who_member: bool, name: &str, ip: &str| {
        let name = helper.ns(name);
        let args = ["host", "add", &name, "--ip", ip, "--router", &core];
        if who_member {
            tsimctl_as_nobody(&helper, &[group], &args)
        } else {
            helper.tsimctl(&args)
        }
    };
    let routes = || {
        text(
            &Command::new("ip")
                .args(["-n", &core, "route"])
                .output()
                .unwrap(),
        )
    };
    let before = routes();
    // The exact reproduction: a /1 behind a router with no address in it.
    let out = host_add(true, "wide", "128.0.0.5/1");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("--min-host-prefix"), "{}", text(&out));
    // Root may ask for a short prefix, but not for one that widens over the router's routes.
    let out = host_add(false, "wide", "8.0.0.5/5");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("conflict"), "{}", text(&out));
    let out = host_add(false, "wide", "10.0.0.5/12");
    assert!(text(&out).contains("conflict"), "{}", text(&out));
    assert_eq!(routes(), before, "the router's routes changed");
    // A subnet of its own is fine; one overlapping another host's gateway is not.
    let out = host_add(true, "own", "10.9.9.10/24");
    assert!(out.status.success(), "{}", text(&out));
    let out = host_add(true, "over", "10.9.0.10/16");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("conflict"), "{}", text(&out));
}

#[test]
fn members_cannot_change_what_their_host_shows_the_bridge() {
    require_priv!();
    let group = test_gid(0);
    let helper = TestHelper::start_with(HelperOptions {
        group: group.to_string(),
        ..HelperOptions::default()
    });
    helper.net_setup(&example_facts());
    let h = helper.ns("mine");
    let lab = helper.ns("lab");
    let out = tsimctl_as_nobody(
        &helper,
        &[group],
        &["host", "add", &h, "--ip", "10.0.3.100/24", "--router", &lab],
    );
    assert!(out.status.success(), "{}", text(&out));
    let attempts = [
        json!({"op": "addr_add", "ns": h, "dev": "eth0", "addr": "10.0.3.1/24"}),
        json!({"op": "addr_add", "ns": h, "dev": "lo", "addr": "10.0.3.2/32"}),
        json!({"op": "addr_delete", "ns": h, "dev": "eth0", "addr": "10.0.3.100/24"}),
        json!({"op": "link_set", "ns": h, "name": "eth0", "mac": "02:00:00:00:00:01"}),
        json!({"op": "link_set", "ns": h, "name": "eth0", "up": false}),
        json!({"op": "route_add", "ns": h, "dst": "10.0.1.0/24", "via": "10.0.3.2"}),
        json!({"op": "route_delete", "ns": h, "dst": "0.0.0.0/0"}),
        json!({"op": "route_flush", "ns": h, "table": "main"}),
        json!({"op": "route_add", "ns": h, "dst": "10.8.0.0/16", "dev": "lo", "nexthops": [{"via": "10.0.3.1", "dev": "eth0"}]}),
        json!({"op": "link_delete", "ns": h, "name": "eth0"}),
    ];
    let show = || {
        text(
            &Command::new("ip")
                .args(["-n", &h, "-o", "addr"])
                .output()
                .unwrap(),
        ) + &text(
            &Command::new("ip")
                .args(["-n", &h, "-o", "link"])
                .output()
                .unwrap(),
        ) + &text(
            &Command::new("ip")
                .args(["-n", &h, "route"])
                .output()
                .unwrap(),
        )
    };
    let before = show();
    for (i, op) in attempts.iter().enumerate() {
        let file = batch_file(&helper, &format!("eth0-{i}.json"), std::slice::from_ref(op));
        let out = tsimctl_as_nobody(&helper, &[group], &["batch", &file]);
        assert_eq!(out.status.code(), Some(1), "{op}: {}", text(&out));
        assert!(
            text(&out).contains("permission_denied"),
            "{op}: {}",
            text(&out)
        );
    }
    assert_eq!(show(), before, "the host changed");
    // Root may (and puts it back).
    let file = batch_file(
        &helper,
        "root.json",
        &[
            json!({"op": "addr_add", "ns": h, "dev": "lo", "addr": "10.0.3.2/32"}),
            json!({"op": "addr_delete", "ns": h, "dev": "lo", "addr": "10.0.3.2/32"}),
        ],
    );
    let out = helper.tsimctl(&["batch", &file]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn operations_that_cannot_be_undone_are_refused_in_atomic_requests() {
    require_priv!();
    let helper = TestHelper::start();
    let x = helper.ns("x");
    let file = batch_file(
        &helper,
        "atomic.json",
        &[
            json!({"op": "ns_create", "name": x}),
            json!({"op": "link_add_bridge", "ns": x, "name": "d0"}),
            json!({"op": "link_delete", "ns": x, "name": "d0"}),
        ],
    );
    let out = helper.tsimctl(&["--json", "batch", "--atomic", &file]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("not_allowed"), "{}", text(&out));
    assert!(text(&out).contains("cannot be undone"), "{}", text(&out));
    assert!(!ip_netns_list().contains(&x), "nothing of the request ran");
    // The same without atomic runs.
    let out = helper.tsimctl(&["batch", &file]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn idle_exit_waits_while_services_run() {
    require_priv!();
    let mut helper = TestHelper::start_with(HelperOptions {
        args: vec!["--idle-exit".into(), "1".into()],
        ..HelperOptions::default()
    });
    let ns = helper.ns("idle");
    let svc = ["--ns", &ns, "--ip", "127.0.0.1", "--port", "7007"];
    for args in [
        vec!["ns", "add", &ns],
        [&["svc", "start"][..], &svc].concat(),
    ] {
        let out = helper.tsimctl(&args);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
    }
    assert!(
        helper.wait_exit(Duration::from_secs(4)).is_none(),
        "the helper exited with a service running"
    );
    let out = helper.tsimctl(&[&["svc", "stop"][..], &svc].concat());
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        helper.wait_exit(Duration::from_secs(15)).is_some(),
        "the helper did not exit once idle"
    );
}

#[test]
fn hosts_claim_no_address_of_a_router_or_another_host() {
    require_priv!();
    let group = test_gid(0);
    let helper = TestHelper::start_with(HelperOptions {
        group: group.to_string(),
        ..HelperOptions::default()
    });
    helper.net_setup(&example_facts());
    let member = |args: &[&str]| tsimctl_as_nobody(&helper, &[group], args);
    let lab = helper.ns("lab");
    let victim = helper.ns("victim");
    let out = member(&[
        "host",
        "add",
        &victim,
        "--ip",
        "10.0.3.10/24",
        "--router",
        &lab,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    // Secondaries answered for on eth0: a router's address, another host's address.
    for secondary in ["10.0.3.1/32", "10.0.2.2/32", "10.0.3.10/32"] {
        let att = helper.ns("att");
        let out = member(&[
            "host",
            "add",
            &att,
            "--ip",
            "10.0.3.30/24",
            "--router",
            &lab,
            "--secondary",
            secondary,
        ]);
        assert_eq!(out.status.code(), Some(1), "{secondary}: {}", text(&out));
        assert!(
            text(&out).contains("conflict"),
            "{secondary}: {}",
            text(&out)
        );
    }
    // A router's name is the admin's, even while the router is gone.
    let out = helper.tsimctl(&["host", "del", &victim]);
    assert!(out.status.success(), "{}", text(&out));
    let out = helper.tsimctl(&["ns", "del", &lab]);
    assert!(out.status.success(), "{}", text(&out));
    let out = member(&["ns", "add", &lab]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("not_allowed"), "{}", text(&out));
}
