//! Validated network values for the link, address, route, rule, neighbour and sysctl
//! operations: addresses, MAC addresses, tables, port ranges, and the kernel's named numbers
//! (scopes, route types and protocols, IP protocols, neighbour states).
//!
//! Named numbers travel as their name when they have one (`"link"`, `"blackhole"`) and as an
//! integer otherwise; both forms are accepted on input.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::names::InvalidValue;

/// An IPv4 or IPv6 address, as text on the wire (`"10.1.1.1"`, `"2001:db8::1"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ip(pub IpAddr);

impl FromStr for Ip {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        s.parse().map(Ip).map_err(|_| InvalidValue {
            what: "IP address",
            value: s.to_owned(),
            reason: "expected an IPv4 or IPv6 address such as 10.1.1.1",
        })
    }
}

impl fmt::Display for Ip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<IpAddr> for Ip {
    fn from(ip: IpAddr) -> Self {
        Ip(ip)
    }
}

/// A MAC address, as text on the wire (`"02:00:00:aa:bb:cc"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl FromStr for Mac {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        let bad = || InvalidValue {
            what: "MAC address",
            value: s.to_owned(),
            reason: "expected six hexadecimal bytes separated by colons, such as 02:00:00:aa:bb:cc",
        };
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut out {
            let part = parts.next().ok_or_else(bad)?;
            if part.len() != 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Mac(out))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// Implements text serde for types with `FromStr` + `Display`.
macro_rules! text_serde {
    ($ty:ty, $expecting:literal) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(de::Error::custom)
            }
        }
    };
}

text_serde!(Ip, "an IP address");
text_serde!(Mac, "a MAC address");

/// A routing table id: 1 to 2^32-1, given as a number or as `main` (254), `local` (255) or
/// `default` (253). Table 0 is not a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableId(u32);

impl TableId {
    /// The main table (254).
    pub const MAIN: TableId = TableId(254);
    /// The local table (255).
    pub const LOCAL: TableId = TableId(255);

    /// A table id, refusing 0.
    pub fn new(id: u32) -> Result<Self, InvalidValue> {
        if id == 0 {
            return Err(InvalidValue {
                what: "table",
                value: "0".into(),
                reason: "table 0 is not a table; use 1 to 4294967295, main, local or default",
            });
        }
        Ok(TableId(id))
    }

    /// The id.
    pub fn id(self) -> u32 {
        self.0
    }
}

impl Default for TableId {
    fn default() -> Self {
        TableId::MAIN
    }
}

impl FromStr for TableId {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        match s {
            "main" => Ok(TableId(254)),
            "local" => Ok(TableId(255)),
            "default" => Ok(TableId(253)),
            _ => match s.parse::<u32>() {
                Ok(n) => TableId::new(n),
                Err(_) => Err(InvalidValue {
                    what: "table",
                    value: s.to_owned(),
                    reason: "expected a number from 1 to 4294967295, main, local or default",
                }),
            },
        }
    }
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for TableId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u32(self.0)
    }
}

impl<'de> Deserialize<'de> for TableId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NumberOrName::<TableId>::new("a table id"))
    }
}

/// A port or an inclusive port range: `80`, `"80"` or `"1000-2000"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    /// First port.
    pub start: u16,
    /// Last port, at least `start`.
    pub end: u16,
}

impl FromStr for PortRange {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        let bad = |reason| InvalidValue {
            what: "port range",
            value: s.to_owned(),
            reason,
        };
        let port = |p: &str| {
            p.parse::<u16>()
                .map_err(|_| bad("a port is a number from 0 to 65535"))
        };
        let (start, end) = match s.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => {
                let p = port(s)?;
                (p, p)
            }
        };
        if start > end {
            return Err(bad("the range's start is after its end"));
        }
        Ok(PortRange { start, end })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

impl Serialize for PortRange {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NumberOrName::<PortRange>::new("a port or a port range"))
    }
}

