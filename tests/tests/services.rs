//! Echo services and echo probes on the real kernel, on the bundled example network: the
//! echo comes back exactly over TCP and UDP, 50 concurrent clients, port clashes, stop,
//! limits, atomic rollback, a helper restart, and a namespace deletion.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use tsim_client::{BlockingClient, ClientError, RequestOptions};
use tsim_protocol::ops::{
    ProbeEcho, ProbeEchoResult, ProbeStatus, SvcAddr, SvcInfo, SvcStart, Transport,
};
use tsim_protocol::{ErrorCode, Op, OpResult};
use tsim_tests::{HelperOptions, TestHelper, example_facts, ip_netns_list, require_priv, text};

const WEB: &str = "10.0.3.100";

/// The example network with three hosts: `web` (10.0.3.100) and `near` (10.0.3.101) behind
/// lab, on one bridge, and `far` (192.0.2.50) behind edge, two routers away (lab forwards
/// only TCP 80 and 443 to its subnet).
fn network(args: &[&str]) -> TestHelper {
    let helper = TestHelper::start_with(HelperOptions {
        args: args.iter().map(|a| a.to_string()).collect(),
        ..HelperOptions::default()
    });
    helper.net_setup(&example_facts());
    helper.add_hosts(&[
        ("web", "10.0.3.100/24", "lab"),
        ("near", "10.0.3.101/24", "lab"),
        ("far", "192.0.2.50/24", "edge"),
    ]);
    helper
}

fn at(helper: &TestHelper, ns: &str, ip: &str, port: u16, proto: Transport) -> SvcAddr {
    SvcAddr {
        ns: helper.ns(ns).parse().unwrap(),
        ip: ip.parse().unwrap(),
        port,
        proto,
    }
}

fn start(client: &BlockingClient, addr: SvcAddr) -> Result<SvcInfo, ClientError> {
    client.svc_start(SvcStart { addr, tag: None })
}

fn probe_args(helper: &TestHelper, from: &str, dst: &str, port: u16, msg: &str) -> ProbeEcho {
    ProbeEcho {
        ns: helper.ns(from).parse().unwrap(),
        dst: dst.parse().unwrap(),
        port,
        src: None,
        message: Some(msg.to_owned()),
        timeout_ms: Some(1000),
        explain: false,
    }
}

fn probe(
    client: &BlockingClient,
    helper: &TestHelper,
    proto: Transport,
    from: &str,
    port: u16,
    msg: &str,
) -> ProbeEchoResult {
    client
        .probe_echo(proto, probe_args(helper, from, WEB, port, msg))
        .unwrap()
}

fn code(result: Result<impl std::fmt::Debug, ClientError>) -> (ErrorCode, String) {
    match result {
        Err(ClientError::Remote { error, .. }) => (error.code, error.message),
        other => panic!("expected an error from the helper, got {other:?}"),
    }
}

