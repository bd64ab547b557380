//! The load harness: N clients, each on its own connection, send M requests one at a time, a
//! deterministic mix of pings, reads, echo probes and host add/delete pairs, to one helper on
//! the bundled example network; reports throughput, latency per class, errors by code, and
//! the helper's memory, descriptors and CPU, and checks that no host is left behind.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use tsim_client::{Client, ClientError};
use tsim_protocol::ops::{
    AddrList, HostAdd, HostDelete, HostList, LinkList, NsList, Ping, ProbeEcho, ProbeStatus,
    Status, SvcAddr, SvcList, SvcStart, Transport,
};
use tsim_protocol::{Cidr, NsName, Op, OpResult, Tag};

use crate::{Samples, run_tsimctl, start_helper_with};

/// A latency: microseconds under a millisecond, milliseconds above.
fn ms(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{} µs", d.as_micros())
    } else {
        crate::ms(d)
    }
}

/// The operations of the mix, by index; the class of each is [`class_of`].
const OPS: [&str; 11] = [
    "ping",
    "status",
    "ns_list",
    "host_list",
    "svc_list",
    "link_list",
    "addr_list",
    "probe_tcp",
    "probe_udp",
    "host_add",
    "host_delete",
];
const PING: u8 = 0;
const READS: [u8; 6] = [1, 2, 3, 4, 5, 6];
const PROBE_TCP: u8 = 7;
const PROBE_UDP: u8 = 8;
const HOST_ADD: u8 = 9;
const HOST_DELETE: u8 = 10;

/// The latency classes, in report order.
const CLASSES: [&str; 5] = ["ping", "read", "probe", "host_add", "host_delete"];

fn class_of(op: u8) -> &'static str {
    match op {
        PING => "ping",
        PROBE_TCP | PROBE_UDP => "probe",
        HOST_ADD => "host_add",
        HOST_DELETE => "host_delete",
        _ => "read",
    }
}

/// The target of the issue: no errors, and reads at p99 under this.
const READ_P99_TARGET: Duration = Duration::from_millis(5);

/// A request that takes longer than this is counted as an error (`timeout (client)`).
const REQUEST_LIMIT: Duration = Duration::from_secs(60);

/// The echo service's host and port, and the probe sources' addresses, all behind lab.
const WEB_IP: &str = "10.0.3.254";
const PORT: u16 = 7;
/// Several sources, so that the TIME_WAIT sockets left by TCP probes (the prober closes
/// first) spread over several address pairs and never exhaust the ephemeral ports.
const SOURCES: [&str; 4] = ["10.0.3.250", "10.0.3.251", "10.0.3.252", "10.0.3.253"];

/// Most clients: each has its own address, 10.0.3.2–249 behind lab, then 192.0.2.2–254
/// behind edge.
const MAX_CLIENTS: usize = 248 + 253;

/// The address and router of client `c`'s hosts.
fn client_address(c: usize) -> (String, &'static str) {
    if c < 248 {
        (format!("10.0.3.{}/24", 2 + c), "lab")
    } else {
        (format!("192.0.2.{}/24", 2 + c - 248), "edge")
    }
}

/// A small deterministic generator (xorshift64*), one per client.
struct Mix(u64);

