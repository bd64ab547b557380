//! `ping`: answer, optionally after a delay that cancellation interrupts.

use std::time::Duration;

use tsim_protocol::OpResult;
use tsim_protocol::ops::{PING_MAX_DELAY_MS, Ping, Pong};

use super::OpCtx;
use crate::base::error::HelperError;

pub(super) async fn handle(ctx: &OpCtx<'_>, args: Ping) -> Result<OpResult, HelperError> {
    if let Some(ms) = args.delay_ms {
        if ms > PING_MAX_DELAY_MS {
            return Err(HelperError::InvalidArgument(format!(
                "delay_ms {ms} is over the limit of {PING_MAX_DELAY_MS}"
            )));
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(u64::from(ms))) => {}
            () = ctx.cancel.cancelled() => return Err(HelperError::Cancelled),
        }
    }
    Ok(OpResult::Ping(Pong {}))
}
