//! The only module that creates, enters, mounts or unmounts network namespaces.
//!
//! Invariants:
//! * `unshare`/`setns` run only on a fresh OS thread made for the job, never on a tokio
//!   worker; the thread exits when the job is done, so no thread is ever left in another
//!   namespace by mistake.
//! * The helper's own network namespace is never changed: a new namespace is created by
//!   `unshare(CLONE_NEWNET)` on its own thread and pinned by a bind mount of
//!   `/proc/thread-self/ns/net` on `/run/netns/<name>`.
//! * A netlink socket is opened inside the namespace on that thread and handed back; it
//!   stays bound to the namespace, and the caller keeps it for later requests.
//! * Before acting on `/run/netns/<name>`, the namespace's inode is compared with the one
//!   recorded at creation, so a namespace that someone else put under that name is never
//!   touched.
//! * In a unit test only (`cfg(test)`), a `Netns` made by `Netns::in_fake` sends every call
//!   to the fake kernel of `kernel::fake` instead; no other build has that switch.

use std::fs::{self, DirBuilder, File};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use tokio::runtime::Handle as RuntimeHandle;
use tokio::sync::oneshot;
use tsim_protocol::NsName;

use crate::kernel::netlink::{Netlink, NetlinkSocket};

pub(crate) use crate::base::error::NetnsError;

/// Written in every namespace before any interface exists (so every interface inherits
/// them from `default`), for answers that do not depend on the traffic before them: no
/// ICMP redirects sent or taken (a router forwarding a packet back out of the interface it
/// came in on would otherwise move the sender's route to the other router for 300 s), and
/// no rate limit on ICMP errors: neither per destination (`icmp_ratelimit`: a traceroute's
/// second run would lose hops that answered the first) nor for the namespace as a whole
/// (`icmp_ratemask` empty: the kernel's budget of 50 at once and 1000 a second would drop
/// a router's answers while many jobs probe through it). A router's facts may turn them
/// back on with its sysctls.
const DETERMINISTIC: &[(&str, &[u8])] = &[
    ("/proc/sys/net/ipv4/conf/all/send_redirects", b"0"),
    ("/proc/sys/net/ipv4/conf/default/send_redirects", b"0"),
    ("/proc/sys/net/ipv4/conf/all/accept_redirects", b"0"),
    ("/proc/sys/net/ipv4/conf/default/accept_redirects", b"0"),
    ("/proc/sys/net/ipv4/conf/all/secure_redirects", b"0"),
    ("/proc/sys/net/ipv4/conf/default/secure_redirects", b"0"),
    ("/proc/sys/net/ipv4/icmp_ratelimit", b"0"),
    ("/proc/sys/net/ipv4/icmp_ratemask", b"0"),
];

/// Where iproute2 (and so `ip netns list`) looks for named namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// Index of `lo` in a new network namespace.
const LOOPBACK_INDEX: u32 = 1;

/// The inode of the helper's own network namespace, recorded by [`record_home`] in `main`
/// before any namespace is made.
static HOME: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

/// The inode of the calling thread's network namespace.
pub fn thread_netns_ino() -> io::Result<u64> {
    Ok(fs::metadata("/proc/thread-self/ns/net")?.ino())
}

/// Records the calling thread's network namespace as the helper's own. Call once, in `main`,
/// before any other thread exists.
pub fn record_home() -> io::Result<u64> {
    let ino = thread_netns_ino()?;
    Ok(*HOME.get_or_init(|| ino))
}

/// The helper's own network namespace, if [`record_home`] ran.
pub fn home() -> Option<u64> {
    HOME.get().copied()
}

/// The start hook of every thread pool: a pool thread lives for ever, so one born in another
/// namespace (spawned from a thread that entered it) would keep that namespace alive after
/// its deletion, with everything in it. That is a bug in the helper; it aborts rather than
/// go on pinning namespaces.
pub fn check_home_thread() {
    let Some(home) = home() else {
        return;
    };
    match thread_netns_ino() {
        Ok(ino) if ino == home => {}
        found => {
            let name = std::thread::current().name().unwrap_or("?").to_owned();
            tracing::error!(thread = %name, home, found = ?found, "A pool thread started outside the helper's network namespace; aborting");
            std::process::abort();
        }
    }
}

