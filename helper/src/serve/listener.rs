//! Getting the listening socket: from systemd socket activation, or by binding `--socket`.
//!
//! Invariants:
//! * An activated socket is used only if `LISTEN_PID` is this process; it is set close-on-exec
//!   and never unlinked.
//! * A bound socket replaces only a stale socket (one nobody accepts on); any other file at
//!   the path is refused, never removed.

use std::fs;
use std::io;
use std::os::fd::{AsFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::sys::socket::{
    AddressFamily, SockType, SockaddrLike, UnixAddr, getsockname, getsockopt, sockopt,
};

/// A failure to get a listening socket.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    /// The activation environment is malformed or passes the wrong kind of socket.
    #[error("Socket activation: {0}")]
    Activation(String),
    /// The path is taken by something that is not a stale socket.
    #[error("Refusing to replace {path}: {reason}")]
    PathTaken {
        /// The socket path.
        path: PathBuf,
        /// What is there.
        reason: String,
    },
    /// A step of binding failed.
    #[error("Cannot {step} {path}")]
    Bind {
        /// What was being done.
        step: &'static str,
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Where the listener came from.
#[derive(Debug)]
pub enum Origin {
    /// Passed by the service manager.
    Activated,
    /// Bound here; `ino` identifies our socket file for removal at exit.
    Bound {
        /// The socket path.
        path: PathBuf,
        /// The socket file's inode.
        ino: u64,
    },
}

/// Takes the socket passed by systemd, if any (unsetting `LISTEN_*` so children do not see
/// it).
///
/// # Safety
/// Must be called before any other thread exists, because it changes the environment.
#[allow(
    unsafe_code,
    reason = "the environment change and adopting fd 3 are inherently unsafe"
)]
pub unsafe fn activated() -> Result<Option<UnixListener>, ListenerError> {
    // SAFETY: the caller guarantees that no other thread is running.
    let fds = unsafe { sd_notify::listen_fds_and_unset_env() }
        .map_err(|e| ListenerError::Activation(e.to_string()))?;
    let fds: Vec<RawFd> = fds.collect();
    match fds.as_slice() {
        [] => Ok(None),
        [fd] => {
            // SAFETY: systemd passed this descriptor to us and nothing else in the process
            // owns it; LISTEN_PID was checked to be this process.
            let owned = unsafe { OwnedFd::from_raw_fd(*fd) };
            check_listening_unix_stream(&owned)?;
            let listener = UnixListener::from(owned);
            Ok(Some(listener))
        }
        more => Err(ListenerError::Activation(format!(
            "expected one socket, got {} (LISTEN_FDS={})",
            more.len(),
            more.len()
        ))),
    }
}

fn check_listening_unix_stream(fd: &OwnedFd) -> Result<(), ListenerError> {
    let bad = |what: &str| ListenerError::Activation(format!("descriptor 3 is not {what}"));
    let kind = getsockopt(&fd.as_fd(), sockopt::SockType).map_err(|_| bad("a socket"))?;
    if kind != SockType::Stream {
        return Err(bad("a stream socket"));
    }
    let listening = getsockopt(&fd.as_fd(), sockopt::AcceptConn).map_err(|_| bad("a socket"))?;
    if !listening {
        return Err(bad("a listening socket"));
    }
    let addr: UnixAddr =
        getsockname(std::os::fd::AsRawFd::as_raw_fd(fd)).map_err(|_| bad("a Unix socket"))?;
    if addr.family() != Some(AddressFamily::Unix) {
        return Err(bad("a Unix socket"));
    }
    Ok(())
}

/// Binds `path`, replacing a stale socket, then sets its mode and group.
pub fn bind(
    path: &Path,
    mode: u32,
    gid: Option<u32>,
) -> Result<(UnixListener, Origin), ListenerError> {
    let bind_err = |step, source| ListenerError::Bind {
        step,
        path: path.to_owned(),
        source,
    };
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            // A crashed helper's listening socket can outlive it for a moment, in a tool it
            // was starting (between fork and exec): only a listener that stays is live.
            let live = (0..10).all(|attempt| {
                if attempt > 0 {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                UnixStream::connect(path).is_ok()
            });
            if live {
                return Err(ListenerError::PathTaken {
                    path: path.to_owned(),
                    reason: "another process is listening on it".into(),
                });
            }
            fs::remove_file(path).map_err(|e| bind_err("remove the stale socket", e))?;
        }
        Ok(meta) => {
            let what = if meta.file_type().is_symlink() {
                "it is a symbolic link"
            } else if meta.is_dir() {
                "it is a directory"
            } else {
                "it exists and is not a socket"
            };
            return Err(ListenerError::PathTaken {
                path: path.to_owned(),
                reason: what.into(),
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(bind_err("inspect", e)),
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .create(parent)
                .map_err(|e| bind_err("create the directory of", e))?;
        }
    }
    let listener = UnixListener::bind(path).map_err(|e| bind_err("bind", e))?;
    if let Some(gid) = gid {
        std::os::unix::fs::chown(path, None, Some(gid))
            .map_err(|e| bind_err("set the group of", e))?;
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| bind_err("set the mode of", e))?;
    let ino = fs::symlink_metadata(path)
        .map_err(|e| bind_err("inspect", e))?
        .ino();
    Ok((
        listener,
        Origin::Bound {
            path: path.to_owned(),
            ino,
        },
    ))
}

/// Removes a socket we bound, if the path still holds it.
pub fn remove_bound(origin: &Origin) {
    if let Origin::Bound { path, ino } = origin {
        if fs::symlink_metadata(path).is_ok_and(|m| m.ino() == *ino && m.file_type().is_socket()) {
            let _ = fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_sockets_are_replaced_and_files_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("s.sock");
        drop(UnixListener::bind(&path).unwrap()); // leaves a stale socket file
        let (live, origin) = bind(&path, 0o660, None).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o660
        );
        let err = bind(&path, 0o660, None).unwrap_err().to_string();
        assert!(err.contains("another process is listening"), "{err}");
        drop(live);
        remove_bound(&origin);
        assert!(!path.exists());

        fs::write(&path, b"precious").unwrap();
        let err = bind(&path, 0o660, None).unwrap_err().to_string();
        assert!(err.contains("not a socket"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"precious");

        let link = tmp.path().join("link.sock");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let err = bind(&link, 0o660, None).unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
    }
}
