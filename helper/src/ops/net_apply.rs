//! `net_apply`: build the simulated network, or change the one in place into a new topology.
//!
//! Everything is done with the primitive operations (through [`super::dispatch_boxed`]), so
//! each step is validated and undone like any other, and the whole apply is one operation:
//! it succeeds, or leaves the network as it was. Order:
//!
//! 1. the hidden namespace (IPv4 only) and the new bridges;
//! 2. new routers: namespace (IPv4 only), veths born in place and attached, addresses,
//!    sysctls, routes, rules (policy ones only on request);
//! 3. changed routers: only what differs;
//! 4. firewalls, several routers at once: ipsets, then iptables;
//! 5. removals, which cannot all be undone, last: interfaces, routers, bridges;
//! 6. the record of the applied network.
//!
//! A route, rule, set or firewall line the kernel refuses is a warning naming the router and
//! the item, not a failure.

use std::time::{Duration, Instant};

use futures::StreamExt;
use tsim_protocol::ops::{
    LinkAddBridge, LinkAddVeth, LinkDelete, LinkSet, NetApplied, NetApply, NetWarning, NsCreate,
    NsDelete, SysctlSet,
};
use tsim_protocol::topology::{InterfaceDef, RouterDef, Topology};
use tsim_protocol::{ErrorCode, IfName, NsName, Op, OpResult};

use super::{NsHandle, OpCtx, dispatch_boxed};
use crate::base::error::HelperError;
use crate::kernel::firewall::{self, Skipped};
use crate::kernel::tools::Tool;
use crate::managed::context::now_ms;
use crate::managed::state::NetRecord;
use crate::pure::network::{self, NetDiff, RouterChange};
use crate::txn::undo::Undo;
use crate::txn::{Effect, Txn};

/// Routers whose firewalls are restored at the same time.
const FIREWALL_PARALLELISM: usize = 16;

/// Runs operations for the apply, counting progress and collecting warnings.
struct Runner<'c, 'a> {
    ctx: &'c OpCtx<'a>,
    done: usize,
    total: usize,
    warnings: Vec<NetWarning>,
}

impl Runner<'_, '_> {
    async fn step(&mut self, stage: &str) -> Result<(), HelperError> {
        if self.ctx.cancel.is_cancelled() {
            return Err(HelperError::Cancelled);
        }
        self.done += 1;
        if let Some(p) = self.ctx.progress {
            p.report(self.done.min(self.total), self.total, stage, false)
                .await;
        }
        Ok(())
    }

    async fn op(&mut self, stage: &str, op: Op, txn: &mut Txn) -> Result<OpResult, HelperError> {
        self.step(stage).await?;
        dispatch_boxed(self.ctx, op, txn).await
    }

