//! Property tests of the wire encoding: every value built from valid parts survives
//! `decode(encode(x)) == x` (names, addresses, operations, results and whole messages), a
//! frame's header announces its body, and a string outside a name's grammar never decodes.

use std::net::IpAddr;

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tsim_protocol::error::{ErrorCode, WireError};
use tsim_protocol::frame::{body_len, decode_body, encode_body, encode_frame};
use tsim_protocol::net::{
    Family, Ip, IpProto, Mac, NeighState, PortRange, RouteProto, RouteType, RuleAction, Scope,
    SysctlKey, SysctlValue, TableId,
};
use tsim_protocol::ops::*;
use tsim_protocol::topology::{
    AddrDef, BridgeDef, InterfaceDef, RouteDef, RouterDef, RuleDef, SysctlDef, Topology,
};
use tsim_protocol::version::{DEFAULT_MAX_FRAME, HEADER_LEN};
use tsim_protocol::*;

/// Few enough cases to keep the file under a few seconds; no regression files in the tree.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// `decode(encode(x)) == x`, and the same through a whole frame.
fn round_trip<T>(value: &T) -> Result<(), TestCaseError>
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let body = encode_body(value).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
    let back: T = decode_body(&body).map_err(|e| {
        let cause = std::error::Error::source(&e).map(ToString::to_string);
        TestCaseError::fail(format!("{value:?} does not decode back: {cause:?}"))
    })?;
    prop_assert_eq!(&back, value);
    let frame = encode_frame(value, DEFAULT_MAX_FRAME).expect("small values fit a frame");
    let header: [u8; HEADER_LEN] = frame[..HEADER_LEN].try_into().unwrap();
    prop_assert_eq!(
        body_len(header, DEFAULT_MAX_FRAME).unwrap(),
        frame.len() - HEADER_LEN
    );
    prop_assert_eq!(&frame[HEADER_LEN..], &body[..]);
    if let Ok(limit) = u32::try_from(body.len() - 1) {
        prop_assert!(
            encode_frame(value, limit).is_err(),
            "a frame over the limit"
        );
        prop_assert!(body_len(header, limit).is_err(), "a header over the limit");
    }
    Ok(())
}

// ---- Names and network values.

fn ns_name() -> impl Strategy<Value = NsName> {
    "[A-Za-z0-9_.][A-Za-z0-9_.-]{0,63}"
        .prop_filter("not . or ..", |s| s != "." && s != "..")
        .prop_map(|s| s.parse().unwrap())
}

fn if_name() -> impl Strategy<Value = IfName> {
    // Printable ASCII without `/`, `:` and `%`.
    "[!-$&-.0-9;-~]{1,15}"
        .prop_filter("not . or ..", |s| s != "." && s != "..")
        .prop_map(|s| s.parse().unwrap())
}

fn tag() -> impl Strategy<Value = Tag> {
    "[A-Za-z0-9_.:@+=/-]{1,64}".prop_map(|s| s.parse().unwrap())
}

fn ip_addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(IpAddr::from),
        any::<[u8; 16]>().prop_map(IpAddr::from),
        // IPv4-mapped and -compatible IPv6, whose text mixes both notations.
        any::<[u8; 4]>().prop_map(|v4| IpAddr::from(std::net::Ipv4Addr::from(v4).to_ipv6_mapped())),
    ]
}

fn cidr() -> impl Strategy<Value = Cidr> {
    ip_addr()
        .prop_flat_map(|addr| (Just(addr), 0..=if addr.is_ipv4() { 32u8 } else { 128 }))
        .prop_map(|(addr, prefix)| Cidr::new(addr, prefix).unwrap())
}

fn ip() -> impl Strategy<Value = Ip> {
    ip_addr().prop_map(Ip)
}

fn mac() -> impl Strategy<Value = Mac> {
    any::<[u8; 6]>().prop_map(Mac)
}

