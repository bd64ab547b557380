//! The jail around every external tool: the second wall behind the payload screen.
//!
//! Each `iptables-restore`, `iptables-save`, `ip6tables-*` and `ipset` run gets, in the child
//! between fork and exec ([`Jail::attach`]), in this order:
//! 1. a mount namespace of the tools (made once at start, see `mount_namespace`; entered
//!    with `setns`): `/` recursively private, `/run`, `/tmp`, `/var/tmp` and `/dev/shm`
//!    hidden behind empty read-only tmpfs mounts (no pathname socket of the host is
//!    reachable there), then the whole tree read-only and nosuid (`mount_setattr`);
//! 2. `no_new_privs`;
//! 3. a Landlock ruleset (built once at start) that handles every file system right, TCP
//!    bind and connect, and the signal and abstract-socket scopes of the newest ABI the crate
//!    knows, and allows only reading and executing the tool's binary and loader, reading its
//!    libraries, its xtables extensions (all but `libxt_IDLETIMER.so` and `libxt_LED.so`,
//!    whose kernel side creates host-global sysfs objects: without their extension iptables
//!    cannot even parse those targets) and a few files under /etc;
//! 4. capabilities cut, in every set including the bounding set, to CAP_NET_ADMIN (ipset)
//!    or CAP_NET_ADMIN and CAP_NET_RAW (iptables: the `set` match and `SET` target talk to
//!    ipset over a raw socket's getsockopt);
//! 5. every descriptor but 0, 1 and 2 marked close-on-exec (`close_range`);
//! 6. resource limits: 60 s of CPU, 1 GiB of address space, no core dumps, no file writes
//!    (`RLIMIT_FSIZE` 0), 64 descriptors;
//! 7. a seccomp filter, last (see [`seccomp_program`]): it allows the `execve` that follows.
//!
//! Measured with `strace -f -e trace=%file,%process,%network` on the ten test routers'
//! payloads, `iptables-save`, `ip6tables-restore`/`-save`, a payload with service names and
//! `-m set`, and `ipset restore`/`save`/`list` (iptables 1.8.9 nft, ipset 7.17):
//! * iptables: the binary (`xtables-nft-multi`), `libxtables`, `libnftnl`, `libmnl`, `libc`,
//!   `/etc/ld.so.cache`, `/etc/gai.conf` (getaddrinfo, used even for numeric ports),
//!   `/etc/nsswitch.conf` and `/etc/services` (named ports), `/etc/localtime` (save's
//!   header), the extensions it names, `/proc/net/ip{,6}_tables_names` (save's check for
//!   legacy tables: not allowed, and the check just passes), a connect to
//!   `/var/run/nscd/socket` (absent; refused by the jail, glibc goes on), UDP sockets that
//!   getaddrinfo connects to sort addresses, netlink sockets, and a raw IPv4 socket for
//!   `-m set`;
//! * ipset: the binary, `libipset`, `libmnl`, `libc`, `/etc/ld.so.cache`, `/etc/resolv.conf`,
//!   `/etc/host.conf`, and netlink sockets;
//! * no tool writes a file, runs a program or needs another capability. iptables-nft 1.8.9
//!   never runs the `-M`/`--modprobe` program: only the legacy binaries call
//!   `xtables_load_ko`; the nft ones register `nft_compatible_revision`, which asks over
//!   netlink.
//!
//! Why seccomp too: Landlock of ABI 7 does not cover connecting to a pathname Unix socket
//! (that is ABI 9's `ResolveUnix`) and hiding directories only covers the usual places, so
//! the filter allows `socket()` only for AF_NETLINK, AF_INET and AF_INET6; and it takes away
//! kernel interfaces no tool needs (user namespaces, `bpf`, `io_uring`, `keyctl`, module
//! loading, mounts, `ptrace`, `perf_event_open`, `userfaultfd`, ...). It is a deny list
//! (EPERM), not an allow list: an allow list would have to follow glibc and the tools from
//! release to release, for little more.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset,
    RulesetAttr, RulesetCreatedAttr, Scope,
};

use crate::kernel::tools::{Tool, Tools};

/// The newest Landlock ABI the crate knows: every right it defines is handled, so a kernel
/// that enforces more enforces it on the tools too.
const BEST_ABI: ABI = ABI::V10;

/// Extensions left out of the allowed files: their kernel side creates objects outside the
/// network namespace (`/sys/class/xt_idletimer/timers/*`, LED triggers).
pub const FORBIDDEN_EXTENSIONS: [&str; 2] = ["libxt_IDLETIMER.so", "libxt_LED.so"];

