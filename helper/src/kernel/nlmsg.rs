//! Pure conversions between the protocol's specs and netlink messages: building requests
//! from validated arguments (with interface names already resolved to indexes), and turning
//! the kernel's messages into the protocol's read results. No I/O here.

use std::collections::HashMap;
use std::net::IpAddr;

use rtnetlink::packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};
use rtnetlink::packet_route::link::{
    InfoKind, LinkAttribute, LinkFlags, LinkInfo as NlLinkInfo, LinkMessage, State,
};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteNextHop,
    RouteNextHopFlags, RouteProtocol, RouteScope, RouteType as NlRouteType,
};
use rtnetlink::packet_route::rule::{
    RuleAction as NlRuleAction, RuleAttribute, RuleMessage, RulePortRange,
};
use rtnetlink::packet_route::{AddressFamily, IpProtocol};
use tsim_protocol::net::{
    Family, Ip, IpProto, Mac, PortRange, RouteProto, RouteType, RuleAction, Scope,
};
use tsim_protocol::ops::{
    AddrInfo, AddrSpec, LinkInfo, LinkPeer, NextHopInfo, RouteInfo, RuleInfo, RuleSpec,
};
use tsim_protocol::{Cidr, NsName};

use crate::base::error::HelperError;

/// `RT_TABLE_COMPAT`: the header value for tables above 255 (the real id is an attribute).
const RT_TABLE_COMPAT: u8 = 252;

/// Index to name of the links of one namespace, for turning indexes into names in reads.
pub type LinkNames = HashMap<u32, String>;

/// The link names of a link dump.
pub fn link_names(links: &[LinkMessage]) -> LinkNames {
    links
        .iter()
        .filter_map(|l| Some((l.header.index, link_name(l)?)))
        .collect()
}

/// A link's name.
pub fn link_name(link: &LinkMessage) -> Option<String> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.clone()),
        _ => None,
    })
}

