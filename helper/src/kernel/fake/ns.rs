//! The fake kernel outside routing netlink: named namespaces as `/run/netns` holds them, the
//! handles that keep a detached one alive, veth pairs between namespaces, sysctls, and the
//! firewall tools run inside a namespace.
//!
//! A namespace lives while it is mounted under a name or a handle from
//! [`FakeKernel::ns_detach`] is open (the handle is the write end of a pipe whose read end the
//! fake keeps, so it sees the handle closed); when it goes, its veths take their peers with
//! them, as the kernel's do. Sysctls start at the kernel's compiled defaults, with the
//! helper's deterministic settings written at creation as the real [`crate::kernel::netns`]
//! writes them; a per-interface key exists while its interface does. Not modelled: a write to
//! `conf/all/forwarding` or `ip_forward` reaching every interface, as the kernel's does.

use std::os::fd::{AsRawFd, OwnedFd};

use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::link::{InfoData, InfoVeth, LinkAttribute, LinkInfo, LinkMessage};
use tsim_protocol::NsName;

use super::{Answer, FakeKernel, NsState, State, del_link, link_name, new_link};
use crate::base::error::NetnsError;
use crate::kernel::netns::{Created, PathState};
use crate::kernel::tools::{Output, Tool};

/// What every new namespace gets written, as `kernel::netns::DETERMINISTIC` writes it.
const DETERMINISTIC: &[(&str, &str)] = &[
    ("net/ipv4/conf/all/send_redirects", "0"),
    ("net/ipv4/conf/default/send_redirects", "0"),
    ("net/ipv4/conf/all/accept_redirects", "0"),
    ("net/ipv4/conf/default/accept_redirects", "0"),
    ("net/ipv4/conf/all/secure_redirects", "0"),
    ("net/ipv4/conf/default/secure_redirects", "0"),
    ("net/ipv4/icmp_ratelimit", "0"),
    ("net/ipv4/icmp_ratemask", "0"),
];

/// The kernel's compiled default of a namespace-wide or `all`/`default` key.
fn compiled_default(key: &str) -> Option<&'static str> {
    let leaf = key.rsplit('/').next()?;
    Some(match key {
        "net/ipv4/ip_forward" | "net/ipv4/icmp_ratelimit" | "net/ipv4/icmp_ratemask" => {
            match leaf {
                "ip_forward" => "0",
                "icmp_ratelimit" => "1000",
                _ => "6168",
            }
        }
        "net/ipv4/ping_group_range" => "1\t0",
        _ if key.starts_with("net/ipv4/conf/") => match leaf {
            "accept_redirects" | "send_redirects" | "secure_redirects" => "1",
            "rp_filter" | "arp_ignore" | "arp_announce" | "accept_local" | "forwarding" => "0",
            _ => return None,
        },
        _ if key.starts_with("net/ipv6/conf/") => match leaf {
            "accept_redirects" => "1",
            "disable_ipv6" | "forwarding" => "0",
            _ => return None,
        },
        _ => return None,
    })
}

fn errno_io(errno: i32) -> std::io::Error {
    std::io::Error::from_raw_os_error(errno)
}

impl State {
    /// Counts a change, failing it if it is the one a test asked to fail.
    pub(super) fn count_change(&mut self, what: impl Into<String>) -> Answer<()> {
        self.changes += 1;
        self.log.push(what.into());
        match self.fail_at {
            Some((k, errno)) if k == self.changes => {
                self.fail_at = None;
                Err(errno)
            }
            _ => Ok(()),
        }
    }

    /// Makes a fresh namespace (`lo`, the default rules, the deterministic sysctls),
    /// mounted under `name`; returns its inode.
    pub(super) fn make_ns(&mut self, name: &str, ipv6: bool) -> u64 {
        let ino = 1000 + self.next_ino;
        self.next_ino += 1;
        let mut ns = NsState::fresh();
        for (key, value) in DETERMINISTIC {
            ns.sysctls.insert((*key).to_owned(), (*value).to_owned());
        }
        if !ipv6 {
            for key in ["all", "default"] {
                ns.sysctls
                    .insert(format!("net/ipv6/conf/{key}/disable_ipv6"), "1".into());
            }
        }
        self.namespaces.insert(ino, ns);
        self.mounted.insert(name.to_owned(), ino);
        ino
    }