/// Files under /etc the tools read (see the module documentation for how they were found).
pub const ETC_FILES: [&str; 9] = [
    "/etc/ld.so.cache",
    "/etc/gai.conf",
    "/etc/nsswitch.conf",
    "/etc/services",
    "/etc/protocols",
    "/etc/hosts",
    "/etc/host.conf",
    "/etc/resolv.conf",
    "/etc/localtime",
];

/// CPU seconds one run may use (the soft limit; the hard limit is one more).
pub const CPU_SECONDS: u64 = 60;
/// Address space of one run. The largest test network's payloads need under 20 MiB.
pub const ADDRESS_SPACE: u64 = 1 << 30;
/// Descriptors one run may open.
pub const OPEN_FILES: u64 = 64;

#[cfg(target_arch = "x86_64")]
const TRIPLET: &str = "x86_64-linux-gnu";
#[cfg(target_arch = "aarch64")]
const TRIPLET: &str = "aarch64-linux-gnu";
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const TRIPLET: &str = "unknown-linux-gnu";

/// A failed step of setting the jail up at start.
#[derive(Debug, thiserror::Error)]
pub enum JailError {
    /// The tool's binary could not be read or parsed.
    #[error("Cannot read the libraries {path} needs: {message}")]
    Elf {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A library a binary needs was not found in the system's library directories.
    #[error("Cannot find {name}, which {by} needs")]
    Library {
        /// The library's name.
        name: String,
        /// The file that needs it.
        by: PathBuf,
    },
    /// The Landlock ruleset could not be built.
    #[error("Cannot build the Landlock ruleset for {tool}: {message}")]
    Landlock {
        /// The tool.
        tool: String,
        /// The crate's error.
        message: String,
    },
    /// The jail's mount namespace could not be made.
    #[error("Cannot make the tools' mount namespace: cannot {step}: {source}")]
    Mounts {
        /// The step.
        step: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The seccomp filter could not be compiled.
    #[error("Cannot compile the seccomp filter: {0}")]
    Seccomp(String),
    /// A trial run of a jailed tool failed.
    #[error("A jailed {tool} does not run: {message}")]
    Trial {
        /// The tool.
        tool: String,
        /// What happened.
        message: String,
    },
}

/// What the jail can do on this kernel, for the log and `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LandlockState {
    /// Landlock is enforced, with this kernel ABI.
    Enforced(u32),
    /// The kernel lacks Landlock (or it is disabled at boot).
    Unsupported(String),
}

/// Everything a jailed child needs, prepared in the parent so that the child only makes
/// system calls.
#[derive(Debug)]
pub struct Prepared {
    mounts: Arc<OwnedFd>,
    ruleset: Option<OwnedFd>,
    keep_caps: u64,
    rlimits: [(libc::__rlimit_resource_t, libc::rlimit); 5],
    seccomp: seccompiler::BpfProgram,
    #[cfg(target_arch = "x86_64")]
    no_x32: [libc::sock_filter; 9],
}

/// The jail of every tool, built once at start.
#[derive(Debug)]
pub struct Jail {
    tools: HashMap<Tool, Arc<Prepared>>,
    landlock: LandlockState,
    off: bool,
}

/// The kernel's Landlock ABI version, or why there is none.
#[allow(
    unsafe_code,
    reason = "the ABI query is a raw system call with no safe wrapper"
)]
pub fn landlock_abi() -> LandlockState {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a null attribute pointer, size 0 and the VERSION flag the kernel reads and
    // writes no memory; it returns the ABI version or an error.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if v > 0 {
        LandlockState::Enforced(v as u32)
    } else {
        let e = io::Error::last_os_error();
        let why = match e.raw_os_error() {
            Some(libc::EOPNOTSUPP) => "Landlock is disabled (add landlock to the lsm= boot option)",
            _ => "the kernel has no Landlock",
        };
        LandlockState::Unsupported(format!("{why}: {e}"))
    }
}

impl Jail {
    /// Builds the jail of every tool found, and runs each jailed once (`--version`), so that
    /// a jail this kernel cannot set up stops the start with a clear error.
    pub fn prepare(tools: &Tools) -> Result<Self, JailError> {
        let landlock = landlock_abi();
        let seccomp = seccomp_program()?;
        let mounts = Arc::new(mount_namespace()?);
        let mut prepared = HashMap::new();
        for tool in Tool::ALL {
            let Some(path) = tools.path(tool) else {
                continue;
            };
            let allowed = allowed_files(path, tool)?;
            let ruleset = match landlock {
                LandlockState::Enforced(_) => Some(ruleset(&allowed, tool.name())?),
                LandlockState::Unsupported(_) => None,
            };
            let job = Arc::new(Prepared::new(
                Arc::clone(&mounts),
                ruleset,
                tool_caps(tool),
                seccomp.clone(),
            ));
            trial(path, tool, &job)?;
            prepared.insert(tool, job);
        }
        Ok(Self {
            tools: prepared,
            landlock,
            off: false,
        })
    }

