//! Handshake, version negotiation and ping against the real helper.

use tsim_client::ClientError;
use tsim_protocol::{ErrorCode, ServerMessage, version};
use tsim_tests::{RawConn, TestHelper, require_priv};

#[test]
fn handshake_welcome_and_ping() {
    require_priv!();
    let helper = TestHelper::start();
    let client = helper.client();
    let welcome = client.welcome();
    assert_eq!(welcome.protocol, version::CURRENT);
    assert_eq!(welcome.helper_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(welcome.peer.uid, 0);
    assert_eq!(welcome.peer.pid, std::process::id());
    assert!(welcome.peer.authorized && welcome.peer.admin);
    assert_eq!(welcome.limits.max_frame, version::DEFAULT_MAX_FRAME);
    for _ in 0..10 {
        client.ping().unwrap();
    }
    let status = client.status().unwrap();
    assert_eq!(status.pid, helper.pid());
    assert_eq!(status.hidden_ns, helper.ns("hidden"));
    let ping = status
        .ops
        .iter()
        .find(|o| o.op == "ping")
        .expect("ping statistics");
    assert_eq!((ping.count, ping.errors), (10, 0));
}

#[test]
fn major_version_mismatch_is_refused() {
    require_priv!();
    let helper = TestHelper::start();
    let mut raw = RawConn::connect(&helper.socket);
    raw.send(&serde_json::json!({"type": "hello", "protocol": [version::MAJOR + 1, 0], "client": "future"}));
    match raw.recv() {
        Some(ServerMessage::Error(e)) => {
            assert_eq!(e.code, ErrorCode::UnsupportedVersion);
            assert!(
                e.message.contains(&format!("{}.0", version::MAJOR + 1)),
                "{}",
                e.message
            );
        }
        other => panic!("expected an error frame, got {other:?}"),
    }
    assert!(raw.is_closed());

    // A newer minor version is accepted.
    let mut raw = RawConn::connect(&helper.socket);
    raw.send(
        &serde_json::json!({"type": "hello", "protocol": [version::MAJOR, 99], "extra": true}),
    );
    assert!(matches!(raw.recv(), Some(ServerMessage::Welcome(_))));
}

#[test]
fn the_first_message_must_be_hello() {
    require_priv!();
    let helper = TestHelper::start();
    let mut raw = RawConn::connect(&helper.socket);
    raw.send(&serde_json::json!({"type": "request", "id": 1, "ops": [{"op": "ping"}]}));
    match raw.recv() {
        Some(ServerMessage::Error(e)) => assert_eq!(e.code, ErrorCode::BadRequest),
        other => panic!("expected an error frame, got {other:?}"),
    }
    assert!(raw.is_closed());

    // A second hello after the handshake is an error, but the connection stays usable.
    let mut raw = RawConn::handshake(&helper.socket);
    raw.send(&serde_json::json!({"type": "hello", "protocol": [1, 0]}));
    assert!(matches!(raw.recv(), Some(ServerMessage::Error(e)) if e.code == ErrorCode::BadRequest));
    raw.send(&serde_json::json!({"type": "request", "id": 5, "ops": [{"op": "ping"}]}));
    assert!(
        matches!(raw.recv(), Some(ServerMessage::Response(r)) if r.id == 5 && r.error.is_none())
    );
}

#[test]
fn stdio_mode_serves_one_client() {
    require_priv!();
    let helper = TestHelper::start();
    let mut child = std::process::Command::new(tsim_tests::binary("tsim-helper"))
        .arg("--stdio")
        .args([
            "--state-dir",
            &helper.dir.path().join("stdio-state").display().to_string(),
        ])
        .args(["--group", "0", "--log", "text"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let reader = tokio::net::unix::pipe::Receiver::from_owned_fd(stdout.into()).unwrap();
        let writer = tokio::net::unix::pipe::Sender::from_owned_fd(stdin.into()).unwrap();
        let client = tsim_client::Client::over(reader, writer, "stdio-test")
            .await
            .unwrap();
        assert!(client.welcome().peer.authorized);
        client.ping().await.unwrap();
        let name = helper.ns("stdio").parse().unwrap();
        client.ns_create(name, None).await.unwrap();
        assert_eq!(client.ns_list().await.unwrap().len(), 1);
        let err = client
            .ns_create(helper.ns("stdio").parse().unwrap(), None)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::AlreadyExists));
        drop(client);
    });
    let status = tsim_tests::wait_timeout(&mut child, std::time::Duration::from_secs(20))
        .expect("exits on EOF");
    assert!(status.success(), "{status}");
    assert!(tsim_tests::ip_netns_list().contains(&helper.ns("stdio")));
}

#[test]
fn connecting_to_a_missing_socket_is_a_connect_error() {
    let err = tsim_client::BlockingClient::connect("/nonexistent/tsim.sock", "t").unwrap_err();
    assert!(matches!(err, ClientError::Connect { .. }), "{err:?}");
}

#[test]
fn json_and_journald_logging() {
    require_priv!();
    // JSON: every line on stderr is a JSON object.
    let json = TestHelper::start_with(tsim_tests::HelperOptions {
        args: vec!["--log".into(), "json".into()],
        ..Default::default()
    });
    json.client().ping().unwrap();
    let log = json.log();
    let lines: Vec<&str> = log.lines().collect();
    assert!(!lines.is_empty());
    for line in lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(value.get("level").is_some(), "{line}");
    }
    // journald: used when reachable, otherwise a warning and text on stderr; serving either way.
    let journald = TestHelper::start_with(tsim_tests::HelperOptions {
        args: vec!["--log".into(), "journald".into()],
        ..Default::default()
    });
    journald.client().ping().unwrap();
    let journal_socket = std::path::Path::new("/run/systemd/journal/socket").exists();
    if !journal_socket {
        assert!(
            journald.log().contains("Cannot reach journald"),
            "{}",
            journald.log()
        );
    }
}
