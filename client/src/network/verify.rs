//! The comparison behind `tsimctl net verify`: what a router's topology asks for against what
//! the kernel holds (interfaces, addresses, routes, rules, ipsets, iptables rules; counters
//! aside).
//!
//! * Routes: every IPv4 table but `local`. The kernel's own connected routes are expected
//!   from the addresses of interfaces that are up. A route without `dev` matches any device.
//! * Rules: the kernel's three default rules are left aside; a rule without `pref` matches
//!   any preference.
//! * Ipsets: sets by name and type, and their members; `create` options are not compared
//!   (the kernel adds its own).
//! * Iptables: per table, chain policies, user chains, and each chain's rules in order. A
//!   table with nothing in it (built-in chains, ACCEPT, no rules) counts as absent.
//! * What the apply left out with a warning (the kernel refused it) is reported as skipped,
//!   not as a difference.

use std::collections::BTreeMap;

use serde::Serialize;
use tsim_protocol::net::{RouteProto, RouteType, RuleAction, Scope, TableId};
use tsim_protocol::ops::{HostInfo, NetWarning, NextHop, RouteInfo, RuleInfo};
use tsim_protocol::topology::{AddrDef, RouteDef, RouterDef, RuleDef};
use tsim_protocol::{Cidr, NsName};

use super::firewall::{TableDump, canonical_rule, parse_ipset, parse_iptables};
use super::view::RouterView;

/// What kind of thing a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The router's namespace.
    Router,
    /// A link.
    Interface,
    /// An IPv4 address.
    Address,
    /// A route.
    Route,
    /// A policy rule.
    Rule,
    /// A set or a member of one.
    Ipset,
    /// A table, chain, policy or rule.
    Iptables,
}

impl Kind {
    /// Its name, as in warnings (`route`, `ipset`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Router => "router",
            Kind::Interface => "interface",
            Kind::Address => "address",
            Kind::Route => "route",
            Kind::Rule => "rule",
            Kind::Ipset => "ipset",
            Kind::Iptables => "iptables",
        }
    }

    /// Every kind, in report order.
    pub const ALL: [Kind; 7] = [
        Kind::Router,
        Kind::Interface,
        Kind::Address,
        Kind::Route,
        Kind::Rule,
        Kind::Ipset,
        Kind::Iptables,
    ];
}

/// How the kernel differs on one item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "lowercase")]
pub enum Problem {
    /// Asked for, not in the kernel.
    Missing,
    /// In the kernel, not asked for.
    Unexpected,
    /// In both, different.
    Differs {
        /// What the kernel has.
        kernel: String,
    },
    /// Asked for, but the kernel refused it when the network was applied (a warning then).
    Skipped {
        /// Why, as the warning said.
        why: String,
    },
}

/// One difference (or skipped item).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What kind of item.
    pub kind: Kind,
    /// The item, in `ip`/`iptables-save`/`ipset save` syntax.
    pub item: String,
    /// How it differs.
    #[serde(flatten)]
    pub problem: Problem,
}

/// The comparison of one router.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouterReport {
    /// The router.
    pub router: NsName,
    /// How many items of each kind the topology asks for.
    pub checked: BTreeMap<Kind, usize>,
    /// What differs, and what was skipped.
    pub findings: Vec<Finding>,
}

impl RouterReport {
    /// A report for a router whose namespace is not there at all.
    pub fn missing_router(router: &RouterDef) -> Self {
        Self {
            router: router.name.clone(),
            checked: BTreeMap::from([(Kind::Router, 1)]),
            findings: vec![Finding {
                kind: Kind::Router,
                item: router.name.to_string(),
                problem: Problem::Missing,
            }],
        }
    }

    /// A report for a router that is there but not asked for.
    pub fn unexpected_router(name: &NsName) -> Self {
        Self {
            router: name.clone(),
            checked: BTreeMap::new(),
            findings: vec![Finding {
                kind: Kind::Router,
                item: name.to_string(),
                problem: Problem::Unexpected,
            }],
        }
    }

