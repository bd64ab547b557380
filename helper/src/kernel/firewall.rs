//! Running the firewall tools inside a namespace, and the payloads that put a namespace's
//! firewall back as it was.

use tsim_protocol::NsName;

use crate::base::error::{HelperError, chain};
use crate::kernel::jail::Jail;
use crate::kernel::netns::Netns;
use crate::kernel::tools::{self, Output, Tool, Tools};
use crate::pure::payload;

/// Payloads up to this size are screened on the runtime worker; larger ones off it.
const SCREEN_INLINE_BYTES: usize = 64 * 1024;

/// What running a firewall tool needs: where the tools are, their jail, the namespaces to
/// run them in, and the policy for payloads.
#[derive(Debug, Clone, Copy)]
pub struct Firewall<'a> {
    /// The tools found at start.
    pub tools: &'a Tools,
    /// Their jail.
    pub jail: &'a Jail,
    /// The namespaces.
    pub netns: &'a Netns,
    /// Whether payloads are screened (always, but for a debug build's test switch).
    pub screen: bool,
    /// `--allow-unjailed-tools`: run payloads where the jail is incomplete.
    pub allow_unjailed: bool,
}

impl Firewall<'_> {
    /// Runs `tool` with `args` inside namespace `ns` (inode `ino`), with `stdin` as its input.
    ///
    /// Every payload for a restoring tool passes the screening of [`payload`] first, and every
    /// run enters the tools' jail ([`crate::kernel::jail`]): this is the only place the helper starts
    /// those tools. Where the kernel lacks Landlock, payloads are refused unless
    /// `--allow-unjailed-tools` is given.
    pub async fn run(
        &self,
        ns: &NsName,
        ino: u64,
        tool: Tool,
        args: &[&str],
        stdin: Option<String>,
    ) -> Result<Output, HelperError> {
        #[cfg(test)]
        if let Some(fake) = self.netns.fake() {
            self.screen(tool, stdin.as_deref())?;
            return Ok(fake.run_tool(ns, ino, tool, args, stdin.as_deref())?);
        }
        let Some(path) = self.tools.path(tool) else {
            return Err(HelperError::Unsupported(format!(
                "{} is not installed on the helper's machine (Debian package {})",
                tool.name(),
                tool.package()
            )));
        };
        if stdin.is_some() && !self.jail.complete() && !self.allow_unjailed {
            return Err(HelperError::Unsupported(format!(
                "Firewall payloads are refused: the tools' jail is incomplete here ({}); start the helper with --allow-unjailed-tools to run them anyway",
                self.jail.describe()
            )));
        }
        self.screen(tool, stdin.as_deref())?;
        let mut command = tools::command(path, args);
        self.jail.attach(&mut command, tool);
        let child = self.netns.spawn_in(ns, ino, command).await?.map_err(|e| {
            HelperError::Unsupported(format!("Cannot run {}: {}", path.display(), chain(&e)))
        })?;
        tools::communicate(child, stdin)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::TimedOut => HelperError::Timeout(format!(
                    "{} did not finish within {} s in namespace {ns}",
                    tool.name(),
                    tools::TOOL_TIMEOUT.as_secs()
                )),
                _ => HelperError::Internal(format!("Cannot talk to {}: {e}", tool.name())),
            })
    }

    /// Screens a payload for `tool` (see [`payload`]), unless screening is off.
    fn screen(&self, tool: Tool, stdin: Option<&str>) -> Result<(), HelperError> {
        let Some(text) = stdin.filter(|_| self.screen) else {
            return Ok(());
        };
        let screen = || match tool {
            Tool::IptablesRestore | Tool::Ip6tablesRestore => payload::check_iptables(text),
            Tool::Ipset => payload::check_ipset(text),
            _ => Ok(()),
        };
        // Screening is linear, but a payload of megabytes takes milliseconds: off the
        // runtime worker then (the runtime is multi-threaded, so the others go on).
        if text.len() > SCREEN_INLINE_BYTES {
            tokio::task::block_in_place(screen)
        } else {
            screen()
        }
    }

    /// Runs `tool`, turning a failure into an error that names the namespace, the line the tool
    /// reported, and its complaint.
    pub async fn run_checked(
        &self,
        ns: &NsName,
        ino: u64,
        tool: Tool,
        args: &[&str],
        stdin: Option<String>,
    ) -> Result<String, HelperError> {
        let out = self.run(ns, ino, tool, args, stdin).await?;
        if out.success {
            return Ok(out.stdout);
        }
        let complaint = out.complaint();
        let at = out
            .failed_line()
            .map(|line| format!(" at line {line}"))
            .unwrap_or_default();
        // ipset: "Kernel error received: set type not supported" (a module the kernel lacks).
        let lacks_support = complaint.contains("not supported");
        Err(if lacks_support {
            HelperError::Unsupported(format!(
                "{} failed{at} in namespace {ns}: the kernel lacks what the payload needs: {complaint}",
                tool.name()
            ))
        } else if !at.is_empty() {
            HelperError::InvalidArgument(format!(
                "{} rejected the payload{at} in namespace {ns}: {complaint}",
                tool.name()
            ))
        } else {
            HelperError::Kernel(format!(
                "{} failed in namespace {ns}: {complaint}",
                tool.name()
            ))
        })
    }
}

