//! Golden bytes for every message kind, decoding compatibility, and operation name checks.
//!
//! The hex strings below are the wire format: a change to any of them is a protocol change
//! and must come with a version bump and an update of PROTOCOL.md.

use tsim_protocol::error::{ErrorCode, WireError};
use tsim_protocol::frame::{decode_body, encode_body, encode_frame};
use tsim_protocol::ops::*;
use tsim_protocol::version::{self, ProtocolVersion};
use tsim_protocol::*;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn name(s: &str) -> NsName {
    s.parse().unwrap()
}

/// Checks that `msg` encodes to exactly `golden` and that `golden` decodes back to `msg`.
fn golden_client(msg: ClientMessage, golden: &str) {
    assert_eq!(
        hex(&encode_body(&msg).unwrap()),
        golden,
        "encoding of {msg:?}"
    );
    assert_eq!(decode_body::<ClientMessage>(&unhex(golden)).unwrap(), msg);
}

fn golden_server(msg: ServerMessage, golden: &str) {
    assert_eq!(
        hex(&encode_body(&msg).unwrap()),
        golden,
        "encoding of {msg:?}"
    );
    assert_eq!(decode_body::<ServerMessage>(&unhex(golden)).unwrap(), msg);
}

fn ifname(s: &str) -> IfName {
    s.parse().unwrap()
}

/// One of each network operation, with most optional fields set.
/// One of each simulated-network operation, with a small topology.
fn network_definition_ops() -> Vec<Op> {
    let topology: tsim_protocol::topology::Topology = serde_json::from_value(serde_json::json!({
        "bridges": [{"name": "br-0a010100-24", "subnet": "10.1.1.0/24"}],
        "routers": [{
            "name": "r1",
            "interfaces": [{"name": "eth0", "up": true, "addrs": [{"addr": "10.1.1.1/24"}],
                            "bridge": "br-0a010100-24", "hidden_end": "v1"}],
            "routes": [{"dst": "10.2.0.0/16", "via": "10.1.1.2", "dev": "eth0", "metric": 5},
                       {"dst": "0.0.0.0/0", "via": "10.1.1.3", "table": 100, "policy": true}],
            "rules": [{"pref": 10, "from": "10.1.1.0/24", "table": 100}],
            "sysctls": [{"key": "net.ipv4.ip_forward", "value": "1"}],
            "ipset": "create s hash:ip\n",
            "iptables": "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n"
        }]
    }))
    .unwrap();
    vec![
        Op::NetApply(tsim_protocol::ops::NetApply {
            topology,
            policy_tables: true,
        }),
        Op::NetShow(tsim_protocol::ops::NetShow {}),
        Op::NetTeardown(tsim_protocol::ops::NetTeardown {}),
        Op::NetLog(tsim_protocol::ops::NetLog {
            router: Some("r1".parse().unwrap()),
            after: Some(7),
            since_ms: Some(1_700_000_000_000),
            limit: Some(100),
        }),
    ]
}

/// One of each host operation, with the optional fields set.
fn host_ops() -> Vec<Op> {
    let cidr = |s: &str| -> Cidr { s.parse().unwrap() };
    vec![
        Op::HostAdd(HostAdd {
            name: name("web1"),
            ip: cidr("10.1.1.100/24"),
            router: name("r1"),
            router_if: Some(ifname("eth0")),
            secondaries: vec![cidr("192.0.2.1/32")],
            tag: Some("job-7".parse().unwrap()),
            share: false,
        }),
        Op::HostDelete(HostDelete {
            name: name("web1"),
            tag: None,
        }),
        Op::HostList(HostList {}),
        Op::HostClean(HostClean {
            tag: Some("job-7".parse().unwrap()),
            owner: Some(1000),
        }),
    ]
}

/// One of each service and probe operation.
fn service_ops() -> Vec<Op> {
    let addr = svc_addr();
    let probe = ProbeEcho {
        ns: name("web1"),
        dst: "10.1.1.100".parse().unwrap(),
        port: 80,
        src: Some("10.2.0.5".parse().unwrap()),
        message: Some("hi".into()),
        timeout_ms: Some(500),
        explain: false,
    };
    vec![
        Op::SvcStart(SvcStart {
            addr: addr.clone(),
            tag: Some("job-7".parse().unwrap()),
        }),
        Op::SvcStop(SvcStop { addr }),
        Op::SvcList(SvcList {}),
        Op::ProbeTcp(probe.clone()),
        Op::ProbeUdp(ProbeEcho {
            src: None,
            message: None,
            timeout_ms: None,
            ..probe
        }),
        Op::ProbePing(ProbePing {
            ns: name("web1"),
            dst: "10.2.0.5".parse().unwrap(),
            src: None,
            count: Some(2),
            interval_ms: Some(100),
            timeout_ms: None,
            explain: false,
        }),
        Op::ProbeReach(ProbeReach {
            from: vec![name("src1"), name("src2")],
            dst: "10.2.1.1".parse().unwrap(),
            ports: "22,80/tcp,53/udp".into(),
            timeout_ms: Some(500),
        }),
        Op::ProbeTrace(ProbeTrace {
            ns: name("web1"),
            dst: "10.2.0.5".parse().unwrap(),
            src: Some("10.1.1.100".parse().unwrap()),
            mode: Some(TraceMode::Udp),
            max_hops: Some(8),
            timeout_ms: Some(300),
            port: Some(33434),
            queries: None,
            explain: false,
        }),
    ]
}

fn svc_addr() -> SvcAddr {
    SvcAddr {
        ns: name("web1"),
        ip: "10.1.1.100".parse().unwrap(),
        port: 80,
        proto: Transport::Udp,
    }
}

fn host_info() -> HostInfo {
    HostInfo {
        name: name("web1"),
        ip: "10.1.1.100/24".parse().unwrap(),
        secondaries: vec!["192.0.2.1/32".parse().unwrap()],
        router: name("r1"),
        router_if: ifname("eth0"),
        gateway: "10.1.1.1".parse().unwrap(),
        gateway_added: true,
        bridge: ifname("br-0a010100-24"),
        owner_uid: 1000,
        tag: Some("job-7".parse().unwrap()),
        created_ms: 1_700_000_000_000,
        state: "ready".into(),
        leases: Vec::new(),
    }
}