/// Accepts an unsigned integer or a string, and parses either through `FromStr`.
struct NumberOrName<T> {
    expecting: &'static str,
    _marker: std::marker::PhantomData<T>,
}

impl<T> NumberOrName<T> {
    fn new(expecting: &'static str) -> Self {
        Self {
            expecting,
            _marker: std::marker::PhantomData,
        }
    }
}

impl<T: FromStr<Err = InvalidValue>> Visitor<'_> for NumberOrName<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        v.to_string().parse().map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        v.to_string().parse().map_err(E::custom)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        v.parse().map_err(E::custom)
    }
}

/// Defines an enum of the kernel's named numbers: known names, plus `Other(n)` for the rest.
macro_rules! named_number {
    (
        $(#[$meta:meta])*
        $name:ident($repr:ty), $what:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal => $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value without a name here.
            Other($repr),
        }

        impl $name {
            /// The kernel's number for this value.
            pub fn value(self) -> $repr {
                match self {
                    $( $name::$variant => $value, )+
                    $name::Other(n) => n,
                }
            }

            /// The value for a kernel number.
            pub fn from_value(n: $repr) -> Self {
                match n {
                    $( $value => $name::$variant, )+
                    other => $name::Other(other),
                }
            }
        }

        impl FromStr for $name {
            type Err = InvalidValue;
            fn from_str(s: &str) -> Result<Self, InvalidValue> {
                match s {
                    $( $text => Ok($name::$variant), )+
                    _ => s.parse::<$repr>().map($name::from_value).map_err(|_| InvalidValue {
                        what: $what,
                        value: s.to_owned(),
                        reason: concat!("expected one of ", $( $text, " ", )+ "or a number"),
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $( $name::$variant => f.write_str($text), )+
                    $name::Other(n) => n.fmt(f),
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                match self {
                    $name::Other(n) => serializer.serialize_u64(u64::from(*n)),
                    known => serializer.collect_str(known),
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_any(NumberOrName::<$name>::new($what))
            }
        }
    };
}

named_number! {
    /// The scope of an address or route.
    Scope(u8), "scope" {
        /// Valid everywhere (`RT_SCOPE_UNIVERSE`).
        Global = 0 => "global",
        /// Inside the site.
        Site = 200 => "site",
        /// On the link only.
        Link = 253 => "link",
        /// On this host only.
        Host = 254 => "host",
        /// Nowhere.
        Nowhere = 255 => "nowhere",
    }
}

named_number! {
    /// The type of a route.
    RouteType(u8), "route type" {
        /// Unspecified (reads only).
        Unspec = 0 => "unspec",
        /// A normal route.
        Unicast = 1 => "unicast",
        /// A local address (local table).
        Local = 2 => "local",
        /// A broadcast address (local table).
        Broadcast = 3 => "broadcast",
        /// Anycast.
        Anycast = 4 => "anycast",
        /// Multicast.
        Multicast = 5 => "multicast",
        /// Silently drop.
        Blackhole = 6 => "blackhole",
        /// Drop with ICMP unreachable.
        Unreachable = 7 => "unreachable",
        /// Drop with ICMP prohibited.
        Prohibit = 8 => "prohibit",
        /// Continue in the next rule's table.
        Throw = 9 => "throw",
    }
}

named_number! {
    /// Who installed a route.
    RouteProto(u8), "route protocol" {
        /// Unspecified.
        Unspec = 0 => "unspec",
        /// ICMP redirect.
        Redirect = 1 => "redirect",
        /// The kernel (connected routes).
        Kernel = 2 => "kernel",
        /// At boot (the default for `ip route add`).
        Boot = 3 => "boot",
        /// An administrator.
        Static = 4 => "static",
        /// Router advertisement.
        Ra = 9 => "ra",
        /// DHCP.
        Dhcp = 16 => "dhcp",
        /// Zebra.
        Zebra = 11 => "zebra",
        /// BIRD.
        Bird = 12 => "bird",
        /// BGP.
        Bgp = 186 => "bgp",
        /// IS-IS.
        Isis = 187 => "isis",
        /// OSPF.
        Ospf = 188 => "ospf",
        /// RIP.
        Rip = 189 => "rip",
    }
}

/// The defaults of a route that leaves them out, as the helper writes it and as `net verify`
/// expects it back (one home for both): table main, protocol `boot` (as `ip route add`),
/// scope link for a unicast route without a gateway and global otherwise.
impl RouteProto {
    /// The protocol of a route that names none.
    pub const DEFAULT: RouteProto = RouteProto::Boot;
}

impl Scope {
    /// The scope of a route of type `kind` that names none: link for a unicast route
    /// without a gateway (or nexthops), global otherwise.
    pub fn default_for_route(kind: RouteType, has_gateway: bool) -> Scope {
        if kind == RouteType::Unicast && !has_gateway {
            Scope::Link
        } else {
            Scope::Global
        }
    }
}

named_number! {
    /// An IP protocol number (for policy rules).
    IpProto(u8), "IP protocol" {
        /// ICMP.
        Icmp = 1 => "icmp",
        /// TCP.
        Tcp = 6 => "tcp",
        /// UDP.
        Udp = 17 => "udp",
        /// ICMPv6.
        Icmpv6 = 58 => "icmpv6",
        /// SCTP.
        Sctp = 132 => "sctp",
    }
}

named_number! {
    /// The state of a neighbour entry.
    NeighState(u16), "neighbour state" {
        /// Being resolved.
        Incomplete = 0x01 => "incomplete",
        /// Confirmed reachable.
        Reachable = 0x02 => "reachable",
        /// Not confirmed recently.
        Stale = 0x04 => "stale",
        /// Waiting before probing.
        Delay = 0x08 => "delay",
        /// Being probed.
        Probe = 0x10 => "probe",
        /// Resolution failed.
        Failed = 0x20 => "failed",
        /// No resolution needed.
        Noarp = 0x40 => "noarp",
        /// Static: never expires, never re-resolved.
        Permanent = 0x80 => "permanent",
    }
}

/// The address family of a rule or of a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// IPv4.
    Inet,
    /// IPv6.
    Inet6,
}

impl Family {
    /// The family of an address.
    pub fn of(ip: IpAddr) -> Family {
        if ip.is_ipv4() {
            Family::Inet
        } else {
            Family::Inet6
        }
    }
}

/// What a policy rule does when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleAction {
    /// Look the route up in `table`.
    #[default]
    Lookup,
    /// Drop silently.
    Blackhole,
    /// Drop with ICMP unreachable.
    Unreachable,
    /// Drop with ICMP prohibited.
    Prohibit,
}

/// A netfilter table, for `iptables_save`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NfTable {
    /// `filter`.
    Filter,
    /// `nat`.
    Nat,
    /// `mangle`.
    Mangle,
    /// `raw`.
    Raw,
    /// `security`.
    Security,
}

impl NfTable {
    /// The table's name.
    pub fn as_str(self) -> &'static str {
        match self {
            NfTable::Filter => "filter",
            NfTable::Nat => "nat",
            NfTable::Mangle => "mangle",
            NfTable::Raw => "raw",
            NfTable::Security => "security",
        }
    }
}

