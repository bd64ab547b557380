//! The outside world (`net setup --internet`) on the real kernel: the internet namespace
//! owning the edge routers' upstream gateways, external hosts with /32 public addresses,
//! the old system's expectations (ping and trace to 8.8.8.8 and 1.1.1.1 from inside, through
//! the edge's MASQUERADE), traffic from outside (the edges' public addresses, the facts'
//! DNAT), what the internet does not route, and the diff adding and removing it alone.
//!
//! All traffic stays inside the test's namespaces: the "public" addresses exist only there.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use tsim_tests::{
    HelperOptions, NETNS_DIR, TestHelper, example_facts, facts10, groups, ip_netns_list,
    require_priv, text,
};

/// Runs `tsimctl --json ARGS`; returns the exit status and the parsed output (Null if none).
fn ctl(helper: &TestHelper, args: &[&str]) -> (i32, Value, Output) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = helper.tsimctl(&all);
    let value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), value, out)
}

/// Runs `tsimctl --json ARGS`, expecting success.
fn ok(helper: &TestHelper, args: &[&str]) -> Value {
    let (status, value, out) = ctl(helper, args);
    assert_eq!(status, 0, "tsimctl {args:?}:\n{}", text(&out));
    value
}

/// Runs `tsimctl ARGS`, expecting failure; returns its standard error.
fn refused(helper: &TestHelper, args: &[&str]) -> String {
    let out = helper.tsimctl(args);
    assert!(!out.status.success(), "tsimctl {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `net setup` (or another facts command) of `facts` with the helper's prefix.
fn net(helper: &TestHelper, cmd: &str, facts: &Path, internet: bool) -> (i32, Value, Output) {
    let facts = facts.display().to_string();
    let mut args = vec!["net", cmd, "--facts", &facts, "--prefix", &helper.prefix];
    if cmd == "setup" {
        args.push("--quiet");
    }
    if internet {
        args.push("--internet");
    }
    ctl(helper, &args)
}

fn names(v: &Value) -> Vec<String> {
    let mut n: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|n| n.as_str().unwrap().to_owned())
        .collect();
    n.sort();
    n
}

fn ns_inode(name: &str) -> u64 {
    std::fs::metadata(Path::new(NETNS_DIR).join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .ino()
}

/// The hops' addresses of a trace (`*` for a hop that did not answer).
fn path(trace: &Value) -> Vec<String> {
    trace["hops"]
        .as_array()
        .unwrap_or_else(|| panic!("no hops: {trace}"))
        .iter()
        .map(|h| h["from"].as_str().unwrap_or("*").to_owned())
        .collect()
}

/// The packet counter of the first `iptables-save -c` line of `table` in `ns` that contains
/// `rule`.
fn counter(ns: &str, table: &str, rule: &str) -> u64 {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "iptables-save", "-c", "-t", table])
        .output()
        .expect("iptables-save");
    let saved = String::from_utf8_lossy(&out.stdout);
    let line = saved
        .lines()
        .find(|l| l.contains(rule))
        .unwrap_or_else(|| panic!("{ns}: no rule {rule:?} in:\n{saved}"));
    line.trim_start_matches('[')
        .split(':')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no counter in {line:?}"))
}

fn ping(helper: &TestHelper, from: &str, src: Option<&str>, dst: &str) -> Value {
    let from = helper.ns(from);
    let mut args = vec![
        "probe", "ping", "--from", &from, dst, "-c", "2", "-i", "0.05",
    ];
    if let Some(s) = src {
        args.extend(["--src", s]);
    }
    args.extend(["-W", "0.5"]);
    ctl(helper, &args).1
}

fn trace(helper: &TestHelper, from: &str, src: Option<&str>, dst: &str) -> Value {
    let from = helper.ns(from);
    let mut args = vec!["probe", "trace", "--from", &from, dst, "--max-hops", "8"];
    if let Some(s) = src {
        args.extend(["--src", s]);
    }
    args.extend(["-w", "0.5"]);
    ctl(helper, &args).1
}

