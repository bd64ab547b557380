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

/// Arguments of `net_log`: what the routers' firewall `LOG` rules logged (applied as `NFLOG`
/// to [`crate::topology::LOG_GROUP`], read by the helper in each router's namespace, kept in
/// a bounded ring per router). Open to every authorized caller.
///
/// Since protocol 1.4.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetLog {
    /// Only this router's entries (default: every router's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router: Option<NsName>,
    /// Only entries with a sequence number above this one (to follow the log: pass the
    /// answer's `last`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<u64>,
    /// Only entries logged at or after this time, Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<u64>,
    /// At most this many entries, the newest (1 to 10000, default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// One logged packet.
///
/// Since protocol 1.4.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Its sequence number, helper-wide, increasing (from 1).
    pub seq: u64,
    /// The router that logged it.
    pub router: NsName,
    /// When the helper received it, Unix milliseconds.
    pub time_ms: u64,
    /// The rule's log prefix (as `--log-prefix` gave it).
    pub prefix: String,
    /// The rest of the line as the kernel's `LOG` target prints it: `IN=eth1 OUT=eth0
    /// SRC=10.1.1.1 DST=8.8.8.8 LEN=84 … PROTO=ICMP TYPE=8 CODE=0 ID=7 SEQ=1`.
    pub line: String,
}

/// Result of `net_log`.
///
/// Since protocol 1.4.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetLogged {
    /// The entries, oldest first.
    pub entries: Vec<LogEntry>,
    /// The highest sequence number logged so far (0 if none): the next request's `after`.
    pub last: u64,
    /// Entries the rings have let go since the start (each keeps the newest 4096 per router).
    #[serde(default)]
    pub dropped: u64,
    /// Routers whose log cannot be read, with why (a kernel without `nfnetlink_log`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unavailable: Vec<String>,
}
