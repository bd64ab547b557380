//! The hostile phase (`tsim-bench --only hostile`): what a member of the group can make the
//! helper spend, and what root's `ping` sees meanwhile.
//!
//! In one run: the helper's idle VmRSS; its VmHWM after 8 connections each sent a 16 MiB
//! frame of `ping` operations at once; root's `ping` p50/p99 idle; then, attack by attack,
//! root's `ping` latency while a member (uid 65534 with the helper's group, in a process of its
//! own: this binary, copied where that user can run it, started with `--attack KIND`) sends the
//! worst requests found, on 8 connections, one request at a time on each.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use tsim_protocol::frame::encode_body;
use tsim_protocol::{ServerMessage, version};

use crate::{Samples, ms, start_helper, us};

/// The uid the attacks run as.
const MEMBER: u32 = 65534;

/// Connections per attack.
const CONNECTIONS: usize = 8;

/// The attacks, by name, with what they send.
pub const ATTACKS: &[(&str, &str)] = &[
    (
        "pings",
        "16 MiB frames of 1.8 M `ping` (over `max_ops`: refused from the array header)",
    ),
    (
        "max_ops_pings",
        "10 000 `ping` (the limit) each with a 1.6 kB unknown array: 16 MiB decoded and run",
    ),
    (
        "nested",
        "16 MiB frames of one `ping` with an unknown key of arrays nested 60 deep",
    ),
    (
        "ports",
        "10 000 `probe_reach` each with the longest port list accepted (1 KiB, 100 items)",
    ),
    (
        "long_ports",
        "16 MiB frames of one `probe_reach` with `\"1-100\" + \",1-100\"` × 2.7 M (finding 4)",
    ),
    (
        "status",
        "10 000 `status` (the costliest immediate operation) per request",
    ),
    (
        "topology",
        "16 MiB `net_apply` topologies (refused for a member, after decoding)",
    ),
];

/// `{"type": "request", "id": ID, "ops": [OP × count]}`, built by hand.
fn request_body(id: u64, op: &[u8], count: u32) -> Vec<u8> {
    let mut body = vec![0x83];
    body.extend(encode_body(&"type").unwrap_or_default());
    body.extend(encode_body(&"request").unwrap_or_default());
    body.extend(encode_body(&"id").unwrap_or_default());
    body.extend(encode_body(&id).unwrap_or_default());
    body.extend(encode_body(&"ops").unwrap_or_default());
    body.push(0xdd);
    body.extend(count.to_be_bytes());
    body.reserve(op.len() * count as usize);
    for _ in 0..count {
        body.extend_from_slice(op);
    }
    body
}

/// The request body of an attack.
fn attack_body(kind: &str) -> anyhow::Result<Vec<u8>> {
    let op = |v: serde_json::Value| encode_body(&v).context("encode");
    Ok(match kind {
        "pings" => request_body(1, &op(serde_json::json!({"op": "ping"}))?, 1_800_000),
        "max_ops_pings" => {
            let pad = vec![0u8; 1600];
            request_body(
                1,
                &op(serde_json::json!({"op": "ping", "future": pad}))?,
                10_000,
            )
        }
        "nested" => {
            // [[[…60 deep…[0]…]]] repeated to fill the frame, under one unknown key.
            let mut one = vec![0x91u8; 60];
            one.push(0);
            let count = (16_000_000 / one.len()) as u32;
            let mut value = vec![0xdd];
            value.extend(count.to_be_bytes());
            for _ in 0..count {
                value.extend_from_slice(&one);
            }
            let mut ping = vec![0x82];
            ping.extend(op(serde_json::json!("op"))?);
            ping.extend(op(serde_json::json!("ping"))?);
            ping.extend(op(serde_json::json!("x"))?);
            ping.extend(value);
            request_body(1, &ping, 1)
        }
        "ports" => {
            let ports = (1..=100)
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(",");
            let reach = serde_json::json!({"op": "probe_reach", "from": ["nohost"],
                "dst": "10.0.0.1", "ports": ports});
            request_body(1, &op(reach)?, 10_000)
        }
        "long_ports" => {
            let mut ports = "1-100".to_owned();
            ports.push_str(&",1-100".repeat(2_700_000));
            let reach = serde_json::json!({"op": "probe_reach", "from": ["nohost"],
                "dst": "10.0.0.1", "ports": ports});
            request_body(1, &op(reach)?, 1)
        }
        "status" => request_body(1, &op(serde_json::json!({"op": "status"}))?, 10_000),
        "topology" => {
            let mut routers = 2000;
            loop {
                let topology = crate::net::synthetic("", routers, 5, 100);
                let apply = op(serde_json::json!({"op": "net_apply", "topology": topology}))?;
                if apply.len() < 15 << 20 {
                    break request_body(1, &apply, 1);
                }
                routers = routers * 3 / 4;
            }
        }
        other => anyhow::bail!("unknown attack {other}"),
    })
}

