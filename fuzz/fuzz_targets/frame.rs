//! Fuzz target `frame`: arbitrary bytes as a frame body and as a stream of frames.
//!
//! * The whole input as one body: decoded as a `ClientMessage` and as a `ServerMessage`;
//!   what decodes must round-trip (`decode(encode(x)) == x`, stable bytes, frame header
//!   agreeing with the body); a client body that does not decode is explained by
//!   `diagnose`, as the helper does, and the diagnosis must be coherent.
//! * The input as a stream: split by `body_len` headers and, at the same time, by the
//!   helper's own `FrameCodec` fed in small pieces; both must find the same frames.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;
use tsim_fuzz::round_trip;
use tsim_helper::codec::{FrameCodec, FrameError};
use tsim_protocol::diagnose::diagnose;
use tsim_protocol::error::ErrorCode;
use tsim_protocol::frame::{body_len, decode_body};
use tsim_protocol::version::{HANDSHAKE_MAX_FRAME, HEADER_LEN};
use tsim_protocol::{ClientMessage, ServerMessage};

/// The frame limit used for the stream: the pre-handshake one, so long inputs hit it.
const MAX: u32 = HANDSHAKE_MAX_FRAME;

fn body(data: &[u8]) {
    match decode_body::<ClientMessage>(data) {
        Ok(msg) => round_trip(&msg),
        Err(_) => {
            let d = diagnose(data);
            assert!(!d.error.message.is_empty(), "an empty diagnosis");
            assert!(
                matches!(
                    d.error.code,
                    ErrorCode::BadRequest | ErrorCode::InvalidArgument | ErrorCode::Unsupported
                ),
                "unexpected code {:?}",
                d.error.code
            );
            if d.error.op_index.is_some() {
                assert!(d.request_id.is_some(), "an op index without a request id");
            }
        }
    }
    if let Ok(msg) = decode_body::<ServerMessage>(data) {
        round_trip(&msg);
    }
}

/// Frames as `body_len` cuts them: (body start, body length), until a header is refused or
/// the input ends inside a frame.
fn frames_by_header(data: &[u8]) -> (Vec<(usize, usize)>, bool) {
    let mut out = Vec::new();
    let mut at = 0;
    while data.len() - at >= HEADER_LEN {
        let header: [u8; HEADER_LEN] = data[at..at + HEADER_LEN].try_into().expect("4 bytes");
        let Ok(len) = body_len(header, MAX) else {
            return (out, true);
        };
        if data.len() - at - HEADER_LEN < len {
            break;
        }
        out.push((at + HEADER_LEN, len));
        at += HEADER_LEN + len;
    }
    (out, false)
}

fn stream(data: &[u8]) {
    let (expected, too_large) = frames_by_header(data);
    let mut codec = FrameCodec::new(MAX);
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    let mut refused = false;
    // Feed the codec in pieces whose sizes come from the input itself, as a socket would.
    let step = 1 + usize::from(data.first().copied().unwrap_or(0) % 7);
    'feed: for piece in data.chunks(step) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => got.push(frame),
                Ok(None) => break,
                Err(FrameError::TooLarge { len, max }) => {
                    assert!(len > u64::from(max), "refused {len} <= {max}");
                    refused = true;
                    break 'feed;
                }
                Err(FrameError::Io(e)) => panic!("the codec failed: {e}"),
            }
        }
    }
    assert_eq!(
        refused, too_large,
        "codec and body_len disagree on the limit"
    );
    assert_eq!(
        got.len(),
        expected.len(),
        "codec and body_len cut different frames"
    );
    for (frame, (start, len)) in got.iter().zip(&expected) {
        assert_eq!(&frame[..], &data[*start..start + len]);
        body(frame);
    }
}

fuzz_target!(|data: &[u8]| {
    body(data);
    stream(data);
});