/// The netlink family of an address.
pub fn family_of(ip: IpAddr) -> AddressFamily {
    if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

/// The netlink family of a protocol family (`None`: both).
pub fn nl_family(family: Option<Family>) -> AddressFamily {
    match family {
        Some(Family::Inet) => AddressFamily::Inet,
        Some(Family::Inet6) => AddressFamily::Inet6,
        None => AddressFamily::Unspec,
    }
}

fn protocol_family(family: AddressFamily) -> Option<Family> {
    match family {
        AddressFamily::Inet => Some(Family::Inet),
        AddressFamily::Inet6 => Some(Family::Inet6),
        _ => None,
    }
}

fn route_address(ip: IpAddr) -> RouteAddress {
    match ip {
        IpAddr::V4(a) => RouteAddress::Inet(a),
        IpAddr::V6(a) => RouteAddress::Inet6(a),
    }
}

fn route_ip(addr: &RouteAddress) -> Option<IpAddr> {
    match addr {
        RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}

fn invalid(msg: String) -> HelperError {
    HelperError::InvalidArgument(msg)
}

/// A network (host bits clear), as routes and rules need.
pub fn check_network(what: &str, cidr: &Cidr) -> Result<(), HelperError> {
    let network = cidr.network();
    if network != *cidr {
        return Err(invalid(format!(
            "The {what} {cidr} has host bits set; did you mean {network}?"
        )));
    }
    Ok(())
}

/// Makes sure an address has the family of the rest of the request.
pub fn check_family(what: &str, ip: IpAddr, family: AddressFamily) -> Result<(), HelperError> {
    if family_of(ip) != family {
        let want = if family == AddressFamily::Inet {
            "IPv4"
        } else {
            "IPv6"
        };
        return Err(invalid(format!(
            "The {what} {ip} is not {want}, like the rest of the request"
        )));
    }
    Ok(())
}

/// Whether a request adds or deletes (deleting leaves unset fields as wildcards).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Add or replace.
    Add,
    /// Delete.
    Delete,
}

/// A route's nexthop with its interface resolved.
#[derive(Debug, Clone)]
pub struct ResolvedHop {
    /// Gateway.
    pub via: Option<IpAddr>,
    /// Output interface index.
    pub dev: Option<u32>,
    /// Weight, 1 to 256.
    pub weight: u16,
    /// On-link.
    pub onlink: bool,
}

/// The fields of a route request, with interface names resolved.
#[derive(Debug, Clone)]
pub struct RouteRequest {
    /// Destination network.
    pub dst: Cidr,
    /// Table id.
    pub table: u32,
    /// Type.
    pub kind: Option<RouteType>,
    /// Gateway.
    pub via: Option<IpAddr>,
    /// Output interface index.
    pub dev: Option<u32>,
    /// Preferred source.
    pub src: Option<IpAddr>,
    /// Metric.
    pub metric: Option<u32>,
    /// TOS.
    pub tos: Option<u8>,
    /// Scope.
    pub scope: Option<Scope>,
    /// Protocol.
    pub proto: Option<RouteProto>,
    /// On-link.
    pub onlink: bool,
    /// Multipath.
    pub nexthops: Vec<ResolvedHop>,
}

/// Builds a route message as `ip route add|del` does.
pub fn route_message(req: &RouteRequest, mode: Mode) -> Result<RouteMessage, HelperError> {
    let dst = req.dst;
    check_network("route destination", &dst)?;
    let family = family_of(dst.addr());
    for (what, ip) in [("gateway", req.via), ("source", req.src)] {
        if let Some(ip) = ip {
            check_family(what, ip, family)?;
        }
    }
    if req.via.is_some() && !req.nexthops.is_empty() {
        return Err(invalid(
            "A route has either a gateway or nexthops, not both".into(),
        ));
    }
    let kind = req.kind.unwrap_or(if mode == Mode::Add {
        RouteType::Unicast
    } else {
        RouteType::Unspec
    });
    if mode == Mode::Add
        && !matches!(
            kind,
            RouteType::Unicast
                | RouteType::Blackhole
                | RouteType::Unreachable
                | RouteType::Prohibit
        )
    {
        return Err(invalid(format!(
            "Route type {kind} cannot be written; use unicast, blackhole, unreachable or prohibit"
        )));
    }
    let mut header = RouteHeader {
        address_family: family,
        destination_prefix_length: dst.prefix(),
        tos: req.tos.unwrap_or(0),
        table: if req.table <= 255 {
            req.table as u8
        } else {
            RT_TABLE_COMPAT
        },
        kind: NlRouteType::from(kind.value()),
        ..RouteHeader::default()
    };
    let has_gateway = req.via.is_some() || !req.nexthops.is_empty();
    header.scope = match (req.scope, mode) {
        (Some(scope), _) => RouteScope::from(scope.value()),
        (None, Mode::Delete) => RouteScope::NoWhere,
        (None, Mode::Add) => RouteScope::from(Scope::default_for_route(kind, has_gateway).value()),
    };
    header.protocol = match (req.proto, mode) {
        (Some(proto), _) => RouteProtocol::from(proto.value()),
        (None, Mode::Add) => RouteProtocol::from(RouteProto::DEFAULT.value()),
        (None, Mode::Delete) => RouteProtocol::Unspec,
    };
    if req.onlink {
        header.flags |= RouteFlags::Onlink;
    }
    let mut attributes = vec![RouteAttribute::Table(req.table)];
    if dst.prefix() > 0 {
        attributes.push(RouteAttribute::Destination(route_address(dst.addr())));
    }
    if let Some(via) = req.via {
        attributes.push(RouteAttribute::Gateway(route_address(via)));
    }
    if let Some(dev) = req.dev {
        attributes.push(RouteAttribute::Oif(dev));
    }
    if let Some(src) = req.src {
        attributes.push(RouteAttribute::PrefSource(route_address(src)));
    }
    if let Some(metric) = req.metric {
        attributes.push(RouteAttribute::Priority(metric));
    }
    if !req.nexthops.is_empty() {
        let mut hops = Vec::new();
        for hop in &req.nexthops {
            if !(1..=256).contains(&hop.weight) {
                return Err(invalid(format!(
                    "A nexthop weight is 1 to 256, not {}",
                    hop.weight
                )));
            }
            let mut attrs = Vec::new();
            if let Some(via) = hop.via {
                check_family("nexthop gateway", via, family)?;
                attrs.push(RouteAttribute::Gateway(route_address(via)));
            }
            let mut flags = RouteNextHopFlags::empty();
            if hop.onlink {
                flags |= RouteNextHopFlags::Onlink;
            }
            let mut next = RouteNextHop::default();
            next.flags = flags;
            next.hops = (hop.weight - 1) as u8;
            next.interface_index = hop.dev.unwrap_or(0);
            next.attributes = attrs;
            hops.push(next);
        }
        attributes.push(RouteAttribute::MultiPath(hops));
    }
    let mut msg = RouteMessage::default();
    msg.header = header;
    msg.attributes = attributes;
    Ok(msg)
}

/// The table of a route message.
pub fn route_table(msg: &RouteMessage) -> u32 {
    msg.attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(msg.header.table))
}

