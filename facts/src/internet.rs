//! The outside world (`net setup --internet`): one more router, `internet`, added to a
//! compiled topology.
//!
//! * It owns the gateways the edge routers' default routes point at, where no router of the
//!   facts owns them: one interface (`up0`, `up1`, … in the order of the uplink bridges'
//!   names) on the bridge of each edge router's uplink, with the gateway addresses and the
//!   uplink's prefix. Its connected routes are therefore the uplink subnets.
//! * It drops what the real internet does not route: the private and shared address space
//!   (RFC 1918, RFC 6598) is a blackhole, so only traffic an edge router has NATed gets an
//!   answer back.
//! * Every other address is on-link behind [`INTERNET_HOSTS_IF`] (`169.254.0.1/16`, on a
//!   bridge of its own): that is where external hosts (`host add --internet`, a `/32`
//!   public address) hang, without a route per host.
//! * It gets the routers' sysctls: forwarding on, no ICMP redirects, no ICMP rate limit.
//!
//! The router is marked `internet` in the document, so `net plan` shows it, the helper knows
//! where external hosts go, and a document without it removes it again (and only it).

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

use tsim_protocol::net::{Ip, RouteType, Scope, TableId};
use tsim_protocol::topology::{
    AddrDef, BridgeDef, INTERNET_HOSTS_IF, InterfaceDef, RouteDef, RouterDef, Topology,
};
use tsim_protocol::{Cidr, IfName, NsName, naming};

/// The internet router's name (before any `--prefix`).
pub const NAME: &str = "internet";

/// The address of [`INTERNET_HOSTS_IF`]: the external hosts' gateway.
pub const HOSTS_GATEWAY: &str = "169.254.0.1/16";

/// What the internet does not route.
pub const NOT_ROUTED: [&str; 4] = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
];

fn cidr(s: &str) -> Cidr {
    s.parse().expect("a valid CIDR")
}

fn route(dst: Cidr) -> RouteDef {
    RouteDef {
        dst,
        table: None,
        policy: false,
        kind: None,
        via: None,
        dev: None,
        src: None,
        metric: None,
        tos: None,
        scope: None,
        proto: None,
        onlink: false,
        nexthops: Vec::new(),
    }
}

/// One uplink: an edge router's bridge towards a gateway no router owns.
#[derive(Debug, Default)]
struct Uplink {
    gateways: Vec<Cidr>,
}

/// The uplinks of `topology`, by bridge: for every router, each main-table default route
/// through a gateway that no router of the topology owns and that is in a subnet of the
/// route's interface (or, without one, of any interface of the router).
fn uplinks(topology: &Topology) -> BTreeMap<IfName, Uplink> {
    let owned: HashSet<IpAddr> = topology
        .routers
        .iter()
        .flat_map(|r| r.interfaces.iter())
        .flat_map(|i| i.addrs.iter().map(|a| a.addr.addr()))
        .collect();
    let mut found: BTreeMap<IfName, Uplink> = BTreeMap::new();
    for router in &topology.routers {
        let defaults = router.routes.iter().filter(|r| {
            r.dst.prefix() == 0
                && r.dst.addr().is_ipv4()
                && !r.policy
                && r.table.is_none_or(|t| t == TableId::MAIN)
        });
        for route in defaults {
            let Some(Ip(gateway)) = route.via else {
                continue;
            };
            if owned.contains(&gateway) {
                continue;
            }
            let on = router
                .interfaces
                .iter()
                .filter(|i| route.dev.as_ref().is_none_or(|d| d == &i.name) && i.bridge.is_some());
            for iface in on {
                let Some(a) = iface.addrs.iter().find(|a| a.addr.contains(gateway)) else {
                    continue;
                };
                let bridge = iface.bridge.clone().expect("filtered on a bridge");
                let ours = Cidr::new(gateway, a.addr.prefix()).expect("the uplink's prefix");
                let uplink = found.entry(bridge).or_default();
                if !uplink.gateways.contains(&ours) {
                    uplink.gateways.push(ours);
                }
                break;
            }
        }
    }
    found
}

