//! The simulated network from facts, on the real kernel: the 10-router test network built,
//! counted, verified, pinged and traced; re-applied as a no-op and as a difference; verify
//! finding what was tampered with; status; failures that leave nothing behind; teardown.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use tsim_tests::{
    NETNS_DIR, TestHelper, example_facts, facts10, groups, ip_netns_list, require_priv, text,
};

/// Runs `tsimctl ARGS` and returns its output, asserting the exit status.
fn ctl(helper: &TestHelper, args: &[&str], status: i32) -> Output {
    let out = helper.tsimctl(args);
    assert_eq!(
        out.status.code(),
        Some(status),
        "tsimctl {args:?}:\n{}",
        text(&out)
    );
    out
}

/// Runs `tsimctl --json ARGS`, expecting success, and parses its output.
fn ctl_json(helper: &TestHelper, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = ctl(helper, &all, 0);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("tsimctl {args:?}: not JSON ({e}):\n{}", text(&out)))
}

/// `net setup` of `facts` with the helper's prefix, as JSON.
fn setup(helper: &TestHelper, facts: &Path, extra: &[&str]) -> Value {
    let facts = facts.display().to_string();
    let mut args = vec![
        "net",
        "setup",
        "--facts",
        &facts,
        "--prefix",
        &helper.prefix,
    ];
    args.extend_from_slice(extra);
    ctl_json(helper, &args)
}

/// `net verify` of `facts`; returns the exit status and the JSON report.
fn verify(helper: &TestHelper, facts: &Path) -> (i32, Value) {
    let facts = facts.display().to_string();
    let args = [
        "--json",
        "net",
        "verify",
        "--facts",
        &facts,
        "--prefix",
        &helper.prefix,
    ];
    let out = helper.tsimctl(&args);
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("net verify: not JSON ({e}):\n{}", text(&out)));
    (out.status.code().unwrap_or(-1), report)
}

/// Runs a command, returning whether it succeeded and its output.
fn run(program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    (out.status.success(), text(&out))
}

/// `ip -n NS -j ARGS`, parsed.
fn ip_json(ns: &str, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["-n", ns, "-j"];
    all.extend_from_slice(args);
    let out = Command::new("ip").args(&all).output().expect("ip");
    assert!(out.status.success(), "ip {all:?}: {}", text(&out));
    if out.stdout.iter().all(u8::is_ascii_whitespace) {
        return Vec::new();
    }
    serde_json::from_slice(&out.stdout).expect("ip -j output")
}

/// Runs a command inside namespace `ns` (as the tests' root user).
fn in_ns(ns: &str, program: &str, args: &[&str]) -> (bool, String) {
    let mut all = vec!["netns", "exec", ns, program];
    all.extend_from_slice(args);
    run("ip", &all)
}

/// The router names of the 10-router network.
const ROUTERS: [&str; 10] = [
    "br-core", "br-gw", "br-wifi", "dc-core", "dc-gw", "dc-srv", "hq-core", "hq-dmz", "hq-gw",
    "hq-lab",
];

