//! Shared hosts on the real kernel: jobs of one uid that ask for the same source address on
//! the same router share one host through leases; the host goes with its last lease, after a
//! restart too, under concurrent jobs, and when an atomic request that took or released a
//! lease is undone.

use std::collections::BTreeSet;
use std::process::Command;

use tsim_client::{BlockingClient, ClientError, RequestOptions};
use tsim_protocol::ops::{HostAdd, HostAdded, HostClean, HostDelete, HostInfo, NsDelete};
use tsim_protocol::{ErrorCode, Op};
use tsim_tests::{HelperOptions, TestHelper, example_facts, ip_netns_list, require_priv, text};

fn with_network() -> TestHelper {
    let helper = TestHelper::start_with(HelperOptions::default());
    helper.net_setup(&example_facts());
    helper
}

fn share_op(helper: &TestHelper, name: &str, ip: &str, tag: &str) -> HostAdd {
    HostAdd {
        name: helper.ns(name).parse().unwrap(),
        ip: ip.parse().unwrap(),
        router: helper.ns("edge").parse().unwrap(),
        router_if: None,
        secondaries: Vec::new(),
        tag: Some(tag.parse().unwrap()),
        share: true,
    }
}

fn share(
    client: &BlockingClient,
    helper: &TestHelper,
    name: &str,
    tag: &str,
) -> Result<HostAdded, ClientError> {
    client.host_add(share_op(helper, name, "10.0.1.100/24", tag))
}

fn code<T: std::fmt::Debug>(result: Result<T, ClientError>) -> (ErrorCode, String) {
    match result {
        Err(ClientError::Remote { error, .. }) => (error.code, error.message),
        other => panic!("expected an error from the helper, got {other:?}"),
    }
}

fn lease_tags(host: &HostInfo) -> Vec<String> {
    host.leases.iter().map(|l| l.tag.to_string()).collect()
}

fn hosts(client: &BlockingClient) -> Vec<HostInfo> {
    client.host_list().unwrap()
}

fn ping(ns: &str, dst: &str) -> bool {
    Command::new("ip")
        .args(["netns", "exec", ns, "ping", "-c", "1", "-W", "1", dst])
        .output()
        .expect("ping")
        .status
        .success()
}

fn release(client: &BlockingClient, name: &str, tag: Option<&str>) -> Result<(), ClientError> {
    client
        .op()
        .host_delete(HostDelete {
            name: name.parse().unwrap(),
            tag: tag.map(|t| t.parse().unwrap()),
        })
        .map(drop)
}

#[test]
fn shared_hosts_are_leased_released_and_survive_a_restart() {
    require_priv!();
    let mut helper = with_network();
    let client = helper.client();
    let first = share(&client, &helper, "job1-s", "job1").unwrap();
    assert!(first.shared && !first.reused, "{first:?}");
    let host = helper.ns("job1-s");
    assert_eq!(first.host.name.as_str(), host);
    // Another job, its own name: a lease on the same host, which answers for both.
    let second = share(&client, &helper, "job2-s", "job2").unwrap();
    assert!(second.shared && !second.reused, "{second:?}");
    assert_eq!(second.host.name.as_str(), host);
    assert!(!ip_netns_list().contains(&helper.ns("job2-s")));
    // Asked again (a retry), the same lease is reused.
    let again = share(&client, &helper, "job2-s", "job2").unwrap();
    assert!(again.shared && again.reused, "{again:?}");
    // From the CLI.
    let out = helper.tsimctl(&[
        "host",
        "add",
        &helper.ns("job3-s"),
        "--ip",
        "10.0.1.100/24",
        "--router",
        &helper.ns("edge"),
        "--share",
        "--tag",
        "job3",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("leased shared host {host}")),
        "{}",
        text(&out)
    );
    let out = helper.tsimctl(&[
        "host",
        "add",
        "x",
        "--ip",
        "10.0.1.100/24",
        "--router",
        &helper.ns("edge"),
        "--share",
    ]);
    assert!(!out.status.success());
    assert!(text(&out).contains("--tag"), "{}", text(&out));
    let listed = hosts(&client);
    assert_eq!(listed.len(), 1);
    assert_eq!(lease_tags(&listed[0]), ["job1", "job2", "job3"]);
    let out = helper.tsimctl(&["host", "list"]);
    assert!(text(&out).contains("LEASES"), "{}", text(&out));
    assert!(ping(&host, "10.0.1.1"));

    // Without share, the address is taken, as before.
    let plain = client.host_add(HostAdd {
        share: false,
        tag: None,
        ..share_op(&helper, "other", "10.0.1.100/24", "x")
    });
    assert_eq!(code(plain).0, ErrorCode::Conflict);

    // The leases are recorded: a restart finds them, and the host still works.
    helper.terminate();
    helper.restart();
    let client = helper.client();
    let listed = hosts(&client);
    assert_eq!(lease_tags(&listed[0]), ["job1", "job2", "job3"]);
    assert!(ping(&host, "10.0.1.1"));

    // Without a tag, a host with several leases stays, with a clear error.
    let (c, message) = code(release(&client, &host, None));
    assert_eq!(c, ErrorCode::Conflict);
    assert!(message.contains("job1, job2, job3"), "{message}");
    assert_eq!(
        code(release(&client, &host, Some("job9"))).0,
        ErrorCode::NotFound
    );
    // Each release takes one lease; the host stays for the others.
    release(&client, &host, Some("job1")).unwrap();
    assert_eq!(lease_tags(&hosts(&client)[0]), ["job2", "job3"]);
    assert!(ping(&host, "10.0.1.1"));
    let cleaned = client
        .op()
        .host_clean(HostClean {
            tag: Some("job2".parse().unwrap()),
            owner: None,
        })
        .unwrap();
    assert!(cleaned.removed.is_empty(), "{cleaned:?}");
    assert_eq!(cleaned.released, [host.parse().unwrap()]);
    // The last one takes the host.
    let out = helper.tsimctl(&["host", "clean", "--tag", "job3"]);
    assert!(text(&out).contains("deleted 1 host"), "{}", text(&out));
    assert!(hosts(&client).is_empty());
    assert!(!ip_netns_list().contains(&host));
    assert!(!helper.log().contains("ERROR"), "{}", helper.log());
}

