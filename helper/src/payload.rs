//! Screening of firewall payloads before they reach `iptables-restore` or `ipset restore`:
//! the options and commands with which those tools act outside the namespace (run a program,
//! write or read a file of the helper's machine) are refused, whatever the quoting.
//!
//! The tools run inside the namespace, so what the payload does to the kernel stays there. Their
//! own process, though, lives in the helper's mount namespace with the helper's rights, and
//! some of their options reach beyond the namespace:
//!
//! * `iptables-restore` parses every rule line with `getopt_long`, so a line may carry
//!   `-M PROGRAM` / `--modprobe=PROGRAM` (any unambiguous prefix, or `M` inside a bundle such
//!   as `-vM`), and the tool runs that program when it needs a kernel module. Rule options
//!   that name a file of the machine (`--object-pinned` of the `bpf` match) and targets that
//!   create objects outside the namespace (`IDLETIMER` and `LED` make sysfs entries) are
//!   refused too.
//! * `ipset restore` accepts `save`, `list` and the global `-file` option on its lines, and
//!   `save -file PATH` writes (truncates) any file the helper can write.
//!
//! Lines are split exactly as the tools split them (iptables' `add_param_to_argv`: quotes
//! group and end words, a backslash escapes inside quotes), and each word is checked; as a
//! second guard, every whitespace-separated word with its quotes and backslashes removed is
//! checked too, so a difference in quoting rules can only refuse more, never let more through
//! (a comment with a word such as `-M` in it is refused as well).

use crate::error::HelperError;

/// `iptables` short options that take no argument: in a bundle such as `-vnM`, the letters
/// after them are options too. Any other letter takes the rest of the word as its argument.
const NO_ARG_FLAGS: &str = "Vhfbvnx46";

/// Targets whose kernel modules create objects outside the namespace.
const GLOBAL_TARGETS: [&str; 2] = ["IDLETIMER", "LED"];

/// `ipset` commands a restore payload may use: those that change sets.
const IPSET_COMMANDS: [&str; 8] = [
    "create", "add", "del", "destroy", "flush", "rename", "swap", "test",
];

/// `ipset` global options a restore line may carry (all others, `-file` among them, are
/// refused).
const IPSET_OPTIONS: [&str; 4] = ["-exist", "-!", "-quiet", "-q"];

/// Splits a line into words as `iptables-restore` does (`add_param_to_argv`).
fn iptables_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let (mut quote_open, mut escaped, mut quoted) = (false, false, false);
    for c in line.chars() {
        if quote_open {
            if escaped {
                word.push(c);
                escaped = false;
                continue;
            } else if c == '\\' {
                escaped = true;
                continue;
            } else if c == '"' {
                quote_open = false;
            } else {
                word.push(c);
                continue;
            }
        } else if c == '"' {
            quote_open = true;
            quoted = true;
            continue;
        }
        match c {
            '"' => {}
            ' ' | '\t' | '\n' if word.is_empty() && !quoted => continue,
            ' ' | '\t' | '\n' => {}
            _ => {
                word.push(c);
                continue;
            }
        }
        words.push(std::mem::take(&mut word));
        quoted = false;
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// The crude split: whitespace-separated words with quotes and backslashes removed.
fn plain_words(line: &str) -> impl Iterator<Item = String> + '_ {
    line.split(|c: char| c.is_whitespace() || c == '\0')
        .map(|w| w.chars().filter(|c| !matches!(c, '"' | '\\')).collect())
}

/// Whether `word` is the long option `full` or an abbreviation of it (as `getopt_long`
/// accepts), with or without `=value`.
fn long_option(word: &str, full: &str) -> bool {
    let Some(long) = word.strip_prefix("--") else {
        return false;
    };
    let name = long.split('=').next().unwrap_or("");
    !name.is_empty() && full.starts_with(name)
}

/// For a word of short options (`-vnM/tmp/x`), the first letter that takes an argument and
/// the argument attached to it (possibly empty: then it is the next word).
fn short_option(word: &str) -> Option<(char, &str)> {
    if word.starts_with("--") {
        return None;
    }
    let short = word.strip_prefix('-')?;
    for (at, c) in short.char_indices() {
        if !NO_ARG_FLAGS.contains(c) {
            return Some((c, &short[at + c.len_utf8()..]));
        }
    }
    None
}

