//! How a change inside a namespace is undone: the messages or payloads that put it back.
//!
//! Each operation that changes state records an [`Undo`] before (or as) it makes the change;
//! [`apply`] runs it when the request is rolled back.

use rtnetlink::packet_route::RouteNetlinkMessage;
use tsim_protocol::NsName;
use tsim_protocol::net::SysctlKey;

use crate::base::error::HelperError;
use crate::kernel::firewall;
use crate::kernel::tools::Tool;
use crate::managed::context::Helper;

/// What puts a change back.
#[derive(Debug)]
pub enum Undo {
    /// Netlink requests (with their flags), sent in order.
    Netlink(Vec<(RouteNetlinkMessage, u16)>),
    /// Write a sysctl's old value back.
    Sysctl {
        /// The key.
        key: SysctlKey,
        /// The old value.
        value: String,
    },
    /// Restore the firewall (without `--noflush`) from this payload.
    Iptables {
        /// IPv6 or IPv4.
        ipv6: bool,
        /// The payload.
        payload: String,
    },
    /// Destroy every set, then restore these.
    Ipset {
        /// The `ipset save` output from before.
        payload: String,
    },
}

/// Undoes one change in namespace `ns`.
pub async fn apply(helper: &Helper, ns: &NsName, undo: Undo) -> Result<(), HelperError> {
    let Some(entry) = helper.registry.lookup_for_undo(ns) else {
        // The namespace itself is gone (its creation was undone): nothing left to put back.
        return Ok(());
    };
    match undo {
        Undo::Netlink(messages) => {
            let netlink = match entry.netlink {
                Some(n) => n,
                None => helper.netns.open_netlink(ns, entry.ino).await?,
            };
            let mut first_error = None;
            for (message, flags) in messages {
                match netlink.ack(message, flags, || "undo a change".into()).await {
                    // Already back (re-created by an earlier step) or already gone.
                    Err(e) if matches!(e.errno, libc::EEXIST | libc::ENOENT | libc::ESRCH) => {}
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                    Ok(()) => {}
                }
            }
            first_error.map_or(Ok(()), |e| Err(e.into()))
        }
        Undo::Sysctl { key, value } => {
            let Some(path) = key.proc_path().map(|p| format!("/proc/sys/{p}")) else {
                return Ok(());
            };
            helper
                .netns
                .sysctl_write(ns, entry.ino, vec![(path, value)])
                .await?
                .map_err(|e| HelperError::Internal(format!("Cannot restore {key}: {e}")))
        }
        Undo::Iptables { ipv6, payload } => {
            let (_, restore) = firewall::iptables_tools(ipv6);
            helper
                .firewall()
                .run_checked(ns, entry.ino, restore, &[], Some(payload))
                .await
                .map(drop)
        }
        Undo::Ipset { payload } => {
            helper
                .firewall()
                .run_checked(ns, entry.ino, Tool::Ipset, &["destroy"], None)
                .await?;
            helper
                .firewall()
                .run_checked(ns, entry.ino, Tool::Ipset, &["restore"], Some(payload))
                .await
                .map(drop)
        }
    }
}
