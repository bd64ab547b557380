//! `neigh_replace`: add or replace a neighbour entry; the entry it replaces is kept for undo.

use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use rtnetlink::packet_route::RouteNetlinkMessage;
use tsim_protocol::OpResult;
use tsim_protocol::net::NeighState;
use tsim_protocol::ops::{Done, NeighReplace};

use super::OpCtx;
use super::common::dump_neighs;
use crate::base::error::HelperError;
use crate::kernel::nlmsg;
use crate::pure::budget::Part;
use crate::txn::Txn;
use crate::txn::undo::Undo;

pub(super) async fn handle(
    ctx: &OpCtx<'_>,
    args: NeighReplace,
    txn: &mut Txn,
) -> Result<OpResult, HelperError> {
    let state = args.state.unwrap_or(NeighState::Permanent);
    if !matches!(
        state,
        NeighState::Permanent | NeighState::Reachable | NeighState::Stale | NeighState::Noarp
    ) {
        return Err(HelperError::InvalidArgument(format!(
            "Neighbour state {state} cannot be written; use permanent, reachable, stale or noarp"
        )));
    }
    let h = ctx.ns_mut(&args.ns).await?;
    ctx.charge(&h, (Part::Netlink, None, 1), "set a neighbour")
        .await?;
    let index = h.nl.link_index(args.dev.as_str()).await?;
    let ip = args.ip.0;
    let prior = dump_neighs(&h.nl, nlmsg::family_of(ip), Some(index))
        .await?
        .into_iter()
        .find(|n| nlmsg::neigh_ip(n) == Some(ip));
    let msg = nlmsg::neigh_message(index, ip, Some(args.lladdr), Some(state.value()));
    let what = format!("set neighbour {ip} on {}", args.dev);
    h.nl.ack(
        RouteNetlinkMessage::NewNeighbour(msg),
        NLM_F_CREATE | NLM_F_REPLACE,
        || what.clone(),
    )
    .await?;
    let undo = match prior {
        Some(old) => (
            RouteNetlinkMessage::NewNeighbour(nlmsg::readdable_neigh(old)),
            NLM_F_CREATE | NLM_F_REPLACE,
        ),
        None => (
            RouteNetlinkMessage::DelNeighbour(nlmsg::neigh_message(index, ip, None, None)),
            0,
        ),
    };
    txn.changed(&h.name, what, Undo::Netlink(vec![undo]));
    Ok(OpResult::NeighReplace(Done {}))
}
