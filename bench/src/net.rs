//! The simulated-network benchmark: `tsimctl net setup` and `net teardown`, end to end (a
//! new tsimctl process, the facts read and compiled, one request), on the 10-router facts and
//! on a synthetic network; beside the same network built the old way, one `ip`,
//! `iptables-restore` or `ipset` process per step, serially.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use tsim_protocol::topology::{
    AddrDef, BridgeDef, InterfaceDef, RouteDef, RouterDef, SysctlDef, Topology,
};

/// What one network measured: our setup and teardown (one sample per round), the old way's
/// (one round), and the network's size.
pub struct NetResult {
    pub setup: Vec<Duration>,
    pub teardown: Vec<Duration>,
    pub old_setup: Duration,
    pub old_teardown: Duration,
    pub routers: usize,
    pub interfaces: usize,
    pub routes: usize,
}

impl NetResult {
    pub fn setup_median(&self) -> Duration {
        median(&self.setup)
    }
    pub fn teardown_median(&self) -> Duration {
        median(&self.teardown)
    }
}

pub fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort_unstable();
    v[v.len() / 2]
}

/// Where the network comes from.
pub enum Source {
    /// A facts directory (`net setup --facts`).
    Facts(PathBuf),
    /// A topology document (`net setup --topology`).
    Topology(PathBuf),
}

/// Runs tsimctl against `socket`, returning how long it took.
fn tsimctl(bin: &Path, socket: &Path, args: &[&str]) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let out = Command::new(bin)
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    let took = started.elapsed();
    ensure!(
        out.status.success(),
        "tsimctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(took)
}

/// The topology tsimctl would apply for `source` (for the old way's commands and the size).
fn plan(bin: &Path, source: &Source, prefix: &str) -> anyhow::Result<Topology> {
    let mut cmd = Command::new(bin);
    cmd.args(["net", "plan", "--prefix", prefix]);
    match source {
        Source::Facts(dir) => cmd.arg("--facts").arg(dir),
        Source::Topology(file) => cmd.arg("--topology").arg(file),
    };
    let out = cmd.stderr(Stdio::null()).output()?;
    ensure!(out.status.success(), "tsimctl net plan failed");
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Measures `rounds` setups and teardowns through the helper, then one of each the old way.
pub fn measure(
    tsimctl_bin: &Path,
    socket: &Path,
    source: &Source,
    rounds: usize,
    settle: &dyn Fn(),
) -> anyhow::Result<NetResult> {
    let prefix = format!("bn{:x}-", std::process::id());
    let (kind, path) = match source {
        Source::Facts(d) => ("--facts", d.display().to_string()),
        Source::Topology(f) => ("--topology", f.display().to_string()),
    };
    let setup_args = ["net", "setup", kind, &path, "--prefix", &prefix, "--quiet"];
    let (mut setup, mut teardown) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        settle();
        setup.push(tsimctl(tsimctl_bin, socket, &setup_args)?);
        teardown.push(tsimctl(tsimctl_bin, socket, &["net", "teardown"])?);
    }
    let old_prefix = format!("bo{:x}-", std::process::id());
    let topology = plan(tsimctl_bin, source, &old_prefix)?;
    settle();
    let (old_setup, old_teardown) = old_way(&topology, &format!("{old_prefix}hidden"))?;
    Ok(NetResult {
        setup,
        teardown,
        old_setup,
        old_teardown,
        routers: topology.routers.len(),
        interfaces: topology.routers.iter().map(|r| r.interfaces.len()).sum(),
        routes: topology
            .routers
            .iter()
            .map(|r| r.routes.iter().filter(|r| !r.policy).count())
            .sum(),
    })
}