    /// Differences of `kind` (skipped items aside).
    pub fn differences(&self, kind: Kind) -> usize {
        self.findings
            .iter()
            .filter(|f| f.kind == kind && !matches!(f.problem, Problem::Skipped { .. }))
            .count()
    }

    /// Skipped items of `kind`.
    pub fn skipped(&self, kind: Kind) -> usize {
        self.findings
            .iter()
            .filter(|f| f.kind == kind && matches!(f.problem, Problem::Skipped { .. }))
            .count()
    }

    /// Whether the kernel matches (skipped items aside).
    pub fn is_clean(&self) -> bool {
        self.findings
            .iter()
            .all(|f| matches!(f.problem, Problem::Skipped { .. }))
    }
}

/// Collects findings, turning expected-but-missing items the apply warned about into
/// skipped ones.
struct Findings<'w> {
    warnings: Vec<&'w NetWarning>,
    out: Vec<Finding>,
}

impl Findings<'_> {
    fn push(&mut self, kind: Kind, item: String, problem: Problem) {
        self.out.push(Finding {
            kind,
            item,
            problem,
        });
    }

    /// The warning about `item` of `kind`, if the apply left it out.
    fn warned(&self, kind: Kind, item: &str) -> Option<String> {
        let collapsed = collapse(item);
        self.warnings
            .iter()
            .find(|w| w.kind == kind.as_str() && collapse(&w.item) == collapsed)
            .map(|w| w.message.clone())
    }

    fn missing(&mut self, kind: Kind, item: String) {
        let problem = match self.warned(kind, &item) {
            Some(why) => Problem::Skipped { why },
            None => Problem::Missing,
        };
        self.push(kind, item, problem);
    }
}

