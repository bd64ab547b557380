//! The only external programs the helper runs: `iptables-restore`, `iptables-save`, their
//! IPv6 twins, and `ipset`.
//!
//! Invariants:
//! * Each program is found once, at start, in a fixed list of system directories (never via
//!   `$PATH`), and used only if it and its directory are owned by root and not writable by
//!   others.
//! * Programs run with a fixed argument list, an empty environment (bar `PATH` and `LC_ALL`),
//!   the payload on standard input, inside the target namespace (see
//!   [`crate::kernel::netns::Netns::spawn_in`]), and with a time limit. No shell is involved.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Directories searched for the tools, in order.
const SEARCH: [&str; 4] = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// How long one run may take.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(120);

/// Most output kept from one run.
const MAX_OUTPUT: usize = 64 * 1024 * 1024;

/// A tool the helper may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tool {
    /// `iptables-restore`.
    IptablesRestore,
    /// `iptables-save`.
    IptablesSave,
    /// `ip6tables-restore`.
    Ip6tablesRestore,
    /// `ip6tables-save`.
    Ip6tablesSave,
    /// `ipset`.
    Ipset,
}

impl Tool {
    /// Every tool.
    pub const ALL: [Tool; 5] = [
        Tool::IptablesRestore,
        Tool::IptablesSave,
        Tool::Ip6tablesRestore,
        Tool::Ip6tablesSave,
        Tool::Ipset,
    ];

    /// The program's name.
    pub fn name(self) -> &'static str {
        match self {
            Tool::IptablesRestore => "iptables-restore",
            Tool::IptablesSave => "iptables-save",
            Tool::Ip6tablesRestore => "ip6tables-restore",
            Tool::Ip6tablesSave => "ip6tables-save",
            Tool::Ipset => "ipset",
        }
    }

    /// The Debian package that provides it.
    pub fn package(self) -> &'static str {
        match self {
            Tool::Ipset => "ipset",
            _ => "iptables",
        }
    }
}

/// The tools found at start.
#[derive(Debug, Clone, Default)]
pub struct Tools {
    found: Vec<(Tool, PathBuf)>,
}

impl Tools {
    /// No tools at all (the unit tests' fake kernel runs none).
    #[cfg(test)]
    pub fn none() -> Self {
        Self { found: Vec::new() }
    }

    /// Looks for every tool; logs what was found and what is missing.
    pub fn discover() -> Self {
        let mut found = Vec::new();
        for tool in Tool::ALL {
            match find(tool.name()) {
                Some(path) => {
                    tracing::debug!(tool = tool.name(), path = %path.display(), "Found a tool");
                    found.push((tool, path));
                }
                None => tracing::info!(
                    tool = tool.name(),
                    "Not installed (package {}); the operations that need it are unsupported",
                    tool.package()
                ),
            }
        }
        Self { found }
    }

    /// Why `iptables-restore` cannot trace packets, if it cannot: missing, or the legacy
    /// variant (whose `TRACE` target logs through the kernel's log, not nf_tables' trace
    /// events). The variant is the multi-call binary the found path resolves to.
    pub fn trace_unsupported(&self) -> Option<String> {
        let Some(path) = self.path(Tool::IptablesRestore) else {
            return Some("iptables-restore is not installed (package iptables)".into());
        };
        let real = std::fs::canonicalize(path).ok()?;
        let name = real.file_name()?.to_str()?;
        variant_traces(name).err()
    }

    /// The path of `tool`, if it was found.
    pub fn path(&self, tool: Tool) -> Option<&Path> {
        self.found
            .iter()
            .find(|(t, _)| *t == tool)
            .map(|(_, p)| p.as_path())
    }
}

/// Finds `name` in [`SEARCH`], keeping the path (a symlink such as the alternatives system's
/// stays a symlink: multi-call binaries look at their name). The target must be a regular
/// executable file owned by root and writable only by root, in a root-owned directory.
fn find(name: &str) -> Option<PathBuf> {
    SEARCH
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|path| trusted(path))
}

fn trusted(path: &Path) -> bool {
    let Ok(target) = std::fs::metadata(path) else {
        return false;
    };
    let Ok(real) = std::fs::canonicalize(path) else {
        return false;
    };
    let dir_ok = real
        .parent()
        .and_then(|d| std::fs::metadata(d).ok())
        .is_some_and(|d| d.uid() == 0 && d.mode() & 0o022 == 0);
    target.is_file()
        && target.uid() == 0
        && target.mode() & 0o022 == 0
        && target.mode() & 0o111 != 0
        && dir_ok
}

