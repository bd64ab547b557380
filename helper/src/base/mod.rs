//! The ground floor: what every other layer may use and which uses nothing of the helper's:
//! errors, configuration, logging, peer credentials, metrics and the debug-only fault hooks.

pub(crate) mod auth;
pub mod config;
pub(crate) mod error;
pub(crate) mod logging;
pub(crate) mod metrics;
pub(crate) mod test_hooks;
