//! The state of a router as `tsimctl net status` shows it: interfaces with their addresses,
//! routes, rules, iptables rules with their counters, and sets.

use serde::Serialize;
use tsim_protocol::NsName;
use tsim_protocol::net::TableId;

use super::firewall::{TableDump, parse_ipset, parse_iptables};
use super::verify::{default_rule, route_def, rule_text};
use super::view::RouterView;

/// One interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InterfaceStatus {
    /// Its name.
    pub name: String,
    /// Administratively up.
    pub up: bool,
    /// Operational state (`up`, `down`, `lowerlayerdown`, ...).
    pub oper_state: String,
    /// Its IPv4 addresses.
    pub addrs: Vec<String>,
}

/// One set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetStatus {
    /// Its name.
    pub name: String,
    /// Its type.
    pub kind: String,
    /// How many members it has.
    pub members: usize,
}

/// A router's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouterStatus {
    /// The router.
    pub router: NsName,
    /// Its interfaces (`lo` aside).
    pub interfaces: Vec<InterfaceStatus>,
    /// Its routes in `ip route` syntax, every table but `local`.
    pub routes: Vec<String>,
    /// Its policy rules in `ip rule` syntax, the kernel's defaults aside.
    pub rules: Vec<String>,
    /// Its iptables tables, with counters; tables with nothing in them aside.
    pub iptables: Vec<TableDump>,
    /// Its sets.
    pub ipsets: Vec<SetStatus>,
}

impl RouterStatus {
    /// The state of the router `view` was read from.
    pub fn from_view(view: &RouterView) -> Self {
        let interfaces = view
            .links
            .iter()
            .filter(|l| l.name != "lo")
            .map(|l| InterfaceStatus {
                name: l.name.clone(),
                up: l.up,
                oper_state: l.oper_state.clone(),
                addrs: view
                    .addrs
                    .iter()
                    .filter(|a| a.dev == l.name)
                    .map(|a| a.addr.to_string())
                    .collect(),
            })
            .collect();
        RouterStatus {
            router: view.name.clone(),
            interfaces,
            routes: view
                .routes
                .iter()
                .filter(|r| r.table != TableId::LOCAL.id())
                .map(|r| route_def(r).to_string())
                .collect(),
            rules: view
                .rules
                .iter()
                .filter(|r| !default_rule(r))
                .map(rule_text)
                .collect(),
            iptables: parse_iptables(&view.iptables)
                .into_iter()
                .filter(|t| !t.is_trivial())
                .collect(),
            ipsets: parse_ipset(&view.ipset)
                .into_iter()
                .map(|s| SetStatus {
                    name: s.name,
                    kind: s.kind,
                    members: s.members.len(),
                })
                .collect(),
        }
    }

    /// Iptables rules in all.
    pub fn iptables_rules(&self) -> usize {
        self.iptables
            .iter()
            .flat_map(|t| &t.chains)
            .map(|c| c.rules.len())
            .sum()
    }

    /// Packets matched by all iptables rules.
    pub fn iptables_packets(&self) -> u64 {
        self.iptables
            .iter()
            .flat_map(|t| &t.chains)
            .flat_map(|c| &c.rules)
            .map(|r| r.packets)
            .sum()
    }
}
