//! Parsing `ip route show` and `ip rule show` lines into the topology's route and rule
//! definitions.

use std::net::IpAddr;

#[cfg(test)]
use tsim_protocol::net::Scope;
use tsim_protocol::net::{IpProto, RouteProto, RouteType, RuleAction, TableId};
use tsim_protocol::ops::NextHop;
use tsim_protocol::topology::{RouteDef, RuleDef};
use tsim_protocol::{Cidr, IfName};

/// A parsed route line, before its table is decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedRoute {
    /// The route (table not set).
    pub route: RouteDef,
    /// The `table` named on the line, if any (numbers or names, as written).
    pub table: Option<String>,
    /// Whether it is a route the kernel makes by itself (`proto kernel`).
    pub kernel: bool,
}

/// Cleans a line as the old layer did: literal `\n` and `\t` expanded, stray backslashes
/// dropped, whitespace collapsed.
pub fn clean(line: &str) -> String {
    let expanded = line
        .replace("\\n", " ")
        .replace("\\t", " ")
        .replace('\\', " ");
    expanded.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn prefix(text: &str) -> Result<Cidr, String> {
    if text == "default" {
        return Ok(Cidr::new(IpAddr::from([0u8; 4]), 0).expect("valid"));
    }
    if text.contains('/') {
        return text.parse().map_err(|e| format!("{e}"));
    }
    let ip: IpAddr = text
        .parse()
        .map_err(|_| format!("bad destination {text:?}"))?;
    Cidr::new(ip, if ip.is_ipv4() { 32 } else { 128 }).map_err(|e| e.to_string())
}

fn ifname(text: &str) -> Result<IfName, String> {
    let name: String = text
        .split('@')
        .next()
        .unwrap_or(text)
        .chars()
        .take(15)
        .collect();
    name.parse().map_err(|e| format!("{e}"))
}

fn number<T: std::str::FromStr>(key: &str, value: Option<&&str>) -> Result<T, String> {
    let value = value.ok_or(format!("{key} without a value"))?;
    value.parse().map_err(|_| format!("bad {key} {value:?}"))
}

fn tos(value: Option<&&str>) -> Result<u8, String> {
    let value = value.ok_or("tos without a value")?;
    let parsed = match value.strip_prefix("0x") {
        Some(hex) => u8::from_str_radix(hex, 16),
        None => value.parse(),
    };
    parsed.map_err(|_| format!("bad tos {value:?}"))
}

/// Parses one `ip route show` line.
pub fn route(line: &str) -> Result<ParsedRoute, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut i = 0;
    let mut kind = None;
    if let Some(first) = words.first() {
        if let Ok(t) = first.parse::<RouteType>() {
            if !matches!(t, RouteType::Other(_)) && first.parse::<u8>().is_err() {
                kind = Some(t);
                i = 1;
            }
        }
    }
    let dst = prefix(words.get(i).ok_or("an empty route")?)?;
    i += 1;
    let mut r = RouteDef {
        dst,
        table: None,
        policy: false,
        kind: kind.filter(|k| *k != RouteType::Unicast),
        via: None,
        dev: None,
        src: None,
        metric: None,
        tos: None,
        scope: None,
        proto: None,
        onlink: false,
        nexthops: Vec::new(),
    };
    let mut table = None;
    let mut kernel = false;
    while i < words.len() {
        let key = words[i];
        let value = words.get(i + 1);
        let mut takes_value = true;
        match key {
            "via" => {
                r.via = Some(
                    value
                        .ok_or("via without an address")?
                        .parse()
                        .map_err(|e| format!("{e}"))?,
                )
            }
            "dev" => r.dev = Some(ifname(value.ok_or("dev without a name")?)?),
            "src" => {
                r.src = Some(
                    value
                        .ok_or("src without an address")?
                        .parse()
                        .map_err(|e| format!("{e}"))?,
                )
            }
            "metric" | "preference" | "priority" => r.metric = Some(number(key, value)?),
            "tos" | "dsfield" => r.tos = Some(tos(value)?),
            "scope" => {
                r.scope = Some(
                    value
                        .ok_or("scope without a value")?
                        .parse()
                        .map_err(|e| format!("{e}"))?,
                )
            }
            "proto" | "protocol" => {
                let proto: RouteProto = value
                    .ok_or("proto without a value")?
                    .parse()
                    .map_err(|e| format!("{e}"))?;
                kernel = proto == RouteProto::Kernel;
                r.proto = Some(proto);
            }
            "table" => table = Some(value.ok_or("table without a value")?.to_string()),
            "onlink" => {
                r.onlink = true;
                takes_value = false;
            }
            "linkdown" | "dead" | "pervasive" | "offload" | "trap" | "rt_offload" | "rt_trap" => {
                takes_value = false
            }
            "nexthop" => {
                let (hop, used) = nexthop(&words[i + 1..])?;
                r.nexthops.push(hop);
                i += 1 + used;
                continue;
            }
            // Attributes of the running kernel, not of the route's configuration.
            "expires" | "pref" | "mtu" | "advmss" | "rtt" | "rttvar" | "hoplimit" | "realm"
            | "realms" | "error" => {}
            other => return Err(format!("unknown route attribute {other:?}")),
        }
        i += if takes_value { 2 } else { 1 };
    }
    Ok(ParsedRoute {
        route: r,
        table,
        kernel,
    })
}

