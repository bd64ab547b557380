//! Netfilter tracing over `NETLINK_NETFILTER`: the socket that listens to a namespace's
//! `NFNLGRP_NFTRACE` group (the rule evaluations of packets that a `TRACE` rule marked), the
//! trace events taken apart, and the dump of a chain's rule handles in order (how a handle
//! becomes a position, and a position an `iptables-save` line). Sockets are made inside the
//! namespace by a thread that entered it; parsing is pure and total: a short or odd message
//! is skipped, never trusted.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};

use super::nfnl::{align4, attr, be32, check, socket, u16_at};

/// `NFNL_SUBSYS_NFTABLES`.
const SUBSYS_NFTABLES: u16 = 10;
/// `NFT_MSG_NEWRULE`, `NFT_MSG_GETRULE`, `NFT_MSG_TRACE`.
const MSG_NEWRULE: u16 = 6;
const MSG_GETRULE: u16 = 7;
const MSG_TRACE: u16 = 17;
/// `NFNLGRP_NFTRACE`.
const GROUP_NFTRACE: u32 = 9;
/// `NFPROTO_IPV4`: the family of iptables-nft's tables.
const NFPROTO_IPV4: u8 = 2;

/// Trace attributes (`NFTA_TRACE_*`).
const TRACE_TABLE: u16 = 1;
const TRACE_CHAIN: u16 = 2;
const TRACE_RULE_HANDLE: u16 = 3;
const TRACE_TYPE: u16 = 4;
const TRACE_VERDICT: u16 = 5;
const TRACE_ID: u16 = 6;
const TRACE_NETWORK_HEADER: u16 = 8;
const TRACE_TRANSPORT_HEADER: u16 = 9;
const TRACE_IIF: u16 = 10;
const TRACE_OIF: u16 = 12;
const TRACE_POLICY: u16 = 16;
/// `NFTA_VERDICT_CODE`, `NFTA_VERDICT_CHAIN`.
const VERDICT_CODE: u16 = 1;
const VERDICT_CHAIN: u16 = 2;
/// Rule attributes (`NFTA_RULE_*`).
const RULE_TABLE: u16 = 1;
const RULE_CHAIN: u16 = 2;
const RULE_HANDLE: u16 = 3;
/// `NFTA_RULE_EXPRESSIONS`, `NFTA_RULE_COMPAT`, `NFTA_RULE_USERDATA`: what a rule does.
const RULE_EXPRESSIONS: u16 = 4;
const RULE_COMPAT: u16 = 5;
const RULE_USERDATA: u16 = 7;
/// `NFTA_LIST_ELEM`, `NFTA_EXPR_NAME`.
const LIST_ELEM: u16 = 1;
const EXPR_NAME: u16 = 1;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
/// `SOL_NETLINK`, `NETLINK_ADD_MEMBERSHIP`.
const SOL_NETLINK: libc::c_int = 270;
const NETLINK_ADD_MEMBERSHIP: libc::c_int = 1;

fn u32_ne(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

fn be64(b: &[u8]) -> Option<u64> {
    let s: [u8; 8] = b.get(..8)?.try_into().ok()?;
    Some(u64::from_be_bytes(s))
}

fn text(b: &[u8]) -> String {
    let b = b.split(|c| *c == 0).next().unwrap_or(&[]);
    String::from_utf8_lossy(b).into_owned()
}

/// The attributes of one message body, as `(kind, value)` (flags masked off).
fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let (Some(len), Some(kind)) = (u16_at(b, 0), u16_at(b, 2)) else {
            break;
        };
        let len = usize::from(len);
        if len < 4 || len > b.len() {
            break;
        }
        out.push((kind & 0x3fff, &b[4..len]));
        b = &b[align4(len).min(b.len())..];
    }
    out
}

/// The netlink messages of one datagram, as `(type, body after the nfgenmsg header)`.
fn messages(mut buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while buf.len() >= 16 {
        let Some(len) = u32_ne(buf, 0).map(|l| l as usize) else {
            break;
        };
        if len < 16 || len > buf.len() {
            break;
        }
        let kind = u16_at(buf, 4).unwrap_or(0);
        out.push((kind, &buf[16..len]));
        buf = &buf[align4(len).min(buf.len())..];
    }
    out
}

