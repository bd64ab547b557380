//! A router's `NFLOG` group, read over `NETLINK_NETFILTER` (the `nfnetlink_log` subsystem):
//! the socket (made inside the router's namespace by a thread that entered it, bound to one
//! group, copying the first [`COPY_RANGE`] bytes of each packet, flushed at every packet),
//! the packet messages taken apart, and the line the kernel's `LOG` target would have printed
//! for the same packet. Parsing is pure and total: a short or odd message is skipped, never
//! trusted.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};

use super::nfnl::{align4, attr, be32, check, socket, u16_at};

/// `NFNL_SUBSYS_ULOG`.
const SUBSYS_ULOG: u16 = 4;
/// `NFULNL_MSG_PACKET` and `NFULNL_MSG_CONFIG`.
const MSG_PACKET: u16 = 0;
const MSG_CONFIG: u16 = 1;
/// Config attributes: `NFULA_CFG_CMD`, `NFULA_CFG_MODE`, `NFULA_CFG_QTHRESH`.
const CFG_CMD: u16 = 1;
const CFG_MODE: u16 = 2;
const CFG_QTHRESH: u16 = 5;
/// `NFULNL_CFG_CMD_BIND`, `NFULNL_COPY_PACKET`.
const CMD_BIND: u8 = 1;
const COPY_PACKET: u8 = 2;
/// Packet attributes.
const ATTR_INDEV: u16 = 4;
const ATTR_OUTDEV: u16 = 5;
const ATTR_PAYLOAD: u16 = 9;
const ATTR_PREFIX: u16 = 10;
const ATTR_HWHEADER: u16 = 16;
/// How much of each packet is copied: the IP header with options and the transport header.
pub const COPY_RANGE: u32 = 128;

const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;

/// One `NFULNL_MSG_CONFIG` request for `group` with the attribute `kind` = `value`.
fn config(seq: u32, group: u16, kind: u16, value: &[u8]) -> Vec<u8> {
    let mut body = vec![libc::AF_UNSPEC as u8, 0]; // nfgenmsg: family, version
    body.extend_from_slice(&group.to_be_bytes()); // res_id
    attr(&mut body, kind, value);
    let len = 16 + body.len();
    let mut msg = Vec::with_capacity(len);
    msg.extend_from_slice(&(len as u32).to_ne_bytes());
    msg.extend_from_slice(&((SUBSYS_ULOG << 8) | MSG_CONFIG).to_ne_bytes());
    msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    msg.extend_from_slice(&seq.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend(body);
    msg
}

/// Opens the socket for `group` in the calling thread's network namespace (so: inside
/// `netns::run_in`), configured and non-blocking. Fails when the kernel has no
/// `nfnetlink_log`, or another socket of the namespace has the group.
#[allow(
    unsafe_code,
    reason = "a netlink socket of the netfilter family has no safe wrapper in nix or std"
)]
pub fn open(group: u16) -> io::Result<OwnedFd> {
    let fd = socket()?;
    let raw = fd.as_raw_fd();
    // SAFETY: plain system calls on a descriptor this function owns; every buffer passed
    // lives across the call and its length is the one given.
    unsafe {
        let timeout = libc::timeval {
            tv_sec: 2,
            tv_usec: 0,
        };
        let tlen = std::mem::size_of::<libc::timeval>() as libc::socklen_t;
        libc::setsockopt(
            raw,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const timeout).cast(),
            tlen,
        );
        let rcvbuf: libc::c_int = 1 << 20;
        libc::setsockopt(
            raw,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&raw const rcvbuf).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let mut mode = COPY_RANGE.to_be_bytes().to_vec();
        mode.extend_from_slice(&[COPY_PACKET, 0]);
        let requests = [
            config(1, group, CFG_CMD, &[CMD_BIND]),
            config(2, group, CFG_MODE, &mode),
            config(3, group, CFG_QTHRESH, &1u32.to_be_bytes()),
        ];
        let mut buf = [0u8; 4096];
        for req in &requests {
            check(libc::send(raw, req.as_ptr().cast(), req.len(), 0))?;
            let n = check(libc::recv(raw, buf.as_mut_ptr().cast(), buf.len(), 0))?;
            ack(&buf[..n])?;
        }
        let flags = libc::fcntl(raw, libc::F_GETFL);
        if flags < 0 || libc::fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
        debug_assert!(fd.as_raw_fd() == raw);
        Ok(fd)
    }
}

