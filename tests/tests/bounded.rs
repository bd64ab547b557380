//! Bounded decoding and bounded CPU, end to end: the exact reproductions of issue 14's
//! findings 3 (memory amplification by a frame of many operations) and 4 (a port list that
//! took seconds of a runtime worker), with the helper's memory read from `/proc`.

use std::time::Duration;

use tsim_protocol::frame::encode_body;
use tsim_protocol::{ErrorCode, ServerMessage, WireError};
use tsim_tests::{RawConn, TestHelper, require_priv};

/// A field of `/proc/<pid>/status`, in kB.
fn proc_status_kb(pid: u32, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the helper runs");
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
}

/// `{"type": "request", "id": ID, "ops": [OP × count]}`, built by hand.
fn request_body(id: u8, op: &[u8], count: u32) -> Vec<u8> {
    let mut body = vec![0x83];
    body.extend(encode_body(&"type").unwrap());
    body.extend(encode_body(&"request").unwrap());
    body.extend(encode_body(&"id").unwrap());
    body.push(id);
    body.extend(encode_body(&"ops").unwrap());
    body.push(0xdd);
    body.extend(count.to_be_bytes());
    body.reserve(op.len() * count as usize);
    for _ in 0..count {
        body.extend_from_slice(op);
    }
    body
}

fn expect_failure(raw: &mut RawConn, id: u64) -> WireError {
    match raw.recv() {
        Some(ServerMessage::Response(r)) if r.id == id => r.error.expect("an error"),
        other => panic!("expected a failed response to {id}, got {other:?}"),
    }
}

/// Finding 3: one 16 MiB frame of 1.8 M `{"op": "ping"}` took the helper's VmHWM from 86 MB
/// to 706 MB, and eight at once to 1.4 GB. Now each gets `bad_request` with its id, and
/// eight at once on eight connections leave the peak under 200 MiB.
#[test]
fn eight_frames_of_too_many_pings_stay_under_200_mib() {
    require_priv!();
    let helper = TestHelper::start();
    let pid = helper.pid();
    let ping = encode_body(&serde_json::json!({"op": "ping"})).unwrap();
    let body = request_body(42, &ping, 1_800_000);
    assert!(body.len() > 16_000_000 && body.len() <= 16 << 20);
    let before = proc_status_kb(pid, "VmHWM");
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..8)
            .map(|_| {
                let body = &body;
                let socket = &helper.socket;
                s.spawn(move || {
                    let mut raw = RawConn::handshake(socket);
                    raw.set_timeout(Duration::from_secs(60));
                    raw.send_body(body);
                    let e = expect_failure(&mut raw, 42);
                    assert_eq!((e.code, e.op_index), (ErrorCode::BadRequest, None), "{e:?}");
                    assert!(
                        e.message.contains("1800000 operations")
                            && e.message.contains("limit is 10000"),
                        "{}",
                        e.message
                    );
                    // The connection goes on.
                    raw.send(
                        &serde_json::json!({"type": "request", "id": 1, "ops": [{"op": "ping"}]}),
                    );
                    match raw.recv() {
                        Some(ServerMessage::Response(r)) => assert!(r.error.is_none(), "{r:?}"),
                        other => panic!("no answer to a ping: {other:?}"),
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
    });
    let peak = proc_status_kb(pid, "VmHWM");
    eprintln!("helper VmHWM: {before} kB before, {peak} kB after 8 frames of 16 MiB");
    assert!(
        peak < 200 * 1024,
        "VmHWM {peak} kB (was {before} kB before the frames)"
    );
    helper.client().ping().unwrap();
}

/// Finding 4: two `probe_reach` requests whose `ports` is `"1-100" + ",1-100"` × 2.7 M made a
/// root ping wait 8.5 s. Now each is `invalid_argument`, naming the value and the limit,
/// and a ping sent meanwhile is answered.
#[test]
fn a_hostile_port_list_is_refused_and_a_ping_is_answered() {
    require_priv!();
    let helper = TestHelper::start();
    let mut ports = "1-100".to_owned();
    ports.push_str(&",1-100".repeat(2_700_000));
    let request = |id: u64| {
        encode_body(&serde_json::json!({"type": "request", "id": id, "ops": [
            {"op": "probe_reach", "from": [helper.ns("src")], "dst": "10.0.0.1", "ports": ports}]}))
        .unwrap()
    };
    let bodies = [request(1), request(2)];
    std::thread::scope(|s| {
        let attackers: Vec<_> = bodies
            .iter()
            .enumerate()
            .map(|(i, body)| {
                let socket = &helper.socket;
                s.spawn(move || {
                    let mut raw = RawConn::handshake(socket);
                    raw.set_timeout(Duration::from_secs(60));
                    raw.send_body(body);
                    let e = expect_failure(&mut raw, i as u64 + 1);
                    assert_eq!(
                        (e.code, e.op_index),
                        (ErrorCode::InvalidArgument, Some(0)),
                        "{e:?}"
                    );
                    assert!(
                        e.message.contains("ports")
                            && e.message.contains("\"1-100,1-100")
                            && e.message.contains("at most 1024 bytes"),
                        "{}",
                        e.message
                    );
                    assert!(e.message.len() < 300, "the message quotes too much");
                })
            })
            .collect();
        // Root's ping, meanwhile, is answered.
        let client = helper.client();
        for _ in 0..20 {
            client.ping().unwrap();
        }
        for a in attackers {
            a.join().unwrap();
        }
    });
    helper.client().ping().unwrap();
}

/// A request of many immediate operations (CPU only, nothing in it yields) runs off the
/// runtime workers; it is answered in full, and so is a ping sent meanwhile.
#[test]
fn many_immediate_operations_are_answered_off_the_workers() {
    require_priv!();
    let helper = TestHelper::start();
    let mut raw = RawConn::handshake(&helper.socket);
    raw.set_timeout(Duration::from_secs(60));
    let ops = vec![serde_json::json!({"op": "ns_list"}); 2000];
    raw.send(&serde_json::json!({"type": "request", "id": 5, "ops": ops}));
    helper.client().ping().unwrap();
    match raw.recv() {
        Some(ServerMessage::Response(r)) => {
            assert!(r.id == 5 && r.error.is_none(), "{:?}", r.error);
            assert_eq!(r.results.len(), 2000);
        }
        other => panic!("no answer: {other:?}"),
    }
    raw.send(&serde_json::json!({"type": "request", "id": 6, "ops": [{"op": "ping"}]}));
    assert!(
        matches!(raw.recv(), Some(ServerMessage::Response(r)) if r.id == 6 && r.error.is_none())
    );
}
