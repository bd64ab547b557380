//! The tsim-helper daemon as a library. `main.rs` only calls [`daemon::main`].
//!
//! The public surface is what other crates use, and nothing else:
//! * [`daemon`]: the daemon's start ([`daemon::main`]);
//! * [`config`]: the command line (the man page generator reads it);
//! * [`payload`]: the firewall payload screen (its fuzz target and model tests);
//! * [`network`]: the simulated network's checks and diff (the `compile` fuzz target);
//! * [`codec`]: the frame codec (the `frame` fuzz target).
//!
//! Every other module is `pub(crate)`. Inside, start with `server::run` (accept loop), `conn`
//! (one connection), `batch` (one request) and `ops` (one operation). Only `netns` changes
//! network namespaces or their mounts; `jail` makes the tools' mount namespace once at start.

pub(crate) mod auth;
pub(crate) mod batch;
pub(crate) mod budget;
pub(crate) mod caps;
pub mod codec;
pub mod config;
pub(crate) mod conn;
pub(crate) mod context;
pub mod daemon;
pub(crate) mod error;
pub(crate) mod firewall;
pub(crate) mod heavy;
pub(crate) mod hosts;
pub(crate) mod jail;
pub(crate) mod listener;
pub(crate) mod logging;
pub(crate) mod metrics;
pub(crate) mod netlink;
pub(crate) mod netns;
pub mod network;
pub(crate) mod nlmsg;
pub(crate) mod ops;
pub mod payload;
pub(crate) mod registry;
pub(crate) mod server;
pub(crate) mod services;
pub(crate) mod state;
pub(crate) mod test_hooks;
pub(crate) mod tools;
pub(crate) mod undo;
