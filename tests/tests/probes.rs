//! ICMP probes on the real kernel, on the bundled example network: ping with exact replies,
//! errors from a routing loop, traceroute in ICMP and UDP modes with exact hop lists, a
//! firewall that drops, concurrent probes from one namespace, and bad arguments.

use tsim_client::{BlockingClient, ClientError, RequestOptions};
use tsim_protocol::NsName;
use tsim_protocol::ops::{HostAdd, ProbePing, ProbeTrace, TraceMode, TraceResult};
use tsim_protocol::{ErrorCode, Op, OpResult};
use tsim_tests::{HelperOptions, TestHelper, example_facts, facts10, require_priv};

/// The example network with `web` (10.0.3.100, behind lab) and `far` (192.0.2.50, behind
/// edge): edge, core and lab in a row.
fn network() -> TestHelper {
    let helper = TestHelper::start_with(HelperOptions::default());
    helper.net_setup(&example_facts());
    helper.add_hosts(&[
        ("web", "10.0.3.100/24", "lab"),
        ("far", "192.0.2.50/24", "edge"),
    ]);
    helper
}

fn ping(helper: &TestHelper, from: &str, dst: &str, count: u32) -> ProbePing {
    ProbePing {
        ns: helper.ns(from).parse().unwrap(),
        dst: dst.parse().unwrap(),
        src: None,
        count: Some(count),
        interval_ms: Some(20),
        timeout_ms: Some(500),
        explain: false,
    }
}

fn trace(helper: &TestHelper, from: &str, dst: &str, mode: TraceMode, max: u8) -> ProbeTrace {
    ProbeTrace {
        ns: helper.ns(from).parse().unwrap(),
        dst: dst.parse().unwrap(),
        src: None,
        mode: Some(mode),
        max_hops: Some(max),
        timeout_ms: Some(300),
        port: None,
        queries: None,
        explain: false,
    }
}

fn hops(r: &TraceResult) -> Vec<String> {
    r.hops
        .iter()
        .map(|h| h.from.map(|f| f.to_string()).unwrap_or_else(|| "*".into()))
        .collect()
}

fn code(result: Result<impl std::fmt::Debug, ClientError>) -> ErrorCode {
    match result {
        Err(ClientError::Remote { error, .. }) => error.code,
        other => panic!("expected an error from the helper, got {other:?}"),
    }
}

/// The same question gets the same answer whatever traffic went before: on 10.1.2.0/24 of
/// the 10-router facts, hq-lab forwards a host's packets for 10.1.1.0/24 back out of the
/// same interface to hq-core. With the kernel's default `send_redirects=1` it would tell
/// the host to go to hq-core directly, and the host's next trace (for 300 s) would skip
/// hq-lab. Routers send no redirects and hosts accept none.
#[test]
fn a_trace_after_traffic_is_the_trace_before() {
    require_priv!();
    let helper = TestHelper::start_with(HelperOptions::default());
    helper.net_setup(&facts10());
    helper.add_hosts(&[
        ("lab", "10.1.2.100/24", "hq-lab"),
        ("office", "10.1.1.100/24", "hq-core"),
    ]);
    let client = helper.client();
    let traced = || {
        let r = client
            .probe_trace(trace(&helper, "lab", "10.1.1.100", TraceMode::Icmp, 8))
            .unwrap();
        assert!(r.reached, "{r:?}");
        hops(&r)
    };
    let fresh = traced();
    assert_eq!(fresh, ["10.1.2.4", "10.1.2.1", "10.1.1.100"]);
    let r = client
        .probe_ping(ping(&helper, "lab", "10.1.1.100", 3))
        .unwrap();
    assert_eq!(r.received, 3, "{r:?}");
    assert_eq!(traced(), fresh, "the trace changed after a ping");
    let route = std::process::Command::new("ip")
        .args(["-n", &helper.ns("lab"), "route", "get", "10.1.1.100"])
        .output()
        .unwrap();
    let route = String::from_utf8_lossy(&route.stdout);
    assert!(!route.contains("redirected"), "{route}");
    assert!(route.contains("via 10.1.2.4"), "{route}");
}

