//! A hostile local user and a bad day: firewall payloads that try to reach beyond their
//! namespace, symbolic links planted in the state directory, a state directory that cannot be
//! written or is full, stalled and greedy connections, and ten thousand connections opened and
//! dropped. Each case fails cleanly, leaves nothing half-done, and the helper keeps serving.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tsim_protocol::{ErrorCode, ServerMessage, WireError};
use tsim_tests::{
    HelperOptions, NETNS_DIR, RawConn, TestHelper, ip_netns_list, require_priv, text,
};

/// Sends `ops` as request `id` on `raw` and returns its error (panics on success).
fn failure(raw: &mut RawConn, id: u64, ops: serde_json::Value) -> WireError {
    raw.send(&serde_json::json!({"type": "request", "id": id, "ops": ops}));
    match raw.recv() {
        Some(ServerMessage::Response(r)) if r.id == id => {
            r.error.unwrap_or_else(|| panic!("request {id} succeeded"))
        }
        other => panic!("expected the response to {id}, got {other:?}"),
    }
}

/// Sends `ops` as request `id` on `raw` and expects success.
fn success(raw: &mut RawConn, id: u64, ops: serde_json::Value) {
    raw.send(&serde_json::json!({"type": "request", "id": id, "ops": ops}));
    match raw.recv() {
        Some(ServerMessage::Response(r)) if r.id == id => {
            assert!(r.error.is_none(), "request {id} failed: {:?}", r.error)
        }
        other => panic!("expected the response to {id}, got {other:?}"),
    }
}

/// The helper's error in a failed request.
fn remote(e: tsim_client::ClientError) -> WireError {
    match e {
        tsim_client::ClientError::Remote { error, .. } => error,
        other => panic!("expected a helper error, got {other:?}"),
    }
}

