//! `probe_reach`, the quick reachability analysis: which routers forward which services.
//!
//! Each job gets a DSCP value of its own (32 to 63) for as long as it runs. On the router of
//! each source host it installs, in the mangle table, two counting chains reached only by
//! packets with that DSCP (from PREROUTING and POSTROUTING), with one rule per service. The
//! source hosts then send DSCP-marked probes (a TCP connection attempt, or a UDP datagram)
//! for every service; a probe counted entering and leaving the router was forwarded (`yes`),
//! one counted only entering was dropped there (`no`). Jobs with other DSCP values never see
//! each other's packets in their counters.
//!
//! The steps run on all of a job's routers at once. The installation declares the chains
//! (creating or emptying them), so their counters start at zero and are not read before
//! the probes; the jobs polling one router share its reads ([`counted`]); the removal takes
//! exactly what was installed in one step, and reads the table only if that fails.
//!
//! Why a router dropped a service (`dropped_by`): where the kernel traces (iptables-nft),
//! the same installation also puts a `TRACE` rule for the job's value first in the router's
//! raw table (an explained probe's, see [`super::explain`]), the job listens to the
//! router's trace events, and a `no` verdict names the rule or policy that dropped the
//! service's packets. It costs no extra tool run, only an `iptables-save` of a router whose
//! packets a rule (not a policy) dropped.
//!
//! Invariant: whatever happens to the job (an error, a failed probe, cancellation), its
//! chains and jump rules are removed from every router before it answers, and its DSCP value
//! is freed; where a removal failed, the next job with that DSCP value on that router removes
//! the leftovers before it installs its own, and at start ([`sweep`]) every router of the applied network is cleared of
//! them, so a crash in the middle of a job leaves nothing once the helper is back. Nothing else
//! of the routers is touched (no neighbour entries). The same holds for the `TRACE` rules,
//! whose leftovers [`super::explain::sweep`] removes at start.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{join_all, try_join_all};

use tsim_protocol::ops::{
    ProbeReach, ReachResult, ReachRouter, ReachService, RouteGet, Transport, Verdict,
    parse_services,
};
use tsim_protocol::{NsName, Op, OpResult};

use super::{OpCtx, dispatch_boxed, explain};
use crate::base::error::{HelperError, chain};
use crate::kernel::nftrace;
use crate::kernel::tools::Tool;
use crate::txn::Txn;

/// DSCP values of the running jobs, with the uid that runs each.
static IN_USE: Mutex<BTreeMap<u8, u32>> = Mutex::new(BTreeMap::new());

const MAX_SERVICES: usize = 100;
const MAX_SOURCES: usize = 16;

/// A DSCP value held by a job (a reachability job, or an explained probe); freed when
/// dropped.
pub(super) struct Dscp(u8);

impl Dscp {
    /// A free value for a job of `uid`, which may hold at most `quota` at once (root: any).
    fn take(uid: u32, quota: u32) -> Result<Self, HelperError> {
        Self::take_in(uid, quota, 32..=63)
    }

    /// A free value in `values` for a job of `uid`; reachability jobs and explained probes
    /// share the values and the quota.
    pub(super) fn take_in(
        uid: u32,
        quota: u32,
        values: std::ops::RangeInclusive<u8>,
    ) -> Result<Self, HelperError> {
        let mut used = IN_USE.lock().unwrap_or_else(|p| p.into_inner());
        let held = used.values().filter(|u| **u == uid).count();
        if uid != 0 && held >= quota as usize {
            return Err(HelperError::QuotaExceeded(format!(
                "uid {uid} has {held} reachability jobs or explained probes running, its quota (--quota-reach-jobs {quota}); wait for one to end"
            )));
        }
        let n = values.clone().count();
        let free = values
            .clone()
            .find(|d| !used.contains_key(d))
            .ok_or_else(|| {
                HelperError::Busy(format!(
                    "the {n} DSCP values {}-{} are all held by running jobs; try again later",
                    values.start(),
                    values.end()
                ))
            })?;
        used.insert(free, uid);
        Ok(Self(free))
    }
}

impl Dscp {
    /// The value.
    pub(super) fn value(&self) -> u8 {
        self.0
    }
}