fn port_range() -> impl Strategy<Value = PortRange> {
    (any::<u16>(), any::<u16>()).prop_map(|(a, b)| PortRange {
        start: a.min(b),
        end: a.max(b),
    })
}

fn table() -> impl Strategy<Value = TableId> {
    (1..=u32::MAX).prop_map(|n| TableId::new(n).unwrap())
}

/// Sysctl keys in their canonical (dotted) form: allowed ones, with an interface part, and
/// well-formed keys outside the allow-list.
fn sysctl_key() -> impl Strategy<Value = SysctlKey> {
    let dev = "[A-Za-z0-9_@-]{1,7}(\\.[A-Za-z0-9_@-]{1,7})?";
    prop_oneof![
        prop::sample::select(vec![
            "net.ipv4.ip_forward",
            "net.ipv4.ping_group_range",
            "net.ipv4.icmp_ratelimit",
            "net.ipv4.conf.all.rp_filter",
            "net.ipv4.conf.default.arp_ignore",
            "net.ipv6.conf.all.disable_ipv6",
            "net.core.somaxconn",
            "net.ipv4.tcp_syncookies",
        ])
        .prop_map(str::to_owned),
        (
            "ipv4|ipv6",
            dev,
            "rp_filter|arp_ignore|arp_announce|accept_local|forwarding|disable_ipv6"
        )
            .prop_map(|(family, dev, leaf)| format!("net.{family}.conf.{dev}.{leaf}")),
    ]
    .prop_map(|s| s.parse().unwrap())
}

fn sysctl_value() -> impl Strategy<Value = SysctlValue> {
    "[0-9 \t-]{1,64}".prop_map(|s| s.parse().unwrap())
}

fn scope() -> impl Strategy<Value = Scope> {
    any::<u8>().prop_map(Scope::from_value)
}

fn route_type() -> impl Strategy<Value = RouteType> {
    any::<u8>().prop_map(RouteType::from_value)
}

fn route_proto() -> impl Strategy<Value = RouteProto> {
    any::<u8>().prop_map(RouteProto::from_value)
}

fn ip_proto() -> impl Strategy<Value = IpProto> {
    any::<u8>().prop_map(IpProto::from_value)
}

fn neigh_state() -> impl Strategy<Value = NeighState> {
    any::<u16>().prop_map(NeighState::from_value)
}

fn family() -> impl Strategy<Value = Family> {
    prop_oneof![Just(Family::Inet), Just(Family::Inet6)]
}

fn rule_action() -> impl Strategy<Value = RuleAction> {
    prop::sample::select(vec![
        RuleAction::Lookup,
        RuleAction::Blackhole,
        RuleAction::Unreachable,
        RuleAction::Prohibit,
    ])
}

// ---- Operations.

fn next_hop() -> impl Strategy<Value = NextHop> {
    (
        option::of(ip()),
        option::of(if_name()),
        option::of(any::<u16>()),
        any::<bool>(),
    )
        .prop_map(|(via, dev, weight, onlink)| NextHop {
            via,
            dev,
            weight,
            onlink,
        })
}

fn route_def() -> impl Strategy<Value = RouteDef> {
    (
        (
            cidr(),
            option::of(table()),
            any::<bool>(),
            option::of(route_type()),
        ),
        (option::of(ip()), option::of(if_name()), option::of(ip())),
        (
            option::of(any::<u32>()),
            option::of(any::<u8>()),
            option::of(scope()),
        ),
        (
            option::of(route_proto()),
            any::<bool>(),
            vec(next_hop(), 0..3),
        ),
    )
        .prop_map(
            |(
                (dst, table, policy, kind),
                (via, dev, src),
                (metric, tos, scope),
                (proto, onlink, nexthops),
            )| RouteDef {
                dst,
                table,
                policy,
                kind,
                via,
                dev,
                src,
                metric,
                tos,
                scope,
                proto,
                onlink,
                nexthops,
            },
        )
}

