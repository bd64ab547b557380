//! `netem_delete`: remove an interface's root qdisc (back to the kernel's default). Not
//! undone by a failing atomic request.

use rtnetlink::packet_route::RouteNetlinkMessage;
use tsim_protocol::ErrorCode;
use tsim_protocol::OpResult;
use tsim_protocol::ops::{Done, NetemDelete};

use super::OpCtx;
use super::netem_set::root_qdisc;
use crate::base::error::HelperError;

pub(super) async fn handle(ctx: &OpCtx<'_>, args: NetemDelete) -> Result<OpResult, HelperError> {
    let h = ctx.ns_mut(&args.ns).await?;
    let index = h.nl.link_index(args.dev.as_str()).await?;
    let what = || format!("remove the root qdisc of {}", args.dev);
    let result =
        h.nl.ack(
            RouteNetlinkMessage::DelQueueDiscipline(root_qdisc(index)),
            0,
            what,
        )
        .await;
    result.map_err(|e| match e.errno {
        libc::ENOENT | libc::EINVAL => e
            .explained(format!("{} has no root qdisc of its own", args.dev))
            .with_code(ErrorCode::NotFound),
        _ => e,
    })?;
    Ok(OpResult::NetemDelete(Done {}))
}
