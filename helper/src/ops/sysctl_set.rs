//! `sysctl_set`: write a sysctl on the allow-list, inside the namespace; the old value is
//! kept for undo.

use tsim_protocol::OpResult;
use tsim_protocol::ops::{SysctlRead, SysctlSet};

use super::OpCtx;
use super::sysctl_get::{allowed, read, sysctl_error};
use crate::base::error::HelperError;
use crate::txn::Txn;
use crate::txn::undo::Undo;

pub(super) async fn handle(
    ctx: &OpCtx<'_>,
    args: SysctlSet,
    txn: &mut Txn,
) -> Result<OpResult, HelperError> {
    let path = format!("/proc/sys/{}", allowed(&args.key)?);
    let h = ctx.ns_mut(&args.ns).await?;
    let old = read(ctx, &h, &args.key).await?;
    let value = args.value.as_str().to_owned();
    let written = ctx
        .helper
        .netns
        .sysctl_write(&h.name, h.ino, vec![(path, value)])
        .await?;
    written.map_err(|e| sysctl_error(&args.key, &h.name, &e))?;
    txn.changed(
        &h.name,
        format!("set {}", args.key),
        Undo::Sysctl {
            key: args.key.clone(),
            value: old,
        },
    );
    let now = read(ctx, &h, &args.key).await?;
    Ok(OpResult::SysctlSet(SysctlRead {
        key: args.key.dotted(),
        value: now,
    }))
}