/// Which router owns each IPv4 address (from the kernel).
fn owners(helper: &TestHelper) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for r in ROUTERS {
        let ns = helper.ns(r);
        for link in ip_json(&ns, &["-4", "addr", "show"]) {
            for a in link["addr_info"].as_array().into_iter().flatten() {
                out.insert(a["local"].as_str().unwrap().to_owned(), ns.clone());
            }
        }
    }
    out
}

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|n| n.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn facts10_network_is_built_verified_and_routed() {
    require_priv!();
    let helper = TestHelper::start();
    let applied = setup(&helper, &facts10(), &[]);
    let mut added = names(&applied["added"]);
    added.sort();
    let expected: Vec<String> = ROUTERS.iter().map(|r| helper.ns(r)).collect();
    assert_eq!(added, expected);
    assert_eq!(applied["bridges_added"], 18);
    // Only sets whose type the kernel lacks are left out, each named with its router.
    for w in applied["warnings"].as_array().unwrap() {
        assert_eq!(w["kind"], "ipset", "{w}");
        assert!(w["item"].as_str().unwrap().starts_with("create "), "{w}");
        assert!(
            w["message"].as_str().unwrap().contains("not supported"),
            "{w}"
        );
    }
    let unsupported_sets = applied["warnings"].as_array().unwrap().len();

    let hidden = helper.ns("hidden");
    groups(vec![
        (
            "Namespaces: the routers plus the hidden one",
            Box::new(|| {
                let listed = ip_netns_list();
                for ns in expected.iter().chain([&hidden]) {
                    assert!(listed.contains(ns), "{ns} missing from {listed:?}");
                }
                assert_eq!(
                    listed
                        .iter()
                        .filter(|n| n.starts_with(&helper.prefix))
                        .count(),
                    11
                );
            }),
        ),
        (
            "18 bridges and 27 veths, every hidden end attached to a bridge",
            Box::new(|| {
                let bridges = ip_json(&hidden, &["link", "show", "type", "bridge"]);
                assert_eq!(bridges.len(), 18);
                let hidden_veths = ip_json(&hidden, &["link", "show", "type", "veth"]);
                assert_eq!(hidden_veths.len(), 27);
                assert!(hidden_veths.iter().all(|l| l["master"].is_string()));
                let router_veths: usize = expected
                    .iter()
                    .map(|ns| ip_json(ns, &["link", "show", "type", "veth"]).len())
                    .sum();
                assert_eq!(router_veths, 27);
            }),
        ),
        (
            "83 main-table routes besides the kernel's own; forwarding and ARP sysctls",
            Box::new(|| {
                let mut main_routes = 0;
                for ns in &expected {
                    main_routes += ip_json(ns, &["route", "show", "table", "main"])
                        .iter()
                        .filter(|r| r["protocol"] != "kernel")
                        .count();
                    for (key, value) in [
                        ("ipv4/ip_forward", "1"),
                        ("ipv4/conf/all/arp_ignore", "1"),
                        ("ipv4/conf/all/arp_announce", "2"),
                    ] {
                        let (ok, out) = in_ns(ns, "cat", &[&format!("/proc/sys/net/{key}")]);
                        assert!(ok && out.trim() == value, "{ns} {key} = {out}");
                    }
                }
                assert_eq!(main_routes, 83);
            }),
        ),
        (
            "The 10 iptables payloads (hq-gw: 168 rules, INPUT and FORWARD DROP), and the sets",
            Box::new(|| {
                let mut sets = 0;
                for ns in &expected {
                    let (ok, saved) = in_ns(ns, "iptables-save", &[]);
                    assert!(ok, "{saved}");
                    assert!(
                        saved.lines().any(|l| l.starts_with("-A ")),
                        "{ns}: no rules"
                    );
                    if ns.ends_with("hq-gw") {
                        assert_eq!(saved.lines().filter(|l| l.starts_with("-A ")).count(), 168);
                        assert!(saved.contains(":INPUT DROP") && saved.contains(":FORWARD DROP"));
                    }
                    let (ok, list) = in_ns(ns, "ipset", &["list", "-n"]);
                    assert!(ok, "{list}");
                    sets += list.lines().filter(|l| !l.trim().is_empty()).count();
                }
                assert_eq!(sets + unsupported_sets, 17);
            }),
        ),
        (
            "verify is clean, and says why the left-out sets are missing",
            Box::new(|| {
                let (status, report) = verify(&helper, &facts10());
                assert_eq!(status, 0, "{report:#}");
                assert_eq!(report["clean"], true);
                let skipped: usize = report["routers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|r| r["findings"].as_array().unwrap())
                    .filter(|f| f["problem"] == "skipped")
                    .count();
                assert_eq!(skipped, unsupported_sets);
            }),
        ),
        (
            "The router-to-router pings of the old system's acceptance tests",
            Box::new(|| {
                let owner = owners(&helper);
                let pairs = [
                    ("10.1.1.1", "10.1.2.1"),
                    ("10.1.1.1", "10.2.1.1"),
                    ("10.1.1.1", "10.3.1.1"),
                    ("10.2.1.1", "10.3.1.1"),
                    ("10.1.10.1", "10.3.20.1"),
                    ("10.100.1.1", "10.100.1.2"),
                    ("10.2.5.1", "10.3.21.1"),
                    ("10.1.10.1", "10.1.11.1"),
                    ("10.2.5.1", "10.2.6.1"),
                    ("10.3.10.1", "10.3.20.1"),
                    ("10.2.6.1", "10.1.3.1"),
                    ("10.1.10.1", "10.3.21.1"),
                ];
                for (src, dst) in pairs {
                    let ns = &owner[src];
                    let (ok, out) = in_ns(ns, "ping", &["-c", "1", "-W", "2", "-I", src, dst]);
                    assert!(ok, "ping {src} -> {dst} from {ns}:\n{out}");
                }
            }),
        ),
        (
            "The traceroute the old system's tests expect",
            Box::new(|| {
                let lab = helper.ns("hq-lab");
                let (ok, out) = in_ns(
                    &lab,
                    "traceroute",
                    &[
                        "-I",
                        "-n",
                        "-q",
                        "1",
                        "-w",
                        "2",
                        "-m",
                        "10",
                        "-s",
                        "10.1.10.1",
                        "10.3.20.1",
                    ],
                );
                assert!(ok, "{out}");
                let hops: Vec<&str> = out
                    .lines()
                    .skip(1)
                    .filter_map(|l| l.split_whitespace().nth(1))
                    .collect();
                assert_eq!(
                    hops,
                    [
                        "10.1.2.1",
                        "10.1.1.1",
                        "10.100.1.3",
                        "10.3.1.2",
                        "10.3.20.1"
                    ],
                    "{out}"
                );
            }),
        ),
    ]);

    // Teardown removes every namespace of the network.
    let torn = ctl_json(&helper, &["net", "teardown"]);
    assert_eq!(torn["namespaces"], 11);
    let left: Vec<String> = ip_netns_list()
        .into_iter()
        .filter(|n| n.starts_with(&helper.prefix))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let out = ctl(&helper, &["net", "status"], 0);
    assert!(text(&out).contains("no network applied"), "{}", text(&out));
    let out = ctl(&helper, &["net", "teardown"], 0);
    assert!(text(&out).contains("no network to tear down"));
}

/// The inode of a namespace: the same one as long as it is not rebuilt.
fn ns_inode(name: &str) -> u64 {
    std::fs::metadata(Path::new(NETNS_DIR).join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .ino()
}

#[test]
fn reapplying_is_a_no_op_and_changes_apply_as_a_difference() {
    require_priv!();
    let helper = TestHelper::start();
    let facts = helper.dir.path().join("facts");
    std::fs::create_dir(&facts).unwrap();
    for entry in std::fs::read_dir(facts10()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, facts.join(path.file_name().unwrap())).unwrap();
    }
    setup(&helper, &facts, &[]);
    let inodes: BTreeMap<&str, u64> = ROUTERS
        .iter()
        .map(|r| (*r, ns_inode(&helper.ns(r))))
        .collect();

    // The same facts: nothing to do.
    let again = setup(&helper, &facts, &[]);
    assert_eq!(again["unchanged"], 10, "{again:#}");
    assert!(names(&again["added"]).is_empty() && names(&again["changed"]).is_empty());
    assert_eq!(again["bridges_added"], 0);

    // Remove br-wifi (and with it its two subnets), change a route and the firewall of hq-gw.
    std::fs::remove_file(facts.join("br-wifi_facts.txt")).unwrap();
    let gw = facts.join("hq-gw_facts.txt");
    let original = std::fs::read_to_string(&gw).unwrap();
    let old_route = "10.1.2.0/24 via 10.1.1.2 dev eth1 metric 1";
    assert!(original.contains(old_route));
    let changed = original
        .replace(old_route, "10.1.2.0/24 via 10.1.1.2 dev eth1 metric 7")
        .replace(
            "-A INPUT -i lo -j ACCEPT",
            "-A INPUT -i lo -j ACCEPT\n-A INPUT -p udp --dport 9999 -j DROP",
        );
    std::fs::write(&gw, changed).unwrap();
    let diff = setup(&helper, &facts, &[]);
    assert_eq!(names(&diff["removed"]), [helper.ns("br-wifi")]);
    assert_eq!(names(&diff["changed"]), [helper.ns("hq-gw")]);
    assert_eq!(diff["unchanged"], 8);
    assert_eq!(diff["bridges_removed"], 2);
    assert!(!ip_netns_list().contains(&helper.ns("br-wifi")));
    // The routers that did not change were not rebuilt; hq-gw was changed in place.
    for (router, inode) in &inodes {
        if *router != "br-wifi" {
            assert_eq!(ns_inode(&helper.ns(router)), *inode, "{router} was rebuilt");
        }
    }
    let gw_ns = helper.ns("hq-gw");
    let routes = ip_json(&gw_ns, &["route", "show", "10.1.2.0/24"]);
    assert_eq!(routes.len(), 1, "{routes:?}");
    assert_eq!(routes[0]["metric"], 7);
    let (_, saved) = in_ns(&gw_ns, "iptables-save", &[]);
    assert!(saved.contains("--dport 9999 -j DROP"), "{saved}");
    let (status, report) = verify(&helper, &facts);
    assert_eq!(status, 0, "{report:#}");

    // Back to the original facts: br-wifi comes back, hq-gw changes back.
    std::fs::write(&gw, original).unwrap();
    std::fs::copy(
        facts10().join("br-wifi_facts.txt"),
        facts.join("br-wifi_facts.txt"),
    )
    .unwrap();
    let back = setup(&helper, &facts, &[]);
    assert_eq!(names(&back["added"]), [helper.ns("br-wifi")]);
    assert_eq!(names(&back["changed"]), [helper.ns("hq-gw")]);
    assert_eq!(back["bridges_added"], 2);
    let (status, report) = verify(&helper, &facts10());
    assert_eq!(status, 0, "{report:#}");

    // Policy tables on and off again: rules come and go, and verify follows.
    let with = setup(&helper, &facts, &["--policy-tables"]);
    assert_eq!(names(&with["changed"]).len(), 10);
    let rules = ip_json(&gw_ns, &["rule", "show"]);
    assert!(rules.len() > 3, "{rules:?}");
    assert_eq!(verify(&helper, &facts).0, 0);
    setup(&helper, &facts, &[]);
    assert_eq!(ip_json(&gw_ns, &["rule", "show"]).len(), 3);
    assert_eq!(verify(&helper, &facts).0, 0);

    // The network survives a restart of the helper: the record is kept.
    let mut helper = helper;
    helper.terminate();
    helper.restart();
    let after = setup(&helper, &facts, &[]);
    assert_eq!(after["unchanged"], 10, "{after:#}");
    let torn = ctl_json(&helper, &["net", "teardown"]);
    assert_eq!(torn["namespaces"], 11);
}

#[test]
fn verify_reports_what_differs() {
    require_priv!();
    let helper = TestHelper::start();
    setup(&helper, &example_facts(), &[]);
    let (status, report) = verify(&helper, &example_facts());
    assert_eq!(status, 0, "{report:#}");

    let edge = helper.ns("edge");
    let lab = helper.ns("lab");
    let core = helper.ns("core");
    // Tamper with the kernel behind the helper's back.
    for args in [
        vec!["-n", &edge, "route", "del", "10.0.2.0/24"],
        vec!["-n", &lab, "link", "set", "eth1", "down"],
        vec!["-n", &core, "addr", "add", "10.0.2.9/24", "dev", "eth1"],
    ] {
        let (ok, out) = run("ip", &args);
        assert!(ok, "ip {args:?}: {out}");
    }
    let (ok, out) = in_ns(&edge, "iptables", &["-P", "FORWARD", "DROP"]);
    assert!(ok, "{out}");
    let (ok, out) = in_ns(&edge, "ipset", &["del", "blocked", "203.0.113.0/24"]);
    assert!(ok, "{out}");

    let (status, report) = verify(&helper, &example_facts());
    assert_eq!(status, 1, "{report:#}");
    assert_eq!(report["clean"], false);
    let findings: Vec<(String, String, String)> = report["routers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            let router = r["router"].as_str().unwrap().to_owned();
            r["findings"].as_array().unwrap().iter().map(move |f| {
                (
                    router.clone(),
                    f["item"].as_str().unwrap().to_owned(),
                    f["problem"].as_str().unwrap().to_owned(),
                )
            })
        })
        .collect();
    let has = |router: &str, item: &str, problem: &str| {
        findings
            .iter()
            .any(|(r, i, p)| *r == router && i.contains(item) && p == problem)
    };
    assert!(
        has(&edge, "10.0.2.0/24 via 10.0.1.2", "missing"),
        "{findings:#?}"
    );
    assert!(has(&lab, "eth1 up", "differs"), "{findings:#?}");
    // The interface went down: its connected route went with it.
    assert!(
        has(&lab, "10.0.3.0/24 dev eth1", "missing"),
        "{findings:#?}"
    );
    assert!(
        has(&core, "10.0.2.9/24 dev eth1", "unexpected"),
        "{findings:#?}"
    );
    assert!(
        has(&edge, "*filter :FORWARD ACCEPT", "differs"),
        "{findings:#?}"
    );
    assert!(
        has(&edge, "add blocked 203.0.113.0/24", "missing"),
        "{findings:#?}"
    );
    assert_eq!(findings.len(), 6, "{findings:#?}");

    // The text report names the routers that differ and exits 1.
    let facts = example_facts().display().to_string();
    let out = ctl(
        &helper,
        &[
            "net",
            "verify",
            "--facts",
            &facts,
            "--prefix",
            &helper.prefix,
        ],
        1,
    );
    let shown = text(&out);
    assert!(
        shown.contains("DIFFERS") && shown.contains("3 of 3 routers differ"),
        "{shown}"
    );

    // Setup compares with the network it applied, not with the kernel: teardown and setup
    // repair what was changed behind its back.
    ctl_json(&helper, &["net", "teardown"]);
    setup(&helper, &example_facts(), &[]);
    assert_eq!(verify(&helper, &example_facts()).0, 0);
}

