//! `ipset_save`: read the sets back.

use tsim_protocol::OpResult;
use tsim_protocol::ops::{IpsetSave, Saved};

use super::OpCtx;
use crate::error::HelperError;
use crate::firewall;
use crate::tools::Tool;

pub(super) async fn handle(ctx: &OpCtx<'_>, args: IpsetSave) -> Result<OpResult, HelperError> {
    let h = ctx.ns(&args.ns).await?;
    let payload =
        firewall::run_checked(ctx.helper, &h.name, h.ino, Tool::Ipset, &["save"], None).await?;
    Ok(OpResult::IpsetSave(Saved { payload }))
}
