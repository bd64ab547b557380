//! The simulated network as the helper sees it: the applied topology (persisted), what
//! applying a topology means (policy routes and rules only on request), and the difference
//! between the applied network and a new one. Pure: no I/O here.

use std::collections::{HashMap, HashSet};

use tsim_protocol::IfName;
use tsim_protocol::NsName;
use tsim_protocol::ops::NetWarning;
use tsim_protocol::topology::{
    BridgeDef, INTERNET_HOSTS_IF, InterfaceDef, RouteDef, RouterDef, RuleDef, SysctlDef, Topology,
};

use crate::base::error::HelperError;

/// What `net_apply` is asked to build: the topology, without the policy routes and rules
/// unless they were asked for.
pub fn effective(topology: &Topology, policy_tables: bool) -> Topology {
    let mut out = topology.clone();
    if !policy_tables {
        for router in &mut out.routers {
            router.routes.retain(|r| !r.policy);
            router.rules.clear();
        }
    }
    out
}

/// Checks a topology before anything is done: names unique, bridges known, nothing named like
/// the hidden namespace.
pub fn validate(topology: &Topology, hidden: &NsName) -> Result<(), HelperError> {
    let invalid = |m: String| Err(HelperError::InvalidArgument(m));
    let bridges: HashSet<&str> = topology.bridges.iter().map(|b| b.name.as_str()).collect();
    if bridges.len() != topology.bridges.len() {
        return invalid("The topology names a bridge twice".into());
    }
    let mut routers = HashSet::new();
    let mut hidden_ends = HashSet::new();
    for router in &topology.routers {
        if &router.name == hidden {
            return invalid(format!(
                "Router {} has the name of the hidden namespace",
                router.name
            ));
        }
        if !routers.insert(&router.name) {
            return invalid(format!("Router {} appears twice", router.name));
        }
        let mut names = HashSet::new();
        for iface in &router.interfaces {
            if !names.insert(&iface.name) {
                return invalid(format!(
                    "Router {} has interface {} twice",
                    router.name, iface.name
                ));
            }
            if !hidden_ends.insert(&iface.hidden_end) {
                return invalid(format!(
                    "The hidden end name {} is used twice",
                    iface.hidden_end
                ));
            }
            if let Some(b) = &iface.bridge {
                if !bridges.contains(b.as_str()) {
                    return invalid(format!(
                        "{}/{} hangs off bridge {b}, which the topology does not define",
                        router.name, iface.name
                    ));
                }
            }
        }
    }
    let mut internets = topology.routers.iter().filter(|r| r.internet);
    if let Some(internet) = internets.next() {
        if let Some(other) = internets.next() {
            return invalid(format!(
                "Routers {} and {} are both marked internet; a network has one outside world",
                internet.name, other.name
            ));
        }
        let usable = internet.hosts_if().is_some_and(|i| {
            i.bridge.is_some() && i.addrs.first().is_some_and(|a| a.addr.addr().is_ipv4())
        });
        if !usable {
            return invalid(format!(
                "Router {} is marked internet but has no interface {INTERNET_HOSTS_IF} with an IPv4 address on a bridge, for its external hosts",
                internet.name
            ));
        }
    }
    Ok(())
}

/// How one router changes.
#[derive(Debug, Default)]
pub struct RouterChange<'a> {
    /// The router as it is.
    pub old: Option<&'a RouterDef>,
    /// The router as it is to be.
    pub new: Option<&'a RouterDef>,
    /// Interfaces to create.
    pub add_interfaces: Vec<&'a InterfaceDef>,
    /// Interfaces to delete.
    pub remove_interfaces: Vec<&'a InterfaceDef>,
    /// Interfaces to change in place: (old, new).
    pub change_interfaces: Vec<(&'a InterfaceDef, &'a InterfaceDef)>,
    /// Routes to add.
    pub add_routes: Vec<&'a RouteDef>,
    /// Routes to delete.
    pub remove_routes: Vec<&'a RouteDef>,
    /// Rules to add.
    pub add_rules: Vec<&'a RuleDef>,
    /// Rules to delete.
    pub remove_rules: Vec<&'a RuleDef>,
    /// Sysctls to set.
    pub sysctls: Vec<&'a SysctlDef>,
    /// The firewall payloads differ.
    pub firewall: bool,
}