#[test]
fn status_shows_interfaces_routes_counters_and_sets() {
    require_priv!();
    let helper = TestHelper::start();
    let out = ctl(&helper, &["net", "status"], 0);
    assert!(text(&out).contains("no network applied"));
    setup(&helper, &example_facts(), &[]);
    // Traffic through edge's firewall: pings from lab to edge's far side.
    let (ok, out) = in_ns(
        &helper.ns("lab"),
        "ping",
        &["-c", "3", "-i", "0.2", "-I", "10.0.3.1", "192.0.2.1"],
    );
    assert!(ok, "{out}");

    let status = ctl_json(&helper, &["net", "status"]);
    assert_eq!(status["applied"], true);
    let routers = status["routers"].as_array().unwrap();
    assert_eq!(routers.len(), 3);
    let edge = routers
        .iter()
        .find(|r| r["router"] == helper.ns("edge"))
        .unwrap();
    let ifaces: Vec<(&str, &str)> = edge["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["name"].as_str().unwrap(), i["addrs"][0].as_str().unwrap()))
        .collect();
    assert_eq!(ifaces, [("eth0", "192.0.2.1/24"), ("eth1", "10.0.1.1/24")]);
    assert!(
        edge["routes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "10.0.3.0/24 via 10.0.1.2 dev eth1 proto static metric 5"),
        "{:#}",
        edge["routes"]
    );
    // The ICMP rule of EDGE_IN counted the first echo request (conntrack takes the rest).
    let filter = edge["iptables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "filter")
        .unwrap();
    let chain = filter["chains"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "EDGE_IN")
        .unwrap();
    let icmp = &chain["rules"][0];
    assert_eq!(icmp["spec"], "-p icmp -j ACCEPT");
    assert!(icmp["packets"].as_u64().unwrap() >= 1, "{chain:#}");
    let sets: Vec<(&str, u64)> = edge["ipsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["members"].as_u64().unwrap()))
        .collect();
    assert_eq!(sets, [("blocked", 2), ("mgmt", 1)]);

    // One router in full, as text; an unknown router is a usage error.
    let out = ctl(&helper, &["net", "status", &helper.ns("edge")], 0);
    let shown = text(&out);
    assert!(shown.contains("chain EDGE_IN") && shown.contains("blocked hash:net (2 members)"));
    let out = ctl(&helper, &["net", "status", &helper.ns("nowhere")], 2);
    assert!(text(&out).contains("not a router of the applied network"));
}

#[test]
fn a_failed_apply_leaves_nothing_behind() {
    require_priv!();
    let helper = TestHelper::start();
    // A namespace the helper does not manage has the name of one of the routers.
    let squatter = helper.ns("lab");
    let (ok, out) = run("ip", &["netns", "add", &squatter]);
    assert!(ok, "{out}");
    let facts = example_facts().display().to_string();
    let out = ctl(
        &helper,
        &[
            "net",
            "setup",
            "--facts",
            &facts,
            "--prefix",
            &helper.prefix,
        ],
        1,
    );
    let shown = text(&out);
    assert!(
        shown.contains("already_exists") && shown.contains(&squatter),
        "{shown}"
    );
    // Nothing of the network is left: only the squatter.
    let ours: Vec<String> = ip_netns_list()
        .into_iter()
        .filter(|n| n.starts_with(&helper.prefix))
        .collect();
    assert_eq!(ours, std::slice::from_ref(&squatter));
    let out = ctl(&helper, &["net", "status"], 0);
    assert!(text(&out).contains("no network applied"));
    // The helper is still up, and the squatter untouched; without it, setup works.
    ctl(&helper, &["ping"], 0);
    let (ok, _) = run("ip", &["netns", "del", &squatter]);
    assert!(ok);
    setup(&helper, &example_facts(), &[]);
    assert_eq!(verify(&helper, &example_facts()).0, 0);
}

#[test]
fn bad_input_is_refused_with_clear_errors() {
    require_priv!();
    let helper = TestHelper::start();
    let dir = helper.dir.path();

    // A topology whose interface hangs off a bridge it does not define.
    let bad = serde_json::json!({
        "bridges": [],
        "routers": [{"name": helper.ns("r1"), "interfaces": [
            {"name": "eth0", "up": true, "addrs": [{"addr": "10.9.0.1/24"}],
             "bridge": "br-nope", "hidden_end": "vbad1"}]}]
    });
    let file = dir.join("bad.json");
    std::fs::write(&file, bad.to_string()).unwrap();
    let file = file.display().to_string();
    let out = ctl(&helper, &["net", "setup", "--topology", &file], 1);
    let shown = text(&out);
    assert!(
        shown.contains("invalid_argument") && shown.contains("br-nope"),
        "{shown}"
    );

    // A router named like the hidden namespace.
    let clash = serde_json::json!({"bridges": [], "routers": [{"name": helper.ns("hidden"), "interfaces": []}]});
    let file = dir.join("clash.json");
    std::fs::write(&file, clash.to_string()).unwrap();
    let file = file.display().to_string();
    let out = ctl(&helper, &["net", "setup", "--topology", &file], 1);
    assert!(text(&out).contains("hidden namespace"), "{}", text(&out));
    assert!(
        !ip_netns_list()
            .iter()
            .any(|n| n.starts_with(&helper.prefix)),
        "nothing may be created"
    );

    // A firewall payload whose table header the tool refuses: nothing can be left out of
    // it, so the whole apply fails, and the routers made before it go again.
    let bad_firewall = serde_json::json!({"bridges": [], "routers": [
        {"name": helper.ns("r1"), "interfaces": []},
        {"name": helper.ns("r2"), "interfaces": [], "iptables": "*nosuchtable\n:X ACCEPT [0:0]\nCOMMIT\n"}
    ]});
    let file = dir.join("bad_firewall.json");
    std::fs::write(&file, bad_firewall.to_string()).unwrap();
    let file = file.display().to_string();
    let out = ctl(&helper, &["net", "setup", "--topology", &file], 1);
    let shown = text(&out);
    assert!(
        shown.contains("invalid_argument") && shown.contains("nosuchtable"),
        "{shown}"
    );
    assert!(
        !ip_netns_list()
            .iter()
            .any(|n| n.starts_with(&helper.prefix)),
        "a failed apply leaves nothing"
    );

    // Facts problems are usage errors that name the file and line.
    let empty = dir.join("empty");
    std::fs::create_dir(&empty).unwrap();
    let empty = empty.display().to_string();
    let out = ctl(&helper, &["net", "setup", "--facts", &empty], 2);
    assert!(text(&out).contains("no facts here"), "{}", text(&out));
    let broken = dir.join("broken");
    std::fs::create_dir(&broken).unwrap();
    std::fs::write(
        broken.join("r1_facts.txt"),
        "# header\n=== TSIM_SECTION_START:interfaces ===\n---\n=== TSIM_SECTION_END:routes ===\n",
    )
    .unwrap();
    let broken = broken.display().to_string();
    let out = ctl(&helper, &["net", "plan", "--facts", &broken], 2);
    let shown = text(&out);
    assert!(shown.contains("r1_facts.txt:4:"), "{shown}");
    let out = ctl(&helper, &["net", "setup", "--facts", &broken], 2);
    assert!(text(&out).contains("r1_facts.txt:4:"));
    // A prefix that makes a bad namespace name.
    let facts = example_facts().display().to_string();
    let out = ctl(
        &helper,
        &["net", "plan", "--facts", &facts, "--prefix", "../"],
        2,
    );
    assert!(text(&out).contains("--prefix"), "{}", text(&out));
    // No source at all.
    ctl(&helper, &["net", "setup"], 2);
    ctl(&helper, &["ping"], 0);
}

#[test]
fn plan_needs_no_helper() {
    // Compiling facts is unprivileged and offline: no helper at this socket.
    let out = Command::new(tsim_tests::binary("tsimctl"))
        .args([
            "--socket",
            "/nonexistent/tsim.sock",
            "net",
            "plan",
            "--facts",
        ])
        .arg(facts10())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["routers"].as_array().unwrap().len(), 10);
    assert_eq!(plan["bridges"].as_array().unwrap().len(), 18);
    // The routes the facts give for interfaces the router lacks are left out, named.
    let shown = String::from_utf8_lossy(&out.stderr);
    assert!(
        shown.contains("hq-core_facts.txt:") && shown.contains("wg0"),
        "{shown}"
    );
}
