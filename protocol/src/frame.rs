//! Framing: a 4-byte big-endian body length, then one MessagePack message encoded as a map
//! with string keys.
//!
//! Stream transports use these functions (or a length-delimited codec configured the same
//! way); the body encoding and decoding live here so every peer agrees on them.

use std::io::Cursor;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ProtocolError;

pub use crate::diagnose::decode_client_message;
use crate::version::{HEADER_LEN, MAX_DEPTH};

/// Encodes a message body: MessagePack with structs as maps keyed by field name.
pub fn encode_body<T: Serialize + ?Sized>(msg: &T) -> Result<Vec<u8>, ProtocolError> {
    rmp_serde::to_vec_named(msg).map_err(ProtocolError::Encode)
}

/// Encodes a whole frame (header and body), refusing a body longer than `max` bytes.
pub fn encode_frame<T: Serialize + ?Sized>(msg: &T, max: u32) -> Result<Vec<u8>, ProtocolError> {
    let mut buf = vec![0u8; HEADER_LEN];
    rmp_serde::encode::write_named(&mut buf, msg).map_err(ProtocolError::Encode)?;
    let len = buf.len() - HEADER_LEN;
    let len32 = u32::try_from(len).ok().filter(|&l| l <= max);
    let Some(len32) = len32 else {
        return Err(ProtocolError::FrameTooLarge {
            len: len as u64,
            max,
        });
    };
    buf[..HEADER_LEN].copy_from_slice(&len32.to_be_bytes());
    Ok(buf)
}

/// Reads a frame header and returns the body length, refusing one over `max` before anything
/// is allocated for it.
pub fn body_len(header: [u8; HEADER_LEN], max: u32) -> Result<usize, ProtocolError> {
    let len = u32::from_be_bytes(header);
    if len > max {
        return Err(ProtocolError::FrameTooLarge {
            len: u64::from(len),
            max,
        });
    }
    Ok(len as usize)
}

/// Decodes a message body, with nesting limited to [`MAX_DEPTH`] and no trailing bytes.
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ProtocolError> {
    let mut de = rmp_serde::Deserializer::new(Cursor::new(body));
    de.set_max_depth(MAX_DEPTH);
    let value = T::deserialize(&mut de).map_err(ProtocolError::Decode)?;
    let used = de.position();
    if used != body.len() as u64 {
        let msg = format!(
            "{} trailing bytes after the message",
            body.len() as u64 - used
        );
        return Err(ProtocolError::Decode(rmp_serde::decode::Error::Syntax(msg)));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Cancel;

    #[test]
    fn header_round_trip_and_limit() {
        let frame = encode_frame(&Cancel { id: 7 }, 1024).unwrap();
        let header: [u8; 4] = frame[..4].try_into().unwrap();
        assert_eq!(body_len(header, 1024).unwrap(), frame.len() - 4);
        let err = body_len([0xff, 0xff, 0xff, 0xff], 16 << 20).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Frame of 4294967295 bytes exceeds the limit of 16777216 bytes"
        );
        assert!(encode_frame(&"x".repeat(100), 50).is_err());
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut body = encode_body(&Cancel { id: 1 }).unwrap();
        assert_eq!(decode_body::<Cancel>(&body).unwrap(), Cancel { id: 1 });
        body.push(0xc0);
        let err = decode_body::<Cancel>(&body).unwrap_err();
        assert!(format!("{:?}", err).contains("1 trailing bytes"), "{err:?}");
    }

    #[test]
    fn deep_nesting_is_refused() {
        // 10 000 nested one-element arrays: must fail cleanly, not overflow the stack.
        let mut body = vec![0x91u8; 10_000];
        body.push(0xc0);
        assert!(decode_body::<rmpv::Value>(&body).is_err());
    }
}