fn rule_def() -> impl Strategy<Value = RuleDef> {
    (
        (option::of(family()), option::of(any::<u32>())),
        (option::of(cidr()), option::of(cidr())),
        (option::of(if_name()), option::of(if_name())),
        (
            option::of(any::<u32>()),
            option::of(any::<u32>()),
            option::of(any::<u8>()),
        ),
        (
            option::of(port_range()),
            option::of(port_range()),
            option::of(ip_proto()),
        ),
        (option::of(table()), rule_action()),
    )
        .prop_map(
            |(
                (family, pref),
                (from, to),
                (iif, oif),
                (fwmark, fwmask, tos),
                (dport, sport, ipproto),
                (table, action),
            )| RuleDef {
                family,
                pref,
                from,
                to,
                iif,
                oif,
                fwmark,
                fwmask,
                tos,
                dport,
                sport,
                ipproto,
                table,
                action,
            },
        )
}

fn addr_def() -> impl Strategy<Value = AddrDef> {
    (cidr(), option::of(ip()), option::of(scope()), any::<bool>()).prop_map(
        |(addr, broadcast, scope, secondary)| AddrDef {
            addr,
            broadcast,
            scope,
            secondary,
        },
    )
}

fn topology() -> impl Strategy<Value = Topology> {
    let bridge = (if_name(), cidr()).prop_map(|(name, subnet)| BridgeDef { name, subnet });
    let iface = (
        if_name(),
        any::<bool>(),
        vec(addr_def(), 0..3),
        option::of(if_name()),
        if_name(),
    )
        .prop_map(|(name, up, addrs, bridge, hidden_end)| InterfaceDef {
            name,
            up,
            addrs,
            bridge,
            hidden_end,
        });
    let sysctl = (sysctl_key(), sysctl_value()).prop_map(|(key, value)| SysctlDef { key, value });
    let router = (
        ns_name(),
        vec(iface, 0..3),
        vec(route_def(), 0..3),
        vec(rule_def(), 0..2),
        vec(sysctl, 0..3),
        option::of(any::<String>()),
        option::of(any::<String>()),
        any::<bool>(),
    )
        .prop_map(
            |(name, interfaces, routes, rules, sysctls, ipset, iptables, internet)| RouterDef {
                name,
                interfaces,
                routes,
                rules,
                sysctls,
                ipset,
                iptables,
                internet,
            },
        );
    (vec(bridge, 0..3), vec(router, 0..3))
        .prop_map(|(bridges, routers)| Topology { bridges, routers })
}

