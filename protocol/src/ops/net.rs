//! Arguments and results of the network primitives: links, addresses, routes, rules,
//! sysctls, neighbours, netem, firewall payloads, and the reads.
//!
//! Every operation names the managed namespace it works in (`ns`); interfaces are named
//! inside that namespace. Optional fields may be left out.

use serde::{Deserialize, Serialize};

use crate::names::{Cidr, IfName, NsName};
use crate::net::{
    Family, Ip, IpProto, Mac, NeighState, NfTable, PortRange, RouteProto, RouteType, RuleAction,
    Scope, SysctlKey, SysctlValue, TableId,
};

/// The link group given to every link the helper creates (`"tsim"` in ASCII), so that a
/// namespace's links can be found and removed together.
pub const LINK_GROUP: u32 = 0x7473_696d;

fn is_false(b: &bool) -> bool {
    !*b
}

/// Arguments of `link_add_veth`: a veth pair whose end `name` is created in `ns` and whose
/// peer `peer_name` is born directly in `peer_ns` (which may be `ns`). Nothing is created in,
/// or moved through, any other namespace.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkAddVeth {
    /// The namespace of the first end.
    pub ns: NsName,
    /// The first end's name.
    pub name: IfName,
    /// The namespace the peer is created in.
    pub peer_ns: NsName,
    /// The peer's name.
    pub peer_name: IfName,
    /// MTU of both ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// MAC address of the first end (default: random).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<Mac>,
    /// MAC address of the peer (default: random).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_mac: Option<Mac>,
    /// A bridge in `ns` to enslave the first end to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<IfName>,
    /// A bridge in `peer_ns` to enslave the peer to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_master: Option<IfName>,
    /// Set both ends up.
    #[serde(default, skip_serializing_if = "is_false")]
    pub up: bool,
}

/// Arguments of `link_add_bridge`.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkAddBridge {
    /// The namespace.
    pub ns: NsName,
    /// The bridge's name.
    pub name: IfName,
    /// MAC ageing time in centiseconds, as `ip link … ageing_time` (kernel default 30000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ageing_time: Option<u32>,
    /// MTU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Set it up.
    #[serde(default, skip_serializing_if = "is_false")]
    pub up: bool,
}

/// Arguments of `link_add_dummy` (`unsupported` where the kernel lacks the dummy driver).
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkAddDummy {
    /// The namespace.
    pub ns: NsName,
    /// The link's name.
    pub name: IfName,
    /// MTU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Set it up.
    #[serde(default, skip_serializing_if = "is_false")]
    pub up: bool,
}

/// Arguments of `link_set`: change any of the given attributes of one link.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkSet {
    /// The namespace.
    pub ns: NsName,
    /// The link.
    pub name: IfName,
    /// Set up (true) or down (false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up: Option<bool>,
    /// Enslave to this bridge (in the same namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<IfName>,
    /// Release from its bridge.
    #[serde(default, skip_serializing_if = "is_false")]
    pub nomaster: bool,
    /// New MTU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// New MAC address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<Mac>,
    /// New name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rename: Option<IfName>,
}

/// Arguments of `link_delete` (deleting one end of a veth deletes both). Not undone by a
/// failing atomic request.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkDelete {
    /// The namespace.
    pub ns: NsName,
    /// The link.
    pub name: IfName,
}

/// Arguments of `link_flush`: delete every link of the helper's link group in the namespace.
/// Not undone by a failing atomic request.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkFlush {
    /// The namespace.
    pub ns: NsName,
}

/// Arguments of `link_list`.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkList {
    /// The namespace.
    pub ns: NsName,
    /// Only this link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<IfName>,
}

/// Arguments of `addr_add` and `addr_delete`.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddrSpec {
    /// The namespace.
    pub ns: NsName,
    /// The interface.
    pub dev: IfName,
    /// The address and prefix, e.g. `10.1.1.1/24`.
    pub addr: Cidr,
    /// IPv4 broadcast address (add only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broadcast: Option<Ip>,
    /// Scope (add only; default global).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    /// Ask for the secondary flag (add only). The kernel decides: an IPv4 address in the
    /// subnet of an existing primary address is secondary whatever is asked.
    #[serde(default, skip_serializing_if = "is_false")]
    pub secondary: bool,
}

