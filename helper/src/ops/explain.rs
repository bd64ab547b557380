//! `explain` on the echo, ping and trace probes: netfilter's own trace of what every router's
//! firewall did with the probe's packets.
//!
//! A probe that asks for it gets a DSCP value of its own (49 to 63, from the values the
//! reachability jobs use, so the two never share one) and marks its packets with it. Before
//! the probe, every router of the applied network gets a socket on its namespace's
//! `NFNLGRP_NFTRACE` group and, in its raw table, a `TRACE` rule for that DSCP value in
//! PREROUTING and OUTPUT (iptables-nft turns it into `meta nftrace set 1`): the kernel then
//! reports, over that socket, every rule of every table that matches the marked packets and
//! every policy or return that decides. After the probe the events are read, the rule
//! handles turned into positions (a dump of the chain's rules, in order) and the positions
//! into `iptables-save` lines, and the rules are removed.
//!
//! ICMP errors: the kernel gives an error about a packet the packet's TOS bits 1 to 4
//! (`IPTOS_TOS_MASK`) with the precedence bits 0xc0 ([`error_dscp`]): the values 49 to 55
//! stay as they are, 56 to 63 become 48 to 55. So a probe with a value of 56 or more also
//! traces ICMP with its errors' value, and an error is the probe's when the packet it quotes
//! carries the probe's value (not 48 itself: the kernel's IGMP and its errors about unmarked
//! packets carry it).
//!
//! Invariants: a probe sees only events of packets with its own DSCP value (and errors
//! about them); whatever happens to the probe, its rules are removed from every router
//! before it answers (and where a removal failed, the next probe with that value there, or
//! the start of the helper ([`sweep`]), removes them); nothing else of the routers changes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use tsim_protocol::NsName;
use tsim_protocol::ops::{ExplainPacket, ExplainRouter, ExplainStep, Explanation};

use super::OpCtx;
use super::reach::Dscp;
use crate::base::error::{HelperError, chain};
use crate::kernel::nftrace::{self, Event, Kind, Verdict};
use crate::kernel::tools::Tool;
use crate::managed::context::Helper;

/// The DSCP values of explained probes: 49 to 63. Not 48 (CS6): the kernel sends its own
/// IGMP reports and its ICMP errors about unmarked packets with that value.
pub const DSCP_VALUES: std::ops::RangeInclusive<u8> = 49..=63;
/// Packets kept per router, and steps per packet.
const MAX_PACKETS: usize = 16;
const MAX_STEPS: usize = 256;
/// How long the last packets get to cross the routers after the probe ended.
const SETTLE: Duration = Duration::from_millis(10);
/// Receive buffer of a trace socket.
pub(super) const RCVBUF: u32 = 1 << 20;

fn comment(dscp: u8) -> String {
    format!("tsim-explain {dscp}")
}

fn rule(dscp: u8, chain: &str) -> String {
    format!(
        "{chain} -m dscp --dscp {dscp} -m comment --comment \"{}\" -j TRACE",
        comment(dscp)
    )
}

/// The DSCP value of the kernel's ICMP errors about a packet with DSCP `d` (measured on
/// this kernel with TTL-expired echo requests: 49 → 49, 55 → 55, 56 → 48, 57 → 49,
/// 63 → 55).
pub(super) fn error_dscp(d: u8) -> u8 {
    (((d << 2) & 0x1e) | 0xc0) >> 2
}

/// The rule that traces the ICMP errors about the probe's packets, where they carry
/// another value than the probe's.
fn error_rule(dscp: u8, chain: &str) -> Option<String> {
    let e = error_dscp(dscp);
    (e != dscp).then(|| {
        format!(
            "{chain} -p icmp -m dscp --dscp {e} -m comment --comment \"{}\" -j TRACE",
            comment(dscp)
        )
    })
}

/// The probe's rules of one chain.
fn rules_of(dscp: u8, chain: &str) -> Vec<String> {
    std::iter::once(rule(dscp, chain))
        .chain(error_rule(dscp, chain))
        .collect()
}

/// The payload that installs the probe's `TRACE` rules (first in their chains).
pub(super) fn install_payload(dscp: u8) -> String {
    let mut p = String::from("*raw\n");
    for chain in ["PREROUTING", "OUTPUT"] {
        for r in rules_of(dscp, chain) {
            p.push_str(&format!("-I {}\n", r.replacen(' ', " 1 ", 1)));
        }
    }
    p.push_str("COMMIT\n");
    p
}

/// The payload that removes exactly what [`install_payload`] installed.
pub(super) fn exact_removal_payload(dscp: u8) -> String {
    let mut p = String::from("*raw\n");
    for chain in ["PREROUTING", "OUTPUT"] {
        for r in rules_of(dscp, chain) {
            p.push_str(&format!("-D {r}\n"));
        }
    }
    p.push_str("COMMIT\n");
    p
}