#[test]
fn the_outside_world_answers_like_the_internet_behind_the_10_router_network() {
    require_priv!();
    let helper = TestHelper::start();
    let internet = helper.ns("internet");
    let (status, applied, out) = net(&helper, "setup", &facts10(), true);
    assert_eq!(status, 0, "{}", text(&out));
    assert_eq!(names(&applied["added"]).len(), 11, "{applied}");
    assert!(names(&applied["added"]).contains(&internet), "{applied}");
    helper.add_hosts(&[
        ("web", "10.1.1.10/24", "hq-gw"),
        ("odd", "10.99.0.5/24", "hq-gw"),
    ]);
    for (name, ip) in [("g8", "8.8.8.8/32"), ("cf", "1.1.1.1/32")] {
        let added = ok(
            &helper,
            &["host", "add", &helper.ns(name), "--ip", ip, "--internet"],
        );
        assert_eq!(added["host"]["router"], internet.as_str(), "{added}");
        assert_eq!(added["host"]["router_if"], "hosts0", "{added}");
        assert_eq!(added["host"]["gateway"], "169.254.0.1", "{added}");
    }
    groups(vec![
        (
            "the internet namespace routes the uplinks and public space only",
            Box::new(|| {
                let out = Command::new("ip")
                    .args(["-n", &internet, "route", "show"])
                    .output()
                    .unwrap();
                let routes = String::from_utf8_lossy(&out.stdout);
                for want in [
                    "blackhole 10.0.0.0/8",
                    "blackhole 172.16.0.0/12",
                    "blackhole 192.168.0.0/16",
                    "blackhole 100.64.0.0/10",
                    "default dev hosts0 scope link",
                    "203.0.113.0/24 dev up2 proto kernel scope link src 203.0.113.1",
                    "198.51.100.0/24 dev up1 proto kernel scope link src 198.51.100.1",
                    "192.0.2.0/24 dev up0 proto kernel scope link src 192.0.2.1",
                ] {
                    assert!(routes.contains(want), "no {want:?} in:\n{routes}");
                }
                assert_eq!(routes.lines().count(), 9, "{routes}");
                let (status, report, out) = net(&helper, "verify", &facts10(), true);
                assert_eq!(status, 0, "{report:#}\n{}", text(&out));
            }),
        ),
        (
            "external hosts need a public /32 on the internet",
            Box::new(|| {
                let e = refused(
                    &helper,
                    &[
                        "host",
                        "add",
                        &helper.ns("x1"),
                        "--ip",
                        "10.9.9.9/32",
                        "--internet",
                    ],
                );
                assert!(
                    e.contains("error[conflict]") && e.contains("blackhole 10.0.0.0/8"),
                    "{e}"
                );
                let e = refused(
                    &helper,
                    &[
                        "host",
                        "add",
                        &helper.ns("x2"),
                        "--ip",
                        "203.0.113.77/32",
                        "--internet",
                    ],
                );
                assert!(e.contains("a subnet of the network"), "{e}");
                let e = refused(
                    &helper,
                    &[
                        "host",
                        "add",
                        &helper.ns("x3"),
                        "--ip",
                        "8.8.4.4/32",
                        "--router",
                        &helper.ns("hq-gw"),
                    ],
                );
                assert!(
                    e.contains("error[invalid_argument]") && e.contains("--internet"),
                    "{e}"
                );
                let e = refused(
                    &helper,
                    &[
                        "host",
                        "add",
                        &helper.ns("x4"),
                        "--ip",
                        "8.8.8.8/32",
                        "--internet",
                    ],
                );
                assert!(e.contains("error[conflict]"), "{e}");
                assert!(
                    !ip_netns_list()
                        .iter()
                        .any(|n| n.starts_with(&helper.ns("x")))
                );
            }),
        ),
        (
            "ping and trace reach 8.8.8.8 and 1.1.1.1 from inside, as the old tests expect",
            Box::new(|| {
                for (router, src, dst, edge, upstream) in [
                    ("hq-gw", "10.1.1.1", "8.8.8.8", "hq-gw", "203.0.113.1"),
                    ("hq-lab", "10.1.10.1", "8.8.8.8", "hq-gw", "203.0.113.1"),
                    ("dc-srv", "10.3.20.1", "1.1.1.1", "dc-gw", "192.0.2.1"),
                ] {
                    let masq = helper.ns(edge);
                    let before = counter(&masq, "nat", "-s 10.");
                    let p = ping(&helper, router, Some(src), dst);
                    assert_eq!(p["received"], 2, "ping {dst} from {src}: {p}");
                    let t = trace(&helper, router, Some(src), dst);
                    assert_eq!(t["reached"], true, "trace {dst} from {src}: {t}");
                    let hops = path(&t);
                    assert_eq!(
                        hops[hops.len() - 2..],
                        [upstream.to_owned(), dst.to_owned()],
                        "from {src}: {hops:?}"
                    );
                    // The edge's MASQUERADE rules saw the new flows.
                    let after = counter(&masq, "nat", "-s 10.");
                    let all: u64 = ["10.1.", "10.2.", "10.3."]
                        .iter()
                        .map(|s| {
                            counter(&masq, "nat", &format!("-s {s}0.0/16 -o eth0 -j MASQUERADE"))
                        })
                        .sum();
                    assert!(
                        all > 0 && after >= before,
                        "{edge}: MASQUERADE counters {before} -> {after}"
                    );
                }
            }),
        ),
        (
            "only NATed traffic comes back: a source no MASQUERADE covers gets no answer",
            Box::new(|| {
                let masq = helper.ns("hq-gw");
                let rule = "-s 10.1.0.0/16 -o eth0 -j MASQUERADE";
                let before = counter(&masq, "nat", rule);
                let p = ping(&helper, "web", None, "8.8.8.8");
                assert_eq!(p["received"], 2, "{p}");
                assert!(
                    counter(&masq, "nat", rule) > before,
                    "web's flow was not MASQUERADEd"
                );
                // 10.99.0.5 is outside every MASQUERADE of hq-gw: its echo requests leave
                // with their private source, and the internet blackholes the replies.
                let p = ping(&helper, "odd", None, "8.8.8.8");
                assert_eq!(p["received"], 0, "{p}");
                let p = ping(&helper, "odd", None, "10.1.1.10");
                assert_eq!(p["received"], 2, "odd itself works inside: {p}");
            }),
        ),
        (
            "from outside: the edges' public addresses answer; the facts' DNAT is taken and FORWARD drops it",
            Box::new(|| {
                for dst in ["203.0.113.10", "198.51.100.10", "192.0.2.10"] {
                    let p = ping(&helper, "internet", None, dst);
                    assert_eq!(p["received"], 2, "internet -> {dst}: {p}");
                    let t = trace(&helper, "g8", None, dst);
                    assert_eq!(path(&t), ["169.254.0.1", dst], "{t}");
                }
                ok(
                    &helper,
                    &[
                        "svc",
                        "start",
                        "--ns",
                        &helper.ns("web"),
                        "--ip",
                        "10.1.1.10",
                        "--port",
                        "80",
                    ],
                );
                let gw = helper.ns("hq-gw");
                let dnat = "--dport 80 -j DNAT --to-destination 10.1.1.10";
                let (dnat0, drop0) = (
                    counter(&gw, "nat", dnat),
                    counter(&gw, "filter", "-A FORWARD -j DROP"),
                );
                let (status, tcp, _) = ctl(
                    &helper,
                    &[
                        "probe",
                        "tcp",
                        "--from",
                        &helper.ns("g8"),
                        "203.0.113.10:80",
                        "-m",
                        "hi",
                        "--wait",
                        "0.3",
                    ],
                );
                // hq-gw's facts DNAT port 80 to 10.1.1.10 but forward nothing new from the
                // internet to the inside: the real router would drop it too.
                assert_eq!(
                    (status, tcp["status"].as_str()),
                    (1, Some("timeout")),
                    "{tcp}"
                );
                assert_eq!(counter(&gw, "nat", dnat), dnat0 + 1);
                assert!(counter(&gw, "filter", "-A FORWARD -j DROP") > drop0);
                // The inside is not reachable from outside without NAT at all.
                let p = ping(&helper, "g8", None, "10.1.1.10");
                assert_eq!(p["received"], 0, "{p}");
            }),
        ),
        (
            "net setup without --internet removes it and its hosts alone, and with it adds it back",
            Box::new(|| {
                let routers: Vec<String> = ip_netns_list()
                    .into_iter()
                    .filter(|n| n.starts_with(&helper.prefix) && !n.contains("hidden"))
                    .filter(|n| {
                        !["g8", "cf", "web", "odd", "internet"]
                            .iter()
                            .any(|s| *n == helper.ns(s))
                    })
                    .collect();
                assert_eq!(routers.len(), 10, "{routers:?}");
                let inodes: Vec<u64> = routers.iter().map(|r| ns_inode(r)).collect();
                let (status, diff, out) = net(&helper, "setup", &facts10(), false);
                assert_eq!(status, 0, "{}", text(&out));
                assert_eq!(names(&diff["removed"]), [internet.as_str()], "{diff}");
                assert!(names(&diff["changed"]).is_empty(), "{diff}");
                assert_eq!(diff["bridges_removed"], 1, "{diff}");
                let left = ip_netns_list();
                for gone in ["internet", "g8", "cf"] {
                    assert!(!left.contains(&helper.ns(gone)), "{gone} is still there");
                }
                assert!(left.contains(&helper.ns("web")));
                let (status, diff, out) = net(&helper, "setup", &facts10(), true);
                assert_eq!(status, 0, "{}", text(&out));
                assert_eq!(names(&diff["added"]), [internet.as_str()], "{diff}");
                assert_eq!(diff["unchanged"], 10, "{diff}");
                let after: Vec<u64> = routers.iter().map(|r| ns_inode(r)).collect();
                assert_eq!(inodes, after, "a router was rebuilt");
            }),
        ),
    ]);
    ok(&helper, &["net", "teardown"]);
    assert!(
        !ip_netns_list()
            .iter()
            .any(|n| n.starts_with(&helper.prefix))
    );
}