/// What `--internet` adds: `net setup` of `facts` from nothing with and without it
/// (interleaved, `rounds` each, a teardown after each), and the diff that adds the outside
/// world alone to the network in place. Medians: (without, with, added alone).
pub fn internet_cost(
    tsimctl_bin: &Path,
    socket: &Path,
    facts: &Path,
    rounds: usize,
    settle: &dyn Fn(),
) -> anyhow::Result<(Duration, Duration, Duration)> {
    let prefix = format!("bi{:x}-", std::process::id());
    let dir = facts.display().to_string();
    let plain = [
        "net", "setup", "--facts", &dir, "--prefix", &prefix, "--quiet",
    ];
    let mut with = plain.to_vec();
    with.push("--internet");
    let (mut without_s, mut with_s, mut added_s) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        settle();
        without_s.push(tsimctl(tsimctl_bin, socket, &plain)?);
        added_s.push(tsimctl(tsimctl_bin, socket, &with)?);
        tsimctl(tsimctl_bin, socket, &["net", "teardown"])?;
        settle();
        with_s.push(tsimctl(tsimctl_bin, socket, &with)?);
        tsimctl(tsimctl_bin, socket, &["net", "teardown"])?;
    }
    Ok((median(&without_s), median(&with_s), median(&added_s)))
}

/// What `--explain` adds to a probe: median times of the same probe with and without it,
/// interleaved.
pub struct ExplainCost {
    /// `probe_ping -c 1`: (without, with).
    pub ping: (Duration, Duration),
    /// `probe_tcp` with an echo: (without, with).
    pub tcp: (Duration, Duration),
    /// The routers traced (every router of the applied network).
    pub routers: usize,
    /// The routers the explained ping's packets passed.
    pub path: usize,
}

/// Sets up `facts` with `--internet`, an external host 8.8.8.8 with a TCP echo service on
/// port 80, and measures, through the Rust client, a ping (one echo request) and a TCP echo
/// probe from the first router of the facts (its source 10.1.1.1) to it, `rounds` times with
/// and `rounds` times without `explain`, interleaved. The probes cross the edge's
/// MASQUERADE; every address is inside the bench's namespaces.
pub fn explain_cost(
    tsimctl_bin: &Path,
    socket: &Path,
    facts: &Path,
    rounds: usize,
    settle: &dyn Fn(),
) -> anyhow::Result<ExplainCost> {
    use tsim_client::BlockingClient;
    use tsim_protocol::ops::{ProbeEcho, ProbePing, ProbeStatus, Transport};

    let prefix = format!("bx{:x}-", std::process::id());
    let dir = facts.display().to_string();
    settle();
    tsimctl(
        tsimctl_bin,
        socket,
        &[
            "net",
            "setup",
            "--facts",
            &dir,
            "--prefix",
            &prefix,
            "--internet",
            "--quiet",
        ],
    )?;
    let result = (|| {
        let ext = format!("{prefix}g8");
        tsimctl(
            tsimctl_bin,
            socket,
            &["host", "add", &ext, "--ip", "8.8.8.8/32", "--internet"],
        )?;
        tsimctl(
            tsimctl_bin,
            socket,
            &[
                "svc", "start", "--ns", &ext, "--ip", "8.8.8.8", "--port", "80",
            ],
        )?;
        let client = BlockingClient::connect(socket, "tsim-bench")?;
        let from = format!("{prefix}hq-gw");
        let ping = |explain| ProbePing {
            ns: from.parse().expect("name"),
            dst: "8.8.8.8".parse().expect("address"),
            src: Some("10.1.1.1".parse().expect("address")),
            count: Some(1),
            interval_ms: None,
            timeout_ms: Some(2000),
            explain,
        };
        let tcp = |explain| ProbeEcho {
            ns: from.parse().expect("name"),
            dst: "8.8.8.8".parse().expect("address"),
            port: 80,
            src: Some("10.1.1.1".parse().expect("address")),
            message: Some("Test\n".into()),
            timeout_ms: Some(2000),
            explain,
        };
        let (mut ping_s, mut tcp_s) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
        let (mut routers, mut path) = (0, 0);
        // One of each first, not counted: the first explained probe finds the raw tables
        // new, and the first packets fill the neighbour caches.
        for round in 0..=rounds {
            for explain in [false, true] {
                let t = Instant::now();
                let r = client.probe_ping(ping(explain))?;
                let took = t.elapsed();
                ensure!(r.received == 1, "the ping got no answer: {r:?}");
                if let Some(e) = &r.explain {
                    ensure!(e.unsupported.is_none(), "nothing traced: {e:?}");
                    path = e.routers.len();
                }
                let t2 = Instant::now();
                let r = client.probe_echo(Transport::Tcp, tcp(explain))?;
                let took2 = t2.elapsed();
                ensure!(r.status == ProbeStatus::Ok, "the TCP probe failed: {r:?}");
                if round > 0 {
                    ping_s[usize::from(explain)].push(took);
                    tcp_s[usize::from(explain)].push(took2);
                }
            }
        }
        if let Ok(shown) = client.net_show() {
            routers = shown.topology.map(|t| t.routers.len()).unwrap_or(0);
        }
        Ok(ExplainCost {
            ping: (median(&ping_s[0]), median(&ping_s[1])),
            tcp: (median(&tcp_s[0]), median(&tcp_s[1])),
            routers,
            path,
        })
    })();
    let down = tsimctl(tsimctl_bin, socket, &["net", "teardown"]);
    let cost = result?;
    down?;
    Ok(cost)
}