/// With a host in every IPv4 subnet of the 10-router facts, every host pinging every other
/// changes no host's traces: each is what it was on the fresh network, and stays so on a
/// second round.
#[test]
fn every_trace_is_the_same_after_everyone_pinged_everyone() {
    use std::collections::BTreeMap;
    use std::net::Ipv4Addr;
    require_priv!();
    let helper = TestHelper::start_with(HelperOptions::default());
    helper.net_setup(&facts10());
    let client = helper.client();
    let topology = client.net_show().unwrap().topology.expect("a network");
    // One host per subnet (/24 or wider), at .200 of it, behind the first router on it.
    let mut subnets: BTreeMap<(u32, u8), NsName> = BTreeMap::new();
    for router in &topology.routers {
        for a in router.interfaces.iter().flat_map(|i| &i.addrs) {
            if let (std::net::IpAddr::V4(ip), len @ 16..=24) = (a.addr.addr(), a.addr.prefix()) {
                let net = u32::from(ip) & (u32::MAX << (32 - len));
                subnets
                    .entry((net, len))
                    .or_insert_with(|| router.name.clone());
            }
        }
    }
    let mut hosts = Vec::new();
    for (i, ((net, len), router)) in subnets.iter().enumerate() {
        let ip = Ipv4Addr::from(net + 200);
        let name: NsName = helper.ns(&format!("h{i}")).parse().unwrap();
        client
            .host_add(HostAdd {
                name: name.clone(),
                ip: format!("{ip}/{len}").parse().unwrap(),
                router: router.clone(),
                router_if: None,
                secondaries: Vec::new(),
                tag: None,
                share: false,
            })
            .unwrap_or_else(|e| panic!("host {ip} on {router}: {e}"));
        hosts.push((name, ip));
    }
    assert!(hosts.len() >= 10, "{hosts:?}");
    let pairs: Vec<(NsName, Ipv4Addr)> = hosts
        .iter()
        .flat_map(|(from, _)| {
            hosts
                .iter()
                .filter(move |(other, _)| other != from)
                .map(move |(_, dst)| (from.clone(), *dst))
        })
        .collect();
    // Every pair at once, a few threads sharing the connection.
    let all = |f: &(dyn Fn(&NsName, Ipv4Addr) -> String + Sync)| -> Vec<String> {
        let chunks: Vec<&[(NsName, Ipv4Addr)]> = pairs.chunks(pairs.len().div_ceil(8)).collect();
        std::thread::scope(|s| {
            let handles: Vec<_> = chunks
                .iter()
                .map(|chunk| {
                    s.spawn(move || chunk.iter().map(|(n, d)| f(n, *d)).collect::<Vec<_>>())
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        })
    };
    let traced = |from: &NsName, dst: Ipv4Addr| {
        let r = client
            .probe_trace(ProbeTrace {
                ns: from.clone(),
                dst: dst.to_string().parse().unwrap(),
                src: None,
                mode: Some(TraceMode::Icmp),
                max_hops: Some(8),
                timeout_ms: Some(200),
                port: None,
                queries: None,
                explain: false,
            })
            .unwrap();
        format!("{from} -> {dst}: {}", hops(&r).join(" "))
    };
    let pinged = |from: &NsName, dst: Ipv4Addr| {
        let r = client
            .probe_ping(ProbePing {
                ns: from.clone(),
                dst: dst.to_string().parse().unwrap(),
                src: None,
                count: Some(2),
                interval_ms: Some(10),
                timeout_ms: Some(200),
                explain: false,
            })
            .unwrap();
        format!("{from} -> {dst}: {} of {}", r.received, r.sent)
    };
    let fresh = all(&traced);
    let pings = all(&pinged);
    assert!(pings.iter().any(|p| p.ends_with(": 2 of 2")), "{pings:?}");
    for round in 1..=2 {
        let now = all(&traced);
        let changed: Vec<String> = fresh
            .iter()
            .zip(&now)
            .filter(|(a, b)| a != b)
            .map(|(a, b)| format!("{a}\n  now {b}"))
            .collect();
        assert!(
            changed.is_empty(),
            "round {round}: {} of {} traces changed after the pings:\n{}",
            changed.len(),
            now.len(),
            changed.join("\n")
        );
    }
}

/// Many probes through one router at once all get their answers: no router limits its
/// ICMP errors (the kernel's default budget, 50 at once and 1000 a second for the whole
/// namespace, would drop time-exceeded answers to concurrent jobs).
#[test]
fn concurrent_probes_get_every_icmp_error() {
    require_priv!();
    let helper = network();
    let client = helper.client();
    // 10.0.9.9 loops between edge and core: every packet comes back as time exceeded.
    let errors: Vec<(u32, usize)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|_| {
                s.spawn(|| {
                    let mut args = ping(&helper, "far", "10.0.9.9", 100);
                    args.interval_ms = Some(10);
                    args.timeout_ms = Some(1000);
                    let r = client.probe_ping(args).unwrap();
                    (r.sent, r.errors.len())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (sent, got) in &errors {
        assert_eq!(*got as u32, *sent, "answers lost: {errors:?}");
    }
}

#[test]
fn ping_gets_exact_replies_and_errors() {
    require_priv!();
    let helper = network();
    let client = helper.client();
    let r = client
        .probe_ping(ping(&helper, "far", "10.0.3.100", 3))
        .unwrap();
    assert_eq!((r.sent, r.received), (3, 3), "{r:?}");
    let seqs: Vec<u32> = r.replies.iter().map(|p| p.seq).collect();
    assert_eq!(seqs, [1, 2, 3]);
    for reply in &r.replies {
        assert_eq!(reply.from.to_string(), "10.0.3.100");
        assert_eq!(reply.ttl, 61, "three routers on the way back");
    }
    // From a given source address.
    let mut args = ping(&helper, "web", "192.0.2.50", 1);
    args.src = Some("10.0.3.100".parse().unwrap());
    assert_eq!(client.probe_ping(args).unwrap().received, 1);
    // 10.0.9.9 loops between edge and core until the TTL runs out: no reply, errors.
    let mut looped = ping(&helper, "far", "10.0.9.9", 2);
    looped.timeout_ms = Some(300);
    let r = client.probe_ping(looped).unwrap();
    assert_eq!((r.sent, r.received), (2, 0));
    assert!(r.errors.iter().all(|e| e.kind == "time_exceeded"), "{r:?}");
    assert_eq!(r.errors.len(), 2, "{r:?}");
    // Bad arguments.
    assert_eq!(
        code(client.probe_ping(ping(&helper, "far", "10.0.3.100", 0))),
        ErrorCode::InvalidArgument
    );
    let mut bad = ping(&helper, "far", "10.0.3.100", 1);
    bad.src = Some("10.0.3.100".parse().unwrap());
    assert_eq!(code(client.probe_ping(bad)), ErrorCode::InvalidArgument);
    assert_eq!(
        code(client.probe_ping(ping(&helper, "nope", "10.0.3.100", 1))),
        ErrorCode::NotFound
    );
    // tsimctl exits 1 when nothing answers.
    let out = helper.tsimctl(&[
        "probe",
        "ping",
        "--from",
        &helper.ns("far"),
        "10.0.9.9",
        "-c",
        "1",
        "-W",
        "0.2",
    ]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn traces_list_the_exact_hops() {
    require_priv!();
    let helper = network();
    let client = helper.client();
    let r = client
        .probe_trace(trace(&helper, "far", "10.0.3.100", TraceMode::Icmp, 30))
        .unwrap();
    assert!(r.reached, "{r:?}");
    assert_eq!(
        hops(&r),
        ["192.0.2.1", "10.0.1.2", "10.0.2.2", "10.0.3.100"]
    );
    let r = client
        .probe_trace(trace(&helper, "web", "192.0.2.50", TraceMode::Udp, 30))
        .unwrap();
    assert!(r.reached, "{r:?}");
    assert_eq!(hops(&r), ["10.0.3.1", "10.0.2.1", "10.0.1.1", "192.0.2.50"]);
    // lab forwards no UDP to its subnet: three hops, then nothing up to the maximum.
    let r = client
        .probe_trace(trace(&helper, "far", "10.0.3.100", TraceMode::Udp, 6))
        .unwrap();
    assert!(!r.reached);
    assert_eq!(
        hops(&r),
        ["192.0.2.1", "10.0.1.2", "10.0.2.2", "*", "*", "*"]
    );
    // The tsimctl view.
    let out = helper.tsimctl(&["probe", "trace", "--from", &helper.ns("far"), "10.0.3.100"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(" 4  10.0.3.100"), "{text}");
    assert_eq!(
        code(client.probe_trace(trace(&helper, "far", "10.0.3.100", TraceMode::Icmp, 0))),
        ErrorCode::InvalidArgument
    );
}

/// `queries`: several probes per hop, sent together, each answered on its own, with loss and
/// times per hop, as `mtr -r` reports them; the trace itself is the one-probe trace.
#[test]
fn traces_with_several_probes_per_hop_report_every_reply() {
    require_priv!();
    let helper = network();
    let client = helper.client();
    for mode in [TraceMode::Icmp, TraceMode::Udp] {
        let (dst, path): (&str, &[&str]) = match mode {
            TraceMode::Icmp => (
                "10.0.3.100",
                &["192.0.2.1", "10.0.1.2", "10.0.2.2", "10.0.3.100"],
            ),
            TraceMode::Udp => (
                "192.0.2.50",
                &["10.0.3.1", "10.0.2.1", "10.0.1.1", "192.0.2.50"],
            ),
        };
        let from = if mode == TraceMode::Icmp {
            "far"
        } else {
            "web"
        };
        let r = client
            .probe_trace(ProbeTrace {
                queries: Some(5),
                explain: false,
                ..trace(&helper, from, dst, mode, 30)
            })
            .unwrap();
        assert!(r.reached, "{r:?}");
        assert_eq!(hops(&r), path, "{mode:?}");
        for hop in &r.hops {
            assert_eq!(hop.sent, Some(5));
            assert_eq!(hop.replies.len(), 5, "{mode:?} {hop:?}");
            assert_eq!(hop.lost(), 0);
            let mut queries: Vec<u8> = hop.replies.iter().map(|r| r.query).collect();
            queries.sort_unstable();
            assert_eq!(queries, [0, 1, 2, 3, 4]);
            assert!(hop.replies.iter().all(|r| Some(r.from) == hop.from));
            let (min, avg, max) = hop.rtt_stats().unwrap();
            assert!(min <= avg && avg <= max, "{hop:?}");
        }
    }
    // Where nothing answers, every probe is lost.
    let r = client
        .probe_trace(ProbeTrace {
            queries: Some(3),
            explain: false,
            ..trace(&helper, "far", "10.0.3.100", TraceMode::Udp, 5)
        })
        .unwrap();
    assert!(!r.reached);
    let last = r.hops.last().unwrap();
    assert_eq!(
        (last.sent, last.lost(), last.replies.len()),
        (Some(3), 3, 0)
    );
    assert_eq!(r.hops[2].replies.len(), 3, "{r:?}");
    // The tsimctl report.
    let out = helper.tsimctl(&[
        "probe",
        "trace",
        "--from",
        &helper.ns("far"),
        "10.0.3.100",
        "--queries",
        "4",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("LOSS%"), "{text}");
    let last = text
        .lines()
        .find(|l| l.trim_start().starts_with("4  10.0.3.100"))
        .unwrap_or_default();
    assert!(last.contains("  0.0     4"), "{text}");
    // Out of range.
    assert_eq!(
        code(client.probe_trace(ProbeTrace {
            queries: Some(101),
            explain: false,
            ..trace(&helper, "far", "10.0.3.100", TraceMode::Icmp, 4)
        })),
        ErrorCode::InvalidArgument
    );
}

#[test]
fn concurrent_probes_from_one_namespace_keep_their_own_answers() {
    require_priv!();
    let helper = network();
    let client: BlockingClient = helper.client();
    let ops = [
        Op::ProbePing(ping(&helper, "far", "10.0.3.100", 5)),
        Op::ProbePing(ping(&helper, "far", "192.0.2.1", 5)),
        Op::ProbeTrace(trace(&helper, "far", "10.0.3.100", TraceMode::Icmp, 30)),
        Op::ProbePing(ping(&helper, "far", "10.0.1.2", 5)),
    ];
    let pending: Vec<_> = ops
        .into_iter()
        .map(|op| client.start(vec![op], RequestOptions::default()).unwrap())
        .collect();
    let results: Vec<OpResult> = pending
        .into_iter()
        .map(|p| client.wait(p).unwrap().remove(0))
        .collect();
    for (result, want) in results
        .iter()
        .zip(["10.0.3.100", "192.0.2.1", "", "10.0.1.2"])
    {
        match result {
            OpResult::ProbePing(r) => {
                assert_eq!(r.received, 5, "{want}: {r:?}");
                assert!(
                    r.replies.iter().all(|p| p.from.to_string() == want),
                    "{r:?}"
                );
                assert_eq!(r.replies.len(), 5, "no one else's replies: {r:?}");
            }
            OpResult::ProbeTrace(r) => {
                assert_eq!(hops(r), ["192.0.2.1", "10.0.1.2", "10.0.2.2", "10.0.3.100"]);
            }
            other => panic!("{other:?}"),
        }
    }
}