/// Why `word` (one word of a rule, `next` the one after it) is refused, or `None`.
fn iptables_refusal(word: &str, next: Option<&str>) -> Option<&'static str> {
    let short = short_option(word);
    if long_option(word, "modprobe") || matches!(short, Some(('M', _))) {
        return Some("the -M (--modprobe) option runs a program of the helper's machine");
    }
    if long_option(word, "object-pinned") {
        return Some("the bpf match's --object-pinned names a file of the helper's machine");
    }
    let target = match short {
        Some(('j' | 'g', "")) => next,
        Some(('j' | 'g', attached)) => Some(attached),
        _ if long_option(word, "jump") || long_option(word, "goto") => match word.split_once('=') {
            Some((_, value)) => Some(value),
            None => next,
        },
        _ => None,
    };
    if target.is_some_and(|t| GLOBAL_TARGETS.contains(&t)) {
        return Some("this target creates objects outside the namespace (in sysfs)");
    }
    None
}

/// Checks an `iptables-restore` (or `ip6tables-restore`) payload, naming the first refused
/// line and word.
pub fn check_iptables(payload: &str) -> Result<(), HelperError> {
    check_nul(payload)?;
    for (i, line) in payload.lines().enumerate() {
        let n = i + 1;
        let trimmed = line.trim_start();
        // A table header or a comment is not parsed as options (an unknown table is the
        // tool's to refuse).
        if trimmed.starts_with('*') || trimmed.starts_with('#') {
            continue;
        }
        for words in [iptables_words(line), plain_words(line).collect()] {
            for (at, word) in words.iter().enumerate() {
                let next = words.get(at + 1).map(String::as_str);
                if let Some(why) = iptables_refusal(word, next) {
                    return Err(refused(n, line, &format!("{word:?}: {why}")));
                }
            }
        }
    }
    Ok(())
}

