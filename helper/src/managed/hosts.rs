//! Hosts of the simulated network: where a host hangs off its router (the interface facing
//! its subnet, that interface's bridge, the gateway), the gateways added to routers for
//! hosts and shared between them, and the names of a host's links.
//!
//! Invariants:
//! * A gateway the helper adds to a router (the host subnet's first address, when the router
//!   has none in that subnet) is counted from the host records that say so; it is added under
//!   the router's gateway lock before the host that needs it is made, and removed under the
//!   same lock only when no host record (in any phase) needs it any more.
//! * A host's subnet is found from the applied topology, never from the kernel's addresses:
//!   a gateway added for a host is not the router's own, and stays counted.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};

use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use tsim_protocol::ops::{AddrSpec, HostInfo};
use tsim_protocol::topology::{INTERNET_HOSTS_IF, InterfaceDef, RouterDef, Topology};
use tsim_protocol::{Cidr, ErrorCode, IfName, NsName};

use crate::base::error::{HelperError, chain};
use crate::kernel::netlink::Netlink;
use crate::kernel::nlmsg;
use crate::managed::context::Helper;
use crate::managed::state::{HostFacet, NsRecord};

/// Where a host hangs off its router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The router interface facing the host.
    pub router_if: IfName,
    /// That interface's bridge.
    pub bridge: IfName,
    /// The host's default gateway.
    pub gateway: IpAddr,
    /// Whether the gateway has to be added to the router.
    pub gateway_added: bool,
}

/// Checks a host's primary address: IPv4, a subnet with room for a gateway and a host, and
/// neither the subnet's network nor its broadcast address; or, on the internet router
/// (`internet`), also a `/32`, an external host (see [`external`]).
pub fn check_address(ip: &Cidr, internet: bool) -> Result<(), HelperError> {
    let IpAddr::V4(addr) = ip.addr() else {
        return Err(HelperError::InvalidArgument(format!(
            "Host address {ip} is not IPv4: the simulated network is IPv4 only"
        )));
    };
    if internet && ip.prefix() == 32 {
        return Ok(());
    }
    if ip.prefix() > 30 || ip.prefix() == 0 {
        let external = if internet {
            ", or /32 for an external host"
        } else {
            " (a /32 is for external hosts, behind the internet router: `host add --internet`)"
        };
        return Err(HelperError::InvalidArgument(format!(
            "Host address {ip}: the prefix must be /1 to /30, so that the subnet has room for a gateway{external}"
        )));
    }
    let bits = u32::from(addr);
    let mask = u32::MAX << (32 - ip.prefix());
    if bits & !mask == 0 || bits & !mask == !mask {
        return Err(HelperError::InvalidArgument(format!(
            "Host address {ip} is the network or broadcast address of its subnet"
        )));
    }
    Ok(())
}

/// The first address of `ip`'s subnet: the gateway the helper adds when the router has none.
fn first_address(ip: &Cidr) -> IpAddr {
    match ip.network().addr() {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a).wrapping_add(1))),
        other => other,
    }
}

/// The router's address in `ip`'s subnet on `iface`, if it has one.
fn own_address(iface: &InterfaceDef, ip: &Cidr) -> Option<IpAddr> {
    iface
        .addrs
        .iter()
        .map(|a| a.addr)
        .find(|a| a.prefix() > 0 && a.network().contains(ip.addr()))
        .map(|a| a.addr())
}

fn on_bridge(
    router: &RouterDef,
    iface: &InterfaceDef,
    gateway: IpAddr,
    gateway_added: bool,
) -> Result<Placement, HelperError> {
    let bridge = iface.bridge.clone().ok_or_else(|| {
        HelperError::InvalidArgument(format!(
            "Interface {} of router {} is not on a bridge of the network (it has no IPv4 address): no host can hang off it",
            iface.name, router.name
        ))
    })?;
    Ok(Placement {
        router_if: iface.name.clone(),
        bridge,
        gateway,
        gateway_added,
    })
}

