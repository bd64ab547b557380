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
//! The screen sees exactly the lines and words the tools see (issue 14, finding 1: a line one
//! byte longer than a tool's `fgets` buffer was one line to the screen and two to the tool).
//! It works on bytes, never on Unicode, and refuses whatever could be split differently:
//!
//! * lines are cut at `\n` only, and a line (its `\n` included) must fit the tool's `fgets`
//!   buffer less its terminating NUL, so `fgets` returns it whole: at most
//!   [`IPSET_MAX_LINE`] bytes before the `\n` for ipset, [`IPTABLES_MAX_LINE`] for iptables
//!   (the last line may lack its `\n`; the same limit holds);
//! * NUL, every other control byte but `\t` and `\n` (`\r`, `\v` and `\f` are whitespace to C
//!   `isspace` or to ipset's argv builder and not to iptables', or the reverse), DEL and every
//!   byte above 0x7f are refused: what is left is printable ASCII, spaces and tabs, on which
//!   the tools' C locale and this screen agree;
//! * words are split by a transcription of each tool's own splitter (iptables
//!   `add_param_to_argv`, ipset `build_argv`), with each tool's limits: a word of iptables is
//!   at most [`IPTABLES_MAX_WORD`] bytes and a line at most [`IPTABLES_MAX_WORDS`] words; an
//!   ipset line at most [`IPSET_MAX_WORDS`] words with its quotes balanced;
//! * iptables rule counters (`[packets:bytes]` at the start of a line) must be two decimal
//!   numbers, so the tool's `strtok` on them cannot cut the rule that follows;
//! * every line of an iptables payload is checked as a rule, comments and table headers too
//!   (the tool only skips a `#` in the first column, and takes a `*` line inside a table for
//!   a rule).
//!
//! As a second guard, every whitespace-separated word with its quotes and backslashes removed
//! is checked too, so a difference in quoting rules can only refuse more, never let more
//! through (a comment with a word such as `-M` in it is refused as well).
//!
//! Every function here is total: no indexing that can panic, no `unwrap` on client text
//! (finding 2: a payload of `"` panicked the old `check_ipset`).

use crate::base::error::HelperError;

/// The size of ipset's line buffer: `char cmdline[MAX_CMDLINE_CHARS]` of `struct ipset`, with
/// `#define MAX_CMDLINE_CHARS 1024`, read by `fgets(ipset->cmdline, sizeof(ipset->cmdline), f)`
/// in `ipset_parse_stream` (ipset 7.17, `lib/ipset.c`; Debian bookworm ships 7.17-1).
pub const IPSET_LINE_BUFFER: usize = 1024;

/// The size of ipset's argument vector: `char *newargv[MAX_ARGS]`, `#define MAX_ARGS 32`
/// (ipset 7.17, `lib/ipset.c`). `build_argv` fails with "Line is too long to parse." once
/// `newargc + 1` reaches it (`newargv[0]` is the program's name).
pub const IPSET_MAX_ARGS: usize = 32;

/// The size of iptables-restore's line buffer: `char buffer[10240]` in `xtables_restore_parse`,
/// read by `fgets(buffer, sizeof(buffer), p->in)` (iptables 1.8.9, `iptables/xtables-restore.c`,
/// the nf_tables `iptables-restore` Debian bookworm ships, 1.8.9-2).
pub const IPTABLES_LINE_BUFFER: usize = 10240;

/// The size of one word in iptables' splitter: `struct xt_param_buf { char buffer[1024]; ... }`;
/// `add_param` fails with "Parameter too long!" once a word reaches it (iptables 1.8.9,
/// `iptables/xshared.c`).
pub const IPTABLES_PARAM_BUFFER: usize = 1024;

/// The size of iptables' argument vector: `#define MAX_ARGC 255` (iptables 1.8.9,
/// `iptables/xshared.h`); `add_argv` fails with "Parser cannot handle more arguments" when
/// `argc + 1 >= MAX_ARGC`.
pub const IPTABLES_MAX_ARGC: usize = 255;