/// A sysctl key (dots or slashes between the parts; an interface name may itself contain
/// dots). Any syntactically safe `net.` key decodes; only those on the allow-list have a
/// [`SysctlKey::proc_path`], and the helper answers `not_allowed` for the others. The
/// allow-list: `net.ipv4.ip_forward`, `net.ipv4.conf.{all,default,IF}.{rp_filter,arp_ignore,
/// arp_announce,accept_local,forwarding,send_redirects,accept_redirects,secure_redirects}`,
/// `net.ipv6.conf.{all,default,IF}.{disable_ipv6,accept_redirects}`,
/// `net.ipv4.ping_group_range` and `net.ipv4.icmp_ratelimit`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SysctlKey {
    /// As given.
    raw: String,
    /// The path below `/proc/sys`, with slashes, for allowed keys.
    path: Option<String>,
}

impl SysctlKey {
    /// The path below `/proc/sys` (e.g. `net/ipv4/conf/eth0/rp_filter`), or `None` if the key
    /// is not on the allow-list.
    pub fn proc_path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    /// The key in dotted form, e.g. `net.ipv4.conf.eth0.rp_filter`.
    pub fn dotted(&self) -> String {
        match &self.path {
            // The interface part keeps its dots; only the separators become dots.
            Some(path) => path.replace('/', "."),
            None => self.raw.replace('/', "."),
        }
    }

