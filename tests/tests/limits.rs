//! Per-uid quotas (namespaces, services, requests running) for a user who is not root, and
//! the idle-connection timeout.

use std::time::{Duration, Instant};

use tsim_protocol::{ErrorCode, ServerMessage};
use tsim_tests::{
    HelperOptions, RawConn, TestHelper, require_priv, test_gid, text, tsimctl_as_nobody,
};

#[test]
fn quotas_hold_for_users_and_not_for_root() {
    require_priv!();
    let group = test_gid(7);
    let helper = TestHelper::start_with(HelperOptions {
        args: [
            "--quota-namespaces",
            "2",
            "--quota-services",
            "1",
            "--quota-in-flight",
            "1",
        ]
        .map(String::from)
        .to_vec(),
        group: group.to_string(),
        ..HelperOptions::default()
    });
    let as_user = |args: &[&str]| tsimctl_as_nobody(&helper, &[group], args);
    let (a, b, c) = (helper.ns("a"), helper.ns("b"), helper.ns("c"));
    assert!(as_user(&["ns", "add", &a]).status.success());
    assert!(as_user(&["ns", "add", &b]).status.success());
    let out = as_user(&["ns", "add", &c]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("quota_exceeded"), "{}", text(&out));
    // Root is not counted against, nor held to, anyone's quota.
    assert!(helper.tsimctl(&["ns", "add", &c]).status.success());
    // Deleting one makes room again.
    assert!(as_user(&["ns", "del", &b]).status.success());
    assert!(as_user(&["ns", "add", &b]).status.success());

    // One service each.
    let svc = |port: &str| {
        as_user(&[
            "svc",
            "start",
            "--ns",
            &a,
            "--ip",
            "127.0.0.1",
            "--port",
            port,
        ])
    };
    assert!(svc("7").status.success());
    let out = svc("8");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("quota_exceeded"), "{}", text(&out));

    // One request running at once, over all of the user's connections.
    let dir = helper.dir.path();
    let slow = dir.join("slow.json");
    std::fs::write(&slow, r#"[{"op": "ping", "delay_ms": 2000}]"#).unwrap();
    std::fs::set_permissions(&slow, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let slow = slow.display().to_string();
    let helper_ref = &helper;
    std::thread::scope(|s| {
        let first = s.spawn(move || tsimctl_as_nobody(helper_ref, &[group], &["batch", &slow]));
        std::thread::sleep(Duration::from_millis(500));
        let second = as_user(&["ping"]);
        assert_eq!(second.status.code(), Some(1), "{}", text(&second));
        assert!(
            text(&second).contains("quota_exceeded"),
            "{}",
            text(&second)
        );
        let first = first.join().unwrap();
        assert!(first.status.success(), "{}", text(&first));
    });
    assert!(as_user(&["ping"]).status.success(), "the slot came back");
}

#[test]
fn idle_connections_are_closed_and_busy_ones_are_not() {
    require_priv!();
    let helper = TestHelper::start_with(HelperOptions {
        args: vec!["--idle-timeout".into(), "1".into()],
        ..HelperOptions::default()
    });
    let mut idle = RawConn::handshake(&helper.socket);
    let started = Instant::now();
    match idle.recv() {
        Some(ServerMessage::Error(e)) => assert_eq!(e.code, ErrorCode::Timeout, "{e:?}"),
        other => panic!("expected an error frame, got {other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert!(idle.is_closed());
    // A request running longer than the timeout keeps its connection.
    let mut busy = RawConn::handshake(&helper.socket);
    busy.send(
        &serde_json::json!({"type": "request", "id": 1, "atomic": false,
        "ops": [{"op": "ping", "delay_ms": 2500}]}),
    );
    match busy.recv() {
        Some(ServerMessage::Response(r)) => assert!(r.error.is_none(), "{r:?}"),
        other => panic!("expected the response, got {other:?}"),
    }
    // The helper stays up for everyone else.
    assert!(helper.client().ping().is_ok());
}
