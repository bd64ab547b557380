//! The quick reachability analysis on the real kernel, on the 10-router test network with
//! its firewalls: hq-gw's verdicts (original-system.md §10F), two concurrent jobs on one
//! router, bad requests, and a cancelled job; the rule that dropped each NO; each time,
//! nothing of the jobs stays in the routers' mangle or raw tables.

use std::process::Command;
use std::time::Duration;

use tsim_client::{BlockingClient, ClientError, RequestOptions};
use tsim_protocol::ops::{ProbeReach, ReachResult, Verdict};
use tsim_protocol::{ErrorCode, Op, OpResult};
use tsim_tests::{HelperOptions, TestHelper, facts10, require_priv};

/// The 10-router network with source hosts `src1`, `src2` (10.1.1.100, .101, on hq-gw's
/// eth1 subnet) and `lab1` (10.1.10.100, behind hq-lab).
fn network() -> TestHelper {
    let helper = TestHelper::start();
    helper.net_setup(&facts10());
    helper.add_hosts(&[
        ("src1", "10.1.1.100/24", "hq-gw"),
        ("src2", "10.1.1.101/24", "hq-gw"),
        ("lab1", "10.1.10.100/24", "hq-lab"),
    ]);
    helper
}

fn job(helper: &TestHelper, from: &[&str], ports: &str) -> ProbeReach {
    ProbeReach {
        from: from.iter().map(|f| helper.ns(f).parse().unwrap()).collect(),
        dst: "10.2.1.1".parse().unwrap(),
        ports: ports.into(),
        timeout_ms: Some(500),
    }
}

fn verdicts(r: &ReachResult, router: usize) -> Vec<(String, Verdict)> {
    r.routers[router]
        .services
        .iter()
        .map(|s| (format!("{}/{}", s.port, s.proto), s.verdict))
        .collect()
}

