//! Operation handlers, one file per operation. `dispatch` is the only place that lists them.

use tokio_util::sync::CancellationToken;
use tsim_protocol::ops::Transport;
use tsim_protocol::{NsName, Op, OpResult};

use crate::base::auth::Peer;
use crate::base::error::HelperError;
use crate::kernel::netlink::Netlink;
use crate::kernel::netns::PathState;
use crate::managed::context::Helper;
use crate::managed::registry::Unusable;
use crate::pure::budget::Part;
use crate::txn::Txn;

mod addr_add;
mod addr_delete;
mod addr_list;
mod common;
mod explain;
mod host;
mod icmp;
mod ipset_restore;
mod ipset_save;
mod iptables_restore;
mod iptables_save;
mod link_add;
mod link_delete;
mod link_flush;
mod link_list;
mod link_set;
mod neigh_delete;
mod neigh_flush;
mod neigh_replace;
mod net_apply;
mod net_log;
mod net_show;
mod net_teardown;
mod netem_delete;
mod netem_set;
mod ns_create;
mod ns_delete;
mod ns_list;
mod ping;
pub mod pool;
mod probe;
pub mod reach;
mod route_change;
mod route_flush;
mod route_get;
mod route_list;
mod rule_change;
mod rule_list;
mod status;
mod svc;
mod sysctl_get;
mod sysctl_set;

/// Where a long operation reports how far it got (the connection layer sends it as events).
pub trait Report: Send + Sync + std::fmt::Debug {
    /// Reports `done` of `total` steps, now at `stage`; the reporter may skip an event sent
    /// too soon after the last, unless `force`.
    fn report<'a>(
        &'a self,
        done: usize,
        total: usize,
        stage: &'a str,
        force: bool,
    ) -> futures::future::BoxFuture<'a, ()>;
}

/// What an operation handler may use.
#[derive(Debug, Clone, Copy)]
pub struct OpCtx<'a> {
    /// The helper's shared state.
    pub helper: &'a Helper,
    /// Who asked.
    pub peer: &'a Peer,
    /// Cancelled when the request is.
    pub cancel: &'a CancellationToken,
    /// Whether the request is atomic (its effects are committed only at its end).
    pub atomic: bool,
    /// The request's registry id.
    pub txn: u64,
    /// Where to report progress, when the request asked for it.
    pub progress: Option<&'a dyn Report>,
}

/// A managed namespace, resolved for one operation.
#[derive(Debug, Clone)]
pub struct NsHandle {
    /// Its name.
    pub name: NsName,
    /// Its inode number.
    pub ino: u64,
    /// Its netlink socket.
    pub nl: Netlink,
    /// Created by this request and not committed: undoing the creation removes everything
    /// inside it, so changes inside need no undo of their own.
    pub fresh: bool,
}

impl<'a> OpCtx<'a> {
    /// This context on behalf of `peer` instead (for changes the helper makes on a caller's
    /// behalf with more authority than the caller's own).
    pub fn with_peer<'b>(&'b self, peer: &'b Peer) -> OpCtx<'b>
    where
        'a: 'b,
    {
        OpCtx {
            helper: self.helper,
            peer,
            cancel: self.cancel,
            atomic: self.atomic,
            txn: self.txn,
            progress: self.progress,
        }
    }

    /// Namespace `name`, for reading: `not_found` if it does not exist, `not_managed` if this
    /// helper did not create it.
    pub async fn ns(&self, name: &NsName) -> Result<NsHandle, HelperError> {
        self.resolve(name, false).await
    }

    /// Namespace `name`, for changing: as [`OpCtx::ns`], and the caller must own it (or be
    /// root or in the admin group).
    pub async fn ns_mut(&self, name: &NsName) -> Result<NsHandle, HelperError> {
        self.resolve(name, true).await
    }

