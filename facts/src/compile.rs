//! The topology compiler: router facts in, a topology document out.
//!
//! * One router per facts file; interfaces are the facts' links, except `lo` and the
//!   kernel's default tunnel devices, with names cut to 15 bytes.
//! * One bridge per IPv4 subnet, named after the subnet (`br-0a010100-24` for
//!   10.1.1.0/24), so adding a subnet never renames another bridge; no bridge for loopback.
//!   An interface's veth hangs off the bridge of its first subnet; its end in the hidden
//!   namespace is named from a hash of the router and the interface (`v` and 12 hex digits).
//! * Routes: the main table from `routing_table` (legacy) or `routing_table_main`; the
//!   kernel's own routes (`proto kernel`) are left out. Policy tables from
//!   `routing_table_<id|name>`, their ids from the name, `rt_tables` or the section's
//!   `COMMAND:` line; a connected route is added to a policy table for each gateway it uses,
//!   as the kernel needs one. Policy routes and rules are marked as such and applied only on
//!   request.
//! * Sysctls: `ip_forward=1`; `arp_ignore=1` and `arp_announce=2` (a router answers ARP only
//!   for addresses on the receiving interface, so routers sharing a bridge do not answer for
//!   each other); `icmp_ratelimit=0` (probes through the network are answered every time);
//!   no ICMP redirects sent or taken (`send_redirects=0`, `accept_redirects=0` for `all` and
//!   `default`), as in the real networks this simulates, so that a host's path does not
//!   change after its first packets (the helper starts every namespace so; the document says
//!   it, so that `net plan` shows it and `net verify` checks it). A router's `sysctl`
//!   section (`key = value` lines, as `sysctl -a` prints them) may turn its redirects back on.
//! * Firewall payloads go through the transforms of [`super::firewall`].
//!
//! What cannot be used (an unresolvable table, a route through an unknown interface, a
//! duplicate) is left out with a warning that names the file and line.

use std::collections::{BTreeMap, HashMap, HashSet};

use tsim_protocol::net::{RouteProto, Scope, SysctlValue, TableId};
use tsim_protocol::topology::{
    AddrDef, BridgeDef, InterfaceDef, RouteDef, RouterDef, RuleDef, SysctlDef, Topology,
};
use tsim_protocol::{Cidr, IfName, NsName, naming};

use super::{FactsError, RouterFacts, firewall, iproute};

/// Interfaces that are never part of the simulated network.
const SKIPPED_INTERFACES: [&str; 10] = [
    "lo", "tunl0", "sit0", "gre0", "gretap0", "erspan0", "ip6tnl0", "ip6gre0", "ip_vti0",
    "ip6_vti0",
];

/// The sysctls every router gets.
const ROUTER_SYSCTLS: [(&str, &str); 8] = [
    ("net.ipv4.ip_forward", "1"),
    ("net.ipv4.conf.all.arp_ignore", "1"),
    ("net.ipv4.conf.all.arp_announce", "2"),
    ("net.ipv4.icmp_ratelimit", "0"),
    ("net.ipv4.conf.all.send_redirects", "0"),
    ("net.ipv4.conf.default.send_redirects", "0"),
    ("net.ipv4.conf.all.accept_redirects", "0"),
    ("net.ipv4.conf.default.accept_redirects", "0"),
];

/// The sysctls every router gets, as the document carries them.
pub fn router_sysctls() -> Vec<SysctlDef> {
    ROUTER_SYSCTLS
        .iter()
        .map(|(k, v)| SysctlDef {
            key: k.parse().expect("a valid key"),
            value: v.parse::<SysctlValue>().expect("a valid value"),
        })
        .collect()
}

/// The compiled network and what was left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The topology document.
    pub topology: Topology,
    /// What was left out, with the file and line.
    pub warnings: Vec<String>,
}

/// The bridge name for a subnet (see [`tsim_protocol::naming::bridge`]).
pub fn bridge_name(subnet: &Cidr) -> IfName {
    naming::bridge(subnet)
}

/// The name of an interface's veth end in the hidden namespace (see
/// [`tsim_protocol::naming::router_end`]).
pub fn hidden_end(router: &str, interface: &str) -> IfName {
    naming::router_end(router, interface)
}

