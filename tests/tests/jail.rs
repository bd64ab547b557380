//! The tools' jail, with the payload screen switched off (`--test-unscreened-payloads`, a
//! debug-build switch): `ipset save -file`, `IDLETIMER` and `LED` payloads reach the tools
//! and do nothing outside their namespace; the same payloads without the jail
//! (`--test-no-jail`) do, so the checks cannot pass vacuously. The jail around a test program
//! (`--test-jail-run`) shows it cannot write, create, run a program, reach a pathname socket,
//! signal a process outside, or bind a TCP port. And `status` reports the jail.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tsim_protocol::{ServerMessage, WireError};
use tsim_tests::{HelperOptions, RawConn, TestHelper, binary, require_priv, text};

/// Sends `ops` as request `id` and returns its error, if any.
fn send(raw: &mut RawConn, id: u64, ops: serde_json::Value) -> Option<WireError> {
    raw.send(&serde_json::json!({"type": "request", "id": id, "ops": ops}));
    match raw.recv() {
        Some(ServerMessage::Response(r)) if r.id == id => r.error,
        other => panic!("expected the response to {id}, got {other:?}"),
    }
}

/// A helper with the screen off, jailed or not.
fn unscreened(jailed: bool) -> TestHelper {
    let mut args = vec!["--test-unscreened-payloads".to_owned()];
    if !jailed {
        args.extend(["--test-no-jail".into(), "--allow-unjailed-tools".into()]);
    }
    TestHelper::start_with(HelperOptions {
        args,
        ..HelperOptions::default()
    })
}

/// A root-only directory outside `/tmp` (which the jail hides, and which would make the check
/// below weaker than it looks), removed on drop.
struct RootDir(PathBuf);

impl RootDir {
    fn new(name: &str) -> Self {
        // Not under /tmp, /run, /var/tmp or /dev/shm, which the jail hides (nor under the
        // checkout, which may be there).
        let base = Path::new("/var/cache/tsim-tests");
        std::fs::create_dir_all(base).unwrap();
        let dir = base.join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        Self(dir)
    }
}

impl Drop for RootDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the three `-file` payloads in a fresh namespace of `helper`; returns the existing
/// file's content afterwards and which of the new files exist.
fn ipset_file_attack(helper: &TestHelper, dir: &Path) -> (String, bool, bool) {
    let existing = dir.join("existing");
    std::fs::write(&existing, "root's own content\n").unwrap();
    std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (new_save, new_list) = (dir.join("new-save"), dir.join("new-list"));
    let ns = helper.ns("ipset");
    let mut raw = RawConn::handshake(&helper.socket);
    assert_eq!(
        send(
            &mut raw,
            1,
            serde_json::json!([{"op": "ns_create", "name": ns}])
        ),
        None
    );
    let payloads = [
        format!("create s1 hash:ip\nsave s1 -file {}\n", existing.display()),
        format!("create s2 hash:ip\nsave s2 -file {}\n", new_save.display()),
        format!("create s3 hash:ip\nlist s3 -file {}\n", new_list.display()),
    ];
    for (i, payload) in payloads.iter().enumerate() {
        let e = send(
            &mut raw,
            10 + i as u64,
            serde_json::json!([{"op": "ipset_restore", "ns": ns, "payload": payload}]),
        );
        eprintln!("{payload:?}: {e:?}");
    }
    send(
        &mut raw,
        20,
        serde_json::json!([{"op": "ns_delete", "name": ns}]),
    );
    (
        std::fs::read_to_string(&existing).unwrap(),
        new_save.exists(),
        new_list.exists(),
    )
}

#[test]
fn ipset_cannot_write_files_from_the_jail() {
    require_priv!();
    let dir = RootDir::new("jail-ipset");
    let helper = unscreened(true);
    let (content, saved, listed) = ipset_file_attack(&helper, &dir.0);
    assert_eq!(
        content, "root's own content\n",
        "an existing file was written"
    );
    assert!(!saved && !listed, "a new file was created");
    drop(helper);

    // Without the jail the same payloads do write: the check above means something.
    let helper = unscreened(false);
    let (content, saved, listed) = ipset_file_attack(&helper, &dir.0);
    assert!(content.contains("create s1 hash:ip"), "{content}");
    assert!(saved && listed);
}

