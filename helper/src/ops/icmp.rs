//! `probe_ping` and `probe_trace`: ICMP echo requests and traceroutes from inside a managed
//! namespace. The raw ICMP socket (and, in UDP mode, the UDP socket) is made by a thread
//! that entered the namespace; sending and receiving run on the runtime.
//!
//! A raw ICMP socket sees every ICMP message that reaches its namespace, so each probe has
//! an identifier of its own (a helper-wide counter) and keeps only what answers it: echo
//! replies with its identifier, and errors that quote its own request (ICMP mode) or its
//! own UDP ports (UDP mode).

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrIn, bind, recvfrom, sendto,
    setsockopt, socket, sockopt,
};
use tokio::io::unix::AsyncFd;
use tokio::time::Instant;
use tsim_protocol::OpResult;
use tsim_protocol::ops::{
    PingError, PingReply, PingResult, ProbePing, ProbeTrace, TraceHop, TraceMode, TraceReply,
    TraceResult,
};

use super::{OpCtx, explain};
use crate::base::error::HelperError;

/// Identifiers of ICMP probes, shared by every probe of the helper.
static NEXT_ID: AtomicU16 = AtomicU16::new(0x7473);

const ECHO_REPLY: u8 = 0;
const UNREACHABLE: u8 = 3;
const ECHO_REQUEST: u8 = 8;
const TIME_EXCEEDED: u8 = 11;
const PAYLOAD: &[u8; 48] = b"tsim-helper probe ..............................";

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for pair in data.chunks(2) {
        let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An ICMP echo request.
fn echo_request(id: u16, seq: u16) -> Vec<u8> {
    let mut p = vec![ECHO_REQUEST, 0, 0, 0];
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(PAYLOAD);
    let sum = checksum(&p);
    p[2..4].copy_from_slice(&sum.to_be_bytes());
    p
}

/// What a received ICMP message says about our probes.
#[derive(Debug, PartialEq, Eq)]
enum Heard {
    /// An echo reply: identifier, sequence, TTL of the reply.
    Reply { id: u16, seq: u16, ttl: u8 },
    /// An error quoting an ICMP echo request of ours.
    EchoError {
        kind: u8,
        code: u8,
        id: u16,
        seq: u16,
    },
    /// An error quoting a UDP datagram: its source and destination ports.
    UdpError {
        kind: u8,
        code: u8,
        sport: u16,
        dport: u16,
    },
}

/// Parses an IPv4 packet as a raw ICMP socket delivers it (IP header included).
fn parse(packet: &[u8]) -> Option<Heard> {
    let ihl = usize::from(packet.first()? & 0x0f) * 4;
    let ttl = *packet.get(8)?;
    let icmp = packet.get(ihl..)?;
    let (kind, code) = (*icmp.first()?, *icmp.get(1)?);
    match kind {
        ECHO_REPLY => Some(Heard::Reply {
            id: u16::from_be_bytes([*icmp.get(4)?, *icmp.get(5)?]),
            seq: u16::from_be_bytes([*icmp.get(6)?, *icmp.get(7)?]),
            ttl,
        }),
        UNREACHABLE | TIME_EXCEEDED => {
            let inner = icmp.get(8..)?;
            let inner_ihl = usize::from(inner.first()? & 0x0f) * 4;
            let proto = *inner.get(9)?;
            let quoted = inner.get(inner_ihl..inner_ihl + 8)?;
            match proto {
                1 if quoted[0] == ECHO_REQUEST => Some(Heard::EchoError {
                    kind,
                    code,
                    id: u16::from_be_bytes([quoted[4], quoted[5]]),
                    seq: u16::from_be_bytes([quoted[6], quoted[7]]),
                }),
                17 => Some(Heard::UdpError {
                    kind,
                    code,
                    sport: u16::from_be_bytes([quoted[0], quoted[1]]),
                    dport: u16::from_be_bytes([quoted[2], quoted[3]]),
                }),
                _ => None,
            }
        }
        _ => None,
    }
}

fn kind_name(kind: u8) -> &'static str {
    match kind {
        UNREACHABLE => "unreachable",
        TIME_EXCEEDED => "time_exceeded",
        _ => "other",
    }
}

