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
    /// Trace the probe's packets through every router's firewall and say which rules they
    /// met ([`Explanation`]; since 1.5).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub explain: bool,
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
    /// With `explain`: what the routers' firewalls did with the requests (since 1.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explain: Option<Explanation>,
}

/// What the routers' firewalls did with an explained probe's packets: netfilter's own trace
/// of every rule that matched them and of every chain policy that decided, per router in
/// the order the packets passed them.
///
/// Since protocol 1.5.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    /// The DSCP value the probe's packets carried to be told apart (49 to 63).
    pub dscp: u8,
    /// The routers the packets passed, in path order.
    pub routers: Vec<ExplainRouter>,
    /// Why nothing could be traced (the kernel has no nf_tables tracing), when so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsupported: Option<String>,
}

/// One router's part of an [`Explanation`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExplainRouter {
    /// The router.
    pub router: NsName,
    /// The probe's packets there, in the order they came (at most 16).
    pub packets: Vec<ExplainPacket>,
    /// Where the router's verdict came from in words: the rule or policy that dropped a
    /// packet (`filter FORWARD #3: -A FORWARD ... -j DROP`), or absent when every packet
    /// passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped_by: Option<String>,
    /// Whether trace events were lost (the router's trace socket overflowed).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub incomplete: bool,
}

/// One packet's way through one router's firewall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExplainPacket {
    /// The packet as it arrived, in words (`TCP 10.1.1.1:40001 > 10.3.20.1:80 SYN ttl 63`).
    pub packet: String,
    /// The rule evaluations, in order (at most 256).
    pub steps: Vec<ExplainStep>,
    /// The last verdict: `accept`, `drop`, ... (`continue` if no base chain decided).
    pub verdict: String,
}

/// One rule that matched a packet, or one chain policy or return.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExplainStep {
    /// The table (`raw`, `mangle`, `nat`, `filter`).
    pub table: String,
    /// The chain.
    pub chain: String,
    /// `rule`, `policy` or `return`.
    pub kind: String,
    /// The rule's position in its chain, from 1 (rules only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<u32>,
    /// The rule as `iptables-save` prints it (rules only; absent if it could not be read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// What it decided: `accept`, `drop`, `continue`, `jump CHAIN`, `return`, ...
    pub verdict: String,
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
    /// Probes per hop (1 to 100, default 1; since 1.3), sent together, like `mtr -r`: each
    /// hop then reports every reply, the loss and the round-trip times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queries: Option<u8>,
    /// Trace the probes' packets through every router's firewall and say which rules they
    /// met ([`Explanation`]; since 1.5).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub explain: bool,
}

/// One answer to one probe of a trace.
///
/// Since protocol 1.3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceReply {
    /// Which probe of the hop (0 to `queries` - 1).
    pub query: u8,
    /// Who answered.
    pub from: Ip,
    /// Round-trip time, microseconds.
    pub rtt_us: u64,
    /// `time_exceeded`, `reply` or `unreachable`, as in [`TraceHop`].
    pub kind: String,
    /// The ICMP code of an `unreachable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u8>,
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
    /// With `queries`: how many probes were sent for this hop (since 1.3). `from`, `rtt_us`,
    /// `kind` and `code` above are then those of the first answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent: Option<u8>,
    /// With `queries`: every answer, in the order they came (since 1.3).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replies: Vec<TraceReply>,
}

impl TraceHop {
    /// The probes of this hop that got no answer.
    pub fn lost(&self) -> u8 {
        let sent = self.sent.unwrap_or(1);
        let answered = if self.sent.is_some() {
            self.replies.len()
        } else {
            usize::from(self.from.is_some())
        };
        sent.saturating_sub(u8::try_from(answered).unwrap_or(u8::MAX))
    }

    /// The smallest, mean and largest round-trip time of the answers, microseconds.
    pub fn rtt_stats(&self) -> Option<(u64, u64, u64)> {
        let rtts: Vec<u64> = if self.replies.is_empty() {
            self.rtt_us.into_iter().collect()
        } else {
            self.replies.iter().map(|r| r.rtt_us).collect()
        };
        let min = *rtts.iter().min()?;
        let max = *rtts.iter().max()?;
        Some((min, rtts.iter().sum::<u64>() / rtts.len() as u64, max))
    }
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
    /// With `explain`: what the routers' firewalls did with the probes (since 1.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explain: Option<Explanation>,
}

/// Arguments of `probe_reach`, the quick reachability analysis: from each source host, send
/// DSCP-marked probes for every service towards `dst`, and tell from the counters of the
/// host's router whether the router forwarded them.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeReach {
    /// The source hosts, one per router to test (1 to 16, each on another router).
    #[serde(deserialize_with = "crate::bounded::vec::<_, _, 1024>")]
    pub from: Vec<NsName>,
    /// The destination (IPv4).
    pub dst: Ip,
    /// The services, e.g. `22,80,443/tcp,53/udp,1000-1010/udp`: ports or ranges, each with an
    /// optional `/tcp` or `/udp` (default `tcp`); at most 100 services.
    pub ports: String,
    /// How long a TCP probe waits for its connection, in milliseconds (1 to 10000, default
    /// 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u32>,
}

/// A router's verdict on a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The router forwarded the probes.
    Yes,
    /// The probes reached the router, which did not forward them.
    No,
    /// The probes did not reach the router.
    Unknown,
}

