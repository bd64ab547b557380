//! Namespace create, list and delete, checked against `ip netns list`; atomic rollback;
//! cancellation; ownership; persistence across `kill -9`; reconciliation with the kernel.

use std::process::Command;
use std::time::Duration;

use tsim_client::RequestOptions;
use tsim_protocol::ops::{NsCreate, NsDelete, Ping};
use tsim_protocol::{ErrorCode, NsName, Op, OpResult, ServerMessage};
use tsim_tests::{RawConn, TestHelper, ip_netns_list, require_priv};

fn name(s: &str) -> NsName {
    s.parse().unwrap()
}

fn create(n: &str) -> Op {
    Op::NsCreate(NsCreate {
        name: name(n),
        tag: None,
        ipv6: None,
    })
}

fn delete(n: &str) -> Op {
    Op::NsDelete(NsDelete { name: name(n) })
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn create_list_delete_match_the_kernel() {
    require_priv!();
    let helper = TestHelper::start();
    let client = helper.client();
    let (a, b) = (helper.ns("a"), helper.ns("b"));
    client
        .ns_create(name(&a), Some("job-1".parse().unwrap()))
        .unwrap();
    client.ns_create(name(&b), None).unwrap();

    let listed = ip_netns_list();
    assert!(listed.contains(&a) && listed.contains(&b), "{listed:?}");
    let ours: Vec<String> = client
        .ns_list()
        .unwrap()
        .into_iter()
        .map(|n| n.name.to_string())
        .collect();
    assert_eq!(ours, vec![a.clone(), b.clone()]);
    let info = &client.ns_list().unwrap()[0];
    assert_eq!(
        (info.owner_uid, info.tag.as_ref().map(|t| t.as_str())),
        (0, Some("job-1"))
    );

    // lo is up, and IPv6 duplicate-address detection is off.
    let lo = ip(&["-n", &a, "-j", "link", "show", "lo"]);
    assert!(lo.contains("\"UP\""), "{lo}");
    let dad = Command::new("ip")
        .args([
            "netns",
            "exec",
            &a,
            "cat",
            "/proc/sys/net/ipv6/conf/default/accept_dad",
        ])
        .output()
        .unwrap();
    if dad.status.success() {
        assert_eq!(String::from_utf8_lossy(&dad.stdout).trim(), "0");
    }

    client.ns_delete(name(&a)).unwrap();
    let listed = ip_netns_list();
    assert!(!listed.contains(&a) && listed.contains(&b), "{listed:?}");
    assert_eq!(client.ns_list().unwrap().len(), 1);
    assert!(!helper.state.join("ns").join(format!("{a}.json")).exists());
}

#[test]
fn ipv6_can_be_left_out() {
    require_priv!();
    let helper = TestHelper::start();
    let client = helper.client();
    let (v4, both) = (helper.ns("v4"), helper.ns("both"));
    let op = |n: &str, ipv6: Option<bool>| {
        Op::NsCreate(NsCreate {
            name: name(n),
            tag: None,
            ipv6,
        })
    };
    client
        .request(
            vec![op(&v4, Some(false)), op(&both, None)],
            RequestOptions::default(),
        )
        .unwrap();
    let read = |ns: &str, path: &str| {
        let out = Command::new("ip")
            .args(["netns", "exec", ns, "cat", path])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(
        read(&v4, "/proc/sys/net/ipv6/conf/default/disable_ipv6"),
        "1"
    );
    assert_eq!(read(&v4, "/proc/sys/net/ipv6/conf/all/disable_ipv6"), "1");
    assert_eq!(
        read(&both, "/proc/sys/net/ipv6/conf/default/disable_ipv6"),
        "0"
    );
    let lo = ip(&["-n", &v4, "-j", "addr", "show", "lo"]);
    assert!(!lo.contains("::1"), "{lo}");
    let lo = ip(&["-n", &both, "-j", "addr", "show", "lo"]);
    assert!(lo.contains("::1"), "{lo}");
}

#[test]
fn duplicates_unknown_and_foreign_namespaces() {
    require_priv!();
    let helper = TestHelper::start();
    let client = helper.client();
    let a = helper.ns("a");
    client.ns_create(name(&a), None).unwrap();

    let err = client.ns_create(name(&a), None).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::AlreadyExists));
    assert!(err.to_string().contains(&a), "{err}");

    let err = client
        .ns_create(name(&helper.ns("hidden")), None)
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(ErrorCode::NotAllowed),
        "the hidden namespace's name is reserved"
    );

    let err = client.ns_delete(name(&helper.ns("nope"))).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFound));

    // A namespace someone else made is never touched, and its name cannot be taken.
    let foreign = helper.ns("foreign");
    ip(&["netns", "add", &foreign]);
    let err = client.ns_delete(name(&foreign)).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotManaged), "{err}");
    let err = client.ns_create(name(&foreign), None).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::AlreadyExists), "{err}");
    assert!(ip_netns_list().contains(&foreign));
    assert!(
        client
            .ns_list()
            .unwrap()
            .iter()
            .all(|n| n.name.as_str() != foreign)
    );
    ip(&["netns", "del", &foreign]);
}