fn write_frame(stream: &mut UnixStream, body: &[u8]) -> std::io::Result<()> {
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(body);
    stream.write_all(&frame)
}

fn read_frame(stream: &mut UnixStream) -> anyhow::Result<ServerMessage> {
    let mut header = [0u8; 4];
    stream.read_exact(&mut header)?;
    let mut body = vec![0u8; u32::from_be_bytes(header) as usize];
    stream.read_exact(&mut body)?;
    Ok(tsim_protocol::frame::decode_body(&body)?)
}

fn handshake(socket: &Path) -> anyhow::Result<UnixStream> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let hello = serde_json::json!({"type": "hello", "protocol": [version::MAJOR, version::MINOR],
        "client": "tsim-bench-attack"});
    write_frame(&mut stream, &encode_body(&hello)?)?;
    match read_frame(&mut stream)? {
        ServerMessage::Welcome(w) => {
            ensure!(
                w.peer.uid != 0 && w.peer.authorized,
                "not a member: {:?}",
                w.peer
            );
            Ok(stream)
        }
        other => anyhow::bail!("no welcome: {other:?}"),
    }
}

/// The attacker's side (`tsim-bench --attack KIND`, run as the member): `CONNECTIONS`
/// connections, each sending the attack's request and waiting for its answer, again and
/// again for `secs` seconds (at least once). Prints `requests=N codes=CODE,…`.
pub fn attack(socket: &Path, kind: &str, secs: f64) -> anyhow::Result<()> {
    let body = attack_body(kind)?;
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let results: Vec<anyhow::Result<(u64, Vec<String>)>> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..CONNECTIONS)
            .map(|_| {
                let body = &body;
                s.spawn(move || -> anyhow::Result<(u64, Vec<String>)> {
                    let mut stream = handshake(socket)?;
                    let (mut n, mut codes) = (0u64, Vec::new());
                    loop {
                        write_frame(&mut stream, body)?;
                        match read_frame(&mut stream)? {
                            ServerMessage::Response(r) => {
                                let code = r.error.map_or("ok".to_owned(), |e| e.code.to_string());
                                if !codes.contains(&code) {
                                    codes.push(code);
                                }
                            }
                            other => anyhow::bail!("unexpected answer {other:?}"),
                        }
                        n += 1;
                        if Instant::now() >= until {
                            return Ok((n, codes));
                        }
                    }
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("panicked")))
            })
            .collect()
    });
    let (mut total, mut codes) = (0, Vec::<String>::new());
    for r in results {
        let (n, c) = r?;
        total += n;
        for code in c {
            if !codes.contains(&code) {
                codes.push(code);
            }
        }
    }
    println!("requests={total} codes={}", codes.join(","));
    Ok(())
}

/// Starts `--attack KIND` as the member, in the background.
#[allow(
    unsafe_code,
    reason = "pre_exec is needed to set supplementary groups before setuid"
)]
fn spawn_attacker(
    exe: &Path,
    socket: &Path,
    kind: &str,
    secs: f64,
) -> anyhow::Result<std::process::Child> {
    let mut cmd = Command::new(exe);
    cmd.arg("--attack")
        .arg(kind)
        .arg("--attack-socket")
        .arg(socket)
        .arg("--attack-secs")
        .arg(secs.to_string())
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    // SAFETY: the closure only makes async-signal-safe system calls (setgroups, setgid,
    // setuid) between fork and exec, and allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setgroups(&[nix::unistd::Gid::from_raw(0)])?;
            nix::unistd::setgid(nix::unistd::Gid::from_raw(MEMBER))?;
            nix::unistd::setuid(nix::unistd::Uid::from_raw(MEMBER))?;
            Ok(())
        });
    }
    cmd.spawn().context("start the attacker")
}

fn finish(child: std::process::Child) -> anyhow::Result<String> {
    let out = child.wait_with_output()?;
    ensure!(out.status.success(), "the attacker failed: {}", out.status);
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn proc_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// Root's pings, one every millisecond, until `stop` says so.
fn pings_while(socket: &Path, mut stop: impl FnMut(usize) -> bool) -> anyhow::Result<Samples> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client = tsim_client::Client::connect(socket, "tsim-bench").await?;
        let mut samples = Vec::new();
        while !stop(samples.len()) {
            let t = Instant::now();
            client.ping().await?;
            samples.push(t.elapsed());
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Ok(Samples(samples))
    })
}

