//! Wire protocol of tsim-helper: messages, operations, validated names, error codes, framing.
//!
//! This crate is pure: it holds serde types, framing and version constants, and does no I/O.
//! It is the only place where types that cross the wire are defined. `PROTOCOL.md` next to
//! this crate is the normative description for clients written in other languages.

#![deny(missing_docs)]

mod bounded;
pub mod diagnose;
pub mod error;
pub mod frame;
pub mod message;
pub mod names;
pub mod naming;
pub mod net;
pub mod ops;
pub mod topology;
pub mod version;
mod walk;

pub use error::{ErrorCode, ProtocolError, WireError};
pub use message::{
    Cancel, ClientMessage, Event, Hello, Limits, PeerInfo, Request, Response, ServerMessage,
    Welcome,
};
pub use names::{Cidr, IfName, InvalidValue, NsName, Tag};
pub use ops::{Op, OpResult};
pub use version::ProtocolVersion;