/// `router` as the hosts on it have made it: with the gateways the helper added to its
/// interfaces for them (each once), which the facts do not know about.
pub fn with_host_gateways(router: &RouterDef, hosts: &[HostInfo]) -> RouterDef {
    let mut router = router.clone();
    for h in hosts
        .iter()
        .filter(|h| h.gateway_added && h.router == router.name)
    {
        let Ok(gateway) = Cidr::new(h.gateway.0, h.ip.prefix()) else {
            continue;
        };
        let Some(iface) = router.interfaces.iter_mut().find(|i| i.name == h.router_if) else {
            continue;
        };
        if !iface.addrs.iter().any(|a| a.addr == gateway) {
            iface.addrs.push(AddrDef {
                addr: gateway,
                broadcast: None,
                scope: None,
                secondary: false,
            });
        }
    }
    router
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Compares one router. `policy_tables` says whether policy routes and rules were asked
/// for; `warnings` are those of the apply (any router's: only this router's are used).
pub fn compare(
    expected: &RouterDef,
    policy_tables: bool,
    kernel: &RouterView,
    warnings: &[NetWarning],
) -> RouterReport {
    let mut f = Findings {
        warnings: warnings
            .iter()
            .filter(|w| w.router == expected.name)
            .collect(),
        out: Vec::new(),
    };
    let mut checked = BTreeMap::new();
    checked.insert(Kind::Interface, interfaces(expected, kernel, &mut f));
    checked.insert(Kind::Address, addresses(expected, kernel, &mut f));
    checked.insert(Kind::Route, routes(expected, policy_tables, kernel, &mut f));
    checked.insert(Kind::Rule, rules(expected, policy_tables, kernel, &mut f));
    checked.insert(Kind::Ipset, ipsets(expected, kernel, &mut f));
    checked.insert(Kind::Iptables, iptables(expected, kernel, &mut f));
    RouterReport {
        router: expected.name.clone(),
        checked,
        findings: f.out,
    }
}

fn interfaces(expected: &RouterDef, kernel: &RouterView, f: &mut Findings<'_>) -> usize {
    for iface in &expected.interfaces {
        match kernel.links.iter().find(|l| l.name == iface.name.as_str()) {
            None => f.missing(Kind::Interface, iface.name.to_string()),
            Some(link) if link.up != iface.up => f.push(
                Kind::Interface,
                format!("{} {}", iface.name, if iface.up { "up" } else { "down" }),
                Problem::Differs {
                    kernel: if link.up { "up" } else { "down" }.into(),
                },
            ),
            Some(_) => {}
        }
    }
    for link in &kernel.links {
        if link.name != "lo"
            && !expected
                .interfaces
                .iter()
                .any(|i| i.name.as_str() == link.name)
        {
            f.push(Kind::Interface, link.name.clone(), Problem::Unexpected);
        }
    }
    expected.interfaces.len()
}

fn addresses(expected: &RouterDef, kernel: &RouterView, f: &mut Findings<'_>) -> usize {
    let mut wanted: Vec<(String, Cidr)> = expected
        .interfaces
        .iter()
        .flat_map(|i| i.addrs.iter().map(|a| (i.name.to_string(), a.addr)))
        .collect();
    let count = wanted.len();
    for a in kernel.addrs.iter().filter(|a| a.dev != "lo") {
        match wanted.iter().position(|(d, c)| *d == a.dev && *c == a.addr) {
            Some(i) => {
                wanted.swap_remove(i);
            }
            None => f.push(
                Kind::Address,
                format!("{} dev {}", a.addr, a.dev),
                Problem::Unexpected,
            ),
        }
    }
    for (dev, addr) in wanted {
        f.missing(Kind::Address, format!("{addr} dev {dev}"));
    }
    count
}

/// The scope the helper gives a route that names none.
fn default_scope(r: &RouteDef) -> Scope {
    Scope::default_for_route(
        r.kind.unwrap_or(RouteType::Unicast),
        r.via.is_some() || !r.nexthops.is_empty(),
    )
}

fn route_matches(e: &RouteDef, k: &RouteInfo) -> bool {
    let hops_match = e.nexthops.len() == k.nexthops.len()
        && e.nexthops.iter().zip(&k.nexthops).all(|(eh, kh)| {
            eh.via == kh.via
                && eh
                    .dev
                    .as_ref()
                    .is_none_or(|d| kh.dev.as_deref() == Some(d.as_str()))
                && eh.weight.unwrap_or(1) == kh.weight
        });
    e.dst == k.dst
        && e.table.unwrap_or(TableId::MAIN).id() == k.table
        && e.kind.unwrap_or(RouteType::Unicast) == k.kind
        && e.via == k.via
        && e.dev
            .as_ref()
            .is_none_or(|d| k.dev.as_deref() == Some(d.as_str()))
        && e.src == k.src
        && e.metric.unwrap_or(0) == k.metric.unwrap_or(0)
        && e.tos.unwrap_or(0) == k.tos
        && e.scope.unwrap_or_else(|| default_scope(e)) == k.scope
        && e.proto.unwrap_or(RouteProto::DEFAULT) == k.proto
        && hops_match
}

/// A kernel route in the topology's terms, for messages.
pub fn route_def(k: &RouteInfo) -> RouteDef {
    RouteDef {
        dst: k.dst,
        table: (k.table != TableId::MAIN.id())
            .then(|| TableId::new(k.table).ok())
            .flatten(),
        policy: false,
        kind: (k.kind != RouteType::Unicast).then_some(k.kind),
        via: k.via,
        dev: k.dev.as_deref().and_then(|d| d.parse().ok()),
        src: k.src,
        metric: k.metric.filter(|m| *m != 0),
        tos: (k.tos != 0).then_some(k.tos),
        // As `ip route` shows them: no `proto boot`, no default scope.
        scope: Some(k.scope).filter(|s| *s != Scope::Global),
        proto: Some(k.proto).filter(|p| *p != RouteProto::DEFAULT),
        onlink: false,
        nexthops: k
            .nexthops
            .iter()
            .map(|h| NextHop {
                via: h.via,
                dev: h.dev.as_deref().and_then(|d| d.parse().ok()),
                weight: Some(h.weight),
                onlink: false,
            })
            .collect(),
    }
}

/// The connected routes the kernel makes for the addresses of interfaces that are up.
fn connected_routes(expected: &RouterDef) -> Vec<RouteDef> {
    let mut out: Vec<RouteDef> = Vec::new();
    for iface in expected.interfaces.iter().filter(|i| i.up) {
        for a in &iface.addrs {
            if a.addr.prefix() >= 32 {
                continue;
            }
            let dst = a.addr.network();
            if out
                .iter()
                .any(|r| r.dst == dst && r.dev.as_ref() == Some(&iface.name))
            {
                continue;
            }
            out.push(RouteDef {
                dst,
                table: None,
                policy: false,
                kind: None,
                via: None,
                dev: Some(iface.name.clone()),
                src: Some(a.addr.addr().into()),
                metric: None,
                tos: None,
                scope: Some(if a.scope == Some(Scope::Host) {
                    Scope::Host
                } else {
                    Scope::Link
                }),
                proto: Some(RouteProto::Kernel),
                onlink: false,
                nexthops: Vec::new(),
            });
        }
    }
    out
}

fn routes(
    expected: &RouterDef,
    policy_tables: bool,
    kernel: &RouterView,
    f: &mut Findings<'_>,
) -> usize {
    let mut wanted: Vec<RouteDef> = expected
        .routes
        .iter()
        .filter(|r| policy_tables || !r.policy)
        .cloned()
        .chain(connected_routes(expected))
        .collect();
    let count = wanted.len();
    for k in kernel
        .routes
        .iter()
        .filter(|k| k.table != TableId::LOCAL.id())
    {
        match wanted.iter().position(|e| route_matches(e, k)) {
            Some(i) => {
                wanted.remove(i);
            }
            None => f.push(Kind::Route, route_def(k).to_string(), Problem::Unexpected),
        }
    }
    for r in wanted {
        f.missing(Kind::Route, r.to_string());
    }
    count
}

/// The kernel's default rules: `0: lookup local`, `32766: lookup main`, `32767: lookup
/// default`.
pub fn default_rule(k: &RuleInfo) -> bool {
    let plain = k.from.is_none()
        && k.to.is_none()
        && k.iif.is_none()
        && k.oif.is_none()
        && k.fwmark.is_none()
        && k.tos == 0
        && k.action == "lookup";
    plain
        && matches!(
            (k.pref, k.table),
            (0, Some(255)) | (32766, Some(254)) | (32767, Some(253))
        )
}

fn action_name(a: RuleAction) -> &'static str {
    match a {
        RuleAction::Lookup => "lookup",
        RuleAction::Blackhole => "blackhole",
        RuleAction::Unreachable => "unreachable",
        RuleAction::Prohibit => "prohibit",
    }
}