    /// The allow-list, for messages.
    pub const ALLOWED: &'static str = "net.ipv4.ip_forward, net.ipv4.conf.{all,default,IF}.{rp_filter,arp_ignore,\
        arp_announce,accept_local,forwarding,send_redirects,accept_redirects,secure_redirects}, \
        net.ipv6.conf.{all,default,IF}.{disable_ipv6,accept_redirects}, \
        net.ipv4.ping_group_range, net.ipv4.icmp_ratelimit";

    /// The `/proc/sys` path of an allowed key; `Ok(None)` for a well-formed key that is not
    /// allowed.
    fn allowed_path(s: &str) -> Result<Option<String>, InvalidValue> {
        let refuse = |reason| InvalidValue {
            what: "sysctl",
            value: s.to_owned(),
            reason,
        };
        let sep = if s.contains('/') { '/' } else { '.' };
        let key = s.strip_prefix('/').unwrap_or(s);
        let parts: Vec<&str> = key.split(sep).collect();
        Ok(match parts.as_slice() {
            [
                "net",
                "ipv4",
                leaf @ ("ip_forward" | "ping_group_range" | "icmp_ratelimit"),
            ] => Some(format!("net/ipv4/{leaf}")),
            ["net", family @ ("ipv4" | "ipv6"), "conf", middle @ .., leaf]
                if !middle.is_empty() =>
            {
                let allowed = match *family {
                    "ipv4" => {
                        matches!(
                            *leaf,
                            "rp_filter"
                                | "arp_ignore"
                                | "arp_announce"
                                | "accept_local"
                                | "forwarding"
                                | "send_redirects"
                                | "accept_redirects"
                                | "secure_redirects"
                        )
                    }
                    _ => matches!(*leaf, "disable_ipv6" | "accept_redirects"),
                };
                if !allowed {
                    return Ok(None);
                }
                // With dots as separators, an interface name's own dots split it: join back.
                // With slashes, the interface is exactly one part.
                if sep == '/' && middle.len() != 1 {
                    return Err(refuse("the interface part is not a valid interface name"));
                }
                let dev = middle.join(".");
                if dev != "all" && dev != "default" {
                    dev.parse::<crate::names::IfName>()
                        .map_err(|_| refuse("the interface part is not a valid interface name"))?;
                }
                Some(format!("net/{family}/conf/{dev}/{leaf}"))
            }
            _ => None,
        })
    }
}

impl FromStr for SysctlKey {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        let refuse = |reason| InvalidValue {
            what: "sysctl",
            value: s.to_owned(),
            reason,
        };
        let well_formed = !s.is_empty()
            && s.len() <= 128
            && s.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'/' | b'_' | b'-' | b'@')
            });
        if !well_formed {
            return Err(refuse("expected a sysctl key such as net.ipv4.ip_forward"));
        }
        let sep = if s.contains('/') { '/' } else { '.' };
        let parts = s.strip_prefix('/').unwrap_or(s).split(sep);
        if parts.clone().any(|p| p.is_empty() || p == "." || p == "..") || !s.starts_with("net") {
            return Err(refuse(
                "expected a net.* sysctl key such as net.ipv4.ip_forward",
            ));
        }
        let path = Self::allowed_path(s)?;
        Ok(SysctlKey {
            raw: s.to_owned(),
            path,
        })
    }
}

impl fmt::Display for SysctlKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.dotted())
    }
}