/// Compiles routers' facts into a topology.
pub fn compile(facts: &[RouterFacts]) -> Result<Plan, FactsError> {
    let mut warnings = Vec::new();
    let mut routers = Vec::new();
    let mut bridges: BTreeMap<String, BridgeDef> = BTreeMap::new();
    let mut hidden_ends: HashMap<IfName, String> = HashMap::new();
    let mut sorted: Vec<&RouterFacts> = facts.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut seen = HashSet::new();
    for rf in sorted {
        let name: NsName = rf.name.parse().map_err(|e| {
            FactsError::new(
                &rf.source,
                0,
                format!("the router's name cannot be a namespace name: {e}"),
            )
        })?;
        if !seen.insert(name.clone()) {
            return Err(FactsError::new(
                &rf.source,
                0,
                format!("router {name} is described twice"),
            ));
        }
        for (line, why) in &rf.problems {
            warnings.push(format!("{}:{line}: {why}; left out", rf.source.display()));
        }
        let router = compile_router(rf, name, &mut warnings)?;
        for iface in &router.interfaces {
            if let Some(other) = hidden_ends.insert(
                iface.hidden_end.clone(),
                format!("{}/{}", router.name, iface.name),
            ) {
                return Err(FactsError::new(
                    &rf.source,
                    0,
                    format!(
                        "the hidden names of {}/{} and {other} collide",
                        router.name, iface.name
                    ),
                ));
            }
            if let (Some(bridge), Some(first)) = (&iface.bridge, iface.addrs.first()) {
                bridges
                    .entry(bridge.to_string())
                    .or_insert_with(|| BridgeDef {
                        name: bridge.clone(),
                        subnet: first.addr.network(),
                    });
            }
        }
        routers.push(router);
    }
    Ok(Plan {
        topology: Topology {
            bridges: bridges.into_values().collect(),
            routers,
        },
        warnings,
    })
}

