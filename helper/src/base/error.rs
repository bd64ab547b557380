//! The helper's error type for operations, and its mapping to the stable wire codes; with
//! the errors of the lower layers' steps (netlink, namespaces, the state directory), which
//! live here so that every layer can name them. `kernel::netlink`, `kernel::netns` and
//! `managed::state` re-export their own.

use std::io;
use std::path::PathBuf;

use nix::errno::Errno;
use tsim_protocol::{ErrorCode, NsName, WireError};

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
    /// A namespace that is not there: never made, or removed outside the helper (`not_found`).
    /// Callers that may meet one already gone (a sweep, a drain) decide on this variant.
    #[error("{message}")]
    NoNamespace {
        /// Its name.
        name: NsName,
        /// What happened, for the wire.
        message: String,
    },
    /// The kernel has no route to `dst` in namespace `ns` (`not_found`).
    #[error("{inner}")]
    NoRoute {
        /// The namespace looked in.
        ns: NsName,
        /// The destination.
        dst: std::net::IpAddr,
        /// The kernel's answer.
        inner: NetlinkError,
    },
    /// The kernel lacks the driver for a kind of link (`unsupported`).
    #[error("{inner}")]
    NoDriver {
        /// The kind of link, e.g. `dummy`.
        kind: String,
        /// The kernel's answer.
        inner: NetlinkError,
    },
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
            HelperError::NoNamespace { .. } | HelperError::NoRoute { .. } => ErrorCode::NotFound,
            HelperError::NoDriver { .. } => ErrorCode::Unsupported,
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

/// A failed netlink request: what was being done, where, and what the kernel said.
#[derive(Debug, Clone, thiserror::Error)]
#[error("Cannot {action} in namespace {ns}: {}", self.reason())]
pub struct NetlinkError {
    /// What was being done, e.g. "add route 10.2.0.0/16".
    pub action: String,
    /// The namespace.
    pub ns: NsName,
    /// The kernel's error number (positive), or 0 if the socket itself failed.
    pub errno: i32,
    /// The kernel's message from the extended ACK, if it gave one.
    pub kernel: Option<String>,
    /// The wire code.
    pub code: ErrorCode,
}

impl NetlinkError {
    pub(crate) fn new(action: String, ns: &NsName, errno: i32, kernel: Option<String>) -> Self {
        let code = match errno {
            libc::EEXIST => ErrorCode::AlreadyExists,
            libc::ENOENT | libc::ESRCH | libc::ENODEV | libc::EADDRNOTAVAIL => ErrorCode::NotFound,
            libc::EOPNOTSUPP => ErrorCode::Unsupported,
            _ => ErrorCode::Kernel,
        };
        Self {
            action,
            ns: ns.clone(),
            errno,
            kernel,
            code,
        }
    }

    /// The same error with another wire code.
    pub fn with_code(mut self, code: ErrorCode) -> Self {
        self.code = code;
        self
    }

    /// The same error with a clearer explanation replacing the kernel's.
    pub fn explained(mut self, explanation: impl Into<String>) -> Self {
        let kernel = self.kernel.take();
        let explanation = explanation.into();
        self.kernel = Some(match kernel {
            Some(k) => format!("{explanation} (the kernel says: {k})"),
            None => explanation,
        });
        self
    }

    fn reason(&self) -> String {
        let os = if self.errno == 0 {
            "the netlink socket failed".to_owned()
        } else {
            std::io::Error::from_raw_os_error(self.errno).to_string()
        };
        match &self.kernel {
            Some(k) => format!("{k} ({os})"),
            None => os,
        }
    }
}

