//! An independent model of how `iptables-restore` (nf_tables, 1.8.9) and `ipset restore`
//! (7.17) read a payload, written from the C sources' semantics (`fgets` into a fixed buffer,
//! C strings that end at a NUL, `strtok`, iptables' `tokenize_rule_counters` and
//! `add_param_to_argv`, ipset's `ipset_parse_stream` and `build_argv`), and the check that the
//! payload screen (`tsim_helper::payload`) saw, for every payload it accepts, exactly the lines
//! and words the tools see, none of them a refused one.
//!
//! Shared by the fuzz target `payload` and the helper's proptest (`helper/tests/payload_model.rs`
//! includes this file), so it uses nothing but `std` and `tsim_helper`.

use tsim_helper::payload;

/// ipset 7.17 `lib/ipset.c`: `char cmdline[MAX_CMDLINE_CHARS]`, `MAX_CMDLINE_CHARS` 1024.
pub const IPSET_CMDLINE: usize = 1024;
/// ipset 7.17 `lib/ipset.c`: `char *newargv[MAX_ARGS]`, `MAX_ARGS` 32.
pub const IPSET_NEWARGV: usize = 32;
/// iptables 1.8.9 `iptables/xtables-restore.c`: `char buffer[10240]`.
pub const IPTABLES_BUFFER: usize = 10240;
/// iptables 1.8.9 `iptables/xshared.c`: `struct xt_param_buf { char buffer[1024]; }`.
pub const IPTABLES_PARAM: usize = 1024;
/// iptables 1.8.9 `iptables/xshared.h`: `MAX_ARGC` 255.
pub const IPTABLES_ARGC: usize = 255;

/// `while (fgets(buf, size, f))`: each call reads up to `size - 1` bytes, stopping after a
/// `\n`; the last call may return a piece without one.
pub fn fgets(input: &[u8], size: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let mut n = 0;
        while n < size - 1 && n < rest.len() {
            n += 1;
            if rest[n - 1] == b'\n' {
                break;
            }
        }
        let (piece, tail) = rest.split_at(n);
        out.push(piece);
        rest = tail;
    }
    out
}

/// The C string in `buf`: up to its first NUL.
fn cstr(buf: &[u8]) -> &[u8] {
    match buf.iter().position(|&b| b == 0) {
        Some(at) => &buf[..at],
        None => buf,
    }
}

/// C `isspace` in the C locale.
fn c_isspace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// `strtok(from, delims)` on the C string `buf` (NUL-terminated by the end of the vector):
/// the token's start, and where the next call starts; writes the NUL after the token.
fn strtok(buf: &mut [u8], from: usize, delims: &[u8]) -> Option<(usize, usize)> {
    // The string strtok works on runs from `from` to the next NUL (a NUL it wrote before
    // ends the previous token, not this one).
    let from = from.min(buf.len());
    let len = from + cstr(&buf[from..]).len();
    let mut start = from;
    while start < len && delims.contains(&buf[start]) {
        start += 1;
    }
    if start >= len {
        return None;
    }
    let mut end = start;
    while end < len && !delims.contains(&buf[end]) {
        end += 1;
    }
    if end < len {
        buf[end] = 0;
        Some((start, end + 1))
    } else {
        Some((start, end))
    }
}

/// What `iptables-restore` does with one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IptablesLine {
    /// Skipped: empty, or a comment.
    Skip,
    Commit,
    Table,
    Chain,
    /// A rule: the words `add_param_to_argv` made of it (after the counters).
    Rule(Vec<Vec<u8>>),
    /// The tool stops here with this complaint (it reads no further line).
    Stop(&'static str),
}

/// `add_param_to_argv`, with `argc` argv entries already there.
fn add_param_to_argv(line: &[u8], mut argc: usize) -> Result<Vec<Vec<u8>>, &'static str> {
    let mut words = Vec::new();
    let mut add_argv = |words: &mut Vec<Vec<u8>>, w: Vec<u8>| {
        if argc + 1 >= IPTABLES_ARGC {
            return Err("Parser cannot handle more arguments");
        }
        argc += 1;
        words.push(w);
        Ok(())
    };
    let (mut quote_open, mut escaped) = (false, false);
    let mut param: Vec<u8> = Vec::new();
    let add_param = |param: &mut Vec<u8>, c: u8| {
        param.push(c);
        if param.len() >= IPTABLES_PARAM {
            Err("Parameter too long!")
        } else {
            Ok(())
        }
    };
    for &c in line {
        if quote_open {
            if escaped {
                add_param(&mut param, c)?;
                escaped = false;
                continue;
            } else if c == b'\\' {
                escaped = true;
                continue;
            } else if c == b'"' {
                quote_open = false;
            } else {
                add_param(&mut param, c)?;
                continue;
            }
        } else if c == b'"' {
            quote_open = true;
            continue;
        }
        match c {
            b'"' => {}
            b' ' | b'\t' | b'\n' => {
                if param.is_empty() {
                    continue;
                }
            }
            _ => {
                add_param(&mut param, c)?;
                continue;
            }
        }
        add_argv(&mut words, std::mem::take(&mut param))?;
    }
    if !param.is_empty() {
        add_argv(&mut words, param)?;
    }
    Ok(words)
}

