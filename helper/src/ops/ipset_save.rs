//! `ipset_save`: read the sets back.

use tsim_protocol::OpResult;
use tsim_protocol::ops::{IpsetSave, Saved};

use super::OpCtx;
use crate::base::error::HelperError;
use crate::kernel::tools::Tool;

pub(super) async fn handle(ctx: &OpCtx<'_>, args: IpsetSave) -> Result<OpResult, HelperError> {
    let h = ctx.ns(&args.ns).await?;
    let payload = ctx
        .helper
        .firewall()
        .run_checked(&h.name, h.ino, Tool::Ipset, &["save"], None)
        .await?;
    Ok(OpResult::IpsetSave(Saved { payload }))
}
