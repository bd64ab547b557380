//! `route_list`: the routes of one table or of all tables.

use tsim_protocol::OpResult;
use tsim_protocol::ops::{RouteList, Routes};

use super::OpCtx;
use super::common::dump_routes;
use crate::base::error::HelperError;
use crate::kernel::nlmsg;

pub(super) async fn handle(ctx: &OpCtx<'_>, args: RouteList) -> Result<OpResult, HelperError> {
    let h = ctx.ns(&args.ns).await?;
    let names = nlmsg::link_names(&h.nl.links().await?);
    let messages = dump_routes(
        &h.nl,
        nlmsg::nl_family(args.family),
        args.table.map(|t| t.id()),
    )
    .await?;
    let routes = messages
        .iter()
        .filter_map(|m| nlmsg::route_info(m, &names))
        .collect();
    Ok(OpResult::RouteList(Routes { routes }))
}