    /// No jail at all (a test-only switch shows with it that the attacks are real; debug
    /// builds only).
    #[cfg(any(test, debug_assertions))]
    pub fn off() -> Self {
        Self {
            tools: HashMap::new(),
            landlock: LandlockState::Unsupported("the jail is switched off".into()),
            off: true,
        }
    }

    /// What Landlock does here.
    pub fn landlock(&self) -> &LandlockState {
        &self.landlock
    }

    /// Whether every layer, Landlock included, is applied to the tools.
    pub fn complete(&self) -> bool {
        !self.off && matches!(self.landlock, LandlockState::Enforced(_))
    }

    /// One line for the log and `status`.
    pub fn describe(&self) -> String {
        match (&self.landlock, self.off) {
            (_, true) => "off (test switch): tools run with the helper's rights".into(),
            (LandlockState::Enforced(abi), _) => format!(
                "mount namespace (read-only), Landlock ABI {abi}, capabilities, no_new_privs, rlimits, seccomp"
            ),
            (LandlockState::Unsupported(why), _) => format!(
                "without Landlock ({why}): mount namespace (read-only), capabilities, no_new_privs, rlimits, seccomp"
            ),
        }
    }

    /// Makes `command` (which runs `tool`) enter the jail between fork and exec.
    #[allow(
        unsafe_code,
        reason = "pre_exec runs code in the child between fork and exec"
    )]
    pub fn attach(&self, command: &mut tokio::process::Command, tool: Tool) {
        let Some(job) = self.tools.get(&tool).cloned() else {
            return;
        };
        // SAFETY: the closure only makes async-signal-safe system calls on data prepared in
        // the parent (see `Prepared::enter`); it allocates nothing and takes no lock.
        unsafe {
            command.pre_exec(move || job.enter());
        }
    }
}

/// Capabilities each tool keeps (measured: see the module documentation).
fn tool_caps(tool: Tool) -> u64 {
    use caps::Capability::{CAP_NET_ADMIN, CAP_NET_RAW};
    match tool {
        Tool::Ipset => 1 << CAP_NET_ADMIN.index(),
        _ => (1 << CAP_NET_ADMIN.index()) | (1 << CAP_NET_RAW.index()),
    }
}

/// Runs `path --version` (`ipset version`) in the jail, in the helper's own namespace.
#[allow(
    unsafe_code,
    reason = "pre_exec runs code in the child between fork and exec"
)]
fn trial(path: &Path, tool: Tool, job: &Arc<Prepared>) -> Result<(), JailError> {
    let arg = if tool == Tool::Ipset {
        "version"
    } else {
        "--version"
    };
    let mut cmd = std::process::Command::new(path);
    cmd.arg(arg)
        .env_clear()
        .current_dir("/")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let job = Arc::clone(job);
    // SAFETY: as in `Jail::attach`.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || job.enter());
    }
    let fail = |message: String| JailError::Trial {
        tool: tool.name().to_owned(),
        message,
    };
    let out = cmd.output().map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(fail(format!("{}: {}", out.status, stderr.trim())));
    }
    Ok(())
}

/// The files a tool may read, and those it may also execute.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Allowed {
    /// Readable and executable: the binary and its loader.
    pub exec: BTreeSet<PathBuf>,
    /// Readable only.
    pub read: BTreeSet<PathBuf>,
}

/// The directories the loader searches by default.
fn library_dirs() -> Vec<PathBuf> {
    [
        format!("/lib/{TRIPLET}"),
        format!("/usr/lib/{TRIPLET}"),
        "/lib64".into(),
        "/usr/lib64".into(),
        "/lib".into(),
        "/usr/lib".into(),
    ]
    .into_iter()
    .map(PathBuf::from)
    .collect()
}

/// The xtables extensions directory, if there is one.
fn xtables_dir() -> Option<PathBuf> {
    [
        format!("/usr/lib/{TRIPLET}/xtables"),
        "/usr/lib64/xtables".into(),
        "/usr/lib/xtables".into(),
        "/lib/xtables".into(),
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|d| d.is_dir())
}