/// What is found at a namespace's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathState {
    /// Nothing.
    Missing,
    /// An empty file that is not a mount: a mount point left by an interrupted creation.
    Placeholder,
    /// A mounted network namespace with this inode number.
    Mounted {
        /// The namespace's inode number.
        ino: u64,
    },
    /// Something else (a directory, a non-empty file, another kind of mount).
    Other,
}

/// A namespace just created: its inode number and a netlink socket inside it.
#[derive(Debug)]
pub struct Created {
    /// The namespace's inode number.
    pub ino: u64,
    /// A netlink socket bound to the namespace.
    pub netlink: Netlink,
}

/// Creates, opens and removes named network namespaces.
#[derive(Debug, Clone)]
pub struct Netns {
    dir: PathBuf,
    runtime: RuntimeHandle,
    /// Set once `/run/netns` is known to be a shared mount point.
    dir_ready: Arc<Mutex<bool>>,
    /// Unit tests: every namespace lives in this fake kernel instead (never in a build
    /// that is not a test).
    #[cfg(test)]
    fake: Option<crate::kernel::fake::FakeKernel>,
}

impl Netns {
    /// Namespaces live under [`NETNS_RUN_DIR`]; netlink sockets are driven by `runtime`.
    pub fn new(runtime: RuntimeHandle) -> Self {
        Self {
            dir: PathBuf::from(NETNS_RUN_DIR),
            runtime,
            dir_ready: Arc::new(Mutex::new(false)),
            #[cfg(test)]
            fake: None,
        }
    }

    /// Unit tests: namespaces in the fake kernel `fake`.
    #[cfg(test)]
    pub(crate) fn in_fake(runtime: RuntimeHandle, fake: crate::kernel::fake::FakeKernel) -> Self {
        Self {
            fake: Some(fake),
            ..Self::new(runtime)
        }
    }

    /// The fake kernel these namespaces live in, in a unit test that asked for one.
    #[cfg(test)]
    pub(crate) fn fake(&self) -> Option<&crate::kernel::fake::FakeKernel> {
        self.fake.as_ref()
    }

    /// Reads sysctl `path` (under `/proc/sys`) inside namespace `name` (inode `ino`).
    pub async fn sysctl_read(
        &self,
        name: &NsName,
        ino: u64,
        path: String,
    ) -> Result<io::Result<String>, NetnsError> {
        #[cfg(test)]
        if let Some(fake) = &self.fake {
            return fake.sysctl_read(name, ino, &path);
        }
        self.run_in(name, ino, move || fs::read_to_string(path))
            .await
    }

    /// Writes sysctls (paths under `/proc/sys`, in order; the first that fails stops the
    /// rest) inside namespace `name` (inode `ino`).
    pub async fn sysctl_write(
        &self,
        name: &NsName,
        ino: u64,
        writes: Vec<(String, String)>,
    ) -> Result<io::Result<()>, NetnsError> {
        #[cfg(test)]
        if let Some(fake) = &self.fake {
            return fake.sysctl_write(name, ino, &writes);
        }
        self.run_in(name, ino, move || {
            writes.iter().try_for_each(|(p, v)| fs::write(p, v))
        })
        .await
    }

    /// The path of a namespace's mount point.
    pub fn path(&self, name: &NsName) -> PathBuf {
        self.dir.join(name.as_str())
    }

    /// What is at a namespace's path now.
    pub fn inspect(&self, name: &NsName) -> Result<PathState, NetnsError> {
        #[cfg(test)]
        if let Some(fake) = &self.fake {
            return Ok(fake.ns_inspect(name));
        }
        inspect_path(&self.path(name))
    }

