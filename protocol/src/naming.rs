//! The names the helper and the facts compiler derive from other names, in one place: the
//! veth ends in the hidden namespace and the bridges of IPv6 subnets. They are part of the
//! contract between the two (a host's end is found by its name; re-applying the same facts
//! must give the same names), so their hash and formats never change.

use std::net::IpAddr;

use crate::{Cidr, IfName, NsName};

/// FNV-1a, 64 bits: a small, stable hash for names.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `prefix` and 12 hex digits (48 bits) of the hash of `key`: at most 15 bytes, a valid
/// interface name for prefixes of up to three letters.
fn hashed(prefix: &str, key: &[u8]) -> IfName {
    format!("{prefix}{:012x}", fnv1a(key) & 0xffff_ffff_ffff)
        .parse()
        .expect("a valid interface name")
}

/// A host's veth end in the hidden namespace: `h` and the hash of its name.
pub fn host_end(host: &NsName) -> IfName {
    hashed("h", host.as_str().as_bytes())
}

/// A router interface's veth end in the hidden namespace: `v` and the hash of
/// `router/interface`.
pub fn router_end(router: &str, interface: &str) -> IfName {
    hashed("v", format!("{router}/{interface}").as_bytes())
}

/// A pooled namespace's veth end, parked in the hidden namespace: `p` and the hash of its
/// name.
pub fn pool_end(ns: &NsName) -> IfName {
    hashed("p", ns.as_str().as_bytes())
}

/// The bridge of a subnet: `br-`, the network in hex, `-` and the prefix for IPv4; `br6`
/// and the hash of the network's bytes for IPv6.
pub fn bridge(subnet: &Cidr) -> IfName {
    match subnet.network().addr() {
        IpAddr::V4(a) => format!("br-{:08x}-{}", u32::from(a), subnet.prefix())
            .parse()
            .expect("a valid interface name"),
        IpAddr::V6(a) => hashed("br6", &a.octets()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names as every earlier version made them (a change here renames what exists).
    #[test]
    fn names_never_change() {
        assert_eq!(
            host_end(&"source-1".parse().unwrap()).as_str(),
            "h52b0e5d44efa"
        );
        assert_eq!(router_end("hq-gw", "eth1").as_str(), "vd0be557d8eca");
        assert_eq!(
            pool_end(&"tsim-pool-1".parse().unwrap()).as_str(),
            "p7189bc1620f9"
        );
        assert_eq!(
            bridge(&"10.1.1.0/24".parse().unwrap()).as_str(),
            "br-0a010100-24"
        );
        assert_eq!(
            bridge(&"2001:db8::/64".parse().unwrap()).as_str(),
            "br662b7a3be1dc7"
        );
        assert_ne!(router_end("hq-gw", "eth1"), router_end("hq-gw", "eth2"));
    }
}