fn rule_matches(e: &RuleDef, k: &RuleInfo) -> bool {
    let table = match e.action {
        RuleAction::Lookup => e.table.unwrap_or(TableId::MAIN).id() == k.table.unwrap_or(0),
        _ => true,
    };
    // The kernel keeps no selector for a /0 prefix.
    let any = |c: Option<Cidr>| c.filter(|c| c.prefix() > 0);
    e.pref.is_none_or(|p| p == k.pref)
        && any(e.from) == any(k.from)
        && any(e.to) == any(k.to)
        && e.iif.as_ref().map(|i| i.as_str()) == k.iif.as_deref()
        && e.oif.as_ref().map(|o| o.as_str()) == k.oif.as_deref()
        && e.fwmark == k.fwmark
        && (e.fwmask.is_none() || e.fwmask == k.fwmask)
        && e.tos.unwrap_or(0) == k.tos
        && e.dport == k.dport
        && e.sport == k.sport
        && e.ipproto == k.ipproto
        && action_name(e.action) == k.action
        && table
}

/// A kernel rule in `ip rule` syntax.
pub fn rule_text(k: &RuleInfo) -> String {
    let action = match k.action.as_str() {
        "lookup" => RuleAction::Lookup,
        "blackhole" => RuleAction::Blackhole,
        "unreachable" => RuleAction::Unreachable,
        "prohibit" => RuleAction::Prohibit,
        other => return format!("pref {} action {other}", k.pref),
    };
    RuleDef {
        family: None,
        pref: Some(k.pref),
        from: k.from,
        to: k.to,
        iif: k.iif.as_deref().and_then(|i| i.parse().ok()),
        oif: k.oif.as_deref().and_then(|o| o.parse().ok()),
        fwmark: k.fwmark,
        fwmask: k.fwmask.filter(|m| *m != u32::MAX),
        tos: (k.tos != 0).then_some(k.tos),
        dport: k.dport,
        sport: k.sport,
        ipproto: k.ipproto,
        table: k.table.and_then(|t| TableId::new(t).ok()),
        action,
    }
    .to_string()
}