fn network_ops() -> Vec<Op> {
    let ns = || name("r1");
    let cidr = |s: &str| -> Cidr { s.parse().unwrap() };
    let ip = |s: &str| -> tsim_protocol::net::Ip { s.parse().unwrap() };
    let mac: tsim_protocol::net::Mac = "02:00:00:00:00:01".parse().unwrap();
    let route = RouteSpec {
        ns: ns(),
        dst: cidr("10.2.0.0/16"),
        table: Some("100".parse().unwrap()),
        kind: Some(tsim_protocol::net::RouteType::Unicast),
        via: Some(ip("10.1.1.2")),
        dev: Some(ifname("eth0")),
        src: Some(ip("10.1.1.1")),
        metric: Some(10),
        tos: Some(4),
        scope: Some(tsim_protocol::net::Scope::Global),
        proto: Some(tsim_protocol::net::RouteProto::Static),
        onlink: true,
        nexthops: vec![NextHop {
            via: Some(ip("10.1.1.3")),
            dev: None,
            weight: Some(2),
            onlink: false,
        }],
    };
    let rule = RuleSpec {
        ns: ns(),
        family: Some(tsim_protocol::net::Family::Inet),
        pref: Some(100),
        from: Some(cidr("10.1.1.0/24")),
        to: Some(cidr("10.2.0.0/16")),
        iif: Some(ifname("eth0")),
        oif: Some(ifname("eth1")),
        fwmark: Some(1),
        fwmask: Some(255),
        tos: Some(8),
        dport: Some("80".parse().unwrap()),
        sport: Some("1000-2000".parse().unwrap()),
        ipproto: Some(tsim_protocol::net::IpProto::Tcp),
        table: Some("main".parse().unwrap()),
        action: tsim_protocol::net::RuleAction::Lookup,
    };
    let addr = AddrSpec {
        ns: ns(),
        dev: ifname("eth0"),
        addr: cidr("10.1.1.1/24"),
        broadcast: Some(ip("10.1.1.255")),
        scope: Some(tsim_protocol::net::Scope::Global),
        secondary: false,
    };
    vec![
        Op::LinkAddVeth(LinkAddVeth {
            ns: ns(),
            name: ifname("eth0"),
            peer_ns: name("hidden"),
            peer_name: ifname("r1eth0"),
            mtu: Some(1500),
            mac: Some(mac),
            peer_mac: None,
            master: None,
            peer_master: Some(ifname("br0")),
            up: true,
        }),
        Op::LinkAddBridge(LinkAddBridge {
            ns: name("hidden"),
            name: ifname("br0"),
            ageing_time: Some(30000),
            mtu: None,
            up: true,
        }),
        Op::LinkAddDummy(LinkAddDummy {
            ns: ns(),
            name: ifname("dummy0"),
            mtu: None,
            up: true,
        }),
        Op::LinkSet(LinkSet {
            ns: ns(),
            name: ifname("eth0"),
            up: Some(false),
            master: None,
            nomaster: true,
            mtu: Some(9000),
            mac: Some(mac),
            rename: Some(ifname("eth9")),
        }),
        Op::LinkDelete(LinkDelete {
            ns: ns(),
            name: ifname("eth9"),
        }),
        Op::LinkFlush(LinkFlush { ns: ns() }),
        Op::LinkList(LinkList {
            ns: ns(),
            name: None,
        }),
        Op::AddrAdd(addr.clone()),
        Op::AddrDelete(addr),
        Op::AddrList(AddrList {
            ns: ns(),
            dev: Some(ifname("eth0")),
            family: None,
        }),
        Op::RouteAdd(route.clone()),
        Op::RouteReplace(route.clone()),
        Op::RouteDelete(route),
        Op::RouteFlush(RouteFlush {
            ns: ns(),
            table: "100".parse().unwrap(),
            family: None,
        }),
        Op::RouteList(RouteList {
            ns: ns(),
            table: None,
            family: Some(tsim_protocol::net::Family::Inet6),
        }),
        Op::RouteGet(RouteGet {
            ns: ns(),
            dst: ip("10.3.1.1"),
            src: None,
            iif: None,
            mark: Some(7),
        }),
        Op::RuleAdd(rule.clone()),
        Op::RuleDelete(rule),
        Op::RuleList(RuleList {
            ns: ns(),
            family: None,
        }),
        Op::SysctlGet(SysctlGet {
            ns: ns(),
            key: "net.ipv4.ip_forward".parse().unwrap(),
        }),
        Op::SysctlSet(SysctlSet {
            ns: ns(),
            key: "net.ipv4.conf.all.arp_ignore".parse().unwrap(),
            value: "1".parse().unwrap(),
        }),
        Op::NeighReplace(NeighReplace {
            ns: ns(),
            dev: ifname("eth0"),
            ip: ip("10.1.1.9"),
            lladdr: mac,
            state: None,
        }),
        Op::NeighDelete(NeighDelete {
            ns: ns(),
            dev: ifname("eth0"),
            ip: ip("10.1.1.9"),
        }),
        Op::NeighFlush(NeighFlush {
            ns: ns(),
            dev: None,
        }),
        Op::NetemSet(NetemSet {
            ns: ns(),
            dev: ifname("eth0"),
            delay_us: 1000,
        }),
        Op::NetemDelete(NetemDelete {
            ns: ns(),
            dev: ifname("eth0"),
        }),
        Op::IptablesRestore(IptablesRestore {
            ns: ns(),
            payload: "*filter\nCOMMIT\n".into(),
            noflush: true,
            ipv6: false,
        }),
        Op::IptablesSave(IptablesSave {
            ns: ns(),
            table: Some(tsim_protocol::net::NfTable::Mangle),
            counters: true,
            ipv6: false,
        }),
        Op::IpsetRestore(IpsetRestore {
            ns: ns(),
            payload: "create s hash:ip\n".into(),
            exist: false,
        }),
        Op::IpsetSave(IpsetSave { ns: ns() }),
    ]
}