    /// Frees every namespace that has neither a name nor an open handle.
    pub(super) fn reap(&mut self) {
        // The read end is non-blocking: end of file once every write end is closed.
        self.held.retain(|(read_end, _)| {
            let mut byte = [0u8; 1];
            !matches!(nix::unistd::read(read_end, &mut byte), Ok(0))
        });
        let alive: Vec<u64> = self
            .mounted
            .values()
            .chain(self.held.iter().map(|(_, ino)| ino))
            .copied()
            .collect();
        let gone: Vec<u64> = self
            .namespaces
            .keys()
            .filter(|ino| !alive.contains(ino))
            .copied()
            .collect();
        for ino in gone {
            if let Some(ns) = self.namespaces.remove(&ino) {
                for (peer_ns, peer) in ns.peers.values() {
                    self.drop_end(*peer_ns, *peer);
                }
            }
        }
    }

    /// Deletes a veth end whose other end went (with its namespace or by a request).
    fn drop_end(&mut self, ns: u64, index: u32) {
        if let Some(s) = self.namespaces.get_mut(&ns) {
            s.peers.remove(&index);
            del_link(s, index);
        }
    }

    /// The inode mounted under `name`, which must be `ino`.
    fn verified(&self, name: &NsName, ino: u64) -> Result<u64, NetnsError> {
        match self.mounted.get(name.as_str()) {
            Some(&found) if found == ino => Ok(ino),
            Some(_) => Err(NetnsError::NotOurs {
                path: format!("/run/netns/{name}").into(),
            }),
            None => Err(NetnsError::Open {
                path: format!("/run/netns/{name}").into(),
                source: errno_io(libc::ENOENT),
            }),
        }
    }

