//! The service benchmark: `probe tcp` round trips (through the library and through
//! `tsimctl`) against the old way, an `ip netns exec NS python3 -c …` client per probe that
//! connects and reads the echo; and an echo service's throughput, in round trips per second
//! of wall time and per second of the helper's CPU time.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use nix::sched::CloneFlags;
use tsim_client::BlockingClient;
use tsim_protocol::ops::{ProbeEcho, ProbeReach, ProbeStatus, Transport, Verdict};

/// What the service benchmark measured.
pub struct SvcResult {
    /// `probe_tcp` through the Rust client.
    pub lib: Vec<Duration>,
    /// `tsimctl probe tcp`, one process each.
    pub ctl: Vec<Duration>,
    /// The old way: `ip netns exec NS python3 -c …`.
    pub old: Vec<Duration>,
    /// Echo throughput, TCP then UDP: round trips, wall seconds, helper CPU seconds.
    pub throughput: [(u64, f64, f64); 2],
}

/// The old system's service test client (original-system.md §4.4), reduced to its work.
const OLD_CLIENT: &str = "import socket, sys\n\
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)\n\
s.sendall(b'Test\\n')\n\
print(s.recv(1024).decode() + '\\nLOCAL_PORT:' + str(s.getsockname()[1]))\n";

/// The helper's CPU time so far, in seconds.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').context("malformed /proc stat")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15, 12 and 13 after the command name.
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok(ticks as f64 / 100.0)
}

/// Runs `job` on a thread that entered namespace `ns`.
fn in_ns<T: Send + 'static>(
    ns: &str,
    job: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let fd = std::fs::File::open(&path).with_context(|| format!("cannot open {path}"))?;
        nix::sched::setns(&fd, CloneFlags::CLONE_NEWNET).context("setns")?;
        job()
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the namespace thread panicked"))?
}

/// Echo round trips of 64 bytes for `length`, on one connection or socket from inside `ns`.
fn throughput(
    ns: &str,
    proto: Transport,
    dst: SocketAddr,
    length: Duration,
    helper_pid: u32,
) -> anyhow::Result<(u64, f64, f64)> {
    let cpu_before = cpu_seconds(helper_pid)?;
    let (count, wall) = in_ns(ns, move || {
        let msg = [b'e'; 64];
        let mut buf = [0u8; 64];
        let started = Instant::now();
        let mut count = 0u64;
        match proto {
            Transport::Tcp => {
                let mut s = TcpStream::connect(dst)?;
                s.set_nodelay(true)?;
                while started.elapsed() < length {
                    s.write_all(&msg)?;
                    s.read_exact(&mut buf)?;
                    count += 1;
                }
            }
            Transport::Udp => {
                let s = UdpSocket::bind("0.0.0.0:0")?;
                s.connect(dst)?;
                s.set_read_timeout(Some(Duration::from_secs(1)))?;
                while started.elapsed() < length {
                    s.send(&msg)?;
                    s.recv(&mut buf)?;
                    count += 1;
                }
            }
        }
        Ok((count, started.elapsed().as_secs_f64()))
    })?;
    let cpu = cpu_seconds(helper_pid)? - cpu_before;
    Ok((count, wall, cpu))
}

/// Against a helper at `socket` (process `helper_pid`) on which namespace `from` can reach
/// a TCP and a UDP echo service at `dst:port`.
pub fn measure(
    tsimctl_bin: &Path,
    socket: &Path,
    helper_pid: u32,
    from: &str,
    dst: &str,
    port: u16,
    n: usize,
) -> anyhow::Result<SvcResult> {
    let client = BlockingClient::connect(socket, "tsim-bench")?;
    let args = ProbeEcho {
        ns: from.parse()?,
        dst: dst.parse()?,
        port,
        src: None,
        message: Some("Test\n".into()),
        timeout_ms: Some(5000),
        explain: false,
    };
    let mut lib = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let r = client.probe_echo(Transport::Tcp, args.clone())?;
        lib.push(t.elapsed());
        ensure!(r.status == ProbeStatus::Ok, "probe failed: {r:?}");
    }
    let target = format!("{dst}:{port}");
    let mut ctl = Vec::with_capacity(n / 4);
    for _ in 0..n / 4 {
        let t = Instant::now();
        let status = Command::new(tsimctl_bin)
            .arg("--socket")
            .arg(socket)
            .args(["probe", "tcp", "--from", from, &target, "-m", "Test"])
            .stdout(Stdio::null())
            .status()?;
        ctl.push(t.elapsed());
        ensure!(status.success(), "tsimctl probe tcp failed");
    }
    let mut old = Vec::with_capacity(20);
    for _ in 0..20 {
        let t = Instant::now();
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                from,
                "python3",
                "-c",
                OLD_CLIENT,
                dst,
                &port.to_string(),
            ])
            .output()?;
        old.push(t.elapsed());
        if !out.status.success() || !String::from_utf8_lossy(&out.stdout).contains("Test") {
            bail!(
                "the old client failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let addr: SocketAddr = target.parse()?;
    let length = Duration::from_secs(2);
    let tcp = throughput(from, Transport::Tcp, addr, length, helper_pid)?;
    let udp = throughput(from, Transport::Udp, addr, length, helper_pid)?;
    Ok(SvcResult {
        lib,
        ctl,
        old,
        throughput: [tcp, udp],
    })
}

/// Runs the quick analysis `rounds` times from `sources` (one per router of the path)
/// towards `dst` for `ports`; returns the times and the last job's count of YES verdicts of
/// all verdicts.
pub fn reach(
    socket: &Path,
    sources: &[String],
    dst: &str,
    ports: &str,
    rounds: usize,
) -> anyhow::Result<(Vec<Duration>, usize, usize)> {
    let client = BlockingClient::connect(socket, "tsim-bench")?;
    let args = ProbeReach {
        from: sources
            .iter()
            .map(|s| s.parse())
            .collect::<Result<_, _>>()?,
        dst: dst.parse()?,
        ports: ports.into(),
        timeout_ms: None,
    };
    let mut times = Vec::with_capacity(rounds);
    let mut verdicts = (0, 0);
    for _ in 0..rounds {
        let t = Instant::now();
        let r = client.probe_reach(args.clone())?;
        times.push(t.elapsed());
        let all: Vec<Verdict> = r
            .routers
            .iter()
            .flat_map(|r| r.services.iter().map(|s| s.verdict))
            .collect();
        verdicts = (
            all.iter().filter(|v| **v == Verdict::Yes).count(),
            all.len(),
        );
    }
    Ok((times, verdicts.0, verdicts.1))
}
