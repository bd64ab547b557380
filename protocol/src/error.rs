//! The closed set of error codes, the error body sent on the wire, and the crate's own errors.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a request (or a connection) failed. The set is closed: codes are added only with a new
/// protocol major version, so clients can match on them exhaustively.
///
/// On the wire each code is its `snake_case` name, e.g. `"not_managed"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The message could not be understood: not MessagePack, not a map, an unknown message
    /// type, a missing or mistyped envelope field, a frame over the size limit, or a message
    /// out of sequence (e.g. a request before `hello`).
    BadRequest,
    /// An operation's arguments are invalid: a bad name, CIDR or number, a missing field, a
    /// value out of range.
    InvalidArgument,
    /// The named object does not exist.
    NotFound,
    /// An object with that name already exists.
    AlreadyExists,
    /// The request contradicts existing state (e.g. the same host name with another address).
    Conflict,
    /// The named namespace exists but this helper does not manage it; it is never touched.
    NotManaged,
    /// The operation is refused by policy (e.g. a sysctl outside the allow-list).
    NotAllowed,
    /// The operation, or something it needs (a kernel driver, a newer protocol), is not
    /// available. Also the answer to an operation name the helper does not know.
    Unsupported,
    /// The caller is not allowed to connect, or not allowed to act on that object.
    PermissionDenied,
    /// A per-user quota would be exceeded.
    QuotaExceeded,
    /// A limit on concurrent work was reached (connections, requests in flight); try later.
    Busy,
    /// The request was cancelled by the client or by a helper shutdown.
    Cancelled,
    /// The operation did not finish in time.
    Timeout,
    /// The kernel refused the operation; the message carries its error.
    Kernel,
    /// A bug or an unexpected condition inside the helper.
    Internal,
    /// The client's protocol major version is not the helper's.
    UnsupportedVersion,
}

impl ErrorCode {
    /// Every code, in documentation order.
    pub const ALL: [ErrorCode; 16] = [
        ErrorCode::BadRequest,
        ErrorCode::InvalidArgument,
        ErrorCode::NotFound,
        ErrorCode::AlreadyExists,
        ErrorCode::Conflict,
        ErrorCode::NotManaged,
        ErrorCode::NotAllowed,
        ErrorCode::Unsupported,
        ErrorCode::PermissionDenied,
        ErrorCode::QuotaExceeded,
        ErrorCode::Busy,
        ErrorCode::Cancelled,
        ErrorCode::Timeout,
        ErrorCode::Kernel,
        ErrorCode::Internal,
        ErrorCode::UnsupportedVersion,
    ];

    /// The code's wire name, e.g. `"not_managed"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::NotFound => "not_found",
            ErrorCode::AlreadyExists => "already_exists",
            ErrorCode::Conflict => "conflict",
            ErrorCode::NotManaged => "not_managed",
            ErrorCode::NotAllowed => "not_allowed",
            ErrorCode::Unsupported => "unsupported",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::QuotaExceeded => "quota_exceeded",
            ErrorCode::Busy => "busy",
            ErrorCode::Cancelled => "cancelled",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Kernel => "kernel",
            ErrorCode::Internal => "internal",
            ErrorCode::UnsupportedVersion => "unsupported_version",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error as sent on the wire: in a `response` (with the failing operation's index) or in a
/// connection-level `error` frame (without one).
///
/// Since protocol 1.0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    /// The stable code; match on this, not on the message.
    pub code: ErrorCode,
    /// A human-readable message that names the offending value.
    pub message: String,
    /// The index of the operation that failed, when the error belongs to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op_index: Option<u32>,
}

impl WireError {
    /// An error that belongs to no operation.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            op_index: None,
        }
    }

    /// The same error, attributed to operation `index`.
    pub fn at(mut self, index: usize) -> Self {
        self.op_index = Some(u32::try_from(index).unwrap_or(u32::MAX));
        self
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.op_index {
            Some(i) => write!(f, "{} (op {}): {}", self.code, i, self.message),
            None => write!(f, "{}: {}", self.code, self.message),
        }
    }
}

impl std::error::Error for WireError {}

/// A failure to encode or decode a message or a frame.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The value could not be encoded as MessagePack.
    #[error("Cannot encode message")]
    Encode(#[source] rmp_serde::encode::Error),
    /// The bytes are not a valid message of the expected type.
    #[error("Cannot decode message")]
    Decode(#[source] rmp_serde::decode::Error),
    /// A frame is larger than the limit in force.
    #[error("Frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// The frame's length as announced or produced.
        len: u64,
        /// The limit in force.
        max: u32,
    },
}