fn compile_router(
    rf: &RouterFacts,
    name: NsName,
    warnings: &mut Vec<String>,
) -> Result<RouterDef, FactsError> {
    let src = rf.source.display().to_string();
    let mut interfaces: Vec<InterfaceDef> = Vec::new();
    for iface in &rf.interfaces {
        if SKIPPED_INTERFACES.contains(&iface.name.as_str()) {
            continue;
        }
        let cut: String = iface.name.chars().take(15).collect();
        let ifname: IfName = cut.parse().map_err(|e| {
            FactsError::new(
                &rf.source,
                iface.line,
                format!("interface {:?}: {e}", iface.name),
            )
        })?;
        if interfaces.iter().any(|i| i.name == ifname) {
            return Err(FactsError::new(
                &rf.source,
                iface.line,
                format!("interface {ifname} appears twice"),
            ));
        }
        let addrs: Vec<AddrDef> = iface
            .addrs
            .iter()
            .filter(|a| a.cidr.addr().is_ipv4())
            .map(|a| AddrDef {
                addr: a.cidr,
                broadcast: a.broadcast.map(Into::into),
                scope: a.scope.filter(|s| *s != Scope::Global),
                secondary: a.secondary,
            })
            .collect();
        let bridge = addrs
            .iter()
            .map(|a| a.addr)
            .find(|c| !c.addr().is_loopback())
            .map(|c| bridge_name(&c));
        interfaces.push(InterfaceDef {
            hidden_end: hidden_end(name.as_str(), ifname.as_str()),
            name: ifname,
            up: iface.up,
            addrs,
            bridge,
        });
    }

    let known: HashSet<&str> = interfaces.iter().map(|i| i.name.as_str()).collect();
    let mut routes: Vec<RouteDef> = Vec::new();
    let mut keys = HashSet::new();
    let mut add_route = |route: RouteDef, line: usize, warnings: &mut Vec<String>| {
        let key = (route.table, route.dst, route.tos, route.metric);
        if keys.insert(key) {
            routes.push(route);
        } else {
            warnings.push(format!(
                "{src}:{line}: a second route to {} with the same TOS and metric; left out",
                route.dst
            ));
        }
    };
    for (line, text) in &rf.main_routes {
        if let Some(route) = route_line(text, *line, &known, &src, warnings) {
            add_route(route, *line, warnings);
        }
    }

    // Policy tables: ids from the section name, rt_tables, or the section's command line.
    let mut table_ids: HashMap<String, TableId> = HashMap::new();
    let mut broken: HashSet<String> = HashSet::new();
    for (id, tname) in &rf.rt_tables {
        if let Ok(t) = TableId::new(*id) {
            table_ids.insert(tname.clone(), t);
        }
    }
    for table in &rf.tables {
        let id = table
            .name
            .parse::<u32>()
            .ok()
            .or_else(|| table_ids.get(&table.name).map(|t| t.id()))
            .or(table.command_id)
            .and_then(|id| TableId::new(id).ok());
        let Some(id) = id else {
            warnings.push(format!(
                "{src}: table {:?} has no id (no rt_tables entry, no `table N` command); left out",
                table.name
            ));
            continue;
        };
        table_ids.insert(table.name.clone(), id);
        if table.broken {
            broken.insert(table.name.clone());
            warnings.push(format!(
                "{src}: table {} could not be collected; it and its rules are left out",
                table.name
            ));
            continue;
        }
        let mut connected = HashSet::new();
        for (line, text) in &table.lines {
            let Some(mut route) = route_line(text, *line, &known, &src, warnings) else {
                continue;
            };
            route.table = Some(id);
            route.policy = true;
            // The kernel needs a route to the gateway in the same table.
            if let (Some(via), Some(dev)) = (route.via, &route.dev) {
                let iface = interfaces.iter().find(|i| &i.name == dev);
                let own = iface.and_then(|i| i.addrs.iter().find(|a| a.addr.contains(via.0)));
                if let Some(own) = own {
                    if connected.insert(own.addr.network()) {
                        let link = RouteDef {
                            dst: own.addr.network(),
                            table: Some(id),
                            policy: true,
                            kind: None,
                            via: None,
                            dev: Some(dev.clone()),
                            src: Some(own.addr.addr().into()),
                            metric: None,
                            tos: None,
                            scope: Some(Scope::Link),
                            proto: Some(RouteProto::Kernel),
                            onlink: false,
                            nexthops: Vec::new(),
                        };
                        add_route(link, *line, warnings);
                    }
                }
            }
            add_route(route, *line, warnings);
        }
    }

    let mut rules = Vec::new();
    for (line, text) in &rf.rules {
        if iproute::default_rule(text) {
            continue;
        }
        let parsed = match iproute::rule(&iproute::clean(text)) {
            Ok(p) => p,
            Err(why) => {
                warnings.push(format!(
                    "{src}:{line}: rule {:?}: {why}; left out",
                    text.trim()
                ));
                continue;
            }
        };
        let mut rule: RuleDef = parsed.rule;
        if let Some(tname) = parsed.table {
            if broken.contains(&tname) {
                continue;
            }
            let id = iproute::table_id(&tname).or_else(|| table_ids.get(&tname).copied());
            let Some(id) = id else {
                warnings.push(format!(
                    "{src}:{line}: rule {:?} looks up table {tname:?}, which has no id; left out",
                    text.trim()
                ));
                continue;
            };
            rule.table = Some(id);
        }
        rules.push(rule);
    }

    let mut sysctls = router_sysctls();
    for def in router_redirects(rf, warnings) {
        match sysctls.iter_mut().find(|s| s.key == def.key) {
            Some(s) => s.value = def.value,
            None => sysctls.push(def),
        }
    }
    Ok(RouterDef {
        name,
        interfaces,
        routes,
        rules,
        sysctls,
        ipset: rf.ipset.as_deref().and_then(firewall::ipset),
        iptables: rf.iptables.as_deref().and_then(firewall::iptables),
        internet: false,
    })
}