/// `iptables-save` of the namespace we run in, without counters and comments (which change).
fn root_firewall() -> String {
    let out = Command::new("iptables-save")
        .output()
        .expect("iptables-save");
    text(&out)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| match l.find(" [") {
            Some(at) if l.starts_with(':') => &l[..at],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn firewall_payloads_cannot_reach_beyond_their_namespace() {
    require_priv!();
    let helper = TestHelper::start();
    let ns = helper.ns("fw");
    let mut raw = RawConn::handshake(&helper.socket);
    success(
        &mut raw,
        1,
        serde_json::json!([{"op": "ns_create", "name": ns}]),
    );

    // A program the modprobe option would run, and files ipset would write.
    let marker = helper.dir.path().join("ran");
    let program = helper.dir.path().join("evil.sh");
    std::fs::write(&program, format!("#!/bin/sh\ntouch {}\n", marker.display())).unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let p = program.display();
    let iptables = [
        format!("*filter\n-A INPUT -M {p} -m nosuchmatch -j ACCEPT\nCOMMIT\n"),
        format!("*raw\n-A PREROUTING --modprobe={p} -j ACCEPT\nCOMMIT\n"),
        format!("*filter\n-A INPUT --modp {p} -j NOSUCHTARGET\nCOMMIT\n"),
        format!("*filter\n-A INPUT -vnM{p} -j ACCEPT\nCOMMIT\n"),
        format!("*filter\n-A INPUT \"x\"-M {p}\nCOMMIT\n"),
        format!("*filter\n-A INPUT \"-\\M {p}\"\nCOMMIT\n"),
        "*filter\n-A INPUT -m bpf --object-pinned /sys/fs/bpf/x -j DROP\nCOMMIT\n".to_owned(),
        "*filter\n-A INPUT -j IDLETIMER --timeout 1 --label tsim\nCOMMIT\n".to_owned(),
    ];
    for (i, payload) in iptables.iter().enumerate() {
        let ops = serde_json::json!([{"op": "ping"}, {"op": "iptables_restore", "ns": ns, "payload": payload}]);
        let e = failure(&mut raw, 10 + i as u64, ops);
        assert_eq!(
            (e.code, e.op_index),
            (ErrorCode::NotAllowed, Some(1)),
            "{payload}: {e:?}"
        );
        assert!(e.message.contains("line 2"), "{}", e.message);
    }
    let written = helper.dir.path().join("written");
    let w = written.display();
    let ipset = [
        format!("create s hash:ip\nsave -file {w}\n"),
        format!("create s hash:ip\nlist -file {w}\n"),
        format!("-file {w} save\n"),
        format!("add s 10.0.0.1 \"-file\" {w}\n"),
    ];
    for (i, payload) in ipset.iter().enumerate() {
        let ops = serde_json::json!([{"op": "ipset_restore", "ns": ns, "payload": payload}]);
        let e = failure(&mut raw, 20 + i as u64, ops);
        assert_eq!(
            (e.code, e.op_index),
            (ErrorCode::NotAllowed, Some(0)),
            "{payload}: {e:?}"
        );
    }
    assert!(!marker.exists(), "the modprobe program ran");
    assert!(!written.exists(), "ipset wrote a file of the machine");
    // The threat is real: the tool itself, run by hand in the same namespace, writes the file.
    let mut by_hand = Command::new("ip")
        .args(["netns", "exec", &ns, "ipset", "restore"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    by_hand
        .stdin
        .take()
        .unwrap()
        .write_all(ipset[0].replace("create s", "create s2").as_bytes())
        .unwrap();
    assert!(by_hand.wait().unwrap().success());
    assert!(
        written.exists(),
        "ipset save -file did not write: the check above proves nothing"
    );

    // A real payload changes the namespace's firewall and nothing else.
    let before = root_firewall();
    let payload = "*filter\n:INPUT DROP [0:0]\n-A INPUT -s 10.66.0.0/16 -j ACCEPT\nCOMMIT\n*nat\n-A POSTROUTING -j MASQUERADE\nCOMMIT\n";
    success(
        &mut raw,
        30,
        serde_json::json!([{"op": "iptables_restore", "ns": ns, "payload": payload}]),
    );
    let inside = text(
        &Command::new("ip")
            .args(["netns", "exec", &ns, "iptables-save"])
            .output()
            .unwrap(),
    );
    assert!(
        inside.contains("-A INPUT -s 10.66.0.0/16 -j ACCEPT"),
        "{inside}"
    );
    assert!(inside.contains(":INPUT DROP"), "{inside}");
    assert_eq!(
        root_firewall(),
        before,
        "the helper's own namespace changed"
    );
    success(&mut raw, 31, serde_json::json!([{"op": "ping"}]));
}

#[test]
fn symbolic_links_planted_in_the_state_directory_are_not_followed() {
    require_priv!();
    let mut helper = TestHelper::start();
    let (a, b) = (helper.ns("a"), helper.ns("b"));
    let client = helper.client();
    client.ns_create(a.parse().unwrap(), None).unwrap();
    drop(client);
    helper.terminate();

    // A record replaced by a link to a copy of itself, elsewhere: not read.
    let ns_dir = helper.state.join("ns");
    let record = ns_dir.join(format!("{a}.json"));
    let elsewhere = helper.dir.path().join("record-copy.json");
    std::fs::copy(&record, &elsewhere).unwrap();
    std::fs::remove_file(&record).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &record).unwrap();
    helper.restart();
    let client = helper.client();
    let names: Vec<String> = client
        .ns_list()
        .unwrap()
        .into_iter()
        .map(|n| n.name.to_string())
        .collect();
    assert!(
        !names.contains(&a),
        "a record read through a link: {names:?}"
    );
    assert!(
        helper.log().contains("symbolic link"),
        "the refused record is not logged:\n{}",
        helper.log()
    );

    // A link at the temporary name of a record being written: replaced, not written through.
    let victim = helper.dir.path().join("victim");
    std::fs::write(&victim, "keep me").unwrap();
    std::os::unix::fs::symlink(&victim, ns_dir.join(format!(".{b}.json.tmp"))).unwrap();
    client.ns_create(b.parse().unwrap(), None).unwrap();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
    assert!(
        !std::fs::symlink_metadata(ns_dir.join(format!("{b}.json")))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    client.ns_delete(b.parse().unwrap()).unwrap();

    // A link in place of the network record: the helper refuses to start, and says why.
    drop(client);
    helper.terminate();
    std::os::unix::fs::symlink(&victim, helper.state.join("net.json")).unwrap();
    let out = Command::new(tsim_tests::binary("tsim-helper"))
        .arg("--socket")
        .arg(helper.dir.path().join("other.sock"))
        .args(helper.args())
        .output()
        .unwrap();
    let err = text(&out);
    if out.status.success() {
        panic!("the helper started with a linked network record: {err}");
    }
    assert!(
        err.contains("net.json") && err.contains("symbolic link"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
}

/// The namespaces of `helper` in the kernel.
fn kernel_names(helper: &TestHelper) -> Vec<String> {
    ip_netns_list()
        .into_iter()
        .filter(|n| n.starts_with(&helper.prefix) && !n.ends_with("hidden"))
        .collect()
}

/// The managed namespaces `helper` lists.
fn listed_names(helper: &TestHelper) -> Vec<String> {
    let mut names: Vec<String> = helper
        .client()
        .ns_list()
        .unwrap()
        .into_iter()
        .map(|n| n.name.to_string())
        .filter(|n| !n.ends_with("hidden"))
        .collect();
    names.sort();
    names
}

#[test]
fn an_unwritable_state_directory_fails_requests_cleanly() {
    require_priv!();
    let helper = TestHelper::start();
    let client = helper.client();
    let (a, b) = (helper.ns("a"), helper.ns("b"));
    client.ns_create(a.parse().unwrap(), None).unwrap();
    let ns_dir = helper.state.join("ns");
    std::fs::set_permissions(&ns_dir, std::fs::Permissions::from_mode(0o500)).unwrap();
    let _restore = Chmod(ns_dir.clone(), 0o700);

    let e = client.ns_create(b.parse().unwrap(), None).unwrap_err();
    let e = remote(e);
    assert_eq!(e.op_index, Some(0), "{e:?}");
    assert!(
        e.message.contains(ns_dir.to_str().unwrap()),
        "{}",
        e.message
    );
    assert!(!Path::new(NETNS_DIR).join(&b).exists());
    let e = client.ns_delete(a.parse().unwrap()).unwrap_err();
    let e = remote(e);
    assert!(
        e.message.contains(ns_dir.to_str().unwrap()),
        "{}",
        e.message
    );
    // Registry and kernel agree, whatever failed.
    let mut kernel = kernel_names(&helper);
    kernel.sort();
    assert_eq!(listed_names(&helper), kernel);

    std::fs::set_permissions(&ns_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    client.ns_create(b.parse().unwrap(), None).unwrap();
    for n in [&a, &b] {
        if listed_names(&helper).contains(n) {
            client.ns_delete(n.parse().unwrap()).unwrap();
        }
    }
    assert!(
        kernel_names(&helper).is_empty(),
        "{:?}",
        kernel_names(&helper)
    );
    client.ping().unwrap();
}

/// Puts a directory's mode back on drop.
struct Chmod(PathBuf, u32);

impl Drop for Chmod {
    fn drop(&mut self) {
        let _ = std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(self.1));
    }
}

/// Unmounts a tmpfs on drop.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_state_directory_fails_requests_cleanly() {
    require_priv!();
    let mut helper = TestHelper::start();
    helper.terminate();
    // The state directory becomes a small file system of its own.
    std::fs::remove_dir_all(&helper.state).unwrap();
    std::fs::create_dir(&helper.state).unwrap();
    let status = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=256k,mode=0755",
            "tsim-test-state",
        ])
        .arg(&helper.state)
        .status()
        .unwrap();
    assert!(status.success(), "mount tmpfs");
    let _mounted = Mounted(helper.state.clone());
    helper.restart();
    let client = helper.client();
    let (a, b) = (helper.ns("a"), helper.ns("b"));
    client.ns_create(a.parse().unwrap(), None).unwrap();

    // Fill it.
    let filler = helper.state.join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let block = vec![0u8; 4096];
    while file.write_all(&block).is_ok() {}
    drop(file);

    let e = client.ns_create(b.parse().unwrap(), None).unwrap_err();
    let e = remote(e);
    assert_eq!(e.op_index, Some(0), "{e:?}");
    assert!(
        e.message.contains("No space left on device"),
        "{}",
        e.message
    );
    assert!(!Path::new(NETNS_DIR).join(&b).exists());
    let mut kernel = kernel_names(&helper);
    kernel.sort();
    assert_eq!(listed_names(&helper), kernel);

    std::fs::remove_file(&filler).unwrap();
    client.ns_create(b.parse().unwrap(), None).unwrap();
    client.ns_delete(a.parse().unwrap()).unwrap();
    client.ns_delete(b.parse().unwrap()).unwrap();
    assert!(kernel_names(&helper).is_empty());
    drop(client);
    helper.terminate();
}

#[test]
fn stalled_and_greedy_connections_do_not_hold_up_others() {
    require_priv!();
    let helper = TestHelper::start_with(HelperOptions {
        args: ["--max-conn-bytes", "1048576"].map(String::from).to_vec(),
        ..HelperOptions::default()
    });
    let ns = helper.ns("p");
    let other = helper.client();
    other.ns_create(ns.parse().unwrap(), None).unwrap();

    // Half a frame, then nothing.
    let mut half = RawConn::handshake(&helper.socket);
    half.send_bytes(&[0, 0, 0x10, 0, 0x83, 0xa4]);
    // A reader that never reads, sending pings and reads with large answers.
    let deaf = UnixStream::connect(&helper.socket).unwrap();
    let writer = {
        let mut w = deaf.try_clone().unwrap();
        std::thread::spawn(move || {
            let hello = serde_json::json!({"type": "hello", "protocol": [1, 1], "client": "deaf"});
            let mut send = |v: serde_json::Value| w.write_all(&frame(&v)).is_ok();
            send(hello);
            for id in 0..20_000u64 {
                let op = if id % 2 == 0 { "status" } else { "ns_list" };
                if !send(serde_json::json!({"type": "request", "id": id, "ops": [{"op": op}]})) {
                    break;
                }
            }
        })
    };
    // Everyone else is served meanwhile.
    for _ in 0..200 {
        other.ping().unwrap();
    }
    other.ns_list().unwrap();

    // Greedy: three slow requests of 600 kB each; with --max-conn-bytes 1 MiB, one runs at a
    // time and the others wait unread.
    let mut greedy = RawConn::handshake(&helper.socket);
    let pad = "x".repeat(600_000);
    for id in 1..=3u64 {
        greedy.send(&serde_json::json!({"type": "request", "id": id, "pad": pad,
            "ops": [{"op": "probe_ping", "ns": ns, "dst": "127.0.0.1", "count": 4, "interval_ms": 300}]}));
    }
    let mut most = 0;
    let mut answered = Vec::new();
    greedy.set_timeout(Duration::from_millis(50));
    let deadline = Instant::now() + Duration::from_secs(30);
    while answered.len() < 3 {
        assert!(
            Instant::now() < deadline,
            "the greedy requests did not finish"
        );
        // Running now, besides this status request itself.
        most = most.max(other.status().unwrap().in_flight - 1);
        if let Some(ServerMessage::Response(r)) = greedy.recv() {
            assert!(r.error.is_none(), "{r:?}");
            answered.push(r.id);
        }
    }
    assert_eq!(answered, [1, 2, 3]);
    assert_eq!(most, 1, "more than one greedy request ran at once");

    other.ping().unwrap();
    drop(half);
    let _ = deaf.shutdown(std::net::Shutdown::Both);
    writer.join().unwrap();
    drop(deaf);
    other.ns_delete(ns.parse().unwrap()).unwrap();
}

/// A whole frame (header and body) for `message`.
fn frame(message: &serde_json::Value) -> Vec<u8> {
    tsim_protocol::frame::encode_frame(message, u32::MAX).unwrap()
}

/// A process's resident memory (VmRSS) and open descriptors.
fn footprint(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    (rss_kb, fds)
}

#[test]
fn ten_thousand_connections_opened_and_dropped() {
    require_priv!();
    let helper = TestHelper::start();
    let client = helper.client();
    client.ping().unwrap();
    let (_, fds_before) = footprint(helper.pid());
    let hello = frame(&serde_json::json!({"type": "hello", "protocol": [1, 1], "client": "drop"}));
    for i in 0..10_000u32 {
        let mut s = UnixStream::connect(&helper.socket).unwrap();
        match i % 4 {
            0 => {}
            1 => {
                let _ = s.write_all(&hello);
            }
            2 => {
                let _ = s.write_all(&hello[..hello.len() / 2]);
            }
            _ => {
                let _ = s.write_all(&hello);
                let _ = s.write_all(&[0, 0, 0, 9, 0x81]);
            }
        }
        // Dropped at once, most before the helper has read anything.
    }
    // Every connection is let go: only ours remains.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = client.status().unwrap();
        if status.connections == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} connections remain",
            status.connections
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (rss_kb, fds_after) = footprint(helper.pid());
    assert!(
        fds_after <= fds_before + 2,
        "descriptors: {fds_before} -> {fds_after}"
    );
    assert!(rss_kb < 200 * 1024, "the helper holds {rss_kb} kB");
    client.ping().unwrap();
    // Deeply nested MessagePack inside a well-formed frame: refused, connection kept.
    let mut raw = RawConn::handshake(&helper.socket);
    let mut body = vec![0x82, 0xa4];
    body.extend_from_slice(b"type");
    body.extend_from_slice(&[0xa7]);
    body.extend_from_slice(b"request");
    body.extend_from_slice(&[0xa3]);
    body.extend_from_slice(b"ops");
    body.extend(std::iter::repeat_n(0x91u8, 100_000));
    body.push(0xc0);
    raw.send_body(&body);
    match raw.recv() {
        Some(ServerMessage::Error(e)) => assert_eq!(e.code, ErrorCode::BadRequest, "{e:?}"),
        Some(ServerMessage::Response(r)) => {
            assert!(r.error.is_some(), "{r:?}")
        }
        other => panic!("expected an error, got {other:?}"),
    }
    success(&mut raw, 5, serde_json::json!([{"op": "ping"}]));
}

/// Sends `ops` as an atomic request `id` on `raw` and returns its error (panics on success or
/// when no answer comes).
fn atomic_failure(raw: &mut RawConn, id: u64, ops: serde_json::Value) -> WireError {
    raw.send(&serde_json::json!({"type": "request", "id": id, "ops": ops, "atomic": true}));
    match raw.recv() {
        Some(ServerMessage::Response(r)) if r.id == id => {
            r.error.unwrap_or_else(|| panic!("request {id} succeeded"))
        }
        other => panic!("expected the response to {id}, got {other:?}"),
    }
}

/// `head` padded with `pad` to exactly `len` bytes.
fn padded(head: &str, pad: char, len: usize) -> String {
    let mut line = head.to_owned();
    while line.len() < len {
        line.push(pad);
    }
    assert_eq!(line.len(), len);
    line
}

/// Finding 1 of issue 14, exactly: a line one byte longer than the tool's `fgets` buffer
/// keeps (1023 bytes for `ipset restore`, 10239 for `iptables-restore`) is two lines to the
/// tool, and its second half (`-file PATH save s`, `-A INPUT -j IDLETIMER`, `-M PROGRAM`) is
/// refused by the screen, and nothing is written, created, run or installed.
#[test]
fn lines_longer_than_the_tools_buffers_are_refused() {
    require_priv!();
    let helper = TestHelper::start();
    let ns = helper.ns("long");
    let mut raw = RawConn::handshake(&helper.socket);
    success(
        &mut raw,
        1,
        serde_json::json!([{"op": "ns_create", "name": ns}]),
    );

    // A root-only directory holding a root-owned 0644 file, and a path that does not exist.
    let vault = helper.dir.path().join("vault");
    std::fs::create_dir(&vault).unwrap();
    std::fs::set_permissions(&vault, std::fs::Permissions::from_mode(0o700)).unwrap();
    let existing = vault.join("passwd");
    std::fs::write(&existing, "root:x:0:0:root:/root:/bin/bash\n").unwrap();
    std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o644)).unwrap();
    let created = vault.join("new");

    for (i, target) in [&existing, &created].into_iter().enumerate() {
        let tail = format!("-file {} save s\n", target.display());
        // An allowed `add ... comment "..."` padded with spaces to exactly 1023 bytes (ipset
        // allows comments of 255 bytes), its closing quote glued to the tail.
        let add = padded("add s", ' ', 984) + " 10.1.2.3 comment \"$(touch /tmp/pwned)\"";
        // An allowed `flush` padded with spaces to 1023 bytes, its set name glued to the tail.
        let flush = padded("flush", ' ', 1022) + "s";
        for line in [add, flush] {
            let payload = format!("create s hash:ip comment -exist\n{line}{tail}");
            let ops = serde_json::json!([{"op": "ipset_restore", "ns": ns, "payload": payload}]);
            let e = failure(&mut raw, 10 + i as u64, ops);
            assert!(
                matches!(e.code, ErrorCode::InvalidArgument | ErrorCode::NotAllowed),
                "{e:?}"
            );
            assert_eq!(e.op_index, Some(0), "{e:?}");
            assert!(e.message.contains("line 2"), "{}", e.message);
        }
    }
    assert_eq!(
        std::fs::read_to_string(&existing).unwrap(),
        "root:x:0:0:root:/root:/bin/bash\n",
        "ipset overwrote a root-owned file"
    );
    assert!(
        !created.exists(),
        "ipset created a file in a root-only directory"
    );

    // iptables-restore: a comment line padded to 10239 bytes, glued to a rule the screen
    // refuses.
    let marker = helper.dir.path().join("ran");
    let program = helper.dir.path().join("evil.sh");
    std::fs::write(&program, format!("#!/bin/sh\ntouch {}\n", marker.display())).unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let label = format!("{}idle", helper.ns(""));
    let timer = Path::new("/sys/class/xt_idletimer/timers").join(&label);
    let comment = padded("# Generated by iptables-save v1.8.9", ' ', 10239);
    let quoted = padded("-A INPUT -m comment --comment \"", 'x', 10238) + "\"";
    for (i, rule) in [
        format!("-A INPUT -j IDLETIMER --timeout 60 --label {label}"),
        format!("-A INPUT -M {} -m nosuchmatch -j ACCEPT", program.display()),
    ]
    .into_iter()
    .enumerate()
    {
        for head in [&comment, &quoted] {
            let payload = format!("*filter\n{head}{rule}\nCOMMIT\n");
            let ops = serde_json::json!([{"op": "iptables_restore", "ns": ns, "payload": payload}]);
            let e = failure(&mut raw, 20 + i as u64, ops);
            assert!(
                matches!(e.code, ErrorCode::InvalidArgument | ErrorCode::NotAllowed),
                "{e:?}"
            );
            assert!(e.message.contains("line 2"), "{}", e.message);
        }
    }
    assert!(!timer.exists(), "an IDLETIMER timer was created in sysfs");
    assert!(!marker.exists(), "the modprobe program ran");
    let inside = text(
        &Command::new("ip")
            .args(["netns", "exec", &ns, "iptables-save"])
            .output()
            .unwrap(),
    );
    assert!(!inside.contains("IDLETIMER"), "{inside}");

    // The longest lines the tools read whole still pass.
    let longest = padded("add s 10.1.2.4 comment \"ok\"", ' ', 1022);
    let payload = format!("create s hash:ip comment -exist\n{longest}\n");
    success(
        &mut raw,
        30,
        serde_json::json!([{"op": "ipset_restore", "ns": ns, "payload": payload}]),
    );
    success(
        &mut raw,
        31,
        serde_json::json!([{"op": "ns_delete", "name": ns}]),
    );
}

