//! Hosts on the real kernel: reachability from the first packet, the identity and validation
//! table, the gateway's reference count, the pool, what the network's changes do to hosts,
//! concurrent clients, and a `kill -9` in the middle of 50 adds.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tsim_client::{BlockingClient, ClientError, RequestOptions};
use tsim_protocol::ops::{HostAdd, HostInfo};
use tsim_protocol::{ErrorCode, Op, OpResult, ServerMessage};
use tsim_tests::{
    HelperOptions, RawConn, TestHelper, example_facts, ip_netns_list, require_priv, text,
};

/// A helper with the example network built (routers `<prefix>edge`, `core`, `lab`).
fn with_network(options: HelperOptions) -> TestHelper {
    let helper = TestHelper::start_with(options);
    helper.net_setup(&example_facts());
    helper
}

fn add(helper: &TestHelper, name: &str, ip: &str, router: &str) -> Result<HostInfo, ClientError> {
    add_with(helper, name, ip, router, &[])
}

fn add_with(
    helper: &TestHelper,
    name: &str,
    ip: &str,
    router: &str,
    secondaries: &[&str],
) -> Result<HostInfo, ClientError> {
    let added = helper.client().host_add(HostAdd {
        name: helper.ns(name).parse().unwrap(),
        ip: ip.parse().unwrap(),
        router: helper.ns(router).parse().unwrap(),
        router_if: None,
        secondaries: secondaries.iter().map(|s| s.parse().unwrap()).collect(),
        tag: None,
        share: false,
    })?;
    Ok(added.host)
}

fn code(result: Result<impl std::fmt::Debug, ClientError>) -> (ErrorCode, String) {
    match result {
        Err(ClientError::Remote { error, .. }) => (error.code, error.message),
        other => panic!("expected an error from the helper, got {other:?}"),
    }
}

/// One ping, one second to answer, from inside namespace `ns`: the first packet must do.
fn ping(ns: &str, dst: &str) -> bool {
    Command::new("ip")
        .args(["netns", "exec", ns, "ping", "-c", "1", "-W", "1", dst])
        .output()
        .expect("ping")
        .status
        .success()
}

fn addrs(ns: &str, dev: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["-n", ns, "-j", "addr", "show", "dev", dev])
        .output()
        .expect("ip");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(json!([]));
    v.as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
        .collect()
}