/// A route as read, for `route_list` and `route_get`; `None` for messages that are not
/// routes of a known family or are cached clones.
pub fn route_info(msg: &RouteMessage, names: &LinkNames) -> Option<RouteInfo> {
    let family = protocol_family(msg.header.address_family)?;
    let mut dst = None;
    let (mut via, mut dev, mut src, mut metric) = (None, None, None, None);
    let mut nexthops = Vec::new();
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Destination(a) => dst = route_ip(a),
            RouteAttribute::Gateway(a) => via = route_ip(a).map(Ip),
            RouteAttribute::Oif(i) => {
                dev = Some(names.get(i).cloned().unwrap_or_else(|| format!("if{i}")))
            }
            RouteAttribute::PrefSource(a) => src = route_ip(a).map(Ip),
            RouteAttribute::Priority(p) => metric = Some(*p),
            RouteAttribute::MultiPath(hops) => {
                for hop in hops {
                    let hop_via = hop.attributes.iter().find_map(|a| match a {
                        RouteAttribute::Gateway(g) => route_ip(g).map(Ip),
                        _ => None,
                    });
                    let hop_dev = (hop.interface_index != 0).then(|| {
                        names
                            .get(&hop.interface_index)
                            .cloned()
                            .unwrap_or_else(|| format!("if{}", hop.interface_index))
                    });
                    nexthops.push(NextHopInfo {
                        via: hop_via,
                        dev: hop_dev,
                        weight: u16::from(hop.hops) + 1,
                    });
                }
            }
            _ => {}
        }
    }
    let unspecified = match family {
        Family::Inet => IpAddr::from([0u8; 4]),
        Family::Inet6 => IpAddr::from([0u16; 8]),
    };
    let dst = Cidr::new(
        dst.unwrap_or(unspecified),
        msg.header.destination_prefix_length,
    )
    .ok()?;
    Some(RouteInfo {
        family,
        dst,
        table: route_table(msg),
        kind: RouteType::from_value(u8::from(msg.header.kind)),
        via,
        dev,
        src,
        metric,
        tos: msg.header.tos,
        scope: Scope::from_value(u8::from(msg.header.scope)),
        proto: RouteProto::from_value(u8::from(msg.header.protocol)),
        nexthops,
    })
}

/// A dumped route made fit to be added again (for undo): kernel-only attributes dropped.
pub fn readdable_route(mut msg: RouteMessage) -> RouteMessage {
    msg.attributes.retain(|a| {
        matches!(
            a,
            RouteAttribute::Destination(_)
                | RouteAttribute::Source(_)
                | RouteAttribute::Gateway(_)
                | RouteAttribute::PrefSource(_)
                | RouteAttribute::Oif(_)
                | RouteAttribute::Iif(_)
                | RouteAttribute::Priority(_)
                | RouteAttribute::Table(_)
                | RouteAttribute::MultiPath(_)
                | RouteAttribute::Metrics(_)
                | RouteAttribute::Mark(_)
                | RouteAttribute::Preference(_)
        )
    });
    msg.header.flags &= RouteFlags::Onlink;
    msg
}

