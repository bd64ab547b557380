//! Validated newtypes for every name and address that crosses the wire.
//!
//! Each type checks its value in `FromStr`/`TryFrom<String>` and deserializes through that
//! check (`#[serde(try_from = "String")]`), so an invalid value cannot reach the helper's
//! privileged code: decoding fails first, with an error that names the value.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize, Serializer};

/// Longest namespace name accepted, in characters (all ASCII).
pub const NS_NAME_MAX: usize = 64;
/// Longest interface name accepted, in bytes (the kernel's `IFNAMSIZ` minus the NUL).
pub const IF_NAME_MAX: usize = 15;
/// Longest tag accepted, in characters (all ASCII).
pub const TAG_MAX: usize = 64;

/// How a value failed validation; its `Display` names the kind, the value and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {shown}: {reason}", shown = show(value))]
pub struct InvalidValue {
    /// What kind of value it was ("namespace name", "CIDR", ...).
    pub what: &'static str,
    /// The offending value, as received.
    pub value: String,
    /// The rule it broke.
    pub reason: &'static str,
}

impl InvalidValue {
    fn new(what: &'static str, value: &str, reason: &'static str) -> Self {
        Self {
            what,
            value: value.to_owned(),
            reason,
        }
    }
}

/// Quote a value for an error message: escaped, and cut short if it is long.
fn show(value: &str) -> String {
    const SHOWN: usize = 72;
    let count = value.chars().count();
    if count <= SHOWN {
        format!("{value:?}")
    } else {
        let head: String = value.chars().take(SHOWN).collect();
        format!("{head:?}… ({count} characters)")
    }
}

/// Implements the string plumbing shared by the validated newtypes.
macro_rules! string_newtype {
    ($ty:ident) => {
        impl $ty {
            /// The validated value.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $ty {
            type Error = InvalidValue;
            fn try_from(value: String) -> Result<Self, InvalidValue> {
                Self::check(&value)?;
                Ok(Self(value))
            }
        }

        impl TryFrom<&str> for $ty {
            type Error = InvalidValue;
            fn try_from(value: &str) -> Result<Self, InvalidValue> {
                Self::check(value)?;
                Ok(Self(value.to_owned()))
            }
        }

        impl FromStr for $ty {
            type Err = InvalidValue;
            fn from_str(value: &str) -> Result<Self, InvalidValue> {
                Self::try_from(value)
            }
        }

        impl From<$ty> for String {
            fn from(value: $ty) -> String {
                value.0
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }
    };
}

/// A network namespace name: 1–64 characters of `[A-Za-z0-9_.-]`, not `.` or `..`, and not
/// starting with `-` (so it can never be read as an option by `ip netns exec`).
///
/// It is also the file name under `/run/netns`, so the rules keep it a single safe path
/// component.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct NsName(String);
string_newtype!(NsName);

impl NsName {
    fn check(value: &str) -> Result<(), InvalidValue> {
        let bad = |reason| Err(InvalidValue::new("namespace name", value, reason));
        if value.is_empty() {
            return bad("it is empty");
        }
        if value.len() > NS_NAME_MAX {
            return bad("it is longer than 64 characters");
        }
        if value == "." || value == ".." {
            return bad("`.` and `..` are not names");
        }
        if value.starts_with('-') {
            return bad("it must not start with `-`");
        }
        if !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        {
            return bad("only A-Z a-z 0-9 _ . - are allowed");
        }
        Ok(())
    }
}

/// A Linux interface name, by the kernel's `dev_valid_name` rules plus a safe charset:
/// 1–15 bytes of printable ASCII, not `.` or `..`, without `/`, `:`, `%` or whitespace.
///
/// `%` is refused because the kernel expands `%d` in names it is asked to create.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct IfName(String);
string_newtype!(IfName);

impl IfName {
    fn check(value: &str) -> Result<(), InvalidValue> {
        let bad = |reason| Err(InvalidValue::new("interface name", value, reason));
        if value.is_empty() {
            return bad("it is empty");
        }
        if value.len() > IF_NAME_MAX {
            return bad("it is longer than 15 bytes");
        }
        if value == "." || value == ".." {
            return bad("`.` and `..` are not names");
        }
        if !value
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'/' | b':' | b'%'))
        {
            return bad("only printable ASCII without `/`, `:`, `%` or spaces is allowed");
        }
        Ok(())
    }
}

/// A free-form label for grouping objects (a job id, a user name): 1–64 characters of
/// `[A-Za-z0-9_.:@+=/-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct Tag(String);
string_newtype!(Tag);

impl Tag {
    fn check(value: &str) -> Result<(), InvalidValue> {
        let bad = |reason| Err(InvalidValue::new("tag", value, reason));
        if value.is_empty() {
            return bad("it is empty");
        }
        if value.len() > TAG_MAX {
            return bad("it is longer than 64 characters");
        }
        let ok = |b: u8| b.is_ascii_alphanumeric() || b"_.:@+=/-".contains(&b);
        if !value.bytes().all(ok) {
            return bad("only A-Z a-z 0-9 and _ . : @ + = / - are allowed");
        }
        Ok(())
    }
}

