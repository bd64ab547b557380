//! Helpers shared by the network operations: dumps with the kernel-side filters, and route
//! requests with their interface names resolved.

use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::address::AddressMessage;
use rtnetlink::packet_route::neighbour::{NeighbourAttribute, NeighbourMessage};
use rtnetlink::packet_route::route::{RouteAttribute, RouteFlags, RouteMessage};
use rtnetlink::packet_route::rule::RuleMessage;
use tsim_protocol::ops::RouteSpec;

use super::NsHandle;
use crate::base::error::HelperError;
use crate::kernel::netlink::{Netlink, NetlinkError};
use crate::kernel::nlmsg::{self, ResolvedHop, RouteRequest};

/// The addresses of a namespace, optionally of one family and one interface.
pub async fn dump_addrs(
    nl: &Netlink,
    family: AddressFamily,
    index: Option<u32>,
) -> Result<Vec<AddressMessage>, NetlinkError> {
    let mut request = AddressMessage::default();
    request.header.family = family;
    request.header.index = index.unwrap_or(0);
    let messages = nl
        .dump(RouteNetlinkMessage::GetAddress(request), || {
            "list addresses".into()
        })
        .await?;
    Ok(messages
        .into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewAddress(a) if index.is_none_or(|i| a.header.index == i) => {
                Some(a)
            }
            _ => None,
        })
        .collect())
}

/// The routes of a namespace, optionally of one family and one table; cached clones left out.
pub async fn dump_routes(
    nl: &Netlink,
    family: AddressFamily,
    table: Option<u32>,
) -> Result<Vec<RouteMessage>, NetlinkError> {
    let mut request = RouteMessage::default();
    request.header.address_family = family;
    if let Some(t) = table {
        request.header.table = if t <= 255 { t as u8 } else { 0 };
        request.attributes.push(RouteAttribute::Table(t));
    }
    let messages = nl
        .dump(RouteNetlinkMessage::GetRoute(request), || {
            "list routes".into()
        })
        .await?;
    Ok(messages
        .into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewRoute(r)
                if !r.header.flags.contains(RouteFlags::Cloned)
                    && table.is_none_or(|t| nlmsg::route_table(&r) == t) =>
            {
                Some(r)
            }
            _ => None,
        })
        .collect())
}

/// The policy rules of a namespace, optionally of one family.
pub async fn dump_rules(
    nl: &Netlink,
    family: AddressFamily,
) -> Result<Vec<RuleMessage>, NetlinkError> {
    let mut request = RuleMessage::default();
    request.header.family = family;
    let messages = nl
        .dump(RouteNetlinkMessage::GetRule(request), || {
            "list rules".into()
        })
        .await?;
    Ok(messages
        .into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewRule(r) => Some(r),
            _ => None,
        })
        .collect())
}

/// The neighbour entries of a namespace, optionally of one family and one interface.
pub async fn dump_neighs(
    nl: &Netlink,
    family: AddressFamily,
    index: Option<u32>,
) -> Result<Vec<NeighbourMessage>, NetlinkError> {
    let mut request = NeighbourMessage::default();
    request.header.family = family;
    if let Some(i) = index {
        request.attributes.push(NeighbourAttribute::IfIndex(i));
    }
    let messages = nl
        .dump(RouteNetlinkMessage::GetNeighbour(request), || {
            "list neighbours".into()
        })
        .await?;
    Ok(messages
        .into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewNeighbour(n) if index.is_none_or(|i| n.header.ifindex == i) => {
                Some(n)
            }
            _ => None,
        })
        .collect())
}

/// The routes (all tables, kernel routes left out) and permanent neighbour entries of a
/// namespace: what an address or link change can take with it.
#[derive(Debug)]
pub struct Dependents {
    routes: Vec<RouteMessage>,
    neighs: Vec<NeighbourMessage>,
}

impl Dependents {
    /// Reads them now.
    pub async fn read(nl: &Netlink) -> Result<Self, NetlinkError> {
        use rtnetlink::packet_route::neighbour::NeighbourState;
        use rtnetlink::packet_route::route::RouteProtocol;
        let routes = dump_routes(nl, AddressFamily::Unspec, None)
            .await?
            .into_iter()
            .filter(|r| r.header.protocol != RouteProtocol::Kernel)
            .map(nlmsg::readdable_route)
            .collect();
        let neighs = dump_neighs(nl, AddressFamily::Unspec, None)
            .await?
            .into_iter()
            // The states a neighbour can be written in (the others are the kernel's own,
            // passing ones): the kernel drops them all with a link's last IPv4 address.
            .filter(|n| {
                matches!(
                    n.header.state,
                    NeighbourState::Permanent
                        | NeighbourState::Noarp
                        | NeighbourState::Reachable
                        | NeighbourState::Stale
                )
            })
            .map(nlmsg::readdable_neigh)
            .collect();
        Ok(Self { routes, neighs })
    }

    /// The requests that add all of them back: a route still there is refused (`EEXIST`,
    /// which undo passes over), a neighbour still there is written as it was.
    pub fn readd_all(self) -> Vec<(RouteNetlinkMessage, u16)> {
        self.lost_since(&Dependents {
            routes: Vec::new(),
            neighs: Vec::new(),
        })
    }

    /// The requests that add back what was here before and is gone in `now`.
    pub fn lost_since(self, now: &Dependents) -> Vec<(RouteNetlinkMessage, u16)> {
        use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
        let routes = self
            .routes
            .into_iter()
            .filter(|r| !now.routes.contains(r))
            .map(|r| (RouteNetlinkMessage::NewRoute(r), NLM_F_CREATE | NLM_F_EXCL));
        let neighs = self
            .neighs
            .into_iter()
            .filter(|n| !now.neighs.contains(n))
            .map(|n| {
                (
                    RouteNetlinkMessage::NewNeighbour(n),
                    NLM_F_CREATE | NLM_F_REPLACE,
                )
            });
        routes.chain(neighs).collect()
    }
}

/// A route spec with its interfaces resolved in namespace `h`.
pub async fn resolve_route(h: &NsHandle, spec: &RouteSpec) -> Result<RouteRequest, HelperError> {
    let dev = match &spec.dev {
        Some(name) => Some(h.nl.link_index(name.as_str()).await?),
        None => None,
    };
    let mut nexthops = Vec::with_capacity(spec.nexthops.len());
    for hop in &spec.nexthops {
        let dev = match &hop.dev {
            Some(name) => Some(h.nl.link_index(name.as_str()).await?),
            None => None,
        };
        nexthops.push(ResolvedHop {
            via: hop.via.map(|v| v.0),
            dev,
            weight: hop.weight.unwrap_or(1),
            onlink: hop.onlink,
        });
    }
    Ok(RouteRequest {
        dst: spec.dst,
        table: spec.table.unwrap_or_default().id(),
        kind: spec.kind,
        via: spec.via.map(|v| v.0),
        dev,
        src: spec.src.map(|v| v.0),
        metric: spec.metric,
        tos: spec.tos,
        scope: spec.scope,
        proto: spec.proto,
        onlink: spec.onlink,
        nexthops,
    })
}

/// "route 10.2.0.0/16 in table 254", for messages.
pub fn describe_route(spec: &RouteSpec) -> String {
    let table = spec.table.unwrap_or_default();
    let mut out = format!("route {} in table {}", spec.dst, table);
    if let Some(via) = spec.via {
        out.push_str(&format!(" via {via}"));
    }
    if let Some(dev) = &spec.dev {
        out.push_str(&format!(" dev {dev}"));
    }
    out
}
