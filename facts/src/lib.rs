//! Router facts and the topology compiler: reading a directory of raw (`<router>_facts.txt`)
//! or JSON (`<router>.json`) facts, and turning them into the topology document the helper
//! applies.
//!
//! Pure: no privileges, no helper, no async runtime (crate `tsim-facts`, re-exported by
//! `tsim-client` as `tsim_client::facts`).

use std::fmt;
use std::path::{Path, PathBuf};

pub mod compile;
pub mod firewall;
pub mod internet;
pub mod ipaddr;
pub mod iproute;
pub mod json;
pub mod raw;

pub use compile::{Plan, compile};

/// A problem in a facts file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactsError {
    /// The file.
    pub file: PathBuf,
    /// The 1-based line (0 when the problem is the whole file).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl FactsError {
    /// A problem at `line` of `file`.
    pub fn new(file: &Path, line: usize, message: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for FactsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
        }
    }
}

impl std::error::Error for FactsError {}

/// A policy routing table section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableFacts {
    /// What follows `routing_table_` in the section name (`100`, `priority_table`).
    pub name: String,
    /// The table id its `COMMAND:` line names (`ip route show table 100`).
    pub command_id: Option<u32>,
    /// Its route lines.
    pub lines: Vec<(usize, String)>,
    /// Whether the collector failed to read it (`Error:`, `does not exist`).
    pub broken: bool,
}

/// What one router's facts say, before compiling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterFacts {
    /// The router's name (the file name without `_facts.txt` or `.json`).
    pub name: String,
    /// The file.
    pub source: PathBuf,
    /// Its interfaces (`interfaces` section).
    pub interfaces: Vec<ipaddr::IfaceFacts>,
    /// Main-table route lines (`routing_table` or `routing_table_main`).
    pub main_routes: Vec<(usize, String)>,
    /// Policy tables (`routing_table_<id|name>`).
    pub tables: Vec<TableFacts>,
    /// Policy rule lines (`policy_rules`).
    pub rules: Vec<(usize, String)>,
    /// Table names (`rt_tables`).
    pub rt_tables: Vec<(u32, String)>,
    /// `iptables_save` content.
    pub iptables: Option<String>,
    /// `ipset_save` content.
    pub ipset: Option<String>,
    /// `key = value` lines of a `sysctl` section (as `sysctl -a` prints them), with their
    /// line numbers: the router's own ICMP redirect settings, which override the
    /// simulator's (see [`compile()`]).
    pub sysctls: Vec<(usize, String)>,
    /// Lines that could not be read, with why.
    pub problems: Vec<(usize, String)>,
}

impl RouterFacts {
    /// Facts with nothing in them yet.
    pub fn empty(name: &str, source: &Path) -> Self {
        Self {
            name: name.to_owned(),
            source: source.to_owned(),
            interfaces: Vec::new(),
            main_routes: Vec::new(),
            tables: Vec::new(),
            rules: Vec::new(),
            rt_tables: Vec::new(),
            iptables: None,
            ipset: None,
            sysctls: Vec::new(),
            problems: Vec::new(),
        }
    }
}

/// Reads one raw facts file.
pub fn load_raw(path: &Path, name: &str) -> Result<RouterFacts, FactsError> {
    let text = raw::read_text(path)?;
    parse_raw(path, name, &text)
}

/// Parses the text of one raw facts file (`path` is only named in errors): what
/// [`load_raw`] does once the file is read, for callers that already hold the text.
pub fn parse_raw(path: &Path, name: &str, text: &str) -> Result<RouterFacts, FactsError> {
    let mut router = RouterFacts::empty(name, path);
    for section in raw::parse(path, text)? {
        match section.name.as_str() {
            "interfaces" => router.interfaces = ipaddr::parse(&section.lines, &mut router.problems),
            "routing_table" | "routing_table_main" => router.main_routes = section.lines,
            "policy_rules" => router.rules = section.lines,
            "rt_tables" => {
                for (_, line) in &section.lines {
                    let mut words = line.split_whitespace();
                    if let (Some(id), Some(name)) = (words.next(), words.next()) {
                        if let (false, Ok(id)) = (id.starts_with('#'), id.parse()) {
                            router.rt_tables.push((id, name.to_owned()));
                        }
                    }
                }
            }
            "iptables_save" => router.iptables = Some(section.text()),
            "sysctl" => router.sysctls = section.lines,
            "ipset_save" => router.ipset = Some(section.text()),
            name if name.starts_with("routing_table_") => {
                let text = section.text();
                let broken = text.contains("Error:")
                    || text.contains("does not exist")
                    || section.exit_code.is_some_and(|c| c != 0);
                let command_id = section.command.as_deref().and_then(|c| {
                    let words: Vec<&str> = c.split_whitespace().collect();
                    words
                        .windows(2)
                        .find(|w| w[0] == "table")
                        .and_then(|w| w[1].parse().ok())
                });
                router.tables.push(TableFacts {
                    name: name["routing_table_".len()..].to_owned(),
                    command_id,
                    lines: section.lines,
                    broken,
                });
            }
            _ => {}
        }
    }
    Ok(router)
}

/// Reads every router of a facts directory: raw facts (`*_facts.txt`) if there are any,
/// otherwise JSON facts (`*.json`, except names with `_`, such as `<router>_metadata.json`).
pub fn load_dir(dir: &Path) -> Result<Vec<RouterFacts>, FactsError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| FactsError::new(dir, 0, format!("cannot read the directory: {e}")))?;
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    let raw_files: Vec<(PathBuf, String)> = files
        .iter()
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.strip_suffix("_facts.txt")?;
            Some((p.clone(), name.to_owned()))
        })
        .collect();
    if !raw_files.is_empty() {
        return raw_files.iter().map(|(p, n)| load_raw(p, n)).collect();
    }
    let json_files: Vec<(PathBuf, String)> = files
        .iter()
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.strip_suffix(".json")?;
            (!name.contains('_')).then(|| (p.clone(), name.to_owned()))
        })
        .collect();
    if json_files.is_empty() {
        return Err(FactsError::new(
            dir,
            0,
            "no facts here (expected <router>_facts.txt or <router>.json files)",
        ));
    }
    json_files.iter().map(|(p, n)| json::load(p, n)).collect()
}