/// One route line, or `None` (with a warning when it is not simply a kernel route).
fn route_line(
    text: &str,
    line: usize,
    known: &HashSet<&str>,
    src: &str,
    warnings: &mut Vec<String>,
) -> Option<RouteDef> {
    let cleaned = iproute::clean(text);
    if cleaned.is_empty() || cleaned.contains("Error:") || cleaned.contains("Dump terminated") {
        return None;
    }
    let parsed = match iproute::route(&cleaned) {
        Ok(p) => p,
        Err(why) => {
            warnings.push(format!("{src}:{line}: route {cleaned:?}: {why}; left out"));
            return None;
        }
    };
    if parsed.kernel {
        return None;
    }
    let route = parsed.route;
    if route.dst.addr().is_ipv6() {
        return None;
    }
    if route.dst.network() != route.dst {
        warnings.push(format!(
            "{src}:{line}: route {cleaned:?}: the destination has host bits set; left out"
        ));
        return None;
    }
    let devs = route
        .dev
        .iter()
        .chain(route.nexthops.iter().filter_map(|h| h.dev.as_ref()));
    for dev in devs {
        if !known.contains(dev.as_str()) {
            warnings.push(format!("{src}:{line}: route {cleaned:?} uses interface {dev}, which is not in the network; left out"));
            return None;
        }
    }
    Some(route)
}

