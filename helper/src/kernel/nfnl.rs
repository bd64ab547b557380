//! The netfilter netlink basics the log (`nflog.rs`) and trace (`nftrace.rs`) sockets share:
//! a bound `NETLINK_NETFILTER` socket, attributes written and read, and system call results.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// Netlink's 4-byte alignment.
pub fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Appends one attribute, padded.
pub fn attr(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = 4 + value.len();
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(value);
    out.resize(align4(out.len()), 0);
}

/// A native-endian `u16` at `at`.
pub fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 2).map(|s| u16::from_ne_bytes([s[0], s[1]]))
}

/// A big-endian `u32` at the start.
pub fn be32(b: &[u8]) -> Option<u32> {
    b.get(..4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// A system call's length result, or its error.
pub fn check(r: libc::ssize_t) -> io::Result<usize> {
    usize::try_from(r).map_err(|_| io::Error::last_os_error())
}

/// A `NETLINK_NETFILTER` socket, close-on-exec and bound, in the calling thread's network
/// namespace (so: inside `netns::run_in`).
#[allow(
    unsafe_code,
    reason = "a netlink socket of the netfilter family has no safe wrapper in nix or std"
)]
pub fn socket() -> io::Result<OwnedFd> {
    // SAFETY: plain system calls on a descriptor this function owns; every buffer passed
    // lives across the call and its length is the one given.
    unsafe {
        let raw = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_NETFILTER,
        );
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = OwnedFd::from_raw_fd(raw);
        let mut addr: libc::sockaddr_nl = std::mem::zeroed();
        addr.nl_family = libc::AF_NETLINK as u16;
        let len = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
        if libc::bind(raw, (&raw const addr).cast(), len) < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(fd)
    }
}
