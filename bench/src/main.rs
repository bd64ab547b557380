//! `tsim-bench`: measures tsim-helper and, in the same run, the old way it replaces; prints a
//! Markdown report (medians and ratios). `bench/run.sh` builds in release mode, runs it and
//! writes `bench/RESULTS.md`.
//!
//! Needs root (it starts its own helper on a private socket, and creates namespaces with
//! unique names that it removes again). All traffic stays on the Unix socket or inside the
//! namespaces the bench creates.
//!
//! The phases (`--only`): `rtt` (no-op round trips), `namespaces`, `host` (hosts on the example
//! network), `hosts` (host-sized batches), `svc` (echo services and probes), `net` (network
//! setup and teardown), `trace` (the quick analysis with and without packet tracing), each
//! printed as rows of one table; and `load` (`load.rs`: many clients
//! with a mix of operations), printed as its own section after the table; and `hostile`
//! (`hostile.rs`: memory and root's ping while a member of the group attacks), another section.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use tsim_client::{Client, RequestOptions};
use tsim_protocol::NsName;
use tsim_protocol::ops::{NsCreate, NsDelete};
use tsim_protocol::{Op, OpResult};

mod host;
mod hostile;
mod load;
mod net;
mod svc;

/// Benchmarks of tsim-helper, each beside its baseline measured in the same run.
#[derive(Debug, Parser)]
#[command(name = "tsim-bench", max_term_width = 100)]
struct Args {
    /// The helper binary to start [default: tsim-helper next to this binary].
    #[arg(long, value_name = "PATH")]
    helper: Option<PathBuf>,
    /// Round trips per connection for the no-op benchmark.
    #[arg(long, default_value_t = 20_000)]
    round_trips: usize,
    /// Concurrent connections for the second no-op benchmark.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Namespaces created and deleted in the namespace benchmark.
    #[arg(long, default_value_t = 100)]
    namespaces: usize,
    /// Runs of the Python start-up baseline.
    #[arg(long, default_value_t = 20)]
    python_runs: usize,
    /// Host counts for the host-sized batch benchmark.
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    hosts: Vec<usize>,
    /// Rounds of `net setup` and `net teardown` per network.
    #[arg(long, default_value_t = 5)]
    net_rounds: usize,
    /// The 10-router facts [default: tests/data/facts10/raw of this repo].
    #[arg(long, value_name = "DIR")]
    facts: Option<PathBuf>,
    /// Routers of the synthetic network (each with 10 interfaces and 10 routes).
    #[arg(long, default_value_t = 100)]
    synthetic: usize,
    /// Hosts per sequential measure of the host benchmark.
    #[arg(long, default_value_t = 100)]
    host_count: usize,
    /// Pool size for the pooled host measure.
    #[arg(long, default_value_t = 16)]
    pool_size: usize,
    /// Probes per measure of the service benchmark.
    #[arg(long, default_value_t = 200)]
    probes: usize,
    /// Clients of the load phase, each on its own connection.
    #[arg(long, default_value_t = 64)]
    load_clients: usize,
    /// Requests per client in the load phase, one at a time.
    #[arg(long, default_value_t = 10_000)]
    load_requests: usize,
    /// The load phase's mix, in percent: ping, reads, probes, host add/delete.
    #[arg(long, value_delimiter = ',', default_value = "40,30,10,20")]
    load_mix: Vec<u32>,
    /// Only these benchmarks (rtt, namespaces, hosts, host, svc, net, load, hostile) [default:
    /// all].
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Seconds of each attack in the hostile phase.
    #[arg(long, default_value_t = 5.0)]
    hostile_secs: f64,
    /// Internal: run as the hostile phase's attacker (a member of the group), sending this
    /// attack on `--attack-socket` for `--attack-secs`.
    #[arg(long, hide = true, value_name = "KIND")]
    attack: Option<String>,
    /// Internal: the attacker's socket.
    #[arg(long, hide = true, value_name = "PATH")]
    attack_socket: Option<PathBuf>,
    /// Internal: how long the attacker goes on.
    #[arg(long, hide = true, default_value_t = 0.0)]
    attack_secs: f64,
    /// Directory of `host_baseline.sh` and `kernel_floor.sh` [default: bench/ of this repo].
    #[arg(long, value_name = "DIR")]
    scripts: Option<PathBuf>,
}

/// Latency samples.
struct Samples(Vec<Duration>);