/// The kernel's answer to one request: an acknowledgement, or its error.
fn ack(msg: &[u8]) -> io::Result<()> {
    let kind = msg.get(4..6).map(|b| u16::from_ne_bytes([b[0], b[1]]));
    let code = msg
        .get(16..20)
        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
    match (kind, code) {
        (Some(NLMSG_ERROR), Some(0)) => Ok(()),
        (Some(NLMSG_ERROR), Some(e)) => Err(io::Error::from_raw_os_error(-e)),
        _ => Err(io::Error::other(
            "unexpected answer to an nfnetlink_log request",
        )),
    }
}

/// One logged packet, as the kernel handed it over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Packet {
    /// The rule's prefix.
    pub prefix: String,
    /// The input and output interfaces' indexes.
    pub indev: Option<u32>,
    pub outdev: Option<u32>,
    /// The link-layer header of a received packet.
    pub hwheader: Vec<u8>,
    /// The start of the IP packet.
    pub payload: Vec<u8>,
}

/// The packets in one datagram read from the socket (other messages skipped).
pub fn parse(mut buf: &[u8]) -> Vec<Packet> {
    let mut out = Vec::new();
    while buf.len() >= 16 {
        let len = be_or_ne_len(buf);
        if len < 16 || len > buf.len() {
            break;
        }
        let kind = u16_at(buf, 4).unwrap_or(0);
        if kind == ((SUBSYS_ULOG << 8) | MSG_PACKET) {
            if let Some(p) = packet(&buf[20.min(len)..len]) {
                out.push(p);
            }
        }
        buf = &buf[align4(len).min(buf.len())..];
    }
    out
}

fn be_or_ne_len(buf: &[u8]) -> usize {
    buf.get(..4)
        .map(|s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]) as usize)
        .unwrap_or(0)
}

/// The attributes after the netlink and nfgenmsg headers.
fn packet(mut attrs: &[u8]) -> Option<Packet> {
    let mut p = Packet::default();
    let mut seen = false;
    while attrs.len() >= 4 {
        let len = usize::from(u16_at(attrs, 0)?);
        let kind = u16_at(attrs, 2)? & 0x3fff;
        if len < 4 || len > attrs.len() {
            break;
        }
        let value = &attrs[4..len];
        match kind {
            ATTR_PREFIX => {
                let text = value.split(|b| *b == 0).next().unwrap_or(&[]);
                p.prefix = String::from_utf8_lossy(text).into_owned();
            }
            ATTR_INDEV => p.indev = be32(value),
            ATTR_OUTDEV => p.outdev = be32(value),
            ATTR_HWHEADER => p.hwheader = value.to_vec(),
            ATTR_PAYLOAD => {
                p.payload = value.to_vec();
                seen = true;
            }
            _ => {}
        }
        attrs = &attrs[align4(len).min(attrs.len())..];
    }
    seen.then_some(p)
}

/// What the kernel's `LOG` target prints after the prefix, for an IPv4 packet (its
/// `nf_log_ip_packet` with the default options): `IN=… OUT=… [MAC=…] SRC=… DST=… LEN=…
/// TOS=0x.. PREC=0x.. TTL=… ID=… [CE] [DF] [MF] [FRAG:…] PROTO=…` and the transport fields.
/// `ifname` names an interface index ("" when unknown).
pub fn line(p: &Packet, ifname: &dyn Fn(u32) -> String) -> String {
    let name = |i: Option<u32>| i.map(ifname).unwrap_or_default();
    let mut s = format!("IN={} OUT={} ", name(p.indev), name(p.outdev));
    if p.indev.is_some() && !p.hwheader.is_empty() {
        let mac: Vec<String> = p.hwheader.iter().map(|b| format!("{b:02x}")).collect();
        s.push_str(&format!("MAC={} ", mac.join(":")));
    }
    s.push_str(&ip_fields(&p.payload));
    s.trim_end().to_owned()
}

