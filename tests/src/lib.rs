//! Harness for the end-to-end tests: start the real `tsim-helper` binary with its own socket,
//! state directory, hidden namespace and name prefix; talk to it with the real clients; and
//! clean up in `Drop`, whether the test passed or not.
//!
//! Privileged tests call [`privileged`] first. Without root they are skipped, unless
//! `TSIM_REQUIRE_PRIV_TESTS=1`, which turns the skip into a failure (CI sets it).

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tsim_client::BlockingClient;
use tsim_protocol::frame::{decode_body, encode_body};
use tsim_protocol::{ServerMessage, version};

/// Where iproute2 keeps named namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// Whether privileged tests can run here. Skips (returns false) without root, or fails the
/// test if `TSIM_REQUIRE_PRIV_TESTS=1`.
pub fn privileged() -> bool {
    let root = nix::unistd::geteuid().is_root();
    let can_unshare = root
        && Command::new("unshare")
            .args(["-n", "true"])
            .status()
            .is_ok_and(|s| s.success());
    if can_unshare {
        setup_once();
        return true;
    }
    if std::env::var("TSIM_REQUIRE_PRIV_TESTS").as_deref() == Ok("1") {
        panic!(
            "privileged test cannot run (needs root and CAP_SYS_ADMIN), and TSIM_REQUIRE_PRIV_TESTS=1"
        );
    }
    eprintln!("skipped: needs root and CAP_SYS_ADMIN");
    false
}

/// Skips the calling test unless it can run privileged (see [`privileged`]).
#[macro_export]
macro_rules! require_priv {
    () => {
        if !$crate::privileged() {
            return;
        }
    };
}

/// One-time set-up per test process: make `/run/netns` a shared mount point now, so that
/// helpers and `ip netns` started concurrently later never race to do it.
fn setup_once() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let name = format!("tsimt-init-{}", std::process::id());
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "ip netns add failed: is iproute2 installed?");
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
    });
}

/// The path of a workspace binary, built on first use so that it is never stale.
/// A finished command's standard output and error, together, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The bundled example network's facts (routers edge, core and lab in a row).
pub fn example_facts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/facts")
}

/// The 10-router test network's raw facts.
pub fn facts10() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/facts10/raw")
}

pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        // target/<profile>/deps/<test binary> -> target/<profile>
        let exe = std::env::current_exe().expect("current exe");
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target dir")
            .to_owned();
        let release = dir.file_name().is_some_and(|n| n == "release");
        let mut cargo = Command::new(env!("CARGO"));
        cargo.args([
            "build",
            "--quiet",
            "-p",
            "tsim-helper",
            "-p",
            "tsim-client",
            "--bins",
        ]);
        if release {
            cargo.arg("--release");
        }
        let status = cargo.status().expect("run cargo build");
        assert!(status.success(), "cargo build of the binaries failed");
        dir
    });
    let path = dir.join(name);
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// A name prefix unique to this test: every namespace the test makes starts with it.
pub fn unique_prefix() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("tt{:x}x{n}-", std::process::id())
}

