//! `tsimctl net plan|setup|verify|status|teardown`: the simulated network built from router
//! facts.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::facts;
use crate::network::{self, Kind, Problem, RouterReport, RouterStatus};
use crate::{Client, RequestOptions};
use tsim_protocol::ops::{NetApplied, NetApply, NetLog, NetShow, NetShown, NetTeardown};
use tsim_protocol::topology::Topology;
use tsim_protocol::{NsName, Op, OpResult};

use super::progress::Bar;
use super::{CliError, Ctx, print_json};

/// Build, check and remove the simulated network described by router facts.
///
/// The facts are a directory of raw facts (`<router>_facts.txt`, as the collector writes
/// them) or of JSON facts (`<router>.json`). `net plan` compiles them into the topology
/// document the helper applies; `net setup` applies it (only what differs from the network
/// in place is touched); `net verify` compares the kernel with the facts; `net status` shows
/// what the routers hold; `net log` shows what their firewalls' LOG rules logged;
/// `net teardown` removes it all. Setup and teardown need root or the
/// helper's admin group.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Print the topology document compiled from the facts (needs no helper).
    Plan(Source),
    /// Build the network, or change the one in place into it.
    Setup(SetupArgs),
    /// Compare the kernel with the facts; exit 1 on any difference.
    Verify(Source),
    /// Show the routers' interfaces, routes, rules, iptables counters and sets.
    Status(StatusArgs),
    /// Remove the network: routers, bridges, and everything attached to them.
    Teardown,
    /// Show what the routers' firewall LOG rules logged.
    ///
    /// The facts' `-j LOG` rules are applied as `-j NFLOG` with the same prefix (a kernel's
    /// LOG writes nothing from inside a network namespace); the helper reads them in each
    /// router and keeps the newest 4096 per router. Each line reads as the kernel's LOG
    /// would print it: time, router, prefix, IN=, OUT=, MAC=, SRC=, DST=, and so on.
    Log(LogArgs),
}

#[derive(Debug, clap::Args)]
struct LogArgs {
    /// Only this router's entries.
    router: Option<NsName>,
    /// Keep printing new entries as they come, until interrupted.
    #[arg(long, short)]
    follow: bool,
    /// Only entries of the last SECS seconds.
    #[arg(long, value_name = "SECS")]
    since: Option<f64>,
    /// At most this many entries (the newest; 1-10000).
    #[arg(long, short = 'n', default_value_t = 1000)]
    lines: u32,
}

/// Where the network comes from.
#[derive(Debug, Clone, clap::Args)]
struct Source {
    #[command(flatten)]
    input: Input,
    /// Put this before every router's namespace name (e.g. to run two networks side by
    /// side, each with its own helper and hidden namespace).
    #[arg(long, value_name = "PREFIX", default_value = "")]
    prefix: String,
    /// Add the outside world: a namespace `internet` (after the prefix) that owns the
    /// gateways the edge routers' default routes point at, routes only the uplink subnets
    /// and public space (so only NATed traffic comes back), and holds the external hosts
    /// (`host add --internet`). Off by default; the document marks it, so `net plan` shows
    /// it and `net setup` without it removes it again.
    #[arg(long)]
    internet: bool,
}

