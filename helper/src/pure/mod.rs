//! Pure logic with no kernel and no I/O: the simulated network's checks and diff, the
//! firewall payload screen, and the per-uid object budget. Fuzz targets and model tests
//! reach the helper here.

pub(crate) mod budget;
pub mod network;
pub mod payload;
