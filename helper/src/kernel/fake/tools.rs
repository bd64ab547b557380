//! The fake kernel's firewall, driven as the helper drives the real one: `iptables-save`,
//! `iptables-restore [--noflush]` (and the IPv6 pair) and `ipset save|restore [-exist]|destroy`
//! on text payloads, with the tools' own answers (a refused payload changes nothing and names
//! its line, as `iptables-restore: line N failed` and `Error in line N` do).
//!
//! It models the tables, chains, policies and rule lines (rules are kept as the text after
//! the chain's name, which is what `iptables-save` prints back for a rule given in its own
//! form), and ipset's sets and members. Matches, targets and counters are not interpreted.
//! Checked against iptables 1.8.9 (nft) and ipset 7.17 in a throwaway namespace:
//! `iptables-restore` refuses a payload whole and names the line (`line 3 failed`), and
//! with `--noflush` a declared chain that exists is flushed; `ipset restore` applies lines in
//! order and stops at the first refused one (`Error in line 2: ...`), keeping those before.

use std::collections::BTreeMap;

use crate::kernel::tools::{Output, Tool};

/// The built-in chains of each table, in `iptables-save` order.
const BUILTIN: [(&str, &[&str]); 4] = [
    ("filter", &["INPUT", "FORWARD", "OUTPUT"]),
    ("nat", &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"]),
    (
        "mangle",
        &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
    ),
    ("raw", &["PREROUTING", "OUTPUT"]),
];

fn builtins(table: &str) -> Option<&'static [&'static str]> {
    BUILTIN.iter().find(|(t, _)| *t == table).map(|(_, c)| *c)
}

/// One chain: its policy (`None` for a user chain) and its rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Chain {
    policy: Option<String>,
    rules: Vec<String>,
}

/// One table, its chains in the order they were made (built-ins first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Table {
    chains: Vec<(String, Chain)>,
}

impl Table {
    fn fresh(name: &str) -> Option<Self> {
        let chains = builtins(name)?
            .iter()
            .map(|c| {
                let chain = Chain {
                    policy: Some("ACCEPT".into()),
                    rules: Vec::new(),
                };
                ((*c).to_owned(), chain)
            })
            .collect();
        Some(Self { chains })
    }

    fn chain(&mut self, name: &str) -> Option<&mut Chain> {
        self.chains
            .iter_mut()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c)
    }
}

/// One family's tables (only those loaded: `iptables-save` prints no other).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Iptables {
    tables: BTreeMap<String, Table>,
}

/// The sets: each one's `create` line (after the name) and its members, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Ipsets {
    sets: BTreeMap<String, (String, Vec<String>)>,
}

/// A namespace's firewall.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Firewall {
    v4: Iptables,
    v6: Iptables,
    sets: Ipsets,
}

fn ok(stdout: String) -> Output {
    Output {
        success: true,
        status: "exit status: 0".into(),
        stdout,
        stderr: String::new(),
    }
}

fn failed(stderr: String) -> Output {
    Output {
        success: false,
        status: "exit status: 1".into(),
        stdout: String::new(),
        stderr,
    }
}

impl Firewall {
    /// The firewall in a canonical text, for comparing states. A table that is loaded but
    /// empty, with ACCEPT policies, counts as not loaded: no undo can unload a table
    /// (`iptables-restore` has no way to), and such a table changes no packet.
    pub(super) fn canonical(&self) -> String {
        let family = |f: &Iptables| {
            let mut f = f.clone();
            f.tables
                .retain(|name, t| Table::fresh(name).as_ref() != Some(t));
            f.save(None)
        };
        format!(
            "iptables:\n{}ip6tables:\n{}ipset:\n{}",
            family(&self.v4),
            family(&self.v6),
            self.sets.save()
        )
    }

    /// Whether running `tool` with `args` would change something (the fake counts those as
    /// changes, which a test can make fail).
    pub(super) fn changes(tool: Tool, args: &[&str]) -> bool {
        match tool {
            Tool::IptablesRestore | Tool::Ip6tablesRestore => true,
            Tool::Ipset => matches!(args.first(), Some(&"restore" | &"destroy")),
            _ => false,
        }
    }

    /// Runs `tool` as the real one would run inside the namespace.
    pub(super) fn run(&mut self, tool: Tool, args: &[&str], stdin: Option<&str>) -> Output {
        let input = stdin.unwrap_or("");
        match tool {
            Tool::IptablesSave | Tool::Ip6tablesSave => {
                let only = match args {
                    ["-t", table] => Some(*table),
                    [] => None,
                    _ => return failed(format!("fake: unmodelled arguments {args:?}")),
                };
                let family = if tool == Tool::IptablesSave {
                    &self.v4
                } else {
                    &self.v6
                };
                ok(family.save(only))
            }
            Tool::IptablesRestore | Tool::Ip6tablesRestore => {
                let noflush = match args {
                    [] => false,
                    ["--noflush"] => true,
                    _ => return failed(format!("fake: unmodelled arguments {args:?}")),
                };
                let family = if tool == Tool::IptablesRestore {
                    &mut self.v4
                } else {
                    &mut self.v6
                };
                match family.restore(input, noflush) {
                    Ok(next) => {
                        *family = next;
                        ok(String::new())
                    }
                    Err(line) => failed(format!("{}: line {line} failed\n", tool.name())),
                }
            }
            Tool::Ipset => match args {
                ["save"] => ok(self.sets.save()),
                ["destroy"] => {
                    self.sets.sets.clear();
                    ok(String::new())
                }
                ["restore"] | ["restore", "-exist"] => {
                    match self.sets.restore(input, args.len() == 2) {
                        Ok(()) => ok(String::new()),
                        Err((line, why)) => {
                            failed(format!("ipset v7.17: Error in line {line}: {why}\n"))
                        }
                    }
                }
                _ => failed(format!("fake: unmodelled arguments {args:?}")),
            },
        }
    }
}