/// An IPv4 or IPv6 address with a prefix length, such as `10.1.1.100/24` or `2001:db8::1/64`.
///
/// Host bits may be set (it is an interface address, not only a network). The prefix is
/// required. On the wire it is the canonical text form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Builds a CIDR from its parts, checking the prefix length against the family.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, InvalidValue> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            let value = format!("{addr}/{prefix}");
            let reason = if addr.is_ipv4() {
                "an IPv4 prefix is at most 32"
            } else {
                "an IPv6 prefix is at most 128"
            };
            return Err(InvalidValue::new("CIDR", &value, reason));
        }
        Ok(Self { addr, prefix })
    }

    /// The address, host bits included.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The network: the address with its host bits cleared.
    pub fn network(&self) -> Cidr {
        let addr = match self.addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4((u32::from(a) & mask).into())
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6((u128::from(a) & mask).into())
            }
        };
        Cidr {
            addr,
            prefix: self.prefix,
        }
    }

    /// Whether `ip` lies inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match Cidr::new(ip, self.prefix) {
            Ok(other) => other.network().addr == self.network().addr,
            Err(_) => false,
        }
    }

    fn parse(value: &str) -> Result<Self, InvalidValue> {
        let bad = |reason| InvalidValue::new("CIDR", value, reason);
        let (addr, prefix) = value
            .split_once('/')
            .ok_or_else(|| bad("expected ADDRESS/PREFIX, such as 10.1.1.100/24"))?;
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| bad("the address is not an IP address"))?;
        if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("the prefix length is not a number"));
        }
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| bad("the prefix length is not a number"))?;
        Cidr::new(addr, prefix).map_err(|e| bad(e.reason))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = InvalidValue;
    fn from_str(value: &str) -> Result<Self, InvalidValue> {
        Cidr::parse(value)
    }
}

impl TryFrom<String> for Cidr {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, InvalidValue> {
        Cidr::parse(&value)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ns_names() {
        for ok in ["a", "hq-gw", "source-1", "A.b_c-9", &"x".repeat(64), "..."] {
            assert!(ok.parse::<NsName>().is_ok(), "{ok} should be valid");
        }
        let long = "x".repeat(65);
        let bad = [
            "", ".", "..", "../x", "a/b", "a\0b", "a b", "-x", "é", &long, "a\nb",
        ];
        for value in bad {
            let err = value.parse::<NsName>().unwrap_err();
            assert_eq!(err.what, "namespace name");
            assert_eq!(err.value, value);
        }
    }

    #[test]
    fn ns_name_error_names_the_value() {
        let err = "../x".parse::<NsName>().unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid namespace name \"../x\": only A-Z a-z 0-9 _ . - are allowed"
        );
        let err = "a\0b".parse::<NsName>().unwrap_err().to_string();
        assert!(err.contains("\"a\\0b\""), "{err}");
        let err = "y".repeat(300).parse::<NsName>().unwrap_err().to_string();
        assert!(err.contains("(300 characters)"), "{err}");
    }

    #[test]
    fn if_names() {
        for ok in [
            "eth0",
            "bond1.vlan180",
            "wg0",
            "a",
            "123456789012345",
            "veth-a_b@c",
        ] {
            assert!(ok.parse::<IfName>().is_ok(), "{ok} should be valid");
        }
        for bad in [
            "",
            ".",
            "..",
            "1234567890123456",
            "a/b",
            "a:b",
            "eth%d",
            "a b",
            "a\tb",
            "é",
        ] {
            assert!(bad.parse::<IfName>().is_err(), "{bad:?} should be invalid");
        }
    }

    #[test]
    fn tags() {
        assert!("job-42".parse::<Tag>().is_ok());
        assert!("wsgi:alice@web/1".parse::<Tag>().is_ok());
        assert!("".parse::<Tag>().is_err());
        assert!("a b".parse::<Tag>().is_err());
        assert!("t".repeat(65).parse::<Tag>().is_err());
    }

    #[test]
    fn cidrs() {
        let c: Cidr = "10.1.1.100/24".parse().unwrap();
        assert_eq!(c.to_string(), "10.1.1.100/24");
        assert_eq!(c.network().to_string(), "10.1.1.0/24");
        assert!(c.contains("10.1.1.7".parse().unwrap()));
        assert!(!c.contains("10.1.2.7".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
        let v6: Cidr = "2001:db8::1/64".parse().unwrap();
        assert_eq!(v6.network().to_string(), "2001:db8::/64");
        assert_eq!(
            "0.0.0.0/0".parse::<Cidr>().unwrap().network().to_string(),
            "0.0.0.0/0"
        );
        assert_eq!(
            "1.2.3.4/32".parse::<Cidr>().unwrap().network().to_string(),
            "1.2.3.4/32"
        );
        let bad = [
            "invalid-ip",
            "999.999.999.999/24",
            "10.1.1.1/99",
            "10.1.1.1",
            "",
            "not-an-ip/24",
            "10.1.1.1/",
            "10.1.1.1/+8",
            "10.1.1.1/ 8",
            "::1/129",
            "10.1.1.1/0024",
        ];
        for value in bad {
            let err = value.parse::<Cidr>().unwrap_err();
            assert_eq!(err.what, "CIDR", "{value}");
            assert!(err.to_string().contains(&format!("{value:?}")), "{err}");
        }
    }
}