/// The longest ipset line, in bytes before its `\n`: `fgets` keeps `IPSET_LINE_BUFFER - 1`
/// bytes, the `\n` among them.
pub const IPSET_MAX_LINE: usize = IPSET_LINE_BUFFER - 2;

/// The longest iptables line, in bytes before its `\n` (as [`IPSET_MAX_LINE`]).
pub const IPTABLES_MAX_LINE: usize = IPTABLES_LINE_BUFFER - 2;

/// The longest word of an iptables line.
pub const IPTABLES_MAX_WORD: usize = IPTABLES_PARAM_BUFFER - 1;

/// The most words of an iptables line: the tool's argv holds at most `MAX_ARGC - 1` entries,
/// of which it adds up to six itself (the program, `-t TABLE`, `--set-counters P B`).
pub const IPTABLES_MAX_WORDS: usize = IPTABLES_MAX_ARGC - 1 - 6;

/// The most words of an ipset line: `build_argv` fails when a 31st slot would be needed, and
/// when anything at all follows the 30th word; so 29.
pub const IPSET_MAX_WORDS: usize = IPSET_MAX_ARGS - 3;

/// `iptables` short options that take no argument: in a bundle such as `-vnM`, the letters
/// after them are options too. Any other letter takes the rest of the word as its argument
/// (iptables 1.8.9 `IPT_OPTSTRING`: `V`, `4`, `6`, `b`, `f`, `n`, `v`, `x` take none; `h`
/// takes an optional one, and is counted here as taking none, which can only refuse more).
const NO_ARG_FLAGS: &[u8] = b"Vhfbvnx46";

/// Targets whose kernel modules create objects outside the namespace.
const GLOBAL_TARGETS: [&str; 2] = ["IDLETIMER", "LED"];

/// `ipset` commands a restore payload may use: those that change sets. (The tool matches
/// command names by prefix, but each of these full names matches only itself.)
const IPSET_COMMANDS: [&str; 8] = [
    "create", "add", "del", "destroy", "flush", "rename", "swap", "test",
];

/// `ipset` global options a restore line may carry (all others, `-file` among them, are
/// refused).
const IPSET_OPTIONS: [&str; 4] = ["-exist", "-!", "-quiet", "-q"];

/// One line of a payload as the screen saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line<'a> {
    /// Its number, from 1, as the tool counts them.
    pub number: usize,
    /// Its text, with its `\n` if it has one: exactly what one `fgets` call returns.
    pub text: &'a str,
    /// The words the tool's splitter makes of it (for iptables, after the rule counters), or
    /// `None` for an ipset line the tool skips (blank or a comment).
    pub words: Option<Vec<String>>,
}

/// Cuts `payload` into lines as `fgets` with a buffer of `buffer` bytes would, refusing any
/// line that `fgets` would not return whole, and any byte the screen refuses.
fn fgets_lines<'a>(
    payload: &'a str,
    buffer: usize,
    tool: &str,
) -> Result<Vec<(usize, &'a str)>, HelperError> {
    let max = buffer.saturating_sub(2);
    let mut lines = Vec::new();
    for (i, text) in payload.split_inclusive('\n').enumerate() {
        let n = i + 1;
        let body = text.strip_suffix('\n').unwrap_or(text);
        if body.len() > max {
            return Err(HelperError::InvalidArgument(format!(
                "The payload's line {n} is {} bytes long; {tool} reads lines of at most {max} bytes (and its newline) whole, and would cut this one in two",
                body.len()
            )));
        }
        if let Some(at) = body
            .bytes()
            .position(|b| !(b == b'\t' || (0x20..0x7f).contains(&b)))
        {
            let byte = body.as_bytes().get(at).copied().unwrap_or(0);
            let what = match byte {
                0 => "a NUL byte".to_owned(),
                0x80.. => format!("a byte above 0x7f (0x{byte:02x}: only ASCII is accepted)"),
                _ => format!("the control byte 0x{byte:02x}"),
            };
            return Err(HelperError::InvalidArgument(format!(
                "The payload's line {n} contains {what} at column {}; {tool} would split it otherwise than this screen",
                at + 1
            )));
        }
        lines.push((n, text));
    }
    Ok(lines)
}