/// The payload that removes every explain rule `saved` (an `iptables-save -t raw`) shows
/// of `dscp` (of every value when `None`), or `None` if it shows none.
fn removal_payload(saved: &str, dscp: Option<u8>) -> Option<String> {
    let tag = match dscp {
        Some(d) => format!("\"{}\"", comment(d)),
        None => "\"tsim-explain ".to_owned(),
    };
    let deletes: Vec<String> = saved
        .lines()
        .filter(|l| l.contains(&tag) && l.ends_with("-j TRACE"))
        .filter_map(|l| l.strip_prefix("-A "))
        .map(|rest| format!("-D {rest}\n"))
        .collect();
    if deletes.is_empty() {
        return None;
    }
    Some(format!("*raw\n{}COMMIT\n", deletes.concat()))
}

async fn restore(helper: &Helper, t: &Traced, payload: String) -> Result<String, HelperError> {
    helper
        .firewall()
        .run_checked(
            &t.name,
            t.ino,
            Tool::IptablesRestore,
            &["--noflush"],
            Some(payload),
        )
        .await
}

/// Removes what the table shows of `dscp`'s rules (of every value when `None`); true if
/// there was something.
pub(super) async fn remove_read(
    helper: &Helper,
    name: &NsName,
    ino: u64,
    dscp: Option<u8>,
) -> Result<bool, HelperError> {
    let saved = helper
        .firewall()
        .run_checked(name, ino, Tool::IptablesSave, &["-t", "raw"], None)
        .await?;
    let Some(payload) = removal_payload(&saved, dscp) else {
        return Ok(false);
    };
    helper
        .firewall()
        .run_checked(
            name,
            ino,
            Tool::IptablesRestore,
            &["--noflush"],
            Some(payload),
        )
        .await?;
    Ok(true)
}

/// Routers (by namespace inode) where a probe's rules could not be removed, with the value.
static DIRTY: std::sync::Mutex<std::collections::BTreeSet<(u64, u8)>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

pub(super) fn dirty(ino: u64, dscp: u8, set: Option<bool>) -> bool {
    let mut d = DIRTY.lock().unwrap_or_else(|p| p.into_inner());
    match set {
        Some(true) => d.insert((ino, dscp)),
        Some(false) => d.remove(&(ino, dscp)),
        None => d.contains(&(ino, dscp)),
    }
}

/// Removes every explain rule from every router of the applied network: run at start,
/// before any request is served. Returns on how many routers there were some.
pub async fn sweep(helper: &Helper) -> usize {
    let routers = super::applied_routers(helper);
    let jobs = routers.iter().map(|(name, ino)| async move {
        match remove_read(helper, name, *ino, None).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(router = %name, error = %chain(&e), "Cannot remove leftover explain rules");
                false
            }
        }
    });
    let n = join_all(jobs).await.into_iter().filter(|f| *f).count();
    if n > 0 {
        tracing::info!(
            routers = n,
            "Removed the trace rules of interrupted explained probes"
        );
    }
    n
}

/// One router being traced.
struct Traced {
    name: NsName,
    ino: u64,
    socket: Option<Arc<OwnedFd>>,
    installed: bool,
}

/// An explained probe under way: its DSCP value, and the routers with their sockets and
/// rules. [`Session::finish`] reads and removes them.
pub(super) struct Session {
    dscp: Dscp,
    routers: Vec<Traced>,
    unsupported: Option<String>,
}

impl Session {
    /// The TOS byte the probe's packets must carry.
    pub fn tos(&self) -> u32 {
        u32::from(self.dscp.value()) << 2
    }