/// "via X dev Y weight W [onlink]" up to the next `nexthop`.
fn nexthop(words: &[&str]) -> Result<(NextHop, usize), String> {
    let mut hop = NextHop {
        via: None,
        dev: None,
        weight: None,
        onlink: false,
    };
    let mut i = 0;
    while i < words.len() && words[i] != "nexthop" {
        let value = words.get(i + 1);
        match words[i] {
            "via" => {
                hop.via = Some(
                    value
                        .ok_or("via without an address")?
                        .parse()
                        .map_err(|e| format!("{e}"))?,
                )
            }
            "dev" => hop.dev = Some(ifname(value.ok_or("dev without a name")?)?),
            "weight" => hop.weight = Some(number("weight", value)?),
            "onlink" => {
                hop.onlink = true;
                i += 1;
                continue;
            }
            "linkdown" | "dead" => {
                i += 1;
                continue;
            }
            other => return Err(format!("unknown nexthop attribute {other:?}")),
        }
        i += 2;
    }
    Ok((hop, i))
}

/// A parsed rule line, before its table name is resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedRule {
    /// The rule (table not set).
    pub rule: RuleDef,
    /// The table to look up, as written (a number or a name).
    pub table: Option<String>,
}

/// Whether a rule line is one of the kernel's defaults (local, main, default).
pub fn default_rule(line: &str) -> bool {
    let pref = line.split(':').next().unwrap_or("").trim();
    pref == "0"
        || line.contains("lookup local")
        || (pref == "32766" && line.ends_with("lookup main"))
        || (pref == "32767" && line.ends_with("lookup default"))
}

/// Parses one `ip rule show` line, "PREF:\tSELECTORS ACTION".
pub fn rule(line: &str) -> Result<ParsedRule, String> {
    let (pref, spec) = line.split_once(':').ok_or("expected PREF: SELECTORS")?;
    let pref: u32 = pref
        .trim()
        .parse()
        .map_err(|_| format!("bad preference {:?}", pref.trim()))?;
    let words: Vec<&str> = spec.split_whitespace().collect();
    let mut r = RuleDef {
        family: None,
        pref: Some(pref),
        from: None,
        to: None,
        iif: None,
        oif: None,
        fwmark: None,
        fwmask: None,
        tos: None,
        dport: None,
        sport: None,
        ipproto: None,
        table: None,
        action: RuleAction::Lookup,
    };
    let mut table = None;
    let mut i = 0;
    while i < words.len() {
        let key = words[i];
        let value = words.get(i + 1);
        let mut takes_value = true;
        let v = || value.ok_or(format!("{key} without a value"));
        match key {
            "from" | "to" => {
                let text = v()?;
                if *text != "all" {
                    let cidr = prefix(text)?;
                    if key == "from" {
                        r.from = Some(cidr)
                    } else {
                        r.to = Some(cidr)
                    }
                }
            }
            "iif" => r.iif = Some(ifname(v()?)?),
            "oif" => r.oif = Some(ifname(v()?)?),
            "fwmark" => {
                let text = v()?;
                let (mark, mask) = match text.split_once('/') {
                    Some((m, k)) => (m, Some(k)),
                    None => (*text, None),
                };
                let hex = |s: &str| match s.strip_prefix("0x") {
                    Some(h) => u32::from_str_radix(h, 16),
                    None => s.parse(),
                };
                r.fwmark = Some(hex(mark).map_err(|_| format!("bad fwmark {text:?}"))?);
                r.fwmask = mask
                    .map(hex)
                    .transpose()
                    .map_err(|_| format!("bad fwmark mask {text:?}"))?;
            }
            "tos" | "dsfield" => r.tos = Some(tos(value)?),
            "dport" => r.dport = Some(v()?.parse().map_err(|e| format!("{e}"))?),
            "sport" => r.sport = Some(v()?.parse().map_err(|e| format!("{e}"))?),
            "ipproto" => r.ipproto = Some(v()?.parse::<IpProto>().map_err(|e| format!("{e}"))?),
            "lookup" | "table" => table = Some(v()?.to_string()),
            "blackhole" | "unreachable" | "prohibit" => {
                r.action = match key {
                    "blackhole" => RuleAction::Blackhole,
                    "unreachable" => RuleAction::Unreachable,
                    _ => RuleAction::Prohibit,
                };
                takes_value = false;
            }
            "proto" => {}
            other => return Err(format!("unsupported rule selector or action {other:?}")),
        }
        i += if takes_value { 2 } else { 1 };
    }
    if r.action == RuleAction::Lookup && table.is_none() {
        return Err("a rule without an action or a table".into());
    }
    Ok(ParsedRule { rule: r, table })
}