    /// A veth's creation, or a link deletion that takes a veth's peer: the requests that
    /// reach past one namespace. `None` for any other request.
    pub(super) fn veth_change(
        &mut self,
        ino: u64,
        message: &RouteNetlinkMessage,
        flags: u16,
    ) -> Option<Answer<Vec<RouteNetlinkMessage>>> {
        match message {
            RouteNetlinkMessage::NewLink(l) if l.header.index == 0 => {
                let peer = l.attributes.iter().find_map(|a| match a {
                    LinkAttribute::LinkInfo(info) => info.iter().find_map(|i| match i {
                        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))) => Some(p.clone()),
                        _ => None,
                    }),
                    _ => None,
                })?;
                Some(self.new_veth(ino, l.clone(), peer, flags))
            }
            RouteNetlinkMessage::DelLink(l) => {
                let ns = self.namespaces.get(&ino)?;
                let index = super::find_link(ns, l).ok()?;
                let (peer_ns, peer) = *ns.peers.get(&index)?;
                let ns = self.namespaces.get_mut(&ino)?;
                ns.peers.remove(&index);
                del_link(ns, index);
                self.drop_end(peer_ns, peer);
                Some(Ok(Vec::new()))
            }
            _ => None,
        }
    }

    fn new_veth(
        &mut self,
        ino: u64,
        mut link: LinkMessage,
        mut peer: LinkMessage,
        flags: u16,
    ) -> Answer<Vec<RouteNetlinkMessage>> {
        let target = match peer.attributes.iter().find_map(|a| match a {
            LinkAttribute::NetNsFd(fd) => Some(*fd),
            _ => None,
        }) {
            Some(fd) => *self.fds.get(&fd).ok_or(libc::EBADF)?,
            None => ino,
        };
        peer.attributes
            .retain(|a| !matches!(a, LinkAttribute::NetNsFd(_)));
        let peer_name = link_name(&peer).ok_or(libc::EINVAL)?.to_owned();
        let taken = |s: &NsState, name: &str| s.links.values().any(|x| link_name(x) == Some(name));
        let there = self.namespaces.get(&target).ok_or(libc::EINVAL)?;
        if taken(there, &peer_name) || (target == ino && link_name(&link) == Some(&peer_name)) {
            return Err(libc::EEXIST);
        }
        link.attributes
            .retain(|a| !matches!(a, LinkAttribute::LinkInfo(_)));
        link.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                rtnetlink::packet_route::link::InfoKind::Veth,
            )]));
        peer.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                rtnetlink::packet_route::link::InfoKind::Veth,
            )]));
        let here = self.namespaces.get_mut(&ino).ok_or(libc::EINVAL)?;
        let echo = new_link(here, link, flags)?;
        let index = match echo.first() {
            Some(RouteNetlinkMessage::NewLink(l)) => l.header.index,
            _ => return Err(libc::EINVAL),
        };
        let there = self.namespaces.get_mut(&target).ok_or(libc::EINVAL)?;
        let peer_echo = match new_link(there, peer, flags) {
            Ok(e) => e,
            Err(errno) => {
                if let Some(here) = self.namespaces.get_mut(&ino) {
                    del_link(here, index);
                }
                return Err(errno);
            }
        };
        let peer_index = match peer_echo.first() {
            Some(RouteNetlinkMessage::NewLink(l)) => l.header.index,
            _ => return Err(libc::EINVAL),
        };
        if let Some(s) = self.namespaces.get_mut(&ino) {
            s.peers.insert(index, (target, peer_index));
        }
        if let Some(s) = self.namespaces.get_mut(&target) {
            s.peers.insert(peer_index, (ino, index));
        }
        Ok(echo)
    }

    /// The stored key of sysctl `path` (under `/proc/sys/`) in namespace `ino`: a
    /// per-interface key by the interface's index, so that it follows a rename and goes with
    /// the interface. `ENOENT` for an interface that is not there.
    fn sysctl_key(&self, ino: u64, path: &str) -> Result<String, i32> {
        let key = path.strip_prefix("/proc/sys/").ok_or(libc::ENOENT)?;
        let parts: Vec<&str> = key.split('/').collect();
        if let ["net", family, "conf", dev, leaf] = parts.as_slice() {
            if *dev != "all" && *dev != "default" {
                let ns = self.namespaces.get(&ino).ok_or(libc::ENOENT)?;
                let index = ns
                    .links
                    .iter()
                    .find(|(_, l)| link_name(l) == Some(dev))
                    .map(|(i, _)| *i)
                    .ok_or(libc::ENOENT)?;
                compiled_default(&format!("net/{family}/conf/default/{leaf}"))
                    .ok_or(libc::ENOENT)?;
                return Ok(format!("net/{family}/conf/#{index}/{leaf}"));
            }
        }
        compiled_default(key).ok_or(libc::ENOENT)?;
        Ok(key.to_owned())
    }

    fn sysctl_value(&self, ino: u64, key: &str) -> String {
        let ns = self.namespaces.get(&ino);
        let stored = |k: &str| ns.and_then(|s| s.sysctls.get(k)).cloned();
        if let Some(v) = stored(key) {
            return v;
        }
        // An interface's value starts as `default`'s.
        if let Some(at) = key.find("/#") {
            let (head, tail) = key.split_at(at);
            let leaf = tail.rsplit('/').next().unwrap_or_default();
            let default = format!("{head}/default/{leaf}");
            return stored(&default)
                .unwrap_or_else(|| compiled_default(&default).unwrap_or("0").to_owned());
        }
        compiled_default(key).unwrap_or("0").to_owned()
    }
}

