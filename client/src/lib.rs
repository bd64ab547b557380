//! Client side of tsim-helper: an async [`Client`], a [`BlockingClient`], and the `tsimctl`
//! command built on them. The protocol types are re-exported as [`protocol`].
//!
//! Features: `cli` (default) adds the command line (`cli`, clap) and `facts` (the facts
//! compiler, the `tsim-facts` crate, re-exported as `facts`). A program that only talks to
//! the helper depends on this crate with `default-features = false`.
//!
//! Invariant: nothing here needs privileges; everything privileged is asked of the helper.

pub mod blocking;
#[cfg(feature = "cli")]
pub mod cli;
pub mod client;
pub mod network;

#[cfg(feature = "facts")]
pub use tsim_facts as facts;

pub use blocking::{BlockingClient, BlockingOps};
pub use client::{Client, ClientError, DEFAULT_SOCKET, Ops, PendingRequest, RequestOptions};
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