fn sample_messages() -> (Vec<ClientMessage>, Vec<ServerMessage>) {
    let client = vec![
        ClientMessage::Hello(Hello {
            protocol: version::CURRENT,
            client: "tsimctl/0.1.0".into(),
        }),
        ClientMessage::Request(Request {
            id: 1,
            ops: vec![
                Op::Ping(Ping::default()),
                Op::Ping(Ping {
                    delay_ms: Some(250),
                }),
                Op::Status(Status {}),
                Op::NsCreate(NsCreate {
                    name: name("r1"),
                    tag: Some("job-7".parse().unwrap()),
                    ipv6: Some(false),
                }),
                Op::NsDelete(NsDelete { name: name("r1") }),
                Op::NsList(NsList {}),
            ],
            atomic: true,
            progress: false,
        }),
        ClientMessage::Request(Request {
            id: 2,
            ops: network_ops(),
            atomic: true,
            progress: false,
        }),
        ClientMessage::Request(Request {
            id: 3,
            ops: network_definition_ops(),
            atomic: false,
            progress: true,
        }),
        ClientMessage::Request(Request {
            id: 4,
            ops: host_ops(),
            atomic: true,
            progress: false,
        }),
        ClientMessage::Request(Request {
            id: 5,
            ops: service_ops(),
            atomic: false,
            progress: false,
        }),
        ClientMessage::Cancel(Cancel { id: 1 }),
    ];
    let server = vec![
        ServerMessage::Welcome(Welcome {
            protocol: ProtocolVersion { major: 1, minor: 0 },
            helper_version: "0.1.0".into(),
            limits: Limits {
                max_frame: 16777216,
                max_ops: 10000,
                max_in_flight: 64,
                max_connections: 256,
            },
            peer: PeerInfo {
                uid: 1000,
                gid: 1000,
                pid: 4242,
                authorized: true,
                admin: false,
            },
        }),
        ServerMessage::Response(Response {
            id: 1,
            results: vec![
                OpResult::Ping(Pong {}),
                OpResult::NsCreate(NsCreated { name: name("r1") }),
                OpResult::NsDelete(NsDeleted { name: name("r1") }),
                OpResult::NsList(NsListing {
                    namespaces: vec![NsInfo {
                        name: name("r2"),
                        owner_uid: 0,
                        tag: None,
                        created_ms: 1_700_000_000_000,
                    }],
                }),
                OpResult::Status(StatusReport {
                    helper_version: "0.1.0".into(),
                    protocol: version::CURRENT,
                    pid: 1,
                    uptime_ms: 5,
                    state_dir: "/run/tsim".into(),
                    hidden_ns: "tsim-hidden".into(),
                    namespaces: 2,
                    connections: 1,
                    in_flight: 1,
                    requests: 3,
                    ops: vec![OpStats {
                        op: "ping".into(),
                        count: 3,
                        errors: 0,
                        p50_us: 4,
                        p90_us: 5,
                        p99_us: 6,
                        max_us: 7,
                    }],
                    tool_jail: Some(ToolJail {
                        landlock_abi: 7,
                        payloads_refused: false,
                        summary: "j".into(),
                    }),
                    explain_unsupported: None,
                }),
            ],
            error: None,
        }),
        ServerMessage::Response(Response {
            id: 2,
            results: vec![],
            error: Some(WireError::new(ErrorCode::NotManaged, "x").at(3)),
        }),
        ServerMessage::Response(Response {
            id: 4,
            results: vec![
                OpResult::HostAdd(HostAdded {
                    host: host_info(),
                    reused: false,
                    pooled: true,
                    shared: false,
                }),
                OpResult::HostDelete(Done {}),
                OpResult::HostList(Hosts {
                    hosts: vec![host_info()],
                }),
                OpResult::HostClean(HostsCleaned {
                    removed: vec![name("web1")],
                    released: Vec::new(),
                }),
            ],
            error: None,
        }),
        ServerMessage::Response(Response {
            id: 5,
            results: vec![
                OpResult::SvcStart(SvcInfo {
                    addr: svc_addr(),
                    owner_uid: 1000,
                    tag: Some("job-7".parse().unwrap()),
                    created_ms: 1_700_000_000_000,
                    open: 1,
                    served: 2,
                    bytes: 3,
                    refused: 0,
                }),
                OpResult::SvcStop(Done {}),
                OpResult::SvcList(Services { services: vec![] }),
                OpResult::ProbeTcp(ProbeEchoResult {
                    status: ProbeStatus::Ok,
                    local: Some("10.2.0.5:40000".into()),
                    reply: Some("hi".into()),
                    elapsed_us: 250,
                    detail: None,
                    explain: None,
                }),
                OpResult::ProbeUdp(ProbeEchoResult {
                    status: ProbeStatus::Refused,
                    local: None,
                    reply: None,
                    elapsed_us: 90,
                    detail: Some("refused".into()),
                    explain: None,
                }),
                OpResult::ProbePing(PingResult {
                    sent: 2,
                    received: 1,
                    replies: vec![PingReply {
                        seq: 1,
                        from: "10.2.0.5".parse().unwrap(),
                        rtt_us: 120,
                        ttl: 62,
                    }],
                    errors: vec![PingError {
                        seq: 2,
                        from: "10.1.1.1".parse().unwrap(),
                        kind: "time_exceeded".into(),
                        code: 0,
                    }],
                    explain: None,
                }),
                OpResult::ProbeReach(ReachResult {
                    dscp: 32,
                    routers: vec![ReachRouter {
                        router: name("hq-gw"),
                        from: name("src1"),
                        egress: Some("eth0".into()),
                        services: vec![ReachService {
                            port: 22,
                            proto: Transport::Tcp,
                            verdict: Verdict::No,
                            seen: 1,
                            forwarded: 0,
                            dropped_by: None,
                        }],
                    }],
                }),
                OpResult::ProbeTrace(TraceResult {
                    hops: vec![
                        TraceHop {
                            ttl: 1,
                            from: Some("10.1.1.1".parse().unwrap()),
                            rtt_us: Some(80),
                            kind: Some("time_exceeded".into()),
                            code: None,
                            sent: None,
                            replies: Vec::new(),
                        },
                        TraceHop {
                            ttl: 2,
                            from: None,
                            rtt_us: None,
                            kind: None,
                            code: None,
                            sent: None,
                            replies: Vec::new(),
                        },
                    ],
                    reached: false,
                    explain: None,
                }),
            ],
            error: None,
        }),
        ServerMessage::Event(Event {
            id: 2,
            done: 1,
            total: 4,
            stage: "ns_create".into(),
        }),
        ServerMessage::Error(WireError::new(ErrorCode::PermissionDenied, "no")),
    ];
    (client, server)
}