    /// Creates namespace `name`: mount point, `unshare` on a dedicated thread, bind mount,
    /// IPv6 DAD off, a netlink socket inside it, and `lo` up. On any failure nothing is left.
    /// With `ipv6` false, IPv6 is disabled inside.
    pub async fn create(&self, name: &NsName, ipv6: bool) -> Result<Created, NetnsError> {
        #[cfg(test)]
        if let Some(fake) = &self.fake {
            return fake.ns_create(name, ipv6);
        }
        let path = self.path(name);
        let job = {
            let (dir, path, name) = (self.dir.clone(), path.clone(), name.clone());
            let dir_ready = Arc::clone(&self.dir_ready);
            move || create_on_this_thread(&dir, &dir_ready, &path, &name, ipv6)
        };
        let (ino, socket) = self.on_own_thread(name, job).await??;
        let netlink = Netlink::start(name.clone(), socket);
        Ok(Created { ino, netlink })
    }

    /// Opens a netlink socket inside namespace `name`, which must be the namespace with inode
    /// `ino`.
    pub async fn open_netlink(&self, name: &NsName, ino: u64) -> Result<Netlink, NetnsError> {
        #[cfg(test)]
        if let Some(fake) = &self.fake {
            return fake.ns_open_netlink(name, ino);
        }
        let path = self.path(name);
        let ns = name.clone();
        let socket = self
            .on_own_thread(name, move || {
                let fd = open_verified(&path, ino)?;
                nix::sched::setns(&fd, CloneFlags::CLONE_NEWNET).map_err(|source| {
                    NetnsError::Setns {
                        name: ns.clone(),
                        source,
                    }
                })?;
                crate::kernel::netlink::open_socket()
                    .map_err(|source| NetnsError::NetlinkSocket { name: ns, source })
            })
            .await??;
        Ok(Netlink::start(name.clone(), socket))
    }