/// Everything `binary` (run as `tool`) needs: itself, its loader, its libraries (followed
/// through `DT_NEEDED`), for iptables the extensions but [`FORBIDDEN_EXTENSIONS`] and their
/// libraries, and [`ETC_FILES`] that exist.
pub fn allowed_files(binary: &Path, tool: Tool) -> Result<Allowed, JailError> {
    let mut allowed = Allowed::default();
    let mut objects = vec![std::fs::canonicalize(binary).map_err(|e| JailError::Elf {
        path: binary.to_owned(),
        message: e.to_string(),
    })?];
    allowed.exec.insert(objects[0].clone());
    if tool != Tool::Ipset {
        if let Some(dir) = xtables_dir() {
            let entries = std::fs::read_dir(&dir).map_err(|e| JailError::Elf {
                path: dir.clone(),
                message: e.to_string(),
            })?;
            let mut names: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.ends_with(".so") && !FORBIDDEN_EXTENSIONS.contains(&n))
                })
                .collect();
            names.sort();
            for path in names {
                // Some extensions are links to others (libipt_* to libxt_*): allow the link's
                // target, and what the link's name opens is that same file.
                if let Ok(real) = std::fs::canonicalize(&path) {
                    let name = real.file_name().and_then(|n| n.to_str()).unwrap_or("");
                    if !FORBIDDEN_EXTENSIONS.contains(&name) {
                        objects.push(real);
                    }
                }
            }
        }
    }
    let dirs = library_dirs();
    let mut seen = BTreeSet::new();
    while let Some(object) = objects.pop() {
        if !seen.insert(object.clone()) {
            continue;
        }
        let bytes = std::fs::read(&object).map_err(|e| JailError::Elf {
            path: object.clone(),
            message: e.to_string(),
        })?;
        let deps = elf_deps(&bytes).map_err(|message| JailError::Elf {
            path: object.clone(),
            message,
        })?;
        if let Some(interp) = deps.interp {
            let real = std::fs::canonicalize(&interp).unwrap_or_else(|_| PathBuf::from(&interp));
            allowed.exec.insert(real);
        }
        if !allowed.exec.contains(&object) {
            allowed.read.insert(object.clone());
        }
        for name in deps.needed {
            let found = dirs
                .iter()
                .map(|d| d.join(&name))
                .find(|p| p.is_file())
                .and_then(|p| std::fs::canonicalize(p).ok());
            match found {
                Some(path) => objects.push(path),
                None => {
                    return Err(JailError::Library {
                        name,
                        by: object.clone(),
                    });
                }
            }
        }
    }
    for file in ETC_FILES {
        if let Ok(real) = std::fs::canonicalize(file) {
            allowed.read.insert(real);
        }
    }
    for exec in &allowed.exec {
        allowed.read.remove(exec);
    }
    Ok(allowed)
}

/// What an ELF object asks of the loader.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ElfDeps {
    /// `PT_INTERP`: the program interpreter.
    pub interp: Option<String>,
    /// `DT_NEEDED`: the libraries, by name.
    pub needed: Vec<String>,
}

/// Reads `PT_INTERP` and the `DT_NEEDED` names of a 64-bit little-endian ELF object.
pub fn elf_deps(b: &[u8]) -> Result<ElfDeps, String> {
    let u16_at = |o: usize| -> Result<u64, String> {
        b.get(o..o + 2)
            .map(|s| u64::from(u16::from_le_bytes([s[0], s[1]])))
            .ok_or_else(|| "truncated".to_owned())
    };
    let u32_at = |o: usize| -> Result<u64, String> {
        b.get(o..o + 4)
            .map(|s| u64::from(u32::from_le_bytes(s.try_into().expect("4 bytes"))))
            .ok_or_else(|| "truncated".to_owned())
    };
    let u64_at = |o: usize| -> Result<u64, String> {
        b.get(o..o + 8)
            .map(|s| u64::from_le_bytes(s.try_into().expect("8 bytes")))
            .ok_or_else(|| "truncated".to_owned())
    };
    let cstr_at = |o: usize| -> Result<String, String> {
        let rest = b.get(o..).ok_or("string out of range")?;
        let end = rest
            .iter()
            .position(|&c| c == 0)
            .ok_or("unterminated string")?;
        String::from_utf8(rest[..end].to_vec()).map_err(|_| "string not UTF-8".to_owned())
    };
    if b.get(..4) != Some(b"\x7fELF") || b.get(4) != Some(&2) || b.get(5) != Some(&1) {
        return Err("not a 64-bit little-endian ELF object".into());
    }
    let phoff = u64_at(0x20)? as usize;
    let phentsize = u16_at(0x36)? as usize;
    let phnum = u16_at(0x38)? as usize;
    let mut deps = ElfDeps::default();
    let mut loads = Vec::new();
    let mut dynamic = None;
    for i in 0..phnum {
        let h = phoff + i * phentsize;
        let kind = u32_at(h)?;
        let (offset, vaddr, filesz) = (u64_at(h + 8)?, u64_at(h + 16)?, u64_at(h + 32)?);
        match kind {
            1 => loads.push((vaddr, filesz, offset)),
            2 => dynamic = Some((offset as usize, filesz as usize)),
            3 => deps.interp = Some(cstr_at(offset as usize)?),
            _ => {}
        }
    }
    let Some((dyn_off, dyn_size)) = dynamic else {
        return Ok(deps);
    };
    let mut needed = Vec::new();
    let mut strtab = None;
    for i in 0..dyn_size / 16 {
        let tag = u64_at(dyn_off + i * 16)?;
        let val = u64_at(dyn_off + i * 16 + 8)?;
        match tag {
            0 => break,
            1 => needed.push(val),
            5 => strtab = Some(val),
            _ => {}
        }
    }
    if needed.is_empty() {
        return Ok(deps);
    }
    let strtab = strtab.ok_or("DT_NEEDED without DT_STRTAB")?;
    let strtab_off = loads
        .iter()
        .find(|(vaddr, size, _)| (*vaddr..vaddr + size).contains(&strtab))
        .map(|(vaddr, _, off)| strtab - vaddr + off)
        .ok_or("DT_STRTAB outside every segment")?;
    for n in needed {
        deps.needed.push(cstr_at((strtab_off + n) as usize)?);
    }
    Ok(deps)
}

