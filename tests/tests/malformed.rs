//! Hostile and malformed input: every case gets a structured error or a clean close, and the
//! helper keeps serving everyone else.

use tsim_protocol::{ErrorCode, ServerMessage, WireError};
use tsim_tests::{HelperOptions, RawConn, TestHelper, ip_netns_list, require_priv};

/// Expects a connection-level error frame.
fn expect_error(raw: &mut RawConn) -> WireError {
    match raw.recv() {
        Some(ServerMessage::Error(e)) => e,
        other => panic!("expected an error frame, got {other:?}"),
    }
}

/// Expects a failed response to request `id`.
fn expect_failure(raw: &mut RawConn, id: u64) -> WireError {
    match raw.recv() {
        Some(ServerMessage::Response(r)) if r.id == id => r.error.expect("an error"),
        other => panic!("expected a failed response to {id}, got {other:?}"),
    }
}

fn assert_still_usable(raw: &mut RawConn) {
    raw.send(&serde_json::json!({"type": "request", "id": 999, "ops": [{"op": "ping"}]}));
    match raw.recv() {
        Some(ServerMessage::Response(r)) => assert!(r.id == 999 && r.error.is_none(), "{r:?}"),
        other => panic!("the connection is not usable any more: {other:?}"),
    }
}

#[test]
fn framing_errors() {
    require_priv!();
    let helper = TestHelper::start();

    // Truncated frame before the handshake, then the peer goes away.
    let mut raw = RawConn::connect(&helper.socket);
    raw.send_bytes(&[0, 0, 0, 100, 1, 2, 3]);
    drop(raw);

    // Truncated frame after the handshake.
    let mut raw = RawConn::handshake(&helper.socket);
    raw.send_bytes(&[0, 0, 0, 100, 0x83, 1, 2]);
    raw.shutdown_write();
    assert!(raw.is_closed());

    // Oversized length after the handshake: refused before reading, then closed.
    let mut raw = RawConn::handshake(&helper.socket);
    raw.send_bytes(&[0xff, 0xff, 0xff, 0xff]);
    let e = expect_error(&mut raw);
    assert_eq!(e.code, ErrorCode::BadRequest);
    assert!(
        e.message.contains("4294967295") && e.message.contains("16777216"),
        "{}",
        e.message
    );
    assert!(raw.is_closed());

    // Before the handshake the limit is 64 KiB.
    let mut raw = RawConn::connect(&helper.socket);
    raw.send_bytes(&(100_000u32).to_be_bytes());
    let e = expect_error(&mut raw);
    assert!(
        e.message.contains("100000") && e.message.contains("65536"),
        "{}",
        e.message
    );
    assert!(raw.is_closed());

    helper.client().ping().unwrap();
}

#[test]
fn undecodable_messages_keep_the_connection() {
    require_priv!();
    let helper = TestHelper::start();
    let mut raw = RawConn::handshake(&helper.socket);

    // Garbage bytes in a well-formed frame.
    raw.send_body(&[0xc1, 0xff, 0x00, 0x13]);
    assert_eq!(expect_error(&mut raw).code, ErrorCode::BadRequest);
    assert_still_usable(&mut raw);

    // Valid MessagePack of the wrong shape.
    for value in [
        serde_json::json!([1, 2, 3]),
        serde_json::json!(42),
        serde_json::json!("request"),
        serde_json::json!({"id": 1, "ops": []}),
        serde_json::json!({"type": "launch"}),
        serde_json::json!({"type": 7}),
        serde_json::json!({"type": "request", "ops": [{"op": "ping"}]}),
        serde_json::json!({"type": "request", "id": "one", "ops": []}),
        serde_json::json!({"type": "cancel"}),
    ] {
        raw.send(&value);
        let e = expect_error(&mut raw);
        assert_eq!(e.code, ErrorCode::BadRequest, "{value}: {e:?}");
        assert!(e.op_index.is_none());
    }
    assert_still_usable(&mut raw);

    // Nested 10 000 deep.
    let mut deep = vec![0x91u8; 10_000];
    deep.push(0xc0);
    raw.send_body(&deep);
    assert_eq!(expect_error(&mut raw).code, ErrorCode::BadRequest);
    assert_still_usable(&mut raw);
}