impl Drop for Dscp {
    fn drop(&mut self) {
        IN_USE
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.0);
    }
}

fn chain_name(dscp: u8, hook: &str) -> String {
    format!("TSIM_REACH_{hook}_{dscp}")
}

fn comment(dscp: u8, hook: &str, port: u16, proto: Transport) -> String {
    format!("tsim-reach {dscp} {hook} {port}/{proto}")
}

/// The `iptables-restore --noflush` payload that installs a job's chains.
fn install_payload(dscp: u8, services: &[(u16, Transport)]) -> String {
    let mut p = String::from("*mangle\n");
    for (hook, table_chain) in [("PRE", "PREROUTING"), ("POST", "POSTROUTING")] {
        let name = chain_name(dscp, hook);
        p.push_str(&format!(":{name} - [0:0]\n"));
        p.push_str(&format!(
            "-I {table_chain} 1 -m dscp --dscp {dscp} -j {name}\n"
        ));
        for (port, proto) in services {
            p.push_str(&format!(
                "-A {name} -p {proto} -m {proto} --dport {port} -m comment --comment \"{}\"\n",
                comment(dscp, hook, *port, *proto)
            ));
        }
    }
    p.push_str("COMMIT\n");
    p
}

/// The payload that removes exactly what [`install_payload`] installed for `dscp` (it fails,
/// and changes nothing, if anything of it is missing or something else jumps to the chains).
fn exact_removal_payload(dscp: u8) -> String {
    let mut p = String::from("*mangle\n");
    for (hook, table_chain) in [("PRE", "PREROUTING"), ("POST", "POSTROUTING")] {
        let name = chain_name(dscp, hook);
        p.push_str(&format!(
            "-D {table_chain} -m dscp --dscp {dscp} -j {name}\n"
        ));
    }
    for hook in ["PRE", "POST"] {
        p.push_str(&format!("-F {}\n", chain_name(dscp, hook)));
    }
    for hook in ["PRE", "POST"] {
        p.push_str(&format!("-X {}\n", chain_name(dscp, hook)));
    }
    p.push_str("COMMIT\n");
    p
}

/// The routers (by namespace inode) where a job's chains could not be removed, with the
/// DSCP value: the next job with that value there removes them first. (At start, [`sweep`]
/// removes every job's chains, so a new process starts with none.)
static DIRTY: Mutex<BTreeSet<(u64, u8)>> = Mutex::new(BTreeSet::new());

fn dirty(ino: u64, dscp: u8, set: Option<bool>) -> bool {
    let mut d = DIRTY.lock().unwrap_or_else(|p| p.into_inner());
    match set {
        Some(true) => d.insert((ino, dscp)),
        Some(false) => d.remove(&(ino, dscp)),
        None => d.contains(&(ino, dscp)),
    }
}

/// The payload that removes what `saved` (an `iptables-save -t mangle`) shows of the job
/// with `dscp`, or `None` if it shows nothing.
fn removal_payload(saved: &str, dscp: u8) -> Option<String> {
    let names = [chain_name(dscp, "PRE"), chain_name(dscp, "POST")];
    let mut deletes = Vec::new();
    let mut chains = Vec::new();
    for line in saved.lines() {
        // With counters, a rule line starts with `[packets:bytes] `.
        let line = match line.strip_prefix('[') {
            Some(rest) => rest.split_once("] ").map(|(_, l)| l).unwrap_or(line),
            None => line,
        };
        if let Some(rule) = line.strip_prefix("-A ") {
            let (chain, rest) = rule.split_once(' ').unwrap_or((rule, ""));
            let jumps = names.iter().any(|n| rest.ends_with(&format!("-j {n}")));
            if !names.iter().any(|n| n == chain) && jumps {
                deletes.push(format!("-D {chain} {rest}"));
            }
        } else if let Some(decl) = line.strip_prefix(':') {
            let name = decl.split_whitespace().next().unwrap_or_default();
            if names.iter().any(|n| n == name) {
                chains.push(name.to_owned());
            }
        }
    }
    if deletes.is_empty() && chains.is_empty() {
        return None;
    }
    let mut p = String::from("*mangle\n");
    for d in deletes {
        p.push_str(&d);
        p.push('\n');
    }
    for c in &chains {
        p.push_str(&format!("-F {c}\n"));
    }
    for c in &chains {
        p.push_str(&format!("-X {c}\n"));
    }
    p.push_str("COMMIT\n");
    Some(p)
}

