//! The per-uid budget of kernel objects (`--quota-objects`), tried as a hostile member
//! would: routes without end in one namespace, then in a second (the quota is per uid),
//! firewall rules and sets past it, and a set table the size of the machine's memory.
//! Before the budget, a member's namespaces took whatever the kernel would allocate.

use std::process::Command;

use serde_json::{Value, json};
use tsim_tests::{
    HelperOptions, TestHelper, batch_file, require_priv, test_gid, text, tsimctl_as_nobody,
};

/// `n` blackhole routes for namespace `ns`, from 10.77.`first`.0 on.
fn routes(ns: &str, first: u32, n: u32) -> Vec<Value> {
    (first * 256..first * 256 + n)
        .map(|i| {
            json!({"op": "route_add", "ns": ns, "kind": "blackhole",
                   "dst": format!("10.{}.{}.{}/32", 77 + i / 65536, (i / 256) % 256, i % 256)})
        })
        .collect()
}

/// The blackhole routes in namespace `ns`, as `ip` lists them.
fn blackholes(ns: &str) -> usize {
    let out = Command::new("ip")
        .args([
            "-n",
            ns,
            "route",
            "show",
            "table",
            "all",
            "type",
            "blackhole",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// The rules and chains `iptables-save` shows in namespace `ns`.
fn firewall_lines(ns: &str) -> usize {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "iptables-save"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("-A"))
        .count()
}

#[test]
fn a_member_cannot_fill_the_kernel_with_objects() {
    require_priv!();
    let group = test_gid(0);
    let quota = 120;
    let helper = TestHelper::start_with(HelperOptions {
        args: vec!["--quota-objects".into(), quota.to_string()],
        group: group.to_string(),
        ..HelperOptions::default()
    });
    let member = |args: &[&str]| tsimctl_as_nobody(&helper, &[group], args);
    let (a, b, c) = (helper.ns("oa"), helper.ns("ob"), helper.ns("oc"));
    for ns in [&a, &b] {
        let out = member(&["ns", "add", ns]);
        assert!(out.status.success(), "{}", text(&out));
    }

    // The attack: routes without end. Before, every one of them went in.
    let file = batch_file(&helper, "a.json", &routes(&a, 0, 200));
    let out = member(&["--json", "batch", &file]);
    assert!(
        !out.status.success(),
        "200 routes passed a quota of {quota}"
    );
    assert!(text(&out).contains("quota_exceeded"), "{}", text(&out));
    assert!(text(&out).contains("--quota-objects"), "{}", text(&out));
    let in_a = blackholes(&a);
    assert!(
        (100..=quota).contains(&in_a),
        "{in_a} routes in {a} with a quota of {quota}"
    );

    // The quota is the uid's, over all its namespaces: nothing more goes into a second one.
    let file = batch_file(&helper, "b.json", &routes(&b, 1, 10));
    let out = member(&["--json", "batch", &file]);
    assert!(text(&out).contains("quota_exceeded"), "{}", text(&out));
    assert_eq!(blackholes(&b), 0);

    // Firewall rules and sets count too, and are refused before anything changes.
    let mut rules = String::from("*filter\n:INPUT ACCEPT [0:0]\n");
    for i in 0..50 {
        rules.push_str(&format!("-A INPUT -s 10.9.0.{i}/32 -j DROP\n"));
    }
    rules.push_str("COMMIT\n");
    let file = batch_file(
        &helper,
        "fw.json",
        &[json!({"op": "iptables_restore", "ns": b, "payload": rules})],
    );
    let out = member(&["--json", "batch", &file]);
    assert!(text(&out).contains("quota_exceeded"), "{}", text(&out));
    assert_eq!(firewall_lines(&b), 0, "no rule went in");

    // Deleting makes room again (in any of the uid's namespaces).
    let file = batch_file(
        &helper,
        "flush.json",
        &[json!({"op": "route_flush", "ns": a, "table": 254})],
    );
    let out = member(&["--json", "batch", &file]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(blackholes(&a), 0);
    let file = batch_file(
        &helper,
        "fw.json",
        &[json!({"op": "iptables_restore", "ns": b, "payload": rules})],
    );
    let out = member(&["--json", "batch", &file]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(firewall_lines(&b), 50);

    // A bitmap set takes its whole range at once: it counts as 4096, past this quota.
    let file = batch_file(
        &helper,
        "set.json",
        &[json!({"op": "ipset_restore", "ns": a,
                 "payload": "create s bitmap:port range 0-65535 counters comment\n"})],
    );
    let out = member(&["--json", "batch", &file]);
    assert!(text(&out).contains("quota_exceeded"), "{}", text(&out));
    // A hash table of 2^26 buckets (512 MiB, allocated when the set is made) is refused by
    // the screen, for everyone.
    let file = batch_file(
        &helper,
        "hash.json",
        &[json!({"op": "ipset_restore", "ns": a,
                 "payload": "create h hash:ip hashsize 67108864\n"})],
    );
    let out = helper.tsimctl(&["--json", "batch", &file]);
    assert!(text(&out).contains("not_allowed"), "{}", text(&out));
    assert!(text(&out).contains("hashsize"), "{}", text(&out));

    // Root and the admin group are not counted.
    let out = helper.tsimctl(&["ns", "add", &c]);
    assert!(out.status.success(), "{}", text(&out));
    let file = batch_file(&helper, "c.json", &routes(&c, 2, 200));
    let out = helper.tsimctl(&["--json", "batch", &file]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(blackholes(&c), 200);
}
