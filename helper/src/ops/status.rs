//! `status`: version, uptime, managed objects, connections, per-operation statistics, and
//! the tools' jail, and whether explained probes can trace.

use tsim_protocol::OpResult;
use tsim_protocol::ops::{Status, StatusReport, ToolJail};
use tsim_protocol::version;

use super::OpCtx;
use crate::base::error::HelperError;
use crate::kernel::jail::LandlockState;

pub(super) fn handle(ctx: &OpCtx<'_>, _args: Status) -> Result<OpResult, HelperError> {
    let helper = ctx.helper;
    let (connections, in_flight, requests) = helper.counter_values();
    Ok(OpResult::Status(StatusReport {
        helper_version: env!("CARGO_PKG_VERSION").to_owned(),
        protocol: version::CURRENT,
        pid: std::process::id(),
        uptime_ms: helper.uptime_ms(),
        state_dir: helper.config.state_dir.display().to_string(),
        hidden_ns: helper.config.hidden_ns.to_string(),
        namespaces: u32::try_from(helper.registry.count()).unwrap_or(u32::MAX),
        connections,
        in_flight,
        requests,
        ops: helper.metrics.snapshot(),
        tool_jail: Some(ToolJail {
            landlock_abi: match helper.jail.landlock() {
                LandlockState::Enforced(abi) => *abi,
                LandlockState::Unsupported(_) => 0,
            },
            payloads_refused: !helper.jail.complete() && !helper.config.allow_unjailed_tools,
            summary: helper.jail.describe(),
        }),
        explain_unsupported: helper.trace_unsupported(),
    }))
}