fn timer(label: &str) -> PathBuf {
    Path::new("/sys/class/xt_idletimer/timers").join(label)
}

/// Restores an IDLETIMER and a LED rule in a fresh namespace; returns the errors and whether
/// the timer appeared. The namespace is deleted before returning.
fn kernel_object_attack(
    helper: &TestHelper,
    label: &str,
) -> (Option<WireError>, Option<WireError>, bool) {
    let ns = helper.ns("fw");
    let mut raw = RawConn::handshake(&helper.socket);
    assert_eq!(
        send(
            &mut raw,
            1,
            serde_json::json!([{"op": "ns_create", "name": ns}])
        ),
        None
    );
    let idle = format!("*filter\n-A INPUT -j IDLETIMER --timeout 5 --label {label}\nCOMMIT\n");
    let led = format!("*filter\n-A INPUT -j LED --led-trigger-id {label}\nCOMMIT\n");
    let e_idle = send(
        &mut raw,
        2,
        serde_json::json!([{"op": "iptables_restore", "ns": ns, "payload": idle}]),
    );
    let appeared = timer(label).exists();
    let e_led = send(
        &mut raw,
        3,
        serde_json::json!([{"op": "iptables_restore", "ns": ns, "payload": led}]),
    );
    // The timer goes with its rule (a deleted namespace is freed by the kernel later).
    let empty = "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n";
    send(
        &mut raw,
        4,
        serde_json::json!([{"op": "iptables_restore", "ns": ns, "payload": empty},
                           {"op": "ns_delete", "name": ns}]),
    );
    (e_idle, e_led, appeared)
}