    /// Prepares the tracing of a probe: every router of the applied network listens and
    /// marks. A router the caller may not read is left out; a kernel without tracing is
    /// recorded (the probe then runs untraced and says why).
    pub async fn start(ctx: &OpCtx<'_>) -> Result<Self, HelperError> {
        let dscp = Dscp::take_in(
            ctx.peer.uid,
            ctx.helper.config.quota_reach_jobs,
            DSCP_VALUES,
        )?;
        let net =
            ctx.helper.registry.store().net().map_err(|e| {
                HelperError::Internal(format!("Cannot read the applied network: {e}"))
            })?;
        let mut routers = Vec::new();
        for r in net.iter().flat_map(|n| n.topology.routers.iter()) {
            if let Ok(h) = ctx.ns(&r.name).await {
                routers.push(Traced {
                    name: h.name,
                    ino: h.ino,
                    socket: None,
                    installed: false,
                });
            }
        }
        let mut session = Self {
            dscp,
            routers,
            unsupported: None,
        };
        if session.routers.is_empty() {
            session.unsupported = Some("there is no applied network with routers to trace".into());
            return Ok(session);
        }
        if let Some(why) = ctx.helper.trace_unsupported() {
            session.unsupported = Some(why);
            return Ok(session);
        }
        let d = session.dscp.value();
        let helper = ctx.helper;
        let opened = join_all(session.routers.iter().map(|t| {
            helper
                .netns
                .run_in(&t.name, t.ino, || nftrace::listen(RCVBUF))
        }))
        .await;
        for (t, o) in session.routers.iter_mut().zip(opened) {
            match o {
                Ok(Ok(fd)) => t.socket = Some(Arc::new(fd)),
                Ok(Err(e)) => {
                    session.unsupported.get_or_insert_with(|| {
                        format!("the kernel gives no nf_tables trace events ({e})")
                    });
                }
                Err(e) => {
                    return Err(HelperError::Kernel(format!(
                        "Cannot enter router {}: {e}",
                        t.name
                    )));
                }
            }
        }
        if session.unsupported.is_some() {
            return Ok(session);
        }
        let installed = join_all(session.routers.iter().map(|t| async move {
            if dirty(t.ino, d, None) {
                remove_read(helper, &t.name, t.ino, Some(d)).await?;
                dirty(t.ino, d, Some(false));
            }
            restore(helper, t, install_payload(d)).await
        }))
        .await;
        let mut failed = None;
        for (t, r) in session.routers.iter_mut().zip(installed) {
            match r {
                Ok(_) => t.installed = true,
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failed {
            session.remove(helper).await;
            return Err(e);
        }
        Ok(session)
    }

    /// Removes the rules from every router they went to (what was installed in one step;
    /// what the table shows if that fails; the next probe with the value, or the next
    /// start, if that fails too).
    async fn remove(&mut self, helper: &Helper) -> Option<HelperError> {
        let d = self.dscp.value();
        let removed = join_all(
            self.routers
                .iter()
                .filter(|t| t.installed)
                .map(|t| async move {
                    match restore(helper, t, exact_removal_payload(d)).await {
                        Ok(_) => Ok(()),
                        Err(_) => remove_read(helper, &t.name, t.ino, Some(d))
                            .await
                            .map(|_| ()),
                    }
                }),
        )
        .await;
        let mut first = None;
        for (t, r) in self.routers.iter_mut().filter(|t| t.installed).zip(removed) {
            t.installed = false;
            if let Err(e) = r {
                dirty(t.ino, d, Some(true));
                tracing::error!(router = %t.name, dscp = d, error = %chain(&e), "Cannot remove an explained probe's trace rules");
                first.get_or_insert(e);
            }
        }
        first
    }

    /// Reads what the routers reported about the probe's packets, removes the rules, and
    /// says what happened where.
    pub async fn finish(mut self, ctx: &OpCtx<'_>) -> Result<Explanation, HelperError> {
        let d = self.dscp.value();
        if let Some(why) = self.unsupported.take() {
            return Ok(Explanation {
                dscp: d,
                routers: Vec::new(),
                unsupported: Some(why),
            });
        }
        tokio::time::sleep(SETTLE).await;
        let helper = ctx.helper;
        let read = join_all(self.routers.iter().map(|t| read_router(helper, t, d))).await;
        let removal = self.remove(helper).await;
        let mut routers = Vec::new();
        for r in read {
            routers.push(r?);
        }
        if let Some(e) = removal {
            return Err(e);
        }
        let mut routers: Vec<(PathKey, ExplainRouter)> = routers.into_iter().flatten().collect();
        routers.sort_by_key(|a| a.0);
        Ok(Explanation {
            dscp: d,
            routers: routers.into_iter().map(|(_, r)| r).collect(),
            unsupported: None,
        })
    }
}

/// Where a router is on the path: the routers the requests reach first see them with the
/// highest TTL; of two with the same, the one the probe was sent from (OUTPUT) is first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct PathKey {
    ttl_down: u8,
    not_local: bool,
}

/// One rule of a router as an explanation shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shown {
    /// Its position among the router's own rules of its chain, from 1.
    position: u32,
    /// The rule as `iptables-save` prints it (absent when the chain changed while it was
    /// read).
    line: Option<String>,
    /// One of the helper's own (an explained probe's `TRACE` rule, a reachability job's
    /// jump or counting rule, of any job): never shown.
    ours: bool,
}

/// The `iptables-save` lines of the chains spelled last, by (router inode, table, chain),
/// with the rules (handle, digest) they spell: valid while a dump shows the same rules (a
/// replaced rule keeps its handle but not its digest; an inode reused by a new namespace
/// shows other handles or digests). Bounded: cleared when it would grow past
/// [`SPELLED_MAX`] chains.
type Spelled = HashMap<(u64, String, String), (Vec<(u64, u64)>, Vec<String>)>;
static SPELLED: std::sync::LazyLock<std::sync::Mutex<Spelled>> =
    std::sync::LazyLock::new(Default::default);
