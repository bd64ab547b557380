//! Arguments and results of the echo services (`svc_start`, `svc_stop`, `svc_list`) and of
//! the echo probes (`probe_tcp`, `probe_udp`), which run inside managed namespaces.

use serde::{Deserialize, Serialize};

use crate::names::{NsName, Tag};
use crate::net::Ip;

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A transport protocol of an echo service or probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// TCP: every byte received on a connection is sent back.
    Tcp,
    /// UDP: every datagram received is sent back to its sender.
    Udp,
}

impl Transport {
    /// The protocol's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }
}

impl std::str::FromStr for Transport {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tcp" => Ok(Transport::Tcp),
            "udp" => Ok(Transport::Udp),
            _ => Err(format!("{s:?} is not a protocol: tcp or udp")),
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// Where a service listens: namespace, address, port and protocol (its identity).
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SvcAddr {
    /// The managed namespace.
    pub ns: NsName,
    /// The local address to bind (`0.0.0.0` for all of the namespace's).
    pub ip: Ip,
    /// The port, 1 to 65535.
    pub port: u16,
    /// `tcp` (the default) or `udp`.
    #[serde(default = "tcp")]
    pub proto: Transport,
}

fn tcp() -> Transport {
    Transport::Tcp
}

/// Arguments of `svc_start`: an echo listener served by the helper itself. The caller must
/// own the namespace (or be root or in the admin group); the service is the caller's.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SvcStart {
    /// Where it listens.
    #[serde(flatten)]
    pub addr: SvcAddr,
    /// A label (e.g. a job id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<Tag>,
}

/// Arguments of `svc_stop`: the service's owner, root or the admin group may stop it.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SvcStop {
    /// Where it listens.
    #[serde(flatten)]
    pub addr: SvcAddr,
}

/// Arguments of `svc_list` (none).
///
/// Since protocol 1.1.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SvcList {}

/// A running service.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SvcInfo {
    /// Where it listens.
    #[serde(flatten)]
    pub addr: SvcAddr,
    /// Who started it.
    pub owner_uid: u32,
    /// Its tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<Tag>,
    /// When it was started, Unix milliseconds.
    pub created_ms: u64,
    /// TCP connections open now.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub open: u64,
    /// TCP connections accepted, or UDP datagrams answered, since it was (re)bound.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub served: u64,
    /// Bytes echoed since it was (re)bound.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bytes: u64,
    /// TCP connections refused (the connection limit was reached) since it was (re)bound.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub refused: u64,
}

/// Result of `svc_list`.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Services {
    /// The services, by namespace, address, port and protocol.
    pub services: Vec<SvcInfo>,
}

/// Arguments of `probe_tcp` and `probe_udp`: from inside namespace `ns`, connect to
/// `dst:port` (optionally from address `src`), send `message`, and read the reply.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeEcho {
    /// The managed namespace the probe runs in.
    pub ns: NsName,
    /// The destination address.
    pub dst: Ip,
    /// The destination port.
    pub port: u16,
    /// The local address to send from (default: the kernel's choice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<Ip>,
    /// What to send (default `tsim`; at most 65000 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// How long to wait for the connection and for the reply, in milliseconds (default 1000,
    /// at most 60000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u32>,
    /// Trace the probe's packets through every router's firewall (since 1.5; see
    /// [`crate::ops::Explanation`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub explain: bool,
}

/// How an echo probe ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeStatus {
    /// The whole message came back.
    Ok,
    /// The destination refused (TCP reset, or ICMP port unreachable for UDP).
    Refused,
    /// No answer in time.
    Timeout,
    /// The network said no route (ICMP host or network unreachable, or no local route).
    Unreachable,
    /// An answer came back, but not the message (`reply` says what).
    Mismatch,
}

/// Result of `probe_tcp` and `probe_udp`.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeEchoResult {
    /// How it ended.
    pub status: ProbeStatus,
    /// The local address and port it used (absent if it never got one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<String>,
    /// What came back (lossy UTF-8), if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    /// From the start to the end of the exchange, in microseconds.
    pub elapsed_us: u64,
    /// What went wrong, in words, when it was not `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// With `explain`: what the routers' firewalls did with the probe's packets (since 1.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explain: Option<crate::ops::Explanation>,
}
