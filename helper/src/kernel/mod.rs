//! Everything that talks to the kernel or runs a program: namespaces ([`netns`], the only
//! module that enters or mounts one), netlink ([`netlink`], messages in [`nlmsg`]), the
//! firewall tools ([`tools`], [`firewall`]) in their [`jail`], and capabilities ([`caps`]).
//! Nothing here knows about requests, users or the registry.

pub(crate) mod caps;
#[cfg(test)]
pub(crate) mod fake;
pub(crate) mod firewall;
pub(crate) mod jail;
pub(crate) mod netlink;
pub(crate) mod netns;
pub(crate) mod nflog;
pub(crate) mod nfnl;
pub(crate) mod nftrace;
pub(crate) mod nlmsg;
pub(crate) mod tools;