#[test]
fn bad_requests_get_a_response_with_the_operation_index() {
    require_priv!();
    let helper = TestHelper::start_with(HelperOptions {
        args: vec!["--max-ops".into(), "5".into()],
        ..Default::default()
    });
    let mut raw = RawConn::handshake(&helper.socket);
    let request = |id: u64, ops: serde_json::Value| serde_json::json!({"type": "request", "id": id, "ops": ops});

    raw.send(&request(
        1,
        serde_json::json!([{"op": "ping"}, {"op": "teleport", "to": "mars"}]),
    ));
    let e = expect_failure(&mut raw, 1);
    assert_eq!((e.code, e.op_index), (ErrorCode::Unsupported, Some(1)));
    assert!(e.message.contains("\"teleport\""), "{}", e.message);

    raw.send(&request(
        2,
        serde_json::json!([{"op": "ns_create", "name": 5}]),
    ));
    let e = expect_failure(&mut raw, 2);
    assert_eq!((e.code, e.op_index), (ErrorCode::InvalidArgument, Some(0)));

    raw.send(&request(
        3,
        serde_json::json!([{"op": "ping", "delay_ms": "soon"}]),
    ));
    assert_eq!(expect_failure(&mut raw, 3).code, ErrorCode::InvalidArgument);

    raw.send(&request(
        4,
        serde_json::json!([{"op": "ping"}, {"op": "ns_delete"}]),
    ));
    let e = expect_failure(&mut raw, 4);
    assert_eq!((e.code, e.op_index), (ErrorCode::InvalidArgument, Some(1)));
    assert!(e.message.contains("name"), "{}", e.message);

    raw.send(&serde_json::json!({"type": "request", "id": 5, "atomic": "yes", "ops": []}));
    assert_eq!(expect_failure(&mut raw, 5).code, ErrorCode::BadRequest);

    raw.send(&request(
        6,
        serde_json::Value::Array(vec![serde_json::json!({"op": "ping"}); 6]),
    ));
    let e = expect_failure(&mut raw, 6);
    assert_eq!(e.code, ErrorCode::BadRequest);
    assert!(
        e.message.contains("6 operations") && e.message.contains("limit is 5"),
        "{}",
        e.message
    );

    raw.send(&request(
        7,
        serde_json::json!([{"op": "ping", "delay_ms": 60_001}]),
    ));
    let e = expect_failure(&mut raw, 7);
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(e.message.contains("60001"), "{}", e.message);

    raw.send(&request(8, serde_json::json!([])));
    assert!(
        matches!(raw.recv(), Some(ServerMessage::Response(r)) if r.id == 8 && r.error.is_none() && r.results.is_empty())
    );
    assert_still_usable(&mut raw);
}

#[test]
fn hostile_names_are_refused_before_anything_runs() {
    require_priv!();
    let helper = TestHelper::start();
    let mut raw = RawConn::handshake(&helper.socket);
    let long = "n".repeat(300);
    let cases = [
        "../x",
        "",
        long.as_str(),
        "a/b",
        "a\0b",
        ".",
        "..",
        "-rf",
        "/etc",
        "x y",
    ];
    for (i, bad) in cases.iter().enumerate() {
        let id = 100 + i as u64;
        let ok = helper.ns(&format!("ok{i}"));
        let ops =
            serde_json::json!([{"op": "ns_create", "name": ok}, {"op": "ns_create", "name": bad}]);
        raw.send(&serde_json::json!({"type": "request", "id": id, "ops": ops}));
        let e = expect_failure(&mut raw, id);
        assert_eq!(
            (e.code, e.op_index),
            (ErrorCode::InvalidArgument, Some(1)),
            "{bad:?}: {e:?}"
        );
        assert!(
            e.message.contains("invalid namespace name"),
            "{}",
            e.message
        );
        let shown = format!("{:?}", &bad[..bad.len().min(60)]);
        assert!(
            e.message.contains(shown.trim_end_matches('"')),
            "{bad:?} not named in {}",
            e.message
        );
        // Nothing ran: not even the valid first operation.
        assert!(!ip_netns_list().contains(&ok));
    }
    // Names of namespaces the helper does not own: the root namespace's handles and others.
    for name in ["1", "default", "init"] {
        let ops = serde_json::json!([{"op": "ns_delete", "name": name}]);
        raw.send(&serde_json::json!({"type": "request", "id": 1, "ops": ops}));
        let e = expect_failure(&mut raw, 1);
        assert!(
            matches!(e.code, ErrorCode::NotFound | ErrorCode::NotManaged),
            "{name}: {e:?}"
        );
    }
    assert_still_usable(&mut raw);
    helper.client().ping().unwrap();
}
