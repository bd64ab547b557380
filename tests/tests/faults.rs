//! Fault injection: the helper is killed with SIGKILL at a random moment during host batches,
//! during `net setup` of the 10-router network, and during reachability jobs; after each
//! restart nothing is leaked (namespaces, `/run/netns` entries, links in the hidden namespace,
//! reach chains in the routers' mangle tables, no trace rules in their raw tables) and the
//! registry equals the kernel.
//!
//! `TSIM_FAULT_RUNS` sets the runs per scenario (default 2; `bench/faults.sh` runs more and
//! reports). `TSIM_FAULT_SEED` replays a run's random moments; each run prints its seed and
//! where it struck.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use tsim_client::{BlockingClient, RequestOptions};
use tsim_protocol::Op;
use tsim_tests::{TestHelper, example_facts, facts10, ip_netns_list, require_priv, text};

/// A small deterministic generator (xorshift64*), so a seed replays a run.
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        let seed = std::env::var("TSIM_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap();
                t.as_nanos() as u64 ^ u64::from(std::process::id())
            });
        eprintln!("fault seed {seed} (TSIM_FAULT_SEED={seed} replays it)");
        Rng(seed | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// A moment in `0..limit`.
    fn moment(&mut self, limit: Duration) -> Duration {
        let micros = limit.as_micros().max(1) as u64;
        Duration::from_micros(self.next() % micros)
    }
}

