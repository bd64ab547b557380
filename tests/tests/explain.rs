//! Explained probes (`probe ... --explain`) on the real kernel: netfilter's trace of what the
//! routers of the 10-router network with the outside world did with the probe's packets,
//! rule by rule as `iptables-save` prints them, the rule that dropped them, probes at once
//! that do not see each other's packets, no trace rule left after the answer, and the sweep
//! of an interrupted probe's rules at start.
//!
//! All traffic stays inside the test's namespaces: the "public" addresses exist only there.

use std::process::{Command, Output};

use serde_json::Value;
use tsim_tests::{TestHelper, facts10, groups, require_priv, text};

/// Runs `tsimctl --json ARGS`; returns the exit status and the parsed output (Null if none).
fn ctl(helper: &TestHelper, args: &[&str]) -> (i32, Value, Output) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = helper.tsimctl(&all);
    let value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), value, out)
}

fn raw_table(ns: &str) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "iptables-save", "-t", "raw"])
        .output()
        .expect("iptables-save");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The router part of an explanation, by router name.
fn router<'a>(explain: &'a Value, name: &str) -> &'a Value {
    explain["routers"]
        .as_array()
        .unwrap_or_else(|| panic!("no routers: {explain:#}"))
        .iter()
        .find(|r| r["router"] == name)
        .unwrap_or_else(|| panic!("{name} is not in {explain:#}"))
}

fn router_names(explain: &Value) -> Vec<String> {
    explain["routers"]
        .as_array()
        .unwrap_or_else(|| panic!("no routers: {explain:#}"))
        .iter()
        .map(|r| r["router"].as_str().unwrap().to_owned())
        .collect()
}

/// Every step of every packet of a router: (table, chain, rule text or kind, verdict).
fn steps(r: &Value) -> Vec<(String, String, String, String)> {
    r["packets"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["steps"].as_array().unwrap().iter())
        .map(|s| {
            let s_ = |k: &str| s[k].as_str().unwrap_or_default().to_owned();
            let what = s["rule"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| s_("kind"));
            (s_("table"), s_("chain"), what, s_("verdict"))
        })
        .collect()
}