/// Facts or a topology document.
#[derive(Debug, Clone, clap::Args)]
#[group(required = true, multiple = false)]
struct Input {
    /// A directory of router facts (raw `*_facts.txt`, or `*.json`).
    #[arg(long, value_name = "DIR")]
    facts: Option<PathBuf>,
    /// A topology document (JSON, as `net plan` prints it), instead of facts.
    #[arg(long, value_name = "FILE")]
    topology: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct SetupArgs {
    #[command(flatten)]
    source: Source,
    /// Also apply the routers' policy routing tables and rules.
    #[arg(long)]
    policy_tables: bool,
    /// No progress bar, even on a terminal.
    #[arg(long)]
    quiet: bool,
}

#[derive(Debug, clap::Args)]
struct StatusArgs {
    /// Show this router in full (default: one line per router).
    router: Option<NsName>,
}

impl Args {
    /// Whether the command runs without the helper.
    pub fn offline(&self) -> bool {
        matches!(self.command, Command::Plan(_))
    }
}

impl Source {
    /// Compiles the facts or reads the document, and applies `--prefix`; facts warnings go
    /// to standard error.
    fn load(&self) -> Result<Topology, CliError> {
        let mut topology = self.load_unprefixed()?;
        if self.internet {
            facts::internet::add(&mut topology).map_err(CliError::Usage)?;
        }
        if !self.prefix.is_empty() {
            for router in &mut topology.routers {
                let name = format!("{}{}", self.prefix, router.name);
                router.name = name.parse().map_err(|e| {
                    CliError::Usage(format!(
                        "--prefix {:?}: router {}: {e}",
                        self.prefix, router.name
                    ))
                })?;
            }
        }
        Ok(topology)
    }

