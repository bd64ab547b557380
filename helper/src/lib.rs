//! The tsim-helper daemon as a library: everything but argument parsing and process set-up,
//! which live in `main.rs`.
//!
//! Start with [`server::run`] (accept loop), [`conn`] (one connection), [`batch`] (one
//! request) and [`ops`] (one operation). Only [`netns`] changes network namespaces or
//! their mounts; [`jail`] makes the tools' mount namespace once at start.

pub mod auth;
pub mod batch;
pub mod budget;
pub mod caps;
pub mod codec;
pub mod config;
pub mod conn;
pub mod context;
pub mod error;
pub mod firewall;
pub mod heavy;
pub mod hosts;
pub mod jail;
pub mod listener;
pub mod logging;
pub mod metrics;
pub mod netlink;
pub mod netns;
pub mod network;
pub mod nlmsg;
pub mod ops;
pub mod payload;
pub mod registry;
pub mod server;
pub mod services;
pub mod state;
pub mod test_hooks;
pub mod tools;
pub mod undo;
