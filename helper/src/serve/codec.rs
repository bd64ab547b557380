//! The frame codec: tokio-util's length-delimited codec set up for the protocol (4-byte
//! big-endian length), plus a check that reports an oversized frame's announced length.

use std::io;

use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};
use tsim_protocol::version::HEADER_LEN;

/// A framing failure.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The header announced a body over the limit; the stream cannot be resynchronised.
    #[error("Frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Announced length.
        len: u64,
        /// Limit in force.
        max: u32,
    },
    /// The transport failed, or the stream ended inside a frame.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Length-prefixed frames with a maximum body size that can change after the handshake.
#[derive(Debug)]
pub struct FrameCodec {
    inner: LengthDelimitedCodec,
    max: u32,
    /// Whether the next bytes are a frame header (the inner codec has not consumed it yet).
    at_header: bool,
}

impl FrameCodec {
    /// Frames with bodies of at most `max` bytes.
    pub fn new(max: u32) -> Self {
        let inner = LengthDelimitedCodec::builder()
            .big_endian()
            .length_field_length(HEADER_LEN)
            .max_frame_length(max as usize)
            .new_codec();
        Self {
            inner,
            max,
            at_header: true,
        }
    }

    /// Changes the maximum body size.
    pub fn set_max(&mut self, max: u32) {
        self.max = max;
        self.inner.set_max_frame_length(max as usize);
    }
}

impl Decoder for FrameCodec {
    type Item = BytesMut;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        let header_available = src.len() >= HEADER_LEN;
        if self.at_header && header_available {
            let len = u32::from_be_bytes(src[..HEADER_LEN].try_into().expect("4 bytes"));
            if len > self.max {
                return Err(FrameError::TooLarge {
                    len: u64::from(len),
                    max: self.max,
                });
            }
        }
        let frame = self.inner.decode(src)?;
        // The inner codec consumes a header as soon as it has one, then waits for the body.
        self.at_header = frame.is_some() || (self.at_header && !header_available);
        Ok(frame)
    }
}

impl Encoder<Bytes> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, body: Bytes, dst: &mut BytesMut) -> Result<(), FrameError> {
        Ok(self.inner.encode(body, dst)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_oversized_before_buffering() {
        let mut codec = FrameCodec::new(10);
        let mut buf = BytesMut::from(&[0u8, 0, 0, 11][..]);
        let err = codec.decode(&mut buf).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Frame of 11 bytes exceeds the limit of 10 bytes"
        );
        let mut codec = FrameCodec::new(10);
        let mut buf = BytesMut::from(&[0u8, 0, 0, 2, 0xc0][..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(&[0xc0]);
        assert_eq!(&codec.decode(&mut buf).unwrap().unwrap()[..], &[0xc0, 0xc0]);
    }

    #[test]
    fn bodies_that_arrive_in_pieces() {
        // A body whose first bytes would read as a huge length must not be taken for a header.
        let mut codec = FrameCodec::new(100);
        let mut buf = BytesMut::from(&[0u8, 0, 0, 6, 0xff, 0xff][..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(&[0xff, 0xff]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(&[1, 2, 0, 0]);
        assert_eq!(
            &codec.decode(&mut buf).unwrap().unwrap()[..],
            &[0xff, 0xff, 0xff, 0xff, 1, 2]
        );
        buf.extend_from_slice(&[0]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(&[1, 7]);
        assert_eq!(&codec.decode(&mut buf).unwrap().unwrap()[..], &[7]);
        buf.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        assert!(codec.decode(&mut buf).is_err());
    }
}