const SPELLED_MAX: usize = 1024;

fn handles_of(rules: &[(u64, u64)]) -> Vec<u64> {
    rules.iter().map(|r| r.0).collect()
}

/// What turns a router's trace events into rules: for each chain met, each rule handle's
/// [`Shown`].
struct Rules {
    by_handle: HashMap<(String, String), HashMap<u64, Shown>>,
}

/// Whether an `iptables-save` rule line is one the helper put there for a job.
fn is_ours(line: &str) -> bool {
    line.contains("--comment \"tsim-explain ")
        || line.contains("--comment \"tsim-reach ")
        || line.contains("-j TSIM_REACH_")
}

/// The rules of one chain, from its handles in order and its `iptables-save` lines, read
/// one after the other: aligned only when there are as many of each (the caller reads the
/// handles again after the lines, to know that nothing changed in between). Positions count
/// the router's own rules, not the helper's.
fn shown(handles: &[u64], lines: Option<&Vec<String>>) -> HashMap<u64, Shown> {
    let lines = lines.filter(|l| l.len() == handles.len());
    let mut position = 0;
    handles
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let line = lines.map(|l| l[i].clone());
            let ours = line.as_deref().is_some_and(is_ours);
            if !ours {
                position += 1;
            }
            (
                *h,
                Shown {
                    position,
                    line,
                    ours,
                },
            )
        })
        .collect()
}

impl Rules {
    /// The chains whose rules `events` met (what [`Rules::read`] reads).
    fn chains<'a>(events: impl Iterator<Item = &'a Event>) -> Vec<(String, String)> {
        let mut chains: Vec<(String, String)> = events
            .filter(|e| e.kind == Kind::Rule && e.handle.is_some())
            .map(|e| (e.table.clone(), e.chain.clone()))
            .collect();
        chains.sort();
        chains.dedup();
        chains
    }

    /// Reads, from the router, what turns rule events in `chains` into rules (nothing when
    /// there are none): the chains' rules (handles and digests); for a chain whose rules are
    /// those spelled last time ([`SPELLED`]), the lines kept then; for the others
    /// `iptables-save` and the rules again, tried up to three times until they did not
    /// change around the save (another job's rules come and go), after which a changing
    /// chain's rules keep their positions but not their lines.
    async fn read(
        helper: &Helper,
        name: &NsName,
        ino: u64,
        chains: Vec<(String, String)>,
    ) -> Result<Self, HelperError> {
        if chains.is_empty() {
            return Ok(Self {
                by_handle: HashMap::new(),
            });
        }
        let dump = |chains: Vec<(String, String)>| async move {
            helper
                .netns
                .run_in(name, ino, move || {
                    chains
                        .into_iter()
                        .map(|(table, chain)| {
                            let h = nftrace::rule_handles(&table, &chain).unwrap_or_default();
                            ((table, chain), h)
                        })
                        .collect::<HashMap<_, _>>()
                })
                .await
                .map_err(|e| HelperError::Kernel(format!("Cannot enter router {name}: {e}")))
        };
        let mut before = dump(chains.clone()).await?;
        let mut by_handle = HashMap::new();
        // The chains whose rules are what they were when they were last spelled need no
        // save: the lines kept then are theirs.
        {
            let cache = SPELLED.lock().unwrap_or_else(|p| p.into_inner());
            for (key, rules) in &before {
                let cached = cache.get(&(ino, key.0.clone(), key.1.clone()));
                if let Some((was, lines)) = cached.filter(|(was, _)| was == rules) {
                    by_handle.insert(key.clone(), shown(&handles_of(was), Some(lines)));
                }
            }
        }
        let missing: Vec<(String, String)> = chains
            .into_iter()
            .filter(|c| !by_handle.contains_key(c))
            .collect();
        if missing.is_empty() {
            return Ok(Self { by_handle });
        }
        // One table (the usual case: what dropped is in filter) is saved alone: less for
        // iptables-save to list and spell.
        let tables: BTreeSet<&str> = missing.iter().map(|(t, _)| t.as_str()).collect();
        let args: Vec<String> = match tables.iter().next() {
            // Only iptables' own table names go on its command line.
            Some(t)
                if tables.len() == 1
                    && ["raw", "mangle", "nat", "filter", "security"].contains(t) =>
            {
                vec!["-t".into(), (*t).to_owned()]
            }
            _ => Vec::new(),
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        before.retain(|k, _| missing.contains(k));
        for attempt in 0..3 {
            let saved = helper
                .firewall()
                .run_checked(name, ino, Tool::IptablesSave, &args, None)
                .await?;
            let lines = save_lines(&saved);
            let after = dump(missing.clone()).await?;
            if before == after || attempt == 2 {
                let mut cache = SPELLED.lock().unwrap_or_else(|p| p.into_inner());
                if cache.len() + after.len() > SPELLED_MAX {
                    cache.clear();
                }
                for (key, rules) in &after {
                    let l = lines
                        .get(key)
                        .filter(|l| before.get(key) == Some(rules) && l.len() == rules.len());
                    if let Some(l) = l {
                        cache.insert(
                            (ino, key.0.clone(), key.1.clone()),
                            (rules.clone(), l.clone()),
                        );
                    }
                    by_handle.insert(key.clone(), shown(&handles_of(rules), l));
                }
                break;
            }
            before = after;
        }
        Ok(Self { by_handle })
    }

    /// The step one event shows, or `None` for what is not shown: the end of a chain's rules
    /// (before its policy: nothing decided there), and the helper's own rules.
    fn step(&self, e: &Event) -> Option<ExplainStep> {
        if e.kind == Kind::Rule && e.handle.is_none() {
            return None;
        }
        let key = (e.table.clone(), e.chain.clone());
        let shown = e
            .handle
            .and_then(|h| self.by_handle.get(&key)?.get(&h).cloned());
        if shown.as_ref().is_some_and(|s| s.ours) {
            return None;
        }
        let kind = match e.kind {
            Kind::Rule => "rule",
            Kind::Policy => "policy",
            Kind::Return => "return",
        };
        Some(ExplainStep {
            table: e.table.clone(),
            chain: e.chain.clone(),
            kind: kind.into(),
            position: shown.as_ref().map(|s| s.position),
            rule: shown.and_then(|s| s.line),
            verdict: e.verdict.word(),
        })
    }
}