/// A table named by number, or by one of the kernel's names.
pub fn table_id(text: &str) -> Option<TableId> {
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_lines() {
        let r = route("default via 203.0.113.1 dev eth0 metric 100").unwrap();
        assert_eq!(r.route.dst.to_string(), "0.0.0.0/0");
        assert_eq!(r.route.via.unwrap().to_string(), "203.0.113.1");
        assert_eq!(
            (r.route.dev.as_ref().unwrap().as_str(), r.route.metric),
            ("eth0", Some(100))
        );
        let k = route("10.1.1.0/24 dev eth1 proto kernel scope link src 10.1.1.1").unwrap();
        assert!(k.kernel);
        assert_eq!(k.route.scope, Some(Scope::Link));
        let b = route("blackhole 10.66.0.0/16 table 100").unwrap();
        assert_eq!(
            (b.route.kind, b.table.as_deref()),
            (Some(RouteType::Blackhole), Some("100"))
        );
        let h = route("10.9.9.9 via 10.1.1.2 dev eth0 tos 0x10").unwrap();
        assert_eq!(
            (h.route.dst.to_string(), h.route.tos),
            ("10.9.9.9/32".into(), Some(16))
        );
        let m = route("10.50.0.0/16 proto static metric 20 nexthop via 10.1.1.2 dev eth0 weight 1 nexthop via 10.7.7.2 dev br9 weight 3").unwrap();
        assert_eq!(m.route.nexthops.len(), 2);
        assert_eq!(m.route.nexthops[1].weight, Some(3));
        assert!(route("10.0.0.0/8 frobnicate 3").is_err());
        assert!(route("").is_err());
    }

    #[test]
    fn rule_lines() {
        let r = rule("50:\tfrom 10.1.1.0/24 lookup priority_table").unwrap();
        assert_eq!(
            (r.rule.pref, r.table.as_deref()),
            (Some(50), Some("priority_table"))
        );
        assert_eq!(r.rule.from.unwrap().to_string(), "10.1.1.0/24");
        let r = rule("66:\tfrom all fwmark 0x1/0xff lookup 100").unwrap();
        assert_eq!((r.rule.fwmark, r.rule.fwmask), (Some(1), Some(255)));
        let r = rule("57:\tfrom all dport 3306 lookup database_table").unwrap();
        assert_eq!(r.rule.dport.unwrap().to_string(), "3306");
        let r = rule("77:\tfrom all ipproto icmp lookup priority_table").unwrap();
        assert_eq!(r.rule.ipproto, Some(IpProto::Icmp));
        let r = rule("69:\tfrom all tos 0x10 lookup priority_table").unwrap();
        assert_eq!(r.rule.tos, Some(16));
        let r = rule("90:\tfrom all to 10.66.0.0/16 blackhole").unwrap();
        assert_eq!((r.rule.action, r.table), (RuleAction::Blackhole, None));
        assert!(default_rule("0:\tfrom all lookup local"));
        assert!(default_rule("32766:\tfrom all lookup main"));
        assert!(!default_rule("32765:\tfrom all lookup main"));
        assert!(rule("70:\tfrom all goto 80").is_err());
    }
}