impl Iptables {
    fn save(&self, only: Option<&str>) -> String {
        let mut out = String::new();
        for (name, table) in &self.tables {
            if only.is_some_and(|t| t != name) {
                continue;
            }
            out += &format!("*{name}\n");
            for (chain, c) in &table.chains {
                let policy = c.policy.as_deref().unwrap_or("-");
                out += &format!(":{chain} {policy} [0:0]\n");
            }
            for (chain, c) in &table.chains {
                for rule in &c.rules {
                    out += &format!("-A {chain} {rule}\n");
                }
            }
            out += "COMMIT\n";
        }
        out
    }

    /// The tables after restoring `payload`, or the number of the line refused. All or
    /// nothing.
    fn restore(&self, payload: &str, noflush: bool) -> Result<Self, usize> {
        let mut next = self.clone();
        let mut current: Option<(String, Table)> = None;
        for (i, raw) in payload.lines().enumerate() {
            let n = i + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(name) = line.strip_prefix('*') {
                if current.is_some() {
                    return Err(n);
                }
                let table = if noflush {
                    next.tables
                        .get(name)
                        .cloned()
                        .or_else(|| Table::fresh(name))
                } else {
                    Table::fresh(name)
                };
                current = Some((name.to_owned(), table.ok_or(n)?));
                continue;
            }
            let Some((name, table)) = current.as_mut() else {
                return Err(n);
            };
            if line == "COMMIT" {
                next.tables.insert(name.clone(), std::mem::take(table));
                current = None;
                continue;
            }
            if let Some(decl) = line.strip_prefix(':') {
                let mut words = decl.split_whitespace();
                let (chain, policy) = (words.next().ok_or(n)?, words.next().ok_or(n)?);
                let builtin = builtins(name).is_some_and(|b| b.contains(&chain));
                match (builtin, policy) {
                    (true, "ACCEPT" | "DROP") => {
                        table.chain(chain).ok_or(n)?.policy = Some(policy.to_owned());
                    }
                    (false, "-") => match table.chain(chain) {
                        // --noflush: a declared chain that exists is flushed.
                        Some(c) => c.rules.clear(),
                        None => table.chains.push((chain.to_owned(), Chain::default())),
                    },
                    _ => return Err(n),
                }
                continue;
            }
            let (command, rest) = line.split_once(' ').ok_or(n)?;
            let (chain, rule) = match rest.trim().split_once(' ') {
                Some((c, r)) => (c, r.trim()),
                None => (rest.trim(), ""),
            };
            match command {
                "-A" | "--append" if !rule.is_empty() => {
                    table.chain(chain).ok_or(n)?.rules.push(rule.to_owned());
                }
                "-I" | "--insert" if !rule.is_empty() => {
                    table
                        .chain(chain)
                        .ok_or(n)?
                        .rules
                        .insert(0, rule.to_owned());
                }
                "-D" | "--delete" if !rule.is_empty() => {
                    let rules = &mut table.chain(chain).ok_or(n)?.rules;
                    let at = rules.iter().position(|r| r == rule).ok_or(n)?;
                    rules.remove(at);
                }
                "-F" | "--flush" if rule.is_empty() => table.chain(chain).ok_or(n)?.rules.clear(),
                "-N" | "--new-chain" if rule.is_empty() => {
                    if table.chain(chain).is_some() {
                        return Err(n);
                    }
                    table.chains.push((chain.to_owned(), Chain::default()));
                }
                "-X" | "--delete-chain" if rule.is_empty() => {
                    let at = table
                        .chains
                        .iter()
                        .position(|(c, x)| c == chain && x.policy.is_none());
                    let at = at.ok_or(n)?;
                    let referenced = table.chains.iter().any(|(_, c)| {
                        c.rules
                            .iter()
                            .any(|r| r.split_whitespace().any(|w| w == chain))
                    });
                    if referenced || !table.chains[at].1.rules.is_empty() {
                        return Err(n);
                    }
                    table.chains.remove(at);
                }
                _ => return Err(n),
            }
        }
        match current {
            // A table without COMMIT is refused at the end of the input.
            Some(_) => Err(payload.lines().count().max(1)),
            None => Ok(next),
        }
    }
}