/// What a traced rule evaluation decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// `NF_DROP`.
    Drop,
    /// `NF_ACCEPT`.
    Accept,
    /// `NF_STOLEN` (taken by the rule, as `NFQUEUE` without a listener or `SYNPROXY` do).
    Stolen,
    /// `NF_QUEUE`.
    Queue,
    /// `NF_REPEAT`.
    Repeat,
    /// `NF_STOP`.
    Stop,
    /// `NFT_CONTINUE`: the rule matched and the packet goes on (a `LOG`, a counter).
    Continue,
    /// `NFT_JUMP` to the chain.
    Jump(String),
    /// `NFT_GOTO` to the chain.
    Goto(String),
    /// `NFT_RETURN`.
    Return,
    /// A code this parser does not know.
    Other(i32),
}

impl Verdict {
    fn from_code(code: i32, chain: Option<String>) -> Self {
        match code {
            0 => Self::Drop,
            -1 => Self::Continue,
            -3 => Self::Jump(chain.unwrap_or_default()),
            -4 => Self::Goto(chain.unwrap_or_default()),
            -5 => Self::Return,
            // The queue number of NF_QUEUE sits in the upper bits.
            c if c > 0 && c & 0xff == 3 => Self::Queue,
            1 => Self::Accept,
            2 => Self::Stolen,
            4 => Self::Repeat,
            5 => Self::Stop,
            c => Self::Other(c),
        }
    }

    /// The verdict in words, as `xtables-monitor --trace` spells it (lower case).
    pub fn word(&self) -> String {
        match self {
            Self::Drop => "drop".into(),
            Self::Accept => "accept".into(),
            Self::Stolen => "stolen".into(),
            Self::Queue => "queue".into(),
            Self::Repeat => "repeat".into(),
            Self::Stop => "stop".into(),
            Self::Continue => "continue".into(),
            Self::Jump(c) => format!("jump {c}"),
            Self::Goto(c) => format!("goto {c}"),
            Self::Return => "return".into(),
            Self::Other(c) => format!("verdict {c}"),
        }
    }
}

/// What kind of trace event: a rule matched, a chain returned, or a base chain's policy
/// decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `NFT_TRACETYPE_POLICY`.
    Policy,
    /// `NFT_TRACETYPE_RETURN`: the end of a chain reached without a verdict.
    Return,
    /// `NFT_TRACETYPE_RULE`.
    Rule,
}

/// One trace event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The packet's trace id (the same for every event of one packet in one namespace).
    pub id: u32,
    /// The table and the chain.
    pub table: String,
    pub chain: String,
    /// The rule's handle (rules only).
    pub handle: Option<u64>,
    pub kind: Kind,
    pub verdict: Verdict,
    /// The IP header and the start of the transport header, in the first event of each
    /// base chain a packet passes (empty otherwise).
    pub network: Vec<u8>,
    pub transport: Vec<u8>,
    /// The input and output interfaces' indexes.
    pub iif: Option<u32>,
    pub oif: Option<u32>,
}

/// The trace events in one datagram read from a trace socket (other messages skipped).
pub fn parse(buf: &[u8]) -> Vec<Event> {
    messages(buf)
        .into_iter()
        .filter(|(kind, _)| *kind == (SUBSYS_NFTABLES << 8) | MSG_TRACE)
        .filter_map(|(_, body)| event(body.get(4..)?))
        .collect()
}

fn event(body: &[u8]) -> Option<Event> {
    let mut e = Event {
        id: 0,
        table: String::new(),
        chain: String::new(),
        handle: None,
        kind: Kind::Rule,
        verdict: Verdict::Continue,
        network: Vec::new(),
        transport: Vec::new(),
        iif: None,
        oif: None,
    };
    let mut kind = None;
    let mut policy = None;
    let mut verdict = None;
    for (k, v) in attrs(body) {
        match k {
            TRACE_TABLE => e.table = text(v),
            TRACE_CHAIN => e.chain = text(v),
            TRACE_RULE_HANDLE => e.handle = be64(v),
            TRACE_TYPE => kind = be32(v),
            TRACE_ID => e.id = u32_ne(v, 0)?,
            TRACE_NETWORK_HEADER => e.network = v.to_vec(),
            TRACE_TRANSPORT_HEADER => e.transport = v.to_vec(),
            TRACE_IIF => e.iif = be32(v),
            TRACE_OIF => e.oif = be32(v),
            TRACE_POLICY => policy = be32(v),
            TRACE_VERDICT => {
                let mut code = None;
                let mut chain = None;
                for (k, v) in attrs(v) {
                    match k {
                        VERDICT_CODE => code = be32(v).map(|c| c as i32),
                        VERDICT_CHAIN => chain = Some(text(v)),
                        _ => {}
                    }
                }
                verdict = code.map(|c| Verdict::from_code(c, chain));
            }
            _ => {}
        }
    }
    e.kind = match kind? {
        1 => Kind::Policy,
        2 => Kind::Return,
        3 => Kind::Rule,
        _ => return None,
    };
    e.verdict = match (e.kind, policy, verdict) {
        (Kind::Policy, Some(p), _) => Verdict::from_code(p as i32, None),
        (_, _, Some(v)) => v,
        (Kind::Return, _, None) => Verdict::Return,
        _ => Verdict::Continue,
    };
    (!e.table.is_empty() && !e.chain.is_empty()).then_some(e)
}