/// Whether a dumped route is the one a request names (fields the request leaves out match
/// anything), to find what a delete or replace will affect.
pub fn route_matches(msg: &RouteMessage, req: &RouteRequest, key_only: bool) -> bool {
    let Some(info) = route_info(msg, &LinkNames::new()) else {
        return false;
    };
    if info.dst != req.dst || info.table != req.table || info.tos != req.tos.unwrap_or(0) {
        return false;
    }
    let metric = msg.attributes.iter().find_map(|a| match a {
        RouteAttribute::Priority(p) => Some(*p),
        _ => None,
    });
    if key_only {
        // The key the kernel uses to find the route a replace replaces.
        return metric.unwrap_or(0) == req.metric.unwrap_or(0);
    }
    let oif = msg.attributes.iter().find_map(|a| match a {
        RouteAttribute::Oif(i) => Some(*i),
        _ => None,
    });
    req.metric.is_none_or(|m| metric == Some(m))
        && req.via.is_none_or(|v| info.via == Some(Ip(v)))
        && req.dev.is_none_or(|d| oif == Some(d))
        && req.kind.is_none_or(|k| info.kind == k)
        && req.proto.is_none_or(|p| info.proto == p)
}

/// Builds a rule message as `ip rule add|del` does.
pub fn rule_message(spec: &RuleSpec, mode: Mode) -> Result<RuleMessage, HelperError> {
    let mut family = spec.family.map(|f| nl_family(Some(f)));
    for (what, cidr) in [("source", spec.from), ("destination", spec.to)] {
        if let Some(cidr) = cidr {
            check_network(&format!("rule {what}"), &cidr)?;
            let f = family_of(cidr.addr());
            match family {
                Some(existing) if existing != f => {
                    return Err(invalid(format!(
                        "The rule {what} {cidr} does not match the rule's family"
                    )));
                }
                _ => family = Some(f),
            }
        }
    }
    let family = family.unwrap_or(AddressFamily::Inet);
    let action = match spec.action {
        RuleAction::Lookup => NlRuleAction::ToTable,
        RuleAction::Blackhole => NlRuleAction::Blackhole,
        RuleAction::Unreachable => NlRuleAction::Unreachable,
        RuleAction::Prohibit => NlRuleAction::Prohibit,
    };
    match (spec.action, spec.table) {
        (RuleAction::Lookup, None) if mode == Mode::Add => {
            return Err(invalid("A lookup rule needs a table".into()));
        }
        (RuleAction::Blackhole | RuleAction::Unreachable | RuleAction::Prohibit, Some(t)) => {
            return Err(invalid(
                format!("A {:?} rule takes no table (got {t})", spec.action).to_lowercase(),
            ));
        }
        _ => {}
    }
    if spec.fwmask.is_some() && spec.fwmark.is_none() {
        return Err(invalid("fwmask needs fwmark".into()));
    }
    let mut msg = RuleMessage::default();
    msg.header.family = family;
    msg.header.tos = spec.tos.unwrap_or(0);
    msg.header.action = action;
    if let Some(table) = spec.table {
        msg.header.table = if table.id() <= 255 {
            table.id() as u8
        } else {
            0
        };
        msg.attributes.push(RuleAttribute::Table(table.id()));
    }
    if let Some(pref) = spec.pref {
        msg.attributes.push(RuleAttribute::Priority(pref));
    }
    if let Some(from) = spec.from {
        msg.header.src_len = from.prefix();
        if from.prefix() > 0 {
            msg.attributes.push(RuleAttribute::Source(from.addr()));
        }
    }
    if let Some(to) = spec.to {
        msg.header.dst_len = to.prefix();
        if to.prefix() > 0 {
            msg.attributes.push(RuleAttribute::Destination(to.addr()));
        }
    }
    if let Some(iif) = &spec.iif {
        msg.attributes.push(RuleAttribute::Iifname(iif.to_string()));
    }
    if let Some(oif) = &spec.oif {
        msg.attributes.push(RuleAttribute::Oifname(oif.to_string()));
    }
    if let Some(mark) = spec.fwmark {
        msg.attributes.push(RuleAttribute::FwMark(mark));
        msg.attributes
            .push(RuleAttribute::FwMask(spec.fwmask.unwrap_or(u32::MAX)));
    }
    if let Some(proto) = spec.ipproto {
        msg.attributes
            .push(RuleAttribute::IpProtocol(IpProtocol::from(proto.value())));
    }
    for (ports, sport) in [(spec.sport, true), (spec.dport, false)] {
        if let Some(PortRange { start, end }) = ports {
            let range = RulePortRange { start, end };
            msg.attributes.push(if sport {
                RuleAttribute::SourcePortRange(range)
            } else {
                RuleAttribute::DestinationPortRange(range)
            });
        }
    }
    Ok(msg)
}

