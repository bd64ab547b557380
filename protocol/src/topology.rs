//! The topology document: the simulated network as data. The client's facts compiler
//! produces it (`tsimctl net plan`); any client may send one in `net_apply`.
//!
//! One namespace per router; one hidden namespace holding one bridge per IPv4 subnet; for
//! each router interface, a veth whose router end has the interface's real name and whose
//! other end (`hidden_end`) hangs off the bridge of the interface's first subnet.
//!
//! The outside world (since 1.4) is one more router, marked `internet`: it owns the
//! gateways the edge routers' default routes point at, on their uplink bridges, and hangs
//! the external hosts (`/32` public addresses) off its interface [`INTERNET_HOSTS_IF`].

use serde::{Deserialize, Serialize};

use crate::names::{Cidr, IfName, NsName};
use crate::net::{Ip, RouteProto, RouteType, RuleAction, Scope, SysctlKey, SysctlValue, TableId};
/// A policy rule of a router; defined with `RuleSpec` from one list of fields
/// (`protocol/src/ops/net.rs`).
pub use crate::ops::RuleDef;
use crate::ops::{AddrSpec, NextHop, RouteSpec};

fn is_false(b: &bool) -> bool {
    !*b
}

/// The interface of the internet router that external hosts hang off: each host has its
/// `/32` public address on `eth0` and a default route through this interface's first
/// address, on-link; the internet router reaches every public address through it.
pub const INTERNET_HOSTS_IF: &str = "hosts0";

/// The `NFLOG` group the routers' `LOG` rules are applied as (`--nflog-group`); the helper
/// reads it in each router's namespace (`net_log`). Since protocol 1.4.
pub const LOG_GROUP: u16 = 7473;

/// The whole simulated network.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    /// The bridges of the hidden namespace.
    #[serde(deserialize_with = "crate::bounded::vec::<_, _, 100_000>")]
    pub bridges: Vec<BridgeDef>,
    /// The routers, each a namespace of its own.
    #[serde(deserialize_with = "crate::bounded::vec::<_, _, 100_000>")]
    pub routers: Vec<RouterDef>,
}

/// A bridge in the hidden namespace: the L2 segment of one IPv4 subnet.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BridgeDef {
    /// Its name (stable: derived from the subnet).
    pub name: IfName,
    /// The subnet it carries.
    pub subnet: Cidr,
}

/// A router.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterDef {
    /// Its namespace's name.
    pub name: NsName,
    /// Its interfaces.
    #[serde(deserialize_with = "crate::bounded::vec::<_, _, 100_000>")]
    pub interfaces: Vec<InterfaceDef>,
    /// Its routes, in every table.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "crate::bounded::vec::<_, _, 100_000>")]
    pub routes: Vec<RouteDef>,
    /// Its policy rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "crate::bounded::vec::<_, _, 100_000>")]
    pub rules: Vec<RuleDef>,
    /// Sysctls set in its namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "crate::bounded::vec::<_, _, 100_000>")]
    pub sysctls: Vec<SysctlDef>,
    /// The `ipset save` payload to restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipset: Option<String>,
    /// The `iptables-save` payload to restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iptables: Option<String>,
    /// This router is the outside world (`net setup --internet`): external hosts (`/32`)
    /// hang off its [`INTERNET_HOSTS_IF`]. At most one router is. Since protocol 1.4.
    #[serde(default, skip_serializing_if = "is_false")]
    pub internet: bool,
}

impl RouterDef {
    /// The interface external hosts hang off, if this is the internet router.
    pub fn hosts_if(&self) -> Option<&InterfaceDef> {
        if !self.internet {
            return None;
        }
        self.interfaces
            .iter()
            .find(|i| i.name.as_str() == INTERNET_HOSTS_IF)
    }
}

impl Topology {
    /// The internet router, if the network has one.
    pub fn internet(&self) -> Option<&RouterDef> {
        self.routers.iter().find(|r| r.internet)
    }
}

/// A router interface.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceDef {
    /// Its name in the router (at most 15 bytes).
    pub name: IfName,
    /// Administratively up.
    pub up: bool,
    /// Its addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "crate::bounded::vec::<_, _, 100_000>")]
    pub addrs: Vec<AddrDef>,
    /// The bridge its hidden end is attached to (that of its first subnet); absent for an
    /// interface without an IPv4 address outside loopback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<IfName>,
    /// The name of the veth's other end, in the hidden namespace (stable and unique).
    pub hidden_end: IfName,
}

/// An interface address.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AddrDef {
    /// The address and prefix.
    pub addr: Cidr,
    /// IPv4 broadcast.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broadcast: Option<Ip>,
    /// Scope (default global).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    /// Marked secondary in the facts.
    #[serde(default, skip_serializing_if = "is_false")]
    pub secondary: bool,
}

