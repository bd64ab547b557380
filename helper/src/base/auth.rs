//! Who is on the other end of a connection, as the kernel says, and whether to serve them.
//!
//! Invariant: the decision uses only `SO_PEERCRED` and `SO_PEERGROUPS` (or, for `--stdio`, the
//! helper's own credentials), never anything the client sends, and never the socket file's
//! mode.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use nix::sys::socket::{getsockopt, sockopt};
use nix::unistd::{Gid, Group};
use tsim_protocol::PeerInfo;

/// A peer's credentials and what they may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Process id, 0 if unknown.
    pub pid: u32,
    /// Supplementary group ids.
    pub groups: Vec<u32>,
    /// May use the helper.
    pub authorized: bool,
    /// May act on objects other users own.
    pub admin: bool,
}

impl Peer {
    /// The wire view of the peer.
    pub fn info(&self) -> PeerInfo {
        PeerInfo {
            uid: self.uid,
            gid: self.gid,
            pid: self.pid,
            authorized: self.authorized,
            admin: self.admin,
        }
    }

    fn in_group(&self, gid: Option<u32>) -> bool {
        gid.is_some_and(|g| self.gid == g || self.groups.contains(&g))
    }
}

/// A group given on the command line, by name or number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSpec {
    /// As given.
    pub spec: String,
    /// The resolved gid; `None` if no such group exists.
    pub gid: Option<u32>,
}

impl GroupSpec {
    /// Resolves `spec`: a number is a gid as is; a name is looked up in the group database.
    pub fn resolve(spec: &str) -> io::Result<Self> {
        let gid = if let Ok(n) = spec.parse::<u32>() {
            Some(n)
        } else {
            Group::from_name(spec)
                .map_err(io::Error::from)?
                .map(|g| g.gid.as_raw())
        };
        Ok(Self {
            spec: spec.to_owned(),
            gid,
        })
    }
}

/// Decides who is served.
#[derive(Debug, Clone)]
pub struct Authorizer {
    /// Members are served.
    pub group: Option<GroupSpec>,
    /// Members may act on objects other users own.
    pub admin_group: Option<GroupSpec>,
}

impl Authorizer {
    /// Classifies a peer from its raw credentials.
    pub fn classify(&self, uid: u32, gid: u32, pid: u32, groups: Vec<u32>) -> Peer {
        let mut peer = Peer {
            uid,
            gid,
            pid,
            groups,
            authorized: false,
            admin: false,
        };
        let group = self.group.as_ref().and_then(|g| g.gid);
        let admin_group = self.admin_group.as_ref().and_then(|g| g.gid);
        peer.admin = uid == 0 || peer.in_group(admin_group);
        peer.authorized = peer.admin || peer.in_group(group);
        peer
    }

    /// Reads the peer of a connected Unix socket from the kernel.
    pub fn peer_of_socket<F: AsFd>(&self, socket: &F) -> io::Result<Peer> {
        let fd = socket.as_fd();
        let cred = getsockopt(&fd, sockopt::PeerCredentials).map_err(io::Error::from)?;
        let groups = peer_groups(fd)?;
        let pid = u32::try_from(cred.pid()).unwrap_or(0);
        Ok(self.classify(cred.uid(), cred.gid(), pid, groups))
    }

    /// The peer for `--stdio`: if stdin is a Unix socket, its peer; otherwise whoever started
    /// the helper, who has the helper's own credentials.
    pub fn peer_of_stdio(&self) -> io::Result<Peer> {
        let stdin = io::stdin();
        if let Ok(peer) = self.peer_of_socket(&stdin) {
            return Ok(peer);
        }
        let groups = nix::unistd::getgroups().map_err(io::Error::from)?;
        let groups = groups.into_iter().map(Gid::as_raw).collect();
        let parent = u32::try_from(nix::unistd::getppid().as_raw()).unwrap_or(0);
        Ok(self.classify(
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
            parent,
            groups,
        ))
    }

    /// Why a peer is refused, for the `permission_denied` message.
    pub fn refusal(&self, peer: &Peer) -> String {
        match &self.group {
            Some(GroupSpec {
                spec,
                gid: Some(gid),
            }) => format!(
                "uid {} (gid {}) is neither root nor a member of group {spec} ({gid})",
                peer.uid, peer.gid
            ),
            Some(GroupSpec { spec, gid: None }) => format!(
                "uid {} is not root, and group {spec} does not exist on this system, so only root is served",
                peer.uid
            ),
            None => format!("uid {} is not root, and only root is served", peer.uid),
        }
    }
}

/// The supplementary groups of a socket's peer (`SO_PEERGROUPS`, Linux 4.13 and later).
#[allow(unsafe_code, reason = "nix has no wrapper for SO_PEERGROUPS")]
fn peer_groups(fd: BorrowedFd<'_>) -> io::Result<Vec<u32>> {
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut len = libc::socklen_t::try_from(groups.len() * size_of::<libc::gid_t>())
            .map_err(|_| io::Error::other("too many groups"))?;
        // SAFETY: `groups` is a valid, writable buffer of `len` bytes for the duration of the
        // call, and the kernel writes at most `len` bytes and stores the needed size in `len`.
        let rc = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let count = len as usize / size_of::<libc::gid_t>();
        if rc == 0 {
            groups.truncate(count);
            return Ok(groups);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ERANGE) && count > groups.len() && count <= 65536 {
            groups.resize(count, 0);
            continue;
        }
        return Err(err);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authz(group: Option<u32>, admin: Option<u32>) -> Authorizer {
        let spec = |gid: Option<u32>| {
            gid.map(|g| GroupSpec {
                spec: g.to_string(),
                gid: Some(g),
            })
        };
        Authorizer {
            group: spec(group),
            admin_group: spec(admin),
        }
    }

    #[test]
    fn root_members_and_others() {
        let a = authz(Some(500), Some(600));
        let root = a.classify(0, 0, 1, vec![]);
        assert!(root.authorized && root.admin);
        let member = a.classify(1000, 1000, 1, vec![4, 500]);
        assert!(member.authorized && !member.admin);
        let primary = a.classify(1000, 500, 1, vec![]);
        assert!(primary.authorized);
        let admin = a.classify(1001, 1001, 1, vec![600]);
        assert!(admin.authorized && admin.admin);
        let other = a.classify(65534, 65534, 1, vec![65534]);
        assert!(!other.authorized && !other.admin);
        assert!(a.refusal(&other).contains("uid 65534"));
        let none = authz(None, None);
        assert!(!none.classify(1000, 500, 1, vec![500]).authorized);
    }

    #[test]
    fn socketpair_peer_is_us() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let peer = authz(None, None).peer_of_socket(&a).unwrap();
        assert_eq!(peer.uid, nix::unistd::getuid().as_raw());
        assert_eq!(peer.pid, std::process::id());
        let ours: Vec<u32> = nix::unistd::getgroups()
            .unwrap()
            .into_iter()
            .map(Gid::as_raw)
            .collect();
        assert_eq!(peer.groups, ours);
    }

    #[test]
    fn groups_resolve_by_number_and_name() {
        assert_eq!(GroupSpec::resolve("4711").unwrap().gid, Some(4711));
        assert_eq!(GroupSpec::resolve("root").unwrap().gid, Some(0));
        assert_eq!(GroupSpec::resolve("no-such-group-tsim").unwrap().gid, None);
    }
}