/// The DSCP values whose chains `saved` (an `iptables-save -t mangle`) shows.
fn leftover_jobs(saved: &str) -> BTreeSet<u8> {
    saved
        .lines()
        .filter_map(|l| l.strip_prefix(":TSIM_REACH_"))
        .filter_map(|l| {
            let name = l.split_whitespace().next()?;
            let (_, dscp) = name.rsplit_once('_')?;
            dscp.parse().ok()
        })
        .collect()
}

/// Removes the chains of every job from every router of the applied network. Run at start,
/// before any request is served (so no job of this process can be running): a job that a
/// crash interrupted leaves nothing behind. Returns how many jobs' chains were removed.
pub async fn sweep(helper: &crate::managed::context::Helper) -> usize {
    let routers = super::applied_routers(helper);
    let jobs = routers.into_iter().map(|(name, ino)| async move {
        let args = ["-t", "mangle"];
        let saved =
            helper.firewall().run_checked(&name, ino, Tool::IptablesSave, &args, None).await;
        let saved = match saved {
            Ok(saved) => saved,
            Err(e) => {
                tracing::warn!(router = %name, error = %chain(&e), "Cannot look for leftover reachability chains");
                return 0;
            }
        };
        let dscps = leftover_jobs(&saved);
        let mut removed = 0;
        for d in &dscps {
            let Some(payload) = removal_payload(&saved, *d) else {
                continue;
            };
            let restore = Tool::IptablesRestore;
            let flags = ["--noflush"];
            match helper.firewall().run_checked(&name, ino, restore, &flags, Some(payload)).await
            {
                Ok(_) => removed += 1,
                Err(e) => {
                    tracing::warn!(router = %name, dscp = d, error = %chain(&e), "Cannot remove leftover reachability chains")
                }
            }
        }
        if removed > 0 {
            tracing::info!(router = %name, jobs = removed, "Removed the chains of interrupted reachability jobs");
        }
        removed
    });
    futures::future::join_all(jobs).await.into_iter().sum()
}

/// The packet counts of a job's rules in `saved` (an `iptables-save -c -t mangle`), keyed by
/// their comment.
fn counters(saved: &str, dscp: u8) -> std::collections::HashMap<String, u64> {
    let tag = format!("tsim-reach {dscp} ");
    saved
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix('[')?;
            let (counts, rule) = rest.split_once("] ")?;
            let packets: u64 = counts.split(':').next()?.parse().ok()?;
            let start = rule.find(&tag)?;
            let text = rule[start..].split('"').next()?.trim().to_owned();
            Some((text, packets))
        })
        .collect()
}

/// A job's packet counts on one router, by rule comment.
type Counts = std::collections::HashMap<String, u64>;

/// One router under test.
struct Target {
    router: NsName,
    ino: u64,
    source: NsName,
    source_ino: u64,
    egress: Option<String>,
    /// The router's trace socket, when it is traced (see the module's documentation).
    trace: Option<OwnedFd>,
}

/// The latest `iptables-save -c -t mangle` of each router (by namespace inode) with when it
/// was started, shared by the jobs that poll it: see [`counted`].
type Latest = tokio::sync::Mutex<Option<(std::time::Instant, Arc<String>)>>;
static READS: Mutex<BTreeMap<u64, Arc<Latest>>> = Mutex::new(BTreeMap::new());

/// The router's mangle table with counters, as read by a save started after this call: the
/// jobs polling one router at once share its reads (one save serves everyone who asked
/// before it started), instead of each running its own.
async fn counted(ctx: &OpCtx<'_>, t: &Target) -> Result<Arc<String>, HelperError> {
    let since = std::time::Instant::now();
    let latest = READS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(t.ino)
        .or_default()
        .clone();
    let mut latest = latest.lock().await;
    if let Some((started, saved)) = latest.as_ref() {
        if *started >= since {
            return Ok(saved.clone());
        }
    }
    let started = std::time::Instant::now();
    let saved = Arc::new(mangle(ctx, t, true).await?);
    *latest = Some((started, saved.clone()));
    Ok(saved)
}