    /// Refuses a member's change to `eth0` of a host, when `touches` says the change touches
    /// it (a change naming `eth0`, a route through a gateway, a flush, any address: the
    /// kernel answers ARP on eth0 for an address on any interface). The helper set the
    /// host's addresses, MAC and routes in `host_add`, and eth0's other end is on a bridge
    /// shared with routers and other users' hosts: another address or MAC there would take
    /// theirs. Root, the admin group
    /// and the request that is making the host are not held to this.
    pub fn guard_host_eth0(
        &self,
        h: &NsHandle,
        touches: bool,
        what: &str,
    ) -> Result<(), HelperError> {
        if !touches || self.peer.admin || h.fresh {
            return Ok(());
        }
        if self.helper.registry.host(&h.name).is_none() {
            return Ok(());
        }
        Err(HelperError::PermissionDenied(format!(
            "Cannot {what} in host {}: its eth0 (address, MAC, routes) is set by host_add and faces a shared bridge; only root or the admin group may change it",
            h.name
        )))
    }

    /// Charges `add` objects of `part` to the caller's `--quota-objects` before a change in
    /// `h` (see [`crate::pure::budget`]): `quota_exceeded` if the uid's namespaces would hold more.
    /// `base` is the part's count in `h` when the caller has just read it (a firewall
    /// change reads the rules in force for its undo). Root and the admin group are not
    /// counted.
    pub async fn charge(
        &self,
        h: &NsHandle,
        (part, base, add): (Part, Option<u64>, u64),
        what: &str,
    ) -> Result<(), HelperError> {
        if self.peer.admin {
            return Ok(());
        }
        let helper = self.helper;
        let (uid, quota) = (self.peer.uid, helper.config.quota_objects);
        let charge = |base| {
            helper
                .registry
                .charge_objects(&h.name, uid, (part, base, add), quota)
        };
        if charge(base).is_ok() {
            return Ok(());
        }
        // Measure before refusing: this namespace first, then (not too often) the uid's others.
        let count = crate::kernel::netlink::count_objects(&h.nl).await?;
        helper.registry.set_objects(&h.name, Part::Netlink, count);
        if part != Part::Netlink && helper.registry.objects(&h.name, uid).0.get(part).is_none() {
            // Only a namespace made by this request has a firewall not read yet: it is empty.
            helper.registry.set_objects(&h.name, part, 0);
        }
        let mut refused = charge(None);
        if refused.is_err() && helper.budget.may_remeasure(uid, std::time::Instant::now()) {
            for (name, ino, nl) in helper.registry.owned_by(uid, &h.name) {
                let nl = match nl {
                    Some(nl) => nl,
                    None => match helper.netns.open_netlink(&name, ino).await {
                        Ok(nl) => {
                            helper.registry.store_netlink(&name, ino, nl.clone());
                            nl
                        }
                        Err(_) => continue,
                    },
                };
                if let Ok(count) = crate::kernel::netlink::count_objects(&nl).await {
                    helper.registry.set_objects(&name, Part::Netlink, count);
                }
            }
            refused = charge(None);
        }
        match refused {
            Ok(()) => Ok(()),
            Err(total) => Err(HelperError::QuotaExceeded(format!(
                "Cannot {what} in {}: uid {uid} would hold {} kernel objects in its namespaces, past its quota of {quota} (--quota-objects counts links, addresses, routes, rules, neighbours, firewall rules and set entries)",
                h.name,
                total.map_or_else(|| "more".to_string(), |t| t.to_string()),
            ))),
        }
    }

    /// Takes `n` netlink objects that were just deleted from `h` off its count (not in an
    /// atomic request, whose undo could put them back).
    pub fn uncharge(&self, h: &NsHandle, n: u64) {
        if !self.atomic {
            self.helper.registry.uncharge_objects(&h.name, n);
        }
    }