impl Mix {
    fn new(client: usize) -> Self {
        Mix((client as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// What every client needs to build its requests.
struct Plan {
    /// Prefix of every namespace of this phase.
    prefix: String,
    routers: Vec<NsName>,
    sources: Vec<NsName>,
    tag: Tag,
    /// Percentages of ping, reads, probes and host operations.
    mix: [u64; 4],
}

impl Plan {
    fn host_name(&self, c: usize, k: u64) -> NsName {
        format!("{}L{c}x{k}", self.prefix)
            .parse()
            .expect("a valid host name")
    }
}

/// Errors seen, by (operation, code): how many, and the first message.
type Errors = BTreeMap<(&'static str, String), (u64, String)>;

/// What one client saw.
#[derive(Default)]
struct Outcome {
    samples: Vec<(u8, Duration)>,
    errors: Errors,
    /// Set when the connection broke and the client stopped early.
    stopped: Option<String>,
}

impl Outcome {
    fn error(&mut self, op: u8, code: String, message: String) {
        let e = self.errors.entry((OPS[op as usize], code)).or_default();
        if e.0 == 0 {
            e.1 = message;
        }
        e.0 += 1;
    }
}

/// Builds the `i`-th request of client `c`; `live` is its host, if it has one.
fn next_op(plan: &Plan, mix: &mut Mix, c: usize, i: usize, live: &Option<NsName>) -> (u8, Op) {
    let r = mix.next();
    let pick = (r >> 33) as usize;
    let roll = r % 100;
    let [ping, read, probe, _] = plan.mix;
    match roll {
        _ if roll < ping => (PING, Op::Ping(Ping { delay_ms: None })),
        _ if roll < ping + read => {
            let op = READS[pick % READS.len()];
            let router = plan.routers[(pick / READS.len()) % plan.routers.len()].clone();
            let request = match op {
                1 => Op::Status(Status {}),
                2 => Op::NsList(NsList {}),
                3 => Op::HostList(HostList {}),
                4 => Op::SvcList(SvcList {}),
                5 => Op::LinkList(LinkList {
                    ns: router,
                    name: None,
                }),
                _ => Op::AddrList(AddrList {
                    ns: router,
                    dev: None,
                    family: None,
                }),
            };
            (op, request)
        }
        _ if roll < ping + read + probe => {
            let args = ProbeEcho {
                ns: plan.sources[pick % plan.sources.len()].clone(),
                dst: WEB_IP.parse().expect("an address"),
                port: PORT,
                src: None,
                message: Some(format!("load {c} {i}")),
                timeout_ms: Some(5000),
                explain: false,
            };
            // 7 of 10 over TCP.
            if (r >> 16) % 10 < 7 {
                (PROBE_TCP, Op::ProbeTcp(args))
            } else {
                (PROBE_UDP, Op::ProbeUdp(args))
            }
        }
        _ => match live {
            Some(name) => (
                HOST_DELETE,
                Op::HostDelete(HostDelete {
                    name: name.clone(),
                    tag: None,
                }),
            ),
            None => {
                let (ip, router) = client_address(c);
                let router: NsName = format!("{}{router}", plan.prefix)
                    .parse()
                    .expect("a router name");
                (
                    HOST_ADD,
                    Op::HostAdd(HostAdd {
                        name: plan.host_name(c, i as u64),
                        ip: ip.parse::<Cidr>().expect("an address"),
                        router,
                        router_if: None,
                        secondaries: Vec::new(),
                        tag: Some(plan.tag.clone()),
                        share: false,
                    }),
                )
            }
        },
    }
}

/// Client `c`: `m` requests, one at a time, then the delete of its last host if it has one.
async fn client_loop(
    client: &Client,
    plan: &Plan,
    c: usize,
    m: usize,
    done: &AtomicU64,
) -> Outcome {
    let mut mix = Mix::new(c);
    let mut out = Outcome {
        samples: Vec::with_capacity(m + 1),
        ..Outcome::default()
    };
    let mut live: Option<NsName> = None;
    let mut i = 0;
    loop {
        let (op, request) = if i < m {
            next_op(plan, &mut mix, c, i, &live)
        } else if let Some(name) = live.clone() {
            (HOST_DELETE, Op::HostDelete(HostDelete { name, tag: None }))
        } else {
            break;
        };
        i += 1;
        let added = match &request {
            Op::HostAdd(a) => Some(a.name.clone()),
            _ => None,
        };
        let t = Instant::now();
        let result = tokio::time::timeout(REQUEST_LIMIT, client.call(request)).await;
        out.samples.push((op, t.elapsed()));
        done.fetch_add(1, Ordering::Relaxed);
        match result {
            Err(_) => out.error(
                op,
                "timeout (client)".into(),
                format!("no answer in {} s", REQUEST_LIMIT.as_secs()),
            ),
            Ok(Err(e @ ClientError::Remote { .. })) => {
                let code = e.code().map(|c| c.to_string()).unwrap_or_default();
                out.error(op, code, e.to_string());
            }
            Ok(Err(e)) => {
                let kind = match &e {
                    ClientError::Closed(_) => "connection closed",
                    ClientError::Io(_) => "i/o error",
                    ClientError::Protocol(_) => "protocol error",
                    _ => "client error",
                };
                out.error(op, kind.into(), e.to_string());
                out.stopped = Some(format!("client {c} stopped after {i} requests: {e}"));
                break;
            }
            Ok(Ok(OpResult::ProbeTcp(p) | OpResult::ProbeUdp(p))) => {
                if p.status != ProbeStatus::Ok {
                    out.error(
                        op,
                        format!("probe {:?}", p.status).to_lowercase(),
                        p.detail.unwrap_or_default(),
                    );
                }
            }
            Ok(Ok(OpResult::HostAdd(_))) => live = added,
            Ok(Ok(OpResult::HostDelete(_))) => live = None,
            Ok(Ok(_)) => {}
        }
    }
    out
}

/// Fields of `/proc/<pid>/status` in kB (or a count, for `Threads`).
fn proc_status(pid: u32, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Open descriptors of a process.
fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// User plus system CPU seconds of a process (`"self"` for this one), from `/proc/…/stat`.
fn cpu_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let Some((_, after)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15, 12 and 13 after the command name; USER_HZ is 100.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// CPU ticks so far of every kernel thread (kthreadd and its children), by pid.
fn kernel_thread_ticks() -> BTreeMap<u32, u64> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, after)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = after.split_whitespace().collect();
        let num = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        if pid == 2 || num(1) == 2 {
            out.insert(pid, num(11) + num(12));
        }
    }
    out
}

/// Seconds of CPU the kernel threads used between two [`kernel_thread_ticks`] (those that
/// exited in between are missed).
fn kernel_thread_seconds(before: &BTreeMap<u32, u64>, after: &BTreeMap<u32, u64>) -> f64 {
    let ticks: u64 = after
        .iter()
        .map(|(pid, t)| t.saturating_sub(*before.get(pid).unwrap_or(&0)))
        .sum();
    ticks as f64 / 100.0
}

/// The counters of the `cpu` line of `/proc/stat` (every core), in ticks.
fn cpu_line() -> Vec<u64> {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    stat.lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect()
}

/// Interrupt and soft-interrupt ticks so far (every core), from `/proc/stat`.
fn irq_ticks() -> u64 {
    let cpu = cpu_line();
    cpu.get(5).unwrap_or(&0) + cpu.get(6).unwrap_or(&0)
}

/// The machine's busy and total CPU ticks so far (every core), from `/proc/stat`.
fn machine_ticks() -> (u64, u64) {
    let cpu = cpu_line();
    let idle = cpu.get(3).unwrap_or(&0) + cpu.get(4).unwrap_or(&0);
    let total: u64 = cpu.iter().take(8).sum();
    (total - idle, total)
}

/// Network namespaces the kernel still holds (live or being freed), from the
/// `net_namespace` slab.
fn kernel_netns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/slabinfo").ok()?;
    text.lines()
        .find(|l| l.starts_with("net_namespace "))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// A snapshot of the helper process.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSnap {
    /// VmRSS, kB.
    pub rss_kb: u64,
    /// VmHWM (peak RSS since start), kB.
    pub hwm_kb: u64,
    /// Open descriptors.
    pub fds: usize,
    /// Threads.
    pub threads: u64,
}

fn snap(pid: u32) -> ProcSnap {
    ProcSnap {
        rss_kb: proc_status(pid, "VmRSS").unwrap_or(0),
        hwm_kb: proc_status(pid, "VmHWM").unwrap_or(0),
        fds: fd_count(pid),
        threads: proc_status(pid, "Threads").unwrap_or(0),
    }
}

/// The helper's own view of one operation (from `status`): count, p50, p99, max.
type ServerStats = BTreeMap<String, (u64, Duration, Duration, Duration)>;

/// What the load phase measured.
pub struct LoadResult {
    pub clients: usize,
    pub requests: usize,
    /// Percentages of ping, reads, probes and host operations.
    pub mix: [u64; 4],
    /// Helper options passed beyond the bench's usual ones.
    pub helper_args: Vec<String>,
    /// Latencies by operation index.
    samples: Vec<Vec<Duration>>,
    errors: Errors,
    stopped: Vec<String>,
    pub wall: Duration,
    /// The helper before the load (network, services and probe sources set up, idle),
    /// after it (clients gone), and after the teardown.
    pub before: ProcSnap,
    pub after: ProcSnap,
    pub torn_down: ProcSnap,
    /// The helper once its threads are back to their number before the load (at most 15 s
    /// after the teardown), and how long that took.
    pub idle: (ProcSnap, Duration),
    /// VmRSS (kB) when 0 %, 10 %, … 100 % of the requests were done.
    pub rss_trend: Vec<u64>,
    /// CPU seconds during the load: the helper, this bench (every client), the whole machine
    /// busy, and the machine's capacity (wall × cores).
    pub cpu_helper: f64,
    pub cpu_bench: f64,
    pub cpu_machine: f64,
    pub cpu_capacity: f64,
    /// CPU seconds of kernel threads (e.g. the workers that free namespaces), and of
    /// interrupts and soft interrupts.
    pub cpu_kthreads: f64,
    pub cpu_irq: f64,
    /// Kernel network namespaces before, at most during, and after the load.
    pub netns: (Option<u64>, Option<u64>, Option<u64>),
    server: ServerStats,
    /// Load hosts still listed after the load: by `host_list`, `ns_list`, `ip netns list`.
    pub leftover: (usize, usize, usize),
}

/// Runs the load phase on a helper started from `binary`; `tsimctl` sets up the network.
pub fn run(
    binary: &Path,
    tsimctl: &Path,
    clients: usize,
    requests: usize,
    mix: &[u32],
) -> anyhow::Result<LoadResult> {
    ensure!(
        (1..=MAX_CLIENTS).contains(&clients),
        "--load-clients must be 1 to {MAX_CLIENTS}"
    );
    let mix: [u64; 4] = match mix {
        &[a, b, c, d] if a + b + c + d == 100 => [a.into(), b.into(), c.into(), d.into()],
        _ => anyhow::bail!(
            "--load-mix takes 4 percentages that add up to 100: ping, read, probe, host"
        ),
    };
    // The defaults (256 connections, 256 connections per echo service) allow 64 clients;
    // raise them only when more are asked for. Root is exempt from the per-uid quotas.
    let mut helper_args = Vec::new();
    if clients + 8 > 256 {
        helper_args.extend([
            "--max-connections".to_owned(),
            (clients + 8).to_string(),
            "--svc-max-connections".to_owned(),
            (clients + 8).to_string(),
        ]);
    }
    let extra: Vec<&str> = helper_args.iter().map(String::as_str).collect();
    let helper = start_helper_with(binary, &extra)?;
    let pid = helper.child.id();
    let prefix = format!("bl{:x}-", std::process::id());
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/facts");
    let example = example.display().to_string();
    run_tsimctl(
        tsimctl,
        &helper.socket,
        &[
            "net", "setup", "--facts", &example, "--prefix", &prefix, "--quiet",
        ],
    )?;
    let result = measure(&helper.socket, pid, &prefix, clients, requests, mix);
    let teardown = run_tsimctl(tsimctl, &helper.socket, &["net", "teardown"]);
    let torn_down = snap(pid);
    // tokio's idle blocking threads (the helper's file and namespace jobs) exit after 10 s;
    // wait for the helper to get back to its threads before the load.
    let idle_since = Instant::now();
    let mut idle = torn_down;
    if let Ok(r) = &result {
        while idle.threads > r.before.threads && idle_since.elapsed() < Duration::from_secs(15) {
            std::thread::sleep(Duration::from_millis(250));
            idle = snap(pid);
        }
    }
    drop(helper);
    let mut result = result?;
    teardown?;
    result.torn_down = torn_down;
    result.idle = (idle, idle_since.elapsed());
    result.helper_args = helper_args;
    Ok(result)
}

fn measure(
    socket: &Path,
    pid: u32,
    prefix: &str,
    clients: usize,
    requests: usize,
    mix: [u64; 4],
) -> anyhow::Result<LoadResult> {
    let name = |s: &str| -> anyhow::Result<NsName> { Ok(format!("{prefix}{s}").parse()?) };
    let plan = Plan {
        prefix: prefix.to_owned(),
        routers: ["edge", "core", "lab"]
            .iter()
            .map(|r| name(r))
            .collect::<anyhow::Result<_>>()?,
        sources: (0..SOURCES.len())
            .map(|i| name(&format!("src{i}")))
            .collect::<anyhow::Result<_>>()?,
        tag: "load".parse()?,
        mix,
    };
    // One thread drives every client (a current-thread runtime), so that the bench takes at
    // most one of the machine's cores from the helper.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let admin = Client::connect(socket, "tsim-bench").await?;
        let host = |name: NsName, ip: &str| -> anyhow::Result<HostAdd> {
            Ok(HostAdd {
                name,
                ip: ip.parse()?,
                router: plan.routers[2].clone(),
                router_if: None,
                secondaries: Vec::new(),
                tag: None,
                share: false,
            })
        };
        let web = name("web")?;
        admin
            .host_add(host(web.clone(), &format!("{WEB_IP}/24"))?)
            .await?;
        for (ns, ip) in plan.sources.iter().zip(SOURCES) {
            admin
                .host_add(host(ns.clone(), &format!("{ip}/24"))?)
                .await?;
        }
        for proto in [Transport::Tcp, Transport::Udp] {
            admin
                .svc_start(SvcStart {
                    addr: SvcAddr {
                        ns: web.clone(),
                        ip: WEB_IP.parse()?,
                        port: PORT,
                        proto,
                    },
                    tag: None,
                })
                .await?;
        }
        let mut conns = Vec::with_capacity(clients);
        for c in 0..clients {
            conns.push(
                Client::connect(socket, &format!("tsim-bench-load/{c}"))
                    .await
                    .with_context(|| format!("client {c} cannot connect"))?,
            );
        }

        let before = snap(pid);
        let netns_before = kernel_netns();
        let total = (clients * requests) as u64;
        let done = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        // Samples the helper's RSS and the kernel's namespaces while the clients run, and
        // tells how far the run is.
        let sampler = {
            let (done, stop) = (done.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut trend = vec![proc_status(pid, "VmRSS").unwrap_or(0)];
                let mut netns_peak = kernel_netns();
                let started = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                    let n = done.load(Ordering::Relaxed);
                    netns_peak = netns_peak.max(kernel_netns());
                    while (trend.len() as u64) <= 10 && n * 10 >= total * trend.len() as u64 {
                        trend.push(proc_status(pid, "VmRSS").unwrap_or(0));
                        eprintln!(
                            "tsim-bench: load {}0 % ({n} requests, {:.0} s)",
                            trend.len() - 1,
                            started.elapsed().as_secs_f64()
                        );
                    }
                }
                (trend, netns_peak)
            })
        };
        let (cpu_h0, cpu_b0, (busy0, all0)) = (
            cpu_seconds(&pid.to_string()),
            cpu_seconds("self"),
            machine_ticks(),
        );
        let (kthreads0, irq0) = (kernel_thread_ticks(), irq_ticks());
        let started = Instant::now();
        let jobs = conns
            .iter()
            .enumerate()
            .map(|(c, client)| client_loop(client, &plan, c, requests, &done));
        let outcomes = futures::future::join_all(jobs).await;
        let wall = started.elapsed();
        let (cpu_h1, cpu_b1, (busy1, all1)) = (
            cpu_seconds(&pid.to_string()),
            cpu_seconds("self"),
            machine_ticks(),
        );
        let (kthreads1, irq1) = (kernel_thread_ticks(), irq_ticks());
        stop.store(true, Ordering::Relaxed);
        let (trend, netns_peak) = sampler
            .join()
            .map_err(|_| anyhow::anyhow!("the sampler panicked"))?;
        drop(conns);

        // What the helper saw, then whether any load host is left, in the registry or the
        // kernel.
        let report = admin.status().await?;
        let server = report
            .ops
            .iter()
            .map(|o| {
                let d = Duration::from_micros;
                (
                    o.op.clone(),
                    (o.count, d(o.p50_us), d(o.p99_us), d(o.max_us)),
                )
            })
            .collect();
        let load_prefix = format!("{prefix}L");
        let hosts = admin
            .host_list()
            .await?
            .iter()
            .filter(|h| h.name.as_str().starts_with(&load_prefix))
            .count();
        let namespaces = admin
            .ns_list()
            .await?
            .iter()
            .filter(|n| n.name.as_str().starts_with(&load_prefix))
            .count();
        let out = std::process::Command::new("ip")
            .args(["netns", "list"])
            .output()?;
        let kernel = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with(&load_prefix))
            .count();
        // Let the helper finish closing the clients' connections.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let after = snap(pid);
        let netns_after = kernel_netns();