/// The ruleset: every right of [`BEST_ABI`] handled, `allowed` granted.
fn ruleset(allowed: &Allowed, tool: &str) -> Result<OwnedFd, JailError> {
    let err = |e: &dyn std::fmt::Display| JailError::Landlock {
        tool: tool.to_owned(),
        message: e.to_string(),
    };
    let read: landlock::BitFlags<AccessFs> = AccessFs::ReadFile.into();
    let exec = AccessFs::ReadFile | AccessFs::Execute;
    let mut created = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(BEST_ABI))
        .map_err(|e| err(&e))?
        .handle_access(AccessNet::from_all(BEST_ABI))
        .map_err(|e| err(&e))?
        .scope(Scope::from_all(BEST_ABI))
        .map_err(|e| err(&e))?
        .create()
        .map_err(|e| err(&e))?;
    let rules = allowed
        .exec
        .iter()
        .map(|p| (p, exec))
        .chain(allowed.read.iter().map(|p| (p, read)));
    for (path, access) in rules {
        let fd = PathFd::new(path).map_err(|e| err(&format!("{}: {e}", path.display())))?;
        created = created
            .add_rule(PathBeneath::new(fd, access))
            .map_err(|e| err(&e))?;
    }
    let fd: Option<OwnedFd> = created.into();
    fd.ok_or_else(|| err(&"the kernel gave no ruleset"))
}

/// The seccomp filter: a deny list answered with EPERM, `socket()` only for AF_NETLINK,
/// AF_INET and AF_INET6, and no `clone` of new namespaces (`clone3`: see [`Prepared`]'s
/// second filter).
pub fn seccomp_program() -> Result<seccompiler::BpfProgram, JailError> {
    use seccompiler::{
        SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
    };
    let err = |e: &dyn std::fmt::Display| JailError::Seccomp(e.to_string());
    let denied = [
        libc::SYS_bpf,
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_kexec_load,
        libc::SYS_kexec_file_load,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_perf_event_open,
        libc::SYS_userfaultfd,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        libc::SYS_fsopen,
        libc::SYS_fsconfig,
        libc::SYS_fsmount,
        libc::SYS_fspick,
        libc::SYS_open_tree,
        libc::SYS_move_mount,
        libc::SYS_mount_setattr,
        libc::SYS_open_by_handle_at,
        libc::SYS_name_to_handle_at,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_reboot,
        libc::SYS_acct,
        libc::SYS_quotactl,
        libc::SYS_personality,
        libc::SYS_pidfd_getfd,
        libc::SYS_memfd_create,
    ];
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        denied.into_iter().map(|nr| (nr, Vec::new())).collect();
    let cond = |arg, op, value| {
        SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value).map_err(|e| err(&e))
    };
    let other_family = SeccompRule::new(vec![
        cond(0, SeccompCmpOp::Ne, libc::AF_NETLINK as u64)?,
        cond(0, SeccompCmpOp::Ne, libc::AF_INET as u64)?,
        cond(0, SeccompCmpOp::Ne, libc::AF_INET6 as u64)?,
    ])
    .map_err(|e| err(&e))?;
    rules.insert(libc::SYS_socket, vec![other_family]);
    let namespaces = (libc::CLONE_NEWNS
        | libc::CLONE_NEWUSER
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWCGROUP) as u64;
    let new_namespace = |bit: u64| -> Result<SeccompRule, JailError> {
        SeccompRule::new(vec![cond(0, SeccompCmpOp::MaskedEq(bit), bit)?]).map_err(|e| err(&e))
    };
    let clone_rules = (0..64)
        .map(|i| 1u64 << i)
        .filter(|bit| namespaces & bit != 0)
        .map(new_namespace)
        .collect::<Result<Vec<_>, _>>()?;
    rules.insert(libc::SYS_clone, clone_rules);
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|e: seccompiler::BackendError| err(&e))?;
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(|e| err(&e))?;
    filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| err(&e))
}