/// Whether the iptables behind the binary `name` (what `iptables-restore` resolves to) gives
/// nf_tables trace events: the nft variant does; the legacy variant does not. An unknown
/// name is taken to be nft (the variant Debian installs by default).
fn variant_traces(name: &str) -> Result<(), String> {
    if name.contains("legacy") {
        Err(format!(
            "iptables is the legacy variant ({name}), whose TRACE target gives no nf_tables trace events; explained probes need iptables-nft"
        ))
    } else {
        Ok(())
    }
}

/// What a tool printed, and whether it succeeded.
#[derive(Debug)]
pub struct Output {
    /// Whether it exited with status 0.
    pub success: bool,
    /// Its exit status, for messages.
    pub status: String,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Output {
    /// The line number a tool reported for a rejected payload (`Error occurred at line: 6`,
    /// `Error in line 3`, `line 5 failed`).
    pub fn failed_line(&self) -> Option<u32> {
        let text = format!("{}\n{}", self.stderr, self.stdout);
        let lower = text.to_ascii_lowercase();
        let mut rest = lower.as_str();
        while let Some(at) = rest.find("line") {
            rest = &rest[at + 4..];
            let digits: String = rest
                .trim_start_matches([':', ' '])
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(n) = digits.parse() {
                return Some(n);
            }
        }
        None
    }

    /// The tool's complaint, in one line.
    pub fn complaint(&self) -> String {
        let text = if self.stderr.trim().is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("Try `"))
            .collect();
        let joined = lines.join("; ");
        if joined.is_empty() {
            self.status.clone()
        } else {
            joined
        }
    }
}

/// Feeds `stdin` to a spawned child and collects its output, within [`TOOL_TIMEOUT`].
pub async fn communicate(
    mut child: tokio::process::Child,
    stdin: Option<String>,
) -> std::io::Result<Output> {
    let mut input = child.stdin.take();
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let work = async {
        let write = async {
            if let (Some(pipe), Some(text)) = (input.as_mut(), stdin) {
                // The tool may stop reading early (on an error); that is not our failure.
                let _ = pipe.write_all(text.as_bytes()).await;
            }
            drop(input.take());
        };
        let mut out = Vec::new();
        let mut err = Vec::new();
        let mut limited_out = (&mut stdout).take(MAX_OUTPUT as u64);
        let mut limited_err = (&mut stderr).take(MAX_OUTPUT as u64);
        let read_out = limited_out.read_to_end(&mut out);
        let read_err = limited_err.read_to_end(&mut err);
        let ((), r1, r2) = tokio::join!(write, read_out, read_err);
        r1?;
        r2?;
        let status = child.wait().await?;
        Ok::<_, std::io::Error>(Output {
            success: status.success(),
            status: status.to_string(),
            stdout: String::from_utf8_lossy(&out).into_owned(),
            stderr: String::from_utf8_lossy(&err).into_owned(),
        })
    };
    match tokio::time::timeout(TOOL_TIMEOUT, work).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the tool did not finish in time",
        )),
    }
}

/// A command for `path` with the fixed environment and piped standard streams.
pub fn command(path: &Path, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(path);
    cmd.args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LC_ALL", "C")
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_nft_variant_traces() {
        assert_eq!(variant_traces("xtables-nft-multi"), Ok(()));
        assert_eq!(variant_traces("iptables-restore"), Ok(()));
        let e = variant_traces("xtables-legacy-multi").unwrap_err();
        assert!(e.contains("legacy variant (xtables-legacy-multi)"), "{e}");
        assert!(
            Tools::none()
                .trace_unsupported()
                .unwrap()
                .contains("not installed")
        );
    }

    fn out(stderr: &str) -> Output {
        Output {
            success: false,
            status: "exit status: 1".into(),
            stdout: String::new(),
            stderr: stderr.into(),
        }
    }

    #[test]
    fn line_numbers_from_tool_messages() {
        let nft = "iptables-restore v1.8.9 (nf_tables): unknown protocol \"bogus\" specified\nError occurred at line: 6\nTry `iptables-restore -h' or 'iptables-restore --help' for more information.\n";
        assert_eq!(out(nft).failed_line(), Some(6));
        assert_eq!(
            out(nft).complaint(),
            "iptables-restore v1.8.9 (nf_tables): unknown protocol \"bogus\" specified; Error occurred at line: 6"
        );
        assert_eq!(
            out("ipset v7.17: Error in line 3: Kernel error received: set type not supported")
                .failed_line(),
            Some(3)
        );
        assert_eq!(
            out("iptables-restore: line 12 failed").failed_line(),
            Some(12)
        );
        assert_eq!(out("something else").failed_line(), None);
        assert_eq!(out("").complaint(), "exit status: 1");
    }

    #[test]
    fn untrusted_paths_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("iptables-restore");
        std::fs::write(&file, b"#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(!trusted(&file), "a world-writable file");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(!trusted(&file), "in a world-writable directory");
        assert!(trusted(Path::new("/bin/sh")) || !Path::new("/bin/sh").exists());
    }
}
