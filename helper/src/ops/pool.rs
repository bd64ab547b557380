//! The pool of pre-created host namespaces (`--pool-size N`): a background task keeps N of
//! them ready while a network is applied, each with `lo` and `eth0` up and `eth0`'s other end
//! parked (down, on no bridge) in the hidden namespace; `host_add` takes one and only has to
//! rename it, attach the parked end, and add the address and route.
//!
//! Invariants:
//! * Pooled namespaces are managed namespaces owned by the helper (uid 0) with names under
//!   `--pool-prefix`, which no other namespace or host may take; they are not hosts.
//! * A taken namespace leaves the registry at once; from then on it is the host's (recorded
//!   as being created by the `host_add` request), so a failure or a crash removes it like
//!   any host that was being made.
//! * A pooled namespace whose parked end is gone (its hidden namespace was replaced) is
//!   deleted when found, never used.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tsim_protocol::ops::{LinkAddVeth, LinkSet};
use tsim_protocol::{IfName, NsName, Op, OpResult};

use super::{OpCtx, dispatch_boxed, ns_create, ns_delete};
use crate::base::auth::Peer;
use crate::base::error::{HelperError, chain};
use crate::kernel::netns::PathState;
use crate::managed::context::{Helper, now_ms};
use crate::managed::hosts;
use crate::managed::state::{HostFacet, PoolFacet};
use crate::txn::{Effect, Txn};

/// The helper itself, as the owner of pooled namespaces.
fn itself() -> Peer {
    Peer {
        uid: 0,
        gid: 0,
        pid: std::process::id(),
        groups: Vec::new(),
        authorized: true,
        admin: true,
    }
}

/// Whether `name` is under the pool's reserved prefix.
pub fn is_reserved(helper: &Helper, name: &NsName) -> bool {
    name.as_str().starts_with(&helper.config.pool_prefix)
}

/// Asks the filler to top the pool up.
pub fn kick(helper: &Helper) {
    if helper.config.pool_size > 0 {
        helper.pool_wanted.notify_one();
    }
}

/// The filler: runs for the helper's life, topping the pool up whenever asked.
pub async fn run(helper: Arc<Helper>) {
    if helper.config.pool_size == 0 {
        return;
    }
    loop {
        fill(&helper).await;
        helper.pool_wanted.notified().await;
    }
}