fn rules(
    expected: &RouterDef,
    policy_tables: bool,
    kernel: &RouterView,
    f: &mut Findings<'_>,
) -> usize {
    let mut wanted: Vec<&RuleDef> = if policy_tables {
        expected.rules.iter().collect()
    } else {
        Vec::new()
    };
    let count = wanted.len();
    for k in kernel.rules.iter().filter(|k| !default_rule(k)) {
        match wanted.iter().position(|e| rule_matches(e, k)) {
            Some(i) => {
                wanted.remove(i);
            }
            None => f.push(Kind::Rule, rule_text(k), Problem::Unexpected),
        }
    }
    for r in wanted {
        f.missing(Kind::Rule, r.to_string());
    }
    count
}

fn ipsets(expected: &RouterDef, kernel: &RouterView, f: &mut Findings<'_>) -> usize {
    let wanted = parse_ipset(expected.ipset.as_deref().unwrap_or(""));
    let have = parse_ipset(&kernel.ipset);
    let mut count = 0;
    for set in &wanted {
        count += 1 + set.members.len();
        let create = format!("create {} {} {}", set.name, set.kind, set.options);
        let Some(k) = have.iter().find(|k| k.name == set.name) else {
            match f.warned(Kind::Ipset, &create) {
                Some(why) => f.push(
                    Kind::Ipset,
                    format!("set {} {}", set.name, set.kind),
                    Problem::Skipped { why },
                ),
                None => f.push(
                    Kind::Ipset,
                    format!("set {} {}", set.name, set.kind),
                    Problem::Missing,
                ),
            }
            continue;
        };
        if k.kind != set.kind {
            f.push(
                Kind::Ipset,
                format!("set {} {}", set.name, set.kind),
                Problem::Differs {
                    kernel: k.kind.clone(),
                },
            );
            continue;
        }
        let mut members: Vec<&String> = k.members.iter().collect();
        for m in &set.members {
            match members.iter().position(|km| member_eq(m, km)) {
                Some(i) => {
                    members.swap_remove(i);
                }
                None => {
                    let item = format!("add {} {m}", set.name);
                    f.missing(Kind::Ipset, item);
                }
            }
        }
        for m in members {
            f.push(
                Kind::Ipset,
                format!("add {} {m}", set.name),
                Problem::Unexpected,
            );
        }
    }
    for k in &have {
        if !wanted.iter().any(|s| s.name == k.name) {
            f.push(
                Kind::Ipset,
                format!("set {} {}", k.name, k.kind),
                Problem::Unexpected,
            );
        }
    }
    count
}