/// A dropping step in words: `filter FORWARD #5: -A FORWARD ... -j DROP`, or
/// `filter FORWARD policy`.
fn dropped_by(s: &ExplainStep) -> String {
    match (&s.position, &s.rule) {
        (Some(pos), Some(rule)) => format!("{} {} #{pos}: {rule}", s.table, s.chain),
        (Some(pos), None) => format!("{} {} #{pos}", s.table, s.chain),
        _ => format!("{} {} {}", s.table, s.chain, s.kind),
    }
}

/// What the router did to a probe's packets, from the events queued on its trace socket
/// now: for every TCP or UDP request with DSCP `dscp` that a rule or policy dropped, its
/// protocol, destination port and the dropping step in words (the first drop of each
/// protocol and port). For the reachability jobs, whose verdicts say only that a router
/// dropped a service's packets.
pub(super) async fn drops(
    helper: &Helper,
    name: &NsName,
    ino: u64,
    socket: &OwnedFd,
    dscp: u8,
) -> Result<HashMap<(u8, u16), String>, HelperError> {
    let (events, _) = nftrace::drain(socket);
    let packets = group(&events, dscp);
    let dropping: Vec<&Packet<'_>> = packets
        .iter()
        .filter(|p| {
            p.request && p.dport.is_some() && p.events.iter().any(|e| e.verdict == Verdict::Drop)
        })
        .collect();
    let chains = Rules::chains(
        dropping
            .iter()
            .flat_map(|p| p.events.iter().copied())
            .filter(|e| e.verdict == Verdict::Drop),
    );
    let rules = Rules::read(helper, name, ino, chains).await?;
    let mut out = HashMap::new();
    for p in dropping {
        let Some(port) = p.dport else { continue };
        let step = p
            .events
            .iter()
            .filter(|e| e.verdict == Verdict::Drop)
            .find_map(|e| rules.step(e));
        if let Some(step) = step {
            out.entry((p.proto, port))
                .or_insert_with(|| dropped_by(&step));
        }
    }
    Ok(out)
}