impl Samples {
    fn quantile(&self, q: f64) -> Duration {
        let mut v = self.0.clone();
        v.sort_unstable();
        v[((v.len() - 1) as f64 * q).round() as usize]
    }
    fn median(&self) -> Duration {
        self.quantile(0.5)
    }
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

struct Helper {
    child: Child,
    dir: PathBuf,
    socket: PathBuf,
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_helper(binary: &Path) -> anyhow::Result<Helper> {
    start_helper_with(binary, &[])
}

fn start_helper_with(binary: &Path, extra: &[&str]) -> anyhow::Result<Helper> {
    // The state directory lives on tmpfs, as /run does on a real system.
    let dir = PathBuf::from(format!("/dev/shm/tsim-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let socket = dir.join("helper.sock");
    let child = Command::new(binary)
        .arg("--socket")
        .arg(&socket)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .args(["--group", "0", "--log", "text"])
        .arg("--hidden-ns")
        .arg(format!("bh{:x}-hidden", std::process::id()))
        .arg("--pool-prefix")
        .arg(format!("bh{:x}-pool-", std::process::id()))
        .args(extra)
        .env("TSIM_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let helper = Helper { child, dir, socket };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(&helper.socket).is_err() {
        if Instant::now() > deadline {
            bail!("the helper did not start");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(helper)
}

/// Sequential no-op round trips on one connection, on a single-threaded runtime (as tsimctl).
fn round_trips(socket: &Path, count: usize) -> anyhow::Result<Samples> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client = Client::connect(socket, "tsim-bench").await?;
        for _ in 0..count / 10 {
            client.ping().await?;
        }
        let mut samples = Vec::with_capacity(count);
        for _ in 0..count {
            let t = Instant::now();
            client.ping().await?;
            samples.push(t.elapsed());
        }
        Ok(Samples(samples))
    })
}

/// Sequential no-op round trips with no client library: a blocking socket, one pre-encoded
/// `ping` request written and its answer read, so that the helper's share of a round trip
/// shows apart from the client's.
fn raw_round_trips(socket: &Path, count: usize) -> anyhow::Result<Samples> {
    use std::io::{Read, Write};
    use tsim_protocol::frame::encode_frame;
    use tsim_protocol::{ClientMessage, Hello, Request, version};
    let mut s = std::os::unix::net::UnixStream::connect(socket)?;
    let hello = ClientMessage::Hello(Hello {
        protocol: version::CURRENT,
        client: "tsim-bench-raw".into(),
    });
    let read_frame =
        |s: &mut std::os::unix::net::UnixStream, buf: &mut Vec<u8>| -> anyhow::Result<()> {
            let mut len = [0u8; 4];
            s.read_exact(&mut len)?;
            buf.resize(u32::from_be_bytes(len) as usize, 0);
            s.read_exact(buf)?;
            Ok(())
        };
    let mut buf = Vec::new();
    s.write_all(&encode_frame(&hello, version::DEFAULT_MAX_FRAME)?)?;
    read_frame(&mut s, &mut buf)?;
    // The same id each time: a request's id is free again once it is answered.
    let ping = encode_frame(
        &ClientMessage::Request(Request {
            id: 1,
            ops: vec![Op::Ping(Default::default())],
            atomic: false,
            progress: false,
        }),
        version::DEFAULT_MAX_FRAME,
    )?;
    for _ in 0..count / 10 {
        s.write_all(&ping)?;
        read_frame(&mut s, &mut buf)?;
    }
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let t = Instant::now();
        s.write_all(&ping)?;
        read_frame(&mut s, &mut buf)?;
        samples.push(t.elapsed());
    }
    Ok(Samples(samples))
}

/// `n` connections, each from its own thread, all doing round trips at once.
fn concurrent_round_trips(socket: &Path, n: usize, count: usize) -> anyhow::Result<(Samples, f64)> {
    let started = Instant::now();
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let socket = socket.to_owned();
            std::thread::spawn(move || round_trips(&socket, count))
        })
        .collect();
    let mut all = Vec::new();
    for t in threads {
        all.extend(
            t.join()
                .map_err(|_| anyhow::anyhow!("a client thread panicked"))??
                .0,
        );
    }
    let per_sec = all.len() as f64 / started.elapsed().as_secs_f64();
    Ok((Samples(all), per_sec))
}

/// The kernel's floor for a round trip between two sleeping threads on this machine: a
/// blocking echo over a socketpair, no helper involved.
fn kernel_floor(count: usize) -> anyhow::Result<Samples> {
    use std::io::{Read, Write};
    let (mut a, mut b) = std::os::unix::net::UnixStream::pair()?;
    let echo = std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        while let Ok(n) = b.read(&mut buf) {
            if n == 0 || b.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    let mut buf = [0u8; 256];
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let t = Instant::now();
        a.write_all(&[0x81; 40])?;
        let _ = a.read(&mut buf)?;
        samples.push(t.elapsed());
    }
    drop(a);
    let _ = echo.join();
    Ok(Samples(samples))
}