const GOLDEN_CLIENT: [&str; 7] = [
    "83a474797065a568656c6c6fa870726f746f636f6c920105a6636c69656e74ad7473696d63746c2f302e312e30",
    "85a474797065a772657175657374a2696401a36f70739681a26f70a470696e6782a26f70a470696e67a864656c61795f6d73ccfa81a26f70a673746174757384a26f70a96e735f637265617465a46e616d65a27231a3746167a56a6f622d37a469707636c282a26f70a96e735f64656c657465a46e616d65a2723181a26f70a76e735f6c697374a661746f6d6963c3a870726f6772657373c2",
    "85a474797065a772657175657374a2696402a36f7073dc001e89a26f70ad6c696e6b5f6164645f76657468a26e73a27231a46e616d65a465746830a7706565725f6e73a668696464656ea9706565725f6e616d65a6723165746830a36d7475cd05dca36d6163b130323a30303a30303a30303a30303a3031ab706565725f6d6173746572a3627230a27570c385a26f70af6c696e6b5f6164645f627269646765a26e73a668696464656ea46e616d65a3627230ab616765696e675f74696d65cd7530a27570c384a26f70ae6c696e6b5f6164645f64756d6d79a26e73a27231a46e616d65a664756d6d7930a27570c388a26f70a86c696e6b5f736574a26e73a27231a46e616d65a465746830a27570c2a86e6f6d6173746572c3a36d7475cd2328a36d6163b130323a30303a30303a30303a30303a3031a672656e616d65a46574683983a26f70ab6c696e6b5f64656c657465a26e73a27231a46e616d65a46574683982a26f70aa6c696e6b5f666c757368a26e73a2723182a26f70a96c696e6b5f6c697374a26e73a2723186a26f70a8616464725f616464a26e73a27231a3646576a465746830a461646472ab31302e312e312e312f3234a962726f616463617374aa31302e312e312e323535a573636f7065a6676c6f62616c86a26f70ab616464725f64656c657465a26e73a27231a3646576a465746830a461646472ab31302e312e312e312f3234a962726f616463617374aa31302e312e312e323535a573636f7065a6676c6f62616c83a26f70a9616464725f6c697374a26e73a27231a3646576a4657468308ea26f70a9726f7574655f616464a26e73a27231a3647374ab31302e322e302e302f3136a57461626c6564a46b696e64a7756e6963617374a3766961a831302e312e312e32a3646576a465746830a3737263a831302e312e312e31a66d65747269630aa3746f7304a573636f7065a6676c6f62616ca570726f746fa6737461746963a66f6e6c696e6bc3a86e657874686f70739182a3766961a831302e312e312e33a6776569676874028ea26f70ad726f7574655f7265706c616365a26e73a27231a3647374ab31302e322e302e302f3136a57461626c6564a46b696e64a7756e6963617374a3766961a831302e312e312e32a3646576a465746830a3737263a831302e312e312e31a66d65747269630aa3746f7304a573636f7065a6676c6f62616ca570726f746fa6737461746963a66f6e6c696e6bc3a86e657874686f70739182a3766961a831302e312e312e33a6776569676874028ea26f70ac726f7574655f64656c657465a26e73a27231a3647374ab31302e322e302e302f3136a57461626c6564a46b696e64a7756e6963617374a3766961a831302e312e312e32a3646576a465746830a3737263a831302e312e312e31a66d65747269630aa3746f7304a573636f7065a6676c6f62616ca570726f746fa6737461746963a66f6e6c696e6bc3a86e657874686f70739182a3766961a831302e312e312e33a67765696768740283a26f70ab726f7574655f666c757368a26e73a27231a57461626c656483a26f70aa726f7574655f6c697374a26e73a27231a666616d696c79a5696e65743684a26f70a9726f7574655f676574a26e73a27231a3647374a831302e332e312e31a46d61726b07de0010a26f70a872756c655f616464a26e73a27231a666616d696c79a4696e6574a47072656664a466726f6dab31302e312e312e302f3234a2746fab31302e322e302e302f3136a3696966a465746830a36f6966a465746831a666776d61726b01a666776d61736bccffa3746f7308a564706f7274a23830a573706f7274a9313030302d32303030a7697070726f746fa3746370a57461626c65ccfea6616374696f6ea66c6f6f6b7570de0010a26f70ab72756c655f64656c657465a26e73a27231a666616d696c79a4696e6574a47072656664a466726f6dab31302e312e312e302f3234a2746fab31302e322e302e302f3136a3696966a465746830a36f6966a465746831a666776d61726b01a666776d61736bccffa3746f7308a564706f7274a23830a573706f7274a9313030302d32303030a7697070726f746fa3746370a57461626c65ccfea6616374696f6ea66c6f6f6b757082a26f70a972756c655f6c697374a26e73a2723183a26f70aa73797363746c5f676574a26e73a27231a36b6579b36e65742e697076342e69705f666f727761726484a26f70aa73797363746c5f736574a26e73a27231a36b6579bc6e65742e697076342e636f6e662e616c6c2e6172705f69676e6f7265a576616c7565a13185a26f70ad6e656967685f7265706c616365a26e73a27231a3646576a465746830a26970a831302e312e312e39a66c6c61646472b130323a30303a30303a30303a30303a303184a26f70ac6e656967685f64656c657465a26e73a27231a3646576a465746830a26970a831302e312e312e3982a26f70ab6e656967685f666c757368a26e73a2723184a26f70a96e6574656d5f736574a26e73a27231a3646576a465746830a864656c61795f7573cd03e883a26f70ac6e6574656d5f64656c657465a26e73a27231a3646576a46574683084a26f70b069707461626c65735f726573746f7265a26e73a27231a77061796c6f6164af2a66696c7465720a434f4d4d49540aa76e6f666c757368c384a26f70ad69707461626c65735f73617665a26e73a27231a57461626c65a66d616e676c65a8636f756e74657273c383a26f70ad69707365745f726573746f7265a26e73a27231a77061796c6f6164b1637265617465207320686173683a69700a82a26f70aa69707365745f73617665a26e73a27231a661746f6d6963c3a870726f6772657373c2",
    concat!(
        "85a474797065a772657175657374a2696403a36f70739483a26f70a96e65745f6170706c79a8746f706f6c6f",
        "677982a7627269646765739182a46e616d65ae62722d30613031303130302d3234a67375626e6574ab31302e",
        "312e312e302f3234a7726f75746572739187a46e616d65a27231aa696e74657266616365739185a46e616d65",
        "a465746830a27570c3a561646472739181a461646472ab31302e312e312e312f3234a6627269646765ae6272",
        "2d30613031303130302d3234aa68696464656e5f656e64a27631a6726f757465739284a3647374ab31302e32",
        "2e302e302f3136a3766961a831302e312e312e32a3646576a465746830a66d65747269630584a3647374a930",
        "2e302e302e302f30a57461626c6564a6706f6c696379c3a3766961a831302e312e312e33a572756c65739184",
        "a4707265660aa466726f6dab31302e312e312e302f3234a57461626c6564a6616374696f6ea66c6f6f6b7570",
        "a773797363746c739182a36b6579b36e65742e697076342e69705f666f7277617264a576616c7565a131a569",
        "70736574b1637265617465207320686173683a69700aa869707461626c6573d9232a66696c7465720a3a494e",
        "50555420414343455054205b303a305d0a434f4d4d49540aad706f6c6963795f7461626c6573c381a26f70a8",
        "6e65745f73686f7781a26f70ac6e65745f74656172646f776e85a26f70a76e65745f6c6f67a6726f75746572",
        "a27231a5616674657207a873696e63655f6d73cf0000018bcfe56800a56c696d697464a661746f6d6963c2a8",
        "70726f6772657373c3",
    ),
    concat!(
        "85a474797065a772657175657374a2696404a36f70739487a26f70a8686f73745f616464a46e616d65a47765",
        "6231a26970ad31302e312e312e3130302f3234a6726f75746572a27231a9726f757465725f6966a465746830",
        "ab7365636f6e64617269657391ac3139322e302e322e312f3332a3746167a56a6f622d3782a26f70ab686f73",
        "745f64656c657465a46e616d65a47765623181a26f70a9686f73745f6c69737483a26f70aa686f73745f636c",
        "65616ea3746167a56a6f622d37a56f776e6572cd03e8a661746f6d6963c3a870726f6772657373c2",
    ),
    concat!(
        "85a474797065a772657175657374a2696405a36f70739886a26f70a97376635f7374617274a26e73a4776562",
        "31a26970aa31302e312e312e313030a4706f727450a570726f746fa3756470a3746167a56a6f622d3785a26f",
        "70a87376635f73746f70a26e73a477656231a26970aa31302e312e312e313030a4706f727450a570726f746f",
        "a375647081a26f70a87376635f6c69737487a26f70a970726f62655f746370a26e73a477656231a3647374aa",
        "31302e312e312e313030a4706f727450a3737263a831302e322e302e35a76d657373616765a26869aa74696d",
        "656f75745f6d73cd01f484a26f70a970726f62655f756470a26e73a477656231a3647374aa31302e312e312e",
        "313030a4706f72745085a26f70aa70726f62655f70696e67a26e73a477656231a3647374a831302e322e302e",
        "35a5636f756e7402ab696e74657276616c5f6d736485a26f70ab70726f62655f7265616368a466726f6d92a4",
        "73726331a473726332a3647374a831302e322e312e31a5706f727473b032322c38302f7463702c35332f7564",
        "70aa74696d656f75745f6d73cd01f488a26f70ab70726f62655f7472616365a26e73a477656231a3647374a8",
        "31302e322e302e35a3737263aa31302e312e312e313030a46d6f6465a3756470a86d61785f686f707308aa74",
        "696d656f75745f6d73cd012ca4706f7274cd829aa661746f6d6963c2a870726f6772657373c2",
    ),
    "82a474797065a663616e63656ca2696401",
];