/// One router's events, as the answer shows them, with where the router is on the path;
/// `None` when the probe's packets did not pass it.
async fn read_router(
    helper: &Helper,
    t: &Traced,
    dscp: u8,
) -> Result<Option<(PathKey, ExplainRouter)>, HelperError> {
    let Some(socket) = t.socket.clone() else {
        return Ok(None);
    };
    let (events, lost) = nftrace::drain(&socket);
    let packets = group(&events, dscp);
    if packets.is_empty() {
        return Ok(None);
    }
    let chains = Rules::chains(
        packets
            .iter()
            .take(MAX_PACKETS)
            .flat_map(|p| p.events.iter().copied()),
    );
    let rules = Rules::read(helper, &t.name, t.ino, chains).await?;
    let mut key = PathKey {
        ttl_down: u8::MAX,
        not_local: true,
    };
    let mut out = Vec::new();
    let mut dropped = None;
    for p in packets.iter().take(MAX_PACKETS) {
        if p.request {
            key.ttl_down = key.ttl_down.min(u8::MAX - p.ttl);
            if p.local {
                key.not_local = false;
            }
        }
        let mut steps = Vec::new();
        for step in p.events.iter().filter_map(|e| rules.step(e)) {
            if step.verdict == "drop" && dropped.is_none() {
                dropped = Some(dropped_by(&step));
            }
            if steps.len() < MAX_STEPS {
                steps.push(step);
            }
        }
        let verdict = if steps.iter().any(|s| s.verdict == "drop") {
            "drop".to_owned()
        } else {
            steps
                .iter()
                .rev()
                .find(|s| {
                    !matches!(s.verdict.as_str(), "continue" | "return")
                        && !s.verdict.starts_with("jump")
                        && !s.verdict.starts_with("goto")
                })
                .map(|s| s.verdict.clone())
                .unwrap_or_else(|| "continue".into())
        };
        out.push(ExplainPacket {
            packet: p.summary.clone(),
            steps,
            verdict,
        });
    }
    Ok(Some((
        key,
        ExplainRouter {
            router: t.name.clone(),
            packets: out,
            dropped_by: dropped,
            incomplete: lost,
        },
    )))
}

/// `iptables-save` output as the rule lines of each table's chains, in order.
fn save_lines(saved: &str) -> HashMap<(String, String), Vec<String>> {
    let mut out: HashMap<(String, String), Vec<String>> = HashMap::new();
    let mut table = String::new();
    for line in saved.lines() {
        if let Some(t) = line.strip_prefix('*') {
            table = t.trim().to_owned();
        } else if let Some(rule) = line.strip_prefix("-A ") {
            let chain = rule.split_whitespace().next().unwrap_or_default();
            out.entry((table.clone(), chain.to_owned()))
                .or_default()
                .push(line.to_owned());
        }
    }
    out
}

/// One of the probe's packets at one router.
#[derive(Debug)]
struct Packet<'a> {
    summary: String,
    ttl: u8,
    /// The IP protocol, and the TCP or UDP destination port.
    proto: u8,
    dport: Option<u16>,
    /// Not a reply or an ICMP error: one of the probe's own.
    request: bool,
    /// Sent by this router itself (it met OUTPUT).
    local: bool,
    events: Vec<&'a Event>,
}

/// The events that belong to packets with DSCP `dscp`, one group per packet in the order
/// they came. A packet's first event in each base chain carries its headers; the events
/// after it carry only the packet's trace id.
fn group(events: &[Event], dscp: u8) -> Vec<Packet<'_>> {
    let mut out: Vec<Packet<'_>> = Vec::new();
    // Trace id -> the packet it is now, when it is ours.
    let mut current: BTreeMap<u32, Option<usize>> = BTreeMap::new();
    for e in events {
        if let Some(ip) = nftrace::ipv4(&e.network) {
            // A probe sends TCP, UDP or ICMP; the kernel's own IGMP may share a value.
            let value = ip.tos >> 2;
            let ours = matches!(ip.proto, 1 | 6 | 17)
                && match quoted_dscp(ip.proto, &e.transport) {
                    Some(q) => q == dscp && (value == dscp || value == error_dscp(dscp)),
                    None => value == dscp,
                };
            if !ours {
                current.insert(e.id, None);
                continue;
            }
            // raw is the first table of a hook: a packet starts there.
            let starts = e.table == "raw" || !matches!(current.get(&e.id), Some(Some(_)));
            if starts {
                out.push(Packet {
                    summary: summary(&ip, &e.transport),
                    ttl: ip.ttl,
                    proto: ip.proto,
                    dport: match ip.proto {
                        6 | 17 => e
                            .transport
                            .get(2..4)
                            .map(|b| u16::from_be_bytes([b[0], b[1]])),
                        _ => None,
                    },
                    request: is_request(ip.proto, &e.transport),
                    local: e.chain == "OUTPUT",
                    events: Vec::new(),
                });
                current.insert(e.id, Some(out.len() - 1));
            }
        }
        if let Some(Some(i)) = current.get(&e.id) {
            let p = &mut out[*i];
            if e.chain == "OUTPUT" {
                p.local = true;
            }
            p.events.push(e);
        }
    }
    out
}

/// ICMP types that quote the packet they are about.
fn is_icmp_error(kind: u8) -> bool {
    matches!(kind, 3 | 4 | 5 | 11 | 12)
}