    /// Runs `job` on a dedicated thread that has entered namespace `name` (inode `ino`).
    /// For things only reachable from inside, such as `/proc/sys/net`.
    pub async fn run_in<T, F>(&self, name: &NsName, ino: u64, job: F) -> Result<T, NetnsError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        #[cfg(test)]
        if self.fake.is_some() {
            return Err(NetnsError::Thread(
                "the fake kernel cannot run code inside a namespace".into(),
            ));
        }
        let path = self.path(name);
        let ns = name.clone();
        self.on_own_thread(name, move || {
            let fd = open_verified(&path, ino)?;
            nix::sched::setns(&fd, CloneFlags::CLONE_NEWNET)
                .map_err(|source| NetnsError::Setns { name: ns, source })?;
            Ok(job())
        })
        .await?
    }

    /// Starts `command` inside namespace `name` (inode `ino`): it is spawned from a dedicated
    /// thread that has entered the namespace, so the child is born there.
    pub async fn spawn_in(
        &self,
        name: &NsName,
        ino: u64,
        mut command: tokio::process::Command,
    ) -> Result<std::io::Result<tokio::process::Child>, NetnsError> {
        self.run_in(name, ino, move || command.spawn()).await
    }

    /// Opens namespace `name` (inode `ino`) for passing to the kernel (e.g. as the namespace
    /// a veth's peer is born in).
    pub fn open(&self, name: &NsName, ino: u64) -> Result<OwnedFd, NetnsError> {
        #[cfg(test)]
        if let Some(fake) = &self.fake {
            return fake.ns_open(name, ino);
        }
        open_verified(&self.path(name), ino)
    }

    /// Removes namespace `name` (inode `ino`) from `/run/netns` and returns a handle that
    /// keeps it alive: drop it to let the kernel free the namespace, or pass it to
    /// [`Netns::reattach`] to undo.
    pub async fn detach(&self, name: &NsName, ino: u64) -> Result<OwnedFd, NetnsError> {
        #[cfg(test)]
        if let Some(fake) = &self.fake {
            return fake.ns_detach(name, ino);
        }
        let path = self.path(name);
        blocking(move || {
            let fd = open_verified(&path, ino)?;
            nix::mount::umount2(&path, MntFlags::MNT_DETACH).map_err(|source| {
                NetnsError::Unmount {
                    path: path.clone(),
                    source,
                }
            })?;
            fs::remove_file(&path).map_err(|source| NetnsError::Unlink { path, source })?;
            Ok(fd)
        })
        .await
    }

    /// Puts a detached namespace back under its name.
    pub async fn reattach(&self, name: &NsName, fd: OwnedFd) -> Result<(), NetnsError> {
        #[cfg(test)]
        if let Some(fake) = &self.fake {
            return fake.ns_reattach(name, fd);
        }
        let path = self.path(name);
        let name = name.clone();
        blocking(move || {
            create_mount_point(&path, &name)?;
            let source = format!("/proc/self/fd/{}", fd.as_raw_fd());
            let mounted = nix::mount::mount(
                Some(source.as_str()),
                &path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            );
            if let Err(source) = mounted {
                let _ = fs::remove_file(&path);
                return Err(NetnsError::BindMount { path, source });
            }
            Ok(())
        })
        .await
    }

    /// Moves namespace `from` (inode `ino`) to the name `to`: mounted under `to` first, then
    /// removed from `from`, so that a crash in between leaves it under both names (and each
    /// name's record decides), never under none.
    pub async fn rename(&self, from: &NsName, ino: u64, to: &NsName) -> Result<(), NetnsError> {
        #[cfg(test)]
        if let Some(fake) = &self.fake {
            return fake.ns_rename(from, ino, to);
        }
        let (old, new) = (self.path(from), self.path(to));
        let to = to.clone();
        blocking(move || {
            let fd = open_verified(&old, ino)?;
            create_mount_point(&new, &to)?;
            let source = format!("/proc/self/fd/{}", fd.as_raw_fd());
            let flags = MsFlags::MS_BIND;
            if let Err(source) = nix::mount::mount(Some(source.as_str()), &new, None::<&str>, flags, None::<&str>) {
                let _ = fs::remove_file(&new);
                return Err(NetnsError::BindMount { path: new, source });
            }
            if let Err(source) = nix::mount::umount2(&old, MntFlags::MNT_DETACH) {
                // Leave it as it was: under its old name only.
                let _ = nix::mount::umount2(&new, MntFlags::MNT_DETACH);
                let _ = fs::remove_file(&new);
                return Err(NetnsError::Unmount { path: old, source });
            }
            if let Err(e) = fs::remove_file(&old) {
                tracing::warn!(path = %old.display(), error = %e, "Cannot remove an emptied namespace mount point");
            }
            Ok(())
        })
        .await
    }

    /// Removes whatever mount and file is at namespace `name`'s path. For recovery only,
    /// after the caller has decided the path is ours.
    pub fn remove_blocking(&self, name: &NsName) -> Result<(), NetnsError> {
        #[cfg(test)]
        if let Some(fake) = &self.fake {
            fake.ns_remove(name);
            return Ok(());
        }
        remove_path(&self.path(name))
    }

    /// Runs `job` on a new OS thread that has entered the runtime (so sockets it opens can be
    /// registered with the reactor) and waits for it without blocking a worker.
    async fn on_own_thread<T, F>(&self, name: &NsName, job: F) -> Result<T, NetnsError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let runtime = self.runtime.clone();
        std::thread::Builder::new()
            .name(format!("ns-{}", truncate(name.as_str(), 12)))
            .stack_size(256 * 1024)
            .spawn(move || {
                let _entered = runtime.enter();
                let _ = tx.send(job());
            })
            .map_err(|e| NetnsError::Thread(format!("cannot spawn: {e}")))?;
        rx.await
            .map_err(|_| NetnsError::Thread("it panicked".into()))
    }
}