/// `xtables_restore_parse`: every line `fgets` returns, and what the tool makes of it, up to
/// the line where it stops. Counters are taken as `--counters` would (three more argv).
pub fn iptables_restore(input: &[u8]) -> Vec<(&[u8], IptablesLine)> {
    let mut out = Vec::new();
    let mut in_table = false;
    for piece in fgets(input, IPTABLES_BUFFER) {
        let mut buf = cstr(piece).to_vec();
        let first = buf.first().copied();
        let outcome = if first.is_none() || first == Some(b'\n') {
            // An empty C string cannot come from fgets but a NUL first: it is skipped too
            // (`buffer[0]` is neither '\n' nor anything else: the rule path sees no words).
            if first.is_none() && in_table {
                IptablesLine::Rule(Vec::new())
            } else if first.is_none() {
                IptablesLine::Stop("line failed")
            } else {
                IptablesLine::Skip
            }
        } else if first == Some(b'#') {
            IptablesLine::Skip
        } else if in_table && buf.starts_with(b"COMMIT") && matches!(buf.get(6), None | Some(b'\n'))
        {
            in_table = false;
            IptablesLine::Commit
        } else if first == Some(b'*') && !in_table {
            match strtok(&mut buf, 1, b" \t\n") {
                Some(_) => {
                    in_table = true;
                    IptablesLine::Table
                }
                None => IptablesLine::Stop("table name invalid"),
            }
        } else if first == Some(b':') && in_table {
            IptablesLine::Chain
        } else if in_table {
            let mut argc = 3;
            let mut start = 0;
            let mut stop = None;
            if first == Some(b'[') {
                // tokenize_rule_counters
                match buf.iter().position(|&b| b == b']') {
                    None => stop = Some("need ]"),
                    Some(ptr) => match strtok(&mut buf, 1, b":") {
                        None => stop = Some("need :"),
                        Some((_, next)) => match strtok(&mut buf, next, b"]") {
                            None => stop = Some("need ]"),
                            Some(_) => {
                                argc += 3;
                                start = ptr + 1;
                            }
                        },
                    },
                }
            }
            match stop {
                Some(why) => IptablesLine::Stop(why),
                None => {
                    let rest = cstr(buf.get(start..).unwrap_or_default());
                    match add_param_to_argv(rest, argc) {
                        Ok(words) => IptablesLine::Rule(words),
                        Err(why) => IptablesLine::Stop(why),
                    }
                }
            }
        } else {
            IptablesLine::Stop("line failed")
        };
        let stops = matches!(outcome, IptablesLine::Stop(_));
        out.push((piece, outcome));
        if stops {
            break;
        }
    }
    out
}

/// What `ipset restore` does with one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpsetLine {
    Skip,
    Commit,
    /// A command: the words `build_argv` made of it.
    Command(Vec<Vec<u8>>),
    Stop(&'static str),
}

/// `build_argv` (ipset 7.17), transcribed with its quirks: the argv check before every byte,
/// quoted blanks kept, a quote left open by a blank at the end dropping the last word.
fn build_argv(buffer: &[u8]) -> Result<Vec<Vec<u8>>, &'static str> {
    let mut newargc = 1;
    let mut words = Vec::new();
    let mut arg: Vec<u8> = Vec::new();
    let mut quoted = false;
    for (k, &c) in buffer.iter().enumerate() {
        let next = buffer.get(k + 1).copied().unwrap_or(0);
        if newargc + 1 == IPSET_NEWARGV {
            return Err("Line is too long to parse.");
        }
        match c {
            b'"' => {
                quoted = !quoted;
                if next != 0 {
                    continue;
                }
            }
            b' ' | b'\r' | b'\n' | b'\t' => {
                if quoted {
                    arg.push(c);
                    continue;
                }
            }
            _ => {
                arg.push(c);
                if next != 0 {
                    continue;
                }
            }
        }
        if next == 0 && quoted {
            return Err("Missing close quote!");
        }
        if arg.is_empty() {
            continue;
        }
        words.push(std::mem::take(&mut arg));
        newargc += 1;
    }
    Ok(words)
}