/// A rule as read.
pub fn rule_info(msg: &RuleMessage) -> Option<RuleInfo> {
    let family = protocol_family(msg.header.family)?;
    let mut info = RuleInfo {
        family,
        pref: 0,
        from: None,
        to: None,
        iif: None,
        oif: None,
        fwmark: None,
        fwmask: None,
        tos: msg.header.tos,
        dport: None,
        sport: None,
        ipproto: None,
        table: (msg.header.table != 0).then_some(u32::from(msg.header.table)),
        action: match msg.header.action {
            NlRuleAction::ToTable => "lookup".into(),
            NlRuleAction::Blackhole => "blackhole".into(),
            NlRuleAction::Unreachable => "unreachable".into(),
            NlRuleAction::Prohibit => "prohibit".into(),
            NlRuleAction::Goto => "goto".into(),
            NlRuleAction::Nop => "nop".into(),
            other => u8::from(other).to_string(),
        },
    };
    for attr in &msg.attributes {
        match attr {
            RuleAttribute::Priority(p) => info.pref = *p,
            RuleAttribute::Source(a) => info.from = Cidr::new(*a, msg.header.src_len).ok(),
            RuleAttribute::Destination(a) => info.to = Cidr::new(*a, msg.header.dst_len).ok(),
            RuleAttribute::Iifname(n) => info.iif = Some(n.clone()),
            RuleAttribute::Oifname(n) => info.oif = Some(n.clone()),
            RuleAttribute::FwMark(m) => info.fwmark = Some(*m),
            RuleAttribute::FwMask(m) => info.fwmask = Some(*m),
            RuleAttribute::Table(t) => info.table = Some(*t),
            RuleAttribute::IpProtocol(p) => info.ipproto = Some(IpProto::from_value(u8::from(*p))),
            RuleAttribute::SourcePortRange(r) => {
                info.sport = Some(PortRange {
                    start: r.start,
                    end: r.end,
                })
            }
            RuleAttribute::DestinationPortRange(r) => {
                info.dport = Some(PortRange {
                    start: r.start,
                    end: r.end,
                });
            }
            _ => {}
        }
    }
    if info.fwmark.is_none() {
        info.fwmask = None;
    }
    Some(info)
}

/// Whether a dumped rule is the one a request names (fields left out match anything).
pub fn rule_matches(msg: &RuleMessage, spec: &RuleSpec) -> bool {
    let Some(info) = rule_info(msg) else {
        return false;
    };
    let action = match spec.action {
        RuleAction::Lookup => "lookup",
        RuleAction::Blackhole => "blackhole",
        RuleAction::Unreachable => "unreachable",
        RuleAction::Prohibit => "prohibit",
    };
    spec.family.is_none_or(|f| info.family == f)
        && spec.pref.is_none_or(|p| info.pref == p)
        // A /0 prefix selects everything: the kernel keeps no selector for it.
        && spec.from.is_none_or(|c| c.prefix() == 0 || info.from == Some(c))
        && spec.to.is_none_or(|c| c.prefix() == 0 || info.to == Some(c))
        && spec
            .iif
            .as_ref()
            .is_none_or(|n| info.iif.as_deref() == Some(n.as_str()))
        && spec
            .oif
            .as_ref()
            .is_none_or(|n| info.oif.as_deref() == Some(n.as_str()))
        && spec.fwmark.is_none_or(|m| info.fwmark == Some(m))
        && spec.tos.is_none_or(|t| info.tos == t)
        && spec.dport.is_none_or(|p| info.dport == Some(p))
        && spec.sport.is_none_or(|p| info.sport == Some(p))
        && spec.ipproto.is_none_or(|p| info.ipproto == Some(p))
        && spec.table.is_none_or(|t| info.table == Some(t.id()))
        && info.action == action
}