#[test]
fn idletimer_and_led_cannot_be_installed_from_the_jail() {
    require_priv!();
    if !Path::new("/sys/class/xt_idletimer").exists() {
        // The class appears with the module; load it the way the kernel would on first use.
        let _ = Command::new("modprobe").arg("xt_IDLETIMER").status();
    }
    let label = format!("tsimtest{}", std::process::id());
    let helper = unscreened(true);
    let (idle, led, appeared) = kernel_object_attack(&helper, &label);
    assert!(
        !appeared,
        "the jailed tool made {}",
        timer(&label).display()
    );
    let idle = idle.expect("the jailed IDLETIMER payload failed");
    assert!(
        idle.message
            .contains("libxt_IDLETIMER.so: cannot open shared object file: Permission denied"),
        "{idle:?}"
    );
    let led = led.expect("the jailed LED payload failed");
    assert!(
        led.message
            .contains("libxt_LED.so: cannot open shared object file: Permission denied"),
        "{led:?}"
    );
    drop(helper);

    // Without the jail: the timer appears (and goes with its rule), and the LED target is
    // parsed and handed to the kernel (which may lack the module: then the kernel refuses it,
    // not the tool's extension loader).
    let helper = unscreened(false);
    let (idle, led, appeared) = kernel_object_attack(&helper, &label);
    assert_eq!(idle, None);
    assert!(
        appeared,
        "IDLETIMER made no timer: the check above proves nothing"
    );
    if let Some(led) = led {
        assert!(
            !led.message.contains("cannot open shared object"),
            "{led:?}"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while timer(&label).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!timer(&label).exists(), "the timer outlived its rule");
}

/// A namespace made for one test, with `lo` up; deleted on drop.
struct TestNs(String);

impl TestNs {
    fn new() -> Self {
        let name = format!("{}probe", tsim_tests::unique_prefix());
        assert!(
            Command::new("ip")
                .args(["netns", "add", &name])
                .status()
                .unwrap()
                .success()
        );
        let up = Command::new("ip")
            .args(["-n", &name, "link", "set", "lo", "up"])
            .status()
            .unwrap();
        assert!(up.success());
        Self(name)
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Runs the probe (the helper binary itself) in the jail, or without it, inside `ns`;
/// returns its output lines.
fn probe(ns: &TestNs, jailed: bool, program: &Path, probes: &[String]) -> String {
    let helper = binary("tsim-helper");
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &ns.0]).arg(&helper);
    if !jailed {
        cmd.arg("--test-no-jail");
    }
    cmd.arg("--test-jail-run")
        .arg(program)
        .arg("--test-jail-probe")
        .args(probes)
        .stdin(Stdio::null());
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_jailed_program_cannot_write_run_connect_or_signal() {
    require_priv!();
    let dir = RootDir::new("jail-probe");
    let ns = TestNs::new();
    // The probe is the helper binary, run from where the jail can see it.
    let bin = RootDir::new("jail-bin");
    std::fs::set_permissions(&bin.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let program = bin.0.join("tsim-helper");
    let copied = Command::new("install")
        .args(["-m", "0755"])
        .arg(binary("tsim-helper"))
        .arg(&program)
        .status()
        .unwrap();
    assert!(copied.success());
    let existing = dir.0.join("existing");
    let socket = dir.0.join("sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let run = |jailed: bool| {
        std::fs::write(&existing, "kept\n").unwrap();
        let _ = std::fs::remove_file(dir.0.join("new"));
        let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
        let probes = [
            format!("write={}", existing.display()),
            format!("create={}", dir.0.join("new").display()),
            "exec=/bin/true".to_owned(),
            format!("unix={}", socket.display()),
            format!("signal={}", sleeper.id()),
            "bind=127.0.0.1:0".to_owned(),
        ];
        let out = probe(&ns, jailed, &program, &probes);
        std::thread::sleep(Duration::from_millis(100));
        let status = sleeper.try_wait().unwrap();
        let alive = status.is_none();
        let _ = sleeper.kill();
        let _ = sleeper.wait();
        (out, alive)
    };

    let (out, alive) = run(true);
    for key in ["write", "create", "exec", "unix", "signal", "bind"] {
        assert!(out.contains(&format!("{key}: denied")), "{key}:\n{out}");
    }
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "kept\n");
    assert!(!dir.0.join("new").exists());
    assert!(alive, "the jailed program killed a process outside");

    // The same program without the jail can do every one of them.
    listener.set_nonblocking(true).unwrap();
    let (out, alive) = run(false);
    for key in ["write", "create", "exec", "unix", "signal", "bind"] {
        assert!(out.contains(&format!("{key}: ok")), "{key}:\n{out}");
    }
    assert!(!alive);
    assert_ne!(std::fs::read_to_string(&existing).unwrap(), "kept\n");
}

#[test]
fn status_reports_the_jail_and_normal_payloads_apply() {
    require_priv!();
    let helper = TestHelper::start();
    let status = helper.client().status().unwrap();
    let jail = status.tool_jail.expect("status names the tools' jail");
    assert!(jail.landlock_abi >= 1, "{jail:?}");
    assert!(!jail.payloads_refused, "{jail:?}");
    let out = helper.tsimctl(&["status"]);
    assert!(text(&out).contains("Landlock"), "{}", text(&out));

    // A normal payload with a set match (which needs CAP_NET_RAW in the tool) still applies.
    let ns = helper.ns("ok");
    let mut raw = RawConn::handshake(&helper.socket);
    let ops = serde_json::json!([
        {"op": "ns_create", "name": ns},
        {"op": "ipset_restore", "ns": ns, "payload": "create allowed hash:net\nadd allowed 10.1.0.0/16\n"},
        {"op": "iptables_restore", "ns": ns, "payload": "*filter\n:INPUT DROP [0:0]\n-A INPUT -m set --match-set allowed src -p tcp --dport 22 -j ACCEPT\n-A INPUT -m conntrack --ctstate ESTABLISHED -j ACCEPT\nCOMMIT\n"},
        {"op": "iptables_save", "ns": ns},
    ]);
    assert_eq!(send(&mut raw, 1, ops), None);
    let saved = text(
        &Command::new("ip")
            .args(["netns", "exec", &ns, "iptables-save"])
            .output()
            .unwrap(),
    );
    assert!(saved.contains("--match-set allowed src"), "{saved}");
    send(
        &mut raw,
        2,
        serde_json::json!([{"op": "ns_delete", "name": ns}]),
    );
}