fn packets(explain: &Value) -> Vec<String> {
    explain["routers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["packets"].as_array().unwrap().iter())
        .map(|p| p["packet"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn explained_probes_say_which_rules_of_which_routers_decided() {
    require_priv!();
    let mut helper = TestHelper::start();
    let facts = facts10().display().to_string();
    let (status, _, out) = ctl(
        &helper,
        &[
            "net",
            "setup",
            "--facts",
            &facts,
            "--prefix",
            &helper.prefix,
            "--internet",
            "--quiet",
        ],
    );
    assert_eq!(status, 0, "{}", text(&out));
    helper.add_hosts(&[("web", "10.1.1.10/24", "hq-gw")]);
    let (status, _, out) = ctl(
        &helper,
        &[
            "host",
            "add",
            &helper.ns("g8"),
            "--ip",
            "8.8.8.8/32",
            "--internet",
        ],
    );
    assert_eq!(status, 0, "{}", text(&out));
    let routers: Vec<String> = [
        "hq-gw", "hq-core", "hq-dmz", "hq-lab", "br-gw", "br-core", "br-wifi", "dc-gw", "dc-core",
        "dc-srv", "internet",
    ]
    .iter()
    .map(|r| helper.ns(r))
    .collect();
    let (hq_gw, internet) = (helper.ns("hq-gw"), helper.ns("internet"));
    let ping_8888 = || {
        let from = helper.ns("hq-gw");
        let (status, v, out) = ctl(
            &helper,
            &[
                "probe",
                "ping",
                "--from",
                &from,
                "--src",
                "10.1.1.1",
                "8.8.8.8",
                "-c",
                "1",
                "-W",
                "1",
                "--explain",
            ],
        );
        assert_eq!(status, 0, "{}", text(&out));
        v
    };
    let tcp_dnat = || {
        let from = helper.ns("g8");
        let (status, v, out) = ctl(
            &helper,
            &[
                "probe",
                "tcp",
                "--from",
                &from,
                "203.0.113.10:80",
                "--wait",
                "0.3",
                "--explain",
            ],
        );
        assert_eq!(
            (status, v["status"].as_str()),
            (1, Some("timeout")),
            "{}",
            text(&out)
        );
        v
    };
    groups(vec![
        (
            "a ping through the edge shows its MASQUERADE, router by router in path order",
            Box::new(|| {
                let v = ping_8888();
                assert_eq!(v["received"], 1, "{v:#}");
                let e = &v["explain"];
                let dscp = e["dscp"].as_u64().unwrap();
                assert!((49..=63).contains(&dscp), "{e:#}");
                assert_eq!(router_names(e), [hq_gw.clone(), internet.clone()], "{e:#}");
                let gw = steps(router(e, &hq_gw));
                assert!(
                    gw.iter().any(|(t, c, rule, v)| t == "nat"
                        && c == "POSTROUTING"
                        && rule.starts_with("-A POSTROUTING -s 10.1.0.0/16 -o eth0")
                        && rule.ends_with("-j MASQUERADE")
                        && v == "accept"),
                    "{gw:#?}"
                );
                // The reply came back through the edge, de-NATed, and is traced too.
                let p = packets(e);
                assert!(
                    p.iter()
                        .any(|p| p.starts_with("ICMP 10.1.1.1 > 8.8.8.8 echo-request")),
                    "{p:?}"
                );
                assert!(
                    p.iter()
                        .any(|p| p.starts_with("ICMP 8.8.8.8 > 203.0.113.10 echo-reply")),
                    "{p:?}"
                );
                assert!(router(e, &hq_gw)["dropped_by"].is_null(), "{e:#}");
            }),
        ),
        (
            "a probe the firewall drops names the rule, after the DNAT it met",
            Box::new(|| {
                let v = tcp_dnat();
                let e = &v["explain"];
                assert_eq!(router_names(e), [internet.clone(), hq_gw.clone()], "{e:#}");
                let gw = router(e, &hq_gw);
                let s = steps(gw);
                assert!(
                    s.iter().any(|(t, c, rule, _)| t == "nat"
                        && c == "PREROUTING"
                        && rule.contains("--dport 80 -j DNAT --to-destination 10.1.1.10")),
                    "{s:#?}"
                );
                let dropped = gw["dropped_by"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{gw:#}"));
                assert!(
                    dropped.starts_with("filter FORWARD #")
                        && dropped.ends_with(": -A FORWARD -j DROP"),
                    "{dropped}"
                );
                assert!(
                    gw["packets"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .all(|p| p["verdict"] == "drop"),
                    "{gw:#}"
                );
                let pos: u64 = dropped
                    .trim_start_matches("filter FORWARD #")
                    .split(':')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                // The position is the rule's place in the chain as iptables-save lists it.
                let out = Command::new("ip")
                    .args(["netns", "exec", &hq_gw, "iptables-save", "-t", "filter"])
                    .output()
                    .unwrap();
                let saved = String::from_utf8_lossy(&out.stdout);
                let forward: Vec<&str> = saved
                    .lines()
                    .filter(|l| l.starts_with("-A FORWARD "))
                    .collect();
                assert_eq!(forward[pos as usize - 1], "-A FORWARD -j DROP");
            }),
        ),
        (
            "without --explain, no explanation and no tracing",
            Box::new(|| {
                let from = helper.ns("hq-gw");
                let (status, v, out) = ctl(
                    &helper,
                    &["probe", "ping", "--from", &from, "8.8.8.8", "-c", "1"],
                );
                assert_eq!(status, 0, "{}", text(&out));
                assert!(v.get("explain").is_none(), "{v:#}");
            }),
        ),
        (
            "explained probes at once each see their own packets only",
            Box::new(|| {
                let (a, b) = std::thread::scope(|s| {
                    let a = s.spawn(|| (0..3).map(|_| ping_8888()).collect::<Vec<_>>());
                    let b = s.spawn(|| (0..3).map(|_| tcp_dnat()).collect::<Vec<_>>());
                    (a.join().unwrap(), b.join().unwrap())
                });
                for v in &a {
                    let p = packets(&v["explain"]);
                    assert!(
                        !p.is_empty() && p.iter().all(|p| p.starts_with("ICMP")),
                        "{p:?}"
                    );
                }
                for v in &b {
                    let p = packets(&v["explain"]);
                    assert!(
                        !p.is_empty() && p.iter().all(|p| p.starts_with("TCP")),
                        "{p:?}"
                    );
                }
                let text = helper.tsimctl(&["probe", "ping", "--help"]);
                assert!(String::from_utf8_lossy(&text.stdout).contains("--explain"));
            }),
        ),
        (
            "a trace's ICMP errors are explained too, also where the kernel gives them another value",
            Box::new(|| {
                let from = helper.ns("hq-gw");
                let trace = || {
                    let (status, v, out) = ctl(
                        &helper,
                        &[
                            "probe",
                            "trace",
                            "--from",
                            &from,
                            "--src",
                            "10.1.1.1",
                            "8.8.8.8",
                            "-w",
                            "1",
                            "--explain",
                        ],
                    );
                    assert_eq!(status, 0, "{}", text(&out));
                    v
                };
                let time_exceeded_at_gw = |v: &Value| {
                    let e = &v["explain"];
                    router(e, &hq_gw)["packets"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|p| p["packet"].as_str().unwrap().contains("time-exceeded"))
                };
                let v = trace();
                assert_eq!(
                    router_names(&v["explain"]),
                    [hq_gw.clone(), internet.clone()]
                );
                assert!(time_exceeded_at_gw(&v), "{v:#}");
                // The kernel gives an error about a packet with DSCP 56-63 the value 48-55:
                // with 8 explained pings holding 49-56, the trace gets 57 and its errors
                // come back as 49.
                let held = |n: usize| {
                    let raw = raw_table(&hq_gw);
                    let values: std::collections::BTreeSet<&str> = raw
                        .lines()
                        .filter_map(|l| l.split("\"tsim-explain ").nth(1))
                        .collect();
                    values.len() >= n
                };
                std::thread::scope(|s| {
                    let pings: Vec<_> = (0..8)
                        .map(|_| {
                            s.spawn(|| {
                                let (status, v, out) = ctl(
                                    &helper,
                                    &[
                                        "probe",
                                        "ping",
                                        "--from",
                                        &from,
                                        "--src",
                                        "10.1.1.1",
                                        "8.8.8.8",
                                        "-c",
                                        "4",
                                        "-i",
                                        "1",
                                        "--explain",
                                    ],
                                );
                                assert_eq!(status, 0, "{}", text(&out));
                                v
                            })
                        })
                        .collect();
                    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
                    while !held(8) {
                        assert!(
                            std::time::Instant::now() < deadline,
                            "the pings did not start"
                        );
                        std::thread::sleep(std::time::Duration::from_millis(50));
                    }
                    let v = trace();
                    let dscp = v["explain"]["dscp"].as_u64().unwrap();
                    assert!(dscp >= 57, "{dscp}");
                    assert!(time_exceeded_at_gw(&v), "{v:#}");
                    for p in pings {
                        let v = p.join().unwrap();
                        let p = packets(&v["explain"]);
                        assert!(
                            p.iter().all(|p| p.contains("echo-")),
                            "a ping saw the trace's errors: {p:?}"
                        );
                    }
                });
            }),
        ),
        (
            "no trace rule is left in any router",
            Box::new(|| {
                for r in &routers {
                    let raw = raw_table(r);
                    assert!(!raw.contains("tsim-explain"), "{r}:\n{raw}");
                }
            }),
        ),
        (
            "the text output shows the router, the rules and the drop",
            Box::new(|| {
                let from = helper.ns("g8");
                let out = helper.tsimctl(&[
                    "probe",
                    "tcp",
                    "--from",
                    &from,
                    "203.0.113.10:80",
                    "--wait",
                    "0.3",
                    "--explain",
                ]);
                let shown = String::from_utf8_lossy(&out.stdout);
                assert!(shown.contains(&format!("router {hq_gw}")), "{shown}");
                assert!(shown.contains("dropped by filter FORWARD #"), "{shown}");
                assert!(
                    shown.contains("-j DNAT --to-destination 10.1.1.10"),
                    "{shown}"
                );
            }),
        ),
    ]);
    // An interrupted probe's rules (as a crash would leave them) are swept at start.
    let leftover = [
        "-t",
        "raw",
        "-I",
        "PREROUTING",
        "-m",
        "dscp",
        "--dscp",
        "50",
        "-m",
        "comment",
        "--comment",
        "tsim-explain 50",
        "-j",
        "TRACE",
    ];
    let ok = Command::new("ip")
        .args(["netns", "exec", &hq_gw, "iptables"])
        .args(leftover)
        .status()
        .unwrap();
    assert!(ok.success());
    assert!(raw_table(&hq_gw).contains("tsim-explain 50"));
    helper.kill9();
    helper.restart();
    let raw = raw_table(&hq_gw);
    assert!(!raw.contains("tsim-explain"), "{raw}");
    assert!(
        helper
            .log()
            .contains("Removed the trace rules of interrupted explained probes"),
        "{}",
        helper.log()
    );
}

#[test]
fn an_explained_probe_needs_ipv4_and_says_when_there_is_nothing_to_trace() {
    require_priv!();
    let helper = TestHelper::start();
    let ns = helper.ns("solo");
    let (status, _, out) = ctl(&helper, &["ns", "add", &ns]);
    assert_eq!(status, 0, "{}", text(&out));
    let (status, _, out) = ctl(
        &helper,
        &["probe", "tcp", "--from", &ns, "[::1]:9", "--explain"],
    );
    assert_ne!(status, 0);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("error[invalid_argument]") && err.contains("IPv4"),
        "{err}"
    );
    // No applied network: the probe runs, and says why it has no explanation.
    let (_, v, out) = ctl(
        &helper,
        &[
            "probe",
            "ping",
            "--from",
            &ns,
            "127.0.0.1",
            "-c",
            "1",
            "--explain",
        ],
    );
    assert_eq!(v["received"], 1, "{}", text(&out));
    assert!(
        v["explain"]["unsupported"]
            .as_str()
            .is_some_and(|s| s.contains("no applied network")),
        "{v:#}"
    );
    // This machine's iptables is the nft variant, so `status` says nothing against tracing
    // (the legacy variant's answer is unit-tested in kernel/tools.rs).
    let (status, v, out) = ctl(&helper, &["status"]);
    assert_eq!(status, 0, "{}", text(&out));
    assert!(v["tool_jail"].is_object(), "{v:#}");
    assert!(v.get("explain_unsupported").is_none(), "{v:#}");
}