#[test]
fn concurrent_jobs_share_one_host_and_the_last_one_out_removes_it() {
    require_priv!();
    let helper = with_network();
    let jobs = 8;
    let barrier = std::sync::Barrier::new(jobs);
    for round in 0..4 {
        // Every job adds "its" source host, checks it works, waits for the others, releases.
        let names: Vec<String> = std::thread::scope(|s| {
            let threads: Vec<_> = (0..jobs)
                .map(|j| {
                    let (helper, barrier) = (&helper, &barrier);
                    s.spawn(move || {
                        let client = helper.client();
                        let tag = format!("r{round}j{j}");
                        barrier.wait();
                        let added = share(&client, helper, &format!("{tag}-s"), &tag).unwrap();
                        assert!(added.shared);
                        let name = added.host.name.to_string();
                        assert!(ping(&name, "10.0.1.1"), "{tag} from {name}");
                        barrier.wait();
                        if j == 0 {
                            let listed = hosts(&client);
                            assert_eq!(listed.len(), 1, "{listed:?}");
                            assert_eq!(listed[0].leases.len(), jobs);
                        }
                        barrier.wait();
                        let cleaned = client
                            .op()
                            .host_clean(HostClean {
                                tag: Some(tag.parse().unwrap()),
                                owner: None,
                            })
                            .unwrap();
                        assert_eq!(cleaned.removed.len() + cleaned.released.len(), 1);
                        name
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let distinct: BTreeSet<&String> = names.iter().collect();
        assert_eq!(distinct.len(), 1, "one host per round: {names:?}");
        let client = helper.client();
        assert!(hosts(&client).is_empty(), "round {round}");
        assert!(
            !ip_netns_list().contains(&names[0]),
            "round {round}: {} left",
            names[0]
        );
    }
}

#[test]
fn an_undone_request_gives_back_the_lease_it_took_or_released() {
    require_priv!();
    let helper = with_network();
    let client = helper.client();
    let host = share(&client, &helper, "a", "ja").unwrap().host.name;
    let failing = || {
        Op::NsDelete(NsDelete {
            name: helper.ns("no-such-namespace").parse().unwrap(),
        })
    };
    let atomic = RequestOptions {
        atomic: true,
        progress: false,
    };
    // A lease taken, then a failure: the lease is given back.
    let ops = vec![
        Op::HostAdd(share_op(&helper, "b", "10.0.1.100/24", "jb")),
        failing(),
    ];
    let err = client.request(ops, atomic).unwrap_err();
    assert!(matches!(err, ClientError::Remote { .. }), "{err:?}");
    assert_eq!(lease_tags(&hosts(&client)[0]), ["ja"]);
    // A lease released, then a failure: the lease is back.
    share(&client, &helper, "b", "jb").unwrap();
    let ops = vec![
        Op::HostDelete(HostDelete {
            name: host.clone(),
            tag: Some("ja".parse().unwrap()),
        }),
        failing(),
    ];
    client.request(ops, atomic).unwrap_err();
    assert_eq!(lease_tags(&hosts(&client)[0]), ["ja", "jb"]);
    // The last lease released, then a failure: the host is back, whole.
    release(&client, host.as_str(), Some("ja")).unwrap();
    let ops = vec![
        Op::HostDelete(HostDelete {
            name: host.clone(),
            tag: Some("jb".parse().unwrap()),
        }),
        failing(),
    ];
    client.request(ops, atomic).unwrap_err();
    assert_eq!(lease_tags(&hosts(&client)[0]), ["jb"]);
    assert!(ping(host.as_str(), "10.0.1.1"));
    release(&client, host.as_str(), Some("jb")).unwrap();
    assert!(hosts(&client).is_empty());
    assert!(!ip_netns_list().contains(&host.to_string()));
}

#[test]
fn a_kill_9_among_leases_leaves_no_host_without_a_lease() {
    require_priv!();
    let mut helper = with_network();
    // Jobs take and give up leases on one shared source while the helper is killed.
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        for j in 0..4 {
            let (helper, stop) = (&helper, &stop);
            s.spawn(move || {
                let client = helper.client();
                for round in 0.. {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        return;
                    }
                    let tag = format!("k{j}r{round}");
                    if share(&client, helper, &format!("{tag}-s"), &tag).is_err() {
                        return;
                    }
                    let clean = HostClean {
                        tag: Some(tag.parse().unwrap()),
                        owner: None,
                    };
                    if client.op().host_clean(clean).is_err() {
                        return;
                    }
                }
            });
        }
        // In the middle of it all (the jobs see their connections fail, and stop).
        std::thread::sleep(std::time::Duration::from_millis(300));
        tsim_tests::signal(helper.pid(), nix::sys::signal::Signal::SIGKILL);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    helper.kill9();
    helper.restart();
    let client = helper.client();
    for host in hosts(&client) {
        assert!(
            !host.leases.is_empty(),
            "a shared host without a lease: {host:?}"
        );
        assert!(ip_netns_list().contains(&host.name.to_string()));
    }
    // Everything left goes with its leases.
    client
        .op()
        .host_clean(HostClean {
            tag: None,
            owner: None,
        })
        .unwrap();
    assert!(hosts(&client).is_empty());
}