/// The DSCP of the packet an ICMP error quotes (`None`: not an error, or not quoted).
fn quoted_dscp(proto: u8, transport: &[u8]) -> Option<u8> {
    if proto != 1 || !transport.first().is_some_and(|t| is_icmp_error(*t)) {
        return None;
    }
    transport.get(9).map(|tos| tos >> 2)
}

fn is_request(proto: u8, transport: &[u8]) -> bool {
    match (proto, transport.first()) {
        (1, Some(0)) => false,
        (1, Some(t)) => !is_icmp_error(*t),
        _ => true,
    }
}

/// The packet in words, from its IP header and the start of its transport header.
fn summary(ip: &nftrace::Ipv4, t: &[u8]) -> String {
    let port = |at: usize| t.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let ttl = ip.ttl;
    match ip.proto {
        6 => {
            let flags = t.get(13).copied().unwrap_or(0);
            let names: Vec<&str> = [
                (0x02, "SYN"),
                (0x10, "ACK"),
                (0x08, "PSH"),
                (0x01, "FIN"),
                (0x04, "RST"),
            ]
            .iter()
            .filter(|(bit, _)| flags & bit != 0)
            .map(|(_, n)| *n)
            .collect();
            format!(
                "TCP {}:{} > {}:{} {} ttl {ttl}",
                ip.src,
                port(0).unwrap_or(0),
                ip.dst,
                port(2).unwrap_or(0),
                names.join(",")
            )
        }
        17 => format!(
            "UDP {}:{} > {}:{} ttl {ttl}",
            ip.src,
            port(0).unwrap_or(0),
            ip.dst,
            port(2).unwrap_or(0)
        ),
        1 => {
            let kind = match (t.first(), t.get(1)) {
                (Some(8), _) => "echo-request".to_owned(),
                (Some(0), _) => "echo-reply".to_owned(),
                (Some(3), Some(c)) => format!("unreachable code {c}"),
                (Some(11), _) => "time-exceeded".to_owned(),
                (Some(k), _) => format!("type {k}"),
                (None, _) => "?".to_owned(),
            };
            format!("ICMP {} > {} {kind} ttl {ttl}", ip.src, ip.dst)
        }
        p => format!("proto {p} {} > {} ttl {ttl}", ip.src, ip.dst),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rules_are_installed_and_removed_exactly() {
        let install = install_payload(50);
        assert_eq!(
            install,
            "*raw\n-I PREROUTING 1 -m dscp --dscp 50 -m comment --comment \"tsim-explain 50\" -j TRACE\n\
             -I OUTPUT 1 -m dscp --dscp 50 -m comment --comment \"tsim-explain 50\" -j TRACE\nCOMMIT\n"
        );
        assert!(exact_removal_payload(50).contains("-D OUTPUT -m dscp --dscp 50 -m comment"));
        // As iptables-save prints them back.
        let saved = "*raw\n:PREROUTING ACCEPT [0:0]\n\
            -A PREROUTING -m dscp --dscp 0x32 -m comment --comment \"tsim-explain 50\" -j TRACE\n\
            -A PREROUTING -m dscp --dscp 0x33 -m comment --comment \"tsim-explain 51\" -j TRACE\n\
            -A PREROUTING -s 10.0.0.0/8 -j ACCEPT\nCOMMIT\n";
        let one = removal_payload(saved, Some(50)).unwrap();
        assert_eq!(
            one,
            "*raw\n-D PREROUTING -m dscp --dscp 0x32 -m comment --comment \"tsim-explain 50\" -j TRACE\nCOMMIT\n"
        );
        let all = removal_payload(saved, None).unwrap();
        assert_eq!(all.matches("-D ").count(), 2);
        assert!(removal_payload(saved, Some(52)).is_none());
    }

    fn header(tos: u8, ttl: u8, proto: u8) -> Vec<u8> {
        let mut h = vec![0u8; 20];
        h[0] = 0x45;
        h[1] = tos;
        h[8] = ttl;
        h[9] = proto;
        h[12..16].copy_from_slice(&[10, 1, 1, 1]);
        h[16..20].copy_from_slice(&[10, 3, 20, 1]);
        h
    }

    fn ev(id: u32, table: &str, chain: &str, network: Vec<u8>, transport: Vec<u8>) -> Event {
        Event {
            id,
            table: table.into(),
            chain: chain.into(),
            handle: Some(1),
            kind: Kind::Rule,
            verdict: Verdict::Continue,
            network,
            transport,
            iif: None,
            oif: None,
        }
    }

    #[test]
    fn only_the_probes_packets_and_the_errors_about_them_are_kept() {
        let syn = vec![0x9c, 0x40, 0, 80, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x02];
        let mut other_error = vec![3, 3, 0, 0, 0, 0, 0, 0, 0x45, 40 << 2];
        other_error.resize(28, 0);
        let mut our_error = other_error.clone();
        our_error[9] = 50 << 2;
        let events = vec![
            ev(1, "raw", "PREROUTING", header(50 << 2, 64, 6), syn.clone()),
            ev(1, "raw", "PREROUTING", vec![], vec![]),
            ev(2, "raw", "PREROUTING", header(51 << 2, 64, 6), syn.clone()),
            ev(2, "filter", "FORWARD", vec![], vec![]),
            ev(1, "filter", "FORWARD", header(50 << 2, 64, 6), syn),
            ev(1, "filter", "FORWARD", vec![], vec![]),
            // An error about another job's packet (DSCP 40 | 0x30 = 56): not ours.
            ev(3, "raw", "OUTPUT", header(56 << 2, 64, 1), other_error),
            ev(3, "filter", "OUTPUT", vec![], vec![]),
            ev(4, "raw", "OUTPUT", header(50 << 2, 64, 1), our_error),
        ];
        let mut g = group(&events, 56);
        assert!(g.is_empty(), "{g:?}");
        g = group(&events, 50);
        assert_eq!(g.len(), 2, "{g:?}");
        assert_eq!(g[0].events.len(), 4);
        assert!(g[0].request && !g[0].local);
        assert_eq!(g[0].summary, "TCP 10.1.1.1:40000 > 10.3.20.1:80 SYN ttl 64");
        assert!(!g[1].request && g[1].local);
        assert_eq!(
            g[1].summary,
            "ICMP 10.1.1.1 > 10.3.20.1 unreachable code 3 ttl 64"
        );
    }

    #[test]
    fn positions_count_the_routers_own_rules_and_need_aligned_reads() {
        let lines: Vec<String> = [
            "-A PREROUTING -m dscp --dscp 0x31 -m comment --comment \"tsim-explain 49\" -j TRACE",
            "-A PREROUTING -m dscp --dscp 0x21 -j TSIM_REACH_PRE_33",
            "-A PREROUTING -s 10.0.0.0/8 -j DROP",
            "-A PREROUTING -j LOG --log-prefix \"tsim-reach \"",
        ]
        .iter()
        .map(|l| l.to_string())
        .collect();
        let s = shown(&[7, 9, 3, 12], Some(&lines));
        assert!(s[&7].ours && s[&9].ours);
        assert_eq!(
            s[&3],
            Shown {
                position: 1,
                line: Some(lines[2].clone()),
                ours: false
            }
        );
        // A log prefix that happens to read like ours is the router's.
        assert_eq!((s[&12].position, s[&12].ours), (2, false));
        // A chain that changed between the reads: positions, no lines, nothing hidden.
        let s = shown(&[7, 3], Some(&lines));
        assert_eq!(
            s[&3],
            Shown {
                position: 2,
                line: None,
                ours: false
            }
        );
        assert!(shown(&[1], None)[&1].line.is_none());
    }

    #[test]
    fn save_lines_are_kept_per_table_and_chain_in_order() {
        let saved = "*filter\n:FORWARD DROP [0:0]\n-A FORWARD -i eth1 -j ACCEPT\n-A INPUT -j DROP\n\
            -A FORWARD -j LOG\nCOMMIT\n*nat\n-A FORWARD -j X\nCOMMIT\n";
        let lines = save_lines(saved);
        assert_eq!(
            lines[&("filter".into(), "FORWARD".into())],
            ["-A FORWARD -i eth1 -j ACCEPT", "-A FORWARD -j LOG"]
        );
        assert_eq!(lines[&("nat".into(), "FORWARD".into())].len(), 1);
    }

    #[test]
    fn icmp_errors_get_the_values_the_kernel_gives_them() {
        // As measured: TTL-expired echo requests with these values, and their errors'.
        for (d, e) in [(49, 49), (55, 55), (56, 48), (57, 49), (63, 55)] {
            assert_eq!(error_dscp(d), e);
        }
        assert!(error_rule(50, "OUTPUT").is_none());
        let p = install_payload(57);
        assert!(
            p.contains("-I OUTPUT 1 -p icmp -m dscp --dscp 49 -m comment --comment \"tsim-explain 57\" -j TRACE\n"),
            "{p}"
        );
        let r = exact_removal_payload(57);
        assert_eq!(r.matches("-D ").count(), 4, "{r}");
        // The error about a 57's packet (value 49, quoting 57) is 57's, not 49's.
        let mut quoted = vec![11, 0, 0, 0, 0, 0, 0, 0];
        quoted.extend(header(57 << 2, 1, 1));
        let events = [ev(1, "raw", "PREROUTING", header(49 << 2, 64, 1), quoted)];
        assert_eq!(group(&events, 57).len(), 1);
        assert!(group(&events, 49).is_empty());
    }
}
