//! The helper's error type for operations, and its mapping to the stable wire codes.

use tsim_protocol::{ErrorCode, WireError};

use crate::netlink::NetlinkError;
use crate::netns::NetnsError;
use crate::state::StateError;

/// Why an operation failed. Each variant maps to one [`ErrorCode`]; the message names the
/// offending value.
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    /// The arguments are invalid.
    #[error("{0}")]
    InvalidArgument(String),
    /// The named object does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The named object exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// The request contradicts existing state (a host's name with another address).
    #[error("{0}")]
    Conflict(String),
    /// The named namespace exists but is not ours.
    #[error("{0}")]
    NotManaged(String),
    /// The caller may not act on the object.
    #[error("{0}")]
    PermissionDenied(String),
    /// Refused by policy.
    #[error("{0}")]
    NotAllowed(String),
    /// The object is in the middle of another request's change.
    #[error("{0}")]
    Busy(String),
    /// The caller's quota would be exceeded.
    #[error("{0}")]
    QuotaExceeded(String),
    /// Something did not finish in time.
    #[error("{0}")]
    Timeout(String),
    /// The kernel or a tool failed in a way that is not the caller's fault.
    #[error("{0}")]
    Kernel(String),
    /// A bug or an unexpected condition.
    #[error("{0}")]
    Internal(String),
    /// A needed program or kernel feature is missing.
    #[error("{0}")]
    Unsupported(String),
    /// The request was cancelled.
    #[error("The request was cancelled")]
    Cancelled,
    /// A namespace step failed.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// A netlink request failed.
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    /// The state directory could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
}

impl HelperError {
    /// The stable wire code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            HelperError::InvalidArgument(_) => ErrorCode::InvalidArgument,
            HelperError::NotFound(_) => ErrorCode::NotFound,
            HelperError::AlreadyExists(_) => ErrorCode::AlreadyExists,
            HelperError::Conflict(_) => ErrorCode::Conflict,
            HelperError::NotManaged(_) => ErrorCode::NotManaged,
            HelperError::PermissionDenied(_) => ErrorCode::PermissionDenied,
            HelperError::NotAllowed(_) => ErrorCode::NotAllowed,
            HelperError::Busy(_) => ErrorCode::Busy,
            HelperError::QuotaExceeded(_) => ErrorCode::QuotaExceeded,
            HelperError::Unsupported(_) => ErrorCode::Unsupported,
            HelperError::Timeout(_) => ErrorCode::Timeout,
            HelperError::Kernel(_) => ErrorCode::Kernel,
            HelperError::Internal(_) => ErrorCode::Internal,
            HelperError::Cancelled => ErrorCode::Cancelled,
            HelperError::Netns(e) => e.code(),
            HelperError::Netlink(e) => e.code,
            HelperError::State(_) => ErrorCode::Internal,
        }
    }

    /// The error as sent on the wire: the code, and the message with its causes.
    pub fn to_wire(&self) -> WireError {
        WireError::new(self.code(), chain(self))
    }
}

/// Joins an error and its sources into one line: "Outer: inner: innermost".
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_joins_sources() {
        let io = std::io::Error::from_raw_os_error(libc::EPERM);
        let err = HelperError::from(StateError::Write {
            path: "/x/y".into(),
            source: io,
        });
        assert_eq!(err.code(), ErrorCode::Internal);
        let wire = err.to_wire();
        assert!(
            wire.message
                .starts_with("Cannot write /x/y: Operation not permitted"),
            "{}",
            wire.message
        );
    }
}
