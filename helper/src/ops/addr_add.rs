//! `addr_add`: add an address to an interface.

use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use rtnetlink::packet_route::RouteNetlinkMessage;
use tsim_protocol::OpResult;
use tsim_protocol::ops::{AddrSpec, Done};

use super::OpCtx;
use crate::base::error::HelperError;
use crate::kernel::nlmsg;
use crate::pure::budget::{self, Part};
use crate::txn::Txn;
use crate::txn::undo::Undo;

pub(super) async fn handle(
    ctx: &OpCtx<'_>,
    args: AddrSpec,
    txn: &mut Txn,
) -> Result<OpResult, HelperError> {
    let h = ctx.ns_mut(&args.ns).await?;
    // Any address: one on `lo` or a dummy is answered for on eth0 too (ARP).
    ctx.guard_host_eth0(&h, true, "add an address")?;
    ctx.charge(
        &h,
        (Part::Netlink, None, budget::ADDRESS_WEIGHT),
        "add an address",
    )
    .await?;
    let index = h.nl.link_index(args.dev.as_str()).await?;
    let msg = nlmsg::addr_message(&args, index)?;
    let what = format!("add address {} to {}", args.addr, args.dev);
    h.nl.ack(
        RouteNetlinkMessage::NewAddress(msg.clone()),
        NLM_F_CREATE | NLM_F_EXCL,
        || what.clone(),
    )
    .await?;
    txn.changed(
        &h.name,
        what,
        Undo::Netlink(vec![(RouteNetlinkMessage::DelAddress(msg), 0)]),
    );
    Ok(OpResult::AddrAdd(Done {}))
}