/// Set members compare without a `/32` (the kernel prints single addresses bare).
fn member_eq(a: &str, b: &str) -> bool {
    let norm = |s: &str| -> String {
        s.split_whitespace()
            .map(|w| {
                w.strip_suffix("/32")
                    .filter(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok())
                    .unwrap_or(w)
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    norm(a) == norm(b)
}

fn iptables(expected: &RouterDef, kernel: &RouterView, f: &mut Findings<'_>) -> usize {
    let real = |tables: Vec<TableDump>| -> Vec<TableDump> {
        tables.into_iter().filter(|t| !t.is_trivial()).collect()
    };
    let wanted = real(parse_iptables(expected.iptables.as_deref().unwrap_or("")));
    let have = real(parse_iptables(&kernel.iptables));
    let empty = |name: &str| TableDump {
        name: name.to_owned(),
        chains: Vec::new(),
    };
    let mut count = 0;
    let mut names: Vec<&str> = wanted.iter().map(|t| t.name.as_str()).collect();
    for t in &have {
        if !names.contains(&t.name.as_str()) {
            names.push(&t.name);
        }
    }
    for name in names {
        let w = wanted
            .iter()
            .find(|t| t.name == name)
            .cloned()
            .unwrap_or_else(|| empty(name));
        let k = have
            .iter()
            .find(|t| t.name == name)
            .cloned()
            .unwrap_or_else(|| empty(name));
        count += table(&w, &k, f);
    }
    count
}

/// Compares one table; returns the number of items it asks for.
fn table(w: &TableDump, k: &TableDump, f: &mut Findings<'_>) -> usize {
    let t = &w.name;
    let mut count = 0;
    let mut chains: Vec<&str> = w.chains.iter().map(|c| c.name.as_str()).collect();
    for c in &k.chains {
        if !chains.contains(&c.name.as_str()) {
            chains.push(&c.name);
        }
    }
    for chain in chains {
        let wc = w.chain(chain);
        let kc = k.chain(chain);
        // Policies: a built-in chain absent on one side is ACCEPT there.
        let policy = |c: Option<&super::firewall::ChainDump>, user: bool| -> Option<String> {
            match c {
                Some(c) => c.policy.clone(),
                None if user => None,
                None => Some("ACCEPT".to_owned()),
            }
        };
        let builtin = wc
            .map(|c| c.policy.is_some())
            .or(kc.map(|c| c.policy.is_some()));
        let user = builtin == Some(false);
        if wc.is_some() {
            count += 1;
        }
        match (user, wc, kc) {
            (true, Some(_), None) => f.missing(Kind::Iptables, format!("*{t} :{chain} -")),
            (true, None, Some(_)) => f.push(
                Kind::Iptables,
                format!("*{t} :{chain} -"),
                Problem::Unexpected,
            ),
            (false, _, _) => {
                let (wp, kp) = (policy(wc, false), policy(kc, false));
                if wp != kp {
                    f.push(
                        Kind::Iptables,
                        format!("*{t} :{chain} {}", wp.unwrap_or_default()),
                        Problem::Differs {
                            kernel: kp.unwrap_or_default(),
                        },
                    );
                }
            }
            _ => {}
        }
        let wr: Vec<String> = wc
            .map(|c| c.rules.iter().map(|r| r.spec.clone()).collect())
            .unwrap_or_default();
        let kr: Vec<String> = kc
            .map(|c| c.rules.iter().map(|r| canonical_rule(&r.spec)).collect())
            .unwrap_or_default();
        count += wr.len();
        let line = |spec: &str| format!("-A {chain} {spec}");
        // The rules the apply left out are not expected in the kernel.
        let mut expected_rules = Vec::new();
        for spec in wr {
            match f.warned(Kind::Iptables, &line(&spec)) {
                Some(why) => f.push(
                    Kind::Iptables,
                    format!("*{t} {}", line(&spec)),
                    Problem::Skipped { why },
                ),
                None => expected_rules.push(canonical_rule(&spec)),
            }
        }
        let mut left: Vec<&String> = kr.iter().collect();
        let mut missing = false;
        for spec in &expected_rules {
            match left.iter().position(|k| *k == spec) {
                Some(i) => {
                    left.remove(i);
                }
                None => {
                    missing = true;
                    f.push(
                        Kind::Iptables,
                        format!("*{t} {}", line(spec)),
                        Problem::Missing,
                    );
                }
            }
        }
        for spec in &left {
            f.push(
                Kind::Iptables,
                format!("*{t} {}", line(spec)),
                Problem::Unexpected,
            );
        }
        if !missing && left.is_empty() && expected_rules != kr {
            f.push(
                Kind::Iptables,
                format!("*{t} chain {chain}: the order of its rules"),
                Problem::Differs {
                    kernel: "another order".into(),
                },
            );
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use tsim_protocol::ops::{AddrInfo, LinkInfo};
    use tsim_protocol::topology::InterfaceDef;

    fn router() -> RouterDef {
        RouterDef {
            name: "r1".parse().unwrap(),
            interfaces: vec![InterfaceDef {
                name: "eth0".parse().unwrap(),
                up: true,
                addrs: vec![AddrDef {
                    addr: "10.0.0.1/24".parse().unwrap(),
                    broadcast: None,
                    scope: None,
                    secondary: false,
                }],
                bridge: None,
                hidden_end: "v1".parse().unwrap(),
            }],
            routes: vec![RouteDef {
                dst: "10.9.0.0/16".parse().unwrap(),
                table: None,
                policy: false,
                kind: None,
                via: Some("10.0.0.254".parse().unwrap()),
                dev: Some("eth0".parse().unwrap()),
                src: None,
                metric: None,
                tos: None,
                scope: None,
                proto: Some(RouteProto::Static),
                onlink: false,
                nexthops: Vec::new(),
            }],
            rules: Vec::new(),
            sysctls: Vec::new(),
            ipset: Some("create s hash:ip family inet\nadd s 10.0.0.5/32\n".into()),
            iptables: Some("*filter\n:INPUT DROP [0:0]\n-A INPUT -i lo -j ACCEPT\nCOMMIT\n".into()),
            internet: false,
        }
    }

    fn link(name: &str, up: bool) -> LinkInfo {
        serde_json::from_value(serde_json::json!({
            "index": 1, "name": name, "up": up, "oper_state": "up", "mtu": 1500, "group": 0
        }))
        .unwrap()
    }

    fn kernel() -> RouterView {
        let route = |v: serde_json::Value| serde_json::from_value::<RouteInfo>(v).unwrap();
        RouterView {
            name: "r1".parse().unwrap(),
            links: vec![link("lo", true), link("eth0", true)],
            addrs: vec![AddrInfo {
                dev: "eth0".into(),
                index: 2,
                addr: "10.0.0.1/24".parse().unwrap(),
                broadcast: None,
                scope: Scope::Global,
                secondary: false,
            }],
            routes: vec![
                route(serde_json::json!({"family": "inet", "dst": "10.0.0.0/24", "table": 254,
                    "kind": "unicast", "dev": "eth0", "src": "10.0.0.1", "tos": 0,
                    "scope": "link", "proto": "kernel"})),
                route(serde_json::json!({"family": "inet", "dst": "10.9.0.0/16", "table": 254,
                    "kind": "unicast", "via": "10.0.0.254", "dev": "eth0", "tos": 0,
                    "scope": "global", "proto": "static"})),
                route(serde_json::json!({"family": "inet", "dst": "10.0.0.1/32", "table": 255,
                    "kind": "local", "dev": "eth0", "src": "10.0.0.1", "tos": 0,
                    "scope": "host", "proto": "kernel"})),
            ],
            rules: Vec::new(),
            ipset: "create s hash:ip family inet hashsize 1024 maxelem 65536 bucketsize 12\nadd s 10.0.0.5\n".into(),
            iptables: "# Generated\n*filter\n:INPUT DROP [7:420]\n:FORWARD ACCEPT [0:0]\n[2:100] -A INPUT -i lo -j ACCEPT\nCOMMIT\n*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n".into(),
        }
    }

    #[test]
    fn a_matching_router_is_clean() {
        let report = compare(&router(), false, &kernel(), &[]);
        assert!(report.is_clean(), "{:#?}", report.findings);
        assert_eq!(report.checked[&Kind::Route], 2);
        assert_eq!(report.checked[&Kind::Ipset], 2);
    }

    #[test]
    fn gateways_added_for_hosts_are_expected_once() {
        let host = |name: &str, ip: &str, added: bool| -> HostInfo {
            serde_json::from_value(serde_json::json!({
                "name": name, "ip": ip, "router": "r1", "router_if": "eth0",
                "gateway": "10.7.0.1", "gateway_added": added, "bridge": "br0",
                "owner_uid": 0, "created_ms": 0, "state": "ready"
            }))
            .unwrap()
        };
        let hosts = [
            host("a", "10.7.0.5/24", true),
            host("b", "10.7.0.6/24", true),
            host("c", "10.0.0.9/24", false),
        ];
        let r = with_host_gateways(&router(), &hosts);
        let addrs: Vec<String> = r.interfaces[0]
            .addrs
            .iter()
            .map(|a| a.addr.to_string())
            .collect();
        assert_eq!(addrs, ["10.0.0.1/24", "10.7.0.1/24"]);
        // The kernel has it, with its connected route: clean.
        let mut k = kernel();
        let mut extra = k.addrs[0].clone();
        extra.addr = "10.7.0.1/24".parse().unwrap();
        k.addrs.push(extra);
        let mut connected = k
            .routes
            .iter()
            .find(|r| r.dst.to_string() == "10.0.0.0/24")
            .unwrap()
            .clone();
        connected.dst = "10.7.0.0/24".parse().unwrap();
        connected.src = Some("10.7.0.1".parse().unwrap());
        k.routes.push(connected);
        assert!(compare(&router(), false, &k, &[]).findings.len() == 2);
        let report = compare(&r, false, &k, &[]);
        assert!(report.is_clean(), "{:#?}", report.findings);
    }

    #[test]
    fn differences_are_found() {
        let mut k = kernel();
        k.links[1].up = false;
        k.routes.remove(1);
        k.ipset.push_str("add s 10.0.0.6\n");
        k.iptables = k.iptables.replace(":INPUT DROP", ":INPUT ACCEPT");
        let report = compare(&router(), false, &k, &[]);
        let items: Vec<(Kind, &str, &Problem)> = report
            .findings
            .iter()
            .map(|f| (f.kind, f.item.as_str(), &f.problem))
            .collect();
        assert!(items.contains(&(
            Kind::Interface,
            "eth0 up",
            &Problem::Differs {
                kernel: "down".into()
            }
        )));
        assert!(items.contains(&(
            Kind::Route,
            "10.9.0.0/16 via 10.0.0.254 dev eth0 proto static",
            &Problem::Missing
        )));
        assert!(items.contains(&(Kind::Ipset, "add s 10.0.0.6", &Problem::Unexpected)));
        assert!(items.contains(&(
            Kind::Iptables,
            "*filter :INPUT DROP",
            &Problem::Differs {
                kernel: "ACCEPT".into()
            }
        )));
        assert_eq!(report.findings.len(), 4, "{items:#?}");
        assert!(!report.is_clean());
    }

    #[test]
    fn warned_items_are_skipped() {
        let mut k = kernel();
        k.routes.remove(1);
        k.ipset.clear();
        let warnings = vec![
            NetWarning {
                router: "r1".parse().unwrap(),
                kind: "route".into(),
                item: "10.9.0.0/16 via 10.0.0.254 dev eth0 proto static".into(),
                message: "no".into(),
            },
            NetWarning {
                router: "r1".parse().unwrap(),
                kind: "ipset".into(),
                item: "create s hash:ip family inet".into(),
                message: "unsupported".into(),
            },
        ];
        let report = compare(&router(), false, &k, &warnings);
        assert!(report.is_clean(), "{:#?}", report.findings);
        assert_eq!(report.skipped(Kind::Route), 1);
        assert_eq!(report.skipped(Kind::Ipset), 1);
        // Another router's warning does not count.
        let mut other = warnings.clone();
        other[0].router = "r2".parse().unwrap();
        assert!(!compare(&router(), false, &k, &other).is_clean());
    }
}
