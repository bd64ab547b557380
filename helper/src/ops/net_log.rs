//! `net_log`: what the routers' firewall `LOG` rules logged (see [`crate::managed::logs`]).
//! Open to every authorized caller, like `net_show`: the routers are shared.

use tsim_protocol::OpResult;
use tsim_protocol::ops::{NetLog, NetLogged};

use super::OpCtx;
use crate::base::error::HelperError;

/// The most entries one answer carries.
const MAX_LIMIT: u32 = 10_000;

pub(super) fn handle(ctx: &OpCtx<'_>, args: NetLog) -> Result<OpResult, HelperError> {
    let limit = args.limit.unwrap_or(1000);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(HelperError::InvalidArgument(format!(
            "limit {limit}: give 1 to {MAX_LIMIT} entries"
        )));
    }
    if let Some(router) = &args.router {
        let net = ctx.helper.registry.store().net()?;
        let known = net.is_some_and(|n| n.topology.routers.iter().any(|r| &r.name == router));
        if !known {
            return Err(HelperError::NotFound(format!(
                "{router} is not a router of the applied network"
            )));
        }
    }
    let read = ctx.helper.logs.read(
        args.router.as_ref(),
        args.after.unwrap_or(0),
        args.since_ms.unwrap_or(0),
        limit as usize,
    );
    Ok(OpResult::NetLog(NetLogged {
        entries: read.entries,
        last: read.last,
        dropped: read.dropped,
        unavailable: read.unavailable,
    }))
}