/// Makes the tools' mount namespace, once: on a thread of its own, `unshare(CLONE_NEWNS)`,
/// `/` recursively private (nothing propagates back to the host), [`HIDDEN`] behind empty
/// read-only tmpfs mounts, then the whole tree read-only and nosuid. Returns a descriptor
/// that keeps it alive; each tool enters it with `setns`. Entering a namespace that exists
/// costs far less than making and freeing one per run (measured: about 4 ms a run, most of
/// it the kernel freeing the namespace when the tool exits).
#[allow(
    unsafe_code,
    reason = "mount_setattr has no wrapper; the rest is done with raw calls like the child's"
)]
fn mount_namespace() -> Result<OwnedFd, JailError> {
    let build = || -> Result<OwnedFd, JailError> {
        let fail = |step: &'static str| {
            let source = io::Error::last_os_error();
            move || JailError::Mounts { step, source }
        };
        // SAFETY: plain system calls on this thread (which exits afterwards), with static C
        // strings and a local struct as their only pointers.
        unsafe {
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Err(fail("unshare a mount namespace")());
            }
            let root = c"/".as_ptr();
            let flags = libc::MS_REC | libc::MS_PRIVATE;
            let none = std::ptr::null();
            if libc::mount(none, root, none, flags, std::ptr::null()) != 0 {
                return Err(fail("make / private")());
            }
            for dir in HIDDEN {
                let rc = libc::mount(
                    c"tsim-jail".as_ptr(),
                    dir.as_ptr(),
                    c"tmpfs".as_ptr(),
                    libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                    c"size=4k,mode=0555".as_ptr().cast(),
                );
                if rc != 0 && io::Error::last_os_error().raw_os_error() != Some(libc::ENOENT) {
                    return Err(fail("hide a directory behind a tmpfs")());
                }
            }
            let attr = MountAttr {
                attr_set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID,
                attr_clr: 0,
                propagation: 0,
                userns_fd: 0,
            };
            let rc = libc::syscall(
                libc::SYS_mount_setattr,
                libc::AT_FDCWD,
                root,
                libc::AT_RECURSIVE as libc::c_uint,
                &attr as *const MountAttr,
                std::mem::size_of::<MountAttr>(),
            );
            if rc != 0 {
                return Err(fail("make the file system read-only")());
            }
        }
        std::fs::File::open("/proc/thread-self/ns/mnt")
            .map(OwnedFd::from)
            .map_err(|source| JailError::Mounts {
                step: "open the namespace",
                source,
            })
    };
    std::thread::Builder::new()
        .name("tsim-jail-mnt".into())
        .spawn(build)
        .map_err(|source| JailError::Mounts {
            step: "start a thread",
            source,
        })?
        .join()
        .unwrap_or_else(|_| {
            Err(JailError::Mounts {
                step: "finish the thread",
                source: io::Error::other("it panicked"),
            })
        })
}

/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Directories hidden behind an empty read-only tmpfs.
const HIDDEN: [&std::ffi::CStr; 4] = [c"/run", c"/tmp", c"/var/tmp", c"/dev/shm"];

impl Prepared {
    fn new(
        mounts: Arc<OwnedFd>,
        ruleset: Option<OwnedFd>,
        keep_caps: u64,
        seccomp: seccompiler::BpfProgram,
    ) -> Self {
        let limit = |n: u64| libc::rlimit {
            rlim_cur: n,
            rlim_max: n,
        };
        Self {
            mounts,
            ruleset,
            keep_caps,
            rlimits: [
                (
                    libc::RLIMIT_CPU,
                    libc::rlimit {
                        rlim_cur: CPU_SECONDS,
                        rlim_max: CPU_SECONDS + 1,
                    },
                ),
                (libc::RLIMIT_AS, limit(ADDRESS_SPACE)),
                (libc::RLIMIT_CORE, limit(0)),
                (libc::RLIMIT_FSIZE, limit(0)),
                (libc::RLIMIT_NOFILE, limit(OPEN_FILES)),
            ],
            seccomp,
            #[cfg(target_arch = "x86_64")]
            no_x32: no_x32_program(),
        }
    }

