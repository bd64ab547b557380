//! Fuzz target `request`: request and operation decoding, from raw bytes and from
//! structured input.
//!
//! * Raw: the input as one MessagePack value (`rmpv::Value`), then the value as an `Op`, a
//!   `Request` and a `ClientMessage`, the way `diagnose` reads a failed body. What decodes
//!   must round-trip, and the body decoder and the value decoder must agree.
//! * Structured: the same bytes drive a generator of requests whose operations are the
//!   golden ones changed in a few places, or maps of the protocol's own field names,
//!   operation names and words (so the fuzzer reaches each operation's validation quickly).
//!   The encoded request is decoded as the helper does; what decodes must round-trip, and a
//!   failure must be diagnosed with the request's id and an operation index inside the batch.

#![no_main]

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use rmpv::Value;
use tsim_fuzz::{encode_value, request, round_trip};
use tsim_protocol::diagnose::decode_client_message;
use tsim_protocol::frame::decode_body;
use tsim_protocol::{ClientMessage, Op, OpResult, Request};

/// Decodes `value` as `T` through `rmpv`, round-tripping what decodes.
fn from_value<T>(value: &Value) -> Option<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let decoded = rmpv::ext::from_value::<T>(value.clone()).ok()?;
    round_trip(&decoded);
    Some(decoded)
}

fn raw(data: &[u8]) {
    let Ok(value) = decode_body::<Value>(data) else {
        return;
    };
    from_value::<Op>(&value);
    from_value::<OpResult>(&value);
    from_value::<Request>(&value);
    let by_value = from_value::<ClientMessage>(&value);
    if let Ok(by_body) = decode_body::<ClientMessage>(data) {
        assert_eq!(
            by_value.as_ref(),
            Some(&by_body),
            "the body decodes but its value does not decode the same"
        );
    }
    if let Value::Map(entries) = &value {
        let ops = entries
            .iter()
            .find(|(k, _)| k.as_str() == Some("ops"))
            .and_then(|(_, v)| v.as_array());
        for op in ops.into_iter().flatten() {
            from_value::<Op>(op);
        }
    }
}

fn structured(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(value) = request(&mut u) else {
        return;
    };
    let body = encode_value(&value);
    // Decoded as the helper decodes it (the bounded decoder).
    match decode_client_message(&body, usize::MAX) {
        Ok(msg) => round_trip(&msg),
        Err(d) => {
            let Value::Map(entries) = &value else {
                unreachable!("the generator makes maps")
            };
            let field = |key: &str| entries.iter().find(|(k, _)| k.as_str() == Some(key));
            let is_request = field("type").and_then(|(_, v)| v.as_str()) == Some("request");
            let id = field("id")
                .and_then(|(_, v)| v.as_u64())
                .filter(|_| is_request);
            assert_eq!(d.request_id, id, "diagnosis lost the request id: {d:?}");
            if let (Some(i), Some((_, Value::Array(ops)))) = (d.error.op_index, field("ops")) {
                assert!((i as usize) < ops.len(), "op index {i} out of the batch");
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    raw(data);
    structured(data);
});