fn op() -> impl Strategy<Value = Op> {
    let ns = ns_name;
    prop_oneof![
        option::of(0..=PING_MAX_DELAY_MS).prop_map(|delay_ms| Op::Ping(Ping { delay_ms })),
        (ns(), option::of(tag()), option::of(any::<bool>()))
            .prop_map(|(name, tag, ipv6)| Op::NsCreate(NsCreate { name, tag, ipv6 })),
        ns().prop_map(|name| Op::NsDelete(NsDelete { name })),
        (
            (ns(), if_name(), ns(), if_name(), option::of(any::<u32>())),
            (option::of(mac()), option::of(mac())),
            (option::of(if_name()), option::of(if_name()), any::<bool>()),
        )
            .prop_map(
                |(
                    (ns, name, peer_ns, peer_name, mtu),
                    (mac, peer_mac),
                    (master, peer_master, up),
                )| {
                    Op::LinkAddVeth(LinkAddVeth {
                        ns,
                        name,
                        peer_ns,
                        peer_name,
                        mtu,
                        mac,
                        peer_mac,
                        master,
                        peer_master,
                        up,
                    })
                }
            ),
        (
            (ns(), if_name(), option::of(any::<bool>())),
            (
                option::of(if_name()),
                any::<bool>(),
                option::of(any::<u32>())
            ),
            (option::of(mac()), option::of(if_name())),
        )
            .prop_map(|((ns, name, up), (master, nomaster, mtu), (mac, rename))| {
                Op::LinkSet(LinkSet {
                    ns,
                    name,
                    up,
                    master,
                    nomaster,
                    mtu,
                    mac,
                    rename,
                })
            }),
        (ns(), if_name(), addr_def()).prop_map(|(ns, dev, a)| Op::AddrAdd(a.spec(&ns, &dev))),
        (ns(), route_def()).prop_map(|(ns, r)| Op::RouteAdd(r.spec(&ns))),
        (ns(), rule_def()).prop_map(|(ns, r)| Op::RuleDelete(r.spec(&ns))),
        (ns(), sysctl_key(), sysctl_value())
            .prop_map(|(ns, key, value)| Op::SysctlSet(SysctlSet { ns, key, value })),
        (ns(), if_name(), ip(), mac(), option::of(neigh_state())).prop_map(
            |(ns, dev, ip, lladdr, state)| Op::NeighReplace(NeighReplace {
                ns,
                dev,
                ip,
                lladdr,
                state,
            })
        ),
        (ns(), any::<String>(), any::<bool>(), any::<bool>()).prop_map(
            |(ns, payload, noflush, ipv6)| Op::IptablesRestore(IptablesRestore {
                ns,
                payload,
                noflush,
                ipv6,
            })
        ),
        (
            (ns(), cidr(), ns(), option::of(if_name())),
            (vec(cidr(), 0..3), option::of(tag()), any::<bool>()),
        )
            .prop_map(
                |((name, ip, router, router_if), (secondaries, tag, share))| {
                    Op::HostAdd(HostAdd {
                        name,
                        ip,
                        router,
                        router_if,
                        secondaries,
                        tag,
                        share,
                    })
                }
            ),
        (ns(), option::of(tag())).prop_map(|(name, tag)| Op::HostDelete(HostDelete { name, tag })),
        (ns(), ip(), any::<u16>(), any::<bool>(), option::of(tag())).prop_map(
            |(ns, ip, port, udp, tag)| {
                let proto = if udp { Transport::Udp } else { Transport::Tcp };
                let addr = SvcAddr {
                    ns,
                    ip,
                    port,
                    proto,
                };
                Op::SvcStart(SvcStart { addr, tag })
            }
        ),
        (
            (ns(), ip(), any::<u16>(), option::of(ip())),
            (
                option::of(any::<String>()),
                option::of(any::<u32>()),
                any::<bool>(),
            ),
        )
            .prop_map(|((ns, dst, port, src), (message, timeout_ms, explain))| {
                Op::ProbeTcp(ProbeEcho {
                    ns,
                    dst,
                    port,
                    src,
                    message,
                    timeout_ms,
                    explain,
                })
            }),
        (
            (ns(), ip(), option::of(ip()), any::<bool>()),
            (
                option::of(any::<u8>()),
                option::of(any::<u32>()),
                option::of(any::<u16>()),
                any::<bool>(),
            ),
        )
            .prop_map(
                |((ns, dst, src, udp), (max_hops, timeout_ms, port, explain))| {
                    Op::ProbeTrace(ProbeTrace {
                        ns,
                        dst,
                        src,
                        mode: Some(if udp { TraceMode::Udp } else { TraceMode::Icmp }),
                        max_hops,
                        timeout_ms,
                        port,
                        queries: None,
                        explain,
                    })
                }
            ),
        (topology(), any::<bool>()).prop_map(|(topology, policy_tables)| {
            Op::NetApply(NetApply {
                topology,
                policy_tables,
            })
        }),
    ]
}

// ---- Results.