/// Checks an `ipset restore` payload: every line is a set-changing command, with no option
/// but `-exist` and `-quiet`.
pub fn check_ipset(payload: &str) -> Result<(), HelperError> {
    check_nul(payload)?;
    for (i, line) in payload.lines().enumerate() {
        let n = i + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let words: Vec<String> = plain_words(line).filter(|w| !w.is_empty()).collect();
        let command = words[0].as_str();
        if !IPSET_COMMANDS.contains(&command) {
            return Err(refused(
                n,
                line,
                &format!(
                    "{command:?} is not a command a restore payload may use ({})",
                    IPSET_COMMANDS.join(", ")
                ),
            ));
        }
        if let Some(option) = words
            .iter()
            .find(|w| w.starts_with('-') && !IPSET_OPTIONS.contains(&w.as_str()))
        {
            return Err(refused(
                n,
                line,
                &format!(
                    "{option:?}: no ipset option but {} is allowed (-file reads or writes files of the helper's machine)",
                    IPSET_OPTIONS.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Refuses payloads that cannot be text for a tool's standard input.
fn check_nul(payload: &str) -> Result<(), HelperError> {
    if payload.contains('\0') {
        return Err(HelperError::InvalidArgument(
            "The payload contains a NUL byte".into(),
        ));
    }
    Ok(())
}

fn refused(line: usize, text: &str, why: &str) -> HelperError {
    let shown: String = text.chars().take(120).collect();
    HelperError::NotAllowed(format!(
        "The payload's line {line} ({shown:?}) is refused: {why}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused_iptables(payload: &str) -> String {
        match check_iptables(payload) {
            Err(HelperError::NotAllowed(m)) => m,
            other => panic!("{payload:?} was not refused: {other:?}"),
        }
    }

    #[test]
    fn words_are_split_like_iptables_restore() {
        assert_eq!(
            iptables_words(r#"-A INPUT -m comment --comment "a \"b\" c" -j ACCEPT"#),
            [
                "-A",
                "INPUT",
                "-m",
                "comment",
                "--comment",
                r#"a "b" c"#,
                "-j",
                "ACCEPT"
            ]
        );
        // A closing quote ends a word; an opening quote does not start one.
        assert_eq!(iptables_words(r#""abc"-M x"#), ["abc", "-M", "x"]);
        assert_eq!(iptables_words(r#"-"M" x"#), ["-M", "x"]);
        assert_eq!(iptables_words("  a\t\tb  "), ["a", "b"]);
    }

    #[test]
    fn saved_firewalls_pass() {
        let saved = "# Generated by iptables-save v1.8.9\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [3:180]\n-A FORWARD -s 10.1.0.0/16 -p tcp -m tcp --dport 22 -m comment --comment \"ssh from -s and -j\" -j ACCEPT\n-A FORWARD -m statistic --mode random --probability 0.5 -j DROP\n-A FORWARD -m set --match-set blocked src -j REJECT --reject-with icmp-port-unreachable\nCOMMIT\n*mangle\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -m dscp --dscp 0x21 -j TSIM_REACH_PRE_33\nCOMMIT\n# Completed\n";
        check_iptables(saved).unwrap();
        check_ipset("create blocked hash:net family inet hashsize 1024 maxelem 65536\nadd blocked 10.9.0.0/16\nadd blocked 10.8.0.1 comment \"x y\"\n\nflush other\n").unwrap();
        check_ipset("create s hash:ip -exist\n").unwrap();
    }

    #[test]
    fn the_modprobe_option_is_refused_in_every_spelling() {
        for rule in [
            "-A INPUT -M /tmp/x -j ACCEPT",
            "-A INPUT --modprobe=/tmp/x -j ACCEPT",
            "-A INPUT --modprobe /tmp/x -j ACCEPT",
            "-A INPUT --modp=/tmp/x -j ACCEPT",
            "-A INPUT --mo /tmp/x -j ACCEPT",
            "-A INPUT -vM/tmp/x -j ACCEPT",
            "-A INPUT -nvxM /tmp/x",
            "-A INPUT \"-M\" /tmp/x",
            "-A INPUT -\"M\" /tmp/x",
            "-A INPUT \"x\"-M /tmp/x",
            "-A INPUT \"-\\M /tmp/x\"",
            "-A INPUT \"--modprobe=/tmp/x\"",
            "[0:0] -A INPUT -M /tmp/x",
        ] {
            let m = refused_iptables(&format!("*filter\n{rule}\nCOMMIT\n"));
            assert!(
                m.contains("line 2") && m.contains("modprobe"),
                "{rule}: {m}"
            );
        }
        // The second guard refuses the option's spelling even inside a quoted comment.
        refused_iptables("*filter\n-A INPUT -m comment --comment \"a -M b\"\n");
        // Not the option: an argument of -s, a match option, a chain name.
        check_iptables("*filter\n-A INPUT -sM -j ACCEPT\n-N MY-CHAIN\n-A INPUT -m statistic --mode nth --every 2\nCOMMIT\n").unwrap();
    }

    #[test]
    fn files_and_global_objects_are_refused() {
        for rule in [
            "-A INPUT -m bpf --object-pinned /sys/fs/bpf/p -j DROP",
            "-A INPUT -m bpf --object-pin=/sys/fs/bpf/p -j DROP",
        ] {
            let m = refused_iptables(&format!("*filter\n{rule}\n"));
            assert!(m.contains("--object-pinned"), "{rule}: {m}");
        }
        for rule in [
            "-A INPUT -j IDLETIMER --timeout 5 --label x",
            "-A INPUT --jump LED --led-trigger-id x",
            "-A INPUT -jLED --led-trigger-id x",
            "-A INPUT --jump=IDLETIMER",
            "-A INPUT -vjLED",
            "-A INPUT -vg IDLETIMER",
            "-A INPUT --ju LED",
        ] {
            let m = refused_iptables(&format!("*filter\n{rule}\n"));
            assert!(m.contains("outside the namespace"), "{rule}: {m}");
        }
    }

    #[test]
    fn ipset_commands_that_touch_files_are_refused() {
        for (payload, word) in [
            ("create s hash:ip\nsave -file /etc/passwd\n", "\"save\""),
            ("list -file /tmp/x\n", "\"list\""),
            ("-file /tmp/x save\n", "\"-file\""),
            ("add s 10.0.0.1 -file /tmp/x\n", "\"-file\""),
            ("add s 10.0.0.1 \"-f\" /tmp/x\n", "\"-f\""),
            ("add s 10.0.0.1 --file /tmp/x\n", "\"--file\""),
            ("restore -file /etc/shadow\n", "\"restore\""),
            ("\"save\"\n", "\"save\""),
        ] {
            match check_ipset(payload) {
                Err(HelperError::NotAllowed(m)) => {
                    assert!(m.contains(word) && m.contains("line"), "{payload:?}: {m}")
                }
                other => panic!("{payload:?} was not refused: {other:?}"),
            }
        }
    }

    #[test]
    fn nul_bytes_are_invalid() {
        assert!(matches!(
            check_iptables("*filter\0"),
            Err(HelperError::InvalidArgument(_))
        ));
        assert!(matches!(
            check_ipset("add s\0"),
            Err(HelperError::InvalidArgument(_))
        ));
    }
}
