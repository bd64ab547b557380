//! `iptables-save` and `ipset save` dumps taken apart: tables, chains with their policies
//! and counters, rules in order; sets with their members. Whitespace is collapsed, comments
//! and counters are kept apart from the rules, so that two dumps compare by content.

use serde::Serialize;

/// One netfilter table of an `iptables-save` dump.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableDump {
    /// `filter`, `nat`, ...
    pub name: String,
    /// Its chains, in the order of the dump.
    pub chains: Vec<ChainDump>,
}

/// One chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainDump {
    /// Its name.
    pub name: String,
    /// The policy of a built-in chain (`ACCEPT`, `DROP`); `None` for a user chain.
    pub policy: Option<String>,
    /// Packets counted by the policy (with `-c` dumps; 0 otherwise).
    pub packets: u64,
    /// Bytes counted by the policy.
    pub bytes: u64,
    /// Its rules, in order.
    pub rules: Vec<RuleDump>,
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleDump {
    /// The rule without `-A CHAIN` and counters, whitespace collapsed.
    pub spec: String,
    /// Packets it matched (with `-c` dumps; 0 otherwise).
    pub packets: u64,
    /// Bytes it matched.
    pub bytes: u64,
}

impl TableDump {
    /// Whether the table holds nothing: only built-in chains, all ACCEPT, no rules. Such a
    /// table behaves as if it were absent.
    pub fn is_trivial(&self) -> bool {
        self.chains
            .iter()
            .all(|c| c.policy.as_deref() == Some("ACCEPT") && c.rules.is_empty())
    }

    /// The chain called `name`.
    pub fn chain(&self, name: &str) -> Option<&ChainDump> {
        self.chains.iter().find(|c| c.name == name)
    }
}

/// `[packets:bytes]`.
fn counters(word: &str) -> Option<(u64, u64)> {
    let inner = word.strip_prefix('[')?.strip_suffix(']')?;
    let (p, b) = inner.split_once(':')?;
    Some((p.parse().ok()?, b.parse().ok()?))
}

/// Takes an `iptables-save` dump (with or without `-c`) apart. Lines it does not understand
/// become rules of a chain named after their first word, so that they still compare.
pub fn parse_iptables(text: &str) -> Vec<TableDump> {
    let mut tables: Vec<TableDump> = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(first) = words.first() else { continue };
        if first.starts_with('#') || *first == "COMMIT" {
            continue;
        }
        if let Some(name) = first.strip_prefix('*') {
            tables.push(TableDump {
                name: name.to_owned(),
                chains: Vec::new(),
            });
            continue;
        }
        let Some(table) = tables.last_mut() else {
            continue;
        };
        if let Some(name) = first.strip_prefix(':') {
            let policy = words.get(1).filter(|p| **p != "-").map(|p| (*p).to_owned());
            let (packets, bytes) = words.get(2).and_then(|w| counters(w)).unwrap_or((0, 0));
            table.chains.push(ChainDump {
                name: name.to_owned(),
                policy,
                packets,
                bytes,
                rules: Vec::new(),
            });
            continue;
        }
        let (packets, bytes, rest) = match counters(first) {
            Some((p, b)) => (p, b, &words[1..]),
            None => (0, 0, &words[..]),
        };
        let (chain, spec) = match rest {
            ["-A", chain, spec @ ..] => ((*chain).to_owned(), spec.join(" ")),
            other => (
                other.first().copied().unwrap_or_default().to_owned(),
                other.join(" "),
            ),
        };
        let rule = RuleDump {
            spec,
            packets,
            bytes,
        };
        match table.chains.iter_mut().find(|c| c.name == chain) {
            Some(c) => c.rules.push(rule),
            None => table.chains.push(ChainDump {
                name: chain,
                policy: None,
                packets: 0,
                bytes: 0,
                rules: vec![rule],
            }),
        }
    }
    tables
}

/// One set of an `ipset save` dump.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetDump {
    /// Its name.
    pub name: String,
    /// Its type (`hash:ip`, ...).
    pub kind: String,
    /// The rest of its `create` line.
    pub options: String,
    /// Its members, each the rest of its `add` line, whitespace collapsed.
    pub members: Vec<String>,
}