/// Runs on a dedicated thread, which it leaves inside the new namespace (the thread exits).
fn create_on_this_thread(
    dir: &Path,
    dir_ready: &Mutex<bool>,
    path: &Path,
    name: &NsName,
    ipv6: bool,
) -> Result<(u64, NetlinkSocket), NetnsError> {
    ensure_run_dir(dir, dir_ready)?;
    create_mount_point(path, name)?;
    let undo = |e: NetnsError| {
        if let Err(cleanup) = remove_path(path) {
            tracing::error!(ns = %name, error = %crate::base::error::chain(&cleanup), "Cannot undo a failed namespace creation");
        }
        e
    };
    nix::sched::unshare(CloneFlags::CLONE_NEWNET)
        .map_err(|source| undo(NetnsError::Unshare { source }))?;
    nix::mount::mount(
        Some("/proc/thread-self/ns/net"),
        path,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|source| {
        undo(NetnsError::BindMount {
            path: path.to_owned(),
            source,
        })
    })?;
    let ino = fs::metadata(path)
        .map_err(|source| {
            undo(NetnsError::Open {
                path: path.to_owned(),
                source,
            })
        })?
        .ino();
    // IPv6 duplicate-address detection would hold new addresses back for seconds; without
    // IPv6 at all, links get no link-local addresses and send no IPv6 traffic.
    let family: &[(&'static str, &[u8])] = if ipv6 {
        &[
            ("/proc/sys/net/ipv6/conf/all/accept_dad", b"0"),
            ("/proc/sys/net/ipv6/conf/default/accept_dad", b"0"),
            ("/proc/sys/net/ipv6/conf/all/accept_redirects", b"0"),
            ("/proc/sys/net/ipv6/conf/default/accept_redirects", b"0"),
        ]
    } else {
        &[
            ("/proc/sys/net/ipv6/conf/all/disable_ipv6", b"1"),
            ("/proc/sys/net/ipv6/conf/default/disable_ipv6", b"1"),
        ]
    };
    for (key, value) in DETERMINISTIC.iter().chain(family) {
        match fs::write(key, value) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {} // IPv6 is disabled in the kernel.
            Err(source) => {
                return Err(undo(NetnsError::Sysctl {
                    name: name.clone(),
                    key,
                    source,
                }));
            }
        }
    }
    loopback_up().map_err(|source| {
        undo(NetnsError::LoopbackUp {
            name: name.clone(),
            source,
        })
    })?;
    let socket = crate::kernel::netlink::open_socket().map_err(|source| {
        undo(NetnsError::NetlinkSocket {
            name: name.clone(),
            source,
        })
    })?;
    Ok((ino, socket))
}

/// Sets `lo` up in the calling thread's namespace, with one blocking netlink exchange.
fn loopback_up() -> io::Result<()> {
    use rtnetlink::packet_core::{NLM_F_ACK, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
    use rtnetlink::packet_route::RouteNetlinkMessage;
    use rtnetlink::packet_route::link::{LinkFlags, LinkMessage};
    use rtnetlink::sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let mut link = LinkMessage::default();
    link.header.index = LOOPBACK_INDEX;
    link.header.flags = LinkFlags::Up;
    link.header.change_mask = LinkFlags::Up;
    let mut request = NetlinkMessage::from(RouteNetlinkMessage::SetLink(link));
    request.header.flags = NLM_F_REQUEST | NLM_F_ACK;
    request.header.sequence_number = 1;
    request.finalize();
    let mut buf = vec![0u8; request.buffer_len()];
    request.serialize(&mut buf);
    socket.send(&buf, 0)?;
    let mut answer = vec![0u8; 4096];
    let len = socket.recv(&mut &mut answer[..], 0)?;
    let message = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&answer[..len])
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    match message.payload {
        NetlinkPayload::Error(e) if e.code.is_some() => Err(e.to_io()),
        _ => Ok(()),
    }
}