/// The names listed by `ip netns list`.
pub fn ip_netns_list() -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Removes every `/run/netns` entry that starts with `prefix` (umount, then unlink).
pub fn remove_netns_with_prefix(prefix: &str) {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(prefix) {
            let path = entry.path();
            let _ = nix::mount::umount2(&path, nix::mount::MntFlags::MNT_DETACH);
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// How to start a helper.
#[derive(Debug, Clone)]
pub struct HelperOptions {
    /// Extra command-line arguments.
    pub args: Vec<String>,
    /// The group to serve (`--group`); root's group by default.
    pub group: String,
    /// Start it the way systemd's socket unit does: through `systemd-socket-activate`, which
    /// binds the socket, passes it (`LISTEN_FDS`) and starts the helper on the first
    /// connection, with a clean environment.
    pub activate: bool,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
}

impl Default for HelperOptions {
    fn default() -> Self {
        Self {
            args: Vec::new(),
            group: "0".into(),
            activate: false,
            env: Vec::new(),
        }
    }
}

/// A running helper with its own socket, state directory, hidden namespace and prefix.
/// Dropping it kills the helper and removes every namespace with its prefix.
#[derive(Debug)]
pub struct TestHelper {
    /// The test's directory (mode 0755, so other users can reach the socket).
    pub dir: tempfile::TempDir,
    /// The helper's socket.
    pub socket: PathBuf,
    /// The helper's state directory.
    pub state: PathBuf,
    /// The name prefix for this test's namespaces.
    pub prefix: String,
    options: HelperOptions,
    child: Option<Child>,
    log: PathBuf,
}

impl TestHelper {
    /// Starts a helper with default options.
    pub fn start() -> Self {
        Self::start_with(HelperOptions::default())
    }

    /// Starts a helper with `options`.
    pub fn start_with(options: HelperOptions) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tsim-test-")
            .tempdir()
            .expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let prefix = unique_prefix();
        let mut helper = TestHelper {
            socket: dir.path().join("helper.sock"),
            state: dir.path().join("state"),
            log: dir.path().join("helper.log"),
            dir,
            prefix,
            options,
            child: None,
        };
        helper.spawn();
        helper
    }

    /// The command line this helper runs with (without the binary).
    pub fn args(&self) -> Vec<String> {
        let mut args = vec![
            "--state-dir".to_owned(),
            self.state.display().to_string(),
            "--hidden-ns".to_owned(),
            format!("{}hidden", self.prefix),
            "--pool-prefix".to_owned(),
            format!("{}pool-", self.prefix),
            "--group".to_owned(),
            self.options.group.clone(),
        ];
        if !self.options.args.iter().any(|a| a == "--log") {
            args.extend(["--log".to_owned(), "text".to_owned()]);
        }
        args.extend(self.options.args.iter().cloned());
        args
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let socket = self.socket.display().to_string();
        let mut command = if self.options.activate {
            let mut c = Command::new("systemd-socket-activate");
            c.args(["-l", &socket, "-E", "TSIM_LOG=debug"]);
            for (k, v) in &self.options.env {
                c.args(["-E", &format!("{k}={v}")]);
            }
            c.arg(binary("tsim-helper"));
            c
        } else {
            let mut c = Command::new(binary("tsim-helper"));
            c.args(["--socket", &socket])
                .env("TSIM_LOG", "debug")
                .envs(self.options.env.iter().map(|(k, v)| (k, v)));
            c
        };
        // A process group of its own, so that a kill takes the tools it started with it (as
        // systemd's KillMode=control-group does for the unit).
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command
            .args(self.args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start tsim-helper");
        self.child = Some(child);
        self.wait_ready();
    }

    /// Waits until the helper completes a handshake on a new connection (a connection alone
    /// may land in the backlog of a listener that is going away).
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let answered = UnixStream::connect(&self.socket).is_ok()
                && BlockingClient::connect(&self.socket, "tsim-tests-ready").is_ok();
            if answered {
                return;
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("tsim-helper exited early ({status}); log:\n{}", self.log());
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("tsim-helper did not start listening; log:\n{}", self.log());
    }

    /// The helper's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The helper's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// A prefixed namespace name.
    pub fn ns(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix)
    }

    /// Builds the network of `facts` under this helper's prefix (`tsimctl net setup`).
    pub fn net_setup(&self, facts: &Path) {
        let facts = facts.display().to_string();
        let out = self.tsimctl(&[
            "net",
            "setup",
            "--facts",
            &facts,
            "--prefix",
            &self.prefix,
            "--quiet",
        ]);
        assert!(
            out.status.success(),
            "net setup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Adds hosts, each `(name, address/prefix, router)` without this helper's prefix.
    pub fn add_hosts(&self, hosts: &[(&str, &str, &str)]) {
        let client = self.client();
        for (name, ip, router) in hosts {
            client
                .host_add(tsim_protocol::ops::HostAdd {
                    name: self.ns(name).parse().expect("a host name"),
                    ip: ip.parse().expect("a host address"),
                    router: self.ns(router).parse().expect("a router name"),
                    router_if: None,
                    secondaries: Vec::new(),
                    tag: None,
                    share: false,
                })
                .unwrap_or_else(|e| panic!("host add {name}: {e}"));
        }
    }

    /// A connected blocking client.
    pub fn client(&self) -> BlockingClient {
        BlockingClient::connect(&self.socket, "tsim-tests").expect("connect to the helper")
    }

    /// Runs `tsimctl --socket <ours> ARGS`.
    pub fn tsimctl(&self, args: &[&str]) -> Output {
        Command::new(binary("tsimctl"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run tsimctl")
    }

    /// Kills the helper and the tools it is running (its process group) with SIGKILL, and
    /// waits for it: a crash under systemd, which kills the unit's whole control group.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let group = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            let _ = child.kill();
            let _ = child.wait();
            // A tool the helper was starting may hold the listening socket for a moment
            // longer (between its fork and its exec); wait until nobody listens.
            let deadline = Instant::now() + Duration::from_secs(5);
            while !self.options.activate
                && UnixStream::connect(&self.socket).is_ok()
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        signal(child.id(), nix::sys::signal::Signal::SIGTERM);
        wait_timeout(&mut child, Duration::from_secs(30)).expect("helper exits after SIGTERM")
    }

    /// Waits for a helper that was already sent SIGTERM to exit.
    pub fn terminate_already_signalled(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        wait_timeout(&mut child, Duration::from_secs(30)).expect("helper exits after SIGTERM")
    }

    /// Waits (up to `limit`) for the helper to exit on its own.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut().expect("running");
        let status = wait_timeout(child, limit);
        if status.is_some() {
            self.child = None;
        }
        status
    }

    /// Starts the helper again with the same socket, state and options.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the helper first");
        self.spawn();
    }
}

impl Drop for TestHelper {
    fn drop(&mut self) {
        self.kill9();
        remove_netns_with_prefix(&self.prefix);
        if std::thread::panicking() {
            eprintln!("--- tsim-helper log ---\n{}", self.log());
        }
    }
}

/// Sends a signal to a process.
pub fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
}

/// Waits for a child with a time limit.
pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A raw connection for sending hand-made (and malformed) frames.
#[derive(Debug)]
pub struct RawConn {
    stream: UnixStream,
}

impl RawConn {
    /// Connects without a handshake.
    pub fn connect(socket: &Path) -> Self {
        let stream = UnixStream::connect(socket).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        Self { stream }
    }

    /// Connects and does the handshake.
    pub fn handshake(socket: &Path) -> Self {
        let mut conn = Self::connect(socket);
        conn.send(&serde_json::json!({"type": "hello", "protocol": [version::MAJOR, version::MINOR], "client": "raw"}));
        match conn.recv() {
            Some(ServerMessage::Welcome(_)) => conn,
            other => panic!("expected welcome, got {other:?}"),
        }
    }

    /// Sends any serializable value as one frame.
    pub fn send<T: serde::Serialize + ?Sized>(&mut self, value: &T) {
        let body = encode_body(value).expect("encode");
        self.send_body(&body);
    }

    /// Sends `body` with a correct header.
    pub fn send_body(&mut self, body: &[u8]) {
        let mut frame = (body.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(body);
        self.send_bytes(&frame);
    }

    /// Sends raw bytes.
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// Reads one frame; `None` on a clean close or a reset.
    pub fn recv(&mut self) -> Option<ServerMessage> {
        let mut header = [0u8; 4];
        self.stream.read_exact(&mut header).ok()?;
        let mut body = vec![0u8; u32::from_be_bytes(header) as usize];
        self.stream.read_exact(&mut body).ok()?;
        Some(decode_body(&body).expect("the helper sends valid messages"))
    }

    /// Whether the helper has closed the connection (EOF or a reset within 10 s).
    pub fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        match self.stream.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        }
    }

    /// Sets how long reads wait.
    pub fn set_timeout(&self, limit: Duration) {
        self.stream.set_read_timeout(Some(limit)).expect("timeout");
    }

    /// Closes the sending side.
    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
    }
}