/// Adds the internet router to `topology` (see the module's documentation). Refused when a
/// router is already called `internet` but is not the internet, when no router has a
/// default route through a gateway outside the topology, or when the topology uses the
/// external hosts' subnet. A topology that has its internet already is left as it is.
pub fn add(topology: &mut Topology) -> Result<(), String> {
    if topology.routers.iter().any(|r| r.internet) {
        return Ok(());
    }
    if topology.routers.iter().any(|r| r.name.as_str() == NAME) {
        return Err(format!(
            "--internet: a router of the facts is called {NAME:?}, the name of the outside world's namespace"
        ));
    }
    let hosts_net = cidr(HOSTS_GATEWAY).network();
    if let Some(b) = topology
        .bridges
        .iter()
        .find(|b| b.subnet.addr().is_ipv4() && crate_overlaps(&b.subnet, &hosts_net))
    {
        return Err(format!(
            "--internet: the facts use {} (bridge {}), which the outside world keeps for its external hosts ({hosts_net})",
            b.subnet, b.name
        ));
    }
    let uplinks = uplinks(topology);
    if uplinks.is_empty() {
        return Err(
            "--internet: no router has a default route through a gateway outside the facts, so nothing would lead to the outside world"
                .into(),
        );
    }
    let name: NsName = NAME.parse().expect("a valid namespace name");
    let mut interfaces = Vec::new();
    for (i, (bridge, uplink)) in uplinks.into_iter().enumerate() {
        let ifname: IfName = format!("up{i}").parse().expect("a valid interface name");
        interfaces.push(InterfaceDef {
            hidden_end: naming::router_end(NAME, ifname.as_str()),
            name: ifname,
            up: true,
            addrs: uplink
                .gateways
                .iter()
                .enumerate()
                .map(|(k, g)| AddrDef {
                    addr: *g,
                    broadcast: None,
                    scope: None,
                    secondary: uplink.gateways[..k]
                        .iter()
                        .any(|o| o.network() == g.network()),
                })
                .collect(),
            bridge: Some(bridge),
        });
    }
    let hosts_if: IfName = INTERNET_HOSTS_IF.parse().expect("a valid interface name");
    let hosts_bridge = naming::bridge(&hosts_net);
    interfaces.push(InterfaceDef {
        hidden_end: naming::router_end(NAME, INTERNET_HOSTS_IF),
        name: hosts_if.clone(),
        up: true,
        addrs: vec![AddrDef {
            addr: cidr(HOSTS_GATEWAY),
            broadcast: None,
            scope: None,
            secondary: false,
        }],
        bridge: Some(hosts_bridge.clone()),
    });
    let mut routes: Vec<RouteDef> = NOT_ROUTED
        .iter()
        .map(|n| RouteDef {
            kind: Some(RouteType::Blackhole),
            ..route(cidr(n))
        })
        .collect();
    routes.push(RouteDef {
        dev: Some(hosts_if),
        scope: Some(Scope::Link),
        ..route(cidr("0.0.0.0/0"))
    });
    topology.bridges.push(BridgeDef {
        name: hosts_bridge,
        subnet: hosts_net,
    });
    topology.bridges.sort_by(|a, b| a.name.cmp(&b.name));
    topology.routers.push(RouterDef {
        name,
        interfaces,
        routes,
        rules: Vec::new(),
        sysctls: crate::compile::router_sysctls(),
        ipset: None,
        iptables: None,
        internet: true,
    });
    topology.routers.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(())
}

/// Whether two IPv4 networks share an address.
fn crate_overlaps(a: &Cidr, b: &Cidr) -> bool {
    let (wide, narrow) = if a.prefix() <= b.prefix() {
        (a, b)
    } else {
        (b, a)
    };
    wide.contains(narrow.addr())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile;

    fn facts10() -> Topology {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/facts10/raw");
        let routers = crate::load_dir(&dir).expect("the test facts");
        compile(&routers).expect("compiled").topology
    }

    #[test]
    fn the_test_network_gets_the_three_upstream_gateways() {
        let mut t = facts10();
        let before = t.clone();
        add(&mut t).unwrap();
        let internet = t.internet().expect("an internet router");
        assert_eq!(internet.name.as_str(), NAME);
        let addrs: Vec<(String, String)> = internet
            .interfaces
            .iter()
            .map(|i| {
                (
                    i.name.to_string(),
                    i.addrs
                        .iter()
                        .map(|a| a.addr.to_string())
                        .collect::<Vec<_>>()
                        .join(","),
                )
            })
            .collect();
        let mut gateways: Vec<&str> = addrs[..3].iter().map(|(_, a)| a.as_str()).collect();
        gateways.sort_unstable();
        assert_eq!(
            gateways,
            ["192.0.2.1/24", "198.51.100.1/24", "203.0.113.1/24"]
        );
        assert_eq!(addrs[3], ("hosts0".into(), HOSTS_GATEWAY.into()));
        // The uplinks are the edge routers' bridges; nothing else of the network changed.
        for iface in &internet.interfaces[..3] {
            let bridge = iface.bridge.as_ref().unwrap();
            assert!(before.bridges.iter().any(|b| &b.name == bridge), "{bridge}");
        }
        for r in &before.routers {
            assert!(t.routers.contains(r), "router {} changed", r.name);
        }
        assert_eq!(t.bridges.len(), before.bridges.len() + 1);
        // Adding it twice changes nothing.
        let once = t.clone();
        add(&mut t).unwrap();
        assert_eq!(t, once);
    }

    #[test]
    fn a_network_without_an_exit_or_with_a_router_called_internet_is_refused() {
        let mut t = facts10();
        for r in &mut t.routers {
            r.routes.retain(|route| route.dst.prefix() != 0);
        }
        assert!(
            add(&mut t)
                .unwrap_err()
                .contains("no router has a default route")
        );
        let mut t = facts10();
        t.routers[0].name = NAME.parse().unwrap();
        assert!(add(&mut t).unwrap_err().contains("called \"internet\""));
    }

    #[test]
    fn a_gateway_owned_by_a_router_is_no_uplink() {
        let t = facts10();
        // br-core's default route points at br-gw (10.2.1.1): inside the facts.
        let found = uplinks(&t);
        assert_eq!(found.len(), 3);
        for up in found.values() {
            for g in &up.gateways {
                assert!(!g.addr().to_string().starts_with("10."), "{g}");
            }
        }
    }
}