#[test]
fn the_echo_comes_back_exactly_over_tcp_and_udp() {
    require_priv!();
    let helper = network(&[]);
    let client = helper.client();
    start(&client, at(&helper, "web", WEB, 80, Transport::Tcp)).unwrap();
    start(&client, at(&helper, "web", "0.0.0.0", 53, Transport::Udp)).unwrap();

    let long: String = (0..60_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    for (proto, port, from, msg) in [
        (Transport::Tcp, 80, "near", "héllo, wörld"),
        (Transport::Tcp, 80, "far", long.as_str()),
        (Transport::Udp, 53, "near", "a datagram"),
        (Transport::Udp, 53, "near", &long[..1400]),
    ] {
        let r = probe(&client, &helper, proto, from, port, msg);
        assert_eq!(r.status, ProbeStatus::Ok, "{proto} from {from}: {r:?}");
        assert_eq!(r.reply.as_deref(), Some(msg), "{proto} from {from}");
        let local = r.local.expect("the local address and port");
        let want = if from == "far" {
            "192.0.2.50:"
        } else {
            "10.0.3.101:"
        };
        assert!(local.starts_with(want), "{local}");
    }
    // From a given source address.
    let mut args = probe_args(&helper, "near", WEB, 80, "from me");
    args.src = Some("10.0.3.101".parse().unwrap());
    let r = client.probe_echo(Transport::Tcp, args).unwrap();
    assert_eq!(r.status, ProbeStatus::Ok);
    // Counted.
    let list = client.svc_list().unwrap();
    let tcp = list
        .iter()
        .find(|s| s.addr.proto == Transport::Tcp)
        .unwrap();
    assert_eq!(tcp.served, 3);
    assert_eq!(tcp.bytes, (12 + 2 + 60_000 + 7) as u64);
    // lab's firewall drops UDP towards its subnet: a timeout, not a refusal.
    let r = client
        .probe_echo(Transport::Udp, probe_args(&helper, "far", WEB, 53, "x"))
        .unwrap();
    assert_eq!(r.status, ProbeStatus::Timeout, "{r:?}");
    // tsimctl says so with its exit status.
    let far = helper.ns("far");
    let out = helper.tsimctl(&["probe", "tcp", "--from", &far, "10.0.3.100:80", "-m", "hi"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("ok"), "{}", text(&out));
    let out = helper.tsimctl(&[
        "probe",
        "udp",
        "--from",
        &far,
        "10.0.3.100:53",
        "--wait",
        "0.2",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("timeout"), "{}", text(&out));
}

#[test]
fn fifty_concurrent_clients_each_get_their_own_echo() {
    require_priv!();
    let helper = network(&[]);
    let client = helper.client();
    start(&client, at(&helper, "web", WEB, 7, Transport::Tcp)).unwrap();
    start(&client, at(&helper, "web", WEB, 7, Transport::Udp)).unwrap();
    for proto in [Transport::Tcp, Transport::Udp] {
        let pending: Vec<_> = (0..50)
            .map(|i| {
                let args = probe_args(&helper, "near", WEB, 7, &format!("client {i} says {i:x}"));
                let op = match proto {
                    Transport::Tcp => Op::ProbeTcp(args),
                    Transport::Udp => Op::ProbeUdp(args),
                };
                client.start(vec![op], RequestOptions::default()).unwrap()
            })
            .collect();
        for (i, p) in pending.into_iter().enumerate() {
            let results = client.wait(p).unwrap();
            let (OpResult::ProbeTcp(r) | OpResult::ProbeUdp(r)) = &results[0] else {
                panic!("{results:?}");
            };
            assert_eq!(r.status, ProbeStatus::Ok, "{proto} client {i}: {r:?}");
            assert_eq!(
                r.reply.as_deref(),
                Some(format!("client {i} says {i:x}").as_str())
            );
        }
    }
}

#[test]
fn clashes_stops_errors_and_rollback() {
    require_priv!();
    let helper = network(&[]);
    let client = helper.client();
    let web80 = at(&helper, "web", WEB, 80, Transport::Tcp);
    start(&client, web80.clone()).unwrap();

    // The same address again, or the port taken on all addresses.
    let (c, m) = code(start(&client, web80.clone()));
    assert_eq!(c, ErrorCode::AlreadyExists, "{m}");
    assert!(m.contains("10.0.3.100:80"), "{m}");
    let (c, m) = code(start(
        &client,
        at(&helper, "web", "0.0.0.0", 80, Transport::Tcp),
    ));
    assert_eq!(c, ErrorCode::AlreadyExists, "{m}");
    assert!(m.contains("0.0.0.0:80"), "{m}");
    // The same port over UDP is another service.
    start(&client, at(&helper, "web", WEB, 80, Transport::Udp)).unwrap();
    // An address the namespace does not have, an unknown namespace, port 0.
    let (c, m) = code(start(
        &client,
        at(&helper, "web", "10.0.3.99", 81, Transport::Tcp),
    ));
    assert_eq!(c, ErrorCode::InvalidArgument, "{m}");
    assert!(m.contains("10.0.3.99"), "{m}");
    let (c, m) = code(start(&client, at(&helper, "nope", WEB, 81, Transport::Tcp)));
    assert_eq!(c, ErrorCode::NotFound, "{m}");
    let (c, _) = code(start(&client, at(&helper, "web", WEB, 0, Transport::Tcp)));
    assert_eq!(c, ErrorCode::InvalidArgument);
    let mut bad = probe_args(&helper, "near", WEB, 80, "");
    let (c, _) = code(client.probe_echo(Transport::Tcp, bad.clone()));
    assert_eq!(c, ErrorCode::InvalidArgument);
    bad.message = Some("x".into());
    bad.src = Some("10.9.9.9".parse().unwrap());
    let (c, m) = code(client.probe_echo(Transport::Tcp, bad));
    assert_eq!(c, ErrorCode::InvalidArgument, "{m}");

    // Stopped: refused, over TCP and over UDP (ICMP port unreachable).
    client.svc_stop(web80.clone()).unwrap();
    client
        .svc_stop(at(&helper, "web", WEB, 80, Transport::Udp))
        .unwrap();
    for proto in [Transport::Tcp, Transport::Udp] {
        let r = probe(&client, &helper, proto, "near", 80, "anyone?");
        assert_eq!(r.status, ProbeStatus::Refused, "{proto}: {r:?}");
    }
    let (c, _) = code(client.svc_stop(web80.clone()));
    assert_eq!(c, ErrorCode::NotFound);

    // An atomic request that fails takes back the service it started.
    let op: Op = serde_json::from_value(json!({"op": "svc_start", "ns": helper.ns("web"),
        "ip": WEB, "port": 8080}))
    .unwrap();
    let fail: Op =
        serde_json::from_value(json!({"op": "ns_create", "name": helper.ns("web")})).unwrap();
    let result = client.request(
        vec![op, fail],
        RequestOptions {
            atomic: true,
            progress: false,
        },
    );
    assert_eq!(code(result).0, ErrorCode::AlreadyExists);
    assert!(client.svc_list().unwrap().is_empty());
    assert_eq!(
        probe(&client, &helper, Transport::Tcp, "near", 8080, "x").status,
        ProbeStatus::Refused
    );
    assert!(client.ping().is_ok());
}

#[test]
fn limits_close_extra_connections_and_long_echoes() {
    require_priv!();
    let helper = network(&["--svc-max-connections", "1", "--svc-max-bytes", "100"]);
    let client = helper.client();
    start(&client, at(&helper, "web", WEB, 80, Transport::Tcp)).unwrap();
    // 200 bytes in, 100 back, then the connection is closed.
    let msg = "y".repeat(200);
    let r = probe(&client, &helper, Transport::Tcp, "near", 80, &msg);
    assert_eq!(r.status, ProbeStatus::Mismatch, "{r:?}");
    assert_eq!(r.reply.as_deref(), Some(&msg[..100]));
    // One connection held open from inside `near`; the next is closed at once.
    let mut holder = Command::new("ip")
        .args(["netns", "exec", &helper.ns("near"), "python3", "-c"])
        .arg(
            "import socket, time\ns = socket.create_connection(('10.0.3.100', 80))\ntime.sleep(20)",
        )
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.svc_list().unwrap()[0].open != 1 {
        assert!(Instant::now() < deadline, "the holder never connected");
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = probe(&client, &helper, Transport::Tcp, "near", 80, "me too");
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(r.status, ProbeStatus::Mismatch, "{r:?}");
    assert_eq!(r.reply, None);
    assert_eq!(client.svc_list().unwrap()[0].refused, 1);
}

#[test]
fn services_come_back_after_a_restart_and_go_with_their_namespace() {
    require_priv!();
    let mut helper = network(&[]);
    {
        let client = helper.client();
        start(&client, at(&helper, "web", WEB, 80, Transport::Tcp)).unwrap();
        client
            .svc_start(SvcStart {
                addr: at(&helper, "near", "10.0.3.101", 5353, Transport::Udp),
                tag: Some("job-1".parse().unwrap()),
            })
            .unwrap();
    }
    helper.kill9();
    helper.restart();
    let client = helper.client();
    let list = client.svc_list().unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    assert!(
        list.iter()
            .any(|s| s.tag.as_ref().is_some_and(|t| t.as_str() == "job-1"))
    );
    assert_eq!(
        probe(&client, &helper, Transport::Tcp, "near", 80, "back").status,
        ProbeStatus::Ok
    );
    let mut args = probe_args(&helper, "web", "10.0.3.101", 5353, "udp back");
    args.timeout_ms = Some(2000);
    assert_eq!(
        client.probe_echo(Transport::Udp, args).unwrap().status,
        ProbeStatus::Ok
    );

    // Deleting the host stops its service, and the namespace goes.
    client
        .host_delete(helper.ns("web").parse().unwrap())
        .unwrap();
    let left: Vec<String> = client
        .svc_list()
        .unwrap()
        .iter()
        .map(|s| s.addr.ns.to_string())
        .collect();
    assert_eq!(left, [helper.ns("near")]);
    assert!(!ip_netns_list().contains(&helper.ns("web")));
    // A clean stop and start keeps the rest.
    let status = helper.terminate();
    assert!(status.success());
    helper.restart();
    assert_eq!(helper.client().svc_list().unwrap().len(), 1);
    // So does the network's teardown, with every host.
    let out = helper.tsimctl(&["net", "teardown"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(helper.client().svc_list().unwrap().is_empty());
}