        let mut samples = vec![Vec::new(); OPS.len()];
        let mut errors = Errors::new();
        let mut stopped = Vec::new();
        for o in outcomes {
            for (op, d) in o.samples {
                samples[op as usize].push(d);
            }
            for (k, (n, msg)) in o.errors {
                let e = errors.entry(k).or_insert((0, msg));
                e.0 += n;
            }
            stopped.extend(o.stopped);
        }
        anyhow::Ok(LoadResult {
            clients,
            requests,
            mix,
            helper_args: Vec::new(),
            samples,
            errors,
            stopped,
            wall,
            before,
            after,
            torn_down: ProcSnap::default(),
            idle: (ProcSnap::default(), Duration::ZERO),
            rss_trend: trend,
            cpu_helper: cpu_h1 - cpu_h0,
            cpu_bench: cpu_b1 - cpu_b0,
            cpu_machine: (busy1 - busy0) as f64 / 100.0,
            cpu_capacity: (all1 - all0) as f64 / 100.0,
            cpu_kthreads: kernel_thread_seconds(&kthreads0, &kthreads1),
            cpu_irq: (irq1 - irq0) as f64 / 100.0,
            netns: (netns_before, netns_peak, netns_after),
            server,
            leftover: (hosts, namespaces, kernel),
        })
    })
}