/// A raw ICMP socket made inside the namespace, bound to `src` if given, its packets
/// marked with `tos` if given.
fn raw_socket(src: Option<Ipv4Addr>, tos: Option<u32>) -> io::Result<OwnedFd> {
    let fd = socket(
        AddressFamily::Inet,
        SockType::Raw,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        SockProtocol::Icmp,
    )?;
    if let Some(tos) = tos {
        setsockopt(&fd, sockopt::Ipv4Tos, &(tos as libc::c_int))?;
    }
    if let Some(src) = src {
        bind(fd.as_raw_fd(), &SockaddrIn::from(SocketAddrV4::new(src, 0)))?;
    }
    Ok(fd)
}

/// The socket, registered with the runtime.
struct Icmp {
    fd: AsyncFd<OwnedFd>,
}

impl Icmp {
    #[allow(
        unsafe_code,
        reason = "registering a descriptor with the reactor is unsafe in tokio's API"
    )]
    fn new(fd: OwnedFd) -> Result<Self, HelperError> {
        // SAFETY: an `OwnedFd` is open, refers to the same socket, and is closed only when
        // dropped, which happens with the `AsyncFd` that owns it.
        let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
            .map_err(|e| {
                HelperError::Internal(format!("Cannot use an ICMP socket: {}", e.into_parts().1))
            })?;
        Ok(Self { fd })
    }

    fn send(&self, packet: &[u8], dst: Ipv4Addr, ttl: Option<u8>) -> io::Result<()> {
        if let Some(ttl) = ttl {
            setsockopt(
                &self.fd.get_ref().as_fd(),
                sockopt::Ipv4Ttl,
                &i32::from(ttl),
            )?;
        }
        let to = SockaddrIn::from(SocketAddrV4::new(dst, 0));
        sendto(
            self.fd.get_ref().as_raw_fd(),
            packet,
            &to,
            MsgFlags::empty(),
        )?;
        Ok(())
    }

    /// The next ICMP message: its source and bytes.
    async fn recv(&self, buf: &mut [u8]) -> io::Result<(Ipv4Addr, usize)> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| {
                recvfrom::<SockaddrIn>(fd.get_ref().as_raw_fd(), buf).map_err(io::Error::from)
            }) {
                Ok(Ok((n, from))) => {
                    let from = from.map(|a| a.ip()).unwrap_or(Ipv4Addr::UNSPECIFIED);
                    return Ok((from, n));
                }
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }
}

fn ipv4(ip: tsim_protocol::net::Ip, what: &str) -> Result<Ipv4Addr, HelperError> {
    match ip.0 {
        std::net::IpAddr::V4(a) => Ok(a),
        std::net::IpAddr::V6(_) => Err(HelperError::InvalidArgument(format!(
            "{what} {} is not IPv4: the probes are IPv4 only",
            ip.0
        ))),
    }
}

fn ranged(
    value: Option<u32>,
    default: u32,
    min: u32,
    max: u32,
    what: &str,
) -> Result<u32, HelperError> {
    let v = value.unwrap_or(default);
    if (min..=max).contains(&v) {
        Ok(v)
    } else {
        Err(HelperError::InvalidArgument(format!(
            "{what} must be {min} to {max}, not {v}"
        )))
    }
}