/// The difference between the applied network and the one asked for.
#[derive(Debug, Default)]
pub struct NetDiff<'a> {
    /// Bridges to create.
    pub add_bridges: Vec<&'a BridgeDef>,
    /// Bridges to delete (after the interfaces that used them).
    pub remove_bridges: Vec<&'a BridgeDef>,
    /// Routers to create.
    pub add_routers: Vec<&'a RouterDef>,
    /// Routers to delete.
    pub remove_routers: Vec<&'a RouterDef>,
    /// Routers to change in place.
    pub change_routers: Vec<RouterChange<'a>>,
    /// Routers that stay as they are.
    pub unchanged: usize,
}

impl NetDiff<'_> {
    /// Whether nothing is to be done.
    pub fn is_empty(&self) -> bool {
        self.add_bridges.is_empty()
            && self.remove_bridges.is_empty()
            && self.add_routers.is_empty()
            && self.remove_routers.is_empty()
            && self.change_routers.is_empty()
    }
}

/// What of `a` is not in `b`, in `a`'s order: linear (a hash set of `b`), since a topology
/// may have many thousands of routes per router.
fn minus<'a, T: Eq + std::hash::Hash>(a: &'a [T], b: &[T]) -> Vec<&'a T> {
    let b: HashSet<&T> = b.iter().collect();
    a.iter().filter(|x| !b.contains(x)).collect()
}

/// What turns `old` into `new` (both effective topologies).
pub fn diff<'a>(old: &'a Topology, new: &'a Topology) -> NetDiff<'a> {
    let mut d = NetDiff {
        add_bridges: minus(&new.bridges, &old.bridges),
        remove_bridges: minus(&old.bridges, &new.bridges),
        ..NetDiff::default()
    };
    let old_routers: HashMap<&NsName, &RouterDef> =
        old.routers.iter().map(|r| (&r.name, r)).collect();
    let new_names: HashSet<&NsName> = new.routers.iter().map(|r| &r.name).collect();
    d.remove_routers = old
        .routers
        .iter()
        .filter(|r| !new_names.contains(&r.name))
        .collect();
    for router in &new.routers {
        let Some(before) = old_routers.get(&router.name) else {
            d.add_routers.push(router);
            continue;
        };
        if *before == router {
            d.unchanged += 1;
            continue;
        }
        let old_ifaces: HashMap<_, _> = before.interfaces.iter().map(|i| (&i.name, i)).collect();
        let new_ifaces: HashSet<_> = router.interfaces.iter().map(|i| &i.name).collect();
        let mut change = RouterChange {
            old: Some(before),
            new: Some(router),
            ..RouterChange::default()
        };
        for iface in &router.interfaces {
            match old_ifaces.get(&iface.name) {
                None => change.add_interfaces.push(iface),
                // Another hidden end is another veth: replace it.
                Some(o) if o.hidden_end != iface.hidden_end => {
                    change.remove_interfaces.push(o);
                    change.add_interfaces.push(iface);
                }
                Some(o) if *o != iface => change.change_interfaces.push((o, iface)),
                Some(_) => {}
            }
        }
        change.remove_interfaces.extend(
            before
                .interfaces
                .iter()
                .filter(|i| !new_ifaces.contains(&i.name)),
        );
        change.add_routes = minus(&router.routes, &before.routes);
        // A replaced interface comes back without its routes: add them again.
        let replaced: Vec<&InterfaceDef> = change
            .add_interfaces
            .iter()
            .copied()
            .filter(|i| old_ifaces.contains_key(&i.name))
            .collect();
        let replaced: HashSet<&IfName> = replaced.iter().map(|i| &i.name).collect();
        let mut added: HashSet<&RouteDef> = change.add_routes.iter().copied().collect();
        for route in &router.routes {
            let through = route.dev.as_ref().is_some_and(|d| replaced.contains(d));
            if through && added.insert(route) {
                change.add_routes.push(route);
            }
        }
        change.remove_routes = minus(&before.routes, &router.routes);
        change.add_rules = minus(&router.rules, &before.rules);
        change.remove_rules = minus(&before.rules, &router.rules);
        change.sysctls = minus(&router.sysctls, &before.sysctls);
        change.firewall = before.ipset != router.ipset || before.iptables != router.iptables;
        d.change_routers.push(change);
    }
    d
}