/// The fields of an IPv4 header that say whose packet this is and where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4 {
    pub tos: u8,
    pub ttl: u8,
    pub proto: u8,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
}

/// The IPv4 header at the start of `b`, if it is one.
pub fn ipv4(b: &[u8]) -> Option<Ipv4> {
    if b.len() < 20 || b[0] >> 4 != 4 {
        return None;
    }
    Some(Ipv4 {
        tos: b[1],
        ttl: b[8],
        proto: b[9],
        src: Ipv4Addr::new(b[12], b[13], b[14], b[15]),
        dst: Ipv4Addr::new(b[16], b[17], b[18], b[19]),
    })
}

#[allow(unsafe_code, reason = "setsockopt(2) with an int of ours")]
fn set_int(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: u32) -> io::Result<()> {
    let value = value as libc::c_int;
    // SAFETY: the option value is a live int of the given size.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Opens a socket that receives the trace events of the calling thread's network namespace
/// (so: inside `netns::run_in`), with room for `rcvbuf` bytes of them. Fails when the
/// kernel has no nf_tables tracing.
pub fn listen(rcvbuf: u32) -> io::Result<OwnedFd> {
    let fd = socket()?;
    set_int(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, rcvbuf)?;
    set_int(&fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, GROUP_NFTRACE)?;
    Ok(fd)
}

#[allow(unsafe_code, reason = "recv(2) into a buffer of ours")]
fn recv(fd: &OwnedFd, buf: &mut [u8], flags: libc::c_int) -> io::Result<usize> {
    // SAFETY: the buffer is valid for `buf.len()` bytes for the call.
    check(unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), flags) })
}

/// Every event queued on a trace socket now (it does not wait), and whether the kernel
/// dropped some for want of room.
pub fn drain(fd: &OwnedFd) -> (Vec<Event>, bool) {
    let mut buf = vec![0u8; 1 << 16];
    let mut out = Vec::new();
    let mut lost = false;
    loop {
        match recv(fd, &mut buf, libc::MSG_DONTWAIT) {
            Ok(0) => break,
            Ok(n) => out.extend(parse(&buf[..n])),
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => lost = true,
            Err(_) => break,
        }
    }
    (out, lost)
}

