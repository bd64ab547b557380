//! Dropping every capability the helper does not need, once its socket is bound.
//!
//! Capabilities are per thread, so this runs in `main` before the runtime or any other thread
//! exists; every thread started later inherits the reduced sets.
//!
//! Kept, and why:
//! * `CAP_NET_ADMIN`: netlink changes and netfilter inside managed namespaces;
//! * `CAP_SYS_ADMIN`: `unshare`/`setns` of network namespaces and the `/run/netns` mounts;
//! * `CAP_NET_RAW`: ICMP and raw sockets for probes;
//! * `CAP_NET_BIND_SERVICE`: echo services on ports below 1024;
//! * `CAP_SETPCAP`: to drop capabilities from the bounding set of the tools it runs (see
//!   [`crate::kernel::jail`]); it only lets the helper give up rights, never gain one;
//! * `CAP_SYS_CHROOT`: `setns` into the tools' mount namespace demands it (with
//!   `CAP_SYS_ADMIN`); the helper never calls `chroot`.

use caps::{CapSet, Capability, CapsHashSet};

/// The capabilities the helper keeps.
pub const KEEP: [Capability; 6] = [
    Capability::CAP_NET_ADMIN,
    Capability::CAP_SYS_ADMIN,
    Capability::CAP_NET_RAW,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SETPCAP,
    Capability::CAP_SYS_CHROOT,
];

/// A failed capability change.
#[derive(Debug, thiserror::Error)]
#[error("Cannot {step}: {message}")]
pub struct CapsError {
    step: &'static str,
    message: String,
}

/// The sets after [`restrict`], for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapReport {
    /// Effective (= permitted) set, sorted.
    pub effective: Vec<String>,
    /// Bounding set, sorted.
    pub bounding: Vec<String>,
    /// Capabilities of [`KEEP`] the process did not have to begin with.
    pub missing: Vec<String>,
}

/// Reduces the effective, permitted and bounding sets to [`KEEP`] (or to what the process has
/// of it), clears the inheritable and ambient sets, and sets `no_new_privs`.
///
/// Must be called before any other thread is started.
#[allow(
    unsafe_code,
    reason = "prctl(PR_SET_NO_NEW_PRIVS) has no safe wrapper in our dependencies"
)]
pub fn restrict() -> Result<CapReport, CapsError> {
    let err = |step| {
        move |e: caps::errors::CapsError| CapsError {
            step,
            message: e.to_string(),
        }
    };
    let keep: CapsHashSet = KEEP.into_iter().collect();
    let permitted = caps::read(None, CapSet::Permitted).map_err(err("read the permitted set"))?;
    let kept: CapsHashSet = keep.intersection(&permitted).copied().collect();

    // Dropping from the bounding set needs CAP_SETPCAP, so it goes first.
    if caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP).unwrap_or(false) {
        for cap in caps::read(None, CapSet::Bounding).map_err(err("read the bounding set"))? {
            if !keep.contains(&cap) {
                caps::drop(None, CapSet::Bounding, cap)
                    .map_err(err("drop from the bounding set"))?;
            }
        }
    }
    caps::clear(None, CapSet::Ambient).map_err(err("clear the ambient set"))?;
    caps::clear(None, CapSet::Inheritable).map_err(err("clear the inheritable set"))?;
    caps::set(None, CapSet::Effective, &kept).map_err(err("set the effective set"))?;
    caps::set(None, CapSet::Permitted, &kept).map_err(err("set the permitted set"))?;
    // SAFETY: prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) takes no pointers and only affects this
    // process's future execve calls.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    if rc != 0 {
        let message = std::io::Error::last_os_error().to_string();
        return Err(CapsError {
            step: "set no_new_privs",
            message,
        });
    }

    let names = |set: &CapsHashSet| {
        let mut v: Vec<String> = set.iter().map(|c| c.to_string().to_lowercase()).collect();
        v.sort();
        v
    };
    let bounding = caps::read(None, CapSet::Bounding).map_err(err("read the bounding set"))?;
    let missing: CapsHashSet = keep.difference(&kept).copied().collect();
    Ok(CapReport {
        effective: names(&kept),
        bounding: names(&bounding),
        missing: names(&missing),
    })
}