impl Ipsets {
    fn save(&self) -> String {
        let mut out = String::new();
        for (name, (create, members)) in &self.sets {
            out += &format!("create {name} {create}\n");
            for m in members {
                out += &format!("add {name} {m}\n");
            }
        }
        out
    }

    /// Applies `payload` line by line, as `ipset restore` does: the lines before a refused
    /// one stay applied.
    fn restore(&mut self, payload: &str, exist: bool) -> Result<(), (usize, String)> {
        let next = self;
        for (i, raw) in payload.lines().enumerate() {
            let n = i + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line == "COMMIT" {
                continue;
            }
            let mut words = line.splitn(3, ' ');
            let (command, name, rest) = (
                words.next().unwrap_or_default(),
                words.next().unwrap_or_default(),
                words.next().unwrap_or_default().trim().to_owned(),
            );
            if name.is_empty() {
                return Err((n, "Missing set name".into()));
            }
            match command {
                "create" | "-N" => match next.sets.get(name) {
                    Some((same, _)) if exist && *same == rest => {}
                    Some(_) => {
                        return Err((
                            n,
                            "Set cannot be created: set with the same name already exists".into(),
                        ));
                    }
                    None => {
                        next.sets.insert(name.to_owned(), (rest, Vec::new()));
                    }
                },
                "add" | "-A" => {
                    let Some((_, members)) = next.sets.get_mut(name) else {
                        return Err((n, "The set with the given name does not exist".into()));
                    };
                    if members.contains(&rest) {
                        if !exist {
                            return Err((
                                n,
                                "Element cannot be added to the set: it's already added".into(),
                            ));
                        }
                    } else {
                        members.push(rest);
                    }
                }
                _ => return Err((n, format!("Unknown command {command}"))),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(fw: &mut Firewall, tool: Tool, args: &[&str], stdin: &str) -> Output {
        fw.run(tool, args, Some(stdin))
    }

    #[test]
    fn iptables_restores_saves_and_refuses_whole() {
        let mut fw = Firewall::default();
        assert_eq!(fw.run(Tool::IptablesSave, &[], None).stdout, "");
        let payload = "*filter\n:INPUT DROP [0:0]\n:LOGS - [0:0]\n-A INPUT -j LOGS\n-A LOGS -j ACCEPT\nCOMMIT\n";
        assert!(run(&mut fw, Tool::IptablesRestore, &[], payload).success);
        let saved = fw.run(Tool::IptablesSave, &[], None).stdout;
        assert_eq!(
            saved,
            "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:LOGS - [0:0]\n-A INPUT -j LOGS\n-A LOGS -j ACCEPT\nCOMMIT\n"
        );
        // A bad line refuses everything and names itself.
        let before = fw.clone();
        let out = run(
            &mut fw,
            Tool::IptablesRestore,
            &[],
            "*filter\n-A INPUT -j ACCEPT\n-A NOPE -j DROP\nCOMMIT\n",
        );
        assert!(!out.success);
        assert_eq!(out.failed_line(), Some(3));
        assert_eq!(fw, before);
        // --noflush appends, and a deleted rule goes.
        assert!(
            run(
                &mut fw,
                Tool::IptablesRestore,
                &["--noflush"],
                "*filter\n-A INPUT -j DROP\n-D LOGS -j ACCEPT\nCOMMIT\n"
            )
            .success
        );
        let saved = fw.run(Tool::IptablesSave, &["-t", "filter"], None).stdout;
        assert!(
            saved.contains("-A INPUT -j LOGS\n-A INPUT -j DROP\n"),
            "{saved}"
        );
        assert!(!saved.contains("-A LOGS"), "{saved}");
        // Restored as saved, the state is the same.
        let again = fw.clone();
        assert!(run(&mut fw, Tool::IptablesRestore, &[], &saved).success);
        assert_eq!(fw, again);
    }

    #[test]
    fn ipset_restores_line_by_line() {
        let mut fw = Firewall::default();
        assert!(
            run(
                &mut fw,
                Tool::Ipset,
                &["restore"],
                "create a hash:ip family inet\nadd a 10.0.0.1\n"
            )
            .success
        );
        // As the real one (checked with ipset 7.17): the lines before a refused one stay.
        let out = run(
            &mut fw,
            Tool::Ipset,
            &["restore"],
            "add a 10.0.0.2\nadd a 10.0.0.1\n",
        );
        assert_eq!(out.failed_line(), Some(2));
        let saved = fw.run(Tool::Ipset, &["save"], None).stdout;
        assert!(saved.contains("add a 10.0.0.2\n"), "{saved}");
        assert!(
            run(
                &mut fw,
                Tool::Ipset,
                &["restore", "-exist"],
                "add a 10.0.0.2\nadd a 10.0.0.1\n"
            )
            .success
        );
        assert_eq!(
            fw.run(Tool::Ipset, &["save"], None).stdout,
            "create a hash:ip family inet\nadd a 10.0.0.1\nadd a 10.0.0.2\n"
        );
        assert!(fw.run(Tool::Ipset, &["destroy"], None).success);
        assert_eq!(fw, Firewall::default());
    }
}
