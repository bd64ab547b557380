//! Pipelining, concurrency, the connection limit, idle exit, graceful shutdown, socket
//! activation and socket-path safety.

use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tsim_client::{Client, RequestOptions};
use tsim_protocol::ops::Ping;
use tsim_protocol::{ErrorCode, Op, ServerMessage};
use tsim_tests::{HelperOptions, RawConn, TestHelper, binary, require_priv, wait_timeout};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_thousand_pipelined_requests_on_one_connection() {
    require_priv!();
    let helper = TestHelper::start();
    runtime().block_on(async {
        let client = Client::connect(&helper.socket, "pipeline").await.unwrap();
        // Send all 1000 before reading any answer.
        let mut pending = Vec::new();
        for i in 0..1000u32 {
            let delay = (i % 10 == 0).then_some(i % 7);
            let op = Op::Ping(Ping { delay_ms: delay });
            pending.push(
                client
                    .start(vec![op], RequestOptions::default())
                    .await
                    .unwrap(),
            );
        }
        let ids: Vec<u64> = pending.iter().map(|p| p.id).collect();
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 1000);
        for p in pending {
            assert_eq!(p.wait().await.unwrap().len(), 1);
        }
    });
}

#[test]
fn answers_come_back_out_of_order() {
    require_priv!();
    let helper = TestHelper::start();
    let mut raw = RawConn::handshake(&helper.socket);
    raw.send(
        &serde_json::json!({"type": "request", "id": 1, "ops": [{"op": "ping", "delay_ms": 300}]}),
    );
    raw.send(&serde_json::json!({"type": "request", "id": 2, "ops": [{"op": "ping"}]}));
    let first = raw.recv();
    let second = raw.recv();
    assert!(
        matches!(&first, Some(ServerMessage::Response(r)) if r.id == 2),
        "{first:?}"
    );
    assert!(
        matches!(&second, Some(ServerMessage::Response(r)) if r.id == 1),
        "{second:?}"
    );
    // A request id that is in flight cannot be reused.
    raw.send(
        &serde_json::json!({"type": "request", "id": 3, "ops": [{"op": "ping", "delay_ms": 300}]}),
    );
    raw.send(&serde_json::json!({"type": "request", "id": 3, "ops": [{"op": "ping"}]}));
    match raw.recv() {
        Some(ServerMessage::Error(e)) => assert!(e.message.contains("id 3"), "{}", e.message),
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(raw.recv(), Some(ServerMessage::Response(r)) if r.id == 3 && r.error.is_none())
    );
}

#[test]
fn thirty_two_concurrent_connections() {
    require_priv!();
    let helper = TestHelper::start();
    let socket = Arc::new(helper.socket.clone());
    runtime().block_on(async {
        let mut tasks = Vec::new();
        for i in 0..32 {
            let socket = Arc::clone(&socket);
            tasks.push(tokio::spawn(async move {
                let client = Client::connect(&*socket, &format!("c{i}")).await.unwrap();
                for _ in 0..100 {
                    client.ping().await.unwrap();
                }
                client.status().await.unwrap().connections
            }));
        }
        let mut max_seen = 0;
        for t in tasks {
            max_seen = max_seen.max(t.await.unwrap());
        }
        assert!(max_seen >= 1);
    });
    let status = helper.client().status().unwrap();
    let pings = status.ops.iter().find(|o| o.op == "ping").unwrap();
    assert_eq!((pings.count, pings.errors), (3200, 0));
}

#[test]
fn over_the_connection_limit_is_busy() {
    require_priv!();
    let helper = TestHelper::start_with(HelperOptions {
        args: vec!["--max-connections".into(), "2".into()],
        ..Default::default()
    });
    let a = helper.client();
    let b = helper.client();
    let err = tsim_client::BlockingClient::connect(&helper.socket, "third").unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Busy), "{err:?}");
    drop(a);
    // The slot is freed when the connection closes.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match tsim_client::BlockingClient::connect(&helper.socket, "third") {
            Ok(c) => {
                c.ping().unwrap();
                break;
            }
            Err(e) if e.code() == Some(ErrorCode::Busy) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    b.ping().unwrap();
}