    /// Enters the jail. Runs in the child between fork and exec: only system calls on data
    /// prepared in the parent, no allocation (an `io::Error` from an errno allocates
    /// nothing). On failure, names the step on standard error.
    #[allow(
        unsafe_code,
        reason = "the jail is made of raw system calls in a forked child"
    )]
    fn enter(&self) -> io::Result<()> {
        fn step(ok: bool, what: &'static [u8]) -> io::Result<()> {
            if ok {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            // SAFETY: writes a static buffer to standard error; write(2) is async-signal-safe.
            unsafe {
                libc::write(2, c"tsim-helper jail: cannot ".as_ptr().cast(), 25);
                libc::write(2, what.as_ptr().cast(), what.len());
                libc::write(2, b"\n".as_ptr().cast(), 1);
            }
            Err(e)
        }
        // SAFETY: every call below is a plain system call whose pointer arguments are static
        // C strings or fields of `self` and locals, alive for the whole call; none of them
        // touches memory the kernel does not own or that another thread could change (the
        // child has one thread).
        unsafe {
            let rc = libc::setns(self.mounts.as_raw_fd(), libc::CLONE_NEWNS);
            step(rc == 0, b"enter the jail's mount namespace")?;
            step(
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0,
                b"set no_new_privs",
            )?;
            if let Some(fd) = &self.ruleset {
                let rc = libc::syscall(libc::SYS_landlock_restrict_self, fd.as_raw_fd(), 0u32);
                step(rc == 0, b"enforce the Landlock ruleset")?;
            }
            // The bounding set first: dropping from it needs CAP_SETPCAP, which goes next.
            for cap in 0..64u64 {
                if self.keep_caps & (1 << cap) == 0 {
                    let rc = libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0);
                    let unknown = rc != 0 && *libc::__errno_location() == libc::EINVAL;
                    step(rc == 0 || unknown, b"drop from the bounding set")?;
                }
            }
            let rc = libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL,
                0,
                0,
                0,
            );
            step(rc == 0, b"clear the ambient set")?;
            let header = CapHeader {
                version: LINUX_CAPABILITY_VERSION_3,
                pid: 0,
            };
            let half = |shift: u32| {
                let bits = (self.keep_caps >> shift) as u32;
                CapData {
                    effective: bits,
                    permitted: bits,
                    inheritable: 0,
                }
            };
            let data = [half(0), half(32)];
            let rc = libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr());
            step(rc == 0, b"set the capabilities")?;
            let rc = libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
            step(rc == 0, b"close the inherited descriptors")?;
            // Late, so that the messages above can still be written to a file.
            for (resource, limit) in &self.rlimits {
                step(
                    libc::setrlimit(*resource, limit) == 0,
                    b"set a resource limit",
                )?;
            }
            #[cfg(target_arch = "x86_64")]
            {
                let prog = libc::sock_fprog {
                    len: self.no_x32.len() as u16,
                    filter: self.no_x32.as_ptr().cast_mut(),
                };
                let rc = libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    0u32,
                    &prog as *const libc::sock_fprog,
                );
                step(rc == 0, b"install the x32 seccomp filter")?;
            }
            step(
                seccompiler::apply_filter(&self.seccomp).is_ok(),
                b"install the seccomp filter",
            )?;
        }
        Ok(())
    }
}

/// A filter that refuses the x32 system calls (numbers with bit 30 set), which a deny list
/// keyed on x86-64 numbers would not see, and answers `clone3` (whose flags are in memory, out
/// of a filter's reach) with ENOSYS.
#[cfg(target_arch = "x86_64")]
fn no_x32_program() -> [libc::sock_filter; 9] {
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |code: u32, k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    [
        // A = arch; not x86-64: kill.
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 4),
        jump(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            AUDIT_ARCH_X86_64,
            1,
            0,
        ),
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_KILL_PROCESS),
        // A = nr; clone3: ENOSYS (glibc then uses clone, whose flags the main filter sees).
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0),
        jump(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            libc::SYS_clone3 as u32,
            0,
            1,
        ),
        stmt(
            libc::BPF_RET | libc::BPF_K,
            libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
        ),
        // x32 (bit 30): EPERM; else allow.
        jump(
            libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K,
            0x4000_0000,
            0,
            1,
        ),
        stmt(
            libc::BPF_RET | libc::BPF_K,
            libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
        ),
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
    ]
}