/// A route of a router (as [`RouteSpec`], without the namespace).
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RouteDef {
    /// Destination network.
    pub dst: Cidr,
    /// Table (default main).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<TableId>,
    /// Whether the route belongs to a policy table (applied only with policy tables on).
    #[serde(default, skip_serializing_if = "is_false")]
    pub policy: bool,
    /// Type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<RouteType>,
    /// Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<Ip>,
    /// Output interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<IfName>,
    /// Preferred source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<Ip>,
    /// Metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
    /// TOS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tos: Option<u8>,
    /// Scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    /// Protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto: Option<RouteProto>,
    /// On-link gateway.
    #[serde(default, skip_serializing_if = "is_false")]
    pub onlink: bool,
    /// Multipath nexthops.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "crate::bounded::vec::<_, _, 1024>")]
    pub nexthops: Vec<NextHop>,
}

impl RouteDef {
    /// The route as an operation's arguments in namespace `ns`.
    pub fn spec(&self, ns: &NsName) -> RouteSpec {
        RouteSpec {
            ns: ns.clone(),
            dst: self.dst,
            table: self.table,
            kind: self.kind,
            via: self.via,
            dev: self.dev.clone(),
            src: self.src,
            metric: self.metric,
            tos: self.tos,
            scope: self.scope,
            proto: self.proto,
            onlink: self.onlink,
            nexthops: self.nexthops.clone(),
        }
    }
}

impl AddrDef {
    /// The address as an operation's arguments on `dev` in namespace `ns`.
    pub fn spec(&self, ns: &NsName, dev: &IfName) -> AddrSpec {
        AddrSpec {
            ns: ns.clone(),
            dev: dev.clone(),
            addr: self.addr,
            broadcast: self.broadcast,
            scope: self.scope,
            secondary: self.secondary,
        }
    }
}

/// A sysctl set in a router's namespace.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SysctlDef {
    /// The key.
    pub key: SysctlKey,
    /// The value.
    pub value: SysctlValue,
}

/// `ip route` syntax, for messages: `10.0.0.0/8 via 10.1.1.1 dev eth0 table 100 metric 5`.
impl std::fmt::Display for RouteDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(kind) = self.kind.filter(|k| *k != RouteType::Unicast) {
            write!(f, "{kind} ")?;
        }
        write!(f, "{}", self.dst)?;
        if let Some(v) = self.via {
            write!(f, " via {v}")?;
        }
        if let Some(d) = &self.dev {
            write!(f, " dev {d}")?;
        }
        if let Some(t) = self.table {
            write!(f, " table {t}")?;
        }
        if let Some(p) = self.proto {
            write!(f, " proto {p}")?;
        }
        if let Some(s) = self.scope {
            write!(f, " scope {s}")?;
        }
        if let Some(s) = self.src {
            write!(f, " src {s}")?;
        }
        if let Some(m) = self.metric {
            write!(f, " metric {m}")?;
        }
        if let Some(t) = self.tos {
            write!(f, " tos {t:#x}")?;
        }
        if self.onlink {
            f.write_str(" onlink")?;
        }
        for hop in &self.nexthops {
            f.write_str(" nexthop")?;
            if let Some(v) = hop.via {
                write!(f, " via {v}")?;
            }
            if let Some(d) = &hop.dev {
                write!(f, " dev {d}")?;
            }
            if let Some(w) = hop.weight {
                write!(f, " weight {w}")?;
            }
            if hop.onlink {
                f.write_str(" onlink")?;
            }
        }
        Ok(())
    }
}

/// `ip rule` syntax, for messages: `pref 100 from 10.0.0.0/8 lookup 100`.
impl std::fmt::Display for RuleDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut words: Vec<String> = Vec::new();
        if let Some(p) = self.pref {
            words.push(format!("pref {p}"));
        }
        words.push(match self.from {
            Some(c) => format!("from {c}"),
            None => "from all".to_owned(),
        });
        if let Some(c) = self.to {
            words.push(format!("to {c}"));
        }
        if let Some(t) = self.tos {
            words.push(format!("tos {t:#x}"));
        }
        match (self.fwmark, self.fwmask) {
            (Some(m), Some(k)) => words.push(format!("fwmark {m:#x}/{k:#x}")),
            (Some(m), None) => words.push(format!("fwmark {m:#x}")),
            _ => {}
        }
        if let Some(i) = &self.iif {
            words.push(format!("iif {i}"));
        }
        if let Some(o) = &self.oif {
            words.push(format!("oif {o}"));
        }
        if let Some(p) = self.ipproto {
            words.push(format!("ipproto {p}"));
        }
        if let Some(p) = self.sport {
            words.push(format!("sport {p}"));
        }
        if let Some(p) = self.dport {
            words.push(format!("dport {p}"));
        }
        words.push(match (self.action, self.table) {
            (RuleAction::Lookup, Some(t)) => format!("lookup {t}"),
            (RuleAction::Lookup, None) => "lookup main".to_owned(),
            (RuleAction::Blackhole, _) => "blackhole".to_owned(),
            (RuleAction::Unreachable, _) => "unreachable".to_owned(),
            (RuleAction::Prohibit, _) => "prohibit".to_owned(),
        });
        f.write_str(&words.join(" "))
    }
}
