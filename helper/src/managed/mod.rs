//! The objects the helper manages and keeps across restarts: the registry of namespaces
//! ([`registry`], records in [`state`]), hosts and their gateways ([`hosts`]), echo services
//! ([`services`]), and the [`context::Helper`] that owns them all.

pub(crate) mod context;
pub(crate) mod hosts;
pub(crate) mod logs;
pub(crate) mod registry;
pub(crate) mod services;
pub(crate) mod state;