/// One helper's reachability jobs on `facts`: the network set up, a source host on hq-gw
/// (10.1.1.100) and one on hq-lab (10.1.10.100), then `jobs` jobs one after the other from
/// both, for 7 services towards 10.2.1.1 (5 of them dropped by both routers' FORWARD
/// chains); the times, and how many NO verdicts of the last job named their rule.
pub fn reach_jobs(
    tsimctl_bin: &Path,
    socket: &Path,
    facts: &Path,
    jobs: usize,
) -> anyhow::Result<(Vec<Duration>, usize, usize)> {
    use tsim_client::BlockingClient;
    use tsim_protocol::ops::{ProbeReach, Verdict};

    let prefix = format!("br{:x}-", std::process::id());
    let dir = facts.display().to_string();
    tsimctl(
        tsimctl_bin,
        socket,
        &[
            "net", "setup", "--facts", &dir, "--prefix", &prefix, "--quiet",
        ],
    )?;
    let result = (|| {
        let (src, lab) = (format!("{prefix}src1"), format!("{prefix}lab1"));
        for (name, ip, router) in [
            (&src, "10.1.1.100/24", "hq-gw"),
            (&lab, "10.1.10.100/24", "hq-lab"),
        ] {
            let router = format!("{prefix}{router}");
            tsimctl(
                tsimctl_bin,
                socket,
                &["host", "add", name, "--ip", ip, "--router", &router],
            )?;
        }
        let client = BlockingClient::connect(socket, "tsim-bench")?;
        let job = ProbeReach {
            from: vec![src.parse()?, lab.parse()?],
            dst: "10.2.1.1".parse()?,
            ports: "22,80,443/tcp,53/udp,161/udp,10000/tcp,33434/udp".into(),
            timeout_ms: Some(500),
        };
        let mut times = Vec::with_capacity(jobs);
        let (mut no, mut named) = (0, 0);
        for _ in 0..jobs {
            let t = Instant::now();
            let r = client.probe_reach(job.clone())?;
            times.push(t.elapsed());
            let nos: Vec<_> = r
                .routers
                .iter()
                .flat_map(|r| r.services.iter())
                .filter(|s| s.verdict == Verdict::No)
                .collect();
            no = nos.len();
            named = nos.iter().filter(|s| s.dropped_by.is_some()).count();
        }
        Ok::<_, anyhow::Error>((times, no, named))
    })();
    let down = tsimctl(tsimctl_bin, socket, &["net", "teardown"]);
    let r = result?;
    down?;
    Ok(r)
}