async fn fill(helper: &Helper) {
    let wanted = helper.config.pool_size as usize;
    let mut backoff = Duration::from_millis(500);
    loop {
        let hidden = &helper.config.hidden_ns;
        if !helper.registry.is_managed(hidden) {
            return;
        }
        if !helper.registry.is_ready(hidden) {
            // The network is being applied; its request commits soon.
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let (ready, making) = helper.registry.pool_count();
        if ready + making >= wanted {
            return;
        }
        match make_one(helper).await {
            Ok(()) => backoff = Duration::from_millis(500),
            Err(e) => {
                tracing::warn!(error = %chain(&e), "Cannot make a pooled namespace; trying again later");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        }
    }
}

/// A fresh name under the pool's prefix.
fn next_name(helper: &Helper) -> Result<NsName, HelperError> {
    loop {
        let n = helper
            .pool_serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name: NsName = format!("{}{n}", helper.config.pool_prefix)
            .parse()
            .map_err(|e| HelperError::Internal(format!("Bad pooled namespace name: {e}")))?;
        if !helper.registry.is_managed(&name) && helper.netns.inspect(&name)? == PathState::Missing
        {
            return Ok(name);
        }
    }
}

/// Makes one pooled namespace, as one transaction of its own.
async fn make_one(helper: &Helper) -> Result<(), HelperError> {
    let peer = itself();
    let cancel = CancellationToken::new();
    let id = helper.next_txn();
    let ctx = OpCtx {
        helper,
        peer: &peer,
        cancel: &cancel,
        atomic: false,
        txn: id,
        progress: None,
    };
    let mut txn = Txn::new(id);
    let name = next_name(helper)?;
    let parked: IfName = tsim_protocol::naming::pool_end(&name);
    helper.registry.reserve_pool(
        &name,
        now_ms(),
        id,
        PoolFacet {
            hidden_end: parked.clone(),
            hidden_index: 0,
            eth0_index: 0,
        },
    )?;
    let made = async {
        ns_create::make(&ctx, &name, false, &mut txn).await?;
        let eth0: IfName = "eth0".parse().expect("a valid interface name");
        let veth = LinkAddVeth {
            ns: name.clone(),
            name: eth0.clone(),
            peer_ns: helper.config.hidden_ns.clone(),
            peer_name: parked,
            mtu: None,
            mac: None,
            peer_mac: None,
            master: None,
            peer_master: None,
            up: false,
        };
        if let OpResult::LinkAddVeth(added) =
            dispatch_boxed(&ctx, Op::LinkAddVeth(veth), &mut txn).await?
        {
            let parked = added.peer_index.unwrap_or(0);
            helper.registry.set_pool_index(&name, added.index, parked);
        }
        let up = LinkSet {
            ns: name.clone(),
            name: eth0,
            up: Some(true),
            master: None,
            nomaster: false,
            mtu: None,
            mac: None,
            rename: None,
        };
        dispatch_boxed(&ctx, Op::LinkSet(up), &mut txn).await?;
        Ok::<(), HelperError>(())
    }
    .await;
    match made {
        Ok(()) => txn.commit(helper).await,
        Err(e) => {
            txn.rollback(helper).await;
            Err(e)
        }
    }
}

/// Makes a pooled namespace host `name` (reserved by this request) described by `facet`, if
/// there is one. At once, on three namespaces: the namespace is moved under the host's name;
/// its parked end is attached to the host's bridge and brought up; its `eth0` gets the
/// address and the default route. Returns whether one was used.
pub(super) async fn adopt(
    ctx: &OpCtx<'_>,
    name: &NsName,
    facet: &HostFacet,
    txn: &mut Txn,
) -> Result<bool, HelperError> {
    let helper = ctx.helper;
    if helper.config.pool_size == 0 {
        return Ok(false);
    }
    let hidden_nl = hosts::router_netlink(helper, &helper.config.hidden_ns).await?;
    loop {
        // The caller kicks the filler once it is done: a refill running at the same time
        // would slow it down.
        let Some((record, netlink)) = helper.registry.take_pool() else {
            return Ok(false);
        };
        let pooled = record.name.clone();
        let ino = record.netns_ino;
        let Some(pool) = record.pool else { continue };
        let usable = async {
            let parked = match pool.hidden_index {
                0 => hidden_nl.link_index(pool.hidden_end.as_str()).await?,
                index => index,
            };
            let nl = match netlink {
                Some(nl) => nl,
                None => helper.netns.open_netlink(&pooled, ino).await?,
            };
            let eth0 = match pool.eth0_index {
                0 => nl.link_index("eth0").await?,
                index => index,
            };
            Ok::<_, HelperError>((parked, nl, eth0))
        };
        let (parked, nl, eth0) = match usable.await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(ns = %pooled, error = %chain(&e), "A pooled namespace cannot be used; deleting it");
                discard(helper, &pooled, ino).await;
                continue;
            }
        };
        let attach = hosts::attach_parked(&hidden_nl, parked, &facet.bridge);
        let configure = hosts::configure(&nl, name, eth0, facet.ip, facet.gateway.0);
        let moved = async {
            helper.netns.rename(&pooled, ino, name).await?;
            helper.registry.forget_record(&pooled);
            Ok::<(), HelperError>(())
        };
        let (attached, configured, moved) = tokio::join!(attach, configure, moved);
        if let Err(e) = moved {
            // Still under its pooled name (or gone): let it go, and give up the host's name.
            tracing::warn!(ns = %pooled, error = %chain(&e), "Cannot take a pooled namespace; deleting it");
            discard(helper, &pooled, ino).await;
            helper.registry.abort_create(name);
            return Err(e);
        }
        helper.registry.set_host_end(name, &pool.hidden_end);
        let persisted = helper.registry.created(name, ino, nl, ctx.atomic);
        txn.push(Effect::NsCreated {
            name: name.clone(),
            ino,
        });
        persisted?;
        attached?;
        configured?;
        return Ok(true);
    }
}

/// Deletes a pooled namespace that was taken out of the registry but cannot be used.
async fn discard(helper: &Helper, name: &NsName, ino: u64) {
    match helper.netns.detach(name, ino).await {
        Ok(handle) => drop(handle),
        Err(e) => {
            tracing::error!(ns = %name, error = %chain(&e), "Cannot delete an unusable pooled namespace")
        }
    }
    helper.registry.forget_record(name);
}

/// Deletes every committed pooled namespace (before the hidden namespace goes).
pub(super) async fn drain(ctx: &OpCtx<'_>, txn: &mut Txn) -> Result<u32, HelperError> {
    let mut removed = 0;
    for name in ctx.helper.registry.pooled() {
        match ns_delete::remove(ctx, &name, txn).await {
            Ok(()) => removed += 1,
            // Already gone: nothing to drain.
            Err(HelperError::NoNamespace { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}