async fn mangle(ctx: &OpCtx<'_>, t: &Target, counts: bool) -> Result<String, HelperError> {
    let args: &[&str] = if counts {
        &["-c", "-t", "mangle"]
    } else {
        &["-t", "mangle"]
    };
    ctx.helper
        .firewall()
        .run_checked(&t.router, t.ino, Tool::IptablesSave, args, None)
        .await
}

/// Applies `payload` to the router's tables with `iptables-restore --noflush`.
async fn restore(ctx: &OpCtx<'_>, t: &Target, payload: String) -> Result<String, HelperError> {
    ctx.helper
        .firewall()
        .run_checked(
            &t.router,
            t.ino,
            Tool::IptablesRestore,
            &["--noflush"],
            Some(payload),
        )
        .await
}

/// Removes the job's chains from the router, if any are there.
async fn remove(ctx: &OpCtx<'_>, t: &Target, dscp: u8) -> Result<(), HelperError> {
    let saved = mangle(ctx, t, false).await?;
    if let Some(payload) = removal_payload(&saved, dscp) {
        restore(ctx, t, payload).await?;
    }
    Ok(())
}

pub(super) async fn reach(
    ctx: &OpCtx<'_>,
    args: ProbeReach,
    txn: &mut Txn,
) -> Result<OpResult, HelperError> {
    let std::net::IpAddr::V4(dst) = args.dst.0 else {
        return Err(HelperError::InvalidArgument(format!(
            "The destination {} is not IPv4: the probes are IPv4 only",
            args.dst
        )));
    };
    let services = parse_services(&args.ports, MAX_SERVICES)
        .map_err(|e| HelperError::InvalidArgument(format!("ports: {e}")))?;
    let timeout_ms = args.timeout_ms.unwrap_or(1000);
    if !(1..=10_000).contains(&timeout_ms) {
        return Err(HelperError::InvalidArgument(format!(
            "timeout_ms must be 1 to 10000, not {timeout_ms}"
        )));
    }
    if args.from.is_empty() || args.from.len() > MAX_SOURCES {
        return Err(HelperError::InvalidArgument(format!(
            "from must name 1 to {MAX_SOURCES} source hosts, not {}",
            args.from.len()
        )));
    }
    let mut targets: Vec<Target> = Vec::new();
    for source in &args.from {
        let Some((record, _)) = ctx.helper.registry.host(source) else {
            return Err(HelperError::NotFound(format!("There is no host {source}")));
        };
        let router = record.host.expect("a host record").router;
        if let Some(other) = targets.iter().find(|t| t.router == router) {
            return Err(HelperError::InvalidArgument(format!(
                "Hosts {} and {source} are both on router {router}: one source per router",
                other.source
            )));
        }
        let source_ns = ctx.ns(source).await?;
        let router_ns = ctx.ns(&router).await?;
        let get = Op::RouteGet(RouteGet {
            ns: router.clone(),
            dst: args.dst,
            src: None,
            iif: None,
            mark: None,
        });
        let egress = match dispatch_boxed(ctx, get, txn).await {
            Ok(OpResult::RouteGet(r)) => r.dev,
            _ => None,
        };
        targets.push(Target {
            router,
            ino: router_ns.ino,
            source: source.clone(),
            source_ino: source_ns.ino,
            egress,
            trace: None,
        });
    }
    let dscp = Dscp::take(ctx.peer.uid, ctx.helper.config.quota_reach_jobs)?;
    let d = dscp.0;
    if ctx.helper.trace_unsupported().is_none() {
        let opened = join_all(targets.iter().map(|t| {
            ctx.helper
                .netns
                .run_in(&t.router, t.ino, || nftrace::listen(explain::RCVBUF))
        }))
        .await;
        for (t, o) in targets.iter_mut().zip(opened) {
            // A router that cannot be traced still gets its verdicts.
            t.trace = o.ok().and_then(Result::ok);
        }
    }
    let targets = targets;

    // Each router's steps run on all routers at once: every step is a tool run (a process)
    // per router, and the routers are independent.
    let payload = install_payload(d, &services);
    let outcome = async {
        // Each router's steps run on all routers at once: every step is a tool run (a
        // process) per router, and the routers are independent. The chains are declared by
        // the installation, which creates them or empties them, so their counters start at
        // zero: there is nothing to read before the probes.
        // Every installation runs to its end (none is dropped half-way when another fails),
        // so that the clean-up below finds what there is to remove.
        join_all(targets.iter().map(|t| {
            let mut payload = payload.clone();
            if t.trace.is_some() {
                payload.push_str(&explain::install_payload(d));
            }
            async move {
                if dirty(t.ino, d, None) {
                    remove(ctx, t, d).await?;
                    dirty(t.ino, d, Some(false));
                }
                if explain::dirty(t.ino, d, None) {
                    explain::remove_read(ctx.helper, &t.router, t.ino, Some(d)).await?;
                    explain::dirty(t.ino, d, Some(false));
                }
                restore(ctx, t, payload).await
            }
        }))
        .await
        .into_iter()
        .collect::<Result<Vec<_>, HelperError>>()?;
        let read_all =
            || {
                try_join_all(targets.iter().map(|t| async move {
                    Ok::<_, HelperError>(counters(&counted(ctx, t).await?, d))
                }))
            };
        let sends = targets
            .iter()
            .map(|t| emit(ctx, t, dst, d, &services, timeout_ms));
        let sent = async {
            let results = join_all(sends).await;
            results
                .into_iter()
                .collect::<Result<Vec<()>, HelperError>>()?;
            // Let the last datagrams cross the routers before the counters are read.
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok::<Option<Vec<Counts>>, HelperError>(None)
        };
        // The counters, not the probes' outcomes, decide: once every router has seen every
        // service's probe, the TCP probes that still wait (dropped, or not answered yet)
        // need not wait longer. A packet is counted leaving a router in the same pass that
        // counted it entering, so the read that shows every probe seen is the final one.
        let seen_all = async {
            let mut pause = Duration::from_millis(5);
            loop {
                tokio::time::sleep(pause).await;
                pause = Duration::from_millis(10);
                let now = read_all().await?;
                let all = now.iter().all(|now| {
                    services.iter().all(|&(port, proto)| {
                        now.get(&comment(d, "PRE", port, proto))
                            .copied()
                            .unwrap_or(0)
                            > 0
                    })
                });
                if all {
                    return Ok::<Option<Vec<Counts>>, HelperError>(Some(now));
                }
            }
        };
        let last = tokio::select! {
            r = sent => r?,
            r = seen_all => r?,
            _ = ctx.cancel.cancelled() => return Err(HelperError::Cancelled),
        };
        let afters = match last {
            Some(now) => now,
            None => read_all().await?,
        };
        let mut routers = Vec::new();
        for (t, after) in targets.iter().zip(afters) {
            let delta = |hook: &str, port: u16, proto: Transport| {
                after
                    .get(&comment(d, hook, port, proto))
                    .copied()
                    .unwrap_or(0)
            };
            let services = services
                .iter()
                .map(|&(port, proto)| {
                    let seen = delta("PRE", port, proto);
                    let forwarded = delta("POST", port, proto);
                    let verdict = match (seen, forwarded) {
                        (_, f) if f > 0 => Verdict::Yes,
                        (s, 0) if s > 0 => Verdict::No,
                        _ => Verdict::Unknown,
                    };
                    ReachService {
                        port,
                        proto,
                        verdict,
                        seen,
                        forwarded,
                        dropped_by: None,
                    }
                })
                .collect();
            routers.push(ReachRouter {
                router: t.router.clone(),
                from: t.source.clone(),
                egress: t.egress.clone(),
                services,
            });
        }
        Ok(routers)
    }
    .await;
    // Whatever happened: the chains go from every router they went to.
    // What was installed is removed in one step; if that fails (the installation failed
    // half-way, or something else changed the chains), whatever is there is read and
    // removed; if that fails too, the next job with this DSCP value there tries again.
    // Meanwhile, why: what dropped the services a router saw and did not forward (its trace
    // events were queued as the packets passed, before their counts were read; what they
    // name is read from tables the removal does not change, or, where it does, read again).
    let why = async {
        let Ok(routers) = &outcome else {
            return Vec::new();
        };
        join_all(targets.iter().zip(routers).map(|(t, r)| async move {
            let dropped_some = r.services.iter().any(|s| s.verdict == Verdict::No);
            match &t.trace {
                Some(socket) if dropped_some => {
                    explain::drops(ctx.helper, &t.router, t.ino, socket, d)
                        .await
                        .unwrap_or_else(|e| {
                            tracing::warn!(router = %t.router, error = %chain(&e), "Cannot say why a router dropped a reachability job's probes");
                            Default::default()
                        })
                }
                _ => Default::default(),
            }
        }))
        .await
    };
    let mut cleanup_error = None;
    let removal = join_all(targets.iter().map(|t| async move {
        let mut exact = exact_removal_payload(d);
        if t.trace.is_some() {
            exact.push_str(&explain::exact_removal_payload(d));
        }
        match restore(ctx, t, exact).await {
            Ok(_) => Ok(()),
            Err(_) => {
                let traced = match &t.trace {
                    Some(_) => explain::remove_read(ctx.helper, &t.router, t.ino, Some(d))
                        .await
                        .map(|_| ()),
                    None => Ok(()),
                };
                remove(ctx, t, d).await.and(traced)
            }
        }
    }));
    let (removed, why) = tokio::join!(removal, why);
    for (t, r) in targets.iter().zip(removed) {
        if let Err(e) = r {
            dirty(t.ino, d, Some(true));
            if t.trace.is_some() {
                explain::dirty(t.ino, d, Some(true));
            }
            tracing::error!(router = %t.router, dscp = d, error = %chain(&e), "Cannot remove a reachability job's chains");
            cleanup_error.get_or_insert(e);
        }
    }
    let mut routers = outcome?;
    if let Some(e) = cleanup_error {
        return Err(e);
    }
    for (r, why) in routers.iter_mut().zip(why) {
        for s in r.services.iter_mut().filter(|s| s.verdict == Verdict::No) {
            let ip_proto = match s.proto {
                Transport::Tcp => 6,
                Transport::Udp => 17,
            };
            s.dropped_by = why.get(&(ip_proto, s.port)).cloned();
        }
    }
    drop(dscp);
    Ok(OpResult::ProbeReach(ReachResult { dscp: d, routers }))
}