    fn load_unprefixed(&self) -> Result<Topology, CliError> {
        match (&self.input.facts, &self.input.topology) {
            (Some(dir), _) => {
                let routers = facts::load_dir(dir).map_err(|e| CliError::Usage(e.to_string()))?;
                if routers.is_empty() {
                    return Err(CliError::Usage(format!(
                        "{}: no router facts in it (expected <router>_facts.txt or <router>.json files)",
                        dir.display()
                    )));
                }
                let plan = facts::compile(&routers).map_err(|e| CliError::Usage(e.to_string()))?;
                for w in &plan.warnings {
                    eprintln!("tsimctl: warning: {w}");
                }
                Ok(plan.topology)
            }
            (None, Some(file)) => read_topology(file),
            (None, None) => Err(CliError::Usage(
                "give --facts DIR or --topology FILE".into(),
            )),
        }
    }
}

fn read_topology(file: &Path) -> Result<Topology, CliError> {
    let shown = file.display();
    let text = std::fs::read_to_string(file)
        .map_err(|e| CliError::Usage(format!("cannot read {shown}: {e}")))?;
    serde_json::from_str(&text)
        .map_err(|e| CliError::Usage(format!("{shown}: not a topology document: {e}")))
}

/// Runs `net plan`, which needs no helper.
pub fn run_offline(args: &Args) -> Result<(), CliError> {
    match &args.command {
        Command::Plan(source) => {
            print_json(&source.load()?);
            Ok(())
        }
        _ => Err(CliError::Other("this command needs the helper".into())),
    }
}

/// Runs the command.
pub async fn run(ctx: &Ctx, args: &Args) -> Result<(), CliError> {
    match &args.command {
        Command::Plan(_) => run_offline(args),
        Command::Setup(a) => setup(ctx, a).await,
        Command::Verify(source) => verify(ctx, source).await,
        Command::Status(a) => status(ctx, a).await,
        Command::Teardown => teardown(ctx).await,
        Command::Log(a) => log(ctx, a).await,
    }
}

async fn log(ctx: &Ctx, args: &LogArgs) -> Result<(), CliError> {
    let since_ms = match args.since {
        Some(s) if s.is_finite() && s >= 0.0 => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            Some(now.saturating_sub((s * 1000.0) as u64))
        }
        Some(s) => {
            return Err(CliError::Usage(format!(
                "--since {s}: give seconds, 0 or more"
            )));
        }
        None => None,
    };
    let mut after = None;
    let mut warned = false;
    loop {
        let got = ctx
            .client
            .op()
            .net_log(NetLog {
                router: args.router.clone(),
                after,
                since_ms,
                limit: Some(args.lines),
            })
            .await?;
        if !warned {
            for u in &got.unavailable {
                eprintln!("tsimctl: warning: no log from {u}");
            }
            warned = true;
        }
        if ctx.json && !args.follow {
            print_json(&got);
            return Ok(());
        }
        for e in &got.entries {
            if ctx.json {
                println!("{}", serde_json::to_string(e).unwrap_or_default());
            } else {
                println!(
                    "{} {} {}{}",
                    super::utc(e.time_ms),
                    e.router,
                    e.prefix,
                    e.line
                );
            }
        }
        if !args.follow {
            return Ok(());
        }
        after = Some(got.last);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

async fn setup(ctx: &Ctx, args: &SetupArgs) -> Result<(), CliError> {
    let topology = args.source.load()?;
    let started = Instant::now();
    let mut bar = Bar::new("net setup", !args.quiet && !ctx.json);
    let op = Op::NetApply(NetApply {
        topology,
        policy_tables: args.policy_tables,
    });
    let options = RequestOptions {
        atomic: false,
        progress: bar.active(),
    };
    let mut pending = ctx.client.start(vec![op], options).await?;
    if let Some(mut events) = pending.events.take() {
        while let Some(event) = events.recv().await {
            bar.update(&event);
        }
    }
    let result = pending.wait().await;
    bar.finish();
    let applied = match result?.pop() {
        Some(OpResult::NetApply(a)) => a,
        other => return Err(unexpected(other)),
    };
    if ctx.json {
        print_json(&applied);
        return Ok(());
    }
    print_applied(&applied, started.elapsed().as_secs_f64());
    Ok(())
}

fn print_applied(a: &NetApplied, secs: f64) {
    for w in &a.warnings {
        eprintln!(
            "tsimctl: warning: router {}: {} {:?} left out: {}",
            w.router, w.kind, w.item, w.message
        );
    }
    let mut parts = Vec::new();
    for (n, what) in [
        (a.added.len(), "added"),
        (a.changed.len(), "changed"),
        (a.removed.len(), "removed"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    if a.unchanged > 0 {
        parts.push(format!("{} unchanged", a.unchanged));
    }
    if parts.is_empty() {
        parts.push("none".into());
    }
    let mut line = format!(
        "network applied in {secs:.2} s: routers {}",
        parts.join(", ")
    );
    if a.bridges_added > 0 || a.bridges_removed > 0 {
        line.push_str(&format!(
            "; bridges {} added, {} removed",
            a.bridges_added, a.bridges_removed
        ));
    }
    if !a.warnings.is_empty() {
        line.push_str(&format!(
            "; {} left out (see the warnings)",
            plural(a.warnings.len(), "item")
        ));
    }
    out!("{line}");
}

fn unexpected(result: Option<OpResult>) -> CliError {
    CliError::Connection(format!(
        "the helper answered with an unexpected result: {:?}",
        result.map(|r| r.name())
    ))
}

async fn shown(client: &Client) -> Result<NetShown, CliError> {
    match client.call(Op::NetShow(NetShow {})).await? {
        OpResult::NetShow(s) => Ok(s),
        other => Err(unexpected(Some(other))),
    }
}

/// The managed namespaces that exist now.
async fn existing(client: &Client) -> Result<BTreeSet<NsName>, CliError> {
    Ok(client
        .ns_list()
        .await?
        .into_iter()
        .map(|n| n.name)
        .collect())
}

async fn verify(ctx: &Ctx, source: &Source) -> Result<(), CliError> {
    let topology = source.load()?;
    let record = shown(&ctx.client).await?;
    let present = existing(&ctx.client).await?;
    let expected: Vec<_> = topology
        .routers
        .iter()
        .filter(|r| present.contains(&r.name))
        .map(|r| r.name.clone())
        .collect();
    let views = network::read_routers(&ctx.client, &expected).await?;
    let hosts = ctx.client.host_list().await?;
    let mut reports: Vec<RouterReport> = Vec::new();
    for router in &topology.routers {
        match views.iter().find(|v| v.name == router.name) {
            Some(view) => reports.push(network::compare(
                &network::with_host_gateways(router, &hosts),
                record.policy_tables,
                view,
                &record.warnings,
            )),
            None => reports.push(RouterReport::missing_router(router)),
        }
    }
    let recorded = record.topology.iter().flat_map(|t| &t.routers);
    for r in recorded {
        if present.contains(&r.name) && !topology.routers.iter().any(|t| t.name == r.name) {
            reports.push(RouterReport::unexpected_router(&r.name));
        }
    }
    let differing = reports.iter().filter(|r| !r.is_clean()).count();
    if ctx.json {
        print_json(&serde_json::json!({
            "clean": differing == 0,
            "policy_tables": record.policy_tables,
            "routers": reports,
        }));
    } else {
        print_reports(&reports, record.policy_tables);
    }
    if differing > 0 {
        return Err(CliError::Other(format!(
            "the kernel differs from the facts in {}",
            plural(differing, "router")
        )));
    }
    Ok(())
}

fn print_reports(reports: &[RouterReport], policy_tables: bool) {
    let kinds = &Kind::ALL[1..];
    let width = reports
        .iter()
        .map(|r| r.router.as_str().len())
        .max()
        .unwrap_or(6)
        .max(6);
    let mut header = format!("{:<width$}", "ROUTER");
    for k in kinds {
        header.push_str(&format!("  {:>12}", k.as_str().to_uppercase()));
    }
    out!("{header}  RESULT");
    for r in reports {
        let mut line = format!("{:<width$}", r.router.as_str());
        if r.differences(Kind::Router) > 0 {
            let what = match r.findings[0].problem {
                Problem::Unexpected => "not in the facts",
                _ => "missing",
            };
            out!("{line}  router {what}");
            continue;
        }
        for k in kinds {
            let checked = r.checked.get(k).copied().unwrap_or(0);
            let (diff, skipped) = (r.differences(*k), r.skipped(*k));
            let cell = match (diff, skipped) {
                (0, 0) => format!("{checked} ok"),
                (0, s) => format!("{checked} ok {s}s"),
                (d, _) => format!("{checked} {d}!"),
            };
            line.push_str(&format!("  {cell:>12}"));
        }
        line.push_str(if r.is_clean() { "  ok" } else { "  DIFFERS" });
        out!("{line}");
    }
    let mut any = false;
    for r in reports {
        for f in &r.findings {
            let what = match &f.problem {
                Problem::Missing => "missing".to_owned(),
                Problem::Unexpected => "unexpected".to_owned(),
                Problem::Differs { kernel } => format!("differs (kernel: {kernel})"),
                Problem::Skipped { why } => format!("skipped (refused at setup: {why})"),
            };
            if !any {
                out!();
                any = true;
            }
            out!("{} {} {}: {what}", r.router, f.kind.as_str(), f.item);
        }
    }
    let skipped: usize = reports
        .iter()
        .map(|r| Kind::ALL.iter().map(|k| r.skipped(*k)).sum::<usize>())
        .sum();
    let differing = reports.iter().filter(|r| !r.is_clean()).count();
    let tables = if policy_tables {
        "policy tables included"
    } else {
        "main table only"
    };
    out!();
    if differing == 0 {
        let skipped = match skipped {
            0 => String::new(),
            n => format!(
                "; {} skipped as refused by the kernel at setup",
                plural(n, "item")
            ),
        };
        out!(
            "verify: {} match the facts ({tables}{skipped})",
            plural(reports.len(), "router"),
        );
    } else {
        out!(
            "verify: {} of {} differ ({tables}); \"N!\" counts differences, \"Ns\" items skipped",
            differing,
            plural(reports.len(), "router")
        );
    }
}

async fn status(ctx: &Ctx, args: &StatusArgs) -> Result<(), CliError> {
    let record = shown(&ctx.client).await?;
    let Some(topology) = record.topology else {
        if ctx.json {
            print_json(&serde_json::json!({ "applied": false, "routers": [] }));
        } else {
            out!("no network applied");
        }
        return Ok(());
    };
    let present = existing(&ctx.client).await?;
    let names: Vec<NsName> = match &args.router {
        Some(name) => {
            if !topology.routers.iter().any(|r| &r.name == name) {
                return Err(CliError::Usage(format!(
                    "{name} is not a router of the applied network"
                )));
            }
            vec![name.clone()]
        }
        None => topology.routers.iter().map(|r| r.name.clone()).collect(),
    };
    let missing: Vec<&NsName> = names.iter().filter(|n| !present.contains(n)).collect();
    let readable: Vec<NsName> = names
        .iter()
        .filter(|n| present.contains(n))
        .cloned()
        .collect();
    let views = network::read_routers(&ctx.client, &readable).await?;
    let statuses: Vec<RouterStatus> = views.iter().map(RouterStatus::from_view).collect();
    if ctx.json {
        print_json(&serde_json::json!({
            "applied": true,
            "applied_ms": record.applied_ms,
            "policy_tables": record.policy_tables,
            "warnings": record.warnings,
            "missing": missing,
            "routers": statuses,
        }));
    } else if args.router.is_some() {
        for s in &statuses {
            print_router(s);
        }
    } else {
        print_summary(&statuses, record.warnings.len());
    }
    for name in &missing {
        eprintln!("tsimctl: warning: router {name} is gone (its namespace was deleted)");
    }
    Ok(())
}

fn print_summary(statuses: &[RouterStatus], warnings: usize) {
    let width = statuses
        .iter()
        .map(|s| s.router.as_str().len())
        .max()
        .unwrap_or(6)
        .max(6);
    out!(
        "{:<width$}  {:>6}  {:>5}  {:>6}  {:>5}  {:>9}  {:>12}  {:>6}",
        "ROUTER",
        "IFACES",
        "ADDRS",
        "ROUTES",
        "RULES",
        "IPT-RULES",
        "IPT-PACKETS",
        "IPSETS"
    );
    for s in statuses {
        let up = s.interfaces.iter().filter(|i| i.up).count();
        let addrs: usize = s.interfaces.iter().map(|i| i.addrs.len()).sum();
        out!(
            "{:<width$}  {:>6}  {:>5}  {:>6}  {:>5}  {:>9}  {:>12}  {:>6}",
            s.router.as_str(),
            format!("{up}/{}", s.interfaces.len()),
            addrs,
            s.routes.len(),
            s.rules.len(),
            s.iptables_rules(),
            s.iptables_packets(),
            s.ipsets.len()
        );
    }
    if warnings > 0 {
        out!(
            "\n{} left out at setup (see `tsimctl --json net status`)",
            plural(warnings, "item")
        );
    }
}

fn print_router(s: &RouterStatus) {
    out!("router {}", s.router);
    out!("  interfaces:");
    for i in &s.interfaces {
        out!(
            "    {:<16} {:<5} {}",
            i.name,
            if i.up { "up" } else { "down" },
            i.addrs.join(" ")
        );
    }
    out!("  routes:");
    for r in &s.routes {
        out!("    {r}");
    }
    if !s.rules.is_empty() {
        out!("  rules:");
        for r in &s.rules {
            out!("    {r}");
        }
    }
    for t in &s.iptables {
        out!("  iptables {}:", t.name);
        for c in &t.chains {
            match &c.policy {
                Some(p) => out!(
                    "    chain {} (policy {p}, {} packets, {} bytes)",
                    c.name,
                    c.packets,
                    c.bytes
                ),
                None => out!("    chain {}", c.name),
            }
            for r in &c.rules {
                out!("      {:>8} {:>10}  {}", r.packets, r.bytes, r.spec);
            }
        }
    }
    if !s.ipsets.is_empty() {
        out!("  ipsets:");
        for set in &s.ipsets {
            out!(
                "    {} {} ({})",
                set.name,
                set.kind,
                plural(set.members, "member")
            );
        }
    }
}

async fn teardown(ctx: &Ctx) -> Result<(), CliError> {
    let started = Instant::now();
    let result = ctx.client.call(Op::NetTeardown(NetTeardown {})).await?;
    let OpResult::NetTeardown(done) = result else {
        return Err(unexpected(Some(result)));
    };
    if ctx.json {
        print_json(&done);
    } else if done.namespaces == 0 {
        out!("no network to tear down");
    } else {
        out!(
            "network torn down in {:.2} s: {} removed",
            started.elapsed().as_secs_f64(),
            plural(done.namespaces as usize, "namespace")
        );
    }
    Ok(())
}
