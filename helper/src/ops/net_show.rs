//! `net_show`: the applied network, as recorded when it was applied.

use tsim_protocol::OpResult;
use tsim_protocol::ops::{NetShow, NetShown};

use super::OpCtx;
use crate::base::error::HelperError;

pub(super) fn handle(ctx: &OpCtx<'_>, _args: NetShow) -> Result<OpResult, HelperError> {
    let helper = ctx.helper;
    let record = helper.registry.store().load_net()?;
    let hidden_ns = helper.config.hidden_ns.clone();
    Ok(OpResult::NetShow(match record {
        Some(r) => NetShown {
            hidden_ns,
            topology: Some(r.topology),
            policy_tables: r.policy_tables,
            warnings: r.warnings,
            applied_ms: r.applied_ms,
        },
        None => NetShown {
            hidden_ns,
            topology: None,
            policy_tables: false,
            warnings: Vec::new(),
            applied_ms: 0,
        },
    }))
}
