//! `addr_list`: the addresses of a namespace.

use tsim_protocol::OpResult;
use tsim_protocol::ops::{AddrList, Addrs};

use super::OpCtx;
use super::common::dump_addrs;
use crate::base::error::HelperError;
use crate::kernel::nlmsg;

pub(super) async fn handle(ctx: &OpCtx<'_>, args: AddrList) -> Result<OpResult, HelperError> {
    let h = ctx.ns(&args.ns).await?;
    let index = match &args.dev {
        Some(dev) => Some(h.nl.link_index(dev.as_str()).await?),
        None => None,
    };
    let names = nlmsg::link_names(&h.nl.links().await?);
    let messages = dump_addrs(&h.nl, nlmsg::nl_family(args.family), index).await?;
    let addrs = messages
        .iter()
        .filter_map(|m| nlmsg::addr_info(m, &names))
        .collect();
    Ok(OpResult::AddrList(Addrs { addrs }))
}