/// The start of `tsimctl --version` beside `/bin/true`, interleaved, `runs` each: what a
/// CLI costs before it does anything.
fn cli_start(tsimctl: &Path, runs: usize) -> anyhow::Result<(Samples, Samples)> {
    let time = |cmd: &mut Command| -> anyhow::Result<Duration> {
        let t = Instant::now();
        let status = cmd.stdout(Stdio::null()).status()?;
        if !status.success() {
            bail!("{cmd:?} failed");
        }
        Ok(t.elapsed())
    };
    let (mut ctl, mut truth) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        truth.push(time(&mut Command::new("/bin/true"))?);
        ctl.push(time(Command::new(tsimctl).arg("--version"))?);
    }
    Ok((Samples(ctl), Samples(truth)))
}

/// The anchor of the old way: every privileged step started a Python interpreter.
fn python_start(runs: usize) -> anyhow::Result<Samples> {
    let mut samples = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let status = Command::new("python3")
            .args(["-c", "import subprocess, json"])
            .status()?;
        if !status.success() {
            bail!("python3 failed");
        }
        samples.push(t.elapsed());
    }
    Ok(Samples(samples))
}

/// Create and delete `n` namespaces one request at a time through the helper, and the same
/// with `ip netns add`/`ip netns del` processes.
fn namespaces(socket: &Path, n: usize) -> anyhow::Result<(Samples, Samples, Samples, Samples)> {
    let prefix = format!("tb{:x}-", std::process::id());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (create, delete) = rt.block_on(async {
        let client = Client::connect(socket, "tsim-bench").await?;
        let (mut create, mut delete) = (Vec::new(), Vec::new());
        for i in 0..n {
            let name: NsName = format!("{prefix}h{i}").parse()?;
            let t = Instant::now();
            client
                .request(
                    vec![Op::NsCreate(NsCreate {
                        name: name.clone(),
                        tag: None,
                        ipv6: None,
                    })],
                    RequestOptions::default(),
                )
                .await?;
            create.push(t.elapsed());
            let t = Instant::now();
            let r = client
                .request(
                    vec![Op::NsDelete(NsDelete { name })],
                    RequestOptions::default(),
                )
                .await?;
            delete.push(t.elapsed());
            anyhow::ensure!(matches!(r[..], [OpResult::NsDelete(_)]));
        }
        anyhow::Ok((create, delete))
    })?;
    let (mut ip_add, mut ip_del) = (Vec::new(), Vec::new());
    for i in 0..n {
        let name = format!("{prefix}i{i}");
        let t = Instant::now();
        anyhow::ensure!(
            Command::new("ip")
                .args(["netns", "add", &name])
                .status()?
                .success()
        );
        ip_add.push(t.elapsed());
        let t = Instant::now();
        anyhow::ensure!(
            Command::new("ip")
                .args(["netns", "del", &name])
                .status()?
                .success()
        );
        ip_del.push(t.elapsed());
    }
    Ok((
        Samples(create),
        Samples(delete),
        Samples(ip_add),
        Samples(ip_del),
    ))
}