/// Where a host with address `ip` hangs off `router`, when that can be told from the
/// topology: the interface given, or the one with an address in the host's subnet. `None`
/// means the router has no address in the subnet and no interface was given: ask the router
/// which interface it routes the address through, then call [`behind`].
pub fn facing(
    router: &RouterDef,
    ip: &Cidr,
    router_if: Option<&IfName>,
) -> Result<Option<Placement>, HelperError> {
    for iface in &router.interfaces {
        if iface.addrs.iter().any(|a| a.addr.addr() == ip.addr()) {
            return Err(HelperError::Conflict(format!(
                "Address {} is router {}'s own (on {})",
                ip.addr(),
                router.name,
                iface.name
            )));
        }
    }
    if let Some(name) = router_if {
        let iface = router
            .interfaces
            .iter()
            .find(|i| &i.name == name)
            .ok_or_else(|| {
                HelperError::NotFound(format!("Router {} has no interface {name}", router.name))
            })?;
        return match own_address(iface, ip) {
            Some(own) => on_bridge(router, iface, own, false).map(Some),
            None => behind(router, ip, name).map(Some),
        };
    }
    for iface in &router.interfaces {
        if let Some(own) = own_address(iface, ip) {
            return on_bridge(router, iface, own, false).map(Some);
        }
    }
    Ok(None)
}

/// A host with address `ip` behind `router`'s interface `dev`, where the router has no
/// address in the host's subnet: the gateway is the subnet's first address, added for it.
pub fn behind(router: &RouterDef, ip: &Cidr, dev: &IfName) -> Result<Placement, HelperError> {
    let iface = router
        .interfaces
        .iter()
        .find(|i| &i.name == dev)
        .ok_or_else(|| {
            HelperError::InvalidArgument(format!(
                "Router {} routes {} through {dev}, which is not an interface of the network",
                router.name,
                ip.addr()
            ))
        })?;
    check_gateway_subnet(router, ip)?;
    let gateway = first_address(ip);
    if gateway == ip.addr() {
        return Err(HelperError::Conflict(format!(
            "Host address {ip} is the gateway router {} would get in that subnet; use another address",
            router.name
        )));
    }
    on_bridge(router, iface, gateway, true)
}

/// Where an external host hangs: a `/32` public address `ip` on the internet router's
/// [`INTERNET_HOSTS_IF`], whose first address is the host's gateway (on-link: it is outside
/// the host's `/32`). The internet router reaches every address it does not route elsewhere
/// through that interface, so the host needs no route of its own there; its address must
/// therefore be one of those: public (not special-purpose), routed by no other route of the
/// internet router (its blackholes for private space), in no subnet of the network and no
/// router's own.
pub fn external(
    topology: &Topology,
    internet: &RouterDef,
    ip: &Cidr,
) -> Result<Placement, HelperError> {
    let iface = internet.hosts_if().ok_or_else(|| {
        HelperError::InvalidArgument(format!(
            "Router {} has no interface {INTERNET_HOSTS_IF} for external hosts",
            internet.name
        ))
    })?;
    let gateway = iface
        .addrs
        .first()
        .map(|a| a.addr.addr())
        .filter(IpAddr::is_ipv4)
        .ok_or_else(|| {
            HelperError::InvalidArgument(format!(
                "{}/{INTERNET_HOSTS_IF} has no IPv4 address to be the external hosts' gateway",
                internet.name
            ))
        })?;
    let addr = ip.addr();
    let special = match addr {
        IpAddr::V4(a) => {
            a.is_unspecified()
                || a.is_loopback()
                || a.is_multicast()
                || a.is_broadcast()
                || a.is_link_local()
                || a.octets()[0] == 0
                || a.octets()[0] >= 240
        }
        IpAddr::V6(_) => true,
    };
    if special {
        return Err(HelperError::InvalidArgument(format!(
            "External host address {addr} is not a public unicast address"
        )));
    }
    if let Some(route) = internet
        .routes
        .iter()
        .find(|r| r.dst.prefix() > 0 && r.dst.contains(addr))
    {
        return Err(HelperError::Conflict(format!(
            "External host address {addr}: router {} routes it elsewhere ({route}); the outside world does not route private or shared address space",
            internet.name
        )));
    }
    if let Some(b) = topology.bridges.iter().find(|b| b.subnet.contains(addr)) {
        return Err(HelperError::Conflict(format!(
            "External host address {addr} is in {}, a subnet of the network (bridge {}); an external host needs an address outside it",
            b.subnet, b.name
        )));
    }
    for router in &topology.routers {
        for i in &router.interfaces {
            if i.addrs.iter().any(|a| a.addr.addr() == addr) {
                return Err(HelperError::Conflict(format!(
                    "External host address {addr} is router {}'s own (on {})",
                    router.name, i.name
                )));
            }
        }
    }
    on_bridge(internet, iface, gateway, false)
}