/// Arguments of `addr_list`.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddrList {
    /// The namespace.
    pub ns: NsName,
    /// Only this interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<IfName>,
    /// Only this family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<Family>,
}

/// One nexthop of a multipath route.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NextHop {
    /// Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<Ip>,
    /// Output interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<IfName>,
    /// Weight, 1 to 256 (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u16>,
    /// Treat the gateway as on-link.
    #[serde(default, skip_serializing_if = "is_false")]
    pub onlink: bool,
}

/// Arguments of `route_add`, `route_replace` and `route_delete`.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteSpec {
    /// The namespace.
    pub ns: NsName,
    /// Destination network (host bits clear); `0.0.0.0/0` or `::/0` for the default route.
    pub dst: Cidr,
    /// Table (default main).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<TableId>,
    /// Type: `unicast` (default), `blackhole`, `unreachable` or `prohibit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<RouteType>,
    /// Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<Ip>,
    /// Output interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<IfName>,
    /// Preferred source address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<Ip>,
    /// Metric (priority).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
    /// TOS (IPv4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tos: Option<u8>,
    /// Scope (default: link for routes without a gateway, global otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    /// Protocol (default boot, as `ip route add`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto: Option<RouteProto>,
    /// Treat the gateway as on-link.
    #[serde(default, skip_serializing_if = "is_false")]
    pub onlink: bool,
    /// Multipath nexthops (instead of `via`/`dev`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "crate::bounded::vec::<_, _, 1024>")]
    pub nexthops: Vec<NextHop>,
}

/// Arguments of `route_flush`: delete every route of one table.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteFlush {
    /// The namespace.
    pub ns: NsName,
    /// The table.
    pub table: TableId,
    /// Only this family (default both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<Family>,
}

/// Arguments of `route_list`.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteList {
    /// The namespace.
    pub ns: NsName,
    /// Only this table (default: all tables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<TableId>,
    /// Only this family (default both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<Family>,
}

/// Arguments of `route_get`: which route the kernel would use.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteGet {
    /// The namespace.
    pub ns: NsName,
    /// Destination.
    pub dst: Ip,
    /// Source address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<Ip>,
    /// Input interface (as if the packet arrived there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iif: Option<IfName>,
    /// Firewall mark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark: Option<u32>,
}