/// One host-sized batch per host, sequentially, as one atomic request each: the namespace
/// (IPv4 only, as the simulated network),
/// a veth to a bridge in a hidden namespace (peer born there, enslaved, both ends up), the
/// address, and the default route. Returns the per-request latencies, the total, and the
/// teardown time.
fn hosts(socket: &Path, n: usize) -> anyhow::Result<(Samples, Duration, Duration)> {
    let prefix = format!("bh{:x}-", std::process::id());
    let hidden = format!("{prefix}hid");
    let op = |v: serde_json::Value| -> anyhow::Result<Op> { Ok(serde_json::from_value(v)?) };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client = Client::connect(socket, "tsim-bench").await?;
        let setup = vec![
            op(serde_json::json!({"op": "ns_create", "name": hidden, "ipv6": false}))?,
            op(serde_json::json!({"op": "link_add_bridge", "ns": hidden, "name": "br0", "up": true}))?,
        ];
        client.request(setup, RequestOptions::default()).await?;
        let atomic = RequestOptions { atomic: true, progress: false };
        let mut samples = Vec::with_capacity(n);
        let all = Instant::now();
        for i in 0..n {
            let ns = format!("{prefix}{i}");
            let net = format!("10.{}.{}", 200 + i / 250, i % 250);
            let batch = vec![
                op(serde_json::json!({"op": "ns_create", "name": ns, "ipv6": false}))?,
                op(serde_json::json!({"op": "link_add_veth", "ns": ns, "name": "eth0", "peer_ns": hidden,
                    "peer_name": format!("h{i}"), "peer_master": "br0", "up": true}))?,
                op(serde_json::json!({"op": "addr_add", "ns": ns, "dev": "eth0", "addr": format!("{net}.2/24")}))?,
                op(serde_json::json!({"op": "route_add", "ns": ns, "dst": "0.0.0.0/0", "via": format!("{net}.1")}))?,
            ];
            let t = Instant::now();
            client.request(batch, atomic).await?;
            samples.push(t.elapsed());
        }
        let total = all.elapsed();
        let mut teardown = Vec::with_capacity(n + 1);
        for i in 0..n {
            teardown.push(op(serde_json::json!({"op": "ns_delete", "name": format!("{prefix}{i}")}))?);
        }
        teardown.push(op(serde_json::json!({"op": "ns_delete", "name": hidden}))?);
        if std::env::var_os("TSIM_BENCH_STATUS").is_some() {
            for op in client.status().await?.ops {
                eprintln!("{:<16} {:>6} p50 {:>6} µs  p90 {:>6} µs  p99 {:>6} µs", op.op, op.count, op.p50_us, op.p90_us, op.p99_us);
            }
        }
        let t = Instant::now();
        client.request(teardown, RequestOptions::default()).await?;
        anyhow::Ok((Samples(samples), total, t.elapsed()))
    })
}

/// Runs a bench script and returns the microseconds it printed for each of `keys`.
fn script_us(
    dir: &Path,
    script: &str,
    n: usize,
    unshare: bool,
    keys: &[&str],
) -> anyhow::Result<Vec<Duration>> {
    let path = dir.join(script);
    let mut cmd = if unshare {
        let mut c = Command::new("unshare");
        c.args(["-n", "bash"]);
        c
    } else {
        Command::new("bash")
    };
    let out = cmd.arg(&path).arg(n.to_string()).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success(),
        "{} failed: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    keys.iter()
        .map(|key| {
            let value = text
                .split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{key}=")))
                .and_then(|v| v.trim_end_matches("us").parse::<u64>().ok())
                .ok_or_else(|| {
                    anyhow::anyhow!("no {key}= in the output of {}: {text}", path.display())
                })?;
            Ok(Duration::from_micros(value))
        })
        .collect()
}

