//! `ns_create`: reserve the name, create the namespace, record the effect.

use tsim_protocol::OpResult;
use tsim_protocol::ops::{NsCreate, NsCreated};

use super::OpCtx;
use crate::batch::{Effect, Txn};
use crate::context::now_ms;
use crate::error::HelperError;
use crate::netns::PathState;

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
    create(ctx, args, txn).await
}

/// Creates a namespace, the reserved hidden one included (for `net_apply`).
pub(super) async fn create(
    ctx: &OpCtx<'_>,
    args: NsCreate,
    txn: &mut Txn,
) -> Result<OpResult, HelperError> {
    let helper = ctx.helper;
    let name = args.name;
    if !helper.registry.is_managed(&name) && helper.netns.inspect(&name)? != PathState::Missing {
        return Err(HelperError::AlreadyExists(format!(
            "Namespace {:?} already exists and is not managed by this helper",
            name.as_str()
        )));
    }
    helper
        .registry
        .reserve(&name, ctx.peer.uid, args.tag, now_ms(), ctx.txn)?;
    let created = match helper.netns.create(&name, args.ipv6.unwrap_or(true)).await {
        Ok(created) => created,
        Err(e) => {
            helper.registry.abort_create(&name);
            return Err(e.into());
        }
    };
    let ino = created.ino;
    // An atomic request commits later: write the inode now, so that a crash before the
    // commit can be rolled back without doubt about which namespace is ours.
    let persisted = helper
        .registry
        .created(&name, ino, created.netlink, ctx.atomic);
    txn.push(Effect::NsCreated {
        name: name.clone(),
        ino,
    });
    persisted?;
    Ok(OpResult::NsCreate(NsCreated { name }))
}