impl LoadResult {
    fn class(&self, class: &str) -> Samples {
        Samples(
            (0..OPS.len())
                .filter(|&op| class_of(op as u8) == class)
                .flat_map(|op| self.samples[op].iter().copied())
                .collect(),
        )
    }

    fn total(&self) -> usize {
        self.samples.iter().map(Vec::len).sum()
    }

    fn error_count(&self) -> u64 {
        self.errors.values().map(|(n, _)| n).sum()
    }

    /// Whether the target was met: no errors, nothing left, reads at p99 < 5 ms.
    pub fn passed(&self) -> bool {
        let reads = self.class("read");
        self.error_count() == 0
            && self.stopped.is_empty()
            && self.leftover == (0, 0, 0)
            && !reads.0.is_empty()
            && reads.quantile(0.99) < READ_P99_TARGET
    }

    /// Prints the phase's Markdown section.
    pub fn print(&self) {
        let mib = |kb: u64| format!("{:.1} MiB", kb as f64 / 1024.0);
        println!();
        println!(
            "### Load: {} clients × {} requests",
            self.clients, self.requests
        );
        println!();
        let [ping, read, probe, host] = self.mix;
        let parts: Vec<String> = [
            (ping, "`ping`"),
            (read, "reads (`status`, `ns_list`, `host_list`, `svc_list`, and `link_list` or `addr_list` of a router)"),
            (probe, "echo probes from one of four hosts to a service on a fifth, on lab's bridge (7 in 10 `probe_tcp`, the others `probe_udp`)"),
            (host, "host operations, alternately `host_add` and `host_delete` of the client's own host (its own address, a new name each time, on lab's bridge)"),
        ]
        .iter()
        .filter(|(p, _)| *p > 0)
        .map(|(p, what)| format!("{p} % {what}"))
        .collect();
        println!(
            "Each client has its own connection and sends one request at a time, drawn at random (seeded per client, so the same every run): {}.",
            parts.join(", ")
        );
        println!(
            "All clients run on one thread of the bench; the helper {}.",
            if self.helper_args.is_empty() {
                "runs with its default limits".to_owned()
            } else {
                format!("runs with `{}`", self.helper_args.join(" "))
            }
        );
        println!();
        println!("| class | count | p50 | p99 | max | in the helper (`status`): p50 / p99 / max |");
        println!("| --- | --- | --- | --- | --- | --- |");
        let server = |name: &str| {
            self.server
                .get(name)
                .map(|(_, p50, p99, max)| format!("{} / {} / {}", ms(*p50), ms(*p99), ms(*max)))
                .unwrap_or_default()
        };
        for class in CLASSES {
            let s = self.class(class);
            if s.0.is_empty() {
                continue;
            }
            let target = if class == "read" {
                " (target p99 < 5 ms)"
            } else {
                ""
            };
            let ops: Vec<usize> = (0..OPS.len())
                .filter(|&op| class_of(op as u8) == class && !self.samples[op].is_empty())
                .collect();
            // A class of one operation of the same name is one row.
            let alone = matches!(ops[..], [op] if OPS[op] == class);
            println!(
                "| **{class}**{target} | {} | {} | {} | {} | {} |",
                s.0.len(),
                ms(s.median()),
                ms(s.quantile(0.99)),
                ms(s.quantile(1.0)),
                if alone { server(class) } else { String::new() },
            );
            if alone {
                continue;
            }
            for op in ops {
                let name = OPS[op];
                let s = Samples(self.samples[op].clone());
                println!(
                    "| {class}: `{name}` | {} | {} | {} | {} | {} |",
                    s.0.len(),
                    ms(s.median()),
                    ms(s.quantile(0.99)),
                    ms(s.quantile(1.0)),
                    server(name),
                );
            }
        }
        println!();
        let total = self.total();
        println!(
            "* Throughput: {total} requests in {:.1} s, {:.0} requests/s.",
            self.wall.as_secs_f64(),
            total as f64 / self.wall.as_secs_f64()
        );
        let errors = self.error_count();
        if errors == 0 && self.stopped.is_empty() {
            println!("* Errors: none.");
        } else {
            println!("* Errors: {errors}.");
            for ((op, code), (n, msg)) in &self.errors {
                println!("  * `{op}`, {code}: {n}×, first: {msg}");
            }
            for s in &self.stopped {
                println!("  * {s}");
            }
        }
        println!(
            "* Helper memory: VmRSS {} before the load (network, services, probe sources and clients connected), {} after it, {} after the teardown; peak (VmHWM) {}.",
            mib(self.before.rss_kb),
            mib(self.after.rss_kb),
            mib(self.torn_down.rss_kb),
            mib(self.after.hwm_kb.max(self.torn_down.hwm_kb)),
        );
        println!(
            "  VmRSS at 0, 10, … 100 % of the requests: {} MiB.",
            self.rss_trend
                .iter()
                .map(|kb| format!("{:.1}", *kb as f64 / 1024.0))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "* Helper descriptors and threads: {} and {} before (every client connected), {} and {} after (clients gone), {} and {} after the teardown, {} and {} {:.1} s later (VmRSS {}).",
            self.before.fds,
            self.before.threads,
            self.after.fds,
            self.after.threads,
            self.torn_down.fds,
            self.torn_down.threads,
            self.idle.0.fds,
            self.idle.0.threads,
            self.idle.1.as_secs_f64(),
            mib(self.idle.0.rss_kb),
        );
        let share = |s: f64| 100.0 * s / self.cpu_capacity;
        let other = (self.cpu_machine
            - self.cpu_helper
            - self.cpu_bench
            - self.cpu_kthreads
            - self.cpu_irq)
            .max(0.0);
        let part = |label: &str, s: f64| format!("{label} {s:.1} s ({:.0} %)", share(s));
        println!(
            "* CPU during the load ({:.1} core-seconds on {} cores): {}, {}, {}, {}, {}; idle {:.0} %.",
            self.cpu_capacity,
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            part("helper", self.cpu_helper),
            part("bench (every client)", self.cpu_bench),
            part(
                "kernel threads (among them the workers that free namespaces)",
                self.cpu_kthreads
            ),
            part("interrupts and soft interrupts", self.cpu_irq),
            part("other processes", other),
            100.0 - share(self.cpu_machine),
        );
        let opt = |v: Option<u64>| v.map_or("?".to_owned(), |v| v.to_string());
        println!(
            "* Kernel network namespaces (the `net_namespace` slab, live or being freed): {} before, at most {} during, {} after the load.",
            opt(self.netns.0),
            opt(self.netns.1),
            opt(self.netns.2)
        );
        let (hosts, namespaces, kernel) = self.leftover;
        println!(
            "* Left after the load: {hosts} load hosts in `host_list`, {namespaces} in `ns_list`, {kernel} in `ip netns list`."
        );
        let reads = self.class("read");
        println!(
            "* Target (0 errors, read p99 < 5 ms): **{}** (errors {errors}, read p99 {}).",
            if self.passed() { "met" } else { "not met" },
            if reads.0.is_empty() {
                "none".to_owned()
            } else {
                ms(reads.quantile(0.99))
            }
        );
    }
}