/// Finding 2 of issue 14, exactly: an `ipset_restore` payload of one `"` in an atomic request
/// after an `ns_create` gets an answer (no panic, no hang), and leaves nothing `creating`: the
/// name can be created and deleted again.
#[test]
fn a_lone_quote_is_refused_and_leaves_nothing_behind() {
    require_priv!();
    let helper = TestHelper::start();
    let ns = helper.ns("quote");
    let mut raw = RawConn::handshake(&helper.socket);
    let ops = serde_json::json!([
        {"op": "ns_create", "name": ns},
        {"op": "ipset_restore", "ns": ns, "payload": "\""}
    ]);
    let e = atomic_failure(&mut raw, 1, ops);
    assert_eq!(e.op_index, Some(1), "{e:?}");
    assert!(
        matches!(e.code, ErrorCode::InvalidArgument | ErrorCode::NotAllowed),
        "{e:?}"
    );
    assert!(e.message.contains("line 1"), "{}", e.message);
    assert!(
        !ip_netns_list().contains(&ns),
        "the atomic request's namespace was left behind"
    );
    success(
        &mut raw,
        2,
        serde_json::json!([{"op": "ns_create", "name": ns}]),
    );
    success(
        &mut raw,
        3,
        serde_json::json!([{"op": "ns_delete", "name": ns}]),
    );
    success(&mut raw, 4, serde_json::json!([{"op": "ping"}]));
}