/// Sends the probes of every service from `t`'s source host: a TCP connection attempt that
/// waits up to `timeout_ms` (unless the caller stops waiting first), or one UDP datagram;
/// each with DSCP `dscp`.
async fn emit(
    ctx: &OpCtx<'_>,
    t: &Target,
    dst: Ipv4Addr,
    dscp: u8,
    services: &[(u16, Transport)],
    timeout_ms: u32,
) -> Result<(), HelperError> {
    let tos = u32::from(dscp) << 2;
    let wanted: Vec<Transport> = services.iter().map(|s| s.1).collect();
    let sockets = ctx
        .helper
        .netns
        .run_in(&t.source, t.source_ino, move || {
            wanted
                .into_iter()
                .map(|proto| -> std::io::Result<Socket> {
                    Ok(match proto {
                        Transport::Tcp => {
                            let s = tokio::net::TcpSocket::new_v4()?;
                            s.set_tos_v4(tos)?;
                            Socket::Tcp(s)
                        }
                        Transport::Udp => {
                            let s = std::net::UdpSocket::bind("0.0.0.0:0")?;
                            s.set_nonblocking(true)?;
                            Socket::Udp(s)
                        }
                    })
                })
                .collect::<std::io::Result<Vec<Socket>>>()
        })
        .await?
        .map_err(|e| {
            HelperError::Kernel(format!("Cannot open probe sockets in {}: {e}", t.source))
        })?;
    let wait = Duration::from_millis(u64::from(timeout_ms));
    let probes = sockets
        .into_iter()
        .zip(services)
        .map(|(socket, &(port, _))| async move {
            let to = SocketAddr::V4(SocketAddrV4::new(dst, port));
            match socket {
                Socket::Tcp(s) => {
                    // Refused, answered or dropped: the counters tell, not the outcome.
                    let _ = tokio::time::timeout(wait, s.connect(to)).await;
                }
                Socket::Udp(s) => {
                    if let Ok(s) = tokio::net::UdpSocket::from_std(s) {
                        let _ = s.set_tos_v4(tos);
                        let _ = s.send_to(b"tsim-reach", to).await;
                    }
                }
            }
        });
    futures::future::join_all(probes).await;
    Ok(())
}