/// Sets up the network of `source`, adds `hosts` hosts spread over its routers (one request,
/// each host behind the first bridged interface of its router, in a subnet of its own that
/// needs an added gateway), and returns how long `tsimctl net teardown` takes to remove it
/// all.
pub fn teardown_with_hosts(
    tsimctl_bin: &Path,
    socket: &Path,
    source: &Source,
    hosts: usize,
    settle: &dyn Fn(),
) -> anyhow::Result<Duration> {
    let prefix = format!("bt{:x}-", std::process::id());
    let (kind, path) = match source {
        Source::Facts(d) => ("--facts", d.display().to_string()),
        Source::Topology(f) => ("--topology", f.display().to_string()),
    };
    let topology = plan(tsimctl_bin, source, &prefix)?;
    settle();
    tsimctl(
        tsimctl_bin,
        socket,
        &["net", "setup", kind, &path, "--prefix", &prefix, "--quiet"],
    )?;
    let routers: Vec<(&str, &str)> = topology
        .routers
        .iter()
        .filter_map(|r| {
            let iface = r.interfaces.iter().find(|i| i.bridge.is_some())?;
            Some((r.name.as_str(), iface.name.as_str()))
        })
        .collect();
    ensure!(!routers.is_empty(), "no router with a bridged interface");
    let ops = (0..hosts)
        .map(|i| {
            let k = i % routers.len();
            let (router, dev) = routers[k];
            let op = serde_json::json!({"op": "host_add", "name": format!("{prefix}h{i}"),
                "ip": format!("10.200.{k}.{}/24", 10 + i / routers.len()),
                "router": router, "router_if": dev});
            Ok(serde_json::from_value(op)?)
        })
        .collect::<anyhow::Result<Vec<tsim_protocol::Op>>>()?;
    let client = tsim_client::BlockingClient::connect(socket, "tsim-bench")?;
    client.request(ops, tsim_client::RequestOptions::default())?;
    let took = tsimctl(tsimctl_bin, socket, &["net", "teardown"])?;
    Ok(took)
}

