//! `link_flush`: delete every link of the helper's link group in a namespace, with one
//! request (the kernel removes them together, much faster than one by one).

use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};
use tsim_protocol::OpResult;
use tsim_protocol::ops::{Flushed, LINK_GROUP, LinkFlush};

use super::OpCtx;
use crate::base::error::HelperError;

pub(super) async fn handle(ctx: &OpCtx<'_>, args: LinkFlush) -> Result<OpResult, HelperError> {
    let h = ctx.ns_mut(&args.ns).await?;
    ctx.guard_host_eth0(&h, true, "flush the links")?;
    let ours =
        h.nl.links()
            .await?
            .iter()
            .filter(|l| {
                l.attributes
                    .iter()
                    .any(|a| matches!(a, LinkAttribute::Group(g) if *g == LINK_GROUP))
            })
            .count();
    if ours > 0 {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::Group(LINK_GROUP));
        h.nl.ack(RouteNetlinkMessage::DelLink(msg), 0, || {
            "delete the helper's links".into()
        })
        .await?;
    }
    ctx.uncharge(&h, ours as u64);
    Ok(OpResult::LinkFlush(Flushed {
        count: u32::try_from(ours).unwrap_or(u32::MAX),
    }))
}