/// Splits a line into words as iptables' `add_param_to_argv` does: outside quotes, a space, a
/// tab or a newline ends a non-empty word; `"` opens a quote, inside which `\` takes the next
/// byte as it is and `"` closes it and ends the word (even an empty one); an unclosed quote
/// runs to the end of the line. `None` when a word is too long for the tool.
fn iptables_words(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut words = Vec::new();
    let mut word = Vec::new();
    let (mut quote_open, mut escaped) = (false, false);
    for &c in line {
        if quote_open {
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
                continue;
            } else if c == b'"' {
                quote_open = false;
                words.push(std::mem::take(&mut word));
                continue;
            }
            word.push(c);
        } else if c == b'"' {
            quote_open = true;
            continue;
        } else if matches!(c, b' ' | b'\t' | b'\n') {
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            continue;
        } else {
            word.push(c);
        }
        if word.len() > IPTABLES_MAX_WORD {
            return None;
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    Some(words)
}

/// Where an iptables rule's words start: after `[PACKETS:BYTES]` when the line starts with
/// `[` (the tool's `tokenize_rule_counters`), else at its start. `None` for counters that are
/// not two decimal numbers (the tool's `strtok` could then cut the rule).
fn after_counters(line: &[u8]) -> Option<&[u8]> {
    let Some(rest) = line.strip_prefix(b"[") else {
        return Some(line);
    };
    let close = rest.iter().position(|&b| b == b']')?;
    let (counters, after) = rest.split_at(close);
    let (packets, bytes) = counters.split_at(counters.iter().position(|&b| b == b':')?);
    let bytes = bytes.get(1..)?;
    let decimal = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    (decimal(packets) && decimal(bytes)).then(|| after.get(1..).unwrap_or_default())
}

/// How ipset's `build_argv` fails on a line.
enum IpsetSplit {
    Words(Vec<Vec<u8>>),
    TooManyWords,
    UnbalancedQuote,
}

/// Splits a line into words as ipset's `build_argv` does: outside quotes, a space, a tab, a
/// `\r` or a `\n` ends a non-empty word; `"` toggles quoting anywhere in a word and is dropped;
/// inside quotes every byte is kept. The tool fails on a line that needs more argv slots than
/// it has, or that ends inside a quote on a non-blank byte; on a quote left open by a blank at
/// the end it silently drops the last word, which this screen refuses as well.
fn ipset_words(line: &[u8]) -> IpsetSplit {
    let mut words = Vec::new();
    let mut word = Vec::new();
    let mut quoted = false;
    let mut bytes = line.iter().peekable();
    while let Some(&c) = bytes.next() {
        if words.len() + 2 >= IPSET_MAX_ARGS {
            return IpsetSplit::TooManyWords;
        }
        let last = bytes.peek().is_none();
        match c {
            b'"' => {
                quoted = !quoted;
                if !last {
                    continue;
                }
            }
            b' ' | b'\r' | b'\n' | b'\t' if !quoted => {}
            _ => {
                word.push(c);
                if !last {
                    continue;
                }
            }
        }
        if last && quoted {
            return IpsetSplit::UnbalancedQuote;
        }
        if !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
    }
    if quoted {
        return IpsetSplit::UnbalancedQuote;
    }
    if words.len() > IPSET_MAX_WORDS {
        return IpsetSplit::TooManyWords;
    }
    IpsetSplit::Words(words)
}

/// Bytes as a string: the screen only lets ASCII through, so this never loses anything.
fn text(word: &[u8]) -> String {
    String::from_utf8_lossy(word).into_owned()
}

/// The crude split: words separated by the bytes either tool takes for blanks, with quotes
/// and backslashes removed.
fn plain_words(line: &str) -> impl Iterator<Item = String> + '_ {
    line.split([' ', '\t', '\n', '\r', '\x0b', '\x0c'])
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
        if !c.is_ascii() || !NO_ARG_FLAGS.contains(&(c as u8)) {
            return Some((c, short.get(at + c.len_utf8()..).unwrap_or("")));
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

/// The lines of an `iptables-restore` (or `ip6tables-restore`) payload and the words of each
/// (after its rule counters), as the tool splits them, or the refusal of the first line that
/// the tool could split otherwise. Every line is split, whatever the tool makes of it.
pub fn iptables_lines(payload: &str) -> Result<Vec<Line<'_>>, HelperError> {
    let mut out = Vec::new();
    for (n, line) in fgets_lines(payload, IPTABLES_LINE_BUFFER, "iptables-restore")? {
        let Some(rule) = after_counters(line.as_bytes()) else {
            return Err(HelperError::InvalidArgument(format!(
                "The payload's line {n} starts with rule counters that are not [PACKETS:BYTES] in decimal"
            )));
        };
        let Some(words) = iptables_words(rule) else {
            return Err(HelperError::InvalidArgument(format!(
                "The payload's line {n} has a word longer than the {IPTABLES_MAX_WORD} bytes iptables-restore accepts"
            )));
        };
        if words.len() > IPTABLES_MAX_WORDS {
            return Err(HelperError::InvalidArgument(format!(
                "The payload's line {n} has {} words; iptables-restore accepts at most {IPTABLES_MAX_WORDS}",
                words.len()
            )));
        }
        out.push(Line {
            number: n,
            text: line,
            words: Some(words.iter().map(|w| text(w)).collect()),
        });
    }
    Ok(out)
}

/// Checks an `iptables-restore` (or `ip6tables-restore`) payload, naming the first refused
/// line and word.
pub fn check_iptables(payload: &str) -> Result<(), HelperError> {
    for line in iptables_lines(payload)? {
        // The whole line's words too (the counters among them), and the crude split.
        let whole = iptables_words(line.text.as_bytes())
            .unwrap_or_default()
            .iter()
            .map(|w| text(w))
            .collect();
        for words in [
            line.words.unwrap_or_default(),
            whole,
            plain_words(line.text).collect(),
        ] {
            for (at, word) in words.iter().enumerate() {
                let next = words.get(at + 1).map(String::as_str);
                if let Some(why) = iptables_refusal(word, next) {
                    return Err(refused(line.number, line.text, &format!("{word:?}: {why}")));
                }
            }
        }
    }
    Ok(())
}

/// The lines of an `ipset restore` payload and the words of each, as the tool splits them
/// (`None` for a line it skips), or the refusal of the first line that the tool could split
/// otherwise or would fail to split.
pub fn ipset_lines(payload: &str) -> Result<Vec<Line<'_>>, HelperError> {
    let mut out = Vec::new();
    for (n, line) in fgets_lines(payload, IPSET_LINE_BUFFER, "ipset restore")? {
        // The tool skips leading C `isspace` bytes, then a line that is empty or a comment.
        let start = line.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
        if start.is_empty() || start.starts_with('#') {
            out.push(Line {
                number: n,
                text: line,
                words: None,
            });
            continue;
        }
        let words = match ipset_words(start.as_bytes()) {
            IpsetSplit::Words(words) => words,
            IpsetSplit::TooManyWords => {
                return Err(HelperError::InvalidArgument(format!(
                    "The payload's line {n} has more than the {IPSET_MAX_WORDS} words ipset restore accepts"
                )));
            }
            IpsetSplit::UnbalancedQuote => {
                return Err(HelperError::InvalidArgument(format!(
                    "The payload's line {n} leaves a quote open"
                )));
            }
        };
        out.push(Line {
            number: n,
            text: line,
            words: Some(words.iter().map(|w| text(w)).collect()),
        });
    }
    Ok(out)
}