const GOLDEN_SERVER: [&str; 7] = [
    "85a474797065a777656c636f6d65a870726f746f636f6c920100ae68656c7065725f76657273696f6ea5302e312e30a66c696d69747384a96d61785f6672616d65ce01000000a76d61785f6f7073cd2710ad6d61785f696e5f666c6967687440af6d61785f636f6e6e656374696f6e73cd0100a47065657285a3756964cd03e8a3676964cd03e8a3706964cd1092aa617574686f72697a6564c3a561646d696ec2",
    "83a474797065a8726573706f6e7365a2696401a7726573756c74739581a26f70a470696e6782a26f70a96e735f637265617465a46e616d65a2723182a26f70a96e735f64656c657465a46e616d65a2723182a26f70a76e735f6c697374aa6e616d657370616365739183a46e616d65a27232a96f776e65725f75696400aa637265617465645f6d73cf0000018bcfe568008da26f70a6737461747573ae68656c7065725f76657273696f6ea5302e312e30a870726f746f636f6c920105a370696401a9757074696d655f6d7305a973746174655f646972a92f72756e2f7473696da968696464656e5f6e73ab7473696d2d68696464656eaa6e616d6573706163657302ab636f6e6e656374696f6e7301a9696e5f666c6967687401a8726571756573747303a36f70739187a26f70a470696e67a5636f756e7403a66572726f727300a67035305f757304a67039305f757305a67039395f757306a66d61785f757307a9746f6f6c5f6a61696c83ac6c616e646c6f636b5f61626907b07061796c6f6164735f72656675736564c2a773756d6d617279a16a",
    "84a474797065a8726573706f6e7365a2696402a7726573756c747390a56572726f7283a4636f6465ab6e6f745f6d616e61676564a76d657373616765a178a86f705f696e64657803",
    concat!(
        "83a474797065a8726573706f6e7365a2696404a7726573756c74739483a26f70a8686f73745f616464a4686f",
        "73748ca46e616d65a477656231a26970ad31302e312e312e3130302f3234ab7365636f6e64617269657391ac",
        "3139322e302e322e312f3332a6726f75746572a27231a9726f757465725f6966a465746830a7676174657761",
        "79a831302e312e312e31ad676174657761795f6164646564c3a6627269646765ae62722d3061303130313030",
        "2d3234a96f776e65725f756964cd03e8a3746167a56a6f622d37aa637265617465645f6d73cf0000018bcfe5",
        "6800a57374617465a57265616479a6706f6f6c6564c381a26f70ab686f73745f64656c65746582a26f70a968",
        "6f73745f6c697374a5686f737473918ca46e616d65a477656231a26970ad31302e312e312e3130302f3234ab",
        "7365636f6e64617269657391ac3139322e302e322e312f3332a6726f75746572a27231a9726f757465725f69",
        "66a465746830a767617465776179a831302e312e312e31ad676174657761795f6164646564c3a66272696467",
        "65ae62722d30613031303130302d3234a96f776e65725f756964cd03e8a3746167a56a6f622d37aa63726561",
        "7465645f6d73cf0000018bcfe56800a57374617465a5726561647982a26f70aa686f73745f636c65616ea772",
        "656d6f76656491a477656231",
    ),
    concat!(
        "83a474797065a8726573706f6e7365a2696405a7726573756c7473988ba26f70a97376635f7374617274a26e",
        "73a477656231a26970aa31302e312e312e313030a4706f727450a570726f746fa3756470a96f776e65725f75",
        "6964cd03e8a3746167a56a6f622d37aa637265617465645f6d73cf0000018bcfe56800a46f70656e01a67365",
        "7276656402a562797465730381a26f70a87376635f73746f7082a26f70a87376635f6c697374a87365727669",
        "6365739085a26f70a970726f62655f746370a6737461747573a26f6ba56c6f63616cae31302e322e302e353a",
        "3430303030a57265706c79a26869aa656c61707365645f7573ccfa84a26f70a970726f62655f756470a67374",
        "61747573a772656675736564aa656c61707365645f75735aa664657461696ca77265667573656485a26f70aa",
        "70726f62655f70696e67a473656e7402a8726563656976656401a77265706c6965739184a373657101a46672",
        "6f6da831302e322e302e35a67274745f757378a374746c3ea66572726f72739184a373657102a466726f6da8",
        "31302e312e312e31a46b696e64ad74696d655f6578636565646564a4636f64650083a26f70ab70726f62655f",
        "7265616368a46473637020a7726f75746572739184a6726f75746572a568712d6777a466726f6da473726331",
        "a6656772657373a465746830a873657276696365739185a4706f727416a570726f746fa3746370a776657264",
        "696374a26e6fa47365656e01a9666f727761726465640083a26f70ab70726f62655f7472616365a4686f7073",
        "9284a374746c01a466726f6da831302e312e312e31a67274745f757350a46b696e64ad74696d655f65786365",
        "6564656481a374746c02a772656163686564c2",
    ),
    "85a474797065a56576656e74a2696402a4646f6e6501a5746f74616c04a57374616765a96e735f637265617465",
    "83a474797065a56572726f72a4636f6465b17065726d697373696f6e5f64656e696564a76d657373616765a26e6f",
];

