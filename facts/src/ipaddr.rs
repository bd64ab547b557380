//! Parsing `ip addr show` output (the `interfaces` section): links and their IPv4 addresses.

use std::net::IpAddr;

use tsim_protocol::Cidr;
use tsim_protocol::net::Scope;

/// An interface as the facts describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfaceFacts {
    /// Its name, without any `@peer` suffix.
    pub name: String,
    /// Whether its flags include `UP`.
    pub up: bool,
    /// Its IPv4 addresses, in order.
    pub addrs: Vec<AddrFacts>,
    /// The line it is described on.
    pub line: usize,
}

/// An IPv4 address of an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrFacts {
    /// Address and prefix.
    pub cidr: Cidr,
    /// Broadcast.
    pub broadcast: Option<IpAddr>,
    /// Scope.
    pub scope: Option<Scope>,
    /// Marked `secondary`.
    pub secondary: bool,
}

/// Parses the lines of an `ip addr show` section. Lines it does not understand are skipped;
/// an `inet` line that does not parse is reported in `problems`.
pub fn parse(lines: &[(usize, String)], problems: &mut Vec<(usize, String)>) -> Vec<IfaceFacts> {
    let mut out: Vec<IfaceFacts> = Vec::new();
    for (number, line) in lines {
        let trimmed = line.trim_start();
        if let Some(iface) = link_line(line) {
            out.push(IfaceFacts {
                line: *number,
                ..iface
            });
            continue;
        }
        let words: Vec<&str> = trimmed.split_whitespace().collect();
        // `ip -o addr show`: "2: eth0    inet 10.1.1.1/24 brd … scope global eth0\ …"
        let (words, owner) = match words.as_slice() {
            [index, name, rest @ ..]
                if index.ends_with(':') && index[..index.len() - 1].parse::<u32>().is_ok() =>
            {
                (rest.to_vec(), Some(name.trim_end_matches(':')))
            }
            _ => (words, None),
        };
        if words.first() != Some(&"inet") {
            continue;
        }
        match inet(&words) {
            Ok(addr) => {
                let target = match owner {
                    Some(name) => {
                        if out.last().is_none_or(|i| i.name != name) {
                            out.push(IfaceFacts {
                                name: name.to_owned(),
                                up: true,
                                addrs: Vec::new(),
                                line: *number,
                            });
                        }
                        out.last_mut()
                    }
                    None => out.last_mut(),
                };
                match target {
                    Some(iface) => iface.addrs.push(addr),
                    None => problems.push((*number, "an address before any interface".into())),
                }
            }
            Err(why) => problems.push((*number, why)),
        }
    }
    out
}

/// "2: eth0@if5: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 …"
fn link_line(line: &str) -> Option<IfaceFacts> {
    let (index, rest) = line.split_once(": ")?;
    index.trim().parse::<u32>().ok()?;
    let (name, rest) = rest.split_once(": ")?;
    let flags = rest.strip_prefix('<')?.split('>').next()?;
    let name = name.split('@').next()?.trim();
    if name.is_empty() {
        return None;
    }
    Some(IfaceFacts {
        name: name.to_owned(),
        up: flags.split(',').any(|f| f == "UP"),
        addrs: Vec::new(),
        line: 0,
    })
}

/// "inet 10.1.1.1/24 brd 10.1.1.255 scope global secondary eth0"
fn inet(words: &[&str]) -> Result<AddrFacts, String> {
    let cidr_text = words.get(1).ok_or("an inet line without an address")?;
    let cidr: Cidr = if cidr_text.contains('/') {
        cidr_text.parse().map_err(|e| format!("{e}"))?
    } else {
        let ip: IpAddr = cidr_text
            .parse()
            .map_err(|_| format!("bad address {cidr_text:?}"))?;
        Cidr::new(ip, 32).map_err(|e| e.to_string())?
    };
    let mut addr = AddrFacts {
        cidr,
        broadcast: None,
        scope: None,
        secondary: false,
    };
    let mut i = 2;
    while i < words.len() {
        match words[i] {
            "brd" => {
                addr.broadcast = words.get(i + 1).and_then(|b| b.parse().ok());
                i += 1;
            }
            "scope" => {
                addr.scope = words.get(i + 1).and_then(|s| s.parse().ok());
                i += 1;
            }
            "secondary" => addr.secondary = true,
            _ => {}
        }
        i += 1;
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<(usize, String)> {
        text.lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.to_owned()))
            .collect()
    }

    #[test]
    fn links_and_addresses() {
        let text = "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN\n    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n    inet 127.0.0.1/8 scope host lo\n2: eth0@if7: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc fq_codel state UP\n    inet 203.0.113.10/24 brd 203.0.113.255 scope global eth0\n    inet 203.0.113.11/24 scope global secondary eth0\n    inet6 fe80::1/64 scope link\n3: wg0: <POINTOPOINT,NOARP> mtu 1420\n    inet 10.100.1.1/24 scope global wg0\n";
        let mut problems = Vec::new();
        let ifaces = parse(&lines(text), &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(ifaces.len(), 3);
        assert_eq!(ifaces[1].name, "eth0");
        assert!(ifaces[1].up && !ifaces[2].up);
        assert_eq!(ifaces[1].addrs.len(), 2);
        assert_eq!(
            ifaces[1].addrs[0].broadcast,
            Some("203.0.113.255".parse().unwrap())
        );
        assert!(ifaces[1].addrs[1].secondary);
        assert_eq!(ifaces[2].addrs[0].scope, Some(Scope::Global));
        assert_eq!(ifaces[2].line, 8);
    }

    #[test]
    fn one_line_format_and_problems() {
        let text = "2: eth0    inet 10.1.1.1/24 brd 10.1.1.255 scope global eth0\\       valid_lft forever\n    inet 999.1.1.1/24 scope global eth0\n";
        let mut problems = Vec::new();
        let ifaces = parse(&lines(text), &mut problems);
        assert_eq!(ifaces[0].name, "eth0");
        assert_eq!(ifaces[0].addrs[0].cidr.to_string(), "10.1.1.1/24");
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].0, 2);
    }
}