/// Defines a policy rule's two forms from one list of fields: [`RuleDef`], a rule of a
/// router in the topology document, and [`RuleSpec`], the same rule in a namespace (the
/// arguments of `rule_add` and `rule_delete`), with [`RuleDef::spec`] between them. The wire
/// form of each is a flat map, as before; a field added here is in both.
macro_rules! rule_forms {
    ($( $(#[$attr:meta])* $field:ident: $ty:ty, )+) => {
        /// A policy rule of a router (as [`RuleSpec`], without the namespace).
        ///
        /// Since protocol 1.1.
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub struct RuleDef {
            $( $(#[$attr])* pub $field: $ty, )+
        }

        /// Arguments of `rule_add` and `rule_delete`.
        ///
        /// Since protocol 1.1.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        pub struct RuleSpec {
            /// The namespace.
            pub ns: NsName,
            $( $(#[$attr])* pub $field: $ty, )+
        }

        impl RuleDef {
            /// The rule as an operation's arguments in namespace `ns`.
            pub fn spec(&self, ns: &NsName) -> RuleSpec {
                RuleSpec {
                    ns: ns.clone(),
                    $( $field: self.$field.clone(), )+
                }
            }
        }
    };
}

rule_forms! {

    /// Family (default: that of `from`/`to`, else inet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    family: Option<Family>,
    /// Preference (priority).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pref: Option<u32>,
    /// Source prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from: Option<Cidr>,
    /// Destination prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    to: Option<Cidr>,
    /// Input interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iif: Option<IfName>,
    /// Output interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    oif: Option<IfName>,
    /// Firewall mark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fwmark: Option<u32>,
    /// Mask for `fwmark`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fwmask: Option<u32>,
    /// TOS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tos: Option<u8>,
    /// Destination port or range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dport: Option<PortRange>,
    /// Source port or range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sport: Option<PortRange>,
    /// IP protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ipproto: Option<IpProto>,
    /// Table to look up (required for `lookup`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    table: Option<TableId>,
    /// Action (default lookup).
    #[serde(default)]
    action: RuleAction,
}

/// Arguments of `rule_list`.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleList {
    /// The namespace.
    pub ns: NsName,
    /// Only this family (default both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<Family>,
}

/// Arguments of `sysctl_get`.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SysctlGet {
    /// The namespace.
    pub ns: NsName,
    /// The key, on the allow-list (see [`SysctlKey`]).
    pub key: SysctlKey,
}

/// Arguments of `sysctl_set`.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SysctlSet {
    /// The namespace.
    pub ns: NsName,
    /// The key, on the allow-list (see [`SysctlKey`]).
    pub key: SysctlKey,
    /// The new value.
    pub value: SysctlValue,
}

/// Arguments of `neigh_replace`: add or replace a neighbour entry.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighReplace {
    /// The namespace.
    pub ns: NsName,
    /// The interface.
    pub dev: IfName,
    /// The neighbour's address.
    pub ip: Ip,
    /// Its link-layer address.
    pub lladdr: Mac,
    /// State: `permanent` (default), `reachable`, `stale` or `noarp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<NeighState>,
}

/// Arguments of `neigh_delete`.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighDelete {
    /// The namespace.
    pub ns: NsName,
    /// The interface.
    pub dev: IfName,
    /// The neighbour's address.
    pub ip: Ip,
}

/// Arguments of `neigh_flush`: delete every neighbour entry, permanent ones included.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighFlush {
    /// The namespace.
    pub ns: NsName,
    /// Only on this interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<IfName>,
}

/// Arguments of `netem_set`: a netem root qdisc with this delay on an interface (added or
/// replaced). `unsupported` where the kernel lacks netem.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetemSet {
    /// The namespace.
    pub ns: NsName,
    /// The interface.
    pub dev: IfName,
    /// Delay in microseconds (at most 60 s).
    pub delay_us: u32,
}

/// Arguments of `netem_delete`: remove the interface's root qdisc.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetemDelete {
    /// The namespace.
    pub ns: NsName,
    /// The interface.
    pub dev: IfName,
}

/// Arguments of `iptables_restore`: `iptables-restore` (or `ip6tables-restore`) of a payload,
/// run inside the namespace.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IptablesRestore {
    /// The namespace.
    pub ns: NsName,
    /// `iptables-save` text.
    pub payload: String,
    /// Keep the rules of the tables the payload names (`--noflush`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub noflush: bool,
    /// IPv6 (`ip6tables-restore`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub ipv6: bool,
}

/// Arguments of `iptables_save`.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IptablesSave {
    /// The namespace.
    pub ns: NsName,
    /// Only this table (default: every loaded table).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<NfTable>,
    /// Include packet and byte counters (`-c`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub counters: bool,
    /// IPv6 (`ip6tables-save`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub ipv6: bool,
}

/// Arguments of `ipset_restore`: `ipset restore` of a payload inside the namespace.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpsetRestore {
    /// The namespace.
    pub ns: NsName,
    /// `ipset save` text.
    pub payload: String,
    /// Ignore sets and entries that exist already (`-exist`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub exist: bool,
}

/// Arguments of `ipset_save`.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpsetSave {
    /// The namespace.
    pub ns: NsName,
}

/// Result of an operation that has nothing to report.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {}

/// Result of an operation that removed several things.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flushed {
    /// How many were removed.
    pub count: u32,
}

