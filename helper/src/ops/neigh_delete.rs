//! `neigh_delete`: delete a neighbour entry; it is kept for undo.

use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use rtnetlink::packet_route::RouteNetlinkMessage;
use tsim_protocol::OpResult;
use tsim_protocol::ops::{Done, NeighDelete};

use super::OpCtx;
use super::common::dump_neighs;
use crate::base::error::HelperError;
use crate::kernel::nlmsg;
use crate::txn::Txn;
use crate::txn::undo::Undo;

pub(super) async fn handle(
    ctx: &OpCtx<'_>,
    args: NeighDelete,
    txn: &mut Txn,
) -> Result<OpResult, HelperError> {
    let h = ctx.ns_mut(&args.ns).await?;
    let index = h.nl.link_index(args.dev.as_str()).await?;
    let ip = args.ip.0;
    let prior = dump_neighs(&h.nl, nlmsg::family_of(ip), Some(index))
        .await?
        .into_iter()
        .find(|n| nlmsg::neigh_ip(n) == Some(ip));
    let Some(prior) = prior else {
        return Err(HelperError::NotFound(format!(
            "There is no neighbour entry for {ip} on {} in namespace {}",
            args.dev, args.ns
        )));
    };
    let what = format!("delete neighbour {ip} on {}", args.dev);
    let msg = nlmsg::neigh_message(index, ip, None, None);
    h.nl.ack(RouteNetlinkMessage::DelNeighbour(msg), 0, || what.clone())
        .await?;
    let readd = RouteNetlinkMessage::NewNeighbour(nlmsg::readdable_neigh(prior));
    txn.changed(
        &h.name,
        what,
        Undo::Netlink(vec![(readd, NLM_F_CREATE | NLM_F_REPLACE)]),
    );
    ctx.uncharge(&h, 1);
    Ok(OpResult::NeighDelete(Done {}))
}