/// What the job left in a router's mangle table (its counting chains) and raw table (its
/// `TRACE` rules).
fn leftovers(helper: &TestHelper, router: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "exec", &helper.ns(router), "iptables-save"])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| {
            l.contains("TSIM_REACH") || l.contains("tsim-reach") || l.contains("tsim-explain")
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn hq_gw_forwards_what_its_firewall_allows() {
    require_priv!();
    let helper = network();
    let client = helper.client();
    let r = client
        .probe_reach(job(
            &helper,
            &["src1", "lab1"],
            "22,80,443/tcp,53/udp,161/udp,10000/tcp,33434/udp",
        ))
        .unwrap();
    assert!((32..=63).contains(&r.dscp));
    assert_eq!(r.routers[0].router.to_string(), helper.ns("hq-gw"));
    use Verdict::{No, Yes};
    let want = [
        ("22/tcp", No),
        ("80/tcp", No),
        ("443/tcp", No),
        ("53/udp", No),
        ("161/udp", No),
        ("10000/tcp", Yes),
        ("33434/udp", Yes),
    ];
    let want: Vec<(String, Verdict)> = want.iter().map(|(s, v)| (s.to_string(), *v)).collect();
    assert_eq!(verdicts(&r, 0), want, "{r:?}");
    for s in &r.routers[0].services {
        assert!(s.seen >= 1, "{s:?}");
    }
    // Why each NO: the rule or policy of hq-gw's FORWARD chain that dropped the probes, as
    // its iptables-save prints it (netfilter's trace of the job's own packets).
    let saved = Command::new("ip")
        .args([
            "netns",
            "exec",
            &helper.ns("hq-gw"),
            "iptables-save",
            "-t",
            "filter",
        ])
        .output()
        .unwrap();
    let forward: Vec<String> = String::from_utf8_lossy(&saved.stdout)
        .lines()
        .filter(|l| l.starts_with("-A FORWARD "))
        .map(str::to_owned)
        .collect();
    for s in &r.routers[0].services {
        match s.verdict {
            No => {
                let why = s.dropped_by.as_deref().unwrap_or_else(|| panic!("{s:?}"));
                let rule = why
                    .strip_prefix("filter FORWARD #")
                    .and_then(|rest| rest.split_once(": "));
                match rule {
                    Some((n, line)) => {
                        let n: usize = n.parse().unwrap();
                        assert_eq!(forward.get(n - 1).map(String::as_str), Some(line), "{why}");
                        assert!(
                            line.ends_with("-j DROP") || line.ends_with("-j REJECT"),
                            "{why}"
                        );
                    }
                    None => assert_eq!(why, "filter FORWARD policy", "{s:?}"),
                }
            }
            _ => assert_eq!(s.dropped_by, None, "{s:?}"),
        }
    }
    // hq-lab, the other source's router, has the same inter-site rules in its FORWARD chain
    // (only ICMP, udp/33434-33534 and tcp/udp 10000 between sites).
    assert_eq!(r.routers[1].router.to_string(), helper.ns("hq-lab"));
    assert_eq!(verdicts(&r, 1), want, "{:?}", r.routers[1]);
    assert!(
        leftovers(&helper, "hq-gw").is_empty(),
        "{:?}",
        leftovers(&helper, "hq-gw")
    );
    assert!(leftovers(&helper, "hq-lab").is_empty());
}

#[test]
fn concurrent_jobs_on_one_router_do_not_interfere() {
    require_priv!();
    let helper = network();
    let client: BlockingClient = helper.client();
    let a = client
        .start(
            vec![Op::ProbeReach(job(
                &helper,
                &["src1"],
                "22/tcp,10000/tcp,53/udp",
            ))],
            RequestOptions::default(),
        )
        .unwrap();
    let b = client
        .start(
            vec![Op::ProbeReach(job(
                &helper,
                &["src2"],
                "10000/tcp,22/tcp,33434/udp,53/udp",
            ))],
            RequestOptions::default(),
        )
        .unwrap();
    let take = |p| match client.wait(p).unwrap().remove(0) {
        OpResult::ProbeReach(r) => r,
        other => panic!("{other:?}"),
    };
    let (a, b) = (take(a), take(b));
    assert_ne!(a.dscp, b.dscp);
    use Verdict::{No, Yes};
    let v = |list: &[(&str, Verdict)]| -> Vec<(String, Verdict)> {
        list.iter().map(|(s, v)| (s.to_string(), *v)).collect()
    };
    assert_eq!(
        verdicts(&a, 0),
        v(&[("22/tcp", No), ("10000/tcp", Yes), ("53/udp", No)])
    );
    assert_eq!(
        verdicts(&b, 0),
        v(&[
            ("10000/tcp", Yes),
            ("22/tcp", No),
            ("33434/udp", Yes),
            ("53/udp", No)
        ])
    );
    // Each job counted only its own probes: one of each, never the other job's.
    for r in [&a, &b] {
        for s in &r.routers[0].services {
            assert!(
                s.seen <= 2,
                "a TCP SYN and at most one retransmission: {s:?}"
            );
        }
    }
    // Each names the rule that dropped its NOs, the same one, whatever the other job's rules
    // in the same tables at the time.
    let why = |r: &ReachResult, port: u16| {
        r.routers[0]
            .services
            .iter()
            .find(|s| s.port == port)
            .and_then(|s| s.dropped_by.clone())
    };
    assert!(why(&a, 22).is_some(), "{a:?}");
    assert_eq!(why(&a, 22), why(&b, 22));
    assert_eq!(why(&a, 53), why(&b, 53));
    assert!(leftovers(&helper, "hq-gw").is_empty());
}

#[test]
fn bad_requests_and_a_cancelled_job_leave_nothing() {
    require_priv!();
    let helper = network();
    let client = helper.client();
    let code = |r: Result<ReachResult, ClientError>| match r {
        Err(ClientError::Remote { error, .. }) => error.code,
        other => panic!("{other:?}"),
    };
    for ports in ["", "0", "22/sctp", "1-200", "10-5"] {
        assert_eq!(
            code(client.probe_reach(job(&helper, &["src1"], ports))),
            ErrorCode::InvalidArgument,
            "{ports}"
        );
    }
    assert_eq!(
        code(client.probe_reach(job(&helper, &["src1", "src2"], "22"))),
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        code(client.probe_reach(job(&helper, &["nope"], "22"))),
        ErrorCode::NotFound
    );
    assert_eq!(
        code(client.probe_reach(job(&helper, &["hq-gw"], "22"))),
        ErrorCode::NotFound,
        "a router is not a host"
    );
    // Probes the router never sees (the destination is on the source's own subnet, so they
    // go straight to it): `unknown`, after the TCP probes' wait.
    let mut local = job(&helper, &["src1"], "22,53/udp");
    local.dst = "10.1.1.77".parse().unwrap();
    local.timeout_ms = Some(300);
    let r = client.probe_reach(local.clone()).unwrap();
    assert!(
        r.routers[0]
            .services
            .iter()
            .all(|s| s.verdict == Verdict::Unknown && s.seen == 0),
        "{r:?}"
    );
    // Such a job, cancelled while its TCP probes wait.
    let mut slow = local;
    slow.timeout_ms = Some(5000);
    let pending = client
        .start(vec![Op::ProbeReach(slow)], RequestOptions::default())
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    client.cancel(pending.id).unwrap();
    let err = client.wait(pending).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Cancelled), "{err:?}");
    assert!(
        leftovers(&helper, "hq-gw").is_empty(),
        "{:?}",
        leftovers(&helper, "hq-gw")
    );
    // And the DSCP values came back: 40 jobs in a row all run.
    for _ in 0..40 {
        client
            .probe_reach(job(&helper, &["src1"], "33434/udp"))
            .unwrap();
    }
}

#[test]
fn without_tracing_the_verdicts_stand_and_name_no_rule() {
    require_priv!();
    let helper = TestHelper::start_with(HelperOptions {
        args: vec!["--no-trace".into()],
        ..HelperOptions::default()
    });
    helper.net_setup(&facts10());
    helper.add_hosts(&[("src1", "10.1.1.100/24", "hq-gw")]);
    let client = helper.client();
    let status = client.status().unwrap();
    assert!(
        status
            .explain_unsupported
            .as_deref()
            .is_some_and(|w| w.contains("--no-trace")),
        "{status:?}"
    );
    let r = client
        .probe_reach(job(&helper, &["src1"], "22/tcp,10000/tcp"))
        .unwrap();
    use Verdict::{No, Yes};
    assert_eq!(
        verdicts(&r, 0),
        [("22/tcp".to_string(), No), ("10000/tcp".to_string(), Yes)]
    );
    assert!(
        r.routers[0].services.iter().all(|s| s.dropped_by.is_none()),
        "{r:?}"
    );
    assert!(leftovers(&helper, "hq-gw").is_empty());
}
