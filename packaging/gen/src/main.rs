//! `tsim-gen OUT_DIR`: writes the man pages (`man1/tsimctl*.1`, `man8/tsim-helper.8`) and the
//! bash, zsh and fish completions of `tsimctl` and `tsim-helper`, generated from their clap
//! definitions, so that they always match the binaries. Run by `make` and the Debian package
//! build; nothing here is installed.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::CommandFactory;
use clap_complete::Shell;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        bail!("usage: tsim-gen OUT_DIR (writes man/ and completions/ there)");
    };
    let out = PathBuf::from(out);
    let ctl = tsim_client::cli::command();
    let helper = tsim_helper::config::Config::command();

    let man1 = out.join("man/man1");
    let man8 = out.join("man/man8");
    mkdir(&man1)?;
    mkdir(&man8)?;
    man_pages(&ctl, "1", &man1)?;
    man_pages(&helper, "8", &man8)?;

    let completions = out.join("completions");
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let dir = completions.join(shell.to_string());
        mkdir(&dir)?;
        for cmd in [&ctl, &helper] {
            let mut cmd = cmd.clone();
            let name = cmd.get_name().to_owned();
            clap_complete::generate_to(shell, &mut cmd, name, &dir).with_context(|| {
                format!("cannot write {shell} completions in {}", dir.display())
            })?;
        }
    }
    Ok(())
}

fn mkdir(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

/// Writes `cmd`'s page, and one page per subcommand (`tsimctl-host.1`, `tsimctl-host-add.1`…),
/// in `section`.
fn man_pages(cmd: &clap::Command, section: &'static str, dir: &Path) -> anyhow::Result<()> {
    let mut cmd = cmd.clone();
    cmd.build();
    write_pages(&cmd, cmd.get_name(), section, dir)
}

fn write_pages(
    cmd: &clap::Command,
    name: &str,
    section: &'static str,
    dir: &Path,
) -> anyhow::Result<()> {
    // Once built, a subcommand's display name is its page's name (`tsimctl-host`).
    let mut text = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .section(section)
        .manual("tsim-helper")
        .render(&mut text)?;
    let path = dir.join(format!("{name}.{section}"));
    fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        write_pages(sub, &format!("{name}-{}", sub.get_name()), section, dir)?;
    }
    Ok(())
}