    async fn resolve(&self, name: &NsName, changing: bool) -> Result<NsHandle, HelperError> {
        let helper = self.helper;
        let entry = match helper.registry.lookup(name, self.txn) {
            Ok(entry) => entry,
            Err(Unusable::Unknown) => {
                return Err(match helper.netns.inspect(name)? {
                    PathState::Missing => HelperError::NotFound(format!(
                        "Namespace {:?} does not exist",
                        name.as_str()
                    )),
                    _ => HelperError::NotManaged(format!(
                        "Namespace {:?} exists but is not managed by this helper; it is left alone",
                        name.as_str()
                    )),
                });
            }
            Err(Unusable::Busy(why)) => {
                return Err(HelperError::Busy(format!(
                    "Namespace {:?} {why}",
                    name.as_str()
                )));
            }
            Err(Unusable::Deleted) => {
                return Err(HelperError::NotFound(format!(
                    "Namespace {:?} was deleted earlier in this request",
                    name.as_str()
                )));
            }
        };
        if changing && !self.peer.admin && entry.owner_uid != self.peer.uid {
            return Err(HelperError::PermissionDenied(format!(
                "Namespace {:?} belongs to uid {}; only its owner, root or the admin group may change it",
                name.as_str(),
                entry.owner_uid
            )));
        }
        let nl = match entry.netlink {
            Some(nl) => nl,
            None => {
                let nl = helper.netns.open_netlink(name, entry.ino).await?;
                helper.registry.store_netlink(name, entry.ino, nl.clone());
                nl
            }
        };
        Ok(NsHandle {
            name: name.clone(),
            ino: entry.ino,
            nl,
            fresh: entry.created_by_this_request,
        })
    }
}

/// Puts every kind of managed object right after a start, before anything is served, in
/// this order: the registry was recovered by [`Helper::start`] (namespaces adopted, rolled
/// back or dropped); then the gateways no remaining host needs go, the echo services whose
/// namespace is still ours are bound again, the reachability chains a crash left on the
/// routers are removed, and the pool task starts. A new kind of managed object adds its
/// recovery here.
pub async fn recover(
    helper: &std::sync::Arc<Helper>,
    recovery: &crate::managed::registry::Recovery,
) {
    crate::managed::hosts::recover_gateways(helper, &recovery.lost_hosts).await;
    helper.services.restore(helper).await;
    start_logs(helper).await;
    reach::sweep(helper).await;
    explain::sweep(helper).await;
    tokio::spawn(pool::run(helper.clone()));
}

/// The routers of the applied network that are in the registry, with their namespaces'
/// inodes (none when no network is applied or its record cannot be read): what the start's
/// sweeps and log readers go over.
pub(crate) fn applied_routers(helper: &Helper) -> Vec<(NsName, u64)> {
    let Ok(Some(net)) = helper.registry.store().net() else {
        return Vec::new();
    };
    net.topology
        .routers
        .iter()
        .filter_map(|r| {
            Some((
                r.name.clone(),
                helper.registry.lookup_for_undo(&r.name)?.ino,
            ))
        })
        .collect()
}

/// At start: reads the firewall logs of the applied network's routers.
async fn start_logs(helper: &Helper) {
    let wanted = applied_routers(helper);
    futures::future::join_all(
        wanted
            .iter()
            .map(|(router, ino)| helper.logs.start(helper, router, *ino)),
    )
    .await;
}

