//! Arguments and results of the ICMP probes run inside managed namespaces: `probe_ping`
//! (echo requests) and `probe_trace` (traceroute, in ICMP or UDP mode).

use serde::{Deserialize, Serialize};

use crate::names::NsName;
use crate::net::Ip;

/// Arguments of `probe_ping`: ICMP echo requests from inside namespace `ns`.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbePing {
    /// The managed namespace the probe runs in.
    pub ns: NsName,
    /// The destination (IPv4).
    pub dst: Ip,
    /// The local address to send from (default: the kernel's choice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<Ip>,
    /// Echo requests to send (1 to 100, default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Milliseconds between requests (10 to 10000, default 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<u32>,
    /// Milliseconds to wait for a reply after the last request (1 to 60000, default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u32>,
}

/// One echo reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingReply {
    /// The request's sequence number (from 1).
    pub seq: u32,
    /// Who answered.
    pub from: Ip,
    /// Round-trip time, microseconds.
    pub rtt_us: u64,
    /// The reply's TTL.
    pub ttl: u8,
}

/// An ICMP error that came back instead of a reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingError {
    /// The request's sequence number.
    pub seq: u32,
    /// Who sent the error.
    pub from: Ip,
    /// `unreachable` (destination unreachable, with `code`), `time_exceeded`, or `other`.
    pub kind: String,
    /// The ICMP code.
    pub code: u8,
}

/// Result of `probe_ping`.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingResult {
    /// Requests sent.
    pub sent: u32,
    /// Distinct requests answered.
    pub received: u32,
    /// The replies, in the order they came.
    pub replies: Vec<PingReply>,
    /// ICMP errors received instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<PingError>,
}

/// How `probe_trace` probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TraceMode {
    /// ICMP echo requests.
    Icmp,
    /// UDP datagrams to high ports (`port`, `port + 1`, …).
    Udp,
}

/// Arguments of `probe_trace`: a traceroute from inside namespace `ns`, one probe per hop.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeTrace {
    /// The managed namespace the probe runs in.
    pub ns: NsName,
    /// The destination (IPv4).
    pub dst: Ip,
    /// The local address to send from (default: the kernel's choice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<Ip>,
    /// `icmp` (the default) or `udp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<TraceMode>,
    /// The highest TTL tried (1 to 64, default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_hops: Option<u8>,
    /// Milliseconds to wait for each hop (1 to 10000, default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u32>,
    /// UDP mode: the first destination port (default 33434).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// One hop of a trace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceHop {
    /// The TTL of the probe.
    pub ttl: u8,
    /// Who answered (absent: nobody in time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Ip>,
    /// Round-trip time, microseconds (absent: no answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_us: Option<u64>,
    /// What answered: `time_exceeded` (a router on the way), `reply` (the destination: echo
    /// reply, or port unreachable in UDP mode), `unreachable` (with the ICMP code in
    /// `code`), absent when nobody did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The ICMP code of an `unreachable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u8>,
}

/// Result of `probe_trace`.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceResult {
    /// The hops, from TTL 1 up to the destination, an unreachable, or `max_hops`.
    pub hops: Vec<TraceHop>,
    /// Whether the destination answered.
    pub reached: bool,
}
