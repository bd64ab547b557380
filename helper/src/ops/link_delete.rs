//! `link_delete`: delete one link (both ends of a veth). Not undone by a failing atomic
//! request: the link's configuration is gone with it.

use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::link::LinkMessage;
use tsim_protocol::OpResult;
use tsim_protocol::ops::{Done, LinkDelete};

use super::OpCtx;
use crate::base::error::HelperError;

pub(super) async fn handle(ctx: &OpCtx<'_>, args: LinkDelete) -> Result<OpResult, HelperError> {
    let h = ctx.ns_mut(&args.ns).await?;
    ctx.guard_host_eth0(&h, args.name.as_str() == "eth0", "delete eth0")?;
    let mut msg = LinkMessage::default();
    msg.header.index = h.nl.link_index(args.name.as_str()).await?;
    h.nl.ack(RouteNetlinkMessage::DelLink(msg), 0, || {
        format!("delete link {}", args.name)
    })
    .await?;
    ctx.uncharge(&h, 1);
    Ok(OpResult::LinkDelete(Done {}))
}