/// Runs one operation, recording its effects in `txn`.
pub async fn dispatch(ctx: &OpCtx<'_>, op: Op, txn: &mut Txn) -> Result<OpResult, HelperError> {
    match op {
        Op::Ping(args) => ping::handle(ctx, args).await,
        Op::Status(args) => status::handle(ctx, args),
        Op::NsCreate(args) => ns_create::handle(ctx, args, txn).await,
        Op::NsDelete(args) => ns_delete::handle(ctx, args, txn).await,
        Op::NsList(args) => ns_list::handle(ctx, args),
        Op::LinkAddVeth(args) => link_add::veth(ctx, args, txn).await,
        Op::LinkAddBridge(args) => link_add::bridge(ctx, args, txn).await,
        Op::LinkAddDummy(args) => link_add::dummy(ctx, args, txn).await,
        Op::LinkSet(args) => link_set::handle(ctx, args, txn).await,
        Op::LinkDelete(args) => link_delete::handle(ctx, args).await,
        Op::LinkFlush(args) => link_flush::handle(ctx, args).await,
        Op::LinkList(args) => link_list::handle(ctx, args).await,
        Op::AddrAdd(args) => addr_add::handle(ctx, args, txn).await,
        Op::AddrDelete(args) => addr_delete::handle(ctx, args, txn).await,
        Op::AddrList(args) => addr_list::handle(ctx, args).await,
        Op::RouteAdd(args) => route_change::add(ctx, args, txn).await,
        Op::RouteReplace(args) => route_change::replace(ctx, args, txn).await,
        Op::RouteDelete(args) => route_change::delete(ctx, args, txn).await,
        Op::RouteFlush(args) => route_flush::handle(ctx, args, txn).await,
        Op::RouteList(args) => route_list::handle(ctx, args).await,
        Op::RouteGet(args) => route_get::handle(ctx, args).await,
        Op::RuleAdd(args) => rule_change::add(ctx, args, txn).await,
        Op::RuleDelete(args) => rule_change::delete(ctx, args, txn).await,
        Op::RuleList(args) => rule_list::handle(ctx, args).await,
        Op::SysctlGet(args) => sysctl_get::handle(ctx, args).await,
        Op::SysctlSet(args) => sysctl_set::handle(ctx, args, txn).await,
        Op::NeighReplace(args) => neigh_replace::handle(ctx, args, txn).await,
        Op::NeighDelete(args) => neigh_delete::handle(ctx, args, txn).await,
        Op::NeighFlush(args) => neigh_flush::handle(ctx, args, txn).await,
        Op::NetemSet(args) => netem_set::handle(ctx, args, txn).await,
        Op::NetemDelete(args) => netem_delete::handle(ctx, args).await,
        Op::IptablesRestore(args) => iptables_restore::handle(ctx, args, txn).await,
        Op::IptablesSave(args) => iptables_save::handle(ctx, args).await,
        Op::IpsetRestore(args) => ipset_restore::handle(ctx, args, txn).await,
        Op::IpsetSave(args) => ipset_save::handle(ctx, args).await,
        Op::NetApply(args) => net_apply::handle(ctx, args, txn).await,
        Op::NetShow(args) => net_show::handle(ctx, args),
        Op::NetLog(args) => net_log::handle(ctx, args),
        Op::NetTeardown(args) => net_teardown::handle(ctx, args, txn).await,
        Op::HostAdd(args) => host::add(ctx, args, txn).await,
        Op::HostDelete(args) => host::delete(ctx, args, txn).await,
        Op::HostList(args) => host::list(ctx, args),
        Op::HostClean(args) => host::clean(ctx, args, txn).await,
        Op::SvcStart(args) => svc::start(ctx, args, txn).await,
        Op::SvcStop(args) => svc::stop(ctx, args, txn),
        Op::SvcList(args) => svc::list(ctx, args),
        Op::ProbeTcp(args) => probe::echo(ctx, args, Transport::Tcp).await,
        Op::ProbeUdp(args) => probe::echo(ctx, args, Transport::Udp).await,
        Op::ProbePing(args) => icmp::ping(ctx, args).await,
        Op::ProbeTrace(args) => icmp::trace(ctx, args).await,
        Op::ProbeReach(args) => reach::reach(ctx, args, txn).await,
    }
}

/// [`dispatch`], boxed: for operations made of other operations (a future cannot contain
/// itself).
pub fn dispatch_boxed<'f, 'a: 'f>(
    ctx: &'f OpCtx<'a>,
    op: Op,
    txn: &'f mut Txn,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<OpResult, HelperError>> + Send + 'f>>
{
    Box::pin(dispatch(ctx, op, txn))
}

/// Refuses callers that are neither root nor in the admin group.
fn require_admin(ctx: &OpCtx<'_>, what: &str) -> Result<(), HelperError> {
    if ctx.peer.admin {
        return Ok(());
    }
    Err(HelperError::PermissionDenied(format!(
        "Only root or a member of the admin group may {what} (uid {} is neither)",
        ctx.peer.uid
    )))
}

/// Whether an operation can be undone. Those that cannot (deleting links, whose kind, peer,
/// addresses and routes would have to be made again; removing a qdisc) are refused in
/// atomic requests, before anything of the request runs.
pub fn is_undoable(op: &Op) -> bool {
    !matches!(
        op,
        Op::LinkDelete(_) | Op::LinkFlush(_) | Op::NetemDelete(_)
    )
}

/// Whether an operation finishes at once without blocking, so a request made only of such
/// operations can be answered on the connection's reader task instead of a task of its own.
pub fn is_immediate(op: &Op) -> bool {
    match op {
        Op::Ping(p) => p.delay_ms.is_none(),
        Op::Status(_) | Op::NsList(_) | Op::NetShow(_) | Op::HostList(_) | Op::SvcList(_) => true,
        _ => false,
    }
}
