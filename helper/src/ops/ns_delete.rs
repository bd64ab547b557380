//! `ns_delete`: check ownership, detach the namespace, record the effect (kept alive until
//! commit, so that an atomic request can put it back).

use tsim_protocol::ops::{NsDelete, NsDeleted};
use tsim_protocol::{NsName, OpResult};

use super::OpCtx;
use crate::base::error::HelperError;
use crate::kernel::netns::{NetnsError, PathState};
use crate::txn::{Effect, Txn};

pub(super) async fn handle(
    ctx: &OpCtx<'_>,
    args: NsDelete,
    txn: &mut Txn,
) -> Result<OpResult, HelperError> {
    let name = args.name;
    if ctx.helper.registry.host(&name).is_some() {
        return Err(HelperError::NotAllowed(format!(
            "Namespace {:?} is a host: delete it with host_delete, which also releases its gateway",
            name.as_str()
        )));
    }
    remove(ctx, &name, txn).await?;
    Ok(OpResult::NsDelete(NsDeleted { name }))
}

/// Deletes managed namespace `name` (the caller must own it, or be root or an admin):
/// removed from `/run/netns` now, kept alive for undo until the request commits.
pub(super) async fn remove(
    ctx: &OpCtx<'_>,
    name: &NsName,
    txn: &mut Txn,
) -> Result<(), HelperError> {
    let helper = ctx.helper;
    let name = name.clone();
    if !helper.registry.is_managed(&name) {
        return Err(match helper.netns.inspect(&name)? {
            PathState::Missing => HelperError::NoNamespace {
                message: format!("Namespace {:?} does not exist", name.as_str()),
                name: name.clone(),
            },
            _ => HelperError::NotManaged(format!(
                "Namespace {:?} exists but is not managed by this helper; it is left alone",
                name.as_str()
            )),
        });
    }
    let ino = helper
        .registry
        .begin_delete(&name, ctx.peer.uid, ctx.peer.admin, ctx.txn)?;
    detach(ctx, &name, ino, txn).await
}

/// The second half of a deletion whose registry step (phase `Deleting`, inode `ino`) is
/// done: removes `name` from `/run/netns`, kept alive for undo until the request commits.
pub(super) async fn detach(
    ctx: &OpCtx<'_>,
    name: &NsName,
    ino: u64,
    txn: &mut Txn,
) -> Result<(), HelperError> {
    let helper = ctx.helper;
    let name = name.clone();
    match helper.netns.detach(&name, ino).await {
        Ok(handle) => {
            txn.push(Effect::NsDeleted {
                name: name.clone(),
                handle,
            });
            Ok(())
        }
        Err(NetnsError::NotOurs { .. }) => {
            helper.registry.finish_delete(&name);
            Err(HelperError::NotManaged(format!(
                "Namespace {:?} was replaced outside the helper; it is forgotten and left alone",
                name.as_str()
            )))
        }
        Err(NetnsError::Open { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            helper.registry.finish_delete(&name);
            Err(HelperError::NoNamespace {
                message: format!(
                    "Namespace {:?} had been removed outside the helper; it is forgotten",
                    name.as_str()
                ),
                name: name.clone(),
            })
        }
        Err(e) => {
            helper.registry.abort_delete(&name, ctx.txn);
            Err(e.into())
        }
    }
}