#[test]
fn atomic_rollback_leaves_nothing() {
    require_priv!();
    let helper = TestHelper::start();
    let client = helper.client();
    let names: Vec<String> = ["a", "b", "c"].iter().map(|s| helper.ns(s)).collect();
    let atomic = RequestOptions {
        atomic: true,
        progress: false,
    };

    // The fourth operation fails in the helper: all three creations are undone.
    let mut ops: Vec<Op> = names.iter().map(|n| create(n)).collect();
    ops.push(create(&names[0]));
    let err = client.request(ops, atomic).unwrap_err();
    let tsim_client::ClientError::Remote { error, results } = err else {
        panic!("{err:?}")
    };
    assert_eq!(
        (error.code, error.op_index),
        (ErrorCode::AlreadyExists, Some(3))
    );
    assert!(results.is_empty());
    let listed = ip_netns_list();
    for n in &names {
        assert!(!listed.contains(n), "{n} left behind: {listed:?}");
    }
    assert!(client.ns_list().unwrap().is_empty());
    let records = std::fs::read_dir(helper.state.join("ns")).unwrap().count();
    assert_eq!(records, 0, "state records left behind");

    // The fourth operation cannot even be decoded: nothing runs at all.
    let mut raw = RawConn::handshake(&helper.socket);
    let mut ops: Vec<serde_json::Value> = names
        .iter()
        .map(|n| serde_json::json!({"op": "ns_create", "name": n}))
        .collect();
    ops.push(serde_json::json!({"op": "ns_create", "name": "../x"}));
    raw.send(&serde_json::json!({"type": "request", "id": 7, "atomic": true, "ops": ops}));
    match raw.recv() {
        Some(ServerMessage::Response(r)) => {
            let e = r.error.expect("an error");
            assert_eq!(
                (r.id, e.code, e.op_index),
                (7, ErrorCode::InvalidArgument, Some(3))
            );
            assert!(e.message.contains("\"../x\""), "{}", e.message);
        }
        other => panic!("{other:?}"),
    }
    assert!(names.iter().all(|n| !ip_netns_list().contains(n)));

    // A deletion inside a failed atomic request is undone too: the namespace comes back.
    client.ns_create(name(&names[0]), None).unwrap();
    let before = ip(&["netns", "exec", &names[0], "readlink", "/proc/self/ns/net"]);
    let err = client
        .request(
            vec![
                delete(&names[0]),
                create(&names[1]),
                delete(&helper.ns("zz")),
            ],
            atomic,
        )
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFound));
    let listed = ip_netns_list();
    assert!(
        listed.contains(&names[0]) && !listed.contains(&names[1]),
        "{listed:?}"
    );
    let after = ip(&["netns", "exec", &names[0], "readlink", "/proc/self/ns/net"]);
    assert_eq!(before, after, "the same namespace must be restored");
    assert_eq!(client.ns_list().unwrap().len(), 1);
    client.ns_delete(name(&names[0])).unwrap();
}

#[test]
fn create_and_delete_in_one_request() {
    require_priv!();
    let helper = TestHelper::start();
    let client = helper.client();
    let (a, b) = (helper.ns("a"), helper.ns("b"));
    let atomic = RequestOptions {
        atomic: true,
        progress: false,
    };
    // Created, deleted, then the request fails: nothing is left, and the name is free again.
    let err = client
        .request(
            vec![create(&a), delete(&a), create(&b), delete(&helper.ns("zz"))],
            atomic,
        )
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFound));
    let listed = ip_netns_list();
    assert!(!listed.contains(&a) && !listed.contains(&b), "{listed:?}");
    assert!(client.ns_list().unwrap().is_empty());
    // Created and deleted, and the request succeeds: still nothing left.
    client
        .request(vec![create(&a), delete(&a)], atomic)
        .unwrap();
    assert!(!ip_netns_list().contains(&a));
    assert_eq!(
        std::fs::read_dir(helper.state.join("ns")).unwrap().count(),
        0
    );
    // Deleted twice in one request: the second is not_found.
    client.ns_create(name(&a), None).unwrap();
    let err = client
        .request(vec![delete(&a), delete(&a)], atomic)
        .unwrap_err();
    let tsim_client::ClientError::Remote { error, .. } = err else {
        panic!("{err:?}")
    };
    assert_eq!((error.code, error.op_index), (ErrorCode::NotFound, Some(1)));
    assert!(
        ip_netns_list().contains(&a),
        "the failed atomic request put it back"
    );
}

