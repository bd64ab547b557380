//! Protocol version constants and the limits every peer must agree on.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The protocol major version. Peers with different majors refuse each other.
pub const MAJOR: u16 = 1;
/// The protocol minor version. A minor bump only adds (operations, optional fields).
pub const MINOR: u16 = 5;
/// The version this crate speaks.
pub const CURRENT: ProtocolVersion = ProtocolVersion {
    major: MAJOR,
    minor: MINOR,
};

/// Length of the frame header: a 4-byte big-endian body length.
pub const HEADER_LEN: usize = 4;
/// Default maximum frame body, in bytes (16 MiB).
pub const DEFAULT_MAX_FRAME: u32 = 16 * 1024 * 1024;
/// Maximum frame body before the handshake is complete (64 KiB), so an unauthenticated peer
/// cannot make the helper hold much memory.
pub const HANDSHAKE_MAX_FRAME: u32 = 64 * 1024;
/// Maximum nesting of MessagePack containers accepted when decoding.
pub const MAX_DEPTH: usize = 64;

/// A protocol version; on the wire a two-element array `[major, minor]`.
///
/// Since protocol 1.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(from = "(u16, u16)", into = "(u16, u16)")]
pub struct ProtocolVersion {
    /// Incompatible changes bump this.
    pub major: u16,
    /// Compatible additions bump this.
    pub minor: u16,
}

impl From<(u16, u16)> for ProtocolVersion {
    fn from((major, minor): (u16, u16)) -> Self {
        Self { major, minor }
    }
}

impl From<ProtocolVersion> for (u16, u16) {
    fn from(v: ProtocolVersion) -> Self {
        (v.major, v.minor)
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}