/// One service at one router.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReachService {
    /// The destination port.
    pub port: u16,
    /// `tcp` or `udp`.
    pub proto: crate::ops::Transport,
    /// The verdict.
    pub verdict: Verdict,
    /// Probe packets counted entering the router (PREROUTING).
    pub seen: u64,
    /// Probe packets counted leaving it (POSTROUTING).
    pub forwarded: u64,
    /// For `no`: the rule or policy of the router's firewall that dropped the probes, from
    /// netfilter's trace (`filter FORWARD #5: -A FORWARD -j DROP`, `filter FORWARD policy`);
    /// absent when it could not be traced.
    ///
    /// Since protocol 1.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped_by: Option<String>,
}

/// One router's verdicts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReachRouter {
    /// The router.
    pub router: NsName,
    /// The source host that probed it.
    pub from: NsName,
    /// The interface the router routes `dst` through, if it has a route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<String>,
    /// The services, in the order of `ports`.
    pub services: Vec<ReachService>,
}

/// Result of `probe_reach`.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReachResult {
    /// The DSCP value the job's probes carried (32 to 63, one per running job).
    pub dscp: u8,
    /// The routers, in the order of `from`.
    pub routers: Vec<ReachRouter>,
}

/// Longest `probe_reach` service list accepted, in bytes.
pub const PORTS_MAX_LEN: usize = 1024;

/// Most items (comma-separated ports or ranges) in a `probe_reach` service list.
pub const PORTS_MAX_ITEMS: usize = 100;

/// A client's text quoted for an error message: escaped, and cut short if it is long.
fn quoted(s: &str) -> String {
    const SHOWN: usize = 64;
    match s.char_indices().nth(SHOWN) {
        None => format!("{s:?}"),
        Some((at, _)) => format!("{:?}… ({} bytes)", &s[..at], s.len()),
    }
}

/// Parses a service list such as `22,80,443/tcp,53/udp,1000-1010/udp` into (port, protocol)
/// pairs, in order, without duplicates; at most `max` of them.
///
/// Linear and bounded whatever the text: at most [`PORTS_MAX_LEN`] bytes and
/// [`PORTS_MAX_ITEMS`] items, and a range is counted before it is expanded.
pub fn parse_services(spec: &str, max: usize) -> Result<Vec<(u16, crate::ops::Transport)>, String> {
    if spec.len() > PORTS_MAX_LEN {
        return Err(format!(
            "{}: a service list is at most {PORTS_MAX_LEN} bytes",
            quoted(spec)
        ));
    }
    let mut out: Vec<(u16, crate::ops::Transport)> = Vec::new();
    for (index, item) in spec.split(',').map(str::trim).enumerate() {
        if index >= PORTS_MAX_ITEMS {
            return Err(format!(
                "{}: a service list has at most {PORTS_MAX_ITEMS} items",
                quoted(spec)
            ));
        }
        if item.is_empty() {
            return Err(format!("{}: an empty item", quoted(spec)));
        }
        let (ports, proto) = match item.split_once('/') {
            Some((p, proto)) => (
                p,
                proto
                    .parse::<crate::ops::Transport>()
                    .map_err(|_| format!("{}: not tcp or udp", quoted(proto)))?,
            ),
            None => (item, crate::ops::Transport::Tcp),
        };
        let port = |s: &str| -> Result<u16, String> {
            s.trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("{} is not a port (1-65535)", quoted(s)))
        };
        let (lo, hi) = match ports.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => (port(ports)?, port(ports)?),
        };
        if lo > hi {
            return Err(format!("{}: the range goes down", quoted(item)));
        }
        let too_many = || format!("{} names more than {max} services", quoted(spec));
        // Counted before it is expanded: a range wider than the list may hold is refused at once.
        if usize::from(hi - lo) >= max.saturating_add(1) {
            return Err(too_many());
        }
        for p in lo..=hi {
            // At most `max` + 1 entries: the search is bounded.
            if !out.contains(&(p, proto)) {
                out.push((p, proto));
            }
            if out.len() > max {
                return Err(too_many());
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::Transport::{Tcp, Udp};

    #[test]
    fn service_lists_parse() {
        assert_eq!(
            parse_services("22,80,443/tcp,53/udp,1000-1002/udp", 100).unwrap(),
            [
                (22, Tcp),
                (80, Tcp),
                (443, Tcp),
                (53, Udp),
                (1000, Udp),
                (1001, Udp),
                (1002, Udp)
            ]
        );
        assert_eq!(
            parse_services("53/udp, 53/tcp,53/udp", 100).unwrap(),
            [(53, Udp), (53, Tcp)]
        );
        for bad in ["", "0", "22,", "70000", "10-5", "80/sctp", "a-b", "1-200"] {
            assert!(parse_services(bad, 100).is_err(), "{bad}");
        }
        assert!(parse_services("1-65535", 100).is_err());
    }

    /// Finding 4: `"1-100" + ",1-100"` × 2.7 M took seconds of a runtime worker. Refused now
    /// for its length, and a list of many items for their count, naming the value.
    #[test]
    fn hostile_service_lists_are_refused_at_once() {
        let mut spec = "1-100".to_owned();
        spec.push_str(&",1-100".repeat(2_700_000));
        let e = parse_services(&spec, 100).unwrap_err();
        assert!(
            e.contains("at most 1024 bytes") && e.contains("\"1-100,1-100"),
            "{e}"
        );
        assert!(e.contains("16200005 bytes"), "{e}");
        let many = vec!["22"; 101].join(",");
        let e = parse_services(&many, 100).unwrap_err();
        assert!(e.contains("at most 100 items"), "{e}");
        // The longest list that passes stays quick: 100 items, 100 services.
        let most = (1..=100)
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(parse_services(&most, 100).unwrap().len(), 100);
    }
}