/// One attack's figures.
pub struct AttackRow {
    kind: &'static str,
    what: &'static str,
    pings: Samples,
    outcome: String,
}

/// What the phase measured.
pub struct HostileResult {
    idle_rss_kb: u64,
    idle_hwm_kb: u64,
    flood_hwm_kb: u64,
    flood_outcome: String,
    idle: Samples,
    rows: Vec<AttackRow>,
}

/// Runs the phase on a helper started from `binary`; `exe` is this program.
pub fn run(binary: &Path, exe: &Path, secs: f64) -> anyhow::Result<HostileResult> {
    let helper = start_helper(binary)?;
    let pid = helper.child.id();
    // A copy of this program the member can run.
    let copy: PathBuf = helper.dir.join("tsim-bench-attack");
    let ok = Command::new("install")
        .args(["-m", "0755"])
        .arg(exe)
        .arg(&copy)
        .status()?;
    ensure!(ok.success(), "cannot copy {}", exe.display());
    let idle = pings_while(&helper.socket, |n| n >= 2000)?;
    let idle_rss_kb = proc_kb(pid, "VmRSS");
    let idle_hwm_kb = proc_kb(pid, "VmHWM");
    // (a) 8 connections at once, one 16 MiB frame of pings each.
    let flood = spawn_attacker(&copy, &helper.socket, "pings", 0.0)?;
    let flood_outcome = finish(flood)?;
    let flood_hwm_kb = proc_kb(pid, "VmHWM");
    // (b) Root's pings under each attack.
    let mut rows = Vec::new();
    for &(kind, what) in ATTACKS {
        let child = spawn_attacker(&copy, &helper.socket, kind, secs)?;
        let started = Instant::now();
        let pings = pings_while(&helper.socket, |_| {
            started.elapsed() > Duration::from_secs_f64(secs)
        })?;
        let outcome = finish(child)?;
        rows.push(AttackRow {
            kind,
            what,
            pings,
            outcome,
        });
    }
    Ok(HostileResult {
        idle_rss_kb,
        idle_hwm_kb,
        flood_hwm_kb,
        flood_outcome,
        idle,
        rows,
    })
}

fn mib(kb: u64) -> String {
    format!("{:.1} MiB", kb as f64 / 1024.0)
}

impl HostileResult {
    /// Prints the section.
    pub fn print(&self) {
        println!();
        println!("## Hostile members (`tsim-bench --only hostile`)");
        println!();
        println!("| measure | figure | idle baseline (same run) | ratio |");
        println!("| --- | --- | --- | --- |");
        println!(
            "| helper memory after 8 connections each sent a 16 MiB frame of 1.8 M `ping` at once: VmHWM (target < 200 MiB); attacker saw {} | {} | idle VmRSS {} (VmHWM {}) | {:.1}× |",
            self.flood_outcome,
            mib(self.flood_hwm_kb),
            mib(self.idle_rss_kb),
            mib(self.idle_hwm_kb),
            self.flood_hwm_kb as f64 / self.idle_rss_kb.max(1) as f64
        );
        let idle99 = self.idle.quantile(0.99);
        println!(
            "| root `ping`, idle, one every ms: p50 / p99 | {} / {} | | |",
            us(self.idle.median()),
            us(idle99)
        );
        let mut worst: Option<&AttackRow> = None;
        for row in &self.rows {
            let p99 = row.pings.quantile(0.99);
            println!(
                "| root `ping` p50 / p99 / max (target p99 < 5 ms) while a member sends, on {CONNECTIONS} connections: {} (`{}`; {}) | {} / {} / {} | p99 idle {} | {:.1}× |",
                row.what,
                row.kind,
                row.outcome,
                us(row.pings.median()),
                us(p99),
                ms(row.pings.quantile(1.0)),
                us(idle99),
                p99.as_secs_f64() / idle99.as_secs_f64()
            );
            if worst.is_none_or(|w| w.pings.quantile(0.99) < p99) {
                worst = Some(row);
            }
        }
        if let Some(w) = worst {
            println!();
            println!(
                "Worst attack found: `{}` ({}), root `ping` p99 {}.",
                w.kind,
                w.what,
                ms(w.pings.quantile(0.99))
            );
        }
    }
}