fn bad_src(
    ns: &tsim_protocol::NsName,
    src: Option<Ipv4Addr>,
) -> impl Fn(io::Error) -> HelperError + '_ {
    move |e| match e.kind() {
        io::ErrorKind::AddrNotAvailable => HelperError::InvalidArgument(format!(
            "{} is not an address of namespace {ns}",
            src.map(|s| s.to_string()).unwrap_or_default()
        )),
        _ => HelperError::Kernel(format!("Cannot open a socket in {ns}: {e}")),
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

pub(super) async fn ping(ctx: &OpCtx<'_>, args: ProbePing) -> Result<OpResult, HelperError> {
    let dst = ipv4(args.dst, "The destination")?;
    let src = args.src.map(|s| ipv4(s, "The source")).transpose()?;
    let count = ranged(args.count, 3, 1, 100, "count")?;
    let interval = Duration::from_millis(u64::from(ranged(
        args.interval_ms,
        200,
        10,
        10_000,
        "interval_ms",
    )?));
    let timeout = Duration::from_millis(u64::from(ranged(
        args.timeout_ms,
        1000,
        1,
        60_000,
        "timeout_ms",
    )?));
    let ns = ctx.ns(&args.ns).await?;
    let session = match args.explain {
        true => Some(explain::Session::start(ctx).await?),
        false => None,
    };
    let tos = session.as_ref().map(|s| s.tos());
    let sent = async {
        let fd = ctx
            .helper
            .netns
            .run_in(&ns.name, ns.ino, move || raw_socket(src, tos))
            .await?
            .map_err(bad_src(&ns.name, src))?;
        let icmp = Icmp::new(fd)?;
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let mut sent_at: Vec<Instant> = Vec::with_capacity(count as usize);
        let mut answered = vec![false; count as usize];
        let mut result = PingResult {
            sent: 0,
            received: 0,
            replies: Vec::new(),
            errors: Vec::new(),
            explain: None,
        };
        let mut buf = vec![0u8; 2048];
        let mut next = Instant::now();
        let mut end = next + timeout;
        loop {
            let all_sent = sent_at.len() == count as usize;
            if all_sent && answered.iter().all(|a| *a) {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(next), if !all_sent => {
                    let seq = sent_at.len() as u16 + 1;
                    sent_at.push(Instant::now());
                    if let Err(e) = icmp.send(&echo_request(id, seq), dst, None) {
                        let unreachable = matches!(e.raw_os_error(), Some(libc::ENETUNREACH | libc::EHOSTUNREACH));
                        if !unreachable {
                            return Err(HelperError::Kernel(format!("Cannot send to {dst}: {e}")));
                        }
                        result.errors.push(PingError { seq: u32::from(seq), from: std::net::IpAddr::V4(src.unwrap_or(Ipv4Addr::UNSPECIFIED)).into(), kind: "unreachable".into(), code: 0 });
                    }
                    result.sent += 1;
                    next += interval;
                    end = Instant::now() + timeout;
                }
                received = icmp.recv(&mut buf) => {
                    let (from, n) = received.map_err(|e| HelperError::Kernel(format!("Cannot receive in {}: {e}", ns.name)))?;
                    let now = Instant::now();
                    match parse(&buf[..n]) {
                        Some(Heard::Reply { id: i, seq, ttl }) if i == id && seq >= 1 && usize::from(seq) <= sent_at.len() => {
                            let k = usize::from(seq) - 1;
                            if !answered[k] {
                                answered[k] = true;
                                result.received += 1;
                            }
                            result.replies.push(PingReply { seq: u32::from(seq), from: std::net::IpAddr::V4(from).into(), rtt_us: micros(now - sent_at[k]), ttl });
                        }
                        Some(Heard::EchoError { kind, code, id: i, seq }) if i == id => {
                            result.errors.push(PingError { seq: u32::from(seq), from: std::net::IpAddr::V4(from).into(), kind: kind_name(kind).into(), code });
                        }
                        _ => {}
                    }
                }
                _ = tokio::time::sleep_until(end), if all_sent => break,
                _ = ctx.cancel.cancelled() => return Err(HelperError::Cancelled),
            }
        }
        Ok::<_, HelperError>(result)
    };
    // Whatever becomes of the pings, an explained probe's tracing is read and removed.
    let outcome = sent.await;
    let explained = match session {
        Some(s) => Some(s.finish(ctx).await?),
        None => None,
    };
    let mut result = outcome?;
    result.explain = explained;
    Ok(OpResult::ProbePing(result))
}

pub(super) async fn trace(ctx: &OpCtx<'_>, args: ProbeTrace) -> Result<OpResult, HelperError> {
    let dst = ipv4(args.dst, "The destination")?;
    let src = args.src.map(|s| ipv4(s, "The source")).transpose()?;
    let mode = args.mode.unwrap_or(TraceMode::Icmp);
    let max_hops = ranged(args.max_hops.map(u32::from), 30, 1, 64, "max_hops")? as u8;
    let timeout = Duration::from_millis(u64::from(ranged(
        args.timeout_ms,
        1000,
        1,
        10_000,
        "timeout_ms",
    )?));
    let base_port = args.port.unwrap_or(33434);
    let queries = ranged(args.queries.map(u32::from), 1, 1, 100, "queries")? as u8;
    let probes = u32::from(max_hops) * u32::from(queries);
    if mode == TraceMode::Udp && u32::from(base_port) + probes > 65535 {
        return Err(HelperError::InvalidArgument(format!(
            "port {base_port} leaves no room for {max_hops} hops of {queries} probes"
        )));
    }
    let ns = ctx.ns(&args.ns).await?;
    let session = match args.explain {
        true => Some(explain::Session::start(ctx).await?),
        false => None,
    };
    let tos = session.as_ref().map(|s| s.tos());
    let traced = async {
        let (raw, udp) = ctx
            .helper
            .netns
            .run_in(
                &ns.name,
                ns.ino,
                move || -> io::Result<(OwnedFd, Option<std::net::UdpSocket>)> {
                    let raw = raw_socket(if mode == TraceMode::Icmp { src } else { None }, tos)?;
                    let udp = match mode {
                        TraceMode::Icmp => None,
                        TraceMode::Udp => {
                            let s = std::net::UdpSocket::bind(SocketAddr::V4(SocketAddrV4::new(
                                src.unwrap_or(Ipv4Addr::UNSPECIFIED),
                                0,
                            )))?;
                            s.set_nonblocking(true)?;
                            Some(s)
                        }
                    };
                    Ok((raw, udp))
                },
            )
            .await?
            .map_err(bad_src(&ns.name, src))?;
        let icmp = Icmp::new(raw)?;
        let udp = udp
            .map(tokio::net::UdpSocket::from_std)
            .transpose()
            .map_err(|e| HelperError::Internal(format!("Cannot use a UDP socket: {e}")))?;
        if let (Some(u), Some(tos)) = (&udp, tos) {
            u.set_tos_v4(tos).map_err(|e| {
                HelperError::Kernel(format!("Cannot mark the probe's packets: {e}"))
            })?;
        }
        let sport = match &udp {
            Some(u) => u.local_addr().map(|a| a.port()).unwrap_or(0),
            None => 0,
        };
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let mut hops = Vec::new();
        let mut reached = false;
        let mut buf = vec![0u8; 2048];
        for ttl in 1..=max_hops {
            // Probe `q` of this hop: ICMP sequence number, or UDP destination port, `index + q`
            // (one probe per hop: the TTL, or the port base + TTL - 1, as traceroute does).
            let first = (u16::from(ttl) - 1) * u16::from(queries);
            let mut sent_at = Vec::with_capacity(usize::from(queries));
            let mut hop = TraceHop {
                ttl,
                from: None,
                rtt_us: None,
                kind: None,
                code: None,
                sent: args.queries.map(|_| queries),
                replies: Vec::new(),
            };
            let mut unreachable = false;
            for q in 0..u16::from(queries) {
                let n = first + q;
                let send = match &udp {
                    None => icmp.send(&echo_request(id, n + 1), dst, Some(ttl)),
                    Some(u) => match u.set_ttl(u32::from(ttl)) {
                        Ok(()) => u
                            .send_to(
                                PAYLOAD,
                                SocketAddr::V4(SocketAddrV4::new(dst, base_port + n)),
                            )
                            .await
                            .map(drop),
                        Err(e) => Err(e),
                    },
                };
                if let Err(e) = send {
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ENETUNREACH | libc::EHOSTUNREACH)
                    ) {
                        unreachable = true;
                        break;
                    }
                    return Err(HelperError::Kernel(format!("Cannot send to {dst}: {e}")));
                }
                sent_at.push(Instant::now());
            }
            if unreachable {
                hop.kind = Some("unreachable".into());
                hops.push(hop);
                break;
            }
            let mut answered = vec![false; sent_at.len()];
            let deadline = sent_at.last().copied().unwrap_or_else(Instant::now) + timeout;
            while answered.iter().any(|a| !a) {
                let received = tokio::select! {
                    r = icmp.recv(&mut buf) => r,
                    _ = tokio::time::sleep_until(deadline) => break,
                    _ = ctx.cancel.cancelled() => return Err(HelperError::Cancelled),
                };
                let (from, n) = received.map_err(|e| {
                    HelperError::Kernel(format!("Cannot receive in {}: {e}", ns.name))
                })?;
                let heard = parse(&buf[..n]);
                // Which of this hop's probes it answers, if any.
                let ours = |n: u16| n.checked_sub(first).filter(|q| *q < u16::from(queries));
                let (q, kind, code) = match (heard, &udp) {
                    (Some(Heard::Reply { id: i, seq, .. }), None) if i == id => {
                        match ours(seq.wrapping_sub(1)) {
                            Some(q) => (q, "reply", None),
                            None => continue,
                        }
                    }
                    (
                        Some(Heard::EchoError {
                            kind,
                            code,
                            id: i,
                            seq,
                        }),
                        None,
                    ) if i == id => match ours(seq.wrapping_sub(1)) {
                        Some(q) => (q, kind_name(kind), Some(code)),
                        None => continue,
                    },
                    (
                        Some(Heard::UdpError {
                            kind,
                            code,
                            sport: s,
                            dport: d,
                        }),
                        Some(_),
                    ) if s == sport => match ours(d.wrapping_sub(base_port)) {
                        Some(q) if kind == UNREACHABLE && code == 3 && from == dst => {
                            (q, "reply", None)
                        }
                        Some(q) => (q, kind_name(kind), Some(code)),
                        None => continue,
                    },
                    _ => continue,
                };
                let k = usize::from(q);
                if answered[k] {
                    continue;
                }
                answered[k] = true;
                let rtt_us = micros(Instant::now() - sent_at[k]);
                let code = if kind == "unreachable" { code } else { None };
                if hop.from.is_none() {
                    hop.from = Some(std::net::IpAddr::V4(from).into());
                    hop.rtt_us = Some(rtt_us);
                    hop.kind = Some(kind.into());
                    hop.code = code;
                }
                if hop.sent.is_some() {
                    hop.replies.push(TraceReply {
                        query: u8::try_from(q).unwrap_or(u8::MAX),
                        from: std::net::IpAddr::V4(from).into(),
                        rtt_us,
                        kind: kind.into(),
                        code,
                    });
                }
            }
            let kinds = || {
                hop.replies
                    .iter()
                    .map(|r| r.kind.as_str())
                    .chain(hop.kind.as_deref())
            };
            let done = kinds().any(|k| k == "reply" || k == "unreachable");
            reached = kinds().any(|k| k == "reply");
            hops.push(hop);
            if done {
                break;
            }
        }
        Ok::<_, HelperError>(TraceResult {
            hops,
            reached,
            explain: None,
        })
    };
    // Whatever becomes of the probes, an explained trace's tracing is read and removed.
    let outcome = traced.await;
    let explained = match session {
        Some(s) => Some(s.finish(ctx).await?),
        None => None,
    };
    let mut result = outcome?;
    result.explain = explained;
    Ok(OpResult::ProbeTrace(result))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_requests_carry_a_valid_checksum() {
        let p = echo_request(0x1234, 7);
        assert_eq!(checksum(&p), 0, "a packet with its checksum sums to zero");
        assert_eq!(&p[4..8], &[0x12, 0x34, 0, 7]);
    }

    fn ip_header(proto: u8, ttl: u8) -> Vec<u8> {
        let mut h = vec![0x45, 0, 0, 0, 0, 0, 0, 0, ttl, proto, 0, 0];
        h.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        h
    }

    #[test]
    fn replies_and_errors_are_told_apart() {
        let mut reply = ip_header(1, 61);
        reply.extend_from_slice(&[ECHO_REPLY, 0, 0, 0, 0x12, 0x34, 0, 3]);
        assert_eq!(
            parse(&reply),
            Some(Heard::Reply {
                id: 0x1234,
                seq: 3,
                ttl: 61
            })
        );

        let mut exceeded = ip_header(1, 64);
        exceeded.extend_from_slice(&[TIME_EXCEEDED, 0, 0, 0, 0, 0, 0, 0]);
        exceeded.extend_from_slice(&ip_header(1, 1));
        exceeded.extend_from_slice(&echo_request(0x1234, 2)[..8]);
        assert_eq!(
            parse(&exceeded),
            Some(Heard::EchoError {
                kind: TIME_EXCEEDED,
                code: 0,
                id: 0x1234,
                seq: 2
            })
        );

        let mut port = ip_header(1, 64);
        port.extend_from_slice(&[UNREACHABLE, 3, 0, 0, 0, 0, 0, 0]);
        port.extend_from_slice(&ip_header(17, 1));
        port.extend_from_slice(&[0xa0, 0x00, 0x82, 0x9a, 0, 8, 0, 0]);
        assert_eq!(
            parse(&port),
            Some(Heard::UdpError {
                kind: UNREACHABLE,
                code: 3,
                sport: 0xa000,
                dport: 33434
            })
        );
        // Truncated packets are ignored, not trusted.
        assert_eq!(parse(&port[..30]), None);
        assert_eq!(parse(&[]), None);
    }
}