/// On the wire a key travels as it was given (slashes stay slashes), so that decoding what was
/// encoded gives the same key: the dotted form of a slash-separated key whose interface
/// contains dots would not decode again (found by fuzzing).
impl Serialize for SysctlKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.raw)
    }
}

impl<'de> Deserialize<'de> for SysctlKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

/// A sysctl value: 1–64 characters of digits, `-` and spaces (e.g. `1`, `0 2147483647`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SysctlValue(String);

impl SysctlValue {
    /// The value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for SysctlValue {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || b == b' ' || b == b'\t' || b == b'-');
        if !ok {
            return Err(InvalidValue {
                what: "sysctl value",
                value: s.to_owned(),
                reason: "expected 1-64 characters of digits, - and spaces",
            });
        }
        Ok(SysctlValue(s.to_owned()))
    }
}

impl fmt::Display for SysctlValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for SysctlValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SysctlValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NumberOrName::<SysctlValue>::new("a sysctl value"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn ips_and_macs() {
        assert_eq!("10.1.1.1".parse::<Ip>().unwrap().to_string(), "10.1.1.1");
        assert!("10.1.1".parse::<Ip>().is_err());
        assert!("10.1.1.1/24".parse::<Ip>().is_err());
        let mac: Mac = "02:00:00:AA:bb:0c".parse().unwrap();
        assert_eq!(mac.to_string(), "02:00:00:aa:bb:0c");
        for bad in [
            "02:00:00:aa:bb",
            "02:00:00:aa:bb:cc:dd",
            "2:0:0:a:b:c",
            "zz:00:00:00:00:00",
            "",
        ] {
            assert!(bad.parse::<Mac>().is_err(), "{bad}");
        }
    }

    #[test]
    fn tables() {
        assert_eq!(json::<TableId>(serde_json::json!(100)).unwrap().id(), 100);
        assert_eq!(
            json::<TableId>(serde_json::json!("main")).unwrap().id(),
            254
        );
        assert_eq!(
            json::<TableId>(serde_json::json!(4_000_000_000u32))
                .unwrap()
                .id(),
            4_000_000_000
        );
        let err = json::<TableId>(serde_json::json!(0)).unwrap_err();
        assert!(err.contains("table 0 is not a table"), "{err}");
        assert!(json::<TableId>(serde_json::json!("web")).is_err());
        assert!(json::<TableId>(serde_json::json!(-1)).is_err());
        assert_eq!(
            serde_json::to_value(TableId::MAIN).unwrap(),
            serde_json::json!(254)
        );
    }

    #[test]
    fn port_ranges() {
        let r: PortRange = json(serde_json::json!(80)).unwrap();
        assert_eq!((r.start, r.end), (80, 80));
        let r: PortRange = json(serde_json::json!("1000-2000")).unwrap();
        assert_eq!(r.to_string(), "1000-2000");
        assert!(json::<PortRange>(serde_json::json!("2000-1000")).is_err());
        assert!(json::<PortRange>(serde_json::json!(70000)).is_err());
        assert!(json::<PortRange>(serde_json::json!("a-b")).is_err());
    }

    #[test]
    fn named_numbers() {
        assert_eq!(
            json::<Scope>(serde_json::json!("link")).unwrap(),
            Scope::Link
        );
        assert_eq!(json::<Scope>(serde_json::json!(253)).unwrap(), Scope::Link);
        assert_eq!(
            json::<Scope>(serde_json::json!(7)).unwrap(),
            Scope::Other(7)
        );
        assert_eq!(
            serde_json::to_value(Scope::Other(7)).unwrap(),
            serde_json::json!(7)
        );
        assert_eq!(
            serde_json::to_value(RouteType::Blackhole).unwrap(),
            serde_json::json!("blackhole")
        );
        assert_eq!(
            json::<IpProto>(serde_json::json!("tcp")).unwrap().value(),
            6
        );
        assert_eq!(
            json::<NeighState>(serde_json::json!("permanent"))
                .unwrap()
                .value(),
            0x80
        );
        let err = json::<RouteType>(serde_json::json!("sideways")).unwrap_err();
        assert!(
            err.contains("sideways") && err.contains("blackhole"),
            "{err}"
        );
    }

    #[test]
    fn sysctl_keys_travel_as_given() {
        for key in [
            "net/ipv4/conf/.x./rp_filter",
            "net./ipv4.conf.all.arp_ignore",
            "net/ipv4/ip_forward",
            "net.ipv4.conf.eth0.1.rp_filter",
        ] {
            let Ok(parsed) = key.parse::<SysctlKey>() else {
                continue;
            };
            let json = serde_json::to_string(&parsed).unwrap();
            assert_eq!(json, format!("{key:?}"));
            let back: SysctlKey = serde_json::from_str(&json).unwrap();
            assert_eq!(back, parsed, "{key}");
        }
    }

    #[test]
    fn sysctl_allow_list() {
        let ok = [
            ("net.ipv4.ip_forward", "net/ipv4/ip_forward"),
            ("net.ipv4.conf.all.rp_filter", "net/ipv4/conf/all/rp_filter"),
            (
                "net.ipv4.conf.default.send_redirects",
                "net/ipv4/conf/default/send_redirects",
            ),
            (
                "net.ipv4.conf.eth0.accept_redirects",
                "net/ipv4/conf/eth0/accept_redirects",
            ),
            (
                "net.ipv4.conf.all.secure_redirects",
                "net/ipv4/conf/all/secure_redirects",
            ),
            (
                "net.ipv6.conf.all.accept_redirects",
                "net/ipv6/conf/all/accept_redirects",
            ),
            (
                "net.ipv4.conf.eth0.arp_ignore",
                "net/ipv4/conf/eth0/arp_ignore",
            ),
            (
                "net.ipv4.conf.bond1.vlan180.arp_announce",
                "net/ipv4/conf/bond1.vlan180/arp_announce",
            ),
            (
                "net/ipv4/conf/bond1.vlan180/forwarding",
                "net/ipv4/conf/bond1.vlan180/forwarding",
            ),
            (
                "net.ipv6.conf.default.disable_ipv6",
                "net/ipv6/conf/default/disable_ipv6",
            ),
            ("net.ipv4.ping_group_range", "net/ipv4/ping_group_range"),
            ("net.ipv4.icmp_ratelimit", "net/ipv4/icmp_ratelimit"),
        ];
        for (key, path) in ok {
            assert_eq!(
                key.parse::<SysctlKey>().unwrap().proc_path(),
                Some(path),
                "{key}"
            );
        }
        let key: SysctlKey = "net/ipv4/conf/bond1.vlan180/forwarding".parse().unwrap();
        assert_eq!(key.dotted(), "net.ipv4.conf.bond1.vlan180.forwarding");
        assert!("kernel.core_pattern".parse::<SysctlKey>().is_err());
        for not_allowed in [
            "net.core.somaxconn",
            "net.ipv4.tcp_syncookies",
            "net.ipv6.conf.all.forwarding",
            "net.ipv4.conf.all.log_martians",
        ] {
            let key: SysctlKey = not_allowed.parse().unwrap();
            assert_eq!(key.proc_path(), None, "{not_allowed} must not be allowed");
        }
        for malformed in [
            "net.ipv4.conf..rp_filter",
            "net/ipv4/conf/../../../kernel/rp_filter",
            "net/ipv4/conf/a/b/rp_filter",
            "net/ipv4/conf/../rp_filter",
            "net.ipv4.conf...rp_filter",
            "net.ipv4.conf.0123456789abcdef.rp_filter",
            "net.ipv4 ip_forward",
            "",
        ] {
            assert!(
                malformed.parse::<SysctlKey>().is_err(),
                "{malformed} should be refused"
            );
        }
        assert!("0 2147483647".parse::<SysctlValue>().is_ok());
        assert!(json::<SysctlValue>(serde_json::json!(1)).is_ok());
        assert!("1; reboot".parse::<SysctlValue>().is_err());
        assert!("".parse::<SysctlValue>().is_err());
    }
}