#[test]
fn sigterm_finishes_running_requests_and_exits_zero() {
    require_priv!();
    let mut helper = TestHelper::start();
    let client = helper.client();
    let pending = client
        .start(
            vec![Op::Ping(Ping {
                delay_ms: Some(500),
            })],
            RequestOptions::default(),
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let pid = helper.pid();
    let waiter = std::thread::spawn(move || client.wait(pending).map(|r| r.len()));
    tsim_tests::signal(pid, nix::sys::signal::Signal::SIGTERM);
    assert_eq!(
        waiter.join().unwrap().unwrap(),
        1,
        "the running request must be answered"
    );
    let status = helper.terminate_already_signalled();
    assert!(status.success(), "{status}");
    assert!(
        !helper.socket.exists(),
        "a socket the helper bound is removed on exit"
    );
}

#[test]
fn sigterm_cancels_requests_after_the_grace_period() {
    require_priv!();
    let mut helper = TestHelper::start_with(HelperOptions {
        args: vec!["--shutdown-grace".into(), "0".into()],
        ..Default::default()
    });
    let client = helper.client();
    let pending = client
        .start(
            vec![Op::Ping(Ping {
                delay_ms: Some(30_000),
            })],
            RequestOptions::default(),
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let status = helper.terminate();
    assert!(status.success(), "{status}");
    let err = client.wait(pending).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Cancelled), "{err:?}");
}

#[test]
fn idle_exit_waits_for_connections_to_close() {
    require_priv!();
    let mut helper = TestHelper::start_with(HelperOptions {
        args: vec!["--idle-exit".into(), "1".into()],
        ..Default::default()
    });
    let client = helper.client();
    // Connected: it stays up well past the idle time.
    assert!(helper.wait_exit(Duration::from_millis(2500)).is_none());
    client.ping().unwrap();
    drop(client);
    let status = helper
        .wait_exit(Duration::from_secs(20))
        .expect("exits when idle");
    assert!(status.success(), "{status}");
}

#[test]
fn socket_activation_serves_and_never_unlinks() {
    require_priv!();
    let helper = TestHelper::start(); // for its directories and cleanup guard
    let socket = helper.dir.path().join("activated.sock");
    let mut child = Command::new("systemd-socket-activate")
        .arg("-l")
        .arg(&socket)
        .arg(binary("tsim-helper"))
        .args(["--socket", "/nonexistent/ignored.sock"])
        .args([
            "--state-dir",
            &helper.dir.path().join("act-state").display().to_string(),
        ])
        .args(["--group", "0", "--log", "text"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("systemd-socket-activate (package systemd) must be installed");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "no socket");
        std::thread::sleep(Duration::from_millis(10));
    }
    let client = tsim_client::BlockingClient::connect(&socket, "activated").unwrap();
    client.ping().unwrap();
    let name = helper.ns("act");
    client.ns_create(name.parse().unwrap(), None).unwrap();
    assert!(tsim_tests::ip_netns_list().contains(&name));
    drop(client);
    tsim_tests::signal(child.id(), nix::sys::signal::Signal::SIGTERM);
    let status = wait_timeout(&mut child, Duration::from_secs(20)).expect("exits");
    let mut log = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut log).unwrap();
    assert!(status.success(), "{status}: {log}");
    assert!(log.contains("passed by systemd"), "{log}");
    assert!(socket.exists(), "an activated socket must not be unlinked");
}

#[test]
fn socket_path_safety() {
    require_priv!();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let start = |socket: &std::path::Path| {
        Command::new(binary("tsim-helper"))
            .arg("--socket")
            .arg(socket)
            .arg("--state-dir")
            .arg(&state)
            .args(["--group", "0", "--log", "text"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // A regular file at the path: refused, and left as it was.
    let file = dir.path().join("file.sock");
    std::fs::write(&file, b"keep me").unwrap();
    let out = start(&file).wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a socket"));
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");

    // A symlink at the path: refused.
    let link = dir.path().join("link.sock");
    std::os::unix::fs::symlink("/etc/passwd", &link).unwrap();
    let out = start(&link).wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("symbolic link"));

    // A live socket: refused.
    let live = dir.path().join("live.sock");
    let _listener = UnixListener::bind(&live).unwrap();
    let out = start(&live).wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("another process is listening"));

    // A stale socket: replaced.
    let stale = dir.path().join("stale.sock");
    drop(UnixListener::bind(&stale).unwrap());
    let mut child = start(&stale);
    let deadline = Instant::now() + Duration::from_secs(10);
    while UnixStream::connect(&stale).is_err() {
        assert!(
            Instant::now() < deadline,
            "did not replace the stale socket"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    tsim_client::BlockingClient::connect(&stale, "t")
        .unwrap()
        .ping()
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn an_unsafe_state_directory_is_refused() {
    require_priv!();
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    std::fs::create_dir(&real).unwrap();
    let link = dir.path().join("state-link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let out = Command::new(binary("tsim-helper"))
        .arg("--socket")
        .arg(dir.path().join("s.sock"))
        .arg("--state-dir")
        .arg(&link)
        .args(["--log", "text"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Refusing state directory") && err.contains("symbolic link"),
        "{err}"
    );
}
