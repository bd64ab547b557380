//! `tsimctl` against the real helper: output, `--json`, `batch`, and the exit statuses of
//! DESIGN.md §5 (0 ok, 1 operation failed, 2 usage error, 3 cannot connect).

use std::io::Write;
use std::process::{Command, Output, Stdio};

use tsim_tests::{TestHelper, binary, ip_netns_list, require_priv};

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not one JSON document ({e}): {}", stdout(out)))
}

#[test]
fn ns_commands_and_json_output() {
    require_priv!();
    let helper = TestHelper::start();
    let a = helper.ns("a");
    let out = helper.tsimctl(&["ns", "add", &a, "--tag", "job-9"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), format!("created namespace {a}"));
    assert!(ip_netns_list().contains(&a));

    let out = helper.tsimctl(&["--json", "ns", "list"]);
    let list = json(&out);
    assert_eq!(list[0]["name"], a.as_str());
    assert_eq!(list[0]["tag"], "job-9");
    assert_eq!(list[0]["owner_uid"], 0);

    let out = helper.tsimctl(&["ns", "list"]);
    assert!(
        stdout(&out).contains(&a) && stdout(&out).contains("job-9"),
        "{}",
        stdout(&out)
    );

    // Failure: exit 1, the code and message on stderr, and still one JSON document.
    let out = helper.tsimctl(&["--json", "ns", "add", &a]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("error[already_exists]"),
        "{}",
        stderr(&out)
    );
    assert_eq!(json(&out)["error"]["code"], "already_exists");

    let out = helper.tsimctl(&["ns", "del", &a]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = helper.tsimctl(&["ns", "del", &a]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not_found"), "{}", stderr(&out));
    assert_eq!(
        stdout(&helper.tsimctl(&["ns", "list"])).trim(),
        "no namespaces"
    );
}

#[test]
fn ping_and_status() {
    require_priv!();
    let helper = TestHelper::start();
    let out = helper.tsimctl(&["ping", "--count", "50"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("50 round trips") && stdout(&out).contains("median"),
        "{}",
        stdout(&out)
    );
    let report = json(&helper.tsimctl(&["--json", "ping", "-c", "20"]));
    assert_eq!(report["count"], 20);
    assert!(report["min_us"].as_f64().unwrap() <= report["median_us"].as_f64().unwrap());
    assert!(report["median_us"].as_f64().unwrap() <= report["p99_us"].as_f64().unwrap());

    let status = json(&helper.tsimctl(&["--json", "status"]));
    assert_eq!(status["helper_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(status["pid"], helper.pid());
    let ops = status["ops"].as_array().unwrap();
    assert!(
        ops.iter().any(|o| o["op"] == "ping" && o["count"] == 70),
        "{ops:?}"
    );
    let text = stdout(&helper.tsimctl(&["status"]));
    assert!(text.contains("p99 µs") && text.contains("ping"), "{text}");
}

#[test]
fn batch_from_a_file_and_stdin() {
    require_priv!();
    let helper = TestHelper::start();
    let (a, b) = (helper.ns("a"), helper.ns("b"));
    let file = helper.dir.path().join("batch.json");
    let ops = serde_json::json!([{"op": "ns_create", "name": a}, {"op": "ns_create", "name": b}, {"op": "ns_list"}]);
    std::fs::write(&file, ops.to_string()).unwrap();
    let out = helper.tsimctl(&["--json", "batch", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let results = json(&out)["results"].clone();
    assert_eq!(results.as_array().unwrap().len(), 3);
    assert_eq!(results[2]["namespaces"].as_array().unwrap().len(), 2);

    // From stdin, atomic, failing at op 1: the deletion of a is undone.
    let ops = serde_json::json!([{"op": "ns_delete", "name": a}, {"op": "ns_delete", "name": helper.ns("nope")}]);
    let mut child = Command::new(binary("tsimctl"))
        .arg("--socket")
        .arg(&helper.socket)
        .args(["batch", "--atomic", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(ops.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("(op 1)"), "{}", stderr(&out));
    assert!(ip_netns_list().contains(&a));

    // An invalid batch file is a usage error that names the operation.
    std::fs::write(&file, r#"[{"op":"ping"},{"op":"ns_create","name":"../x"}]"#).unwrap();
    let out = helper.tsimctl(&["batch", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("op 1") && stderr(&out).contains("../x"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn exit_statuses_for_usage_and_connection_errors() {
    let tsimctl = binary("tsimctl");
    let out = Command::new(&tsimctl)
        .args(["--socket", "/nonexistent/x.sock", "ping"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("Cannot connect to /nonexistent/x.sock"),
        "{}",
        stderr(&out)
    );

    let out = Command::new(&tsimctl)
        .env("TSIM_SOCKET", "/nonexistent/env.sock")
        .arg("ping")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("/nonexistent/env.sock"),
        "{}",
        stderr(&out)
    );

    let out = Command::new(&tsimctl)
        .args(["ns", "add", "../x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("invalid namespace name"),
        "{}",
        stderr(&out)
    );

    let out = Command::new(&tsimctl)
        .args(["frobnicate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));

    let out = Command::new(&tsimctl).arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(stdout(&out).contains("Exit status"), "{}", stdout(&out));

    let out = Command::new(binary("tsim-helper"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(stdout(&out).contains("--socket-mode") && stdout(&out).contains("--idle-exit"));
}