/// Builds an address message as `ip addr add|del` does.
pub fn addr_message(spec: &AddrSpec, index: u32) -> Result<AddressMessage, HelperError> {
    let ip = spec.addr.addr();
    let mut msg = AddressMessage::default();
    msg.header.family = family_of(ip);
    msg.header.prefix_len = spec.addr.prefix();
    msg.header.index = index;
    msg.header.scope = AddressScope::from(spec.scope.unwrap_or(Scope::Global).value());
    let mut flags = AddressFlags::empty();
    if spec.secondary {
        flags |= AddressFlags::Secondary;
        msg.header.flags |= AddressHeaderFlags::Secondary;
    }
    if ip.is_ipv6() {
        flags |= AddressFlags::Nodad;
        msg.header.flags |= AddressHeaderFlags::Nodad;
    }
    msg.attributes.push(AddressAttribute::Local(ip));
    msg.attributes.push(AddressAttribute::Address(ip));
    if let Some(Ip(brd)) = spec.broadcast {
        match brd {
            IpAddr::V4(b) if ip.is_ipv4() => msg.attributes.push(AddressAttribute::Broadcast(b)),
            _ => {
                return Err(invalid(format!(
                    "A broadcast address ({brd}) is for IPv4 addresses only"
                )));
            }
        }
    }
    if !flags.is_empty() {
        msg.attributes.push(AddressAttribute::Flags(flags));
    }
    Ok(msg)
}

/// An address as read.
pub fn addr_info(msg: &AddressMessage, names: &LinkNames) -> Option<AddrInfo> {
    let mut local = None;
    let mut address = None;
    let mut broadcast = None;
    let mut flags = AddressFlags::from_bits_truncate(u32::from(msg.header.flags.bits()));
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Local(a) => local = Some(*a),
            AddressAttribute::Address(a) => address = Some(*a),
            AddressAttribute::Broadcast(b) => broadcast = Some(Ip(IpAddr::V4(*b))),
            AddressAttribute::Flags(f) => flags = *f,
            _ => {}
        }
    }
    let ip = local.or(address)?;
    let index = msg.header.index;
    Some(AddrInfo {
        dev: names
            .get(&index)
            .cloned()
            .unwrap_or_else(|| format!("if{index}")),
        index,
        addr: Cidr::new(ip, msg.header.prefix_len).ok()?,
        broadcast,
        scope: Scope::from_value(u8::from(msg.header.scope)),
        secondary: flags.contains(AddressFlags::Secondary),
    })
}

/// A dumped address made fit to be added again (for undo).
pub fn readdable_addr(mut msg: AddressMessage) -> AddressMessage {
    msg.attributes.retain(|a| {
        matches!(
            a,
            AddressAttribute::Address(_)
                | AddressAttribute::Local(_)
                | AddressAttribute::Label(_)
                | AddressAttribute::Broadcast(_)
                | AddressAttribute::Flags(_)
        )
    });
    msg
}

/// A link as read. `peer_ns` names the namespace of a veth's peer, when known.
pub fn link_info(msg: &LinkMessage, names: &LinkNames, peer_ns: Option<NsName>) -> LinkInfo {
    let mut info = LinkInfo {
        index: msg.header.index,
        name: link_name(msg).unwrap_or_default(),
        kind: None,
        up: msg.header.flags.contains(LinkFlags::Up),
        oper_state: "unknown".into(),
        mtu: 0,
        mac: None,
        master: None,
        group: 0,
        peer: None,
    };
    let mut peer_index = None;
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::Mtu(m) => info.mtu = *m,
            LinkAttribute::Address(a) if a.len() == 6 => {
                let mut mac = [0u8; 6];
                mac.copy_from_slice(a);
                info.mac = Some(Mac(mac));
            }
            LinkAttribute::Controller(m) => {
                info.master = names.get(m).cloned().or_else(|| Some(format!("if{m}")))
            }
            LinkAttribute::Group(g) => info.group = *g,
            LinkAttribute::Link(i) => peer_index = Some(*i),
            LinkAttribute::OperState(s) => info.oper_state = oper_state(*s),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let NlLinkInfo::Kind(kind) = i {
                        info.kind = Some(kind_name(kind));
                    }
                }
            }
            _ => {}
        }
    }
    if info.kind.as_deref() == Some("veth") {
        info.peer = peer_index.map(|index| LinkPeer { index, ns: peer_ns });
    }
    info
}