fn link_names(ns: &str) -> BTreeSet<String> {
    let out = Command::new("ip")
        .args(["-n", ns, "-j", "link", "show"])
        .output()
        .expect("ip");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(json!([]));
    v.as_array()
        .into_iter()
        .flatten()
        .map(|l| l["ifname"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn hosts_reach_their_gateway_and_each_other_from_the_first_packet() {
    require_priv!();
    let helper = with_network(HelperOptions::default());
    let h1 = add(&helper, "h1", "10.0.3.100/24", "lab").unwrap();
    assert_eq!(
        (
            h1.router_if.as_str(),
            h1.gateway.to_string(),
            h1.gateway_added
        ),
        ("eth1", "10.0.3.1".to_owned(), false)
    );
    let (n1, n2, n3) = (helper.ns("h1"), helper.ns("h2"), helper.ns("h3"));
    assert!(ping(&n1, "10.0.3.1"), "host to its gateway");
    add(&helper, "h2", "10.0.1.100/24", "edge").unwrap();
    assert!(ping(&n2, "10.0.3.100"), "host to host across two routers");
    // core has no address in 10.9.9.0/24: the host gets 10.9.9.1, added to core's interface
    // towards its default route.
    let h3 = add_with(&helper, "h3", "10.9.9.10/24", "core", &["172.30.0.1/32"]).unwrap();
    assert_eq!(
        (
            h3.router_if.as_str(),
            h3.gateway.to_string(),
            h3.gateway_added
        ),
        ("eth0", "10.9.9.1".to_owned(), true)
    );
    assert!(ping(&n3, "10.9.9.1"));
    assert!(ping(&n3, "10.0.3.100"));
    assert!(ping(&n1, "10.9.9.10"));
    // The secondary address is the host's, reachable from inside it.
    assert!(
        addrs(&n3, "lo").contains(&"172.30.0.1/32".to_owned())
            || addrs(&n3, "dummy0").contains(&"172.30.0.1/32".to_owned())
    );
    assert!(ping(&n3, "172.30.0.1"));

    // The kernel view: eth0 with the address, the default route, the bridge port.
    assert_eq!(addrs(&n1, "eth0"), ["10.0.3.100/24"]);
    let hidden_links = link_names(&helper.ns("hidden"));
    assert!(hidden_links.iter().filter(|l| l.starts_with('h')).count() == 3);

    // A host deleted and another added at once with its address: the router must not keep
    // sending to the old host's MAC address.
    assert!(ping(&n2, "10.0.3.100"));
    helper.client().host_delete(n1.parse().unwrap()).unwrap();
    assert!(!ip_netns_list().contains(&n1));
    add(&helper, "h1b", "10.0.3.100/24", "lab").unwrap();
    // lab answers for it before the new host has said anything.
    assert!(
        ping(&n2, "10.0.3.100"),
        "the first packet to a re-added address"
    );
    assert!(ping(&helper.ns("h1b"), "10.0.1.100"));

    // The list, with its fields.
    let list = helper.client().host_list().unwrap();
    let names: Vec<&str> = list.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, [helper.ns("h1b"), n2.clone(), n3.clone()]);
    assert!(list.iter().all(|h| h.state == "ready" && h.owner_uid == 0));
    let out = helper.tsimctl(&["host", "list"]);
    assert!(text(&out).contains("10.9.9.1+"), "{}", text(&out));

    // Teardown takes the hosts with the network.
    let out = helper.tsimctl(&["--json", "net", "teardown"]);
    let torn: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(torn["hosts"], 3, "{torn}");
    assert!(helper.client().host_list().unwrap().is_empty());
    // The gateway added for a host went with its router, without a complaint.
    assert!(!helper.log().contains("ERROR"), "{}", helper.log());
    assert!(
        !ip_netns_list()
            .iter()
            .any(|n| n.starts_with(&helper.prefix))
    );
}

#[test]
fn identity_conflicts_and_validation_row_by_row() {
    require_priv!();
    let helper = TestHelper::start();
    // Before any network: no router to hang off.
    let (c, m) = code(add(&helper, "h1", "10.0.3.100/24", "lab"));
    assert_eq!(c, ErrorCode::NotFound, "{m}");
    assert!(m.contains("net setup"), "{m}");
    drop(helper);

    let helper = with_network(HelperOptions::default());
    let client = helper.client();
    let first = add(&helper, "h1", "10.0.3.100/24", "lab").unwrap();

    // The same triple again: success, reused, nothing changed.
    let again = client
        .host_add(HostAdd {
            name: helper.ns("h1").parse().unwrap(),
            ip: "10.0.3.100/24".parse().unwrap(),
            router: helper.ns("lab").parse().unwrap(),
            router_if: None,
            secondaries: Vec::new(),
            tag: None,
            share: false,
        })
        .unwrap();
    assert!(again.reused);
    assert_eq!(again.host, first);

    // The same name with another address, or another router: conflict naming the host.
    for (ip, router) in [("10.0.3.101/24", "lab"), ("10.0.1.100/24", "edge")] {
        let (c, m) = code(add(&helper, "h1", ip, router));
        assert_eq!(c, ErrorCode::Conflict, "{m}");
        assert!(
            m.contains(&helper.ns("h1")) && m.contains("10.0.3.100/24"),
            "{m}"
        );
    }
    // The address taken on that router by another host, or the router's own address.
    let (c, m) = code(add(&helper, "h2", "10.0.3.100/24", "lab"));
    assert_eq!(c, ErrorCode::Conflict, "{m}");
    assert!(m.contains(&helper.ns("h1")), "{m}");
    let (c, m) = code(add(&helper, "h2", "10.0.3.1/24", "lab"));
    assert_eq!(c, ErrorCode::Conflict, "{m}");
    assert!(m.contains("own"), "{m}");
    // Another router's address on the bridge the host would join (edge's 10.0.1.1 is on
    // core's eth0 bridge), and a host's address behind another router on the same bridge.
    let (c, m) = code(add(&helper, "h2", "10.0.1.1/24", "core"));
    assert_eq!(c, ErrorCode::Conflict, "{m}");
    assert!(m.contains(&helper.ns("edge")), "{m}");
    add(&helper, "on-edge", "10.0.1.50/24", "edge").unwrap();
    let (c, m) = code(add(&helper, "h2", "10.0.1.50/24", "core"));
    assert_eq!(c, ErrorCode::Conflict, "{m}");
    assert!(m.contains(&helper.ns("on-edge")), "{m}");
    // The same address on another router and bridge is fine (as the old system's sources
    // share one).
    add(&helper, "h2", "10.0.3.100/24", "core").unwrap();
    // An address that would be the gateway added for it.
    let (c, m) = code(add(&helper, "h3", "10.9.9.1/24", "core"));
    assert_eq!(c, ErrorCode::Conflict, "{m}");
    // Unknown router.
    let (c, m) = code(add(&helper, "h3", "10.0.3.102/24", "nope"));
    assert_eq!(c, ErrorCode::NotFound, "{m}");
    assert!(m.contains(&helper.ns("nope")), "{m}");
    // Addresses valid as CIDRs but not as hosts.
    for bad in ["10.0.3.0/24", "10.0.3.255/24", "10.0.3.7/31", "10.0.3.7/32"] {
        let (c, m) = code(add(&helper, "h3", bad, "lab"));
        assert_eq!(c, ErrorCode::InvalidArgument, "{bad}: {m}");
        assert!(m.contains(bad), "{m}");
    }
    // Reserved and taken names.
    for (name, want) in [
        ("hidden", ErrorCode::NotAllowed),
        ("pool-1", ErrorCode::NotAllowed),
        ("lab", ErrorCode::AlreadyExists),
    ] {
        let (c, m) = code(add(&helper, name, "10.0.3.150/24", "lab"));
        assert_eq!(c, want, "{name}: {m}");
    }
    // Not CIDRs at all: tsimctl refuses them itself (exit 2, naming the value)...
    let (h3, lab) = (helper.ns("h3"), helper.ns("lab"));
    for bad in [
        "invalid-ip",
        "999.999.999.999/24",
        "10.1.1.1/99",
        "10.1.1.1",
        "",
    ] {
        let out = helper.tsimctl(&["host", "add", &h3, "--ip", bad, "--router", &lab]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", text(&out));
    }
    // ... and the helper answers invalid_argument for them, naming the operation.
    let mut conn = RawConn::handshake(&helper.socket);
    for (id, bad) in [
        "invalid-ip",
        "999.999.999.999/24",
        "10.1.1.1/99",
        "10.1.1.1",
        "",
    ]
    .iter()
    .enumerate()
    {
        conn.send(&json!({"type": "request", "id": id, "ops": [
            {"op": "ping"},
            {"op": "host_add", "name": h3, "ip": bad, "router": lab}]}));
        let Some(ServerMessage::Response(r)) = conn.recv() else {
            panic!("no response")
        };
        let error = r.error.expect("an error");
        assert_eq!(error.code, ErrorCode::InvalidArgument, "{bad}: {error:?}");
        assert_eq!(error.op_index, Some(1));
    }
    // A host's namespace is not deleted as a plain namespace (its gateway would leak).
    let out = helper.tsimctl(&["ns", "del", &helper.ns("h1")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("not_allowed"), "{}", text(&out));
    // Unknown host.
    let out = helper.tsimctl(&["host", "del", &h3]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("not_found"), "{}", text(&out));
    // Nothing half-made by any of it.
    let ours: BTreeSet<String> = ip_netns_list()
        .into_iter()
        .filter(|n| n.starts_with(&helper.prefix))
        .collect();
    let want: BTreeSet<String> = ["edge", "core", "lab", "hidden", "h1", "h2", "on-edge"]
        .iter()
        .map(|n| helper.ns(n))
        .collect();
    assert_eq!(ours, want);
    assert!(client.ping().is_ok());
}

#[test]
fn the_added_gateway_goes_with_the_last_host_that_needs_it() {
    require_priv!();
    let helper = with_network(HelperOptions::default());
    let core = helper.ns("core");
    let gateway = "10.9.9.1/24".to_owned();
    add(&helper, "a", "10.9.9.10/24", "core").unwrap();
    add(&helper, "b", "10.9.9.11/24", "core").unwrap();
    assert!(addrs(&core, "eth0").contains(&gateway));
    // `net verify` knows the gateways added for hosts: no difference from the facts.
    let facts = example_facts().display().to_string();
    let out = helper.tsimctl(&[
        "net",
        "verify",
        "--facts",
        &facts,
        "--prefix",
        &helper.prefix,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    helper
        .client()
        .host_delete(helper.ns("a").parse().unwrap())
        .unwrap();
    assert!(addrs(&core, "eth0").contains(&gateway), "b still needs it");
    assert!(ping(&helper.ns("b"), "10.9.9.1"));
    helper
        .client()
        .host_delete(helper.ns("b").parse().unwrap())
        .unwrap();
    assert!(!addrs(&core, "eth0").contains(&gateway), "no host needs it");
    assert_eq!(addrs(&core, "eth0"), ["10.0.1.2/24"]);

    // A failed atomic request gives back the gateway it added.
    let op = |name: &str, ip: &str| -> Op {
        serde_json::from_value(
            json!({"op": "host_add", "name": helper.ns(name), "ip": ip, "router": core}),
        )
        .unwrap()
    };
    let result = helper.client().request(
        vec![
            op("c", "10.8.8.10/24"),
            op("d", "10.8.8.11/24"),
            op("c", "10.8.8.12/24"),
        ],
        RequestOptions {
            atomic: true,
            progress: false,
        },
    );
    let (c, _) = code(result);
    assert_eq!(c, ErrorCode::Conflict);
    assert_eq!(addrs(&core, "eth0"), ["10.0.1.2/24"]);
    assert!(helper.client().host_list().unwrap().is_empty());
}

#[test]
fn network_changes_take_the_hosts_they_strand() {
    require_priv!();
    let helper = with_network(HelperOptions::default());
    add(&helper, "on-lab", "10.0.3.100/24", "lab").unwrap();
    add(&helper, "on-edge", "10.0.1.100/24", "edge").unwrap();
    // The same network without lab.
    let facts = helper.dir.path().join("facts");
    std::fs::create_dir(&facts).unwrap();
    for f in ["edge_facts.txt", "core_facts.txt"] {
        std::fs::copy(example_facts().join(f), facts.join(f)).unwrap();
    }
    let facts = facts.display().to_string();
    let out = helper.tsimctl(&[
        "--json",
        "net",
        "setup",
        "--facts",
        &facts,
        "--prefix",
        &helper.prefix,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let applied: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(applied["hosts_removed"], json!([helper.ns("on-lab")]));
    let left: Vec<String> = helper
        .client()
        .host_list()
        .unwrap()
        .into_iter()
        .map(|h| h.name.to_string())
        .collect();
    assert_eq!(left, [helper.ns("on-edge")]);
    assert!(ping(&helper.ns("on-edge"), "10.0.1.1"));
}

/// Waits until `check` holds (the kernel frees deleted namespaces in the background).
fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "never true: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn kill_9_during_fifty_adds_leaves_a_consistent_state() {
    require_priv!();
    let mut helper = with_network(HelperOptions::default());
    let client = BlockingClient::connect(&helper.socket, "tsim-tests").unwrap();
    // 50 hosts behind core, all needing the gateway the helper adds, pipelined.
    let mut pending = Vec::new();
    for i in 0..50 {
        let op: Op = serde_json::from_value(json!({"op": "host_add",
            "name": helper.ns(&format!("k{i}")), "ip": format!("10.9.9.{}/24", 10 + i),
            "router": helper.ns("core")}))
        .unwrap();
        pending.push(client.start(vec![op], RequestOptions::default()).unwrap());
    }
    // Let some of them finish, then kill the helper in the middle of the rest.
    let first = pending.remove(0);
    let _ = client.wait(first);
    std::thread::sleep(Duration::from_millis(15));
    helper.kill9();
    drop(pending);
    drop(client);
    helper.restart();

    let hosts = helper.client().host_list().unwrap();
    eprintln!("{} of 50 hosts survived the kill", hosts.len());
    assert!(hosts.iter().all(|h| h.state == "ready"));
    let listed: BTreeSet<String> = hosts.iter().map(|h| h.name.to_string()).collect();
    let kernel: BTreeSet<String> = ip_netns_list()
        .into_iter()
        .filter(|n| n.starts_with(&helper.ns("k")))
        .collect();
    assert_eq!(listed, kernel, "host list and /run/netns agree");
    // Nothing of the lost hosts stays in the hidden namespace once the kernel has freed them.
    let ends: BTreeSet<String> = hosts
        .iter()
        .map(|h| tsim_helper_hidden_end(h.name.as_str()))
        .collect();
    let hidden = helper.ns("hidden");
    eventually("only listed hosts' ends in the hidden namespace", || {
        let in_hidden: BTreeSet<String> = link_names(&hidden)
            .into_iter()
            .filter(|l| l.starts_with('h'))
            .collect();
        in_hidden == ends
    });
    // The gateway is there if and only if a host needs it.
    let core = helper.ns("core");
    assert_eq!(
        addrs(&core, "eth0").contains(&"10.9.9.1/24".to_owned()),
        !hosts.is_empty(),
        "{hosts:?}"
    );
    for h in &hosts {
        assert!(ping(h.name.as_str(), "10.9.9.1"), "{} works", h.name);
    }
    // And the helper goes on: the rest can be added now.
    add(&helper, "k-after", "10.9.9.200/24", "core").unwrap();
}

/// The hidden end name the helper gives a host.
fn tsim_helper_hidden_end(name: &str) -> String {
    tsim_client::protocol::naming::host_end(&name.parse().unwrap()).to_string()
}

#[test]
fn the_pool_is_used_and_refilled() {
    require_priv!();
    let helper = with_network(HelperOptions {
        args: vec!["--pool-size".into(), "2".into()],
        ..HelperOptions::default()
    });
    let pooled = || -> Vec<String> {
        ip_netns_list()
            .into_iter()
            .filter(|n| n.starts_with(&helper.ns("pool-")))
            .collect()
    };
    eventually("the pool fills", || pooled().len() == 2);
    let before = pooled();
    let client = helper.client();
    let add = |name: &str, ip: &str| {
        client
            .host_add(HostAdd {
                name: helper.ns(name).parse().unwrap(),
                ip: ip.parse().unwrap(),
                router: helper.ns("lab").parse().unwrap(),
                router_if: None,
                secondaries: Vec::new(),
                tag: None,
                share: false,
            })
            .unwrap()
    };
    let a = add("a", "10.0.3.100/24");
    assert!(a.pooled, "{a:?}");
    assert!(ping(&helper.ns("a"), "10.0.3.1"));
    // Pooled namespaces are not hosts, and the taken one is gone from the pool.
    assert_eq!(client.host_list().unwrap().len(), 1);
    eventually("the pool refills", || {
        let now = pooled();
        now.len() == 2 && now != before
    });
    // Three in one request: the pool serves what it has, the rest are made.
    let op = |name: &str, ip: &str| -> Op {
        serde_json::from_value(json!({"op": "host_add", "name": helper.ns(name), "ip": ip, "router": helper.ns("lab")}))
            .unwrap()
    };
    let results = client
        .request(
            vec![
                op("b", "10.0.3.101/24"),
                op("c", "10.0.3.102/24"),
                op("d", "10.0.3.103/24"),
            ],
            RequestOptions::default(),
        )
        .unwrap();
    let pooled_flags: Vec<bool> = results
        .iter()
        .map(|r| match r {
            OpResult::HostAdd(a) => a.pooled,
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(pooled_flags[0], "{pooled_flags:?}");
    for h in ["b", "c", "d"] {
        assert!(ping(&helper.ns(h), "10.0.3.1"), "{h}");
    }
    // Teardown takes the pool too, and it stays empty without a network.
    let out = helper.tsimctl(&["net", "teardown"]);
    assert!(out.status.success(), "{}", text(&out));
    std::thread::sleep(Duration::from_millis(300));
    assert!(pooled().is_empty(), "{:?}", pooled());
}

#[test]
fn concurrent_clients_neither_lose_nor_duplicate_hosts() {
    require_priv!();
    let helper = with_network(HelperOptions::default());
    let clients = 4;
    let names = 12;
    let barrier = std::sync::Barrier::new(clients);
    // Every client adds the same 12 hosts (same triples): each host is made once, and every
    // other answer is `reused`. Half of them need the gateway the helper adds to lab.
    let results: Vec<Vec<(String, bool)>> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..clients)
            .map(|_| {
                s.spawn(|| {
                    let client = helper.client();
                    barrier.wait();
                    (0..names)
                        .map(|i| {
                            let (ip, router_if) = if i % 2 == 0 {
                                (format!("10.0.3.{}/24", 100 + i), None)
                            } else {
                                (
                                    format!("10.7.7.{}/24", 100 + i),
                                    Some("eth1".parse().unwrap()),
                                )
                            };
                            let added = client
                                .host_add(HostAdd {
                                    name: helper.ns(&format!("s{i}")).parse().unwrap(),
                                    ip: ip.parse().unwrap(),
                                    router: helper.ns("lab").parse().unwrap(),
                                    router_if,
                                    secondaries: Vec::new(),
                                    tag: None,
                                    share: false,
                                })
                                .unwrap();
                            (added.host.name.to_string(), added.reused)
                        })
                        .collect()
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    for i in 0..names {
        let name = helper.ns(&format!("s{i}"));
        let made = results
            .iter()
            .flatten()
            .filter(|(n, reused)| *n == name && !reused)
            .count();
        assert_eq!(made, 1, "{name} made once: {results:?}");
    }

    // The same address on the same router, under four names at once: one wins.
    let outcomes: Vec<Result<HostInfo, ClientError>> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..clients)
            .map(|t| {
                let (helper, barrier) = (&helper, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    add(helper, &format!("dup{t}"), "10.0.3.200/24", "lab")
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 1);
    for o in outcomes.into_iter().filter(|o| o.is_err()) {
        assert_eq!(code(o).0, ErrorCode::Conflict);
    }

    // Adds and deletes at once on the shared gateway: each client deletes its share of the
    // 10.7.7.0/24 hosts while adding new ones there.
    std::thread::scope(|s| {
        for t in 0..clients {
            let (helper, barrier) = (&helper, &barrier);
            s.spawn(move || {
                let client = helper.client();
                barrier.wait();
                for i in (1..names).step_by(2).filter(|i| (i / 2) % clients == t) {
                    client
                        .host_delete(helper.ns(&format!("s{i}")).parse().unwrap())
                        .unwrap();
                    client
                        .host_add(HostAdd {
                            name: helper.ns(&format!("n{i}")).parse().unwrap(),
                            ip: format!("10.7.7.{}/24", 200 + i).parse().unwrap(),
                            router: helper.ns("lab").parse().unwrap(),
                            router_if: Some("eth1".parse().unwrap()),
                            secondaries: Vec::new(),
                            tag: None,
                            share: false,
                        })
                        .unwrap();
                }
            });
        }
    });
    let hosts = helper.client().host_list().unwrap();
    let listed: BTreeSet<String> = hosts.iter().map(|h| h.name.to_string()).collect();
    let mut expected: BTreeSet<String> = (0..names)
        .map(|i| helper.ns(&format!("{}{i}", if i % 2 == 0 { "s" } else { "n" })))
        .collect();
    expected.extend(listed.iter().filter(|n| n.contains("dup")).cloned());
    assert_eq!(listed, expected);
    let not_hosts: Vec<String> = ["edge", "core", "lab", "hidden"]
        .iter()
        .map(|n| helper.ns(n))
        .collect();
    let kernel: BTreeSet<String> = ip_netns_list()
        .into_iter()
        .filter(|n| n.starts_with(&helper.prefix) && !not_hosts.contains(n))
        .collect();
    assert_eq!(listed, kernel, "host list and /run/netns agree");
    // lab's added gateway survived the churn, once, and every host works.
    let eth1 = addrs(&helper.ns("lab"), "eth1");
    assert_eq!(eth1, ["10.0.3.1/24", "10.7.7.1/24"]);
    for h in &hosts {
        assert!(ping(h.name.as_str(), &h.gateway.to_string()), "{}", h.name);
    }
}