fn ip_fields(ip: &[u8]) -> String {
    if ip.len() < 20 || ip[0] >> 4 != 4 {
        return "PROTO=? (not a whole IPv4 header)".into();
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = u16::from_be_bytes([ip[2], ip[3]]);
    let id = u16::from_be_bytes([ip[4], ip[5]]);
    let frag = u16::from_be_bytes([ip[6], ip[7]]);
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let mut s = format!(
        "SRC={src} DST={dst} LEN={total} TOS=0x{:02X} PREC=0x{:02X} TTL={} ID={id} ",
        ip[1] & 0x1e,
        ip[1] & 0xe0,
        ip[8]
    );
    if frag & 0x8000 != 0 {
        s.push_str("CE ");
    }
    if frag & 0x4000 != 0 {
        s.push_str("DF ");
    }
    if frag & 0x2000 != 0 {
        s.push_str("MF ");
    }
    let offset = frag & 0x1fff;
    if offset != 0 {
        s.push_str(&format!("FRAG:{offset} "));
    }
    let l4 = ip.get(ihl..).unwrap_or(&[]);
    let first = offset == 0;
    match ip[9] {
        6 => {
            s.push_str("PROTO=TCP ");
            if first && l4.len() >= 20 {
                let port = |at: usize| u16::from_be_bytes([l4[at], l4[at + 1]]);
                s.push_str(&format!(
                    "SPT={} DPT={} WINDOW={} RES=0x{:02x} ",
                    port(0),
                    port(2),
                    port(14),
                    l4[12] & 0x0f
                ));
                for (bit, flag) in [
                    (0x80, "CWR"),
                    (0x40, "ECE"),
                    (0x20, "URG"),
                    (0x10, "ACK"),
                    (0x08, "PSH"),
                    (0x04, "RST"),
                    (0x02, "SYN"),
                    (0x01, "FIN"),
                ] {
                    if l4[13] & bit != 0 {
                        s.push_str(flag);
                        s.push(' ');
                    }
                }
                s.push_str(&format!("URGP={} ", port(18)));
            } else if first {
                s.push_str(&format!("INCOMPLETE [{} bytes] ", l4.len()));
            }
        }
        17 | 136 => {
            s.push_str(if ip[9] == 17 {
                "PROTO=UDP "
            } else {
                "PROTO=UDPLITE "
            });
            if first && l4.len() >= 8 {
                let port = |at: usize| u16::from_be_bytes([l4[at], l4[at + 1]]);
                s.push_str(&format!("SPT={} DPT={} LEN={} ", port(0), port(2), port(4)));
            } else if first {
                s.push_str(&format!("INCOMPLETE [{} bytes] ", l4.len()));
            }
        }
        1 => {
            s.push_str("PROTO=ICMP ");
            if first && l4.len() >= 4 {
                s.push_str(&format!("TYPE={} CODE={} ", l4[0], l4[1]));
                if matches!(l4[0], 0 | 8) && l4.len() >= 8 {
                    s.push_str(&format!(
                        "ID={} SEQ={} ",
                        u16::from_be_bytes([l4[4], l4[5]]),
                        u16::from_be_bytes([l4[6], l4[7]])
                    ));
                }
                if matches!(l4[0], 3 | 4 | 5 | 11 | 12) && l4.len() > 8 {
                    s.push_str(&format!("[{}] ", ip_fields(&l4[8..]).trim_end()));
                }
            }
        }
        other => s.push_str(&format!("PROTO={other} ")),
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4(proto: u8, l4: &[u8]) -> Vec<u8> {
        let total = (20 + l4.len()) as u16;
        let mut ip = vec![0x45, 0x00];
        ip.extend_from_slice(&total.to_be_bytes());
        ip.extend_from_slice(&[0x12, 0x34, 0x40, 0x00, 63, proto, 0, 0]);
        ip.extend_from_slice(&[10, 1, 1, 1, 8, 8, 8, 8]);
        ip.extend_from_slice(l4);
        ip
    }

    fn message(attrs: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut body = vec![2, 0, 0x1d, 0x31];
        for (k, v) in attrs {
            attr(&mut body, *k, v);
        }
        let len = 16 + body.len();
        let mut msg = Vec::new();
        msg.extend_from_slice(&(len as u32).to_ne_bytes());
        msg.extend_from_slice(&((SUBSYS_ULOG << 8) | MSG_PACKET).to_ne_bytes());
        msg.extend_from_slice(&0u16.to_ne_bytes());
        msg.extend_from_slice(&[0; 8]);
        msg.extend(body);
        msg
    }

    fn names(i: u32) -> String {
        format!("eth{}", i - 1)
    }

    #[test]
    fn an_echo_request_prints_as_log_prints_it() {
        let icmp = [8, 0, 0, 0, 0, 7, 0, 1];
        let mut prefix = b"NAT-MASQ-10_1_0_0: ".to_vec();
        prefix.push(0);
        let msg = message(&[
            (ATTR_PREFIX, prefix),
            (ATTR_OUTDEV, 1u32.to_be_bytes().to_vec()),
            (ATTR_PAYLOAD, ipv4(1, &icmp)),
        ]);
        let mut two = msg.clone();
        two.extend_from_slice(&msg);
        let packets = parse(&two);
        assert_eq!(packets.len(), 2);
        assert_eq!(packets[0].prefix, "NAT-MASQ-10_1_0_0: ");
        assert_eq!(
            line(&packets[0], &names),
            "IN= OUT=eth0 SRC=10.1.1.1 DST=8.8.8.8 LEN=28 TOS=0x00 PREC=0x00 TTL=63 ID=4660 DF PROTO=ICMP TYPE=8 CODE=0 ID=7 SEQ=1"
        );
    }

    #[test]
    fn tcp_and_udp_show_their_ports_and_flags() {
        let mut tcp = vec![0x9c, 0x40, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02];
        tcp.extend_from_slice(&[0xfa, 0xf0, 0, 0, 0, 0]);
        let p = Packet {
            indev: Some(2),
            hwheader: vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 8, 0],
            payload: ipv4(6, &tcp),
            ..Packet::default()
        };
        assert_eq!(
            line(&p, &names),
            "IN=eth1 OUT= MAC=02:00:00:00:00:01:02:00:00:00:00:02:08:00 SRC=10.1.1.1 DST=8.8.8.8 LEN=40 TOS=0x00 PREC=0x00 TTL=63 ID=4660 DF PROTO=TCP SPT=40000 DPT=80 WINDOW=64240 RES=0x00 SYN URGP=0"
        );
        let udp = [0x82, 0x9a, 0x00, 0x35, 0x00, 0x08, 0, 0];
        let p = Packet {
            payload: ipv4(17, &udp),
            ..Packet::default()
        };
        assert!(line(&p, &names).ends_with("PROTO=UDP SPT=33434 DPT=53 LEN=8"));
    }

    #[test]
    fn short_or_foreign_messages_are_skipped() {
        assert!(parse(&[0; 10]).is_empty());
        let mut msg = message(&[(ATTR_PAYLOAD, vec![0x45])]);
        msg[0] = 200; // longer than the buffer
        assert!(parse(&msg).is_empty());
        let p = Packet {
            payload: vec![0x45, 0, 0],
            ..Packet::default()
        };
        assert!(line(&p, &names).contains("not a whole IPv4 header"));
        // A configuration request is not a packet.
        assert!(parse(&config(1, 5, CFG_CMD, &[CMD_BIND])).is_empty());
    }
}
