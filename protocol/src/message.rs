//! The messages of a connection: the handshake, requests, responses, progress and errors.
//!
//! Every message is a MessagePack map whose `"type"` key names its kind; the other keys are
//! the fields of the struct below. Unknown keys are ignored, so a newer peer may add fields.

use serde::{Deserialize, Serialize};

use crate::error::WireError;
use crate::ops::{Op, OpResult};
use crate::version::ProtocolVersion;

/// A message from a client to the helper.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// The first message of every connection. Must never change shape.
    Hello(Hello),
    /// A batch of operations.
    Request(Request),
    /// Stop a request that is still running.
    Cancel(Cancel),
}

impl ClientMessage {
    /// The wire names of the client message types.
    pub const TYPES: [&'static str; 3] = ["hello", "request", "cancel"];
}

/// A message from the helper to a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The answer to a valid `hello` from an authorized peer.
    Welcome(Welcome),
    /// The final answer to a request.
    Response(Response),
    /// Progress of a request that asked for it.
    Event(Event),
    /// A connection-level error that belongs to no request (a refused handshake, a frame
    /// that could not be decoded far enough to find its request id). The fields are those
    /// of [`WireError`]; after a handshake error the helper closes the connection.
    Error(WireError),
}

/// The client's greeting.
///
/// Since protocol 1.0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The protocol version the client speaks; the major must equal the helper's.
    pub protocol: ProtocolVersion,
    /// The client's name and version, e.g. `"tsimctl/0.1.0"`; logged, nothing else.
    #[serde(default)]
    pub client: String,
}

/// The helper's answer to `hello`.
///
/// Since protocol 1.0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The protocol version the helper speaks.
    pub protocol: ProtocolVersion,
    /// The helper's own version, e.g. `"0.1.0"`.
    pub helper_version: String,
    /// The limits in force on this connection.
    pub limits: Limits,
    /// The peer as the kernel reported it to the helper.
    pub peer: PeerInfo,
}

/// Limits a client must respect; exceeding one gets an error, never a crash.
///
/// Since protocol 1.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest frame body accepted, in bytes.
    pub max_frame: u32,
    /// Most operations in one request.
    pub max_ops: u32,
    /// Most requests running at once on one connection; further requests wait unread.
    pub max_in_flight: u32,
    /// Most concurrent connections the helper serves.
    pub max_connections: u32,
}

/// The peer's credentials as the helper sees them (`SO_PEERCRED`, `SO_PEERGROUPS`).
///
/// Since protocol 1.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// The peer's user id.
    pub uid: u32,
    /// The peer's primary group id.
    pub gid: u32,
    /// The peer's process id, or 0 when the transport has none (stdio over a pipe).
    pub pid: u32,
    /// Whether the peer may use the helper (root, or a member of the configured group).
    pub authorized: bool,
    /// Whether the peer may act on objects other users own (root, or the admin group).
    pub admin: bool,
}

/// A batch of operations, run in order.
///
/// Since protocol 1.0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Chosen by the client, unique among its requests in flight on this connection; the
    /// response and events carry it back.
    pub id: u64,
    /// The operations, run in order. A failure stops the batch.
    pub ops: Vec<Op>,
    /// When true and an operation fails, everything the earlier operations did is undone, in
    /// reverse order, before the response is sent.
    #[serde(default)]
    pub atomic: bool,
    /// When true, the helper sends `event` messages while the batch runs.
    #[serde(default)]
    pub progress: bool,
}

/// Ask the helper to stop request `id`. An atomic request is rolled back; a request that
/// already finished is not affected. There is no direct answer: the request's own response
/// carries `cancelled`.
///
/// Since protocol 1.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancel {
    /// The request to stop.
    pub id: u64,
}

/// The final answer to a request.
///
/// On success `results` has one entry per operation and `error` is absent. On failure `error`
/// says what failed (with `op_index`), and `results` holds the results of the operations that
/// completed and remain in effect: those before the failing one in a non-atomic request, none
/// in an atomic one (they were undone).
///
/// Since protocol 1.0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// The request's id.
    pub id: u64,
    /// Results of the operations, in order.
    #[serde(default)]
    pub results: Vec<OpResult>,
    /// Present when the request failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<WireError>,
}

/// Progress of a running request, sent only when the request asked for it.
///
/// Since protocol 1.0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The request's id.
    pub id: u64,
    /// Operations (or steps) completed.
    pub done: u32,
    /// Operations (or steps) in all.
    pub total: u32,
    /// What is being done now, e.g. the operation's name.
    pub stage: String,
}