/// The uid (and gid) tests run unprivileged commands as.
pub const NOBODY: u32 = 65534;

/// A group id for this test run that no real group is likely to have.
pub fn test_gid(offset: u32) -> u32 {
    40_000 + (std::process::id() % 10_000) * 2 + offset
}

/// A copy of tsimctl that any user can execute.
pub fn tsimctl_for_anyone(dir: &Path) -> PathBuf {
    let copy = dir.join("tsimctl");
    if !copy.exists() {
        // Copy with a child process: a descriptor open for writing in this (multi-threaded)
        // process could leak into a concurrent fork and make exec fail with ETXTBSY.
        let ok = Command::new("install")
            .args(["-m", "0755"])
            .arg(binary("tsimctl"))
            .arg(&copy)
            .status()
            .unwrap();
        assert!(ok.success());
    }
    copy
}

/// Writes `ops` to a batch file in the helper's directory that any user can read (for
/// `tsimctl batch` run as another user); returns its path.
pub fn batch_file(helper: &TestHelper, name: &str, ops: &[serde_json::Value]) -> String {
    let file = helper.dir.path().join(name);
    std::fs::write(&file, serde_json::to_vec(ops).unwrap()).unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    file.display().to_string()
}

/// Runs tsimctl as uid/gid `NOBODY` with exactly the supplementary `groups`.
#[allow(
    unsafe_code,
    reason = "pre_exec is needed to set supplementary groups before setuid"
)]
pub fn tsimctl_as_nobody(helper: &TestHelper, groups: &[u32], args: &[&str]) -> Output {
    let groups: Vec<nix::unistd::Gid> = groups
        .iter()
        .map(|g| nix::unistd::Gid::from_raw(*g))
        .collect();
    let mut cmd = Command::new(tsimctl_for_anyone(helper.dir.path()));
    cmd.arg("--socket")
        .arg(&helper.socket)
        .args(args)
        .current_dir("/");
    // SAFETY: the closure only makes async-signal-safe system calls (setgroups, setgid,
    // setuid) between fork and exec, and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            nix::unistd::setgroups(&groups)?;
            nix::unistd::setgid(nix::unistd::Gid::from_raw(NOBODY))?;
            nix::unistd::setuid(nix::unistd::Uid::from_raw(NOBODY))?;
            Ok(())
        });
    }
    cmd.output().unwrap()
}

