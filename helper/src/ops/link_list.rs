//! `link_list`: the links of a namespace, with a veth's peer namespace named when it is one
//! this helper manages.

use std::os::fd::AsRawFd;

use tsim_protocol::ops::{LinkList, Links};
use tsim_protocol::{NsName, OpResult};

use super::{NsHandle, OpCtx};
use crate::base::error::HelperError;
use crate::kernel::nlmsg;

pub(super) async fn handle(ctx: &OpCtx<'_>, args: LinkList) -> Result<OpResult, HelperError> {
    let h = ctx.ns(&args.ns).await?;
    let all = h.nl.links().await?;
    let names = nlmsg::link_names(&all);
    let mut links = Vec::new();
    for msg in &all {
        let name = nlmsg::link_name(msg).unwrap_or_default();
        if args.name.as_ref().is_some_and(|n| n.as_str() != name) {
            continue;
        }
        let peer_ns = match nlmsg::link_netnsid(msg) {
            Some(nsid) if nsid >= 0 => peer_namespace(ctx, &h, nsid).await,
            _ => None,
        };
        links.push(nlmsg::link_info(msg, &names, peer_ns));
    }
    if let (Some(name), true) = (&args.name, links.is_empty()) {
        return Err(HelperError::NotFound(format!(
            "There is no interface {name} in namespace {}",
            args.ns
        )));
    }
    Ok(OpResult::LinkList(Links { links }))
}

/// The managed namespace that `h` knows as peer namespace `nsid`, if any.
async fn peer_namespace(ctx: &OpCtx<'_>, h: &NsHandle, nsid: i32) -> Option<NsName> {
    let helper = ctx.helper;
    let is = |name: NsName, ino: u64| async move {
        let fd = helper.netns.open(&name, ino).ok()?;
        (h.nl.nsid_of(fd.as_raw_fd()).await.ok()? == nsid).then_some(name)
    };
    let all = helper.registry.all();
    if let Some(cached) = h.nl.cached_nsid(nsid) {
        if let Some((_, ino)) = all.iter().find(|(n, _)| *n == cached) {
            if let Some(found) = is(cached, *ino).await {
                return Some(found);
            }
        }
    }
    for (name, ino) in all {
        if name == h.name {
            continue;
        }
        if let Some(found) = is(name, ino).await {
            h.nl.remember_nsid(nsid, found.clone());
            return Some(found);
        }
    }
    None
}
