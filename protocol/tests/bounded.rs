//! Bounded decoding, measured: a counting allocator shows what decoding a hostile frame
//! allocates. The operation limit holds before any operation is decoded, unknown keys are
//! skipped without being kept, and the bounded decoder agrees with the plain one.

#![allow(
    unsafe_code,
    reason = "a global allocator is an unsafe trait; this one only counts"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use tsim_protocol::frame::{decode_body, decode_client_message, encode_body};
use tsim_protocol::{ClientMessage, ErrorCode, Op};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only counters are kept.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: the caller's layout is passed on as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: ptr was allocated by System with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The tests measure one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Runs `f` and returns its result and the most it had allocated at once beyond what was
/// allocated before.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    (out, PEAK.load(Ordering::Relaxed).saturating_sub(base))
}

/// `{"type": "request", "id": ID, "ops": [OP × count]}`, built by hand so that the test
/// itself does not hold millions of values.
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

const MIB: usize = 1 << 20;

/// Finding 3: one 16 MiB frame of 1.8 M `{"op": "ping"}` took the helper from 86 MB to 706 MB
/// (the old decoder built every operation, through serde's buffer, before counting them).
/// Now it is refused with its id, and decoding it allocates almost nothing.
#[test]
fn a_frame_of_too_many_pings_is_refused_without_allocating_for_them() {
    let _serial = SERIAL.lock().unwrap();
    let ping = encode_body(&serde_json::json!({"op": "ping"})).unwrap();
    let body = request_body(5, &ping, 1_800_000);
    assert!(
        body.len() > 16_000_000 && body.len() <= 16 * MIB,
        "{}",
        body.len()
    );
    let (decoded, peak) = peak_of(|| decode_client_message(&body, 10_000));
    let d = decoded.unwrap_err();
    assert_eq!(
        (d.request_id, d.error.code),
        (Some(5), ErrorCode::BadRequest)
    );
    assert!(
        d.error.message.contains("1800000 operations") && d.error.message.contains("10000"),
        "{}",
        d.error.message
    );
    assert!(peak < 64 * 1024, "decoding allocated {peak} bytes");
}

/// Unknown keys cost nothing: 10 000 pings (the limit) each carrying an unknown array that
/// fills a 16 MiB frame decode into the operations alone. Through serde's internally tagged
/// enums each array would be buffered, at about 32 bytes per element (over 500 MiB here).
#[test]
fn unknown_keys_are_skipped_not_kept() {
    let _serial = SERIAL.lock().unwrap();
    let pad = vec![0u8; 1600];
    let op = encode_body(&serde_json::json!({"op": "ping", "future": pad})).unwrap();
    let body = request_body(6, &op, 10_000);
    assert!(
        body.len() > 16_000_000 && body.len() <= 16 * MIB,
        "{}",
        body.len()
    );
    let (decoded, peak) = peak_of(|| decode_client_message(&body, 10_000));
    let Ok(ClientMessage::Request(request)) = decoded else {
        panic!("does not decode: {decoded:?}");
    };
    assert_eq!(request.ops.len(), 10_000);
    let ops_size = 10_000 * std::mem::size_of::<Op>();
    assert!(
        peak < ops_size + MIB,
        "decoding allocated {peak} bytes for {ops_size} bytes of operations"
    );
}

/// The bounded decoder gives what the plain one gives, for every kind of message and any key
/// order.
#[test]
fn the_bounded_decoder_agrees_with_the_plain_one() {
    let _serial = SERIAL.lock().unwrap();
    let messages = [
        serde_json::json!({"type": "hello", "protocol": [1, 1], "client": "x/1"}),
        serde_json::json!({"type": "cancel", "id": 3}),
        serde_json::json!({"type": "request", "id": 1, "atomic": true, "ops": [
            {"op": "ping", "delay_ms": 5}, {"op": "status"}, {"op": "ns_create", "name": "a", "tag": "t"},
            {"op": "route_add", "ns": "a", "dst": "10.0.0.0/8", "via": "10.1.1.1", "table": "main"},
            {"op": "svc_start", "ns": "a", "ip": "0.0.0.0", "port": 7, "proto": "udp"},
            {"op": "probe_reach", "from": ["a", "b"], "dst": "10.0.0.1", "ports": "22,53/udp"},
            {"op": "net_apply", "topology": {"bridges": [], "routers": []}}]}),
    ];
    for msg in messages {
        let body = encode_body(&msg).unwrap();
        let plain = decode_body::<ClientMessage>(&body).unwrap();
        let bounded = decode_client_message(&body, 100).unwrap();
        assert_eq!(plain, bounded, "{msg}");
    }
}

/// Lists are capped from their header: 16 M empty nexthops (one byte each on the wire, 56
/// bytes each in memory) are refused before any is decoded.
#[test]
fn a_list_of_tiny_elements_is_refused_from_its_header() {
    let _serial = SERIAL.lock().unwrap();
    let mut op = vec![0x84];
    for s in [
        "op",
        "route_add",
        "ns",
        "a",
        "dst",
        "10.0.0.0/8",
        "nexthops",
    ] {
        op.extend(encode_body(&s).unwrap());
    }
    op.push(0xdd);
    op.extend(16_000_000u32.to_be_bytes());
    op.resize(op.len() + 16_000_000, 0x80);
    let body = request_body(3, &op, 1);
    let (decoded, peak) = peak_of(|| decode_client_message(&body, 10_000));
    let d = decoded.unwrap_err();
    assert_eq!(
        (d.request_id, d.error.code, d.error.op_index),
        (Some(3), ErrorCode::InvalidArgument, Some(0))
    );
    assert!(
        d.error.message.contains("more than the 1024"),
        "{}",
        d.error.message
    );
    assert!(peak < 64 * 1024, "decoding allocated {peak} bytes");
}