/// A named group of assertions for [`groups`].
pub type Group<'a> = (&'a str, Box<dyn FnOnce() + 'a>);

/// Runs named groups of assertions in order, each on its own: a group that fails is reported
/// with its message and the next one still runs, so that the first failed assertion of a long
/// scenario does not hide the others. The test fails at the end, naming every failed group.
pub fn groups(groups: Vec<Group<'_>>) {
    let mut failed = Vec::new();
    for (name, group) in groups {
        if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(group)) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            failed.push(format!("{name}: {message}"));
        }
    }
    assert!(
        failed.is_empty(),
        "{} group(s) failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

#[cfg(test)]
mod tests {
    /// A failed group is reported, and the groups after it still run.
    #[test]
    fn groups_report_every_failure_and_go_on() {
        let ran = std::cell::Cell::new(0);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            super::groups(vec![
                ("first", Box::new(|| panic!("broken here"))),
                ("second", Box::new(|| ran.set(ran.get() + 1))),
                ("third", Box::new(|| assert_eq!(1, 2, "also broken"))),
            ])
        }));
        let panic = outcome.expect_err("two groups failed");
        let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert_eq!(ran.get(), 1);
        assert!(message.starts_with("2 group(s) failed"), "{message}");
        assert!(message.contains("first: broken here"), "{message}");
        assert!(message.contains("third: assertion"), "{message}");
        assert!(!message.contains("second"), "{message}");
    }
}