/// A test-only runner: runs `program` with `args` in a jail built for it (Landlock allows
/// executing only `program` and reading its libraries), and returns its exit code. Without
/// `jailed`, runs it plainly. Not reachable from a release build.
#[cfg(debug_assertions)]
#[allow(
    unsafe_code,
    reason = "pre_exec runs code in the child between fork and exec"
)]
pub fn test_run(program: &Path, args: &[String], jailed: bool) -> Result<i32, JailError> {
    let mut cmd = std::process::Command::new(program);
    cmd.args(args);
    if jailed {
        let allowed = allowed_files(program, Tool::Ipset)?;
        let ruleset = match landlock_abi() {
            LandlockState::Enforced(_) => Some(ruleset(&allowed, "the test program")?),
            LandlockState::Unsupported(_) => None,
        };
        let job = Arc::new(Prepared::new(
            Arc::new(mount_namespace()?),
            ruleset,
            tool_caps(Tool::Ipset),
            seccomp_program()?,
        ));
        // SAFETY: as in `Jail::attach`.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || job.enter());
        }
    }
    let status = cmd.status().map_err(|e| JailError::Trial {
        tool: program.display().to_string(),
        message: e.to_string(),
    })?;
    Ok(status.code().unwrap_or(128))
}

/// A test-only probe, run inside a jail by [`test_run`] (`tsim-helper --test-jail-probe
/// KEY=VALUE...`): tries each thing and prints `KEY: ok` or `KEY: denied (ERROR)`. Keys:
/// `write` (truncate and write an existing file), `create` (a new file), `exec` (run a
/// program), `unix` (connect to a pathname socket), `signal` (SIGTERM to a pid), `bind` (a TCP
/// port on an address). Not reachable from a release build.
#[cfg(debug_assertions)]
#[allow(
    unsafe_code,
    reason = "kill(2) has no safe wrapper in our dependencies that takes a raw pid"
)]
pub fn probe(args: &[String]) -> u8 {
    use std::io::Write;
    for arg in args {
        let Some((key, value)) = arg.split_once('=') else {
            eprintln!("not KEY=VALUE: {arg}");
            return 2;
        };
        let result: io::Result<()> = match key {
            "write" => std::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(value)
                .and_then(|mut f| f.write_all(b"written by the probe\n")),
            "create" => std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(value)
                .and_then(|mut f| f.write_all(b"created by the probe\n")),
            "exec" => std::process::Command::new(value).status().and_then(|s| {
                if s.success() {
                    Ok(())
                } else {
                    Err(io::Error::other(s.to_string()))
                }
            }),
            "unix" => std::os::unix::net::UnixStream::connect(value).map(drop),
            "signal" => match value.parse::<i32>() {
                // SAFETY: kill(2) takes no pointers.
                Ok(pid) if unsafe { libc::kill(pid, libc::SIGTERM) } == 0 => Ok(()),
                Ok(_) => Err(io::Error::last_os_error()),
                Err(e) => Err(io::Error::other(e)),
            },
            "bind" => std::net::TcpListener::bind(value).map(drop),
            _ => Err(io::Error::other("unknown probe")),
        };
        match result {
            Ok(()) => println!("{key}: ok"),
            Err(e) => println!("{key}: denied ({e})"),
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elf_dependencies_of_a_real_binary() {
        let exe = std::env::current_exe().unwrap();
        let deps = elf_deps(&std::fs::read(&exe).unwrap()).unwrap();
        assert!(
            deps.needed.iter().any(|n| n.starts_with("libc.so")),
            "{deps:?}"
        );
        assert!(deps.interp.is_some_and(|i| i.contains("ld-linux")));
        assert!(elf_deps(b"#!/bin/sh\n").is_err());
        assert!(elf_deps(b"\x7fELF\x02\x01").is_err(), "truncated");
    }

    #[test]
    fn the_allowed_files_leave_out_idletimer_and_led() {
        let Some(ipt) = ["/usr/sbin/iptables-restore", "/sbin/iptables-restore"]
            .into_iter()
            .map(Path::new)
            .find(|p| p.exists())
        else {
            eprintln!("skipped: iptables is not installed");
            return;
        };
        let allowed = allowed_files(ipt, Tool::IptablesRestore).unwrap();
        let all: Vec<&PathBuf> = allowed.exec.iter().chain(&allowed.read).collect();
        let named = |n: &str| all.iter().any(|p| p.file_name().is_some_and(|f| f == n));
        assert!(named("libxt_conntrack.so") || named("libxt_standard.so"));
        assert!(!named("libxt_IDLETIMER.so") && !named("libxt_LED.so"));
        assert!(all.iter().any(|p| p.to_string_lossy().contains("libc.so")));
        assert_eq!(
            allowed.exec.len(),
            2,
            "binary and loader: {:?}",
            allowed.exec
        );
        assert!(!all.iter().any(|p| p.starts_with("/etc/shadow")));
    }

    #[test]
    fn the_seccomp_program_compiles() {
        let program = seccomp_program().unwrap();
        assert!(program.len() > 40, "{}", program.len());
    }

    #[test]
    fn capabilities_per_tool() {
        assert_eq!(tool_caps(Tool::Ipset), 1 << 12);
        assert_eq!(tool_caps(Tool::IptablesRestore), (1 << 12) | (1 << 13));
    }
}
