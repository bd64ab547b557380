//! `addr_delete`: delete an address. Deleting an IPv4 primary address also deletes its
//! secondaries; every address that went is recorded, so an undo puts them all back.

use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use tsim_protocol::OpResult;
use tsim_protocol::ops::{AddrSpec, Done};

use super::OpCtx;
use super::common::{Dependents, dump_addrs};
use crate::base::error::HelperError;
use crate::kernel::nlmsg::{self, LinkNames};
use crate::txn::Txn;
use crate::txn::undo::Undo;

pub(super) async fn handle(
    ctx: &OpCtx<'_>,
    args: AddrSpec,
    txn: &mut Txn,
) -> Result<OpResult, HelperError> {
    let h = ctx.ns_mut(&args.ns).await?;
    ctx.guard_host_eth0(&h, true, "delete an address")?;
    let index = h.nl.link_index(args.dev.as_str()).await?;
    let names = LinkNames::new();
    let key = |m: &rtnetlink::packet_route::address::AddressMessage| {
        nlmsg::addr_info(m, &names).map(|a| a.addr)
    };
    let before = dump_addrs(&h.nl, AddressFamily::Unspec, Some(index)).await?;
    if !before.iter().any(|m| key(m) == Some(args.addr)) {
        return Err(HelperError::NotFound(format!(
            "There is no address {} on {} in namespace {}",
            args.addr, args.dev, args.ns
        )));
    }
    // Removing an interface's last address takes its routes and neighbour entries with it.
    let dependents = Dependents::read(&h.nl).await?;
    let msg = nlmsg::addr_message(&args, index)?;
    let what = format!("delete address {} from {}", args.addr, args.dev);
    let result =
        h.nl.ack(RouteNetlinkMessage::DelAddress(msg), 0, || what.clone())
            .await;
    let after = dump_addrs(&h.nl, AddressFamily::Unspec, Some(index)).await?;
    let mut gone: Vec<_> = before
        .into_iter()
        .filter(|m| !after.iter().any(|a| key(a) == key(m)))
        .map(|m| {
            (
                RouteNetlinkMessage::NewAddress(nlmsg::readdable_addr(m)),
                NLM_F_CREATE | NLM_F_EXCL,
            )
        })
        .collect();
    gone.extend(dependents.lost_since(&Dependents::read(&h.nl).await?));
    if !gone.is_empty() {
        txn.changed(&h.name, what, Undo::Netlink(gone));
    }
    result?;
    ctx.uncharge(&h, 1);
    Ok(OpResult::AddrDelete(Done {}))
}