#[test]
fn golden_bytes_of_every_message_kind() {
    let (client, server) = sample_messages();
    for (msg, golden) in client.into_iter().zip(GOLDEN_CLIENT) {
        golden_client(msg, golden);
    }
    for (msg, golden) in server.into_iter().zip(GOLDEN_SERVER) {
        golden_server(msg, golden);
    }
}

#[test]
fn hello_frame_matches_protocol_md() {
    // The byte-level example in PROTOCOL.md, header included.
    let hello = ClientMessage::Hello(Hello {
        protocol: version::CURRENT,
        client: "tsimctl/0.1.0".into(),
    });
    let frame = encode_frame(&hello, version::DEFAULT_MAX_FRAME).unwrap();
    let expected = "0000002d83a474797065a568656c6c6fa870726f746f636f6c920105a6636c69656e74ad7473696d63746c2f302e312e30";
    assert_eq!(hex(&frame), expected);
    let doc = include_str!("../PROTOCOL.md");
    let example = doc
        .split("### Byte-level example")
        .nth(1)
        .expect("example section");
    let block = example.split("```").nth(1).expect("code block");
    let shown: String = block
        .lines()
        .flat_map(|line| {
            line.split_whitespace()
                .take_while(|t| t.len() == 2 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        })
        .collect();
    assert_eq!(
        shown, expected,
        "PROTOCOL.md must show the Hello frame bytes"
    );
}

#[test]
fn every_op_name_matches_its_serde_tag() {
    let (client, _) = sample_messages();
    let mut seen: Vec<&str> = Vec::new();
    let requests = client.iter().filter_map(|m| match m {
        ClientMessage::Request(r) => Some(r),
        _ => None,
    });
    for op in requests.flat_map(|r| r.ops.iter()) {
        let value: rmpv::Value = decode_body(&encode_body(op).unwrap()).unwrap();
        let tag = value.as_map().unwrap()[0].1.as_str().unwrap().to_owned();
        assert_eq!(tag, op.name());
        seen.push(op.name());
    }
    for name in Op::NAMES {
        assert!(seen.contains(name), "sample request lacks op {name}");
    }
}

#[test]
fn protocol_md_documents_every_code_and_op() {
    let doc = include_str!("../PROTOCOL.md");
    for code in ErrorCode::ALL {
        assert!(
            doc.contains(&format!("`{}`", code.as_str())),
            "PROTOCOL.md lacks code {code}"
        );
        let wire: String = rmp_decode_str(&encode_body(&code).unwrap());
        assert_eq!(wire, code.as_str());
    }
    for op in Op::NAMES {
        assert!(
            doc.contains(&format!("`{op}`")),
            "PROTOCOL.md lacks op {op}"
        );
    }
}

fn rmp_decode_str(bytes: &[u8]) -> String {
    decode_body::<String>(bytes).unwrap()
}

#[test]
fn newer_fields_are_ignored_by_this_version() {
    // A newer peer adds fields at every level; this version must still decode the message.
    let newer = serde_json::json!({
        "type": "request", "id": 5, "atomic": false, "deadline_ms": 100,
        "ops": [{"op": "ns_create", "name": "r9", "mtu": 9000, "labels": {"a": 1}}],
    });
    let msg: ClientMessage = decode_body(&encode_body(&newer).unwrap()).unwrap();
    let ClientMessage::Request(req) = msg else {
        panic!("not a request")
    };
    assert_eq!(
        req.ops,
        vec![Op::NsCreate(NsCreate {
            name: name("r9"),
            tag: None,
            ipv6: None
        })]
    );
    assert!(!req.progress);

    let newer_hello =
        serde_json::json!({"type": "hello", "protocol": [1, 7], "client": "py", "features": ["x"]});
    let msg: ClientMessage = decode_body(&encode_body(&newer_hello).unwrap()).unwrap();
    assert_eq!(
        msg,
        ClientMessage::Hello(Hello {
            protocol: (1, 7).into(),
            client: "py".into()
        })
    );

    let newer_welcome = serde_json::json!({
        "type": "welcome", "protocol": [1, 3], "helper_version": "9", "motd": "hi",
        "limits": {"max_frame": 1, "max_ops": 2, "max_in_flight": 3, "max_connections": 4, "max_quota": 5},
        "peer": {"uid": 0, "gid": 0, "pid": 1, "authorized": true, "admin": true, "groups": [1]},
    });
    let msg: ServerMessage = decode_body(&encode_body(&newer_welcome).unwrap()).unwrap();
    assert!(matches!(msg, ServerMessage::Welcome(w) if w.protocol.minor == 3));
}

#[test]
fn integers_of_any_width_decode() {
    // Other encoders may use wider integer formats than needed: uint64 id, uint32 delay.
    let mut body = unhex(
        "84a474797065a772657175657374a26964cf0000000000000007a36f70739182a26f70a470696e67a864656c61795f6d73ce00000005a661746f6d6963c2",
    );
    let msg: ClientMessage = decode_body(&body).unwrap();
    let ClientMessage::Request(req) = msg else {
        panic!("not a request")
    };
    assert_eq!(req.id, 7);
    assert_eq!(req.ops, vec![Op::Ping(Ping { delay_ms: Some(5) })]);
    body.truncate(body.len() - 3);
    assert!(decode_body::<ClientMessage>(&body).is_err());
}

#[test]
fn invalid_names_cannot_be_decoded() {
    for bad in ["../x", "", "a/b", "a\0b", &"n".repeat(300)] {
        let op = serde_json::json!({"op": "ns_create", "name": bad});
        let err = decode_body::<Op>(&encode_body(&op).unwrap()).unwrap_err();
        let msg = std::error::Error::source(&err).unwrap().to_string();
        assert!(msg.contains("invalid namespace name"), "{msg}");
    }
}

#[test]
fn shared_hosts_have_golden_bytes() {
    // Since 1.3: `share` and a lease tag on `host_add` and `host_delete`; `shared`, the
    // leases and the released hosts in the answers.
    let tag = || -> Tag { "job-7".parse().unwrap() };
    let ops = [
        Op::HostAdd(HostAdd {
            name: name("web2"),
            ip: "10.1.1.100/24".parse().unwrap(),
            router: name("r1"),
            router_if: None,
            secondaries: Vec::new(),
            tag: Some(tag()),
            share: true,
        }),
        Op::HostDelete(HostDelete {
            name: name("web1"),
            tag: Some(tag()),
        }),
    ];
    let mut host = host_info();
    host.leases = vec![
        Lease {
            uid: 1000,
            tag: "job-6".parse().unwrap(),
            since_ms: 1_700_000_000_000,
        },
        Lease {
            uid: 1000,
            tag: tag(),
            since_ms: 1_700_000_000_500,
        },
    ];
    let results = [
        OpResult::HostAdd(HostAdded {
            host,
            reused: false,
            pooled: false,
            shared: true,
        }),
        OpResult::HostClean(HostsCleaned {
            removed: Vec::new(),
            released: vec![name("web1")],
        }),
    ];
    let got: Vec<String> = ops
        .iter()
        .map(|op| hex(&encode_body(op).unwrap()))
        .chain(results.iter().map(|r| hex(&encode_body(r).unwrap())))
        .collect();
    assert_eq!(got, SHARED_GOLDEN, "{got:#?}");
    for (op, golden) in ops.iter().zip(SHARED_GOLDEN) {
        assert_eq!(&decode_body::<Op>(&unhex(golden)).unwrap(), op);
    }
}

const SHARED_GOLDEN: [&str; 4] = [
    "86a26f70a8686f73745f616464a46e616d65a477656232a26970ad31302e312e312e3130302f3234a6726f75746572a27231a3746167a56a6f622d37a57368617265c3",
    "83a26f70ab686f73745f64656c657465a46e616d65a477656231a3746167a56a6f622d37",
    "83a26f70a8686f73745f616464a4686f73748da46e616d65a477656231a26970ad31302e312e312e3130302f3234ab7365636f6e64617269657391ac3139322e302e322e312f3332a6726f75746572a27231a9726f757465725f6966a465746830a767617465776179a831302e312e312e31ad676174657761795f6164646564c3a6627269646765ae62722d30613031303130302d3234a96f776e65725f756964cd03e8a3746167a56a6f622d37aa637265617465645f6d73cf0000018bcfe56800a57374617465a57265616479a66c65617365739283a3756964cd03e8a3746167a56a6f622d36a873696e63655f6d73cf0000018bcfe5680083a3756964cd03e8a3746167a56a6f622d37a873696e63655f6d73cf0000018bcfe569f4a6736861726564c3",
    "83a26f70aa686f73745f636c65616ea772656d6f76656490a872656c656173656491a477656231",
];

#[test]
fn traces_with_queries_have_golden_bytes() {
    // Since 1.3: `queries` on `probe_trace`; `sent` and `replies` on each hop.
    let op = Op::ProbeTrace(ProbeTrace {
        ns: name("h1"),
        dst: "10.0.3.100".parse().unwrap(),
        src: None,
        mode: None,
        max_hops: None,
        timeout_ms: None,
        port: None,
        queries: Some(2),
        explain: false,
    });
    let result = OpResult::ProbeTrace(TraceResult {
        hops: vec![TraceHop {
            ttl: 1,
            from: Some("10.0.3.1".parse().unwrap()),
            rtt_us: Some(40),
            kind: Some("time_exceeded".into()),
            code: None,
            sent: Some(2),
            replies: vec![TraceReply {
                query: 0,
                from: "10.0.3.1".parse().unwrap(),
                rtt_us: 40,
                kind: "time_exceeded".into(),
                code: None,
            }],
        }],
        reached: false,
        explain: None,
    });
    let got = [
        hex(&encode_body(&op).unwrap()),
        hex(&encode_body(&result).unwrap()),
    ];
    assert_eq!(got, TRACE_GOLDEN, "{got:#?}");
    assert_eq!(decode_body::<Op>(&unhex(TRACE_GOLDEN[0])).unwrap(), op);
    assert_eq!(
        decode_body::<OpResult>(&unhex(TRACE_GOLDEN[1])).unwrap(),
        result
    );
}

const TRACE_GOLDEN: [&str; 2] = [
    "84a26f70ab70726f62655f7472616365a26e73a26831a3647374aa31302e302e332e313030a77175657269657302",
    "83a26f70ab70726f62655f7472616365a4686f70739186a374746c01a466726f6da831302e302e332e31a67274745f757328a46b696e64ad74696d655f6578636565646564a473656e7402a77265706c6965739184a5717565727900a466726f6da831302e302e332e31a67274745f757328a46b696e64ad74696d655f6578636565646564a772656163686564c2",
];

#[test]
fn explained_probes_have_golden_bytes() {
    // Since 1.5: `explain` on `probe_ping`, `probe_tcp` and `probe_udp`, and the
    // explanation in their results; `dropped_by` in `probe_reach`'s verdicts.
    let op = Op::ProbePing(ProbePing {
        ns: name("h1"),
        dst: "10.0.3.100".parse().unwrap(),
        src: None,
        count: Some(1),
        interval_ms: None,
        timeout_ms: None,
        explain: true,
    });
    let result = OpResult::ProbeTcp(ProbeEchoResult {
        status: ProbeStatus::Timeout,
        local: None,
        reply: None,
        elapsed_us: 1000,
        detail: None,
        explain: Some(Explanation {
            dscp: 49,
            routers: vec![ExplainRouter {
                router: name("r1"),
                packets: vec![ExplainPacket {
                    packet: "TCP 10.0.1.2:40000 > 10.0.3.100:22 SYN ttl 64".into(),
                    steps: vec![
                        ExplainStep {
                            table: "filter".into(),
                            chain: "FORWARD".into(),
                            kind: "rule".into(),
                            position: Some(2),
                            rule: Some("-A FORWARD -p tcp -m tcp --dport 22 -j DROP".into()),
                            verdict: "drop".into(),
                        },
                        ExplainStep {
                            table: "nat".into(),
                            chain: "PREROUTING".into(),
                            kind: "policy".into(),
                            position: None,
                            rule: None,
                            verdict: "accept".into(),
                        },
                    ],
                    verdict: "drop".into(),
                }],
                dropped_by: Some("filter FORWARD #2".into()),
                incomplete: false,
            }],
            unsupported: None,
        }),
    });
    let reach = OpResult::ProbeReach(ReachResult {
        dscp: 33,
        routers: vec![ReachRouter {
            router: name("r1"),
            from: name("h1"),
            egress: None,
            services: vec![ReachService {
                port: 22,
                proto: Transport::Tcp,
                verdict: Verdict::No,
                seen: 1,
                forwarded: 0,
                dropped_by: Some("filter FORWARD policy".into()),
            }],
        }],
    });
    let trace = Op::ProbeTrace(ProbeTrace {
        ns: name("h1"),
        dst: "10.0.3.100".parse().unwrap(),
        src: None,
        mode: None,
        max_hops: None,
        timeout_ms: None,
        port: None,
        queries: None,
        explain: true,
    });
    let got = [
        hex(&encode_body(&op).unwrap()),
        hex(&encode_body(&result).unwrap()),
        hex(&encode_body(&reach).unwrap()),
        hex(&encode_body(&trace).unwrap()),
    ];
    assert_eq!(got, EXPLAIN_GOLDEN, "{got:#?}");
    assert_eq!(decode_body::<Op>(&unhex(EXPLAIN_GOLDEN[0])).unwrap(), op);
    assert_eq!(
        decode_body::<OpResult>(&unhex(EXPLAIN_GOLDEN[1])).unwrap(),
        result
    );
    assert_eq!(
        decode_body::<OpResult>(&unhex(EXPLAIN_GOLDEN[2])).unwrap(),
        reach
    );
    assert_eq!(decode_body::<Op>(&unhex(EXPLAIN_GOLDEN[3])).unwrap(), trace);
}

const EXPLAIN_GOLDEN: [&str; 4] = [
    "85a26f70aa70726f62655f70696e67a26e73a26831a3647374aa31302e302e332e313030a5636f756e7401a76578706c61696ec3",
    "84a26f70a970726f62655f746370a6737461747573a774696d656f7574aa656c61707365645f7573cd03e8a76578706c61696e82a46473637031a7726f75746572739183a6726f75746572a27231a77061636b6574739183a67061636b6574d92d5443502031302e302e312e323a3430303030203e2031302e302e332e3130303a32322053594e2074746c203634a573746570739286a57461626c65a666696c746572a5636861696ea7464f5257415244a46b696e64a472756c65a8706f736974696f6e02a472756c65d92b2d4120464f5257415244202d7020746370202d6d20746370202d2d64706f7274203232202d6a2044524f50a776657264696374a464726f7084a57461626c65a36e6174a5636861696eaa505245524f5554494e47a46b696e64a6706f6c696379a776657264696374a6616363657074a776657264696374a464726f70aa64726f707065645f6279b166696c74657220464f5257415244202332",
    "83a26f70ab70726f62655f7265616368a46473637021a7726f75746572739183a6726f75746572a27231a466726f6da26831a873657276696365739186a4706f727416a570726f746fa3746370a776657264696374a26e6fa47365656e01a9666f7277617264656400aa64726f707065645f6279b566696c74657220464f525741524420706f6c696379",
    "84a26f70ab70726f62655f7472616365a26e73a26831a3647374aa31302e302e332e313030a76578706c61696ec3",
];
