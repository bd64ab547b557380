//! `iptables_save`: read the rules back, optionally one table, optionally with counters.

use tsim_protocol::OpResult;
use tsim_protocol::ops::{IptablesSave, Saved};

use super::OpCtx;
use crate::base::error::HelperError;
use crate::kernel::firewall;

pub(super) async fn handle(ctx: &OpCtx<'_>, args: IptablesSave) -> Result<OpResult, HelperError> {
    let h = ctx.ns(&args.ns).await?;
    let (save, _) = firewall::iptables_tools(args.ipv6);
    let mut argv: Vec<&str> = Vec::new();
    if let Some(table) = args.table {
        argv.extend(["-t", table.as_str()]);
    }
    if args.counters {
        argv.push("-c");
    }
    let payload = ctx
        .helper
        .firewall()
        .run_checked(&h.name, h.ino, save, &argv, None)
        .await?;
    Ok(OpResult::IptablesSave(Saved { payload }))
}