impl NsState {
    /// Whether a stored sysctl differs from what the key would read without it, so that
    /// states are compared by value. (The kernel also marks an interface's key as set, after
    /// which a change of `default` no longer reaches it; no undo can clear that mark, and the
    /// comparison leaves it out.)
    pub(super) fn sysctl_differs(&self, key: &str, value: &str) -> bool {
        let without = match key.find("/#") {
            Some(at) => {
                let (head, tail) = key.split_at(at);
                let leaf = tail.rsplit('/').next().unwrap_or_default();
                let default = format!("{head}/default/{leaf}");
                self.sysctls
                    .get(&default)
                    .cloned()
                    .or_else(|| compiled_default(&default).map(str::to_owned))
            }
            None => compiled_default(key).map(str::to_owned),
        };
        without.as_deref() != Some(value)
    }

    /// Drops the sysctls of interface `index` (it is gone).
    pub(super) fn forget_sysctls(&mut self, index: u32) {
        let mark = format!("/#{index}/");
        self.sysctls.retain(|k, _| !k.contains(&mark));
    }
}

impl FakeKernel {
    /// What is at `/run/netns/<name>`.
    pub(crate) fn ns_inspect(&self, name: &NsName) -> PathState {
        match self.lock().mounted.get(name.as_str()) {
            Some(&ino) => PathState::Mounted { ino },
            None => PathState::Missing,
        }
    }

    /// Creates namespace `name`.
    pub(crate) fn ns_create(&self, name: &NsName, ipv6: bool) -> Result<Created, NetnsError> {
        let ino = {
            let mut state = self.lock();
            if state.mounted.contains_key(name.as_str()) {
                return Err(NetnsError::Exists { name: name.clone() });
            }
            state
                .count_change(format!("create namespace {name}"))
                .map_err(|e| NetnsError::Unshare {
                    source: nix::errno::Errno::from_raw(e),
                })?;
            state.make_ns(name.as_str(), ipv6)
        };
        Ok(Created {
            ino,
            netlink: self.socket(name, ino),
        })
    }

    /// A netlink socket inside namespace `name` (inode `ino`).
    pub(crate) fn ns_open_netlink(
        &self,
        name: &NsName,
        ino: u64,
    ) -> Result<crate::kernel::netlink::Netlink, NetnsError> {
        self.lock().verified(name, ino)?;
        Ok(self.socket(name, ino))
    }

    /// A descriptor standing for namespace `name` (inode `ino`), for `IFLA_NET_NS_FD`.
    pub(crate) fn ns_open(&self, name: &NsName, ino: u64) -> Result<OwnedFd, NetnsError> {
        let mut state = self.lock();
        state.verified(name, ino)?;
        let fd: OwnedFd = std::fs::File::open("/dev/null")
            .map_err(|source| NetnsError::Open {
                path: "/dev/null".into(),
                source,
            })?
            .into();
        state.fds.insert(fd.as_raw_fd(), ino);
        Ok(fd)
    }

    /// Removes `name` from `/run/netns`; the handle keeps the namespace alive.
    pub(crate) fn ns_detach(&self, name: &NsName, ino: u64) -> Result<OwnedFd, NetnsError> {
        let mut state = self.lock();
        state.verified(name, ino)?;
        let path = || std::path::PathBuf::from(format!("/run/netns/{name}"));
        state
            .count_change(format!("detach namespace {name}"))
            .map_err(|e| NetnsError::Unmount {
                path: path(),
                source: nix::errno::Errno::from_raw(e),
            })?;
        let (read_end, write_end) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
                .map_err(|e| NetnsError::Thread(format!("pipe: {e}")))?;
        state.mounted.remove(name.as_str());
        state.held.push((read_end, ino));
        state.fds.insert(write_end.as_raw_fd(), ino);
        Ok(write_end)
    }

    /// Puts a detached namespace back under `name`.
    pub(crate) fn ns_reattach(&self, name: &NsName, handle: OwnedFd) -> Result<(), NetnsError> {
        let mut state = self.lock();
        let path = std::path::PathBuf::from(format!("/run/netns/{name}"));
        let ino = *state
            .fds
            .get(&handle.as_raw_fd())
            .ok_or_else(|| NetnsError::Thread("not a handle of the fake".into()))?;
        if state.mounted.contains_key(name.as_str()) {
            return Err(NetnsError::CreateMountPoint {
                path,
                source: nix::errno::Errno::EEXIST,
            });
        }
        state
            .count_change(format!("reattach namespace {name}"))
            .map_err(|e| NetnsError::BindMount {
                path,
                source: nix::errno::Errno::from_raw(e),
            })?;
        state.mounted.insert(name.to_string(), ino);
        Ok(())
    }