/// A failed namespace step. Each variant names the step and the path or namespace.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// Something already exists at the namespace's path.
    #[error("Namespace {name:?} already exists under /run/netns")]
    Exists {
        /// The name.
        name: NsName,
    },
    /// The path holds a namespace other than the one we created.
    #[error("{path} is not the namespace this helper created under that name")]
    NotOurs {
        /// The path.
        path: PathBuf,
    },
    /// `/run/netns` could not be created.
    #[error("Cannot create {path}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// `/run/netns` could not be made a shared mount.
    #[error("Cannot make {path} a shared mount point")]
    MakeShared {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: Errno,
    },
    /// The mount point file could not be created.
    #[error("Cannot create the mount point {path}")]
    CreateMountPoint {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: Errno,
    },
    /// `unshare(CLONE_NEWNET)` failed.
    #[error("Cannot create a network namespace")]
    Unshare {
        /// The OS error.
        #[source]
        source: Errno,
    },
    /// The bind mount failed.
    #[error("Cannot bind-mount the namespace on {path}")]
    BindMount {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: Errno,
    },
    /// Unmounting failed.
    #[error("Cannot unmount {path}")]
    Unmount {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: Errno,
    },
    /// Removing the mount point failed.
    #[error("Cannot remove {path}")]
    Unlink {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Opening or inspecting the namespace's path failed.
    #[error("Cannot open {path}")]
    Open {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Entering the namespace failed.
    #[error("Cannot enter namespace {name}")]
    Setns {
        /// The namespace.
        name: NsName,
        /// The OS error.
        #[source]
        source: Errno,
    },
    /// Writing a sysctl inside the namespace failed.
    #[error("Cannot set {key} in namespace {name}")]
    Sysctl {
        /// The namespace.
        name: NsName,
        /// The sysctl's `/proc/sys` path.
        key: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// `lo` could not be set up.
    #[error("Cannot set lo up in namespace {name}")]
    LoopbackUp {
        /// The namespace.
        name: NsName,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The netlink socket could not be opened inside the namespace.
    #[error("Cannot open a netlink socket in namespace {name}")]
    NetlinkSocket {
        /// The namespace.
        name: NsName,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The dedicated thread could not be started or died.
    #[error("The namespace thread failed: {0}")]
    Thread(String),
}

impl NetnsError {
    /// The wire code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            NetnsError::Exists { .. } => ErrorCode::AlreadyExists,
            NetnsError::NotOurs { .. } => ErrorCode::NotManaged,
            NetnsError::Thread(_) => ErrorCode::Internal,
            _ => ErrorCode::Kernel,
        }
    }
}

/// A failure to use the state directory.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The state directory is unsafe to use.
    #[error("Refusing state directory {path}: {reason}")]
    UnsafeDir {
        /// The directory.
        path: PathBuf,
        /// Why it is refused.
        reason: String,
    },
    /// A directory could not be created or inspected.
    #[error("Cannot use directory {path}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A record could not be written.
    #[error("Cannot write {path}")]
    Write {
        /// The record's path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A record could not be removed.
    #[error("Cannot remove {path}")]
    Remove {
        /// The record's path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The structured variants keep the wire's code and message as they were when they were
    /// plain netlink errors and strings; callers decide on the variant, never on the text.
    #[test]
    fn structured_variants_keep_their_wire_form() {
        let ns: NsName = "r1".parse().unwrap();
        let inner = NetlinkError::new(
            "look up the route to 10.9.0.1".into(),
            &ns,
            libc::ENETUNREACH,
            None,
        )
        .explained("there is no route to 10.9.0.1")
        .with_code(ErrorCode::NotFound);
        let plain = HelperError::from(inner.clone()).to_wire();
        let e = HelperError::NoRoute {
            ns: ns.clone(),
            dst: "10.9.0.1".parse().unwrap(),
            inner,
        };
        assert_eq!(e.to_wire(), plain);
        assert_eq!(e.code(), ErrorCode::NotFound);

        let inner = NetlinkError::new("add dummy d0".into(), &ns, libc::EOPNOTSUPP, None);
        let plain = HelperError::from(inner.clone()).to_wire();
        let e = HelperError::NoDriver {
            kind: "dummy".into(),
            inner,
        };
        assert_eq!(e.to_wire(), plain);
        assert_eq!(e.code(), ErrorCode::Unsupported);

        let e = HelperError::NoNamespace {
            name: ns,
            message: "Namespace \"r1\" does not exist".into(),
        };
        assert_eq!(
            e.to_wire(),
            WireError::new(ErrorCode::NotFound, "Namespace \"r1\" does not exist")
        );
    }

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