fn runs() -> usize {
    std::env::var("TSIM_FAULT_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2)
}

/// Polls `check` for up to 15 s (the kernel frees namespaces and their links asynchronously).
fn eventually(what: &str, check: impl Fn() -> Result<(), String>) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match check() {
            Ok(()) => return,
            Err(e) if Instant::now() > deadline => panic!("{what}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Link names in namespace `ns`.
fn links(ns: &str) -> BTreeSet<String> {
    let out = Command::new("ip")
        .args(["-n", ns, "-o", "link", "show"])
        .output()
        .unwrap();
    text(&out)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_owned())
        .collect()
}

/// What the routers' mangle and raw tables hold of reachability jobs (their counting chains
/// and their `TRACE` rules).
fn reach_leftovers(routers: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for r in routers {
        for table in ["mangle", "raw"] {
            let out = Command::new("ip")
                .args(["netns", "exec", r, "iptables-save", "-t", table])
                .output()
                .unwrap();
            found.extend(
                text(&out)
                    .lines()
                    .filter(|l| l.contains("TSIM_REACH") || l.contains("tsim-explain"))
                    .map(|l| format!("{r}: {l}")),
            );
        }
    }
    found
}

/// The state after a restart: the registry equals the kernel, hosts are whole, the network
/// (if one is recorded) verifies against its facts, and no reach chains remain. Returns the
/// routers.
fn audit(helper: &TestHelper, facts: &std::path::Path) -> Vec<String> {
    let client = helper.client();
    let hidden = helper.ns("hidden");
    let listed: BTreeSet<String> = client
        .ns_list()
        .unwrap()
        .into_iter()
        .map(|n| n.name.to_string())
        .filter(|n| *n != hidden)
        .collect();
    let kernel: BTreeSet<String> = ip_netns_list()
        .into_iter()
        .filter(|n| n.starts_with(&helper.prefix) && *n != hidden)
        .collect();
    assert_eq!(listed, kernel, "the registry and /run/netns differ");
    let hosts = client.host_list().unwrap();
    assert!(
        hosts.iter().all(|h| h.state == "ready"),
        "a host is not whole: {hosts:?}"
    );
    let host_names: BTreeSet<String> = hosts.iter().map(|h| h.name.to_string()).collect();
    let routers: Vec<String> = listed.difference(&host_names).cloned().collect();
    if !routers.is_empty() {
        let out = helper.tsimctl(&[
            "net",
            "verify",
            "--facts",
            facts.to_str().unwrap(),
            "--prefix",
            &helper.prefix,
        ]);
        assert!(
            out.status.success(),
            "net verify after the restart: {}",
            text(&out)
        );
    }
    let left = reach_leftovers(&routers);
    assert!(left.is_empty(), "reach chains left behind: {left:?}");
    routers
}

/// Removes everything (hosts, network) and checks that nothing at all is left: no
/// namespaces of ours but the hidden one, nothing in the hidden namespace but `lo`, no
/// records.
fn clean_and_check(helper: &TestHelper) {
    let out = helper.tsimctl(&["net", "teardown"]);
    assert!(out.status.success(), "net teardown: {}", text(&out));
    let hidden = helper.ns("hidden");
    eventually("nothing of ours left in the kernel", || {
        let left: Vec<String> = ip_netns_list()
            .into_iter()
            .filter(|n| n.starts_with(&helper.prefix) && *n != hidden)
            .collect();
        if !left.is_empty() {
            return Err(format!("namespaces left: {left:?}"));
        }
        if ip_netns_list().contains(&hidden) {
            let l = links(&hidden);
            if l.iter().any(|n| n != "lo") {
                return Err(format!("links left in the hidden namespace: {l:?}"));
            }
        }
        Ok(())
    });
    let records: Vec<_> = std::fs::read_dir(helper.state.join("ns"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.contains("hidden"))
        .collect();
    assert!(records.is_empty(), "records left: {records:?}");
    assert!(
        helper
            .client()
            .ns_list()
            .unwrap()
            .iter()
            .all(|n| n.name.as_str() == hidden)
    );
}

/// Host batches: one atomic request of 25 hosts and 25 single-host requests pipelined
/// behind it, all behind routers that need a gateway added; killed at a random moment.
#[test]
fn kill_9_during_host_batches() {
    require_priv!();
    let mut rng = Rng::new();
    let mut helper = TestHelper::start();
    let facts = example_facts();
    let batch = |helper: &TestHelper, run: usize| -> (BlockingClient, Vec<_>) {
        let client = helper.client();
        let host = |i: usize| -> Op {
            serde_json::from_value(json!({"op": "host_add",
                "name": helper.ns(&format!("r{run}h{i}")),
                "ip": format!("10.9.{}.{}/24", i % 2, 10 + i),
                "router": helper.ns(if i % 2 == 0 { "core" } else { "lab" })}))
            .unwrap()
        };
        let atomic = RequestOptions {
            atomic: true,
            ..RequestOptions::default()
        };
        let mut pending = vec![client.start((0..25).map(host).collect(), atomic).unwrap()];
        for i in 25..50 {
            pending.push(
                client
                    .start(vec![host(i)], RequestOptions::default())
                    .unwrap(),
            );
        }
        (client, pending)
    };
    // One run to the end, to know how long a batch takes.
    helper.net_setup(&facts);
    let started = Instant::now();
    let (client, pending) = batch(&helper, 0);
    for p in pending {
        client.wait(p).unwrap();
    }
    let whole = started.elapsed();
    eprintln!("a whole batch takes {whole:?}");
    clean_and_check(&helper);

    for run in 1..=runs() {
        helper.net_setup(&facts);
        let at = rng.moment(whole);
        let (client, pending) = batch(&helper, run);
        std::thread::sleep(at);
        helper.kill9();
        drop(pending);
        drop(client);
        helper.restart();
        let hosts = helper.client().host_list().unwrap().len();
        eprintln!("run {run}: killed at {at:?}; {hosts} of 50 hosts survived");
        audit(&helper, &facts);
        clean_and_check(&helper);
    }
}

/// `net setup` of the 10-router network, killed at a random moment.
#[test]
fn kill_9_during_net_setup() {
    require_priv!();
    let mut rng = Rng::new();
    let mut helper = TestHelper::start();
    let facts = facts10();
    let setup = |helper: &TestHelper| {
        Command::new(tsim_tests::binary("tsimctl"))
            .arg("--socket")
            .arg(&helper.socket)
            .args(["net", "setup", "--quiet", "--facts"])
            .arg(&facts)
            .args(["--prefix", &helper.prefix])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let started = Instant::now();
    assert!(setup(&helper).wait().unwrap().success());
    let whole = started.elapsed();
    eprintln!("a whole net setup takes {whole:?}");
    clean_and_check(&helper);

    for run in 1..=runs() {
        // Up to twice the first run's time: later runs are slower (the kernel is still
        // freeing the previous round's namespaces), and some kills must fall after the commit.
        let at = rng.moment(whole * 2);
        let mut child = setup(&helper);
        std::thread::sleep(at);
        helper.kill9();
        let _ = child.wait();
        helper.restart();
        let routers = audit(&helper, &facts);
        eprintln!(
            "run {run}: killed at {at:?}; {} routers after the restart",
            routers.len()
        );
        assert!(
            routers.is_empty() || routers.len() == 10,
            "a partial network: {routers:?}"
        );
        clean_and_check(&helper);
    }
}

/// Reachability jobs from three routers, killed at a random moment: the restart removes
/// their chains.
#[test]
fn kill_9_during_reach_jobs() {
    require_priv!();
    let mut rng = Rng::new();
    let mut helper = TestHelper::start();
    let facts = facts10();
    helper.net_setup(&facts);
    helper.add_hosts(&[
        ("src1", "10.1.1.100/24", "hq-gw"),
        ("lab1", "10.1.10.100/24", "hq-lab"),
        ("dc1", "10.2.1.100/24", "dc-core"),
    ]);
    let job = |helper: &TestHelper| -> Op {
        serde_json::from_value(json!({"op": "probe_reach",
            "from": [helper.ns("src1"), helper.ns("lab1"), helper.ns("dc1")],
            "dst": "10.3.1.1", "ports": "22,80,443,8080/tcp,53,161/udp", "timeout_ms": 300}))
        .unwrap()
    };
    let client = helper.client();
    let started = Instant::now();
    client
        .request(vec![job(&helper)], RequestOptions::default())
        .unwrap();
    let whole = started.elapsed();
    eprintln!("a whole job takes {whole:?}");
    drop(client);
    let mut struck = 0;
    for run in 1..=runs() {
        let client = helper.client();
        let pending: Vec<_> = (0..3)
            .map(|_| {
                client
                    .start(vec![job(&helper)], RequestOptions::default())
                    .unwrap()
            })
            .collect();
        let at = rng.moment(whole);
        std::thread::sleep(at);
        let routers: Vec<String> = ["hq-gw", "hq-lab", "dc-core"]
            .iter()
            .map(|r| helper.ns(r))
            .collect();
        let before = reach_leftovers(&routers).len();
        helper.kill9();
        drop(pending);
        drop(client);
        struck += usize::from(before > 0);
        eprintln!("run {run}: killed at {at:?}, {before} lines of running jobs in the routers");
        helper.restart();
        audit(&helper, &facts);
    }
    eprintln!(
        "{struck} of {} kills struck while chains were installed",
        runs()
    );
    clean_and_check(&helper);
}
