//! The tsim-helper daemon as a library. `main.rs` only calls [`daemon::main`].
//!
//! The modules are folders by layer; a layer uses only the layers before it
//! (`tests/layers.rs` checks it):
//!
//! | layer | holds |
//! |---|---|
//! | `base` | errors, configuration, logging, peer credentials, metrics, test hooks |
//! | `pure` | network checks and diff, payload screen, object budget: no kernel, no I/O |
//! | `kernel` | namespaces, netlink, firewall tools, the jail, capabilities |
//! | `managed` | the registry and its records, hosts, services, the shared `Helper` |
//! | `txn` | effects, commit and rollback, undo |
//! | `ops` | one file per operation, and the dispatch table |
//! | `serve` | listener, accept loop, connections, requests, the heavy thread |
//! | [`daemon`] | start-up: recovery, capabilities, the runtime |
//!
//! The public surface is what other crates use, and nothing else:
//! * [`daemon`]: the daemon's start ([`daemon::main`]);
//! * [`config`]: the command line (the man page generator reads it);
//! * [`payload`]: the firewall payload screen (its fuzz target and model tests);
//! * [`network`]: the simulated network's checks and diff (the `compile` fuzz target);
//! * [`codec`]: the frame codec (the `frame` fuzz target).

pub(crate) mod base;
pub(crate) mod kernel;
pub(crate) mod managed;
pub(crate) mod ops;
pub(crate) mod pure;
pub(crate) mod serve;
pub(crate) mod txn;

pub mod daemon;

pub use base::config;
pub use pure::{network, payload};
pub use serve::codec;