/// The peer-namespace id of a veth (absent when the peer is in the same namespace).
pub fn link_netnsid(msg: &LinkMessage) -> Option<i32> {
    msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkNetNsId(id) => Some(*id),
        _ => None,
    })
}

fn kind_name(kind: &InfoKind) -> String {
    match kind {
        InfoKind::Veth => "veth".into(),
        InfoKind::Bridge => "bridge".into(),
        InfoKind::Dummy => "dummy".into(),
        InfoKind::Other(name) => name.clone(),
        other => other.to_string(),
    }
}

fn oper_state(state: State) -> String {
    match state {
        State::Up => "up",
        State::Down => "down",
        State::LowerLayerDown => "lowerlayerdown",
        State::Dormant => "dormant",
        State::NotPresent => "notpresent",
        State::Testing => "testing",
        _ => "unknown",
    }
    .into()
}

/// Builds a neighbour message.
pub fn neigh_message(
    index: u32,
    ip: IpAddr,
    lladdr: Option<Mac>,
    state: Option<u16>,
) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = family_of(ip);
    msg.header.ifindex = index;
    msg.header.state = NeighbourState::from(state.unwrap_or(0));
    msg.header.kind = NlRouteType::Unicast;
    msg.attributes
        .push(NeighbourAttribute::Destination(match ip {
            IpAddr::V4(a) => NeighbourAddress::Inet(a),
            IpAddr::V6(a) => NeighbourAddress::Inet6(a),
        }));
    if let Some(mac) = lladdr {
        msg.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.0.to_vec()));
    }
    msg
}

/// The address of a neighbour entry.
pub fn neigh_ip(msg: &NeighbourMessage) -> Option<IpAddr> {
    msg.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => Some(IpAddr::V4(*a)),
        NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => Some(IpAddr::V6(*a)),
        _ => None,
    })
}

/// A dumped neighbour entry made fit to be added again (for undo).
pub fn readdable_neigh(mut msg: NeighbourMessage) -> NeighbourMessage {
    msg.attributes.retain(|a| {
        matches!(
            a,
            NeighbourAttribute::Destination(_) | NeighbourAttribute::LinkLayerAddress(_)
        )
    });
    msg
}