    /// Runs `op`; a refusal by the kernel becomes a warning about `item` of `router`.
    async fn op_or_warn(
        &mut self,
        router: &NsName,
        kind: &str,
        item: String,
        op: Op,
        txn: &mut Txn,
    ) -> Result<(), HelperError> {
        match self.op(kind, op, txn).await {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.code(),
                    ErrorCode::Kernel
                        | ErrorCode::AlreadyExists
                        | ErrorCode::NotFound
                        | ErrorCode::InvalidArgument
                        | ErrorCode::Unsupported
                ) =>
            {
                self.warnings.push(NetWarning {
                    router: router.clone(),
                    kind: kind.into(),
                    item,
                    message: e.to_string(),
                });
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

fn veth(router: &NsName, iface: &InterfaceDef, hidden: &NsName) -> Op {
    Op::LinkAddVeth(LinkAddVeth {
        ns: router.clone(),
        name: iface.name.clone(),
        peer_ns: hidden.clone(),
        peer_name: iface.hidden_end.clone(),
        mtu: None,
        mac: None,
        peer_mac: None,
        master: None,
        peer_master: iface.bridge.clone(),
        up: true,
    })
}

fn link_set(ns: &NsName, name: &IfName) -> LinkSet {
    LinkSet {
        ns: ns.clone(),
        name: name.clone(),
        up: None,
        master: None,
        nomaster: false,
        mtu: None,
        mac: None,
        rename: None,
    }
}

/// Creates one interface: the veth, its addresses, and its state.
async fn add_interface(
    run: &mut Runner<'_, '_>,
    router: &NsName,
    iface: &InterfaceDef,
    hidden: &NsName,
    txn: &mut Txn,
) -> Result<(), HelperError> {
    run.op("interfaces", veth(router, iface, hidden), txn)
        .await?;
    if !iface.up {
        let down = LinkSet {
            up: Some(false),
            ..link_set(router, &iface.name)
        };
        run.op("interfaces", Op::LinkSet(down), txn).await?;
    }
    for addr in &iface.addrs {
        run.op(
            "addresses",
            Op::AddrAdd(addr.spec(router, &iface.name)),
            txn,
        )
        .await?;
    }
    Ok(())
}

/// Fills a router whose namespace was just created.
async fn add_router(
    run: &mut Runner<'_, '_>,
    router: &RouterDef,
    hidden: &NsName,
    txn: &mut Txn,
) -> Result<(), HelperError> {
    let name = &router.name;
    for iface in &router.interfaces {
        add_interface(run, name, iface, hidden, txn).await?;
    }
    // A new namespace needs no undo of its sysctls: all on one thread, at once.
    run.step("sysctls").await?;
    let h = run.ctx.ns_mut(name).await?;
    let settings: Vec<(String, String)> = router
        .sysctls
        .iter()
        .filter_map(|s| {
            Some((
                format!("/proc/sys/{}", s.key.proc_path()?),
                s.value.as_str().to_owned(),
            ))
        })
        .collect();
    let written = run
        .ctx
        .helper
        .netns
        .sysctl_write(&h.name, h.ino, settings)
        .await?;
    written.map_err(|e| {
        HelperError::Kernel(format!("Cannot set the sysctls of router {name}: {e}"))
    })?;
    for route in &router.routes {
        run.op_or_warn(
            name,
            "route",
            route.to_string(),
            Op::RouteAdd(route.spec(name)),
            txn,
        )
        .await?;
    }
    for rule in &router.rules {
        run.op_or_warn(
            name,
            "rule",
            rule.to_string(),
            Op::RuleAdd(rule.spec(name)),
            txn,
        )
        .await?;
    }
    Ok(())
}

/// How long the kernel may take to free the links of deleted namespaces.
const CLEANUP_LIMIT: Duration = Duration::from_secs(5);

/// Waits until the links `names` are gone from the hidden namespace. The kernel frees the
/// veths of a deleted namespace in the background, usually within milliseconds of the
/// deletion's commit; until it has, their hidden ends keep their names, and a router removed
/// by one apply and added again by the next could not reuse them.
async fn wait_until_gone(
    ctx: &OpCtx<'_>,
    hidden: &NsName,
    names: &[IfName],
) -> Result<(), HelperError> {
    let h = ctx.ns(hidden).await?;
    let deadline = Instant::now() + CLEANUP_LIMIT;
    for name in names {
        let mut pause = Duration::from_micros(200);
        while h.nl.link_index(name.as_str()).await.is_ok() {
            if Instant::now() > deadline {
                return Err(HelperError::AlreadyExists(format!(
                    "Interface {name} exists in namespace {hidden} (not freed {} s after its \
                     router was deleted)",
                    CLEANUP_LIMIT.as_secs()
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }
    Ok(())
}

/// The hosts that cannot stay on the network `desired`: their router is gone, or its
/// interface facing them, or that interface is on another bridge now.
fn doomed_hosts(helper: &crate::managed::context::Helper, desired: &Topology) -> Vec<NsName> {
    helper
        .registry
        .hosts()
        .into_iter()
        .filter(|(record, _)| {
            let Some(h) = &record.host else { return false };
            let iface = desired
                .routers
                .iter()
                .find(|r| r.name == h.router)
                .and_then(|r| r.interfaces.iter().find(|i| i.name == h.router_if));
            iface.is_none_or(|i| i.bridge.as_ref() != Some(&h.bridge))
        })
        .map(|(record, _)| record.name)
        .collect()
}

/// The result of a removal, where "not there" is success.
fn absent_is_fine(result: Result<OpResult, HelperError>) -> Result<(), HelperError> {
    match result {
        Err(e) if e.code() != ErrorCode::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Changes a router in place (all but removals and the firewall).
async fn change_router(
    run: &mut Runner<'_, '_>,
    change: &RouterChange<'_>,
    hidden: &NsName,
    txn: &mut Txn,
) -> Result<(), HelperError> {
    let Some(router) = change.new else {
        return Ok(());
    };
    let name = &router.name;
    for iface in &change.add_interfaces {
        add_interface(run, name, iface, hidden, txn).await?;
    }
    for (old, new) in &change.change_interfaces {
        for addr in old.addrs.iter().filter(|a| !new.addrs.contains(a)) {
            run.op("addresses", Op::AddrDelete(addr.spec(name, &new.name)), txn)
                .await?;
        }
        for addr in new.addrs.iter().filter(|a| !old.addrs.contains(a)) {
            run.op("addresses", Op::AddrAdd(addr.spec(name, &new.name)), txn)
                .await?;
        }
        if old.up != new.up {
            run.op(
                "interfaces",
                Op::LinkSet(LinkSet {
                    up: Some(new.up),
                    ..link_set(name, &new.name)
                }),
                txn,
            )
            .await?;
        }
        if old.bridge != new.bridge {
            let set = match &new.bridge {
                Some(b) => LinkSet {
                    master: Some(b.clone()),
                    ..link_set(hidden, &new.hidden_end)
                },
                None => LinkSet {
                    nomaster: true,
                    ..link_set(hidden, &new.hidden_end)
                },
            };
            run.op("interfaces", Op::LinkSet(set), txn).await?;
        }
    }
    for s in &change.sysctls {
        let set = SysctlSet {
            ns: name.clone(),
            key: s.key.clone(),
            value: s.value.clone(),
        };
        run.op("sysctls", Op::SysctlSet(set), txn).await?;
    }
    for route in &change.remove_routes {
        // Gone already if its interface or address went, or if the kernel refused it.
        let delete = Op::RouteDelete(route.spec(name));
        absent_is_fine(run.op("routes", delete, txn).await)?;
    }
    for route in &change.add_routes {
        run.op_or_warn(
            name,
            "route",
            route.to_string(),
            Op::RouteAdd(route.spec(name)),
            txn,
        )
        .await?;
    }
    for rule in &change.remove_rules {
        let delete = Op::RuleDelete(rule.spec(name));
        absent_is_fine(run.op("rules", delete, txn).await)?;
    }
    for rule in &change.add_rules {
        run.op_or_warn(
            name,
            "rule",
            rule.to_string(),
            Op::RuleAdd(rule.spec(name)),
            txn,
        )
        .await?;
    }
    Ok(())
}

/// One router's firewall to restore.
struct FirewallJob {
    router: NsName,
    ns: NsHandle,
    /// The router was built by this apply: nothing to save or clear first.
    fresh: bool,
    ipset: Option<String>,
    iptables: Option<String>,
}

/// What a firewall job did: undo data to record, and what was left out.
struct FirewallDone {
    router: NsName,
    undo: Vec<(String, Undo)>,
    warnings: Vec<NetWarning>,
}

async fn firewall_job(ctx: &OpCtx<'_>, job: FirewallJob) -> Result<FirewallDone, HelperError> {
    let helper = ctx.helper;
    let (name, ino) = (&job.ns.name, job.ns.ino);
    let mut undo = Vec::new();
    if !job.fresh {
        // Keep what is there for undo, then clear it: rules first (they may use the sets).
        let rules = helper
            .firewall()
            .run_checked(name, ino, Tool::IptablesSave, &[], None)
            .await?;
        let sets = helper
            .firewall()
            .run_checked(name, ino, Tool::Ipset, &["save"], None)
            .await?;
        undo.push((
            "iptables".to_owned(),
            Undo::Iptables {
                ipv6: false,
                payload: firewall::restoring_payload(&rules),
            },
        ));
        undo.push(("ipset".to_owned(), Undo::Ipset { payload: sets }));
        let empty = firewall::restoring_payload("");
        helper
            .firewall()
            .run_checked(name, ino, Tool::IptablesRestore, &[], Some(empty))
            .await?;
        helper
            .firewall()
            .run_checked(name, ino, Tool::Ipset, &["destroy"], None)
            .await?;
    }
    let mut warnings = Vec::new();
    let mut warn = |kind: &str, skipped: Vec<Skipped>| {
        for s in skipped {
            warnings.push(NetWarning {
                router: job.router.clone(),
                kind: kind.into(),
                item: s.line,
                message: s.why,
            });
        }
    };
    if let Some(payload) = &job.ipset {
        warn(
            "ipset",
            helper
                .firewall()
                .restore_skipping(name, ino, Tool::Ipset, &["restore", "-exist"], payload)
                .await?,
        );
    }
    if let Some(payload) = &job.iptables {
        warn(
            "iptables",
            helper
                .firewall()
                .restore_skipping(name, ino, Tool::IptablesRestore, &[], payload)
                .await?,
        );
    }
    Ok(FirewallDone {
        router: job.router,
        undo,
        warnings,
    })
}

/// Whether checking or comparing `t` may take more than about a millisecond of CPU.
fn is_big(t: &Topology) -> bool {
    let items: usize = t
        .routers
        .iter()
        .map(|r| 1 + r.interfaces.len() + r.routes.len() + r.rules.len() + r.sysctls.len())
        .sum();
    items + t.bridges.len() > 2000
}

/// Runs `f`, which may take a while of CPU when `big`, without holding up a runtime worker
/// (the other tasks of this worker move to another thread meanwhile).
fn off_worker<T>(big: bool, f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if big && h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// The network in place, as recorded, without the routers that have gone since; and, when
/// the hidden namespace is gone, the routers still there, which lost their veths and are
/// rebuilt.
fn in_place(
    record: Option<&NetRecord>,
    hidden_there: bool,
    managed: impl Fn(&NsName) -> bool,
) -> (Topology, Vec<NsName>) {
    let mut current = match (record, hidden_there) {
        (Some(r), true) => r.topology.clone(),
        _ => Topology::default(),
    };
    current.routers.retain(|r| managed(&r.name));
    let orphans = match (record, hidden_there) {
        (Some(r), false) => r
            .topology
            .routers
            .iter()
            .map(|r| r.name.clone())
            .filter(|n| managed(n))
            .collect(),
        _ => Vec::new(),
    };
    (current, orphans)
}

/// How many progress steps an apply of `d` takes, with `orphans` routers to rebuild.
fn step_count(d: &NetDiff<'_>, orphans: usize) -> usize {
    let count = |r: &RouterDef| 1 + r.interfaces.len() * 2 + r.routes.len() + r.rules.len() + 2;
    1 + d.add_bridges.len()
        + d.add_routers.iter().map(|r| count(r)).sum::<usize>()
        + d.change_routers
            .iter()
            .filter_map(|c| c.new)
            .map(count)
            .sum::<usize>()
        + d.remove_routers.len()
        + d.remove_bridges.len()
        + orphans
}

/// Applies `args.topology`: checks it, compares it with the network in place, then makes
/// what is new ([`prepare`], [`build`]), removes what has gone ([`remove`]) and records the
/// result ([`finish`]). Everything goes through `txn`, so a failure undoes it all.
pub(super) async fn handle(
    ctx: &OpCtx<'_>,
    args: NetApply,
    txn: &mut Txn,
) -> Result<OpResult, HelperError> {
    super::require_admin(ctx, "apply a network")?;
    let helper = ctx.helper;
    let hidden = helper.config.hidden_ns.clone();
    let big = is_big(&args.topology);
    off_worker(big, || network::validate(&args.topology, &hidden))?;
    let desired = network::effective(&args.topology, args.policy_tables);
    let record = helper.registry.store().load_net()?;
    let hidden_there = helper.registry.is_managed(&hidden);
    let (current, orphans) = in_place(record.as_ref(), hidden_there, |n| {
        helper.registry.is_managed(n)
    });
    let d = off_worker(big, || network::diff(&current, &desired));
    let mut run = Runner {
        ctx,
        done: 0,
        total: step_count(&d, orphans.len()),
        warnings: Vec::new(),
    };
    let hidden_ns = Hidden {
        name: &hidden,
        there: hidden_there,
    };
    prepare(&mut run, &d, &orphans, hidden_ns, txn).await?;
    build(&mut run, &d, &hidden, txn).await?;
    let doomed = remove(&mut run, &d, &desired, &hidden, txn).await?;
    let warnings = std::mem::take(&mut run.warnings);
    finish(
        ctx,
        (record, args.policy_tables),
        (&desired, &d),
        warnings,
        doomed,
        txn,
    )
}

/// The hidden namespace, and whether it was there before this apply.
#[derive(Clone, Copy)]
struct Hidden<'a> {
    name: &'a NsName,
    there: bool,
}

/// Before the routers are built: the pool drained and the orphaned routers deleted if the
/// hidden namespace is gone (and then the hidden namespace made), the new bridges, the
/// interfaces replaced under the same name deleted, and the new routers' namespaces.
async fn prepare(
    run: &mut Runner<'_, '_>,
    d: &NetDiff<'_>,
    orphans: &[NsName],
    hidden_ns: Hidden<'_>,
    txn: &mut Txn,
) -> Result<(), HelperError> {
    let ctx = run.ctx;
    let (hidden, hidden_there) = (hidden_ns.name.clone(), hidden_ns.there);
    if !hidden_there {
        // Pooled namespaces hang off a hidden namespace that is gone.
        super::pool::drain(ctx, txn).await?;
    }
    for orphan in orphans {
        run.op(
            "routers",
            Op::NsDelete(NsDelete {
                name: orphan.clone(),
            }),
            txn,
        )
        .await?;
    }
    if !hidden_there {
        run.step("hidden").await?;
        let args = NsCreate {
            name: hidden.clone(),
            tag: None,
            ipv6: Some(false),
        };
        super::ns_create::create(ctx, args, txn).await?;
    }
    for bridge in &d.add_bridges {
        let add = LinkAddBridge {
            ns: hidden.clone(),
            name: bridge.name.clone(),
            ageing_time: None,
            mtu: None,
            up: true,
        };
        run.op("bridges", Op::LinkAddBridge(add), txn).await?;
    }
    // An interface replaced under the same name must go before its successor comes.
    for change in &d.change_routers {
        let Some(router) = change.new else { continue };
        for iface in change
            .remove_interfaces
            .iter()
            .filter(|i| change.add_interfaces.iter().any(|a| a.name == i.name))
        {
            run.op(
                "interfaces",
                Op::LinkDelete(LinkDelete {
                    ns: router.name.clone(),
                    name: iface.name.clone(),
                }),
                txn,
            )
            .await?;
        }
    }
    if hidden_there {
        // Hidden ends of routers removed by an earlier apply may still be on their way out.
        let ends: Vec<IfName> = d
            .add_routers
            .iter()
            .flat_map(|r| &r.interfaces)
            .chain(
                d.change_routers
                    .iter()
                    .flat_map(|c| c.add_interfaces.iter().copied()),
            )
            .map(|i| i.hidden_end.clone())
            .collect();
        wait_until_gone(ctx, &hidden, &ends).await?;
    }
    for router in &d.add_routers {
        let create = NsCreate {
            name: router.name.clone(),
            tag: None,
            ipv6: Some(false),
        };
        run.op("routers", Op::NsCreate(create), txn).await?;
    }
    Ok(())
}

/// The routers' links, addresses, routes and rules, with their firewalls restored several
/// routers at once meanwhile.
async fn build(
    run: &mut Runner<'_, '_>,
    d: &NetDiff<'_>,
    hidden: &NsName,
    txn: &mut Txn,
) -> Result<(), HelperError> {
    let ctx = run.ctx;
    // Firewalls, several routers at once, while the links, addresses and routes are made
    // (an iptables-restore mostly waits for the kernel); each job's undo data is recorded
    // after it ends.
    let mut jobs = Vec::new();
    let fresh = d.add_routers.iter().map(|r| (*r, true));
    let changed = d
        .change_routers
        .iter()
        .filter(|c| c.firewall)
        .filter_map(|c| c.new)
        .map(|r| (r, false));
    for (router, is_fresh) in fresh.chain(changed) {
        if router.ipset.is_none() && router.iptables.is_none() && is_fresh {
            continue;
        }
        let ns = ctx.ns_mut(&router.name).await?;
        jobs.push(FirewallJob {
            router: router.name.clone(),
            ns,
            fresh: is_fresh,
            ipset: router.ipset.clone(),
            iptables: router.iptables.clone(),
        });
    }
    let firewalls = futures::stream::iter(jobs.into_iter().map(|job| firewall_job(ctx, job)))
        .buffer_unordered(FIREWALL_PARALLELISM)
        .collect::<Vec<Result<FirewallDone, HelperError>>>();
    let build = async {
        for router in &d.add_routers {
            add_router(&mut *run, router, hidden, txn).await?;
        }
        for change in &d.change_routers {
            change_router(&mut *run, change, hidden, txn).await?;
        }
        Ok::<(), HelperError>(())
    };
    let (built, results) = tokio::join!(build, firewalls);
    let mut first_error = built.err();
    let finished = results.len();
    for result in results {
        match result {
            Ok(done) => {
                for (what, undo) in done.undo {
                    txn.changed(
                        &done.router,
                        format!("{what} of router {}", done.router),
                        undo,
                    );
                }
                run.warnings.extend(done.warnings);
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    for _ in 0..finished {
        run.step("firewall").await?;
    }
    Ok(())
}

/// Removals, last: the hosts that would lose their router, interface or bridge, the
/// interfaces that have gone, the routers, the bridges. Returns the hosts removed.
async fn remove(
    run: &mut Runner<'_, '_>,
    d: &NetDiff<'_>,
    desired: &Topology,
    hidden: &NsName,
    txn: &mut Txn,
) -> Result<Vec<NsName>, HelperError> {
    let ctx = run.ctx;
    let helper = ctx.helper;
    // Removals last: first the hosts that would lose their router, interface or bridge.
    let doomed = doomed_hosts(helper, desired);
    for host in &doomed {
        run.step("hosts").await?;
        super::host::remove(ctx, host, &crate::managed::registry::Release::All, txn).await?;
    }
    for change in &d.change_routers {
        let Some(router) = change.new else { continue };
        for iface in change
            .remove_interfaces
            .iter()
            .filter(|i| !change.add_interfaces.iter().any(|a| a.name == i.name))
        {
            run.op(
                "interfaces",
                Op::LinkDelete(LinkDelete {
                    ns: router.name.clone(),
                    name: iface.name.clone(),
                }),
                txn,
            )
            .await?;
        }
    }
    for router in &d.remove_routers {
        run.op(
            "routers",
            Op::NsDelete(NsDelete {
                name: router.name.clone(),
            }),
            txn,
        )
        .await?;
    }
    for bridge in &d.remove_bridges {
        run.op(
            "bridges",
            Op::LinkDelete(LinkDelete {
                ns: hidden.clone(),
                name: bridge.name.clone(),
            }),
            txn,
        )
        .await?;
    }
    Ok(doomed)
}

/// The new network's record (its warnings carried over where they still hold), kept
/// undoable, and the answer.
fn finish(
    ctx: &OpCtx<'_>,
    (record, policy_tables): (Option<NetRecord>, bool),
    (desired, d): (&Topology, &NetDiff<'_>),
    new_warnings: Vec<NetWarning>,
    doomed: Vec<NsName>,
    txn: &mut Txn,
) -> Result<OpResult, HelperError> {
    let helper = ctx.helper;
    let previous = record
        .as_ref()
        .map(|r| r.warnings.as_slice())
        .unwrap_or(&[]);
    let warnings = network::carry_warnings(previous, new_warnings, desired, d);
    // Every router's firewall log is read from the commit on (a no-op for those read already).
    for router in &desired.routers {
        if let Some(entry) = helper.registry.lookup_for_undo(&router.name) {
            txn.push(Effect::LogWanted {
                router: router.name.clone(),
                ino: entry.ino,
            });
        }
    }
    super::pool::kick(helper);
    let new_record = NetRecord::new(desired.clone(), policy_tables, warnings.clone(), now_ms());
    helper.registry.store().save_net(Some(&new_record))?;
    txn.push(Effect::NetState {
        previous: record.map(Box::new),
    });

    Ok(OpResult::NetApply(NetApplied {
        added: d.add_routers.iter().map(|r| r.name.clone()).collect(),
        removed: d.remove_routers.iter().map(|r| r.name.clone()).collect(),
        changed: d
            .change_routers
            .iter()
            .filter_map(|c| c.new.map(|r| r.name.clone()))
            .collect(),
        unchanged: u32::try_from(d.unchanged).unwrap_or(u32::MAX),
        bridges_added: u32::try_from(d.add_bridges.len()).unwrap_or(u32::MAX),
        bridges_removed: u32::try_from(d.remove_bridges.len()).unwrap_or(u32::MAX),
        warnings,
        hosts_removed: doomed,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(name: &str) -> RouterDef {
        serde_json::from_value(serde_json::json!({
            "name": name, "interfaces": [], "routes": [], "rules": [], "sysctls": []
        }))
        .expect("a router")
    }

    fn record(routers: &[&str]) -> NetRecord {
        let topology = Topology {
            routers: routers.iter().map(|r| router(r)).collect(),
            ..Topology::default()
        };
        NetRecord::new(topology, false, Vec::new(), 0)
    }

    fn names(t: &Topology) -> Vec<String> {
        t.routers.iter().map(|r| r.name.to_string()).collect()
    }

    #[test]
    fn in_place_is_the_record_without_routers_gone_since() {
        let rec = record(&["r1", "r2", "r3"]);
        let managed = |n: &NsName| n.as_str() != "r2";
        let (current, orphans) = in_place(Some(&rec), true, managed);
        assert_eq!(names(&current), ["r1", "r3"]);
        assert!(orphans.is_empty());
        // Nothing recorded: nothing in place.
        let (current, orphans) = in_place(None, true, managed);
        assert!(current.routers.is_empty() && orphans.is_empty());
    }

    #[test]
    fn without_the_hidden_namespace_the_routers_left_are_rebuilt() {
        let rec = record(&["r1", "r2", "r3"]);
        let (current, orphans) = in_place(Some(&rec), false, |n| n.as_str() != "r2");
        assert!(current.routers.is_empty(), "everything is made again");
        let orphans: Vec<&str> = orphans.iter().map(NsName::as_str).collect();
        assert_eq!(orphans, ["r1", "r3"]);
    }

    #[test]
    fn steps_count_every_router_interface_route_and_removal() {
        let empty = Topology::default();
        let mut new = Topology::default();
        let mut r = router("r1");
        r.interfaces = serde_json::from_value(serde_json::json!([
            {"name": "eth0", "up": true, "hidden_end": "v1"},
            {"name": "eth1", "up": true, "hidden_end": "v2"}
        ]))
        .expect("interfaces");
        new.routers.push(r);
        let d = network::diff(&empty, &new);
        // 1 (the record) + the router: 1 + 2 per interface + routes + rules + 2.
        assert_eq!(step_count(&d, 0), 1 + 1 + 2 * 2 + 2);
        assert_eq!(step_count(&d, 3), 1 + 1 + 2 * 2 + 2 + 3);
        let gone = network::diff(&new, &empty);
        assert_eq!(step_count(&gone, 0), 1 + 1);
    }
}