/// Takes an `ipset save` dump apart. Members of a set with no `create` line are dropped.
pub fn parse_ipset(text: &str) -> Vec<SetDump> {
    let mut sets: Vec<SetDump> = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["create", name, kind, options @ ..] => sets.push(SetDump {
                name: (*name).to_owned(),
                kind: (*kind).to_owned(),
                options: options.join(" "),
                members: Vec::new(),
            }),
            ["add", name, entry @ ..] if !entry.is_empty() => {
                if let Some(set) = sets.iter_mut().find(|s| s.name == *name) {
                    set.members.push(entry.join(" "));
                }
            }
            _ => {}
        }
    }
    sets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iptables_dump_with_counters() {
        let text = "# Generated by iptables-save\n*filter\n:INPUT DROP [5:300]\n:FORWARD ACCEPT [0:0]\n:MINE - [0:0]\n[3:180] -A INPUT -i lo   -j ACCEPT\n-A MINE -j DROP\nCOMMIT\n*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n";
        let tables = parse_iptables(text);
        assert_eq!(tables.len(), 2);
        let filter = &tables[0];
        let input = filter.chain("INPUT").unwrap();
        assert_eq!(input.policy.as_deref(), Some("DROP"));
        assert_eq!((input.packets, input.bytes), (5, 300));
        assert_eq!(input.rules[0].spec, "-i lo -j ACCEPT");
        assert_eq!((input.rules[0].packets, input.rules[0].bytes), (3, 180));
        assert_eq!(filter.chain("MINE").unwrap().policy, None);
        assert_eq!(filter.chain("MINE").unwrap().rules[0].spec, "-j DROP");
        assert!(!filter.is_trivial());
        assert!(tables[1].is_trivial());
    }

    #[test]
    fn ipset_dump() {
        let text = "create a hash:ip family inet hashsize 1024 maxelem 65536\nadd a 10.0.0.1\nadd  a 10.0.0.2 comment \"x\"\nadd b 1.1.1.1\ncreate c list:set size 8\n";
        let sets = parse_ipset(text);
        assert_eq!(sets.len(), 2);
        assert_eq!(sets[0].kind, "hash:ip");
        assert_eq!(sets[0].members, ["10.0.0.1", "10.0.0.2 comment \"x\""]);
        assert_eq!(sets[1].options, "size 8");
    }
}

/// Protocols whose match module `iptables` loads by itself after `-p`.
const IMPLICIT_MATCHES: [&str; 6] = ["tcp", "udp", "icmp", "udplite", "sctp", "dccp"];

/// ICMP type names `iptables-save` prints as numbers.
const ICMP_TYPES: [(&str, &str); 8] = [
    ("echo-reply", "0"),
    ("pong", "0"),
    ("destination-unreachable", "3"),
    ("source-quench", "4"),
    ("redirect", "5"),
    ("echo-request", "8"),
    ("ping", "8"),
    ("time-exceeded", "11"),
];

