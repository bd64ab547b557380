//! Arguments and results of the simulated-network operations: apply a topology document,
//! show what is applied, tear it down.

use serde::{Deserialize, Serialize};

use crate::names::NsName;
use crate::topology::Topology;

fn is_false(b: &bool) -> bool {
    !*b
}

/// Arguments of `net_apply`: build the network a topology describes, or change the one in
/// place into it (only what differs is touched). Root or the admin group only.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetApply {
    /// The network.
    pub topology: Topology,
    /// Also apply the routes of policy tables and the policy rules.
    #[serde(default, skip_serializing_if = "is_false")]
    pub policy_tables: bool,
}

/// Arguments of `net_show` (none).
///
/// Since protocol 1.1.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetShow {}

/// Arguments of `net_teardown` (none): remove the network, its hidden namespace and
/// everything on it. Root or the admin group only.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetTeardown {}

/// Something a router's facts asked for that the kernel would not take: reported, not fatal.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetWarning {
    /// The router.
    pub router: NsName,
    /// What kind of thing: `route`, `rule`, `ipset` or `iptables`.
    pub kind: String,
    /// The route, rule or payload line that was left out.
    pub item: String,
    /// Why.
    pub message: String,
}

/// Result of `net_apply`.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetApplied {
    /// Routers created.
    pub added: Vec<NsName>,
    /// Routers removed.
    pub removed: Vec<NsName>,
    /// Routers changed in place.
    pub changed: Vec<NsName>,
    /// Routers left as they were.
    pub unchanged: u32,
    /// Bridges created.
    pub bridges_added: u32,
    /// Bridges removed.
    pub bridges_removed: u32,
    /// What was left out, per router.
    pub warnings: Vec<NetWarning>,
    /// Hosts deleted because their router, its interface or their bridge went.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts_removed: Vec<NsName>,
}

/// Result of `net_show`.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetShown {
    /// The hidden namespace's name.
    pub hidden_ns: NsName,
    /// The applied network; absent if none is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology: Option<Topology>,
    /// Whether policy tables and rules were applied.
    pub policy_tables: bool,
    /// What was left out when it was applied.
    pub warnings: Vec<NetWarning>,
    /// When it was last applied, Unix milliseconds (0 if never).
    pub applied_ms: u64,
}

/// Result of `net_teardown`.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetTornDown {
    /// Namespaces removed (routers, the hidden namespace, hosts, pooled namespaces).
    pub namespaces: u32,
    /// Of those, the hosts.
    #[serde(default)]
    pub hosts: u32,
}