/// `ipset_parse_stream`: every line `fgets` returns and what the tool makes of it, up to the
/// line where it stops.
pub fn ipset_restore(input: &[u8]) -> Vec<(&[u8], IpsetLine)> {
    let mut out = Vec::new();
    for piece in fgets(input, IPSET_CMDLINE) {
        let line = cstr(piece);
        let skip = line.iter().take_while(|&&b| c_isspace(b)).count();
        let c = &line[skip..];
        let outcome = if c.is_empty() || c[0] == b'#' {
            IpsetLine::Skip
        } else if c == b"COMMIT\n" || c == b"COMMIT\r\n" {
            IpsetLine::Commit
        } else {
            match build_argv(c) {
                Ok(words) => IpsetLine::Command(words),
                Err(why) => IpsetLine::Stop(why),
            }
        };
        let stops = matches!(outcome, IpsetLine::Stop(_));
        out.push((piece, outcome));
        if stops {
            break;
        }
    }
    out
}

/// Whether `getopt_long` could take `word` for a long option `full` (a prefix of it).
fn long(word: &[u8], full: &str) -> bool {
    let Some(name) = word.strip_prefix(b"--") else {
        return false;
    };
    let name = name.split(|&b| b == b'=').next().unwrap_or_default();
    !name.is_empty() && full.as_bytes().starts_with(name)
}

/// The first word of a rule that makes `iptables-restore` act outside the namespace: `-M` /
/// `--modprobe` (also in a bundle), `--object-pinned`, a jump or goto to `IDLETIMER` or `LED`.
pub fn iptables_danger(words: &[Vec<u8>]) -> Option<String> {
    for (i, w) in words.iter().enumerate() {
        let next = words.get(i + 1);
        let mut target: Option<&[u8]> = None;
        if long(w, "modprobe") || long(w, "object-pinned") {
            return Some(String::from_utf8_lossy(w).into_owned());
        }
        if long(w, "jump") || long(w, "goto") {
            target = match w.iter().position(|&b| b == b'=') {
                Some(at) => Some(&w[at + 1..]),
                None => next.map(Vec::as_slice),
            };
        } else if w.len() > 1 && w[0] == b'-' && w[1] != b'-' {
            for (at, &letter) in w.iter().enumerate().skip(1) {
                if b"Vfbvnx46h".contains(&letter) {
                    continue;
                }
                if letter == b'M' {
                    return Some(String::from_utf8_lossy(w).into_owned());
                }
                if letter == b'j' || letter == b'g' {
                    let attached = &w[at + 1..];
                    target = if attached.is_empty() {
                        next.map(Vec::as_slice)
                    } else {
                        Some(attached)
                    };
                }
                break;
            }
        }
        if matches!(target, Some(b"IDLETIMER" | b"LED")) {
            return Some(String::from_utf8_lossy(w).into_owned());
        }
    }
    None
}

/// `ipset_match_cmd`: `arg` (two leading dashes ignored) is a prefix of one of `names`.
fn ipset_cmd(arg: &[u8], names: &[&str]) -> bool {
    let skip = if arg.starts_with(b"--") { 2 } else { 0 };
    if arg.len() <= skip || arg == b"-" {
        return false;
    }
    names.iter().any(|n| n.as_bytes().starts_with(&arg[skip..]))
}

/// The first word of an ipset command that reads or writes a file, or names a command that
/// does: the `-file` option (`-f`, one of two leading dashes ignored), or `list`, `save`,
/// `restore` (by prefix, as the tool matches them) as the command.
pub fn ipset_danger(words: &[Vec<u8>]) -> Option<String> {
    for w in words {
        let opt = if w.starts_with(b"--") {
            &w[1..]
        } else {
            &w[..]
        };
        if opt == b"-f" || opt == b"-file" {
            return Some(String::from_utf8_lossy(w).into_owned());
        }
    }
    // The command: the first word that is not an option without argument (the tool takes
    // those out first).
    const ENVOPTS: [&[u8]; 12] = [
        b"-exist",
        b"-!",
        b"-quiet",
        b"-q",
        b"-sorted",
        b"-s",
        b"-resolve",
        b"-r",
        b"-name",
        b"-n",
        b"-terse",
        b"-t",
    ];
    let command = words.iter().find(|w| {
        let opt = if w.starts_with(b"--") {
            &w[1..]
        } else {
            &w[..]
        };
        !ENVOPTS.contains(&opt)
    })?;
    let file_commands: [&[&str]; 3] = [&["list", "-L"], &["save", "-S"], &["restore", "-R"]];
    // The commands the tool tries before these, in its table's order.
    let earlier: [&[&str]; 5] = [
        &["create", "new", "-N"],
        &["add", "-A"],
        &["del", "-D"],
        &["test", "-T"],
        &["destroy", "x", "-X"],
    ];
    if earlier.iter().any(|names| ipset_cmd(command, names)) {
        return None;
    }
    file_commands
        .iter()
        .any(|names| ipset_cmd(command, names))
        .then(|| String::from_utf8_lossy(command).into_owned())
}