/// A rule spelled as `iptables-save` prints it, so that rules written by hand compare with
/// the kernel's: the implicit protocol match made explicit (`-p tcp --dport 22` becomes
/// `-p tcp -m tcp --dport 22`), the default `--log-level 4` dropped, `--set-mark V[/M]`
/// written `--set-xmark V/M'`, and common ICMP type names as numbers.
pub fn canonical_rule(spec: &str) -> String {
    let spec = truncate_log_prefix(spec);
    let words: Vec<&str> = spec.split_whitespace().collect();
    let mut out: Vec<String> = Vec::with_capacity(words.len() + 2);
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        match w {
            "-p" | "--protocol" if i + 1 < words.len() => {
                let proto = words[i + 1];
                out.push("-p".into());
                out.push(proto.into());
                i += 2;
                let next = words.get(i).copied().unwrap_or("");
                let next = if next == "!" {
                    words.get(i + 1).copied().unwrap_or("")
                } else {
                    next
                };
                if IMPLICIT_MATCHES.contains(&proto) && next.starts_with("--") {
                    out.push("-m".into());
                    out.push(proto.into());
                }
                continue;
            }
            "--log-level" if matches!(words.get(i + 1), Some(&"4") | Some(&"warning")) => {
                i += 2;
                continue;
            }
            "--set-mark" if i + 1 < words.len() => {
                let (value, mask) = match words[i + 1].split_once('/') {
                    Some((v, m)) => (number(v), number(m)),
                    None => (number(words[i + 1]), Some(u32::MAX)),
                };
                match (value, mask) {
                    (Some(v), Some(m)) => {
                        out.push("--set-xmark".into());
                        out.push(format!("{v:#x}/{:#x}", m | v));
                    }
                    _ => {
                        out.push(w.into());
                        out.push(words[i + 1].into());
                    }
                }
                i += 2;
                continue;
            }
            "--icmp-type" if i + 1 < words.len() => {
                let t = words[i + 1];
                let t = ICMP_TYPES
                    .iter()
                    .find(|(name, _)| *name == t)
                    .map_or(t, |(_, n)| n);
                out.push(w.into());
                out.push(t.into());
                i += 2;
                continue;
            }
            _ => out.push(w.into()),
        }
        i += 1;
    }
    out.join(" ")
}

/// The longest `--log-prefix` the kernel keeps.
const LOG_PREFIX_MAX: usize = 29;

/// Cuts a quoted `--log-prefix` to what the kernel keeps.
fn truncate_log_prefix(spec: &str) -> String {
    const KEY: &str = "--log-prefix \"";
    let Some(at) = spec.find(KEY) else {
        return spec.to_owned();
    };
    let start = at + KEY.len();
    let Some(len) = spec[start..].find('"') else {
        return spec.to_owned();
    };
    let prefix = &spec[start..start + len];
    if prefix.len() <= LOG_PREFIX_MAX {
        return spec.to_owned();
    }
    let mut cut = LOG_PREFIX_MAX;
    while !prefix.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(
        "{}{}{}",
        &spec[..start],
        &prefix[..cut],
        &spec[start + len..]
    )
}

/// A number in decimal or `0x` hex.
fn number(s: &str) -> Option<u32> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

#[cfg(test)]
mod canonical_tests {
    use super::canonical_rule;

    #[test]
    fn hand_written_rules_take_the_saved_spelling() {
        let cases = [
            (
                "-s 10.1.0.0/16 -p tcp --dport 22 -m conntrack --ctstate NEW -j ACCEPT",
                "-s 10.1.0.0/16 -p tcp -m tcp --dport 22 -m conntrack --ctstate NEW -j ACCEPT",
            ),
            (
                "-p icmp --icmp-type echo-request -j ACCEPT",
                "-p icmp -m icmp --icmp-type 8 -j ACCEPT",
            ),
            (
                "-p udp ! --dport 53 -j DROP",
                "-p udp -m udp ! --dport 53 -j DROP",
            ),
            (
                "-p tcp -m tcp --dport 22 -j ACCEPT",
                "-p tcp -m tcp --dport 22 -j ACCEPT",
            ),
            ("-p icmp -j ACCEPT", "-p icmp -j ACCEPT"),
            (
                "-i lo -j LOG --log-prefix \"X: \" --log-level 4",
                "-i lo -j LOG --log-prefix \"X: \"",
            ),
            ("-j LOG --log-level 6", "-j LOG --log-level 6"),
            (
                "-p tcp --dport 22 -j MARK --set-mark 0x1",
                "-p tcp -m tcp --dport 22 -j MARK --set-xmark 0x1/0xffffffff",
            ),
            ("-j MARK --set-mark 2/0xff", "-j MARK --set-xmark 0x2/0xff"),
            (
                "-j LOG --log-prefix \"FWD-ICMP-10_1_0_0-10_100_1_0: \" --log-level 4",
                "-j LOG --log-prefix \"FWD-ICMP-10_1_0_0-10_100_1_0:\"",
            ),
        ];
        for (given, saved) in cases {
            assert_eq!(canonical_rule(given), saved, "{given}");
            assert_eq!(canonical_rule(saved), saved, "{saved} is canonical already");
        }
    }
}