fn op_result() -> impl Strategy<Value = OpResult> {
    prop_oneof![
        Just(OpResult::Ping(Pong {})),
        ns_name().prop_map(|name| OpResult::NsCreate(NsCreated { name })),
        vec(
            (ns_name(), any::<u32>(), option::of(tag()), any::<u64>()),
            0..3
        )
        .prop_map(|list| OpResult::NsList(NsListing {
            namespaces: list
                .into_iter()
                .map(|(name, owner_uid, tag, created_ms)| NsInfo {
                    name,
                    owner_uid,
                    tag,
                    created_ms,
                })
                .collect(),
        })),
        (any::<u32>(), option::of(any::<u32>())).prop_map(|(index, peer_index)| {
            OpResult::LinkAddVeth(LinkAdded { index, peer_index })
        }),
        any::<u32>().prop_map(|count| OpResult::RouteFlush(Flushed { count })),
        Just(OpResult::AddrAdd(Done {})),
        vec(
            (
                any::<String>(),
                any::<u32>(),
                cidr(),
                option::of(ip()),
                scope(),
                any::<bool>()
            ),
            0..3
        )
        .prop_map(|list| OpResult::AddrList(Addrs {
            addrs: list
                .into_iter()
                .map(|(dev, index, addr, broadcast, scope, secondary)| AddrInfo {
                    dev,
                    index,
                    addr,
                    broadcast,
                    scope,
                    secondary,
                })
                .collect(),
        })),
        (
            (
                family(),
                cidr(),
                any::<u32>(),
                route_type(),
                option::of(ip())
            ),
            (
                option::of(any::<String>()),
                option::of(ip()),
                option::of(any::<u32>())
            ),
            (any::<u8>(), scope(), route_proto()),
            vec(
                (option::of(ip()), option::of(any::<String>()), any::<u16>()),
                0..3
            ),
        )
            .prop_map(
                |(
                    (family, dst, table, kind, via),
                    (dev, src, metric),
                    (tos, scope, proto),
                    hops,
                )| {
                    OpResult::RouteGet(RouteInfo {
                        family,
                        dst,
                        table,
                        kind,
                        via,
                        dev,
                        src,
                        metric,
                        tos,
                        scope,
                        proto,
                        nexthops: hops
                            .into_iter()
                            .map(|(via, dev, weight)| NextHopInfo { via, dev, weight })
                            .collect(),
                    })
                }
            ),
        (any::<String>(), any::<String>())
            .prop_map(|(key, value)| OpResult::SysctlGet(SysctlRead { key, value })),
        any::<String>().prop_map(|payload| OpResult::IptablesSave(Saved { payload })),
        (vec(ns_name(), 0..4), vec(ns_name(), 0..3)).prop_map(|(removed, released)| {
            OpResult::HostClean(HostsCleaned { removed, released })
        }),
        (
            any::<u32>(),
            any::<u32>(),
            vec((any::<u32>(), ip(), any::<u64>(), any::<u8>()), 0..3),
            vec((any::<u32>(), ip(), any::<String>(), any::<u8>()), 0..3),
            option::of(explanation()),
        )
            .prop_map(|(sent, received, replies, errors, explain)| {
                OpResult::ProbePing(PingResult {
                    explain,
                    sent,
                    received,
                    replies: replies
                        .into_iter()
                        .map(|(seq, from, rtt_us, ttl)| PingReply {
                            seq,
                            from,
                            rtt_us,
                            ttl,
                        })
                        .collect(),
                    errors: errors
                        .into_iter()
                        .map(|(seq, from, kind, code)| PingError {
                            seq,
                            from,
                            kind,
                            code,
                        })
                        .collect(),
                })
            }),
        (
            vec(
                (
                    any::<u8>(),
                    option::of(ip()),
                    option::of(any::<u64>()),
                    option::of(any::<String>()),
                    option::of(any::<u8>()),
                ),
                0..4
            ),
            any::<bool>(),
            option::of(explanation()),
        )
            .prop_map(|(hops, reached, explain)| {
                OpResult::ProbeTrace(TraceResult {
                    hops: hops
                        .into_iter()
                        .map(|(ttl, from, rtt_us, kind, code)| TraceHop {
                            ttl,
                            from,
                            rtt_us,
                            kind,
                            code,
                            sent: None,
                            replies: Vec::new(),
                        })
                        .collect(),
                    reached,
                    explain,
                })
            }),
    ]
}