/// Makes sure `/run/netns` exists and is a shared mount point, as iproute2 does, so that the
/// namespaces mounted there are seen by every mount namespace that shares it.
fn ensure_run_dir(dir: &Path, ready: &Mutex<bool>) -> Result<(), NetnsError> {
    let mut ready = ready.lock().unwrap_or_else(|p| p.into_inner());
    if *ready {
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|source| NetnsError::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
    // Other helpers (and tests) may do the same at the same time: serialise on the directory.
    let handle = File::open(dir).map_err(|source| NetnsError::CreateDir {
        path: dir.to_owned(),
        source,
    })?;
    let _lock =
        Flock::lock(handle, FlockArg::LockExclusive).map_err(|(_, e)| NetnsError::MakeShared {
            path: dir.to_owned(),
            source: e,
        })?;
    let mut bound = false;
    loop {
        let shared = nix::mount::mount(
            None::<&str>,
            dir,
            None::<&str>,
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        );
        match shared {
            Ok(()) => break,
            Err(Errno::EINVAL) if !bound => {
                // Not a mount point yet: bind it onto itself, then make that shared.
                nix::mount::mount(
                    Some(dir),
                    dir,
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )
                .map_err(|source| NetnsError::MakeShared {
                    path: dir.to_owned(),
                    source,
                })?;
                bound = true;
            }
            Err(source) => {
                return Err(NetnsError::MakeShared {
                    path: dir.to_owned(),
                    source,
                });
            }
        }
    }
    *ready = true;
    Ok(())
}

/// Creates the empty file a namespace is mounted on; fails if anything is there.
fn create_mount_point(path: &Path, name: &NsName) -> Result<(), NetnsError> {
    let flags =
        OFlag::O_RDONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW;
    match nix::fcntl::open(path, flags, Mode::empty()) {
        Ok(fd) => {
            drop(fd);
            Ok(())
        }
        Err(Errno::EEXIST) => Err(NetnsError::Exists { name: name.clone() }),
        Err(source) => Err(NetnsError::CreateMountPoint {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Opens a namespace's path and checks that it is the namespace with inode `ino`.
fn open_verified(path: &Path, ino: u64) -> Result<OwnedFd, NetnsError> {
    let open_err = |source| NetnsError::Open {
        path: path.to_owned(),
        source,
    };
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(open_err)?;
    let meta = file.metadata().map_err(open_err)?;
    let is_ns = nix::sys::statfs::fstatfs(&file)
        .map(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
        .unwrap_or(false);
    if !is_ns || meta.ino() != ino {
        return Err(NetnsError::NotOurs {
            path: path.to_owned(),
        });
    }
    Ok(file.into())
}

fn inspect_path(path: &Path) -> Result<PathState, NetnsError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(PathState::Missing),
        Err(source) => {
            return Err(NetnsError::Open {
                path: path.to_owned(),
                source,
            });
        }
    };
    let fs_type = nix::sys::statfs::statfs(path)
        .map_err(|e| NetnsError::Open {
            path: path.to_owned(),
            source: e.into(),
        })?
        .filesystem_type();
    if fs_type == nix::sys::statfs::NSFS_MAGIC {
        return Ok(PathState::Mounted { ino: meta.ino() });
    }
    let parent_dev = path
        .parent()
        .and_then(|p| fs::metadata(p).ok())
        .map(|m| m.dev());
    if meta.is_file() && meta.len() == 0 && parent_dev == Some(meta.dev()) {
        return Ok(PathState::Placeholder);
    }
    Ok(PathState::Other)
}

/// Unmounts (if mounted) and removes a namespace path; missing pieces are not errors.
fn remove_path(path: &Path) -> Result<(), NetnsError> {
    match nix::mount::umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
        Err(source) => {
            return Err(NetnsError::Unmount {
                path: path.to_owned(),
                source,
            });
        }
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(NetnsError::Unlink {
            path: path.to_owned(),
            source,
        }),
    }
}

async fn blocking<T, F>(job: F) -> Result<T, NetnsError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, NetnsError> + Send + 'static,
{
    tokio::task::spawn_blocking(job)
        .await
        .map_err(|e| NetnsError::Thread(format!("blocking task failed: {e}")))?
}

fn truncate(s: &str, max: usize) -> &str {
    &s[..s.len().min(max)]
}
