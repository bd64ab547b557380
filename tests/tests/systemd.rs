//! The helper under systemd's protocols, without systemd: started through
//! `systemd-socket-activate` the way `tsim-helper.socket` starts it (the socket passed with
//! `LISTEN_FDS`, a clean environment), readiness and shutdown told on `NOTIFY_SOCKET`
//! (`Type=notify`), and a user of the group served while a stranger is refused.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use tsim_tests::{HelperOptions, NOBODY, TestHelper, require_priv, test_gid, tsimctl_as_nobody};

/// Waits for one datagram on `socket` and returns it as text.
fn next_notification(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = socket
        .recv(&mut buf)
        .expect("a notification within the timeout");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn socket_activated_helper_notifies_serves_its_group_and_keeps_the_socket() {
    require_priv!();
    let group = test_gid(1);
    let dir = tempfile::Builder::new()
        .prefix("tsim-notify")
        .tempdir()
        .unwrap();
    let notify_path = dir.path().join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut helper = TestHelper::start_with(HelperOptions {
        group: group.to_string(),
        activate: true,
        env: vec![("NOTIFY_SOCKET".into(), notify_path.display().to_string())],
        ..HelperOptions::default()
    });
    // Ready, once it serves the passed socket (started by the harness's first connection).
    assert_eq!(next_notification(&notify).trim(), "READY=1");
    assert!(
        helper
            .log()
            .contains("Listening on the socket passed by systemd"),
        "{}",
        helper.log()
    );

    // The socket unit's SocketGroup= and SocketMode=0660.
    std::os::unix::fs::chown(&helper.socket, Some(0), Some(group)).unwrap();
    std::fs::set_permissions(&helper.socket, std::fs::Permissions::from_mode(0o660)).unwrap();
    let member = tsimctl_as_nobody(&helper, &[group], &["ping", "--count", "3"]);
    assert!(
        member.status.success(),
        "{}",
        String::from_utf8_lossy(&member.stderr)
    );
    let stranger = tsimctl_as_nobody(&helper, &[], &["ping"]);
    assert_eq!(
        stranger.status.code(),
        Some(3),
        "uid {NOBODY} without the group"
    );

    // SIGTERM: stopping, a clean exit, and the socket file left to systemd.
    let ino = std::fs::metadata(&helper.socket).unwrap().ino();
    let status = helper.terminate();
    assert_eq!(next_notification(&notify).trim(), "STOPPING=1");
    assert!(status.success(), "{status}");
    assert_eq!(std::fs::metadata(&helper.socket).unwrap().ino(), ino);
}