/// `TCA_OPTIONS` of a netem qdisc with `delay_us` of delay: `struct tc_netem_qopt`, then
/// `TCA_NETEM_LATENCY64` in nanoseconds (the struct's own field is in 64 ns ticks).
pub fn netem_options(delay_us: u32) -> Vec<u8> {
    const TCA_NETEM_LATENCY64: u16 = 10;
    const DEFAULT_LIMIT: u32 = 1000;
    let ns = u64::from(delay_us) * 1000;
    let ticks = u32::try_from(ns / 64).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(24 + 12);
    for field in [ticks, DEFAULT_LIMIT, 0, 0, 0, 0] {
        out.extend_from_slice(&field.to_ne_bytes());
    }
    out.extend_from_slice(&12u16.to_ne_bytes());
    out.extend_from_slice(&TCA_NETEM_LATENCY64.to_ne_bytes());
    out.extend_from_slice(&(ns as i64).to_ne_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tsim_protocol::net::TableId;

    fn req(dst: &str) -> RouteRequest {
        RouteRequest {
            dst: dst.parse().unwrap(),
            table: 254,
            kind: None,
            via: None,
            dev: Some(3),
            src: None,
            metric: None,
            tos: None,
            scope: None,
            proto: None,
            onlink: false,
            nexthops: Vec::new(),
        }
    }

    #[test]
    fn routes_are_built_as_iproute2_builds_them() {
        let msg = route_message(&req("10.2.0.0/16"), Mode::Add).unwrap();
        assert_eq!(msg.header.scope, RouteScope::Link);
        assert_eq!(msg.header.protocol, RouteProtocol::Boot);
        assert_eq!(msg.header.table, 254);
        let mut with_gw = req("0.0.0.0/0");
        with_gw.via = Some("10.1.1.1".parse().unwrap());
        with_gw.table = 1000;
        let msg = route_message(&with_gw, Mode::Add).unwrap();
        assert_eq!(msg.header.scope, RouteScope::Universe);
        assert_eq!(msg.header.table, RT_TABLE_COMPAT);
        assert_eq!(route_table(&msg), 1000);
        assert!(
            !msg.attributes
                .iter()
                .any(|a| matches!(a, RouteAttribute::Destination(_)))
        );
        let info = route_info(&msg, &LinkNames::from([(3, "eth0".to_owned())])).unwrap();
        assert_eq!(info.dst.to_string(), "0.0.0.0/0");
        assert_eq!(info.dev.as_deref(), Some("eth0"));
        assert!(route_matches(&msg, &with_gw, false));
        assert!(route_matches(&msg, &with_gw, true));
        let del = route_message(&req("10.2.0.0/16"), Mode::Delete).unwrap();
        assert_eq!(
            (del.header.scope, del.header.protocol),
            (RouteScope::NoWhere, RouteProtocol::Unspec)
        );
    }

    #[test]
    fn bad_routes_are_invalid_arguments() {
        let err = route_message(&req("10.2.3.4/16"), Mode::Add)
            .unwrap_err()
            .to_string();
        assert!(err.contains("did you mean 10.2.0.0/16"), "{err}");
        let mut mixed = req("10.2.0.0/16");
        mixed.via = Some("2001:db8::1".parse().unwrap());
        assert!(route_message(&mixed, Mode::Add).is_err());
        let mut local = req("10.2.0.0/16");
        local.kind = Some(RouteType::Local);
        assert!(route_message(&local, Mode::Add).is_err());
    }

    #[test]
    fn rules_round_trip() {
        let spec = RuleSpec {
            ns: "r1".parse().unwrap(),
            family: None,
            pref: Some(100),
            from: Some("10.1.1.0/24".parse().unwrap()),
            to: None,
            iif: Some("eth0".parse().unwrap()),
            oif: None,
            fwmark: Some(7),
            fwmask: None,
            tos: None,
            dport: Some("80-90".parse().unwrap()),
            sport: None,
            ipproto: Some(IpProto::Tcp),
            table: Some(TableId::new(100).unwrap()),
            action: RuleAction::Lookup,
        };
        let msg = rule_message(&spec, Mode::Add).unwrap();
        let info = rule_info(&msg).unwrap();
        assert_eq!(info.pref, 100);
        assert_eq!(info.from.unwrap().to_string(), "10.1.1.0/24");
        assert_eq!(info.table, Some(100));
        assert_eq!(info.action, "lookup");
        assert!(rule_matches(&msg, &spec));
        // `to 0.0.0.0/0` is kept as no selector, and still matches for a delete.
        let mut everything = spec.clone();
        everything.to = Some("0.0.0.0/0".parse().unwrap());
        let msg0 = rule_message(&everything, Mode::Add).unwrap();
        assert_eq!(rule_info(&msg0).unwrap().to, None);
        assert!(rule_matches(&msg0, &everything));
        let mut no_table = spec.clone();
        no_table.table = None;
        assert!(rule_message(&no_table, Mode::Add).is_err());
        let mut blackhole = spec;
        blackhole.action = RuleAction::Blackhole;
        assert!(rule_message(&blackhole, Mode::Add).is_err());
    }

    #[test]
    fn netem_options_layout() {
        let opts = netem_options(1000);
        assert_eq!(opts.len(), 36);
        assert_eq!(
            u32::from_ne_bytes(opts[0..4].try_into().unwrap()),
            1_000_000 / 64
        );
        assert_eq!(
            i64::from_ne_bytes(opts[28..36].try_into().unwrap()),
            1_000_000
        );
    }
}