/// The warnings of the network after an apply: this apply's, and the earlier ones about
/// items it did not try again (routers it left alone; in routers it changed, firewalls it did
/// not restore and routes and rules it did not add again) that are still asked for.
pub fn carry_warnings(
    previous: &[NetWarning],
    now: Vec<NetWarning>,
    desired: &Topology,
    d: &NetDiff<'_>,
) -> Vec<NetWarning> {
    let mut out = now;
    for w in previous {
        let Some(router) = desired.routers.iter().find(|r| r.name == w.router) else {
            continue;
        };
        if d.add_routers.iter().any(|r| r.name == router.name) {
            continue;
        }
        let change = d
            .change_routers
            .iter()
            .find(|c| c.new.is_some_and(|n| n.name == router.name));
        let keep = match change {
            None => true,
            Some(c) => match w.kind.as_str() {
                "ipset" | "iptables" => !c.firewall,
                "route" => router
                    .routes
                    .iter()
                    .any(|r| r.to_string() == w.item && !c.add_routes.contains(&r)),
                "rule" => router
                    .rules
                    .iter()
                    .any(|r| r.to_string() == w.item && !c.add_rules.contains(&r)),
                _ => false,
            },
        };
        if keep {
            out.push(w.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topo(json: serde_json::Value) -> Topology {
        serde_json::from_value(json).unwrap()
    }

    fn base() -> serde_json::Value {
        serde_json::json!({
            "bridges": [{"name": "br-0a010100-24", "subnet": "10.1.1.0/24"}, {"name": "br-0a020100-24", "subnet": "10.2.1.0/24"}],
            "routers": [
                {"name": "r1", "interfaces": [{"name": "eth0", "up": true, "addrs": [{"addr": "10.1.1.1/24"}], "bridge": "br-0a010100-24", "hidden_end": "v1"}],
                 "routes": [{"dst": "10.9.0.0/16", "via": "10.1.1.2"}, {"dst": "10.8.0.0/16", "via": "10.1.1.2", "table": 100, "policy": true}],
                 "rules": [{"pref": 50, "from": "10.1.1.0/24", "table": 100}],
                 "sysctls": [{"key": "net.ipv4.ip_forward", "value": "1"}],
                 "iptables": "*filter\nCOMMIT\n"},
                {"name": "r2", "interfaces": [{"name": "eth0", "up": true, "addrs": [{"addr": "10.2.1.1/24"}], "bridge": "br-0a020100-24", "hidden_end": "v2"}]}
            ]
        })
    }

    #[test]
    fn one_internet_router_at_most_and_with_its_hosts_interface() {
        let hidden: NsName = "hidden".parse().unwrap();
        let mut j = base();
        j["routers"][1]["internet"] = serde_json::json!(true);
        let e = validate(&topo(j.clone()), &hidden).unwrap_err().to_string();
        assert!(e.contains("no interface hosts0"), "{e}");
        j["routers"][1]["interfaces"][0]["name"] = serde_json::json!("hosts0");
        validate(&topo(j.clone()), &hidden).unwrap();
        j["routers"][0]["internet"] = serde_json::json!(true);
        j["routers"][0]["interfaces"][0]["name"] = serde_json::json!("hosts0");
        let e = validate(&topo(j), &hidden).unwrap_err().to_string();
        assert!(e.contains("both marked internet"), "{e}");
    }

    #[test]
    fn effective_leaves_policy_out_unless_asked() {
        let t = topo(base());
        let without = effective(&t, false);
        assert_eq!(without.routers[0].routes.len(), 1);
        assert!(without.routers[0].rules.is_empty());
        assert_eq!(effective(&t, true), t);
    }

    #[test]
    fn the_same_network_is_no_change() {
        let t = effective(&topo(base()), false);
        let d = diff(&t, &t);
        assert!(d.is_empty());
        assert_eq!(d.unchanged, 2);
        let from_nothing = Topology::default();
        let d = diff(&from_nothing, &t);
        assert_eq!((d.add_routers.len(), d.add_bridges.len()), (2, 2));
    }

    #[test]
    fn changes_are_found_where_they_are() {
        let old = effective(&topo(base()), true);
        let mut json = base();
        json["routers"][0]["routes"][0]["via"] = serde_json::json!("10.1.1.3");
        json["routers"][0]["interfaces"][0]["addrs"][0]["addr"] = serde_json::json!("10.1.1.5/24");
        json["routers"][0]["iptables"] = serde_json::json!("*filter\n-A INPUT -j ACCEPT\nCOMMIT\n");
        json["routers"].as_array_mut().unwrap().pop();
        json["routers"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"name": "r3", "interfaces": []}));
        json["bridges"].as_array_mut().unwrap().pop();
        let new = effective(&topo(json), true);
        let d = diff(&old, &new);
        assert_eq!(
            d.remove_routers
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>(),
            ["r2"]
        );
        assert_eq!(
            d.add_routers
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>(),
            ["r3"]
        );
        assert_eq!(d.remove_bridges.len(), 1);
        let c = &d.change_routers[0];
        assert_eq!((c.add_routes.len(), c.remove_routes.len()), (1, 1));
        assert_eq!(c.change_interfaces.len(), 1);
        assert!(c.firewall);
        assert!(c.add_rules.is_empty() && c.sysctls.is_empty());
    }

    #[test]
    fn bad_topologies_are_refused() {
        let hidden: NsName = "tsim-hidden".parse().unwrap();
        assert!(validate(&topo(base()), &hidden).is_ok());
        let mut json = base();
        json["routers"][1]["name"] = serde_json::json!("r1");
        assert!(validate(&topo(json), &hidden).is_err());
        let mut json = base();
        json["routers"][0]["interfaces"][0]["bridge"] = serde_json::json!("br-nope");
        let err = validate(&topo(json), &hidden).unwrap_err().to_string();
        assert!(err.contains("br-nope"), "{err}");
        let mut json = base();
        json["routers"][1]["name"] = serde_json::json!("tsim-hidden");
        assert!(validate(&topo(json), &hidden).is_err());
        let mut json = base();
        json["routers"][1]["interfaces"][0]["hidden_end"] = serde_json::json!("v1");
        assert!(validate(&topo(json), &hidden).is_err());
    }

    #[test]
    fn a_replaced_interface_gets_its_routes_again() {
        let mut json = base();
        json["routers"][0]["interfaces"][0]["hidden_end"] = serde_json::json!("v9");
        json["routers"][0]["routes"][0]["dev"] = serde_json::json!("eth0");
        let mut old_json = base();
        old_json["routers"][0]["routes"][0]["dev"] = serde_json::json!("eth0");
        let old = effective(&topo(old_json), false);
        let new = effective(&topo(json), false);
        let d = diff(&old, &new);
        let c = &d.change_routers[0];
        assert_eq!((c.add_interfaces.len(), c.remove_interfaces.len()), (1, 1));
        assert_eq!(
            c.add_routes.len(),
            1,
            "the route through eth0 is added again"
        );
        assert!(c.remove_routes.is_empty());
    }

    #[test]
    fn warnings_carry_over_for_what_is_not_tried_again() {
        let warn = |router: &str, kind: &str, item: &str| NetWarning {
            router: router.parse().unwrap(),
            kind: kind.into(),
            item: item.into(),
            message: "refused".into(),
        };
        let t = effective(&topo(base()), false);
        let route = t.routers[0].routes[0].to_string();
        let previous = vec![
            warn("r1", "route", &route),
            warn("r1", "iptables", "-A INPUT -j NOPE"),
            warn("r2", "ipset", "create s hash:mac"),
            warn("gone", "route", "10.0.0.0/8 via 10.1.1.9"),
        ];
        // Nothing changed: every warning of a router still there stays.
        let d = diff(&t, &t);
        let kept = carry_warnings(&previous, Vec::new(), &t, &d);
        assert_eq!(kept.len(), 3);
        // r1's firewall is restored again: its old iptables warning goes, the route's stays.
        let mut json = base();
        json["routers"][0]["iptables"] = serde_json::json!("*filter\n-A INPUT -j ACCEPT\nCOMMIT\n");
        let new = effective(&topo(json), false);
        let d = diff(&t, &new);
        let now = vec![warn("r1", "iptables", "-A INPUT -j OTHER")];
        let kept = carry_warnings(&previous, now, &new, &d);
        let items: Vec<&str> = kept.iter().map(|w| w.item.as_str()).collect();
        assert_eq!(
            items,
            ["-A INPUT -j OTHER", route.as_str(), "create s hash:mac"]
        );
        // The route itself is tried again: its old warning goes.
        let mut json = base();
        json["routers"][0]["routes"][0]["via"] = serde_json::json!("10.1.1.3");
        let new = effective(&topo(json), false);
        let d = diff(&t, &new);
        let kept = carry_warnings(&previous, Vec::new(), &new, &d);
        assert!(kept.iter().all(|w| w.kind != "route"), "{kept:?}");
    }
}