/// One process, optionally fed `input`; fails if it fails.
fn run(args: &[&str], input: Option<&str>) -> anyhow::Result<()> {
    let mut child = Command::new(args[0])
        .args(&args[1..])
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", args[0]))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(text.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Builds `topology` the old way (one process per step, serially), then deletes it; returns
/// both times. Routes and firewall lines the kernel refuses are skipped, as the helper does.
fn old_way(topology: &Topology, hidden: &str) -> anyhow::Result<(Duration, Duration)> {
    let started = Instant::now();
    let result = old_setup(topology, hidden);
    let setup = started.elapsed();
    let started = Instant::now();
    let mut names: Vec<&str> = topology.routers.iter().map(|r| r.name.as_str()).collect();
    names.push(hidden);
    for name in names {
        let _ = run(&["ip", "netns", "del", name], None);
    }
    let teardown = started.elapsed();
    result?;
    Ok((setup, teardown))
}

fn old_setup(topology: &Topology, hidden: &str) -> anyhow::Result<()> {
    run(&["ip", "netns", "add", hidden], None)?;
    for b in &topology.bridges {
        run(
            &[
                "ip",
                "-n",
                hidden,
                "link",
                "add",
                b.name.as_str(),
                "type",
                "bridge",
            ],
            None,
        )?;
        run(
            &["ip", "-n", hidden, "link", "set", b.name.as_str(), "up"],
            None,
        )?;
    }
    for r in &topology.routers {
        let ns = r.name.as_str();
        run(&["ip", "netns", "add", ns], None)?;
        run(&["ip", "-n", ns, "link", "set", "lo", "up"], None)?;
        for i in &r.interfaces {
            let (name, end) = (i.name.as_str(), i.hidden_end.as_str());
            run(
                &[
                    "ip", "-n", ns, "link", "add", name, "type", "veth", "peer", "name", end,
                    "netns", hidden,
                ],
                None,
            )?;
            if let Some(b) = &i.bridge {
                run(
                    &[
                        "ip",
                        "-n",
                        hidden,
                        "link",
                        "set",
                        end,
                        "master",
                        b.as_str(),
                        "up",
                    ],
                    None,
                )?;
            }
            for a in &i.addrs {
                let cidr = a.addr.to_string();
                run(&["ip", "-n", ns, "addr", "add", &cidr, "dev", name], None)?;
            }
            if i.up {
                run(&["ip", "-n", ns, "link", "set", name, "up"], None)?;
            }
        }
        let mut sysctl = vec!["ip", "netns", "exec", ns, "sysctl", "-q", "-w"];
        let settings: Vec<String> = r
            .sysctls
            .iter()
            .map(|s| format!("{}={}", s.key.dotted(), s.value))
            .collect();
        sysctl.extend(settings.iter().map(String::as_str));
        run(&sysctl, None)?;
        for route in r.routes.iter().filter(|r| !r.policy) {
            let text = route.to_string();
            let mut args = vec!["ip", "-n", ns, "route", "add"];
            args.extend(text.split_whitespace());
            let _ = run(&args, None);
        }
        if let Some(payload) = &r.ipset {
            let _ = run(
                &["ip", "netns", "exec", ns, "ipset", "restore", "-exist"],
                Some(payload),
            );
        }
        if let Some(payload) = &r.iptables {
            let _ = run(
                &["ip", "netns", "exec", ns, "iptables-restore"],
                Some(payload),
            );
        }
    }
    Ok(())
}

/// A synthetic network: `routers` routers in a ring, each with `links` links to each side
/// (so `2 * links` interfaces, one subnet and bridge per link), `routes` static routes each
/// and a small firewall. Router `i`'s link `j` goes to router `i + j + 1`.
pub fn synthetic(prefix: &str, routers: usize, links: usize, routes: usize) -> Topology {
    let subnet = |k: usize| -> String { format!("10.{}.{}", 100 + k / 256, k % 256) };
    let mut topology = Topology::default();
    let mut ifaces: Vec<Vec<InterfaceDef>> = vec![Vec::new(); routers];
    for i in 0..routers {
        for j in 0..links {
            let k = i * links + j;
            let peer = (i + j + 1) % routers;
            let bridge = format!("br-s{k}").parse().expect("bridge name");
            topology.bridges.push(BridgeDef {
                name: bridge,
                subnet: format!("{}.0/24", subnet(k)).parse().expect("subnet"),
            });
            let iface = |side: usize, index: usize, host: u8| InterfaceDef {
                name: format!("eth{index}").parse().expect("name"),
                up: true,
                addrs: vec![AddrDef {
                    addr: format!("{}.{host}/24", subnet(k)).parse().expect("addr"),
                    broadcast: None,
                    scope: None,
                    secondary: false,
                }],
                bridge: Some(format!("br-s{k}").parse().expect("bridge name")),
                hidden_end: format!("v{side}s{k}").parse().expect("end name"),
            };
            let mine = ifaces[i].len();
            ifaces[i].push(iface(0, mine, 1));
            let theirs = ifaces[peer].len();
            ifaces[peer].push(iface(1, theirs, 2));
        }
    }
    let firewall = {
        let mut rules = String::from(
            "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n",
        );
        for p in 0..20 {
            rules.push_str(&format!(
                "-A FORWARD -s 10.{}.0.0/16 -p tcp -m tcp --dport {} -j ACCEPT\n",
                100 + p % 4,
                1000 + p
            ));
        }
        rules.push_str("COMMIT\n");
        rules
    };
    for (i, interfaces) in ifaces.into_iter().enumerate() {
        let gateway = interfaces[0].addrs[0].addr.addr();
        let gateway = match gateway {
            std::net::IpAddr::V4(a) => {
                let o = a.octets();
                // The other end of the first link.
                let host = if o[3] == 1 { 2 } else { 1 };
                std::net::Ipv4Addr::new(o[0], o[1], o[2], host)
            }
            std::net::IpAddr::V6(_) => unreachable!("IPv4 only"),
        };
        let routes = (0..routes)
            .map(|m| RouteDef {
                dst: format!("172.{}.{}.0/24", 16 + m % 16, i % 256)
                    .parse()
                    .expect("dst"),
                table: None,
                policy: false,
                kind: None,
                via: Some(std::net::IpAddr::V4(gateway).into()),
                dev: Some(interfaces[0].name.clone()),
                src: None,
                metric: Some(10 + m as u32),
                tos: None,
                scope: None,
                proto: Some(tsim_protocol::net::RouteProto::Static),
                onlink: false,
                nexthops: Vec::new(),
            })
            .collect();
        topology.routers.push(RouterDef {
            name: format!("{prefix}s{i}").parse().expect("router name"),
            interfaces,
            routes,
            rules: Vec::new(),
            sysctls: vec![SysctlDef {
                key: "net.ipv4.ip_forward".parse().expect("key"),
                value: "1".parse().expect("value"),
            }],
            ipset: None,
            iptables: Some(firewall.clone()),
            internet: false,
        });
    }
    topology
}