fn wire_error() -> impl Strategy<Value = WireError> {
    (
        prop::sample::select(ErrorCode::ALL.to_vec()),
        any::<String>(),
        option::of(any::<u32>()),
    )
        .prop_map(|(code, message, op_index)| WireError {
            code,
            message,
            op_index,
        })
}

fn version() -> impl Strategy<Value = ProtocolVersion> {
    (any::<u16>(), any::<u16>()).prop_map(ProtocolVersion::from)
}

fn client_message() -> impl Strategy<Value = ClientMessage> {
    prop_oneof![
        (version(), any::<String>())
            .prop_map(|(protocol, client)| ClientMessage::Hello(Hello { protocol, client })),
        (any::<u64>(), vec(op(), 0..4), any::<bool>(), any::<bool>()).prop_map(
            |(id, ops, atomic, progress)| ClientMessage::Request(Request {
                id,
                ops,
                atomic,
                progress,
            })
        ),
        any::<u64>().prop_map(|id| ClientMessage::Cancel(Cancel { id })),
    ]
}

fn server_message() -> impl Strategy<Value = ServerMessage> {
    let limits = any::<[u32; 4]>().prop_map(|[a, b, c, d]| Limits {
        max_frame: a,
        max_ops: b,
        max_in_flight: c,
        max_connections: d,
    });
    let peer = (any::<[u32; 3]>(), any::<bool>(), any::<bool>()).prop_map(
        |([uid, gid, pid], authorized, admin)| PeerInfo {
            uid,
            gid,
            pid,
            authorized,
            admin,
        },
    );
    prop_oneof![
        (version(), any::<String>(), limits, peer).prop_map(
            |(protocol, helper_version, limits, peer)| ServerMessage::Welcome(Welcome {
                protocol,
                helper_version,
                limits,
                peer,
            })
        ),
        (
            any::<u64>(),
            vec(op_result(), 0..4),
            option::of(wire_error())
        )
            .prop_map(|(id, results, error)| ServerMessage::Response(Response {
                id,
                results,
                error
            })),
        (any::<u64>(), any::<u32>(), any::<u32>(), any::<String>()).prop_map(
            |(id, done, total, stage)| ServerMessage::Event(Event {
                id,
                done,
                total,
                stage,
            })
        ),
        wire_error().prop_map(ServerMessage::Error),
    ]
}

// ---- Grammars, written again here, independently of `names.rs`.

fn ns_name_ok(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s != "."
        && s != ".."
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

fn if_name_ok(s: &str) -> bool {
    (1..=15).contains(&s.len())
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && !b"/:%".contains(&b))
}

fn tag_ok(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:@+=/-".contains(&b))
}

fn cidr_ok(s: &str) -> bool {
    let Some((addr, prefix)) = s.split_once('/') else {
        return false;
    };
    let Ok(addr) = addr.parse::<IpAddr>() else {
        return false;
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (1..=3).contains(&prefix.len())
        && prefix.bytes().all(|b| b.is_ascii_digit())
        && prefix.parse::<u32>().is_ok_and(|p| p <= max)
}

/// Strings near the grammars: their characters, some that are refused, and lengths around
/// the limits.
fn near_names() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[A-Za-z0-9_.:@+=/%-]{0,3}",
        "[ -~]{0,17}",
        "[A-Za-z0-9_.-]{62,66}",
        "[a-z0-9\\-.]{1,3}[ \t\n\0/é]?[a-z0-9]{0,3}",
        "[0-9a-f:.]{1,12}/[0-9+ ]{0,4}",
        "(10\\.1\\.1\\.1|::1|::ffff:1\\.2\\.3\\.4|1\\.2\\.3)/[0-9]{0,4}",
    ]
}

