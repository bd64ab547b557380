//! A small load test: 16 clients, each on its own connection, send 300 requests at once (a
//! mix of pings, reads, TCP echo probes and host add/delete pairs) on the example network;
//! no request fails, and afterwards the registry and the kernel agree. No timing is asserted:
//! the bench's `load` phase measures.

use std::collections::BTreeMap;
use std::sync::Barrier;

use tsim_client::{BlockingClient, ClientError};
use tsim_protocol::ops::{
    AddrList, HostAdd, HostDelete, HostList, LinkList, NsList, Ping, ProbeEcho, ProbeStatus,
    Status, SvcAddr, SvcList, SvcStart, Transport,
};
use tsim_protocol::{NsName, Op, OpResult};
use tsim_tests::{TestHelper, example_facts, ip_netns_list, require_priv};

const CLIENTS: usize = 16;
const REQUESTS: usize = 300;
const WEB: &str = "10.0.3.254";

/// A small deterministic generator (xorshift64*), one per client.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Client `c`'s `i`-th request: 40 % ping, 30 % reads, 10 % TCP probes, 20 % host
/// operations (an add of its own host when it has none, else the delete of that host).
fn next_op(helper: &TestHelper, r: u64, c: usize, i: usize, live: &Option<NsName>) -> Op {
    let ns = |s: &str| -> NsName { helper.ns(s).parse().unwrap() };
    let router = || ns(["edge", "core", "lab"][(r >> 40) as usize % 3]);
    match r % 100 {
        0..40 => Op::Ping(Ping { delay_ms: None }),
        40..70 => match (r >> 33) % 6 {
            0 => Op::Status(Status {}),
            1 => Op::NsList(NsList {}),
            2 => Op::HostList(HostList {}),
            3 => Op::SvcList(SvcList {}),
            4 => Op::LinkList(LinkList {
                ns: router(),
                name: None,
            }),
            _ => Op::AddrList(AddrList {
                ns: router(),
                dev: None,
                family: None,
            }),
        },
        70..80 => Op::ProbeTcp(ProbeEcho {
            ns: ns("src"),
            dst: WEB.parse().unwrap(),
            port: 7,
            src: None,
            message: Some(format!("load {c} {i}")),
            timeout_ms: Some(5000),
            explain: false,
        }),
        _ => match live {
            Some(name) => Op::HostDelete(HostDelete {
                name: name.clone(),
                tag: None,
            }),
            None => Op::HostAdd(HostAdd {
                name: ns(&format!("L{c}x{i}")),
                ip: format!("10.0.3.{}/24", 10 + c).parse().unwrap(),
                router: ns("lab"),
                router_if: None,
                secondaries: Vec::new(),
                tag: None,
                share: false,
            }),
        },
    }
}

/// Client `c`: its requests one at a time, then the delete of its last host; the failures.
fn run_client(helper: &TestHelper, client: &BlockingClient, c: usize) -> Vec<String> {
    let mut mix = Mix((c as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut live: Option<NsName> = None;
    let mut failures = Vec::new();
    for i in 0.. {
        let op = if i < REQUESTS {
            next_op(helper, mix.next(), c, i, &live)
        } else if let Some(name) = live.clone() {
            Op::HostDelete(HostDelete { name, tag: None })
        } else {
            break;
        };
        let name = op.name();
        let added = match &op {
            Op::HostAdd(a) => Some(a.name.clone()),
            _ => None,
        };
        match client.call(op) {
            Ok(OpResult::HostAdd(_)) => live = added,
            Ok(OpResult::HostDelete(_)) => live = None,
            Ok(OpResult::ProbeTcp(p)) if p.status != ProbeStatus::Ok => {
                failures.push(format!("{name}: {:?}: {:?}", p.status, p.detail));
            }
            Ok(_) => {}
            Err(e @ ClientError::Remote { .. }) => {
                failures.push(format!("{name}: {e}"));
            }
            Err(e) => {
                failures.push(format!("{name}: {e} (client {c} stops)"));
                break;
            }
        }
    }
    failures
}

#[test]
fn sixteen_clients_with_a_mix_of_operations_get_no_errors_and_leave_nothing() {
    require_priv!();
    let helper = TestHelper::start();
    helper.net_setup(&example_facts());
    helper.add_hosts(&[
        ("web", "10.0.3.254/24", "lab"),
        ("src", "10.0.3.253/24", "lab"),
    ]);
    let admin = helper.client();
    admin
        .svc_start(SvcStart {
            addr: SvcAddr {
                ns: helper.ns("web").parse().unwrap(),
                ip: WEB.parse().unwrap(),
                port: 7,
                proto: Transport::Tcp,
            },
            tag: None,
        })
        .unwrap();

    let barrier = Barrier::new(CLIENTS);
    let failures: Vec<String> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let (helper, barrier) = (&helper, &barrier);
                s.spawn(move || {
                    let client = helper.client();
                    barrier.wait();
                    run_client(helper, &client, c)
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    });
    // Each distinct failure once, with its count.
    let mut counted = BTreeMap::<&str, usize>::new();
    for f in &failures {
        *counted.entry(f.as_str()).or_default() += 1;
    }
    assert!(
        failures.is_empty(),
        "{} of about {} requests failed:\n{}",
        failures.len(),
        CLIENTS * REQUESTS,
        counted
            .iter()
            .map(|(f, n)| format!("{n}× {f}"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // The registry and the kernel agree: none of the load's hosts is left in either, and
    // the two fixed hosts are in both.
    let load = helper.ns("L");
    let hosts: Vec<String> = admin
        .host_list()
        .unwrap()
        .into_iter()
        .map(|h| h.name.to_string())
        .collect();
    assert_eq!(hosts, [helper.ns("src"), helper.ns("web")], "host_list");
    let namespaces: Vec<String> = admin
        .ns_list()
        .unwrap()
        .into_iter()
        .map(|n| n.name.to_string())
        .filter(|n| n.starts_with(&load))
        .collect();
    assert!(namespaces.is_empty(), "ns_list: {namespaces:?}");
    let kernel: Vec<String> = ip_netns_list()
        .into_iter()
        .filter(|n| n.starts_with(&load))
        .collect();
    assert!(kernel.is_empty(), "ip netns list: {kernel:?}");
    for fixed in ["web", "src"] {
        assert!(ip_netns_list().contains(&helper.ns(fixed)), "{fixed}");
    }
    // And the helper still answers.
    admin.ping().unwrap();
}
