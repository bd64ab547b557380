//! `addr_add`: add an address to an interface. Its undo deletes it; where it is the
//! interface's first IPv4 address, that deletion takes the interface's IPv4 routes and
//! neighbours with it (the kernel's rule for a last address), so the undo adds them back.

use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use tsim_protocol::OpResult;
use tsim_protocol::ops::{AddrSpec, Done};

use super::OpCtx;
use super::common::{Dependents, dump_addrs};
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
    // In a namespace this request made, undoing its creation removes everything.
    let first_v4 = !h.fresh
        && args.addr.addr().is_ipv4()
        && dump_addrs(&h.nl, AddressFamily::Inet, Some(index))
            .await?
            .is_empty();
    let dependents = match first_v4 {
        true => Some(Dependents::read(&h.nl).await?),
        false => None,
    };
    h.nl.ack(
        RouteNetlinkMessage::NewAddress(msg.clone()),
        NLM_F_CREATE | NLM_F_EXCL,
        || what.clone(),
    )
    .await?;
    let mut undo = vec![(RouteNetlinkMessage::DelAddress(msg), 0)];
    undo.extend(dependents.map(Dependents::readd_all).unwrap_or_default());
    txn.changed(&h.name, what, Undo::Netlink(undo));
    Ok(OpResult::AddrAdd(Done {}))
}