/// Runs `tsimctl ARGS` against `socket`, output discarded, and fails if it does.
fn run_tsimctl(bin: &Path, socket: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(bin)
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "tsimctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Waits until the kernel has freed every namespace deleted so far. It frees them in the
/// background, in order, and slowly (DESIGN.md: 10-20 a second), holding locks that slow
/// everything else that touches namespaces or links meanwhile, while the CPU looks idle. So
/// delete a canary namespace now, with a veth whose peer lives in a second namespace: when
/// the peer is gone, the canary, and so everything deleted before it, has been freed.
fn wait_for_netns_cleanup() {
    let canary = format!("bc{:x}-a", std::process::id());
    let witness = format!("bc{:x}-b", std::process::id());
    let ip = |args: &[&str]| {
        Command::new("ip")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let made = ip(&["netns", "add", &canary])
        && ip(&["netns", "add", &witness])
        && ip(&[
            "-n", &canary, "link", "add", "c0", "type", "veth", "peer", "name", "c1", "netns",
            &witness,
        ])
        && ip(&["netns", "del", &canary]);
    if made {
        let deadline = Instant::now() + Duration::from_secs(300);
        while ip(&["-n", &witness, "link", "show", "c1"]) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    ip(&["netns", "del", &canary]);
    ip(&["netns", "del", &witness]);
}

/// Waits (up to two minutes) until the kernel has freed the namespaces of earlier phases and
/// the machine is idle, so that one phase's background work does not slow the next.
fn settle() {
    wait_for_netns_cleanup();
    fn busy_idle() -> Option<(u64, u64)> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        let idle = cpu.get(3)? + cpu.get(4).unwrap_or(&0);
        Some((cpu.iter().sum::<u64>() - idle, idle))
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let Some((b0, i0)) = busy_idle() else { return };
        std::thread::sleep(Duration::from_millis(500));
        let Some((b1, i1)) = busy_idle() else { return };
        let (busy, idle) = (b1 - b0, i1 - i0);
        if busy * 20 <= busy + idle {
            return;
        }
    }
    eprintln!("tsim-bench: the machine did not go idle; measuring anyway");
}

fn ratio(old: Duration, new: Duration) -> String {
    format!("{:.0}×", old.as_secs_f64() / new.as_secs_f64())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(kind) = &args.attack {
        let socket = args
            .attack_socket
            .as_deref()
            .context("--attack needs --attack-socket")?;
        return hostile::attack(socket, kind, args.attack_secs);
    }
    let binary = match &args.helper {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("tsim-helper"),
    };
    let scripts = match &args.scripts {
        Some(d) => d.clone(),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).to_owned(),
    };
    let wants = |name: &str| args.only.is_empty() || args.only.iter().any(|o| o == name);
    let table = ["rtt", "namespaces", "host", "hosts", "svc", "net", "trace"];
    if table.iter().any(|p| wants(p)) {
        println!("| measure | tsim-helper | baseline (same run) | ratio |");
        println!("| --- | --- | --- | --- |");
    }
    if wants("rtt") {
        settle();
        let helper = start_helper(&binary)?;
        let python = python_start(args.python_runs)?;
        let floor = kernel_floor(args.round_trips)?;
        let one = round_trips(&helper.socket, args.round_trips)?;
        let raw = raw_round_trips(&helper.socket, args.round_trips)?;
        let (ctl, truth) = cli_start(&binary.with_file_name("tsimctl"), 300)?;
        let (many, per_sec) =
            concurrent_round_trips(&helper.socket, args.connections, args.round_trips / 4)?;
        println!(
            "| no-op round trip, 1 connection: p50 / p99 (target p50 ≤ 20 µs) | {} / {} | `python3 -c 'import subprocess, json'` start: {} | {} |",
            us(one.median()),
            us(one.quantile(0.99)),
            ms(python.median()),
            ratio(python.median(), one.median())
        );
        println!(
            "| kernel floor: blocking echo between two threads over a socketpair, p50 / p99 | | {} / {} | helper overhead above the floor: {} |",
            us(floor.median()),
            us(floor.quantile(0.99)),
            us(one.median().saturating_sub(floor.median()))
        );
        println!(
            "| no-op round trip without a client library (a blocking socket, a pre-encoded frame): p50 / p99 | {} / {} | the floor: {} | {:.2}× the floor |",
            us(raw.median()),
            us(raw.quantile(0.99)),
            us(floor.median()),
            raw.median().as_secs_f64() / floor.median().as_secs_f64()
        );
        println!(
            "| `tsimctl --version`, one process each, median of 300 (target ≤ 1.5× `/bin/true`) | {} | `/bin/true`: {} | {:.2}× |",
            ms(ctl.median()),
            ms(truth.median()),
            ctl.median().as_secs_f64() / truth.median().as_secs_f64()
        );
        println!(
            "| no-op round trip, {} connections at once: p50 / p99, throughput | {} / {}, {:.0} req/s | | |",
            args.connections,
            us(many.median()),
            us(many.quantile(0.99)),
            per_sec
        );
    }
    if wants("namespaces") {
        settle();
        let helper = start_helper(&binary)?;
        let (create, delete, ip_add, ip_del) = namespaces(&helper.socket, args.namespaces)?;
        println!(
            "| namespace create (lo up, DAD off, recorded): p50 / p99 | {} / {} | `ip netns add`: {} | {} |",
            ms(create.median()),
            ms(create.quantile(0.99)),
            ms(ip_add.median()),
            ratio(ip_add.median(), create.median())
        );
        println!(
            "| namespace delete: p50 / p99 | {} / {} | `ip netns del`: {} | {} |",
            ms(delete.median()),
            ms(delete.quantile(0.99)),
            ms(ip_del.median()),
            ratio(ip_del.median(), delete.median())
        );
    }
    // Before the 1000-host batches: the kernel stays slower for a while after those, even
    // once their namespaces are freed.
    if wants("host") {
        let tsimctl = binary.with_file_name("tsimctl");
        let prefix = format!("bh{:x}-", std::process::id());
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/facts");
        let example = example.display().to_string();
        let setup = [
            "net", "setup", "--facts", &example, "--prefix", &prefix, "--quiet",
        ];
        settle();
        let helper = start_helper(&binary)?;
        run_tsimctl(&tsimctl, &helper.socket, &setup)?;
        let r = host::measure(&tsimctl, &helper.socket, &prefix, args.host_count, &settle)?;
        run_tsimctl(&tsimctl, &helper.socket, &["net", "teardown"])?;
        drop(helper);
        settle();
        let pool_arg = args.pool_size.to_string();
        let helper = start_helper_with(&binary, &["--pool-size", &pool_arg])?;
        run_tsimctl(&tsimctl, &helper.socket, &setup)?;
        let pooled = host::measure_pool(
            &tsimctl,
            &helper.socket,
            &prefix,
            args.pool_size,
            args.host_count,
        )?;
        run_tsimctl(&tsimctl, &helper.socket, &["net", "teardown"])?;
        drop(helper);
        settle();
        let baseline = script_us(
            &scripts,
            "host_baseline.sh",
            args.host_count,
            true,
            &["ip_processes"],
        )?[0];
        let add = Samples(r.ctl_add);
        println!(
            "| `tsimctl host add`, sequential, one process each: p50 / p99 (target p50 ≤ 2.5 ms) | {} / {} | one `ip` process per step (`host_baseline.sh {}`): {} per host | {:.1}× faster |",
            ms(add.median()),
            ms(add.quantile(0.99)),
            args.host_count,
            ms(baseline),
            baseline.as_secs_f64() / add.median().as_secs_f64()
        );
        let lib = Samples(r.lib_add);
        println!(
            "| host add through the Rust client, sequential: p50 / p99 | {} / {} | same | {:.1}× faster |",
            ms(lib.median()),
            ms(lib.quantile(0.99)),
            baseline.as_secs_f64() / lib.median().as_secs_f64()
        );
        if pooled.lib.is_empty() {
            println!(
                "| host add from the pool | the pool served none of {} | | |",
                args.pool_size
            );
        } else {
            let hits = pooled.lib_hits;
            let lib = Samples(pooled.lib);
            println!(
                "| host add from the pool (Rust client), p50 / p99 (target p50 ≤ 0.5 ms); {hits} of {} served by the pool | {} / {} | same | {:.0}× faster |",
                args.pool_size,
                ms(lib.median()),
                ms(lib.quantile(0.99)),
                baseline.as_secs_f64() / lib.median().as_secs_f64()
            );
        }
        let ctl = Samples(pooled.ctl);
        println!(
            "| `tsimctl host add`, sequential, helper with `--pool-size {}`: p50 / p99; {} of {} served by the pool | {} / {} | same | {:.1}× faster |",
            args.pool_size,
            pooled.ctl_hits,
            args.host_count,
            ms(ctl.median()),
            ms(ctl.quantile(0.99)),
            baseline.as_secs_f64() / ctl.median().as_secs_f64()
        );
        println!(
            "| 100 hosts from 4 concurrent clients, 25 each, one request at a time (target ≤ 0.2 s) | {} | 100 × the `ip` baseline: {} | {:.0}× faster |",
            ms(r.concurrent),
            ms(baseline * 100),
            (baseline * 100).as_secs_f64() / r.concurrent.as_secs_f64()
        );
        let del = Samples(r.ctl_del);
        println!(
            "| `tsimctl host del`, sequential: p50 / p99 | {} / {} | | |",
            ms(del.median()),
            ms(del.quantile(0.99))
        );
    }
    if wants("hosts") {
        for &n in &args.hosts {
            settle();
            let helper = start_helper(&binary)?;
            let (samples, total, teardown) = hosts(&helper.socket, n)?;
            drop(helper);
            settle();
            let floors = script_us(
                &scripts,
                "kernel_floor.sh",
                n,
                false,
                &["floor", "attached"],
            )?;
            let (floor, attached) = (floors[0], floors[1]);
            settle();
            let baseline = script_us(
                &scripts,
                "host_baseline.sh",
                n,
                true,
                &["ip_processes", "ip_batch"],
            )?;
            let (processes, batch) = (baseline[0], baseline[1]);
            let mean = total / n as u32;
            println!(
                "| host-sized batch, N={n}: p50 / p99 / mean per host (target ≤ 2.5 ms) | {} / {} / {} | one `ip` process per step: {} | {:.1}× faster |",
                ms(samples.median()),
                ms(samples.quantile(0.99)),
                ms(mean),
                ms(processes),
                processes.as_secs_f64() / mean.as_secs_f64()
            );
            println!(
                "| same, N={n}, against `ip -batch` | | {} | {:.1}× faster |",
                ms(batch),
                batch.as_secs_f64() / mean.as_secs_f64()
            );
            println!(
                "| same, N={n}, against the kernel floor (netns add + veth born in place, `ip -batch`; target within 1.5×) | | {} | {:.2}× the floor |",
                ms(floor),
                mean.as_secs_f64() / floor.as_secs_f64()
            );
            println!(
                "| same, N={n}, against the floor with the bridge attach (netns add + veth + master/up, `ip -batch`) | | {} | {:.2}× |",
                ms(attached),
                mean.as_secs_f64() / attached.as_secs_f64()
            );
            println!(
                "| teardown of those {n} hosts and the hidden namespace, one request | {} | | |",
                ms(teardown)
            );
        }
    }
    if wants("svc") {
        let tsimctl = binary.with_file_name("tsimctl");
        let prefix = format!("bs{:x}-", std::process::id());
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/facts");
        let example = example.display().to_string();
        settle();
        // The throughput test runs megabytes through one connection.
        let helper = start_helper_with(&binary, &["--svc-max-bytes", "1073741824"])?;
        let sock = helper.socket.clone();
        let run = |args: &[&str]| run_tsimctl(&tsimctl, &sock, args);
        run(&[
            "net", "setup", "--facts", &example, "--prefix", &prefix, "--quiet",
        ])?;
        let (web, near) = (format!("{prefix}web"), format!("{prefix}near"));
        let lab = format!("{prefix}lab");
        run(&[
            "host",
            "add",
            &web,
            "--ip",
            "10.0.3.100/24",
            "--router",
            &lab,
        ])?;
        run(&[
            "host",
            "add",
            &near,
            "--ip",
            "10.0.3.101/24",
            "--router",
            &lab,
        ])?;
        for proto in ["tcp", "udp"] {
            run(&[
                "svc",
                "start",
                "--ns",
                &web,
                "--ip",
                "10.0.3.100",
                "--port",
                "7",
                "--proto",
                proto,
            ])?;
        }
        // One source per router of the path edge → core → lab, towards a host behind lab.
        let sources: Vec<String> = ["e1", "c1", "l1"]
            .iter()
            .map(|s| format!("{prefix}{s}"))
            .collect();
        for (name, ip, router) in [
            (&sources[0], "192.0.2.60/24", "edge"),
            (&sources[1], "10.0.1.60/24", "core"),
            (&sources[2], "10.0.2.60/24", "lab"),
        ] {
            let router = format!("{prefix}{router}");
            run(&["host", "add", name, "--ip", ip, "--router", &router])?;
        }
        let r = svc::measure(
            &tsimctl,
            &helper.socket,
            helper.child.id(),
            &near,
            "10.0.3.100",
            7,
            args.probes,
        );
        let ports = "22,80,443,8080,3306/tcp,53,123,161,514,33434/udp";
        let reach = svc::reach(&helper.socket, &sources, "10.0.3.100", ports, 5);
        let _ = run(&["net", "teardown"]);
        drop(helper);
        let r = r?;
        let old = Samples(r.old);
        let lib = Samples(r.lib);
        let ctl = Samples(r.ctl);
        println!(
            "| `probe_tcp` round trip through the Rust client (connect, send, read the echo; one bridge between the hosts): p50 / p99 | {} / {} | `ip netns exec NS python3 -c …` client per probe: {} | {} |",
            ms(lib.median()),
            ms(lib.quantile(0.99)),
            ms(old.median()),
            ratio(old.median(), lib.median())
        );
        println!(
            "| `tsimctl probe tcp`, one process each: p50 / p99 | {} / {} | same | {} |",
            ms(ctl.median()),
            ms(ctl.quantile(0.99)),
            ratio(old.median(), ctl.median())
        );
        let (times, yes, all) = reach?;
        let times = Samples(times);
        println!(
            "| `probe_reach`, 10 services ({ports}) on a 3-router path, one source per router, median of 5 ({yes} of {all} verdicts YES) | {} | the old quick job: 30–60 s (DESIGN.md) | {}–{}× |",
            ms(times.median()),
            (30.0 / times.median().as_secs_f64()).round(),
            (60.0 / times.median().as_secs_f64()).round()
        );
        for ((count, wall, cpu), proto) in r.throughput.iter().zip(["TCP", "UDP"]) {
            println!(
                "| {proto} echo throughput, one client inside a namespace, 64-byte round trips for {wall:.1} s | {:.0} round trips/s; {:.0} per second of the helper's CPU ({cpu:.2} s) | | |",
                *count as f64 / wall,
                if *cpu > 0.0 {
                    *count as f64 / cpu
                } else {
                    f64::NAN
                }
            );
        }
    }
    if wants("net") {
        let tsimctl = binary.with_file_name("tsimctl");
        let facts = match &args.facts {
            Some(d) => d.clone(),
            None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/facts10/raw"),
        };
        settle();
        let helper = start_helper(&binary)?;
        let topology = net::synthetic("", args.synthetic, 5, 10);
        let file = helper.dir.join("synthetic.json");
        std::fs::write(&file, serde_json::to_vec(&topology)?)?;
        let networks = [
            ("the 10-router facts", net::Source::Facts(facts)),
            ("a synthetic network", net::Source::Topology(file)),
        ];
        for (label, source) in &networks {
            let r = net::measure(&tsimctl, &helper.socket, source, args.net_rounds, &settle)?;
            let size = format!(
                "{} routers, {} interfaces, {} main-table routes",
                r.routers, r.interfaces, r.routes
            );
            println!(
                "| `tsimctl net setup` of {label} ({size}), end to end, median of {} (target ≤ 0.3 s for the 10 routers) | {} | one process per step, serially: {} | {} |",
                r.setup.len(),
                ms(r.setup_median()),
                ms(r.old_setup),
                ratio(r.old_setup, r.setup_median())
            );
            println!(
                "| `tsimctl net teardown` of the same, end to end (target ≤ 0.2 s for the 10 routers) | {} | `ip netns del` per namespace: {} | {} |",
                ms(r.teardown_median()),
                ms(r.old_teardown),
                ratio(r.old_teardown, r.teardown_median())
            );
            if let net::Source::Facts(dir) = source {
                let took =
                    net::teardown_with_hosts(&tsimctl, &helper.socket, source, 100, &settle)?;
                println!(
                    "| `tsimctl net teardown` of {label} with 100 hosts on it, end to end (target ≤ 0.2 s) | {} | | |",
                    ms(took)
                );
                let (without, with, added) =
                    net::internet_cost(&tsimctl, &helper.socket, dir, args.net_rounds, &settle)?;
                println!(
                    "| `tsimctl net setup --internet` of {label} (the outside world too: one more router, one more bridge), end to end, median of {} | {} | the same without `--internet`: {} | {:.2}× |",
                    args.net_rounds,
                    ms(with),
                    ms(without),
                    with.as_secs_f64() / without.as_secs_f64()
                );
                println!(
                    "| `tsimctl net setup --internet` on {label} in place (the diff adds the outside world alone) | {} | | |",
                    ms(added)
                );
                let x = net::explain_cost(&tsimctl, &helper.socket, dir, 20, &settle)?;
                println!(
                    "| `probe_ping -c 1 --explain` on {label} with `--internet`, from hq-gw to an external host (every one of its {} routers traced, {} on the path), Rust client, median of 20 | {} | the same ping without `--explain`: {} | {:.1}× |",
                    x.routers,
                    x.path,
                    ms(x.ping.1),
                    ms(x.ping.0),
                    x.ping.1.as_secs_f64() / x.ping.0.as_secs_f64()
                );
                println!(
                    "| `probe_tcp --explain` (an echo) on the same, median of 20 | {} | the same probe without `--explain`: {} | {:.1}× |",
                    ms(x.tcp.1),
                    ms(x.tcp.0),
                    x.tcp.1.as_secs_f64() / x.tcp.0.as_secs_f64()
                );
            }
        }
    }
    if wants("trace") {
        // What tracing adds to the quick analysis: the same jobs on a helper that traces
        // and on one started with `--no-trace`, alternately, 3 rounds of 10 jobs each.
        let tsimctl = binary.with_file_name("tsimctl");
        let facts = match &args.facts {
            Some(d) => d.clone(),
            None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/facts10/raw"),
        };
        let (mut traced, mut untraced) = (Vec::new(), Vec::new());
        let (mut no, mut named) = (0, 0);
        for _ in 0..3 {
            for (extra, into) in [(&[][..], &mut traced), (&["--no-trace"][..], &mut untraced)] {
                settle();
                let helper = start_helper_with(&binary, extra)?;
                let (times, n, w) = net::reach_jobs(&tsimctl, &helper.socket, &facts, 10)?;
                into.extend(times);
                if extra.is_empty() {
                    (no, named) = (n, w);
                }
            }
        }
        let (t, u) = (net::median(&traced), net::median(&untraced));
        println!(
            "| `probe_reach` on the 10-router facts, 7 services from hq-gw and hq-lab ({no} NO verdicts, {named} naming the rule that dropped them), median of {} | {} | the same on a helper with `--no-trace` (no rule named): {} | {:.2}× |",
            traced.len(),
            ms(t),
            ms(u),
            t.as_secs_f64() / u.as_secs_f64()
        );
    }
    // Last: its section follows the table.
    if wants("load") {
        let tsimctl = binary.with_file_name("tsimctl");
        settle();
        let r = load::run(
            &binary,
            &tsimctl,
            args.load_clients,
            args.load_requests,
            &args.load_mix,
        )?;
        r.print();
    }
    if wants("hostile") {
        settle();
        let r = hostile::run(&binary, &std::env::current_exe()?, args.hostile_secs)?;
        r.print();
    }
    Ok(())
}