/// Checks an `ipset restore` payload: every line is a set-changing command, with no option
/// but `-exist` and `-quiet`.
pub fn check_ipset(payload: &str) -> Result<(), HelperError> {
    for line in ipset_lines(payload)? {
        let Some(words) = line.words else { continue };
        let (n, text) = (line.number, line.text);
        let Some(command) = words.first() else {
            return Err(refused(n, text, "it names no command"));
        };
        if !IPSET_COMMANDS.contains(&command.as_str()) {
            return Err(refused(
                n,
                text,
                &format!(
                    "{command:?} is not a command a restore payload may use ({})",
                    IPSET_COMMANDS.join(", ")
                ),
            ));
        }
        let plain: Vec<String> = plain_words(text).collect();
        if let Some(option) = words
            .iter()
            .chain(&plain)
            .find(|w| w.starts_with('-') && !IPSET_OPTIONS.contains(&w.as_str()))
        {
            return Err(refused(
                n,
                text,
                &format!(
                    "{option:?}: no ipset option but {} is allowed (-file reads or writes files of the helper's machine)",
                    IPSET_OPTIONS.join(", ")
                ),
            ));
        }
        if command == "create" {
            check_hashsize(&words).map_err(|why| refused(n, text, &why))?;
        }
    }
    Ok(())
}