enum Socket {
    Tcp(tokio::net::TcpSocket),
    Udp(std::net::UdpSocket),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dscp_values_are_counted_per_uid() {
        let mine: Vec<Dscp> = (0..3).map(|_| Dscp::take(1000, 3).unwrap()).collect();
        assert!(matches!(
            Dscp::take(1000, 3),
            Err(HelperError::QuotaExceeded(_))
        ));
        // Another user, and root, are not held up by uid 1000.
        let other = Dscp::take(1001, 3).unwrap();
        let root: Vec<Dscp> = std::iter::from_fn(|| Dscp::take(0, 3).ok()).collect();
        assert_eq!(mine.len() + 1 + root.len(), 32);
        assert!(matches!(Dscp::take(1002, 3), Err(HelperError::Busy(_))));
        drop(mine);
        assert!(Dscp::take(1000, 3).is_ok());
        drop((other, root));
    }

    #[test]
    fn leftovers_are_found_by_their_chains() {
        let saved = "*mangle\n:PREROUTING ACCEPT [0:0]\n:TSIM_REACH_PRE_40 - [0:0]\n:TSIM_REACH_POST_41 - [0:0]\n:TSIM_REACH_X - [0:0]\n-A PREROUTING -j TSIM_REACH_PRE_40\nCOMMIT\n";
        assert_eq!(leftover_jobs(saved), BTreeSet::from([40, 41]));
        assert!(leftover_jobs("*mangle\nCOMMIT\n").is_empty());
    }