/// Whether a host's default route needs `onlink`: its gateway is outside its subnet (an
/// external host's, outside its `/32`).
pub fn onlink(ip: &Cidr, gateway: IpAddr) -> bool {
    !ip.contains(gateway)
}

/// Whether two networks share an address (never across address families).
pub fn overlaps(a: &Cidr, b: &Cidr) -> bool {
    let (wide, narrow) = if a.prefix() <= b.prefix() {
        (a, b)
    } else {
        (b, a)
    };
    wide.addr().is_ipv4() == narrow.addr().is_ipv4() && wide.contains(narrow.addr())
}

/// Refuses a gateway for `subnet` that would widen over what `router` has: its connected
/// route would cover a route of the router (other than the default route) or a connected
/// network of it that is narrower (`128.0.0.0/1` over everything in it, `10.0.0.0/12` over
/// `10.0.2.0/24`). A subnet inside one of the router's routes, or equal to one, is the
/// simulator's way of injecting traffic at that router (the web layer's source and
/// destination hosts): its gateway shadows that route on this router, for that subnet only.
pub fn check_gateway_subnet(router: &RouterDef, subnet: &Cidr) -> Result<(), HelperError> {
    let net = subnet.network();
    // `net` strictly wider than `other`, and covering it.
    let widens = |other: &Cidr| net.prefix() < other.prefix() && overlaps(other, &net);
    let refuse = |what: String| {
        Err(HelperError::Conflict(format!(
            "A host in {net} would need router {} to get the gateway {}, whose route would widen over {what}; choose a longer prefix",
            router.name,
            first_address(subnet),
        )))
    };
    for route in router.routes.iter().filter(|r| r.dst.prefix() > 0) {
        if widens(&route.dst) {
            return refuse(format!("its route {}", route.dst));
        }
    }
    for iface in &router.interfaces {
        for a in &iface.addrs {
            if widens(&a.addr.network()) {
                return refuse(format!("{} (on its {})", a.addr.network(), iface.name));
            }
        }
    }
    Ok(())
}