/// The largest `hashsize` a `create` line may ask for: the kernel allocates the bucket
/// table (8 bytes a bucket) when the set is made, whatever it will hold, so one line could
/// otherwise take gigabytes. Tables grow by themselves as entries are added.
pub const IPSET_MAX_HASHSIZE: u64 = 65_536;

/// Refuses a `create` line's `hashsize` past [`IPSET_MAX_HASHSIZE`] (or not in decimal).
fn check_hashsize(words: &[String]) -> Result<(), String> {
    for (at, _) in words.iter().enumerate().filter(|(_, w)| *w == "hashsize") {
        let value = words.get(at + 1).map(String::as_str).unwrap_or("");
        let ok = !value.is_empty()
            && value.len() <= 6
            && value.bytes().all(|b| b.is_ascii_digit())
            && value.parse::<u64>().is_ok_and(|v| v <= IPSET_MAX_HASHSIZE);
        if !ok {
            return Err(format!(
                "hashsize {value:?}: at most {IPSET_MAX_HASHSIZE}, in decimal (the kernel allocates the whole table at once; it grows as entries are added)"
            ));
        }
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

    fn words(line: &str) -> Vec<String> {
        iptables_words(line.as_bytes())
            .unwrap()
            .iter()
            .map(|w| text(w))
            .collect()
    }

    fn ipset(line: &str) -> Vec<String> {
        match ipset_words(line.as_bytes()) {
            IpsetSplit::Words(w) => w.iter().map(|w| text(w)).collect(),
            IpsetSplit::TooManyWords => panic!("{line:?}: too many words"),
            IpsetSplit::UnbalancedQuote => panic!("{line:?}: unbalanced"),
        }
    }

    fn invalid(result: Result<(), HelperError>) -> String {
        match result {
            Err(HelperError::InvalidArgument(m)) => m,
            other => panic!("not refused as invalid: {other:?}"),
        }
    }

    #[test]
    fn a_set_table_is_capped() {
        assert!(check_ipset("create s hash:ip hashsize 65536\n").is_ok());
        assert!(check_ipset("create s hash:ip maxelem 1000000\nadd s 10.0.0.1\n").is_ok());
        for bad in ["67108864", "65537", "0x10000", "", "1e9", "0065536000"] {
            let payload = format!("create s hash:ip hashsize {bad}\n");
            match check_ipset(&payload) {
                Err(HelperError::NotAllowed(m)) => assert!(m.contains("hashsize"), "{m}"),
                other => panic!("{payload:?} was not refused: {other:?}"),
            }
        }
        // Quoted, as the tool reads it.
        assert!(check_ipset("create s hash:ip \"hashsize\" 1048576\n").is_err());
    }

    #[test]
    fn words_are_split_like_iptables_restore() {
        assert_eq!(
            words(r#"-A INPUT -m comment --comment "a \"b\" c" -j ACCEPT"#),
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
        // A closing quote ends a word (even an empty one); an opening quote does not start one.
        assert_eq!(words(r#""abc"-M x"#), ["abc", "-M", "x"]);
        assert_eq!(words(r#"-"M" x"#), ["-M", "x"]);
        assert_eq!(words(r#"a "" b"#), ["a", "", "b"]);
        assert_eq!(words("  a\t\tb  \n"), ["a", "b"]);
        // An unclosed quote runs to the end; a backslash outside quotes is a plain byte.
        assert_eq!(words(r#"a "b c"#), ["a", "b c"]);
        assert_eq!(words(r#"a\ b"#), ["a\\", "b"]);
        // The word limit of add_param, both sides.
        assert!(iptables_words("x".repeat(IPTABLES_MAX_WORD).as_bytes()).is_some());
        assert!(iptables_words("x".repeat(IPTABLES_MAX_WORD + 1).as_bytes()).is_none());
    }

    #[test]
    fn words_are_split_like_ipset_restore() {
        assert_eq!(
            ipset("add s 1.2.3.4 comment \"x y\"\n"),
            ["add", "s", "1.2.3.4", "comment", "x y"]
        );
        // A quote toggles inside a word, and is dropped.
        assert_eq!(ipset("a\"b c\"d e"), ["ab cd", "e"]);
        assert_eq!(ipset("\"\"\n"), Vec::<String>::new());
        assert!(matches!(ipset_words(b"\"\n"), IpsetSplit::UnbalancedQuote));
        assert!(matches!(ipset_words(b"a \"b"), IpsetSplit::UnbalancedQuote));
        assert!(matches!(
            ipset_words(b"a \"b \n"),
            IpsetSplit::UnbalancedQuote
        ));
        // The argv limit, both sides.
        let line = |n: usize| vec!["w"; n].join(" ") + "\n";
        assert_eq!(ipset(&line(IPSET_MAX_WORDS)).len(), IPSET_MAX_WORDS);
        assert!(matches!(
            ipset_words(line(IPSET_MAX_WORDS + 1).as_bytes()),
            IpsetSplit::TooManyWords
        ));
        assert!(matches!(
            ipset_words(line(40).as_bytes()),
            IpsetSplit::TooManyWords
        ));
    }

    #[test]
    fn lines_must_fit_the_tools_buffers() {
        // ipset: the longest line fgets(1024) returns whole with its newline, and one more.
        let add = |len: usize| format!("{:<len$}\n", "add s 10.0.0.1");
        check_ipset(&add(IPSET_MAX_LINE)).unwrap();
        assert_eq!(IPSET_MAX_LINE, 1022);
        let m = invalid(check_ipset(&format!(
            "create s hash:ip\n{}",
            add(IPSET_MAX_LINE + 1)
        )));
        assert!(m.contains("line 2") && m.contains("1023 bytes"), "{m}");
        // The last line without its newline has the same limit.
        check_ipset(add(IPSET_MAX_LINE).trim_end_matches('\n')).unwrap();
        invalid(check_ipset(add(IPSET_MAX_LINE + 1).trim_end_matches('\n')));
        // iptables: fgets(10240).
        assert_eq!(IPTABLES_MAX_LINE, 10238);
        let rule = |len: usize| format!("*filter\n{:<len$}\nCOMMIT\n", "-A INPUT -j ACCEPT");
        check_iptables(&rule(IPTABLES_MAX_LINE)).unwrap();
        let m = invalid(check_iptables(&rule(IPTABLES_MAX_LINE + 1)));
        assert!(m.contains("line 2"), "{m}");
    }

    #[test]
    fn the_attacks_of_issue_14_are_refused() {
        // ipset: an allowed line padded to 1023 bytes, glued to `-file PATH save s`.
        let flush = format!("{:<1022}s-file /etc/passwd save s\n", "flush");
        let m = invalid(check_ipset(&format!("create s hash:ip\n{flush}")));
        assert!(m.contains("line 2"), "{m}");
        let add = format!(
            "{:<984} 10.1.2.3 comment \"$(id)\"-file /etc/passwd save s\n",
            "add s"
        );
        invalid(check_ipset(&add));
        // iptables: a comment padded to 10239 bytes, glued to a refused rule.
        for rule in [
            "-A INPUT -j IDLETIMER --timeout 5 --label x",
            "-A INPUT -M /tmp/x",
        ] {
            let line = format!("{:<10239}{rule}", "#");
            let m = invalid(check_iptables(&format!("*filter\n{line}\nCOMMIT\n")));
            assert!(m.contains("line 2"), "{m}");
        }
        // A lone quote, and other lines without a command: refused, no panic.
        for payload in ["\"", "\"\"", "\"\"\n", "\" \"\n", "\"\"\"\"\n"] {
            assert!(check_ipset(payload).is_err(), "{payload:?}");
        }
        assert!(check_iptables("\"").is_ok());
    }

    #[test]
    fn comment_and_table_lines_are_checked_as_rules() {
        // The tool skips only a `#` in the first column, and takes `*` inside a table for a rule.
        refused_iptables("*filter\n #x -A INPUT -M /tmp/x\nCOMMIT\n");
        refused_iptables("*filter\n*x -A INPUT -M /tmp/x\nCOMMIT\n");
        refused_iptables("*filter\n# -A INPUT -j LED\nCOMMIT\n");
        // Counters: the words after them are checked, and only decimal counters pass.
        refused_iptables("*filter\n[0:0] -A INPUT -j IDLETIMER\nCOMMIT\n");
        invalid(check_iptables(
            "*filter\n[\"x] -A INPUT -M /tmp/x\nCOMMIT\n",
        ));
        invalid(check_iptables("*filter\n[a] x:y] -A INPUT\nCOMMIT\n"));
        invalid(check_iptables("*filter\n[1:2 -A INPUT\nCOMMIT\n"));
        check_iptables("*filter\n[12:345] -A INPUT -j ACCEPT\nCOMMIT\n").unwrap();
    }

    #[test]
    fn bytes_the_tools_split_otherwise_are_refused() {
        for bad in [
            "\r", "\x0b", "\x0c", "\x01", "\x1b", "\x7f", "\u{a0}", "\u{85}", "\u{2028}", "é",
        ] {
            let m = invalid(check_ipset(&format!(
                "create s hash:ip\nadd s 10.0.0.1{bad}-file /x\n"
            )));
            assert!(m.contains("line 2"), "{bad:?}: {m}");
            let m = invalid(check_iptables(&format!(
                "*filter\n-A INPUT{bad}-M /x\nCOMMIT\n"
            )));
            assert!(m.contains("line 2"), "{bad:?}: {m}");
        }
        // CRLF line ends too.
        invalid(check_iptables("*filter\r\nCOMMIT\r\n"));
        // Too many words for iptables' argv.
        let many = vec!["-p"; IPTABLES_MAX_WORDS + 1].join(" ");
        invalid(check_iptables(&format!("*filter\n{many}\n")));
        let most = vec!["x"; IPTABLES_MAX_WORDS].join(" ");
        check_iptables(&format!("*filter\n-A {most}\n")).unwrap_err();
        check_iptables(&format!("*filter\n{most}\n")).unwrap();
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
