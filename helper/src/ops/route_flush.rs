//! `route_flush`: delete every route of one table; each is recorded so an undo adds them
//! back.

use futures::future::join_all;
use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use rtnetlink::packet_route::RouteNetlinkMessage;
use tsim_protocol::OpResult;
use tsim_protocol::ops::{Flushed, RouteFlush};

use super::OpCtx;
use super::common::dump_routes;
use crate::base::error::HelperError;
use crate::kernel::nlmsg;
use crate::txn::Txn;
use crate::txn::undo::Undo;

pub(super) async fn handle(
    ctx: &OpCtx<'_>,
    args: RouteFlush,
    txn: &mut Txn,
) -> Result<OpResult, HelperError> {
    let h = ctx.ns_mut(&args.ns).await?;
    ctx.guard_host_eth0(&h, true, "flush the routes")?;
    let table = args.table.id();
    let routes = dump_routes(&h.nl, nlmsg::nl_family(args.family), Some(table)).await?;
    let routes: Vec<_> = routes.into_iter().map(nlmsg::readdable_route).collect();
    let readd = routes
        .iter()
        .map(|r| {
            (
                RouteNetlinkMessage::NewRoute(r.clone()),
                NLM_F_CREATE | NLM_F_EXCL,
            )
        })
        .collect();
    txn.changed(
        &h.name,
        format!("flush table {table}"),
        Undo::Netlink(readd),
    );
    let deletes = routes.iter().map(|r| {
        h.nl.ack(RouteNetlinkMessage::DelRoute(r.clone()), 0, || {
            format!("flush table {table}")
        })
    });
    let mut removed = 0u32;
    for result in join_all(deletes).await {
        match result {
            Ok(()) => removed += 1,
            // Gone already, with the route it depended on.
            Err(e) if e.errno == libc::ESRCH => {}
            Err(e) => return Err(e.into()),
        }
    }
    ctx.uncharge(&h, u64::from(removed));
    Ok(OpResult::RouteFlush(Flushed { count: removed }))
}