/// The ICMP redirect settings a router's `sysctl` section gives (`send_redirects`,
/// `accept_redirects`, `secure_redirects`, for `all`, `default` or an interface): the
/// router's own, which override the simulator's. Its other settings are the simulator's
/// business (`arp_ignore`, `icmp_ratelimit`: see [`ROUTER_SYSCTLS`]) and are left out.
fn router_redirects(facts: &RouterFacts, warnings: &mut Vec<String>) -> Vec<SysctlDef> {
    let src = facts.source.display();
    let mut out = Vec::new();
    for (line, text) in &facts.sysctls {
        let Some((key, value)) = text.split_once('=') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        let leaf = key.rsplit(['.', '/']).next().unwrap_or_default();
        if !key.starts_with("net.ipv4.conf.")
            || !matches!(
                leaf,
                "send_redirects" | "accept_redirects" | "secure_redirects"
            )
        {
            continue;
        }
        match (key.parse(), value.parse::<SysctlValue>()) {
            (Ok(key), Ok(value)) => out.push(SysctlDef { key, value }),
            _ => warnings.push(format!(
                "{src}:{line}: sysctl {:?} cannot be used; left out",
                text.trim()
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn facts10() -> Vec<RouterFacts> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/facts10/raw");
        super::super::load_dir(&dir).unwrap()
    }

    /// A router's `sysctl` section turns its redirects back on; its other settings stay
    /// the simulator's, and an unusable line is a warning with its line.
    #[test]
    fn a_router_may_turn_its_redirects_back_on() {
        let text = "=== TSIM_SECTION_START:interfaces ===\nCOMMAND: ip addr show\n---\n2: eth0: <UP> mtu 1500\n    inet 10.0.0.1/24 scope global eth0\nEXIT_CODE: 0\n=== TSIM_SECTION_END:interfaces ===\n=== TSIM_SECTION_START:sysctl ===\nCOMMAND: sysctl -a\n---\nnet.ipv4.conf.all.send_redirects = 1\nnet.ipv4.conf.eth0.accept_redirects = 1\nnet.ipv4.conf.all.arp_ignore = 0\nnet.ipv4.conf.default.send_redirects = yes\nkernel.hostname = r9\nEXIT_CODE: 0\n=== TSIM_SECTION_END:sysctl ===\n";
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("r9_facts.txt"), text).unwrap();
        let plan = compile(&super::super::load_dir(dir.path()).unwrap()).unwrap();
        let r = &plan.topology.routers[0];
        let value = |key: &str| {
            r.sysctls
                .iter()
                .find(|s| s.key.dotted() == key)
                .map(|s| s.value.to_string())
        };
        assert_eq!(
            value("net.ipv4.conf.all.send_redirects").as_deref(),
            Some("1")
        );
        assert_eq!(
            value("net.ipv4.conf.eth0.accept_redirects").as_deref(),
            Some("1")
        );
        assert_eq!(
            value("net.ipv4.conf.all.accept_redirects").as_deref(),
            Some("0")
        );
        assert_eq!(value("net.ipv4.conf.all.arp_ignore").as_deref(), Some("1"));
        assert_eq!(
            value("net.ipv4.conf.default.send_redirects").as_deref(),
            Some("0")
        );
        assert_eq!(plan.warnings.len(), 1, "{:?}", plan.warnings);
        assert!(
            plan.warnings[0].contains(":14: sysctl \"net.ipv4.conf.default.send_redirects = yes\""),
            "{:?}",
            plan.warnings
        );
    }

    /// One router in the current collector's spelling: `routing_table_main`, `rt_tables`,
    /// `routing_table_<id>` with its `COMMAND:` line, plus a section nobody knows.
    #[test]
    fn the_current_collectors_sections() {
        let section = |name: &str, command: &str, body: &str| {
            format!(
                "=== TSIM_SECTION_START:{name} ===\nCOMMAND: {command}\n---\n{body}\nEXIT_CODE: 0\n=== TSIM_SECTION_END:{name} ===\n"
            )
        };
        let text = [
            "# Hostname: r9\n".to_owned(),
            section(
                "routing_table_main",
                "ip route show table main",
                "default via 10.0.0.254 dev eth0 proto static\n10.0.0.0/24 dev eth0 proto kernel scope link src 10.0.0.1",
            ),
            section("rt_tables", "cat /etc/iproute2/rt_tables", "255 local\n254 main\n100 uplink\n# 7 commented"),
            section(
                "routing_table_uplink",
                "ip route show table uplink",
                "default via 10.0.0.253 dev eth0",
            ),
            section("routing_table_200", "ip route show table 200", "10.9.0.0/16 via 10.0.0.252 dev eth0"),
            section(
                "policy_rules",
                "ip rule show",
                "0:\tfrom all lookup local\n10:\tfrom 10.0.0.0/24 lookup uplink\n20:\tfwmark 0x2 lookup 200\n32766:\tfrom all lookup main",
            ),
            section("something_new", "whatever", "ignored"),
            section(
                "interfaces",
                "ip addr show",
                "2: eth0: <BROADCAST,UP,LOWER_UP> mtu 1500 state UP\n    inet 10.0.0.1/24 brd 10.0.0.255 scope global eth0",
            ),
        ]
        .concat();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("r9_facts.txt"), text).unwrap();
        let facts = super::super::load_dir(dir.path()).unwrap();
        let plan = compile(&facts).unwrap();
        assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
        let r = &plan.topology.routers[0];
        assert_eq!(r.interfaces.len(), 1);
        let shown: Vec<String> = r.routes.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "0.0.0.0/0 via 10.0.0.254 dev eth0 proto static",
                "10.0.0.0/24 dev eth0 table 100 proto kernel scope link src 10.0.0.1",
                "0.0.0.0/0 via 10.0.0.253 dev eth0 table 100",
                "10.0.0.0/24 dev eth0 table 200 proto kernel scope link src 10.0.0.1",
                "10.9.0.0/16 via 10.0.0.252 dev eth0 table 200",
            ]
        );
        assert!(r.routes[1..].iter().all(|r| r.policy) && !r.routes[0].policy);
        let rules: Vec<String> = r.rules.iter().map(ToString::to_string).collect();
        assert_eq!(
            rules,
            [
                "pref 10 from 10.0.0.0/24 lookup 100",
                "pref 20 from all fwmark 0x2 lookup 200"
            ]
        );
    }

    #[test]
    fn the_ten_router_network() {
        let plan = compile(&facts10()).unwrap();
        let t = &plan.topology;
        let names: Vec<&str> = t.routers.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "br-core", "br-gw", "br-wifi", "dc-core", "dc-gw", "dc-srv", "hq-core", "hq-dmz",
                "hq-gw", "hq-lab"
            ]
        );
        assert_eq!(t.bridges.len(), 18, "{:?}", t.bridges);
        let veths: usize = t.routers.iter().map(|r| r.interfaces.len()).sum();
        assert_eq!(veths, 27);
        let main: usize = t
            .routers
            .iter()
            .map(|r| r.routes.iter().filter(|r| !r.policy).count())
            .sum();
        assert_eq!(main, 83);
        let per_router: Vec<usize> = t
            .routers
            .iter()
            .map(|r| r.routes.iter().filter(|r| !r.policy).count())
            .collect();
        assert_eq!(per_router, [8, 8, 7, 9, 9, 7, 9, 9, 9, 8]);
        assert!(t.routers.iter().all(|r| r.iptables.is_some()));
        let hq_gw = t
            .routers
            .iter()
            .find(|r| r.name.as_str() == "hq-gw")
            .unwrap();
        let rules = hq_gw
            .iptables
            .as_ref()
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("-A"))
            .count();
        assert_eq!(rules, 168);
        assert!(
            hq_gw
                .ipset
                .as_ref()
                .unwrap()
                .starts_with("create test_bitmap_ip bitmap:ip")
        );
        let eth1 = hq_gw
            .interfaces
            .iter()
            .find(|i| i.name.as_str() == "eth1")
            .unwrap();
        assert_eq!(eth1.bridge.as_ref().unwrap().as_str(), "br-0a010100-24");
        assert!(hq_gw.rules.len() >= 25, "{}", hq_gw.rules.len());
        assert!(hq_gw.rules.iter().all(|r| r.table.is_some()));
        let priority = TableId::new(100).unwrap();
        assert!(
            hq_gw
                .routes
                .iter()
                .any(|r| r.policy && r.table == Some(priority))
        );
        // The 10.1.1.0/24 bridge joins hq-core and hq-gw.
        let members: Vec<String> = t
            .routers
            .iter()
            .flat_map(|r| {
                r.interfaces
                    .iter()
                    .filter(|i| i.bridge.as_ref().map(|b| b.as_str()) == Some("br-0a010100-24"))
                    .map(move |i| format!("{} {}", r.name, i.name))
            })
            .collect();
        assert_eq!(members, ["hq-core eth0", "hq-gw eth1"]);
    }

    #[test]
    fn json_facts_give_the_same_interfaces_and_known_routes() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/facts10/json");
        let from_json = compile(&super::super::load_dir(&dir).unwrap())
            .unwrap()
            .topology;
        let from_raw = compile(&facts10()).unwrap().topology;
        assert_eq!(from_json.bridges, from_raw.bridges);
        for (j, r) in from_json.routers.iter().zip(&from_raw.routers) {
            let names = |x: &RouterDef| {
                x.interfaces
                    .iter()
                    .map(|i| i.name.to_string())
                    .collect::<Vec<_>>()
            };
            let mut jn = names(j);
            let mut rn = names(r);
            jn.sort();
            rn.sort();
            assert_eq!(jn, rn, "{}", j.name);
            let main = |x: &RouterDef| {
                let mut v: Vec<String> = x
                    .routes
                    .iter()
                    .filter(|r| !r.policy)
                    .map(|r| r.dst.to_string())
                    .collect();
                v.sort();
                v
            };
            // The JSON facts were collected apart and hold fewer routes for some routers.
            let raw_main = main(r);
            assert!(
                main(j).iter().all(|d| raw_main.contains(d)),
                "{}: {:?} vs {:?}",
                j.name,
                main(j),
                raw_main
            );
        }
    }

    #[test]
    fn names_are_stable() {
        assert_eq!(
            bridge_name(&"10.1.1.0/24".parse().unwrap()).as_str(),
            "br-0a010100-24"
        );
        assert_eq!(
            bridge_name(&"255.255.255.255/32".parse().unwrap()).as_str(),
            "br-ffffffff-32"
        );
        assert_eq!(hidden_end("hq-gw", "eth1"), hidden_end("hq-gw", "eth1"));
        assert_ne!(hidden_end("hq-gw", "eth1"), hidden_end("hq-gw", "eth2"));
        assert_eq!(hidden_end("hq-gw", "eth1").as_str().len(), 13);
    }

    #[test]
    fn compiling_twice_gives_the_same_document() {
        assert_eq!(compile(&facts10()).unwrap(), compile(&facts10()).unwrap());
    }
}