#[test]
fn non_atomic_failure_keeps_earlier_results() {
    require_priv!();
    let helper = TestHelper::start();
    let client = helper.client();
    let (a, b) = (helper.ns("a"), helper.ns("b"));
    let ops = vec![create(&a), create(&a), create(&b)];
    let err = client.request(ops, RequestOptions::default()).unwrap_err();
    let tsim_client::ClientError::Remote { error, results } = err else {
        panic!("{err:?}")
    };
    assert_eq!(
        (error.code, error.op_index),
        (ErrorCode::AlreadyExists, Some(1))
    );
    assert!(matches!(&results[..], [OpResult::NsCreate(c)] if c.name.as_str() == a));
    let listed = ip_netns_list();
    assert!(listed.contains(&a) && !listed.contains(&b), "{listed:?}");
}

#[test]
fn cancel_rolls_back_an_atomic_request() {
    require_priv!();
    let helper = TestHelper::start();
    let client = helper.client();
    let a = helper.ns("a");
    let ops = vec![
        create(&a),
        Op::Ping(Ping {
            delay_ms: Some(30_000),
        }),
    ];
    let pending = client
        .start(
            ops,
            RequestOptions {
                atomic: true,
                progress: true,
            },
        )
        .unwrap();
    let id = pending.id;
    // Wait until the creation is done and the delay has begun.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !ip_netns_list().contains(&a) {
        assert!(
            std::time::Instant::now() < deadline,
            "namespace never appeared"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    client.cancel(id).unwrap();
    let err = client.wait(pending).unwrap_err();
    let tsim_client::ClientError::Remote { error, results } = err else {
        panic!("{err:?}")
    };
    assert_eq!(
        (error.code, error.op_index),
        (ErrorCode::Cancelled, Some(1))
    );
    assert!(results.is_empty());
    assert!(!ip_netns_list().contains(&a));
    assert!(client.ns_list().unwrap().is_empty());
}

#[test]
fn state_survives_kill_9() {
    require_priv!();
    let mut helper = TestHelper::start();
    let names: Vec<String> = ["a", "b", "c"].iter().map(|s| helper.ns(s)).collect();
    {
        let client = helper.client();
        for n in &names {
            client
                .ns_create(name(n), Some("keep".parse().unwrap()))
                .unwrap();
        }
    }
    let before = helper.client().ns_list().unwrap();
    helper.kill9();
    helper.restart();
    let after = helper.client().ns_list().unwrap();
    assert_eq!(before, after);
    let listed = ip_netns_list();
    assert!(names.iter().all(|n| listed.contains(n)), "{listed:?}");
    // The adopted namespaces can still be deleted.
    helper.client().ns_delete(name(&names[1])).unwrap();
    assert!(!ip_netns_list().contains(&names[1]));
}

#[test]
fn restart_reconciles_with_the_kernel() {
    require_priv!();
    let mut helper = TestHelper::start();
    let (gone, replaced, kept) = (helper.ns("gone"), helper.ns("replaced"), helper.ns("kept"));
    {
        let client = helper.client();
        for n in [&gone, &replaced, &kept] {
            client.ns_create(name(n), None).unwrap();
        }
    }
    helper.kill9();
    // While the helper is down, one namespace vanishes and another is replaced by a stranger.
    ip(&["netns", "del", &gone]);
    ip(&["netns", "del", &replaced]);
    ip(&["netns", "add", &replaced]);
    // An interrupted creation: a record that never committed, with a placeholder file.
    let interrupted = helper.ns("interrupted");
    let record = serde_json::json!({"version": 1, "name": interrupted, "owner_uid": 0, "created_ms": 1,
        "netns_ino": 0, "state": "creating"});
    std::fs::write(
        helper.state.join("ns").join(format!("{interrupted}.json")),
        record.to_string(),
    )
    .unwrap();
    std::fs::write(format!("/run/netns/{interrupted}"), b"").unwrap();

    helper.restart();
    let client = helper.client();
    let ours: Vec<String> = client
        .ns_list()
        .unwrap()
        .into_iter()
        .map(|n| n.name.to_string())
        .collect();
    assert_eq!(ours, vec![kept.clone()]);
    let listed = ip_netns_list();
    assert!(
        listed.contains(&replaced),
        "the stranger's namespace must be left alone"
    );
    assert!(
        !listed.contains(&interrupted),
        "the interrupted creation must be rolled back"
    );
    let err = client.ns_delete(name(&replaced)).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotManaged));
    ip(&["netns", "del", &replaced]);
}

#[test]
fn progress_events_arrive_before_the_response() {
    require_priv!();
    let helper = TestHelper::start();
    let client = helper.client();
    let ops: Vec<Op> = (0..3)
        .map(|i| create(&helper.ns(&format!("p{i}"))))
        .collect();
    let mut pending = client
        .start(
            ops,
            RequestOptions {
                atomic: false,
                progress: true,
            },
        )
        .unwrap();
    let mut events = pending.events.take().unwrap();
    let results = client.wait(pending).unwrap();
    assert_eq!(results.len(), 3);
    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        seen.push(event);
    }
    assert!(!seen.is_empty(), "no progress events");
    assert!(seen.iter().all(|e| e.total == 3 && e.done <= 3));
    assert_eq!(seen.last().unwrap().done, 3);
}
