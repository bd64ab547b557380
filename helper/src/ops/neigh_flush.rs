//! `neigh_flush`: delete every neighbour entry (permanent ones included; the kernel's own
//! NOARP entries stay). An undo puts back every entry in a state that can be written
//! (permanent, reachable, stale); the passing states of resolution are the kernel's own.

use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use rtnetlink::packet_route::neighbour::NeighbourState;
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use tsim_protocol::OpResult;
use tsim_protocol::ops::{Flushed, NeighFlush};

use super::OpCtx;
use super::common::dump_neighs;
use crate::base::error::HelperError;
use crate::kernel::nlmsg;
use crate::txn::Txn;
use crate::txn::undo::Undo;

pub(super) async fn handle(
    ctx: &OpCtx<'_>,
    args: NeighFlush,
    txn: &mut Txn,
) -> Result<OpResult, HelperError> {
    let h = ctx.ns_mut(&args.ns).await?;
    let index = match &args.dev {
        Some(dev) => Some(h.nl.link_index(dev.as_str()).await?),
        None => None,
    };
    let entries: Vec<_> = dump_neighs(&h.nl, AddressFamily::Unspec, index)
        .await?
        .into_iter()
        .filter(|n| n.header.state != NeighbourState::Noarp)
        .collect();
    let writable = entries
        .iter()
        .filter(|n| {
            matches!(
                n.header.state,
                NeighbourState::Permanent | NeighbourState::Reachable | NeighbourState::Stale
            )
        })
        .map(|n| {
            (
                RouteNetlinkMessage::NewNeighbour(nlmsg::readdable_neigh(n.clone())),
                NLM_F_CREATE | NLM_F_REPLACE,
            )
        })
        .collect::<Vec<_>>();
    if !writable.is_empty() {
        txn.changed(&h.name, "flush neighbours", Undo::Netlink(writable));
    }
    let mut removed = 0u32;
    for entry in entries {
        let Some(ip) = nlmsg::neigh_ip(&entry) else {
            continue;
        };
        let msg = nlmsg::neigh_message(entry.header.ifindex, ip, None, None);
        match h
            .nl
            .ack(RouteNetlinkMessage::DelNeighbour(msg), 0, || {
                format!("delete neighbour {ip}")
            })
            .await
        {
            Ok(()) => removed += 1,
            Err(e) if e.errno == libc::ENOENT => {}
            Err(e) => return Err(e.into()),
        }
    }
    ctx.uncharge(&h, u64::from(removed));
    Ok(OpResult::NeighFlush(Flushed { count: removed }))
}