/// The `NFT_MSG_GETRULE` dump request for one chain of one IPv4 table.
fn getrule(seq: u32, table: &str, chain: &str) -> Vec<u8> {
    let mut body = vec![NFPROTO_IPV4, 0, 0, 0]; // nfgenmsg: family, version, res_id
    for (kind, name) in [(RULE_TABLE, table), (RULE_CHAIN, chain)] {
        let mut v = name.as_bytes().to_vec();
        v.push(0);
        attr(&mut body, kind, &v);
    }
    let len = 16 + body.len();
    let mut msg = Vec::with_capacity(len);
    msg.extend_from_slice(&(len as u32).to_ne_bytes());
    msg.extend_from_slice(&((SUBSYS_NFTABLES << 8) | MSG_GETRULE).to_ne_bytes());
    msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    msg.extend_from_slice(&seq.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend(body);
    msg
}

/// A digest of what a rule does: its expressions but its counters (which change with every
/// packet), its compat flags and its user data (iptables-nft's comment). Equal digests of
/// one handle mean the rule was not replaced, so `iptables-save` spells it as before.
fn digest(rule_attrs: &[(u16, &[u8])]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for (k, v) in rule_attrs {
        match *k {
            RULE_EXPRESSIONS => {
                for (e, elem) in attrs(v) {
                    let parts = attrs(elem);
                    let name = parts.iter().find(|(k, _)| *k == EXPR_NAME).map(|p| p.1);
                    if e == LIST_ELEM && name != Some(b"counter\0".as_slice()) {
                        (k, elem).hash(&mut h);
                    }
                }
            }
            RULE_COMPAT | RULE_USERDATA => (k, v).hash(&mut h),
            _ => {}
        }
    }
    h.finish()
}

/// What one datagram of a rule dump holds: the rules of `table`/`chain` in it, in order, as
/// (handle, [`digest`]), and whether the dump ended (with its error, if it failed).
fn dump_part(buf: &[u8], table: &str, chain: &str) -> (Vec<(u64, u64)>, Option<io::Result<()>>) {
    let mut handles = Vec::new();
    for (kind, body) in messages(buf) {
        match kind {
            NLMSG_DONE => return (handles, Some(Ok(()))),
            NLMSG_ERROR => {
                let code = body
                    .get(..4)
                    .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
                let end = match code {
                    Some(0) | None => Ok(()),
                    Some(e) => Err(io::Error::from_raw_os_error(-e)),
                };
                return (handles, Some(end));
            }
            k if k == (SUBSYS_NFTABLES << 8) | MSG_NEWRULE => {
                let Some(attrs_body) = body.get(4..) else {
                    continue;
                };
                let (mut t, mut c, mut h) = (String::new(), String::new(), None);
                let all = attrs(attrs_body);
                for (k, v) in &all {
                    match *k {
                        RULE_TABLE => t = text(v),
                        RULE_CHAIN => c = text(v),
                        RULE_HANDLE => h = be64(v),
                        _ => {}
                    }
                }
                if let (true, Some(h)) = (t == table && c == chain, h) {
                    handles.push((h, digest(&all)));
                }
            }
            _ => {}
        }
    }
    (handles, None)
}

/// The rules of chain `chain` of the IPv4 table `table`, in the chain's order, as (handle,
/// digest of what the rule does), in the calling thread's namespace (so: inside
/// `netns::run_in`).
pub fn rule_handles(table: &str, chain: &str) -> io::Result<Vec<(u64, u64)>> {
    let fd = socket()?;
    let req = getrule(1, table, chain);
    #[allow(unsafe_code, reason = "send(2) of a buffer of ours")]
    // SAFETY: the buffer lives across the call and its length is the one given.
    check(unsafe { libc::send(fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) })?;
    let mut buf = vec![0u8; 1 << 16];
    let mut handles = Vec::new();
    loop {
        let n = recv(&fd, &mut buf, 0)?;
        let (part, end) = dump_part(&buf[..n], table, chain);
        handles.extend(part);
        if let Some(end) = end {
            end?;
            return Ok(handles);
        }
        if n == 0 {
            return Err(io::Error::other("the rule dump ended without its end"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: u16, attrs_body: &[u8]) -> Vec<u8> {
        let mut body = vec![NFPROTO_IPV4, 0, 0, 0];
        body.extend_from_slice(attrs_body);
        let mut m = Vec::new();
        m.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend(body);
        m
    }

    fn trace(table: &str, chain: &str, kind: u32, handle: Option<u64>, code: i32) -> Vec<u8> {
        let mut a = Vec::new();
        attr(&mut a, TRACE_TABLE, format!("{table}\0").as_bytes());
        attr(&mut a, TRACE_CHAIN, format!("{chain}\0").as_bytes());
        if let Some(h) = handle {
            attr(&mut a, TRACE_RULE_HANDLE, &h.to_be_bytes());
        }
        attr(&mut a, TRACE_TYPE, &kind.to_be_bytes());
        attr(&mut a, TRACE_ID, &7u32.to_ne_bytes());
        let mut v = Vec::new();
        attr(&mut v, VERDICT_CODE, &code.to_be_bytes());
        if code == -3 {
            attr(&mut v, VERDICT_CHAIN, b"LOGDROP\0");
        }
        attr(&mut a, TRACE_VERDICT | 0x8000, &v);
        attr(&mut a, TRACE_IIF, &3u32.to_be_bytes());
        msg((SUBSYS_NFTABLES << 8) | MSG_TRACE, &a)
    }

    #[test]
    fn trace_events_are_read_with_their_verdicts() {
        let mut buf = trace("filter", "FORWARD", 3, Some(12), -3);
        buf.extend(trace("filter", "LOGDROP", 3, Some(14), 0));
        buf.extend(msg(NLMSG_DONE, &[]));
        let events = parse(&buf);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].table, "filter");
        assert_eq!(events[0].chain, "FORWARD");
        assert_eq!(events[0].handle, Some(12));
        assert_eq!(events[0].kind, Kind::Rule);
        assert_eq!(events[0].verdict, Verdict::Jump("LOGDROP".into()));
        assert_eq!(events[0].id, 7);
        assert_eq!(events[0].iif, Some(3));
        assert_eq!(events[1].verdict.word(), "drop");
    }

    #[test]
    fn a_policy_event_takes_the_policy_and_odd_input_is_skipped() {
        let mut a = Vec::new();
        attr(&mut a, TRACE_TABLE, b"filter\0");
        attr(&mut a, TRACE_CHAIN, b"INPUT\0");
        attr(&mut a, TRACE_TYPE, &1u32.to_be_bytes());
        attr(&mut a, TRACE_ID, &1u32.to_ne_bytes());
        attr(&mut a, TRACE_POLICY, &0u32.to_be_bytes());
        let events = parse(&msg((SUBSYS_NFTABLES << 8) | MSG_TRACE, &a));
        assert_eq!(events[0].kind, Kind::Policy);
        assert_eq!(events[0].verdict, Verdict::Drop);
        // Truncated anywhere: nothing, or fewer events, never a panic.
        let whole = trace("raw", "PREROUTING", 3, Some(2), -1);
        for cut in 0..whole.len() {
            let _ = parse(&whole[..cut]);
        }
        assert!(parse(&[0xff; 64]).is_empty());
    }

    #[test]
    fn a_rule_dump_gives_the_chains_handles_in_order() {
        let rule = |t: &str, c: &str, h: u64| {
            let mut a = Vec::new();
            attr(&mut a, RULE_TABLE, format!("{t}\0").as_bytes());
            attr(&mut a, RULE_CHAIN, format!("{c}\0").as_bytes());
            attr(&mut a, RULE_HANDLE, &h.to_be_bytes());
            msg((SUBSYS_NFTABLES << 8) | MSG_NEWRULE, &a)
        };
        let mut buf = rule("filter", "FORWARD", 4);
        buf.extend(rule("filter", "INPUT", 5));
        buf.extend(rule("filter", "FORWARD", 9));
        let (handles, end) = dump_part(&buf, "filter", "FORWARD");
        assert_eq!(handles.iter().map(|h| h.0).collect::<Vec<_>>(), [4, 9]);
        assert!(end.is_none());
        let (_, end) = dump_part(&msg(NLMSG_DONE, &[]), "filter", "FORWARD");
        assert!(matches!(end, Some(Ok(()))));
    }

    #[test]
    fn a_rules_digest_ignores_its_counters_only() {
        let expr = |name: &str, data: &[u8]| {
            let mut e = Vec::new();
            attr(&mut e, EXPR_NAME, format!("{name}\0").as_bytes());
            attr(&mut e, 2, data);
            let mut l = Vec::new();
            attr(&mut l, LIST_ELEM, &e);
            l
        };
        let rule = |packets: u8, port: u8, comment: &str| {
            let mut exprs = expr("payload", &[port]);
            exprs.extend(expr("counter", &[packets]));
            exprs.extend(expr("immediate", &[0]));
            let mut a = Vec::new();
            attr(&mut a, RULE_HANDLE, &7u64.to_be_bytes());
            attr(&mut a, RULE_EXPRESSIONS, &exprs);
            attr(&mut a, RULE_USERDATA, comment.as_bytes());
            a
        };
        let d = |a: Vec<u8>| digest(&attrs(&a));
        assert_eq!(d(rule(1, 22, "c")), d(rule(200, 22, "c")));
        assert_ne!(d(rule(1, 22, "c")), d(rule(1, 23, "c")));
        assert_ne!(d(rule(1, 22, "c")), d(rule(1, 22, "d")));
    }

    #[test]
    fn an_ipv4_header_is_read() {
        let mut h = [0u8; 20];
        h[0] = 0x45;
        h[1] = 0xc8;
        h[8] = 63;
        h[9] = 6;
        h[12..16].copy_from_slice(&[10, 1, 1, 1]);
        h[16..20].copy_from_slice(&[8, 8, 8, 8]);
        let ip = ipv4(&h).unwrap();
        assert_eq!((ip.tos, ip.ttl, ip.proto), (0xc8, 63, 6));
        assert_eq!(ip.dst, Ipv4Addr::new(8, 8, 8, 8));
        assert!(ipv4(&h[..19]).is_none());
    }
}
