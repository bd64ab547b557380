//! The transforms the firewall payloads of facts go through before they are restored.

use std::collections::HashMap;

use tsim_protocol::topology::LOG_GROUP;

/// `iptables-save` text made fit for `iptables-restore` in a namespace: collector noise
/// (`---`, `EXIT_CODE:` lines) and rules with `-m time` (which would make the result depend
/// on the clock) dropped, and `LOG` rules applied as `NFLOG` (see [`log_as_nflog`]). `None`
/// when nothing is left.
pub fn iptables(text: &str) -> Option<String> {
    let lines: Vec<String> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| {
            *l != "---" && !l.starts_with("EXIT_CODE:") && !l.contains("-m time") && !l.is_empty()
        })
        .map(log_as_nflog)
        .collect();
    if !lines.iter().any(|l| l.starts_with('*')) {
        return None;
    }
    Some(lines.join("\n") + "\n")
}

/// A rule ending in `-j LOG [options]` as the same rule ending in `-j NFLOG --nflog-prefix
/// "P" --nflog-group G` (spelled as `iptables-save` prints it), with the same prefix and the
/// group [`LOG_GROUP`]: the kernel's `LOG` target writes nothing from a namespace other than
/// the machine's own unless a machine-wide sysctl says so, which the helper does not change,
/// while `NFLOG` hands the packet to the helper, which reads it in the router's namespace and
/// prints it as `LOG` would (`net log`). The `LOG` options other than the prefix (level, TCP
/// sequence and options, IP options, uid, MAC decoding) have no `NFLOG` spelling and are left
/// out. Any other line is unchanged.
pub fn log_as_nflog(line: &str) -> String {
    let Some(at) = line.find(" -j LOG") else {
        return line.to_owned();
    };
    let (rule, target) = line.split_at(at);
    let options = &target[" -j LOG".len()..];
    if !(options.is_empty() || options.starts_with(' ')) {
        return line.to_owned(); // -j LOGSOMETHING: another target
    }
    let mut out = format!("{rule} -j NFLOG");
    if let Some(p) = options.find("--log-prefix ") {
        let rest = &options[p + "--log-prefix ".len()..];
        let prefix = match rest.strip_prefix('"') {
            Some(quoted) => quoted.split('"').next().unwrap_or(""),
            None => rest.split_whitespace().next().unwrap_or(""),
        };
        out.push_str(&format!(" --nflog-prefix \"{prefix}\""));
    }
    out.push_str(&format!(" --nflog-group {LOG_GROUP}"));
    out
}

/// `ipset save` text made fit for `ipset restore`: timeouts dropped (entries become
/// permanent), and each set's `maxelem` doubled until it is larger than the number of
/// members the payload adds. `None` when nothing is left.
pub fn ipset(text: &str) -> Option<String> {
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != "---" && !l.starts_with("EXIT_CODE:"))
        .map(strip_timeout)
        .collect();
    let mut members: HashMap<&str, u64> = HashMap::new();
    for line in &lines {
        if let Some(rest) = line.strip_prefix("add ") {
            if let Some(set) = rest.split_whitespace().next() {
                *members.entry(set).or_default() += 1;
            }
        }
    }
    let mut out = String::new();
    for line in &lines {
        let mut words: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        if words.first().map(String::as_str) == Some("create") {
            let count = words
                .get(1)
                .and_then(|s| members.get(s.as_str()))
                .copied()
                .unwrap_or(0);
            if let Some(i) = words.iter().position(|w| w == "maxelem") {
                if let Some(max) = words.get(i + 1).and_then(|m| m.parse::<u64>().ok()) {
                    let mut grown = max.max(1);
                    while grown <= count {
                        grown *= 2;
                    }
                    words[i + 1] = grown.to_string();
                }
            }
        }
        out.push_str(&words.join(" "));
        out.push('\n');
    }
    (!out.trim().is_empty()).then_some(out)
}

fn strip_timeout(line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut out = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        if words[i] == "timeout" && words.get(i + 1).is_some_and(|v| v.parse::<u64>().is_ok()) {
            i += 2;
            continue;
        }
        out.push(words[i]);
        i += 1;
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_rules_become_nflog_rules_with_the_same_prefix() {
        let group = LOG_GROUP;
        for (facts, want) in [
            (
                "-A POSTROUTING -s 10.1.0.0/16 -o eth0 -j LOG --log-prefix \"NAT-MASQ-10_1_0_0: \"",
                format!(
                    "-A POSTROUTING -s 10.1.0.0/16 -o eth0 -j NFLOG --nflog-prefix \"NAT-MASQ-10_1_0_0: \" --nflog-group {group}"
                ),
            ),
            (
                "-A EDGE_IN -j LOG --log-prefix \"EDGE-IN-DROP: \" --log-level 4 --log-uid",
                format!(
                    "-A EDGE_IN -j NFLOG --nflog-prefix \"EDGE-IN-DROP: \" --nflog-group {group}"
                ),
            ),
            (
                "-A INPUT -p tcp -j LOG",
                format!("-A INPUT -p tcp -j NFLOG --nflog-group {group}"),
            ),
            ("-A INPUT -j LOGGER", "-A INPUT -j LOGGER".to_owned()),
            ("-A INPUT -j ACCEPT", "-A INPUT -j ACCEPT".to_owned()),
            (":LOG_CHAIN - [0:0]", ":LOG_CHAIN - [0:0]".to_owned()),
        ] {
            assert_eq!(log_as_nflog(facts), want);
        }
        let payload = iptables("*filter\n-A INPUT -j LOG --log-prefix \"X: \"\nCOMMIT\n").unwrap();
        assert!(
            payload.contains("-j NFLOG --nflog-prefix \"X: \""),
            "{payload}"
        );
    }

    #[test]
    fn iptables_transform() {
        let t = "---\n# Generated by iptables-save v1.8.7\n*filter\n:INPUT DROP [0:0]\n-A INPUT -m time --timestart 09:00 -j ACCEPT\n-A INPUT -i lo -j ACCEPT\nCOMMIT\nEXIT_CODE: 0\n";
        assert_eq!(
            iptables(t).unwrap(),
            "# Generated by iptables-save v1.8.7\n*filter\n:INPUT DROP [0:0]\n-A INPUT -i lo -j ACCEPT\nCOMMIT\n"
        );
        assert_eq!(iptables("# nothing\n"), None);
    }

    #[test]
    fn ipset_transform() {
        let t = "create a hash:ip family inet hashsize 1024 maxelem 2 timeout 300\nadd a 10.0.0.1 timeout 60\nadd a 10.0.0.2\nadd a 10.0.0.3\ncreate b bitmap:ip range 10.1.1.0/24\nadd b 10.1.1.10\n";
        let out = ipset(t).unwrap();
        assert_eq!(
            out,
            "create a hash:ip family inet hashsize 1024 maxelem 4\nadd a 10.0.0.1\nadd a 10.0.0.2\nadd a 10.0.0.3\ncreate b bitmap:ip range 10.1.1.0/24\nadd b 10.1.1.10\n"
        );
        assert_eq!(ipset(""), None);
    }
}