/// Checks what a host would claim against every router of `topology`: no secondary may be
/// a router's address (the host answers ARP for its secondaries on eth0).
pub fn check_claims(topology: &Topology, secondaries: &[Cidr]) -> Result<(), HelperError> {
    for other in &topology.routers {
        for iface in &other.interfaces {
            for a in iface.addrs.iter().map(|a| a.addr) {
                if let Some(s) = secondaries.iter().find(|s| s.addr() == a.addr()) {
                    return Err(HelperError::Conflict(format!(
                        "Secondary address {} is router {}'s (on {})",
                        s.addr(),
                        other.name,
                        iface.name
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Checks that no router of `topology` has `ip` on the bridge a host would join (the
/// host's address), or, for a gateway the helper would add, on that bridge either.
pub fn check_bridge(
    topology: &Topology,
    placement: &Placement,
    router: &NsName,
    ip: &Cidr,
) -> Result<(), HelperError> {
    for other in &topology.routers {
        for iface in other
            .interfaces
            .iter()
            .filter(|i| i.bridge.as_ref() == Some(&placement.bridge))
        {
            for a in iface.addrs.iter().map(|a| a.addr.addr()) {
                if a == ip.addr() {
                    return Err(HelperError::Conflict(format!(
                        "Address {a} is router {}'s (on {}), on the bridge the host would join",
                        other.name, iface.name
                    )));
                }
                if placement.gateway_added && a == placement.gateway && &other.name != router {
                    return Err(HelperError::Conflict(format!(
                        "The gateway {a} router {router} would need is router {}'s (on {}), on the same bridge",
                        other.name, iface.name
                    )));
                }
            }
        }
    }
    Ok(())
}

/// The name of a host's veth end in the hidden namespace (see
/// [`tsim_protocol::naming::host_end`]; routers' ends start with `v`, pooled ones with `p`).
pub fn hidden_end(host: &NsName) -> IfName {
    tsim_protocol::naming::host_end(host)
}

/// The wire view of a host record.
pub fn info(record: &NsRecord, state: &str) -> Option<HostInfo> {
    let h = record.host.as_ref()?;
    Some(HostInfo {
        name: record.name.clone(),
        ip: h.ip,
        secondaries: h.secondaries.clone(),
        router: h.router.clone(),
        router_if: h.router_if.clone(),
        gateway: h.gateway,
        gateway_added: h.gateway_added,
        bridge: h.bridge.clone(),
        owner_uid: record.owner_uid,
        tag: record.tag.clone(),
        created_ms: record.created_ms,
        state: state.to_owned(),
        leases: h.leases.clone(),
    })
}

/// The gateways added to routers for hosts, with one lock per router.
#[derive(Debug, Default)]
pub struct Gateways {
    locks: Mutex<HashMap<NsName, Arc<tokio::sync::Mutex<()>>>>,
}

impl Gateways {
    fn lock_for(&self, router: &NsName) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(router.clone())
            .or_default()
            .clone()
    }

    /// Makes sure `gateway` is on `router`'s interface `dev` (adding it if it is not).
    pub async fn ensure(
        &self,
        helper: &Helper,
        router: &NsName,
        dev: &IfName,
        gateway: &Cidr,
    ) -> Result<(), HelperError> {
        let lock = self.lock_for(router);
        let _held = lock.lock().await;
        // Under the router's lock: another host's gateway in an overlapping subnet would be
        // shadowed or widened by this one.
        for (record, _) in helper.registry.hosts() {
            let Some(other) = record
                .host
                .filter(|h| &h.router == router && h.gateway_added)
            else {
                continue;
            };
            let theirs = other.gateway_cidr();
            if theirs != *gateway && overlaps(&theirs.network(), &gateway.network()) {
                return Err(HelperError::Conflict(format!(
                    "Router {router} has the gateway {theirs} for host {}; a gateway {gateway} would overlap it",
                    record.name
                )));
            }
        }
        let nl = router_netlink(helper, router).await?;
        let index = nl.link_index(dev.as_str()).await?;
        let msg = nlmsg::addr_message(&gateway_spec(router, dev, gateway), index)?;
        let action = || format!("add gateway {gateway} to {dev} of router {router}");
        match nl
            .ack(
                RouteNetlinkMessage::NewAddress(msg),
                NLM_F_CREATE | NLM_F_EXCL,
                action,
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if e.code == ErrorCode::AlreadyExists => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes `gateway` from `router`'s interface `dev` if no host needs it any more.
    /// A router that is gone is not an error.
    pub async fn release(
        &self,
        helper: &Helper,
        router: &NsName,
        dev: &IfName,
        gateway: &Cidr,
    ) -> Result<(), HelperError> {
        let lock = self.lock_for(router);
        let _held = lock.lock().await;
        if helper.registry.gateway_users(router, gateway) > 0 {
            return Ok(());
        }
        if !helper.registry.is_managed(router) {
            return Ok(());
        }
        let nl = router_netlink(helper, router).await?;
        let index = match nl.link_index(dev.as_str()).await {
            Ok(i) => i,
            Err(e) if e.code == ErrorCode::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let msg = nlmsg::addr_message(&gateway_spec(router, dev, gateway), index)?;
        let action = || format!("remove gateway {gateway} from {dev} of router {router}");
        match nl
            .ack(RouteNetlinkMessage::DelAddress(msg), 0, action)
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if e.code == ErrorCode::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

fn gateway_spec(router: &NsName, dev: &IfName, gateway: &Cidr) -> AddrSpec {
    AddrSpec {
        ns: router.clone(),
        dev: dev.clone(),
        addr: *gateway,
        broadcast: None,
        scope: None,
        secondary: false,
    }
}

/// The netlink socket of managed namespace `router`, with the helper's own authority (hosts
/// change routers and the hidden namespace, which they do not own: the gateway, the
/// neighbour entry, the bridge port).
pub async fn router_netlink(helper: &Helper, router: &NsName) -> Result<Netlink, HelperError> {
    let entry = helper.registry.lookup_for_undo(router).ok_or_else(|| {
        HelperError::NotFound(format!("Namespace {router} is not a managed namespace"))
    })?;
    match entry.netlink {
        Some(nl) => Ok(nl),
        None => {
            let nl = helper.netns.open_netlink(router, entry.ino).await?;
            helper.registry.store_netlink(router, entry.ino, nl.clone());
            Ok(nl)
        }
    }
}

/// Puts a pooled namespace's parked veth end (index `parked_index` in the hidden namespace,
/// down, on no bridge) to work for a host: on `bridge`, up; one request.
pub async fn attach_parked(
    nl: &Netlink,
    parked_index: u32,
    bridge: &IfName,
) -> Result<(), HelperError> {
    let master = nl.link_index(bridge.as_str()).await?;
    let mut msg = LinkMessage::default();
    msg.header.index = parked_index;
    msg.header.flags = LinkFlags::Up;
    msg.header.change_mask = LinkFlags::Up;
    msg.attributes.push(LinkAttribute::Controller(master));
    let action = || format!("attach a pooled namespace's veth to bridge {bridge}");
    nl.ack(RouteNetlinkMessage::SetLink(msg), 0, action).await?;
    Ok(())
}

/// Gives a fresh host's `eth0` (index `eth0`) its address and default route: two requests,
/// nothing to undo (the namespace is new; undoing its creation removes them).
pub async fn configure(
    nl: &Netlink,
    ns: &NsName,
    eth0: u32,
    ip: Cidr,
    gateway: IpAddr,
) -> Result<(), HelperError> {
    let spec = AddrSpec {
        ns: ns.clone(),
        dev: "eth0".parse().expect("a valid interface name"),
        addr: ip,
        broadcast: None,
        scope: None,
        secondary: false,
    };
    let msg = nlmsg::addr_message(&spec, eth0)?;
    let action = || format!("add address {ip} to eth0 in namespace {ns}");
    nl.ack(
        RouteNetlinkMessage::NewAddress(msg),
        NLM_F_CREATE | NLM_F_EXCL,
        action,
    )
    .await?;
    let route = nlmsg::RouteRequest {
        dst: Cidr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0).expect("the default route"),
        table: tsim_protocol::net::TableId::MAIN.id(),
        kind: None,
        via: Some(gateway),
        dev: Some(eth0),
        src: None,
        metric: None,
        tos: None,
        scope: None,
        proto: None,
        onlink: onlink(&ip, gateway),
        nexthops: Vec::new(),
    };
    let msg = nlmsg::route_message(&route, nlmsg::Mode::Add)?;
    let action = || format!("add the default route via {gateway} in namespace {ns}");
    nl.ack(
        RouteNetlinkMessage::NewRoute(msg),
        NLM_F_CREATE | NLM_F_EXCL,
        action,
    )
    .await?;
    Ok(())
}

/// Forgets what `router` knew of `ip` on `dev` (a neighbour entry left by an earlier host
/// with that address would send its first answers to a MAC address that is gone). Failures
/// are only logged: the entry is a cache.
pub async fn forget_neighbour(helper: &Helper, router: &NsName, dev: &IfName, ip: IpAddr) {
    let result = async {
        let nl = router_netlink(helper, router).await?;
        let index = nl.link_index(dev.as_str()).await?;
        let msg = nlmsg::neigh_message(index, ip, None, None);
        let action = || format!("forget neighbour {ip} on {dev} of router {router}");
        match nl
            .ack(RouteNetlinkMessage::DelNeighbour(msg), 0, action)
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if e.code == ErrorCode::NotFound => Ok(()),
            Err(e) => Err(HelperError::from(e)),
        }
    }
    .await;
    if let Err(e) = result {
        tracing::debug!(router = %router, error = %chain(&e), "Cannot forget a neighbour entry");
    }
}

/// Deletes shared host `name`, whose last lease was given up by an undo (its deletion begun
/// by [`crate::managed::registry::Registry::drop_lease`], inode `ino`): its services, its
/// namespace, its record, then its gateway and its router's neighbour entry, as a committed
/// `host_delete` would. Failures are logged.
pub async fn delete_unleased(helper: &Helper, name: &NsName, ino: u64) {
    let facet = helper.registry.host(name).and_then(|(r, _)| r.host);
    helper.services.stop_ns(helper, name);
    match helper.netns.detach(name, ino).await {
        Ok(handle) => drop(handle),
        Err(e) => {
            tracing::error!(ns = %name, error = %chain(&e), "Cannot delete a shared host whose last lease was undone");
        }
    }
    helper.registry.finish_delete(name);
    let Some(facet) = facet else { return };
    if facet.gateway_added {
        let gateway = facet.gateway_cidr();
        if let Err(e) = helper
            .gateways
            .release(helper, &facet.router, &facet.router_if, &gateway)
            .await
        {
            tracing::error!(router = %facet.router, error = %chain(&e), "Cannot remove a gateway no host needs");
        }
    }
    if helper.registry.is_managed(&facet.router) {
        forget_neighbour(helper, &facet.router, &facet.router_if, facet.ip.addr()).await;
    }
}

/// At start: removes the gateways that hosts lost in a crash had added, unless a host that
/// survived needs them.
pub async fn recover_gateways(helper: &Helper, lost: &[HostFacet]) {
    for host in lost.iter().filter(|h| h.gateway_added) {
        let gateway = host.gateway_cidr();
        match helper
            .gateways
            .release(helper, &host.router, &host.router_if, &gateway)
            .await
        {
            Ok(()) => {}
            Err(e) => tracing::warn!(
                router = %host.router,
                gateway = %gateway,
                error = %chain(&e),
                "Cannot remove a gateway that only a lost host needed"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> RouterDef {
        serde_json::from_value(serde_json::json!({
            "name": "r1",
            "interfaces": [
                {"name": "eth0", "up": true, "addrs": [{"addr": "10.0.1.1/24"}], "bridge": "br-a", "hidden_end": "v1"},
                {"name": "eth1", "up": true, "addrs": [{"addr": "10.0.2.1/24"}], "bridge": "br-b", "hidden_end": "v2"},
                {"name": "wg0", "up": true, "hidden_end": "v3"}
            ]
        }))
        .unwrap()
    }

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn gateways_never_overlap_the_routers_routes_or_networks() {
        assert!(overlaps(&cidr("10.0.0.0/8"), &cidr("10.9.9.0/24")));
        assert!(overlaps(&cidr("10.9.9.0/24"), &cidr("10.0.0.0/8")));
        assert!(!overlaps(&cidr("10.9.9.0/24"), &cidr("10.9.8.0/24")));
        assert!(!overlaps(&cidr("0.0.0.0/0"), &cidr("fd00::/64")));
        let mut r = router();
        r.routes = vec![
            serde_json::from_value(serde_json::json!({"dst": "0.0.0.0/0", "via": "10.0.1.254"}))
                .unwrap(),
            serde_json::from_value(
                serde_json::json!({"dst": "172.16.0.0/12", "via": "10.0.1.254"}),
            )
            .unwrap(),
        ];
        // Inside a route (or the default route) is fine; wider than one is not.
        for ok in ["10.9.9.5/24", "172.16.5.5/24", "172.16.0.5/12"] {
            assert!(check_gateway_subnet(&r, &cidr(ok)).is_ok(), "{ok}");
        }
        for bad in ["128.0.0.5/1", "10.0.0.5/16", "172.0.0.5/8"] {
            assert!(
                matches!(
                    check_gateway_subnet(&r, &cidr(bad)),
                    Err(HelperError::Conflict(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn addresses_are_checked() {
        assert!(check_address(&cidr("10.0.1.100/24"), false).is_ok());
        for bad in [
            "10.0.1.0/24",
            "10.0.1.255/24",
            "10.0.1.1/31",
            "10.0.1.1/32",
            "10.0.0.1/0",
        ] {
            assert!(check_address(&cidr(bad), false).is_err(), "{bad}");
        }
        assert!(check_address(&cidr("fd00::5/64"), false).is_err());
        // A /32 is an external host's, on the internet router only.
        let e = check_address(&cidr("8.8.8.8/32"), false).unwrap_err();
        assert!(e.to_string().contains("--internet"), "{e}");
        assert!(check_address(&cidr("8.8.8.8/32"), true).is_ok());
        assert!(check_address(&cidr("8.8.8.8/31"), true).is_err());
    }

    fn internet() -> Topology {
        serde_json::from_value(serde_json::json!({
            "bridges": [
                {"name": "br-up", "subnet": "203.0.113.0/24"},
                {"name": "br-ext", "subnet": "169.254.0.0/16"},
                {"name": "br-a", "subnet": "10.0.1.0/24"}
            ],
            "routers": [
                {"name": "edge", "interfaces": [
                    {"name": "eth0", "up": true, "addrs": [{"addr": "203.0.113.10/24"}], "bridge": "br-up", "hidden_end": "v1"},
                    {"name": "lo", "up": true, "addrs": [{"addr": "198.18.0.1/32"}], "hidden_end": "v2"}
                ]},
                {"name": "internet", "internet": true, "interfaces": [
                    {"name": "up0", "up": true, "addrs": [{"addr": "203.0.113.1/24"}], "bridge": "br-up", "hidden_end": "v3"},
                    {"name": "hosts0", "up": true, "addrs": [{"addr": "169.254.0.1/16"}], "bridge": "br-ext", "hidden_end": "v4"}
                ], "routes": [
                    {"dst": "10.0.0.0/8", "kind": "blackhole"},
                    {"dst": "0.0.0.0/0", "dev": "hosts0", "scope": "link"}
                ]}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn an_external_host_hangs_off_the_internets_hosts_interface_with_a_public_address() {
        let t = internet();
        let inet = t.internet().unwrap();
        let p = external(&t, inet, &cidr("8.8.8.8/32")).unwrap();
        assert_eq!(p.router_if.as_str(), INTERNET_HOSTS_IF);
        assert_eq!(p.bridge.as_str(), "br-ext");
        assert_eq!(p.gateway.to_string(), "169.254.0.1");
        assert!(!p.gateway_added);
        for (bad, why) in [
            ("10.9.9.9/32", "routes it elsewhere"),
            ("203.0.113.77/32", "a subnet of the network"),
            ("198.18.0.1/32", "router edge's own"),
            ("127.0.0.1/32", "not a public"),
            ("169.254.9.9/32", "not a public"),
            ("224.0.0.5/32", "not a public"),
            ("0.1.2.3/32", "not a public"),
        ] {
            let e = external(&t, inet, &cidr(bad)).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
        // Not the internet: no hosts interface.
        let edge = &t.routers[0];
        assert!(external(&t, edge, &cidr("8.8.8.8/32")).is_err());
    }

    #[test]
    fn a_host_in_a_router_subnet_uses_the_routers_address() {
        let p = facing(&router(), &cidr("10.0.2.50/24"), None)
            .unwrap()
            .unwrap();
        assert_eq!(p.router_if.as_str(), "eth1");
        assert_eq!(p.bridge.as_str(), "br-b");
        assert_eq!(p.gateway.to_string(), "10.0.2.1");
        assert!(!p.gateway_added);
    }

    #[test]
    fn elsewhere_the_gateway_is_added() {
        let r = router();
        assert_eq!(facing(&r, &cidr("10.9.0.5/24"), None).unwrap(), None);
        let p = behind(&r, &cidr("10.9.0.5/24"), &"eth0".parse().unwrap()).unwrap();
        assert_eq!(p.gateway.to_string(), "10.9.0.1");
        assert!(p.gateway_added);
        assert_eq!(p.bridge.as_str(), "br-a");
        let given = facing(&r, &cidr("10.9.0.5/24"), Some(&"eth1".parse().unwrap()))
            .unwrap()
            .unwrap();
        assert_eq!(
            (given.router_if.as_str(), given.gateway_added),
            ("eth1", true)
        );
    }

    #[test]
    fn conflicts_and_errors() {
        let r = router();
        let own = facing(&r, &cidr("10.0.1.1/24"), None).unwrap_err();
        assert_eq!(own.code(), ErrorCode::Conflict, "{own}");
        let gw = behind(&r, &cidr("10.9.0.1/24"), &"eth0".parse().unwrap()).unwrap_err();
        assert_eq!(gw.code(), ErrorCode::Conflict, "{gw}");
        let unknown = facing(&r, &cidr("10.9.0.5/24"), Some(&"eth7".parse().unwrap())).unwrap_err();
        assert_eq!(unknown.code(), ErrorCode::NotFound);
        let no_bridge = behind(&r, &cidr("10.9.0.5/24"), &"wg0".parse().unwrap()).unwrap_err();
        assert_eq!(no_bridge.code(), ErrorCode::InvalidArgument);
    }

    #[test]
    fn addresses_of_other_routers_on_the_bridge_conflict() {
        let topology: Topology = serde_json::from_value(serde_json::json!({
            "bridges": [{"name": "br-a", "subnet": "10.0.1.0/24"}],
            "routers": [
                {"name": "r1", "interfaces": [{"name": "eth0", "up": true, "addrs": [{"addr": "10.0.1.1/24"}], "bridge": "br-a", "hidden_end": "v1"}]},
                {"name": "r2", "interfaces": [{"name": "eth0", "up": true, "addrs": [{"addr": "10.0.1.2/24"}, {"addr": "10.9.0.1/24"}], "bridge": "br-a", "hidden_end": "v2"}]}
            ]
        }))
        .unwrap();
        let r1 = &topology.routers[0];
        let r1_name = &r1.name;
        let p = facing(r1, &cidr("10.0.1.2/24"), None).unwrap().unwrap();
        let e = check_bridge(&topology, &p, r1_name, &cidr("10.0.1.2/24")).unwrap_err();
        assert_eq!(e.code(), ErrorCode::Conflict);
        assert!(e.to_string().contains("r2"), "{e}");
        let p = facing(r1, &cidr("10.0.1.3/24"), None).unwrap().unwrap();
        check_bridge(&topology, &p, r1_name, &cidr("10.0.1.3/24")).unwrap();
        // r1 would add 10.9.0.1 for a host in 10.9.0.0/24: r2 has it on the same bridge.
        let p = behind(r1, &cidr("10.9.0.5/24"), &"eth0".parse().unwrap()).unwrap();
        let e = check_bridge(&topology, &p, r1_name, &cidr("10.9.0.5/24")).unwrap_err();
        assert_eq!(e.code(), ErrorCode::Conflict);
    }

    #[test]
    fn hidden_ends_are_stable_and_short() {
        let a = hidden_end(&"source-1".parse().unwrap());
        assert_eq!(a, hidden_end(&"source-1".parse().unwrap()));
        assert_ne!(a, hidden_end(&"source-2".parse().unwrap()));
        assert_eq!(a.as_str().len(), 13);
    }
}