/// Result of the `link_add_*` operations.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkAdded {
    /// The new link's index in its namespace.
    pub index: u32,
    /// For a veth, the peer's index in its namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_index: Option<u32>,
}

/// The other end of a veth, as seen from its first end.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkPeer {
    /// The peer's index in its namespace.
    pub index: u32,
    /// The peer's namespace, when it is one this helper manages (absent if it is the same
    /// namespace or an unmanaged one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ns: Option<NsName>,
}

/// One link, as read from the kernel.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkInfo {
    /// Index.
    pub index: u32,
    /// Name (the kernel's; not validated, as links the helper did not create may exist).
    pub name: String,
    /// Kind (`veth`, `bridge`, `dummy`…); absent for devices without one (`lo`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Administratively up.
    pub up: bool,
    /// Operational state (`up`, `down`, `unknown`, `lowerlayerdown`…).
    pub oper_state: String,
    /// MTU.
    pub mtu: u32,
    /// MAC address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<Mac>,
    /// The bridge it is enslaved to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<String>,
    /// Link group (the helper's links carry [`LINK_GROUP`]).
    pub group: u32,
    /// For a veth, its peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<LinkPeer>,
}

/// Result of `link_list`.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Links {
    /// The links, by index.
    pub links: Vec<LinkInfo>,
}

/// One address, as read from the kernel.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddrInfo {
    /// The interface's name.
    pub dev: String,
    /// The interface's index.
    pub index: u32,
    /// The address and prefix.
    pub addr: Cidr,
    /// IPv4 broadcast address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broadcast: Option<Ip>,
    /// Scope.
    pub scope: Scope,
    /// Secondary (an IPv4 address in the subnet of a primary one).
    pub secondary: bool,
}

/// Result of `addr_list`.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Addrs {
    /// The addresses.
    pub addrs: Vec<AddrInfo>,
}

/// One nexthop, as read from the kernel.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextHopInfo {
    /// Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<Ip>,
    /// Output interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    /// Weight.
    pub weight: u16,
}

/// One route, as read from the kernel (also the result of `route_get`).
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteInfo {
    /// Family.
    pub family: Family,
    /// Destination.
    pub dst: Cidr,
    /// Table.
    pub table: u32,
    /// Type.
    pub kind: RouteType,
    /// Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<Ip>,
    /// Output interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    /// Preferred source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<Ip>,
    /// Metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
    /// TOS.
    pub tos: u8,
    /// Scope.
    pub scope: Scope,
    /// Protocol.
    pub proto: RouteProto,
    /// Multipath nexthops.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nexthops: Vec<NextHopInfo>,
}

/// Result of `route_list`.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Routes {
    /// The routes.
    pub routes: Vec<RouteInfo>,
}

/// One policy rule, as read from the kernel.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleInfo {
    /// Family.
    pub family: Family,
    /// Preference.
    pub pref: u32,
    /// Source prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Cidr>,
    /// Destination prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Cidr>,
    /// Input interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iif: Option<String>,
    /// Output interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oif: Option<String>,
    /// Firewall mark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fwmark: Option<u32>,
    /// Mask for the mark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fwmask: Option<u32>,
    /// TOS.
    pub tos: u8,
    /// Destination ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dport: Option<PortRange>,
    /// Source ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sport: Option<PortRange>,
    /// IP protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipproto: Option<IpProto>,
    /// Table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    /// Action (`lookup`, `blackhole`, `unreachable`, `prohibit`, or another kernel action
    /// by number).
    pub action: String,
}

/// Result of `rule_list`.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rules {
    /// The rules, by preference.
    pub rules: Vec<RuleInfo>,
}

/// Result of `sysctl_get` and `sysctl_set` (the value now in force).
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SysctlRead {
    /// The key, dotted.
    pub key: String,
    /// The value.
    pub value: String,
}

/// Result of `iptables_save` and `ipset_save`.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    /// The tool's output.
    pub payload: String,
}