/// A payload line a tool refused, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The line (or, for a set, its `create` line).
    pub line: String,
    /// What the tool said.
    pub why: String,
}

impl Firewall<'_> {
    /// Restores `payload` with `tool` inside `ns`, leaving out what the tool refuses: on a failure
    /// at a line, that line (for an ipset `create`, the whole set) is taken out and the rest
    /// restored again. Returns what was left out. Errors only when the tool cannot run, or fails
    /// without naming a line.
    pub async fn restore_skipping(
        &self,
        ns: &NsName,
        ino: u64,
        tool: Tool,
        args: &[&str],
        payload: &str,
    ) -> Result<Vec<Skipped>, HelperError> {
        const MAX_ATTEMPTS: usize = 64;
        let mut lines: Vec<String> = payload.lines().map(str::to_owned).collect();
        let mut skipped = Vec::new();
        for _ in 0..MAX_ATTEMPTS {
            let text = lines.join("\n") + "\n";
            let out = self.run(ns, ino, tool, args, Some(text)).await?;
            if out.success {
                return Ok(skipped);
            }
            let why = out.complaint();
            let Some(at) = out
                .failed_line()
                .map(|n| n as usize)
                .filter(|n| (1..=lines.len()).contains(n))
            else {
                return Err(HelperError::Kernel(format!(
                    "{} failed in namespace {ns}: {why}",
                    tool.name()
                )));
            };
            let bad = lines[at - 1].clone();
            let words: Vec<&str> = bad.split_whitespace().collect();
            match (tool, words.as_slice()) {
                (Tool::Ipset, ["create", set, ..]) => {
                    let set = (*set).to_owned();
                    lines.retain(|l| {
                        let w: Vec<&str> = l.split_whitespace().collect();
                        !(w.len() >= 2 && matches!(w[0], "create" | "add") && w[1] == set)
                    });
                }
                (_, [first, ..])
                    if first.starts_with('*') || first.starts_with(':') || *first == "COMMIT" =>
                {
                    return Err(HelperError::InvalidArgument(format!(
                        "{} rejected line {at} ({bad:?}) in namespace {ns}, which cannot be left out: {why}",
                        tool.name()
                    )));
                }
                _ => {
                    lines.remove(at - 1);
                }
            }
            skipped.push(Skipped { line: bad, why });
        }
        Err(HelperError::Kernel(format!(
            "{} kept failing in namespace {ns}",
            tool.name()
        )))
    }
}

/// The save tool and restore tool for a family.
pub fn iptables_tools(ipv6: bool) -> (Tool, Tool) {
    if ipv6 {
        (Tool::Ip6tablesSave, Tool::Ip6tablesRestore)
    } else {
        (Tool::IptablesSave, Tool::IptablesRestore)
    }
}

/// A payload that, restored without `--noflush`, puts the firewall back to `saved`: the
/// saved tables, plus every standard table missing from it, emptied with ACCEPT policies.
pub fn restoring_payload(saved: &str) -> String {
    const TABLES: [(&str, &[&str]); 4] = [
        ("filter", &["INPUT", "FORWARD", "OUTPUT"]),
        ("nat", &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"]),
        (
            "mangle",
            &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
        ),
        ("raw", &["PREROUTING", "OUTPUT"]),
    ];
    let mut out = saved.to_owned();
    for (table, chains) in TABLES {
        if !saved.lines().any(|l| l.trim() == format!("*{table}")) {
            out.push_str(&format!("*{table}\n"));
            for chain in chains {
                out.push_str(&format!(":{chain} ACCEPT [0:0]\n"));
            }
            out.push_str("COMMIT\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restoring_payload_covers_every_table() {
        let saved = "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\nCOMMIT\n";
        let p = restoring_payload(saved);
        assert!(p.starts_with(saved));
        assert_eq!(p.matches("*filter").count(), 1);
        for t in ["*nat", "*mangle", "*raw"] {
            assert_eq!(p.matches(t).count(), 1, "{t}");
        }
        assert!(restoring_payload("").contains(":INPUT ACCEPT"));
    }
}