/// Whether a string decodes as `T` (sent as a MessagePack string).
fn decodes<T: DeserializeOwned>(s: &str) -> bool {
    decode_body::<T>(&encode_body(s).unwrap()).is_ok()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn names_round_trip(n in ns_name(), i in if_name(), t in tag(), c in cidr()) {
        round_trip(&n)?;
        round_trip(&i)?;
        round_trip(&t)?;
        round_trip(&c)?;
        prop_assert_eq!(c.to_string().parse::<Cidr>().unwrap(), c);
        prop_assert!(c.contains(c.addr()));
        prop_assert_eq!(c.network().network(), c.network());
    }

    #[test]
    fn network_values_round_trip(
        ip in ip(), mac in mac(), ports in port_range(), table in table(),
        key in sysctl_key(), value in sysctl_value(),
        values in (scope(), route_type(), route_proto(), ip_proto(), neigh_state()),
    ) {
        round_trip(&ip)?;
        round_trip(&mac)?;
        round_trip(&ports)?;
        round_trip(&table)?;
        round_trip(&key)?;
        round_trip(&value)?;
        round_trip(&values)?;
        // Ports also decode from an integer when they are one port.
        let single = PortRange { start: ports.start, end: ports.start };
        prop_assert_eq!(decode_body::<PortRange>(&encode_body(&ports.start).unwrap()).unwrap(), single);
    }

    #[test]
    fn operations_round_trip(op in op()) {
        round_trip(&op)?;
    }

    #[test]
    fn results_round_trip(result in op_result()) {
        round_trip(&result)?;
    }

    #[test]
    fn client_messages_round_trip(msg in client_message()) {
        round_trip(&msg)?;
    }

    #[test]
    fn server_messages_round_trip(msg in server_message()) {
        round_trip(&msg)?;
    }

    #[test]
    fn only_strings_of_the_grammar_decode(s in near_names()) {
        prop_assert_eq!(decodes::<NsName>(&s), ns_name_ok(&s), "namespace name {:?}", s);
        prop_assert_eq!(decodes::<IfName>(&s), if_name_ok(&s), "interface name {:?}", s);
        prop_assert_eq!(decodes::<Tag>(&s), tag_ok(&s), "tag {:?}", s);
        prop_assert_eq!(decodes::<Cidr>(&s), cidr_ok(&s), "CIDR {:?}", s);
        // An invalid name inside an operation fails the whole operation.
        if !ns_name_ok(&s) {
            let op = serde_json::json!({"op": "ns_create", "name": s});
            prop_assert!(decode_body::<Op>(&encode_body(&op).unwrap()).is_err());
        }
    }
}

/// An explained probe's explanation (since 1.5).
fn explanation() -> impl Strategy<Value = Explanation> {
    (
        any::<u8>(),
        vec(
            (
                ns_name(),
                any::<String>(),
                option::of(any::<u32>()),
                option::of(any::<String>()),
                any::<bool>(),
            ),
            0..3,
        ),
        option::of(any::<String>()),
    )
        .prop_map(|(dscp, routers, unsupported)| Explanation {
            dscp,
            routers: routers
                .into_iter()
                .map(|(router, text, position, rule, incomplete)| ExplainRouter {
                    router,
                    packets: vec![ExplainPacket {
                        packet: text.clone(),
                        steps: vec![ExplainStep {
                            table: "filter".into(),
                            chain: text.clone(),
                            kind: "rule".into(),
                            position,
                            rule: rule.clone(),
                            verdict: "drop".into(),
                        }],
                        verdict: text,
                    }],
                    dropped_by: rule,
                    incomplete,
                })
                .collect(),
            unsupported,
        })
}