    /// Moves namespace `from` (inode `ino`) to the name `to`.
    pub(crate) fn ns_rename(&self, from: &NsName, ino: u64, to: &NsName) -> Result<(), NetnsError> {
        let mut state = self.lock();
        state.verified(from, ino)?;
        let path = std::path::PathBuf::from(format!("/run/netns/{to}"));
        if state.mounted.contains_key(to.as_str()) {
            return Err(NetnsError::CreateMountPoint {
                path,
                source: nix::errno::Errno::EEXIST,
            });
        }
        state
            .count_change(format!("rename namespace {from} to {to}"))
            .map_err(|e| NetnsError::BindMount {
                path,
                source: nix::errno::Errno::from_raw(e),
            })?;
        state.mounted.remove(from.as_str());
        state.mounted.insert(to.to_string(), ino);
        Ok(())
    }

    /// Removes whatever is mounted under `name`.
    pub(crate) fn ns_remove(&self, name: &NsName) {
        self.lock().mounted.remove(name.as_str());
    }

    /// Reads sysctl `path` (under `/proc/sys`) inside namespace `name` (inode `ino`).
    pub(crate) fn sysctl_read(
        &self,
        name: &NsName,
        ino: u64,
        path: &str,
    ) -> Result<std::io::Result<String>, NetnsError> {
        let state = self.lock();
        state.verified(name, ino)?;
        Ok(state
            .sysctl_key(ino, path)
            .map(|key| format!("{}\n", state.sysctl_value(ino, &key)))
            .map_err(errno_io))
    }

    /// Writes sysctls (paths under `/proc/sys`, in order; the first refused stops the rest)
    /// inside namespace `name` (inode `ino`).
    pub(crate) fn sysctl_write(
        &self,
        name: &NsName,
        ino: u64,
        writes: &[(String, String)],
    ) -> Result<std::io::Result<()>, NetnsError> {
        let mut state = self.lock();
        state.verified(name, ino)?;
        for (path, value) in writes {
            let key = match state.sysctl_key(ino, path) {
                Ok(key) => key,
                Err(errno) => return Ok(Err(errno_io(errno))),
            };
            let words: Vec<&str> = value.split_whitespace().collect();
            if words.is_empty() || words.iter().any(|w| w.parse::<i64>().is_err()) {
                return Ok(Err(errno_io(libc::EINVAL)));
            }
            if let Err(errno) = state.count_change(format!("write {path} in {name}")) {
                return Ok(Err(errno_io(errno)));
            }
            if let Some(ns) = state.namespaces.get_mut(&ino) {
                ns.sysctls.insert(key, words.join("\t"));
            }
        }
        Ok(Ok(()))
    }

    /// Runs firewall tool `tool` inside namespace `name` (inode `ino`).
    pub(crate) fn run_tool(
        &self,
        name: &NsName,
        ino: u64,
        tool: Tool,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<Output, NetnsError> {
        let mut state = self.lock();
        state.verified(name, ino)?;
        if super::tools::Firewall::changes(tool, args) {
            if let Err(errno) = state.count_change(format!("{} {args:?} in {name}", tool.name())) {
                return Ok(Output {
                    success: false,
                    status: "exit status: 1".into(),
                    stdout: String::new(),
                    stderr: format!("{}: {}", tool.name(), errno_io(errno)),
                });
            }
        }
        let ns = state
            .namespaces
            .get_mut(&ino)
            .ok_or_else(|| NetnsError::Thread("the namespace is gone".into()))?;
        Ok(ns.firewall.run(tool, args, stdin))
    }
}
