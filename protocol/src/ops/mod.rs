//! The operations a request can carry, and their results.
//!
//! On the wire an operation is a map whose `"op"` key names it (`{"op": "ns_create", "name":
//! "r1"}`); its other keys are the fields of its argument struct. A result is tagged the same
//! way. Variants are encoded by name, so their order here does not matter; renaming one is an
//! incompatible change.
//!
//! The table in `define_ops!` below is the only list of operations: it generates [`Op`],
//! [`OpResult`], their names and [`Op::is_mutating`].

use serde::{Deserialize, Serialize};

mod basic;
mod host;
mod net;
mod netdef;
mod probe;
mod svc;

pub use basic::*;
pub use host::*;
pub use net::*;
pub use netdef::*;
pub use probe::*;
pub use svc::*;

/// Generates the operation and result enums from one table of
/// `Variant(Args) -> Result, "name" name, mutating` (the name twice: as the wire's string,
/// which serde's attributes need, and as an identifier for generated methods; a check below
/// keeps them equal). The leading `$` is passed in so that the expansion can define
/// [`for_each_op!`](crate::for_each_op) with metavariables of its own.
macro_rules! define_ops {
    ($d:tt $( $(#[$doc:meta])* $variant:ident($args:ident) -> $result:ident, $name:literal $ident:ident, $mutating:literal; )+) => {
        $( const _: () = assert!(
            same_str($name, stringify!($ident)),
            concat!("the name and the identifier of ", $name, " differ")
        ); )+

        /// Calls the macro `callback` with the table of operations, one line per operation:
        /// its doc comment, then
        /// `Variant(tsim_protocol::ops::Args) -> tsim_protocol::ops::Result, name, mutating;`
        /// (`name` an identifier), so that clients
        /// can generate a typed method for every operation. The Rust clients' `op()`
        /// methods are made so.
        #[macro_export]
        macro_rules! for_each_op {
            ($d callback:ident) => {
                $d callback! { $( $(#[$doc])* $variant($d crate::ops::$args) -> $d crate::ops::$result, $ident, $mutating; )+ }
            };
        }
        /// One operation. Each variant's arguments are a named struct.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(tag = "op")]
        pub enum Op {
            $( $(#[$doc])* #[serde(rename = $name)] $variant($args), )+
        }

        /// The result of one operation, tagged with the operation's name.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "op")]
        pub enum OpResult {
            $( #[doc = concat!("Result of `", $name, "`.")] #[serde(rename = $name)] $variant($result), )+
        }

        impl Op {
            /// The wire names of every operation this crate knows.
            pub const NAMES: &'static [&'static str] = &[$($name),+];

            /// The operation's wire name.
            pub fn name(&self) -> &'static str {
                match self { $( Op::$variant(_) => $name, )+ }
            }

            /// Every operation's wire name, and whether it changes state (see
            /// [`Op::is_mutating`]). The clients' lists are checked against it
            /// (`tests/tests/parity.rs`).
            pub const KINDS: &'static [(&'static str, bool)] = &[$(($name, $mutating)),+];

            /// Whether the operation changes state in the kernel or the helper, if only while
            /// it runs (`probe_reach` installs counting chains in the routers). An operation
            /// that does not is safe to send again after a lost connection: the Python
            /// client's `IDEMPOTENT` set is exactly these.
            pub fn is_mutating(&self) -> bool {
                match self { $( Op::$variant(_) => $mutating, )+ }
            }
        }

        impl Op {
            /// Decodes the arguments of operation `name` straight from `body`, the bytes of one
            /// operation map (its `"op"` key is ignored as an unknown field), with nothing
            /// buffered on the way; `None` for an unknown name.
            pub fn decode_args(name: &str, body: &[u8]) -> Option<Result<Op, crate::ProtocolError>> {
                match name {
                    $( $name => Some(crate::frame::decode_body::<$args>(body).map(Op::$variant)), )+
                    _ => None,
                }
            }
        }

        impl OpResult {
            /// The wire name of the operation this result belongs to.
            pub fn name(&self) -> &'static str {
                match self { $( OpResult::$variant(_) => $name, )+ }
            }
        }
    };
}

/// Whether two strings are equal, in a constant.
const fn same_str(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

define_ops! {
    $
    /// Do nothing (optionally after a delay) and answer.
    Ping(Ping) -> Pong, "ping" ping, false;
    /// Report the helper's version, uptime, managed objects and per-operation statistics.
    Status(Status) -> StatusReport, "status" status, false;
    /// Create a managed network namespace.
    NsCreate(NsCreate) -> NsCreated, "ns_create" ns_create, true;
    /// Delete a managed network namespace.
    NsDelete(NsDelete) -> NsDeleted, "ns_delete" ns_delete, true;
    /// List the managed network namespaces.
    NsList(NsList) -> NsListing, "ns_list" ns_list, false;
    /// Create a veth pair whose peer is born in another (or the same) managed namespace.
    LinkAddVeth(LinkAddVeth) -> LinkAdded, "link_add_veth" link_add_veth, true;
    /// Create a bridge.
    LinkAddBridge(LinkAddBridge) -> LinkAdded, "link_add_bridge" link_add_bridge, true;
    /// Create a dummy interface.
    LinkAddDummy(LinkAddDummy) -> LinkAdded, "link_add_dummy" link_add_dummy, true;
    /// Change a link: up/down, master, MTU, MAC, name.
    LinkSet(LinkSet) -> Done, "link_set" link_set, true;
    /// Delete a link.
    LinkDelete(LinkDelete) -> Done, "link_delete" link_delete, true;
    /// Delete every link of the helper's group in a namespace.
    LinkFlush(LinkFlush) -> Flushed, "link_flush" link_flush, true;
    /// List links.
    LinkList(LinkList) -> Links, "link_list" link_list, false;
    /// Add an address.
    AddrAdd(AddrSpec) -> Done, "addr_add" addr_add, true;
    /// Delete an address.
    AddrDelete(AddrSpec) -> Done, "addr_delete" addr_delete, true;
    /// List addresses.
    AddrList(AddrList) -> Addrs, "addr_list" addr_list, false;
    /// Add a route.
    RouteAdd(RouteSpec) -> Done, "route_add" route_add, true;
    /// Add a route, or replace the one with the same destination, TOS and metric.
    RouteReplace(RouteSpec) -> Done, "route_replace" route_replace, true;
    /// Delete a route.
    RouteDelete(RouteSpec) -> Done, "route_delete" route_delete, true;
    /// Delete every route of a table.
    RouteFlush(RouteFlush) -> Flushed, "route_flush" route_flush, true;
    /// List routes.
    RouteList(RouteList) -> Routes, "route_list" route_list, false;
    /// Ask which route the kernel would use.
    RouteGet(RouteGet) -> RouteInfo, "route_get" route_get, false;
    /// Add a policy rule.
    RuleAdd(RuleSpec) -> Done, "rule_add" rule_add, true;
    /// Delete a policy rule.
    RuleDelete(RuleSpec) -> Done, "rule_delete" rule_delete, true;
    /// List policy rules.
    RuleList(RuleList) -> Rules, "rule_list" rule_list, false;
    /// Read a sysctl on the allow-list.
    SysctlGet(SysctlGet) -> SysctlRead, "sysctl_get" sysctl_get, false;
    /// Write a sysctl on the allow-list.
    SysctlSet(SysctlSet) -> SysctlRead, "sysctl_set" sysctl_set, true;
    /// Add or replace a neighbour entry.
    NeighReplace(NeighReplace) -> Done, "neigh_replace" neigh_replace, true;
    /// Delete a neighbour entry.
    NeighDelete(NeighDelete) -> Done, "neigh_delete" neigh_delete, true;
    /// Delete every neighbour entry, permanent ones included.
    NeighFlush(NeighFlush) -> Flushed, "neigh_flush" neigh_flush, true;
    /// Put a netem delay on an interface.
    NetemSet(NetemSet) -> Done, "netem_set" netem_set, true;
    /// Remove an interface's root qdisc.
    NetemDelete(NetemDelete) -> Done, "netem_delete" netem_delete, true;
    /// Apply an `iptables-save` payload with `iptables-restore`.
    IptablesRestore(IptablesRestore) -> Done, "iptables_restore" iptables_restore, true;
    /// Read the rules back with `iptables-save`.
    IptablesSave(IptablesSave) -> Saved, "iptables_save" iptables_save, false;
    /// Apply an `ipset save` payload with `ipset restore`.
    IpsetRestore(IpsetRestore) -> Done, "ipset_restore" ipset_restore, true;
    /// Read the sets back with `ipset save`.
    IpsetSave(IpsetSave) -> Saved, "ipset_save" ipset_save, false;
    /// Build (or change into) the simulated network a topology describes.
    NetApply(NetApply) -> NetApplied, "net_apply" net_apply, true;
    /// Show the applied network.
    NetShow(NetShow) -> NetShown, "net_show" net_show, false;
    /// Remove the network and everything on it.
    NetTeardown(NetTeardown) -> NetTornDown, "net_teardown" net_teardown, true;
    /// What the routers' firewall `LOG` rules logged.
    NetLog(NetLog) -> NetLogged, "net_log" net_log, false;
    /// Add a test host to the simulated network.
    HostAdd(HostAdd) -> HostAdded, "host_add" host_add, true;
    /// Delete a host.
    HostDelete(HostDelete) -> Done, "host_delete" host_delete, true;
    /// List the hosts.
    HostList(HostList) -> Hosts, "host_list" host_list, false;
    /// Delete the hosts matching a tag or owner.
    HostClean(HostClean) -> HostsCleaned, "host_clean" host_clean, true;
    /// Start an echo service inside a namespace.
    SvcStart(SvcStart) -> SvcInfo, "svc_start" svc_start, true;
    /// Stop an echo service.
    SvcStop(SvcStop) -> Done, "svc_stop" svc_stop, true;
    /// List the echo services.
    SvcList(SvcList) -> Services, "svc_list" svc_list, false;
    /// Connect over TCP from inside a namespace, send a message and read the echo.
    ProbeTcp(ProbeEcho) -> ProbeEchoResult, "probe_tcp" probe_tcp, false;
    /// Send a UDP datagram from inside a namespace and read the echo.
    ProbeUdp(ProbeEcho) -> ProbeEchoResult, "probe_udp" probe_udp, false;
    /// Send ICMP echo requests from inside a namespace.
    ProbePing(ProbePing) -> PingResult, "probe_ping" probe_ping, false;
    /// Trace the route from inside a namespace, hop by hop.
    ProbeTrace(ProbeTrace) -> TraceResult, "probe_trace" probe_trace, false;
    /// The quick reachability analysis: which routers forward which services.
    ProbeReach(ProbeReach) -> ReachResult, "probe_reach" probe_reach, true;
}
