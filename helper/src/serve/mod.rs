//! The connection layer: the listening socket ([`listener`]), the accept loop ([`server`]),
//! one connection ([`conn`]) with its frame [`codec`], one request ([`request`]) and the
//! thread for heavy jobs ([`heavy`]).

pub mod codec;
pub(crate) mod conn;
#[cfg(test)]
mod fake_kernel_tests;
pub(crate) mod heavy;
pub(crate) mod listener;
pub(crate) mod request;
pub(crate) mod server;
