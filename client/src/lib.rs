//! Client side of tsim-helper: an async [`Client`], a [`BlockingClient`], and the `tsimctl`
//! command built on them. The protocol types are re-exported as [`protocol`].
//!
//! Invariant: nothing here needs privileges; everything privileged is asked of the helper.

pub mod blocking;
pub mod cli;
pub mod client;
pub mod facts;
pub mod network;

pub use blocking::BlockingClient;
pub use client::{Client, ClientError, DEFAULT_SOCKET, PendingRequest, RequestOptions};
pub use tsim_protocol as protocol;

/// The socket to use: `explicit` if given, else `$TSIM_SOCKET`, else [`DEFAULT_SOCKET`].
pub fn socket_path(explicit: Option<std::path::PathBuf>) -> std::path::PathBuf {
    explicit
        .or_else(|| {
            std::env::var_os("TSIM_SOCKET")
                .filter(|s| !s.is_empty())
                .map(Into::into)
        })
        .unwrap_or_else(|| DEFAULT_SOCKET.into())
}