fn show(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    if s.len() > 200 {
        let head: String = s.chars().take(200).collect();
        format!("{head}... ({} bytes)", s.len())
    } else {
        s.into_owned()
    }
}

/// Runs both screens on `payload`; for every payload a screen accepts, checks that the model
/// of its tool reads the same lines and the same words, and none that acts outside the
/// namespace. Panics (a fuzz crash, a failed property) when they disagree.
pub fn agree(payload: &str) {
    let bytes = payload.as_bytes();

    let screened = payload::iptables_lines(payload);
    if payload::check_iptables(payload).is_ok() {
        let lines = screened.expect("an accepted payload has lines");
        let model = iptables_restore(bytes);
        let pieces = fgets(bytes, IPTABLES_BUFFER);
        let texts: Vec<&[u8]> = lines.iter().map(|l| l.text.as_bytes()).collect();
        assert_eq!(
            texts, pieces,
            "iptables: the screen's lines are not fgets's"
        );
        for ((piece, outcome), line) in model.iter().zip(&lines) {
            match outcome {
                IptablesLine::Rule(words) => {
                    let seen: Vec<&[u8]> =
                        line.words.iter().flatten().map(|w| w.as_bytes()).collect();
                    let words: Vec<&[u8]> = words.iter().map(Vec::as_slice).collect();
                    assert_eq!(
                        seen,
                        words,
                        "iptables line {}: the screen's words are not the tool's: {}",
                        line.number,
                        show(piece)
                    );
                }
                IptablesLine::Stop(
                    why @ ("Parameter too long!"
                    | "Parser cannot handle more arguments"
                    | "need ]"
                    | "need :"),
                ) => {
                    panic!(
                        "iptables line {}: accepted, but the tool cannot split it ({why}): {}",
                        line.number,
                        show(piece)
                    )
                }
                _ => {}
            }
            if let IptablesLine::Rule(words) = outcome {
                if let Some(word) = iptables_danger(words) {
                    panic!(
                        "iptables line {}: accepted with {word:?}: {}",
                        line.number,
                        show(piece)
                    );
                }
            }
        }
    }

    let screened = payload::ipset_lines(payload);
    if payload::check_ipset(payload).is_ok() {
        let lines = screened.expect("an accepted payload has lines");
        let model = ipset_restore(bytes);
        let pieces = fgets(bytes, IPSET_CMDLINE);
        let texts: Vec<&[u8]> = lines.iter().map(|l| l.text.as_bytes()).collect();
        assert_eq!(texts, pieces, "ipset: the screen's lines are not fgets's");
        for ((piece, outcome), line) in model.iter().zip(&lines) {
            let n = line.number;
            match outcome {
                IpsetLine::Skip => assert!(
                    line.words.is_none(),
                    "ipset line {n}: the tool skips it, the screen split it: {}",
                    show(piece)
                ),
                IpsetLine::Commit => panic!("ipset line {n}: accepted a COMMIT: {}", show(piece)),
                IpsetLine::Stop(why) => panic!(
                    "ipset line {n}: accepted, but the tool cannot split it ({why}): {}",
                    show(piece)
                ),
                IpsetLine::Command(words) => {
                    let seen: Vec<&[u8]> =
                        line.words.iter().flatten().map(|w| w.as_bytes()).collect();
                    let words_: Vec<&[u8]> = words.iter().map(Vec::as_slice).collect();
                    assert_eq!(
                        seen,
                        words_,
                        "ipset line {n}: the screen's words are not the tool's: {}",
                        show(piece)
                    );
                    if let Some(word) = ipset_danger(words) {
                        panic!("ipset line {n}: accepted with {word:?}: {}", show(piece));
                    }
                }
            }
        }
    }
}