    #[test]
    fn payloads_install_count_and_remove() {
        let services = [(22, Transport::Tcp), (53, Transport::Udp)];
        let p = install_payload(40, &services);
        assert!(p.contains(":TSIM_REACH_PRE_40 - [0:0]\n"));
        assert!(p.contains("-I POSTROUTING 1 -m dscp --dscp 40 -j TSIM_REACH_POST_40\n"));
        assert!(p.contains(
            "-A TSIM_REACH_PRE_40 -p udp -m udp --dport 53 -m comment --comment \"tsim-reach 40 PRE 53/udp\"\n"
        ));
        let saved = "*mangle\n:PREROUTING ACCEPT [10:800]\n:TSIM_REACH_PRE_40 - [0:0]\n:TSIM_REACH_PRE_41 - [0:0]\n\
[3:180] -A PREROUTING -m dscp --dscp 0x28 -j TSIM_REACH_PRE_40\n\
[0:0] -A PREROUTING -m dscp --dscp 0x29 -j TSIM_REACH_PRE_41\n\
[2:120] -A TSIM_REACH_PRE_40 -p tcp -m tcp --dport 22 -m comment --comment \"tsim-reach 40 PRE 22/tcp\"\n\
[7:420] -A TSIM_REACH_PRE_41 -p tcp -m tcp --dport 22 -m comment --comment \"tsim-reach 41 PRE 22/tcp\"\nCOMMIT\n";
        let c = counters(saved, 40);
        assert_eq!(c.get("tsim-reach 40 PRE 22/tcp"), Some(&2));
        assert_eq!(c.len(), 1, "another job's counters are not ours: {c:?}");
        let r = removal_payload(saved, 40).unwrap();
        assert_eq!(
            r,
            "*mangle\n-D PREROUTING -m dscp --dscp 0x28 -j TSIM_REACH_PRE_40\n-F TSIM_REACH_PRE_40\n-X TSIM_REACH_PRE_40\nCOMMIT\n"
        );
        assert_eq!(removal_payload("*mangle\nCOMMIT\n", 40), None);
    }
}