#[test]
fn an_external_client_reaches_the_example_networks_server_through_the_edges_dnat() {
    require_priv!();
    // With a pool, so that the external host is made from a pooled namespace (the other
    // test makes them fresh): both paths give it its on-link default route.
    let helper = TestHelper::start_with(HelperOptions {
        args: vec!["--pool-size".into(), "1".into()],
        ..HelperOptions::default()
    });
    let (status, _, out) = net(&helper, "setup", &example_facts(), true);
    assert_eq!(status, 0, "{}", text(&out));
    // The topology document says it: net plan shows the internet router.
    let (status, plan, out) = net(&helper, "plan", &example_facts(), true);
    assert_eq!(status, 0, "{}", text(&out));
    let marked: Vec<&Value> = plan["routers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["internet"] == true)
        .collect();
    assert_eq!(marked.len(), 1, "{plan}");
    assert_eq!(marked[0]["name"], helper.ns("internet").as_str());
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ip_netns_list()
        .iter()
        .any(|n| n.starts_with(&helper.ns("pool-")))
    {
        assert!(Instant::now() < deadline, "the pool never filled");
        std::thread::sleep(Duration::from_millis(20));
    }
    let ext = ok(
        &helper,
        &[
            "host",
            "add",
            &helper.ns("ext"),
            "--ip",
            "8.8.8.8/32",
            "--internet",
        ],
    );
    assert_eq!(ext["pooled"], true, "{ext}");
    helper.add_hosts(&[("web", "10.0.3.100/24", "lab")]);
    ok(
        &helper,
        &[
            "svc",
            "start",
            "--ns",
            &helper.ns("web"),
            "--ip",
            "10.0.3.100",
            "--port",
            "80",
        ],
    );
    // Outside in, through edge's DNAT of 8080 to web:80 (lab forwards tcp/80 to its subnet).
    let tcp = ok(
        &helper,
        &[
            "probe",
            "tcp",
            "--from",
            &helper.ns("ext"),
            "192.0.2.1:8080",
            "-m",
            "from outside",
        ],
    );
    assert_eq!(tcp["status"], "ok", "{tcp}");
    // Inside out: lab, core, edge, the internet's gateway, the host.
    let t = trace(&helper, "web", None, "8.8.8.8");
    assert_eq!(
        path(&t),
        ["10.0.3.1", "10.0.2.1", "10.0.1.1", "192.0.2.254", "8.8.8.8"],
        "{t}"
    );
    // Without --internet the edge's default route leads nowhere.
    let (status, _, out) = net(&helper, "setup", &example_facts(), false);
    assert_eq!(status, 0, "{}", text(&out));
    let p = ping(&helper, "web", None, "8.8.8.8");
    assert_eq!(p["received"], 0, "{p}");
}
