//! Who is served: peers checked by the kernel's credentials, whatever the socket's mode;
//! ownership of namespaces; and the capabilities the helper keeps.

use std::os::unix::fs::PermissionsExt;

use tsim_tests::{
    HelperOptions, NOBODY, TestHelper, ip_netns_list, require_priv, test_gid, text,
    tsimctl_as_nobody,
};

#[test]
fn strangers_are_refused_whatever_the_socket_mode() {
    require_priv!();
    let group = test_gid(0);
    let helper = TestHelper::start_with(HelperOptions {
        args: vec!["--socket-mode".into(), "0666".into()],
        group: group.to_string(),
        ..HelperOptions::default()
    });
    let mode = std::fs::metadata(&helper.socket)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o666);

    let out = tsimctl_as_nobody(&helper, &[], &["ping"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("permission_denied"), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("uid {NOBODY}")),
        "{}",
        text(&out)
    );

    let out = tsimctl_as_nobody(&helper, &[group], &["ping"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = tsimctl_as_nobody(&helper, &[group], &["--json", "status"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // The helper is still serving everyone else.
    helper.client().ping().unwrap();
}

#[test]
fn only_owners_and_admins_delete() {
    require_priv!();
    let (group, admins) = (test_gid(0), test_gid(1));
    let helper = TestHelper::start_with(HelperOptions {
        args: vec!["--admin-group".into(), admins.to_string()],
        group: group.to_string(),
        ..HelperOptions::default()
    });
    let roots = helper.ns("roots");
    helper
        .client()
        .ns_create(roots.parse().unwrap(), None)
        .unwrap();

    let out = tsimctl_as_nobody(&helper, &[group], &["ns", "del", &roots]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("permission_denied"), "{}", text(&out));
    assert!(ip_netns_list().contains(&roots));

    let mine = helper.ns("mine");
    let out = tsimctl_as_nobody(&helper, &[group], &["ns", "add", &mine]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let listed = helper.client().ns_list().unwrap();
    let info = listed.iter().find(|n| n.name.as_str() == mine).unwrap();
    assert_eq!(info.owner_uid, NOBODY);
    let out = tsimctl_as_nobody(&helper, &[group], &["ns", "del", &mine]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // Nor change what is inside it, though reading is allowed.
    let out = tsimctl_as_nobody(&helper, &[group], &["batch", "-"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an empty stdin is not a batch: {}",
        text(&out)
    );
    let batch = helper.dir.path().join("change.json");
    let change = serde_json::json!([{"op": "link_add_bridge", "ns": roots, "name": "br0"}]);
    std::fs::write(&batch, change.to_string()).unwrap();
    std::fs::set_permissions(&batch, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = tsimctl_as_nobody(&helper, &[group], &["batch", batch.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("permission_denied"), "{}", text(&out));
    let read = serde_json::json!([{"op": "link_list", "ns": roots}]);
    std::fs::write(&batch, read.to_string()).unwrap();
    let out = tsimctl_as_nobody(&helper, &[group], &["batch", batch.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // A member of the admin group may delete anyone's namespace.
    let out = tsimctl_as_nobody(&helper, &[group, admins], &["ns", "del", &roots]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!ip_netns_list().contains(&roots));
}

#[test]
fn the_helper_keeps_exactly_six_capabilities() {
    require_priv!();
    let helper = TestHelper::start();
    let status = std::fs::read_to_string(format!("/proc/{}/status", helper.pid())).unwrap();
    // CAP_SETPCAP (8, to cut the tools' bounding set), CAP_NET_BIND_SERVICE (10),
    // CAP_NET_ADMIN (12), CAP_NET_RAW (13), CAP_SYS_CHROOT (18, to enter the tools' mount
    // namespace), CAP_SYS_ADMIN (21).
    let expected = (1u64 << 8) | (1 << 10) | (1 << 12) | (1 << 13) | (1 << 18) | (1 << 21);
    for set in ["CapEff", "CapPrm", "CapBnd"] {
        let line = status.lines().find(|l| l.starts_with(set)).unwrap();
        let value = u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap();
        assert_eq!(value, expected, "{set}: {value:#x}");
    }
    for set in ["CapInh", "CapAmb"] {
        let line = status.lines().find(|l| l.starts_with(set)).unwrap();
        assert!(line.ends_with("0000000000000000"), "{line}");
    }
    let no_new_privs = status
        .lines()
        .find(|l| l.starts_with("NoNewPrivs"))
        .unwrap();
    assert!(no_new_privs.ends_with('1'), "{no_new_privs}");
    // Every thread, not only the main one.
    for task in std::fs::read_dir(format!("/proc/{}/task", helper.pid())).unwrap() {
        let status = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap();
        let line = status.lines().find(|l| l.starts_with("CapEff")).unwrap();
        assert_eq!(
            u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap(),
            expected
        );
    }
}

#[test]
fn only_root_and_admins_apply_or_tear_down_the_network() {
    require_priv!();
    let (group, admins) = (test_gid(2), test_gid(3));
    let helper = TestHelper::start_with(HelperOptions {
        args: vec!["--admin-group".into(), admins.to_string()],
        group: group.to_string(),
        ..HelperOptions::default()
    });
    let router = helper.ns("r1");
    let topology = serde_json::json!({
        "bridges": [{"name": "br-0a090000-24", "subnet": "10.9.0.0/24"}],
        "routers": [{"name": router, "interfaces": [{"name": "eth0", "up": true,
            "addrs": [{"addr": "10.9.0.1/24"}], "bridge": "br-0a090000-24",
            "hidden_end": "vauth1"}]}]
    });
    let file = helper.dir.path().join("topology.json");
    std::fs::write(&file, topology.to_string()).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let file = file.to_str().unwrap();
    let ours = || {
        ip_netns_list()
            .into_iter()
            .filter(|n| n.starts_with(&helper.prefix))
            .count()
    };

    // A plain member may not build the network.
    let out = tsimctl_as_nobody(&helper, &[group], &["net", "setup", "--topology", file]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("permission_denied"), "{}", text(&out));
    assert_eq!(ours(), 0);

    // Root may; a member may then read it, but not tear it down.
    let out = helper.tsimctl(&["net", "setup", "--topology", file]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(ours(), 2);
    let out = tsimctl_as_nobody(&helper, &[group], &["net", "status"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains(&router), "{}", text(&out));
    let out = tsimctl_as_nobody(&helper, &[group], &["net", "teardown"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("permission_denied"), "{}", text(&out));
    assert_eq!(ours(), 2);

    // A member of the admin group may.
    let out = tsimctl_as_nobody(&helper, &[group, admins], &["net", "teardown"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(ours(), 0);
}

#[test]
fn hosts_belong_to_who_added_them() {
    require_priv!();
    let (group, admins) = (test_gid(4), test_gid(5));
    let helper = TestHelper::start_with(HelperOptions {
        args: vec!["--admin-group".into(), admins.to_string()],
        group: group.to_string(),
        ..HelperOptions::default()
    });
    // A tiny network, readable by nobody: one router with one subnet.
    let router = helper.ns("r1");
    let topology = serde_json::json!({
        "bridges": [{"name": "br-0a090000-24", "subnet": "10.9.0.0/24"}],
        "routers": [{"name": router, "interfaces": [{"name": "eth0", "up": true,
            "addrs": [{"addr": "10.9.0.1/24"}], "bridge": "br-0a090000-24",
            "hidden_end": "vhost1"}]}]
    });
    let file = helper.dir.path().join("topology.json");
    std::fs::write(&file, topology.to_string()).unwrap();
    let out = helper.tsimctl(&["net", "setup", "--topology", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let add = |who: &[u32], name: &str, ip: &str, tag: &str| {
        let args = [
            "host", "add", name, "--ip", ip, "--router", &router, "--tag", tag,
        ];
        if who.is_empty() {
            helper.tsimctl(&args)
        } else {
            tsimctl_as_nobody(&helper, who, &args)
        }
    };
    // Any member may add hosts; each is its adder's.
    let (mine, theirs, other) = (helper.ns("mine"), helper.ns("roots"), helper.ns("mine2"));
    let out = add(&[group], &mine, "10.9.0.10/24", "job-1");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = add(&[group], &other, "10.9.0.11/24", "job-2");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = add(&[], &theirs, "10.9.0.12/24", "job-1");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let hosts = helper.client().host_list().unwrap();
    let owner = |n: &str| {
        hosts
            .iter()
            .find(|h| h.name.as_str() == n)
            .unwrap()
            .owner_uid
    };
    assert_eq!((owner(&mine), owner(&theirs)), (NOBODY, 0));

    // Nobody may not delete root's host, nor clean someone else's.
    let out = tsimctl_as_nobody(&helper, &[group], &["host", "del", &theirs]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("permission_denied"), "{}", text(&out));
    let out = tsimctl_as_nobody(&helper, &[group], &["host", "clean", "--owner", "0"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("permission_denied"), "{}", text(&out));
    // Cleaning a tag without the admin role takes only one's own hosts with it.
    let out = tsimctl_as_nobody(
        &helper,
        &[group],
        &["--json", "host", "clean", "--tag", "job-1"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let cleaned: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cleaned["removed"], serde_json::json!([mine]));
    assert!(ip_netns_list().contains(&theirs));
    // An admin may delete anyone's.
    let out = tsimctl_as_nobody(&helper, &[group, admins], &["host", "del", &other]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let left: Vec<String> = helper
        .client()
        .host_list()
        .unwrap()
        .into_iter()
        .map(|h| h.name.to_string())
        .collect();
    assert_eq!(left, [theirs]);
}

#[test]
fn services_belong_to_who_started_them() {
    require_priv!();
    let group = test_gid(6);
    let helper = TestHelper::start_with(HelperOptions {
        group: group.to_string(),
        ..HelperOptions::default()
    });
    let (roots, mine) = (helper.ns("roots"), helper.ns("mine"));
    assert!(helper.tsimctl(&["ns", "add", &roots]).status.success());
    let out = tsimctl_as_nobody(&helper, &[group], &["ns", "add", &mine]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let svc = |ns: &str, verb: &str| -> Vec<String> {
        ["svc", verb, "--ns", ns, "--ip", "127.0.0.1", "--port", "7"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    fn args(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    // A member may serve in their own namespace, not in root's.
    let out = tsimctl_as_nobody(&helper, &[group], &args(&svc(&mine, "start")));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = tsimctl_as_nobody(&helper, &[group], &args(&svc(&roots, "start")));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("permission_denied"), "{}", text(&out));
    // Root's service is root's to stop; nobody's is nobody's (and root's, who may do anything).
    assert!(
        helper
            .tsimctl(&args(&svc(&roots, "start")))
            .status
            .success()
    );
    let out = tsimctl_as_nobody(&helper, &[group], &args(&svc(&roots, "stop")));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("permission_denied"), "{}", text(&out));
    let list = helper.client().svc_list().unwrap();
    assert_eq!(list.len(), 2);
    assert!(list.iter().any(|s| s.owner_uid == NOBODY));
    let out = tsimctl_as_nobody(&helper, &[group], &args(&svc(&mine, "stop")));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(helper.tsimctl(&args(&svc(&roots, "stop"))).status.success());
    assert!(helper.client().svc_list().unwrap().is_empty());
}
