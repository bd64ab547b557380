//! The routers' firewall logs on the real kernel: the facts' `LOG` rules applied as `NFLOG`,
//! the packets they match read by the helper in each router's namespace and shown by
//! `net log` as the kernel's `LOG` would print them; the filters and the cursor; `net verify`
//! with the rewrite; and the readers closed with their routers.

use std::time::{Duration, Instant};

use serde_json::Value;
use tsim_tests::{TestHelper, facts10, require_priv, text};

fn json(helper: &TestHelper, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = helper.tsimctl(&all);
    assert!(out.status.success(), "tsimctl {args:?}:\n{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}\n{}", text(&out)))
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// The entries of `net log ROUTER` once one with `prefix` has come (within 5 s).
fn wait_for(helper: &TestHelper, router: &str, prefix: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = json(helper, &["net", "log", router]);
        let entries = log["entries"].as_array().cloned().unwrap_or_default();
        if entries.iter().any(|e| e["prefix"] == prefix) {
            return entries;
        }
        assert!(Instant::now() < deadline, "no {prefix:?} entry in {log:#}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn log_rules_are_read_per_router_and_printed_as_log_prints_them() {
    require_priv!();
    let helper = TestHelper::start();
    json(&helper, &["status"]); // what the first connection sets up is not the routers'
    let fds_before = open_fds(helper.pid());
    let facts = facts10().display().to_string();
    let setup = [
        "net",
        "setup",
        "--facts",
        &facts,
        "--prefix",
        &helper.prefix,
        "--internet",
        "--quiet",
    ];
    json(&helper, &setup);
    let gw = helper.ns("hq-gw");
    // The rules are in the kernel as NFLOG, and net verify knows it.
    let saved = std::process::Command::new("ip")
        .args(["netns", "exec", &gw, "iptables-save", "-t", "nat"])
        .output()
        .unwrap();
    let saved = String::from_utf8_lossy(&saved.stdout);
    assert!(
        saved.contains("-j NFLOG --nflog-prefix \"NAT-MASQ-10_1_0_0: \" --nflog-group 7473"),
        "{saved}"
    );
    assert!(!saved.contains("-j LOG"), "{saved}");
    let verify = helper.tsimctl(&[
        "net",
        "verify",
        "--facts",
        &facts,
        "--prefix",
        &helper.prefix,
        "--internet",
    ]);
    assert!(verify.status.success(), "{}", text(&verify));

    let nothing = json(&helper, &["net", "log"]);
    let cursor = nothing["last"].as_u64().unwrap();
    assert!(nothing["unavailable"].is_null(), "{nothing}");
    json(
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
    let ping = json(
        &helper,
        &[
            "probe", "ping", "--from", &gw, "--src", "10.1.1.1", "8.8.8.8", "-c", "1",
        ],
    );
    assert_eq!(ping["received"], 1, "{ping}");
    // hq-gw's POSTROUTING logs what it MASQUERADEs, as the kernel's LOG would print it.
    let entries = wait_for(&helper, &gw, "NAT-MASQ-10_1_0_0: ");
    let masq = entries
        .iter()
        .find(|e| e["prefix"] == "NAT-MASQ-10_1_0_0: ")
        .unwrap();
    let line = masq["line"].as_str().unwrap();
    assert!(
        line.starts_with("IN= OUT=eth0 SRC=10.1.1.1 DST=8.8.8.8 LEN="),
        "{line}"
    );
    assert!(
        line.contains(" TTL=64 ") && line.contains(" PROTO=ICMP TYPE=8 CODE=0 ID="),
        "{line}"
    );
    assert_eq!(masq["router"], gw.as_str());
    assert!(masq["seq"].as_u64().unwrap() > cursor);
    // Only hq-gw's entries with the router given; other routers logged the reply or nothing.
    assert!(entries.iter().all(|e| e["router"] == gw.as_str()));
    // --since: the last minute has it, the last 0 seconds nothing.
    let last = json(&helper, &["net", "log"])["last"].as_u64().unwrap();
    let out = helper.tsimctl(&["net", "log", &gw, "--since", "0"]);
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "{}",
        text(&out)
    );
    let out = helper.tsimctl(&["net", "log", &gw, "--since", "60"]);
    assert!(out.status.success(), "{}", text(&out));
    let text_log = String::from_utf8_lossy(&out.stdout);
    assert!(
        text_log.contains(&format!(
            "{gw} NAT-MASQ-10_1_0_0: IN= OUT=eth0 SRC=10.1.1.1 DST=8.8.8.8"
        )),
        "{text_log}"
    );
    assert!(last >= masq["seq"].as_u64().unwrap());
    // Bad arguments: a router not in the network, a limit out of range.
    let out = helper.tsimctl(&["net", "log", &helper.ns("nosuch")]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("error[not_found]"),
        "{}",
        text(&out)
    );
    let out = helper.tsimctl(&["net", "log", "-n", "0"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("error[invalid_argument]"),
        "{}",
        text(&out)
    );

    // The readers go with their routers: no descriptor (and so no namespace) is kept.
    json(&helper, &["net", "teardown"]);
    // An aborted reader's socket closes when the runtime drops its task, and a pipe of a
    // child just reaped may still be open: wait for the count to settle.
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut fds_after = open_fds(helper.pid());
    while fds_after != fds_before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        fds_after = open_fds(helper.pid());
    }
    assert_eq!(fds_after, fds_before, "descriptors left open");
    let gone = json(&helper, &["net", "log"]);
    assert_eq!(gone["entries"], serde_json::json!([]), "{gone}");
    // After a restart the routers are read again from the start.
    json(&helper, &setup);
    json(
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
    let mut helper = helper;
    helper.terminate();
    helper.restart();
    helper.wait_ready();
    let before = json(&helper, &["net", "log"])["last"].as_u64().unwrap();
    assert_eq!(before, 0, "the sequence starts again");
    let ping = json(
        &helper,
        &[
            "probe", "ping", "--from", &gw, "--src", "10.1.1.1", "8.8.8.8", "-c", "1",
        ],
    );
    assert_eq!(ping["received"], 1, "{ping}");
    wait_for(&helper, &gw, "NAT-MASQ-10_1_0_0: ");
}
