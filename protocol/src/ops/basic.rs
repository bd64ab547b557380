//! Arguments and results of the basic operations: `ping`, `status` and the namespaces.

use serde::{Deserialize, Serialize};

use crate::names::{NsName, Tag};
use crate::version::ProtocolVersion;

/// Longest delay a `ping` may ask for, in milliseconds.
pub const PING_MAX_DELAY_MS: u32 = 60_000;

/// Arguments of `ping`.
///
/// Since protocol 1.0.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {
    /// Answer only after this many milliseconds (at most 60000); for testing timeouts and
    /// cancellation. Absent means at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u32>,
}

/// Arguments of `status` (none yet).
///
/// Since protocol 1.0.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {}

/// Arguments of `ns_create`.
///
/// The namespace is visible to `ip netns list` (a bind mount at `/run/netns/<name>`), its `lo`
/// is up, and IPv6 duplicate-address detection is off in it. The caller becomes its owner.
///
/// Since protocol 1.0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NsCreate {
    /// The namespace's name.
    pub name: NsName,
    /// An optional label (e.g. a job id) recorded with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<Tag>,
    /// `false` disables IPv6 inside the namespace (no link-local addresses, neighbour
    /// discovery or multicast listener reports): cheaper for IPv4-only namespaces, and much
    /// cheaper when many of them share a bridge. Absent or `true`: IPv6 stays on.
    ///
    /// Since protocol 1.1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<bool>,
}

/// Arguments of `ns_delete`. Only the owner, root or a member of the admin group may delete.
///
/// Since protocol 1.0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NsDelete {
    /// The namespace's name.
    pub name: NsName,
}

/// Arguments of `ns_list` (none yet).
///
/// Since protocol 1.0.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NsList {}

/// Result of `ping` (nothing yet).
///
/// Since protocol 1.0.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pong {}

/// Result of `status`.
///
/// Since protocol 1.0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The helper's version.
    pub helper_version: String,
    /// The protocol version it speaks.
    pub protocol: ProtocolVersion,
    /// The helper's process id.
    pub pid: u32,
    /// Milliseconds since the helper started.
    pub uptime_ms: u64,
    /// The directory holding its persistent state.
    pub state_dir: String,
    /// The name of the hidden namespace that holds the simulated network's bridges.
    pub hidden_ns: String,
    /// Managed namespaces.
    pub namespaces: u32,
    /// Open connections, this one included.
    pub connections: u32,
    /// Requests being run now, this one included.
    pub in_flight: u32,
    /// Requests answered since start.
    pub requests: u64,
    /// Per-operation counters and latencies, for operations run at least once.
    pub ops: Vec<OpStats>,
    /// How the external firewall tools are confined; absent from helpers before 1.2.
    ///
    /// Since protocol 1.2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_jail: Option<ToolJail>,
    /// Why explained probes (`explain`) cannot trace on this machine, when they cannot: the
    /// tools are iptables' legacy variant, which has no nf_tables trace events, or are
    /// missing.
    ///
    /// Since protocol 1.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explain_unsupported: Option<String>,
}

/// The jail the helper runs `iptables-restore`, `iptables-save` and `ipset` in.
///
/// Since protocol 1.2.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolJail {
    /// The kernel's Landlock ABI version, 0 where the kernel lacks Landlock.
    pub landlock_abi: u32,
    /// Whether firewall payloads are refused (`unsupported`) because the jail lacks Landlock
    /// and the helper was not started with `--allow-unjailed-tools`.
    pub payloads_refused: bool,
    /// The layers applied, in words.
    pub summary: String,
}

/// Counters and latency percentiles of one operation kind since the helper started.
///
/// Since protocol 1.0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpStats {
    /// The operation's wire name.
    pub op: String,
    /// How many ran.
    pub count: u64,
    /// How many of those failed.
    pub errors: u64,
    /// Median time spent in the helper, in microseconds.
    pub p50_us: u64,
    /// 90th percentile, in microseconds.
    pub p90_us: u64,
    /// 99th percentile, in microseconds.
    pub p99_us: u64,
    /// Slowest, in microseconds.
    pub max_us: u64,
}

/// Result of `ns_create`.
///
/// Since protocol 1.0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NsCreated {
    /// The namespace created.
    pub name: NsName,
}

/// Result of `ns_delete`.
///
/// Since protocol 1.0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NsDeleted {
    /// The namespace deleted.
    pub name: NsName,
}

/// Result of `ns_list`.
///
/// Since protocol 1.0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NsListing {
    /// The managed namespaces, sorted by name.
    pub namespaces: Vec<NsInfo>,
}

/// One managed namespace.
///
/// Since protocol 1.0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NsInfo {
    /// Its name.
    pub name: NsName,
    /// The uid of the peer that created it.
    pub owner_uid: u32,
    /// Its tag, if it was given one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<Tag>,
    /// When it was created, in milliseconds since the Unix epoch.
    pub created_ms: u64,
}
