//! `ns_create`: reserve the name, create the namespace, record the effect.

use tsim_protocol::ops::{NsCreate, NsCreated};
use tsim_protocol::{NsName, OpResult};

use super::OpCtx;
use crate::base::error::HelperError;
use crate::kernel::netns::PathState;
use crate::managed::context::now_ms;
use crate::txn::{Effect, Txn};

pub(super) async fn handle(
    ctx: &OpCtx<'_>,
    args: NsCreate,
    txn: &mut Txn,
) -> Result<OpResult, HelperError> {
    if args.name == ctx.helper.config.hidden_ns {
        return Err(HelperError::NotAllowed(format!(
            "Namespace {:?} is reserved for the simulated network's bridges",
            args.name.as_str()
        )));
    }
    if super::pool::is_reserved(ctx.helper, &args.name) {
        return Err(HelperError::NotAllowed(format!(
            "Names starting {:?} are reserved for pooled namespaces",
            ctx.helper.config.pool_prefix
        )));
    }
    refuse_router_name(ctx, &args.name)?;
    create(ctx, args, txn).await
}

/// Refuses a member a name that is a router's in the applied network: a namespace of theirs
/// under it would stand in for the router (a later `net_apply` would take it for the router
/// and put veths to the shared bridges in it).
pub(super) fn refuse_router_name(ctx: &OpCtx<'_>, name: &NsName) -> Result<(), HelperError> {
    if ctx.peer.admin {
        return Ok(());
    }
    let net = ctx.helper.registry.store().net()?;
    if net.is_some_and(|n| n.topology.routers.iter().any(|r| &r.name == name)) {
        return Err(HelperError::NotAllowed(format!(
            "Namespace {:?} is a router of the applied network; only root or the admin group may create it",
            name.as_str()
        )));
    }
    Ok(())
}

/// Creates a namespace, the reserved hidden one included (for `net_apply`).
pub(super) async fn create(
    ctx: &OpCtx<'_>,
    args: NsCreate,
    txn: &mut Txn,
) -> Result<OpResult, HelperError> {
    let helper = ctx.helper;
    let name = args.name;
    refuse_foreign(ctx, &name)?;
    helper
        .registry
        .reserve(&name, ctx.peer.uid, args.tag, now_ms(), ctx.txn)?;
    txn.push(Effect::Reserved { name: name.clone() });
    make(ctx, &name, args.ipv6.unwrap_or(true), txn).await?;
    Ok(OpResult::NsCreate(NsCreated { name }))
}

/// Refuses a name under which a namespace this helper does not manage exists.
pub(super) fn refuse_foreign(ctx: &OpCtx<'_>, name: &NsName) -> Result<(), HelperError> {
    let helper = ctx.helper;
    if !helper.registry.is_managed(name) && helper.netns.inspect(name)? != PathState::Missing {
        return Err(HelperError::AlreadyExists(format!(
            "Namespace {:?} already exists and is not managed by this helper",
            name.as_str()
        )));
    }
    Ok(())
}

/// Creates the namespace reserved under `name` and records the effect; on failure the
/// reservation is given up. Returns its inode.
pub(super) async fn make(
    ctx: &OpCtx<'_>,
    name: &NsName,
    ipv6: bool,
    txn: &mut Txn,
) -> Result<u64, HelperError> {
    let helper = ctx.helper;
    let created = match helper.netns.create(name, ipv6).await {
        Ok(created) => created,
        Err(e) => {
            helper.registry.abort_create(name);
            return Err(e.into());
        }
    };
    let ino = created.ino;
    // An atomic request commits later: write the inode now, so that a crash before the
    // commit can be rolled back without doubt about which namespace is ours.
    let persisted = helper
        .registry
        .created(name, ino, created.netlink, ctx.atomic);
    txn.push(Effect::NsCreated {
        name: name.clone(),
        ino,
    });
    persisted?;
    Ok(ino)
}
