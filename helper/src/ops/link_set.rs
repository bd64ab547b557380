//! `link_set`: change a link's state, master, MTU, MAC or name; the old values are recorded
//! first, so a failure part-way is put back. Taking a link down makes the kernel drop its
//! IPv4 routes and its neighbours, and a new MAC its neighbours; so does the undo of
//! bringing a link up or of a new MAC: the undo adds them back.

use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use tsim_protocol::OpResult;
use tsim_protocol::ops::{Done, LinkSet};

use super::OpCtx;
use super::common::Dependents;
use crate::base::error::HelperError;
use crate::txn::Txn;
use crate::txn::undo::Undo;

pub(super) async fn handle(
    ctx: &OpCtx<'_>,
    args: LinkSet,
    txn: &mut Txn,
) -> Result<OpResult, HelperError> {
    if args.master.is_some() && args.nomaster {
        return Err(HelperError::InvalidArgument(
            "master and nomaster exclude each other".into(),
        ));
    }
    let h = ctx.ns_mut(&args.ns).await?;
    ctx.guard_host_eth0(&h, args.name.as_str() == "eth0", "change eth0")?;
    let current = h.nl.link_by_name(args.name.as_str()).await?;
    let index = current.header.index;
    let old = |pick: fn(&LinkAttribute) -> Option<LinkAttribute>| {
        current.attributes.iter().find_map(pick)
    };
    let mut change = LinkMessage::default();
    change.header.index = index;
    let mut restore = LinkMessage::default();
    restore.header.index = index;

    if let Some(up) = args.up {
        change.header.flags = if up {
            LinkFlags::Up
        } else {
            LinkFlags::empty()
        };
        change.header.change_mask = LinkFlags::Up;
        restore.header.flags = current.header.flags & LinkFlags::Up;
        restore.header.change_mask = LinkFlags::Up;
    }
    if args.master.is_some() || args.nomaster {
        let new = match &args.master {
            Some(m) => h.nl.link_index(m.as_str()).await?,
            None => 0,
        };
        change.attributes.push(LinkAttribute::Controller(new));
        let was = old(|a| match a {
            LinkAttribute::Controller(m) => Some(LinkAttribute::Controller(*m)),
            _ => None,
        });
        restore
            .attributes
            .push(was.unwrap_or(LinkAttribute::Controller(0)));
    }
    if let Some(mtu) = args.mtu {
        change.attributes.push(LinkAttribute::Mtu(mtu));
        restore.attributes.extend(old(|a| match a {
            LinkAttribute::Mtu(m) => Some(LinkAttribute::Mtu(*m)),
            _ => None,
        }));
    }
    if let Some(mac) = args.mac {
        change
            .attributes
            .push(LinkAttribute::Address(mac.0.to_vec()));
        restore.attributes.extend(old(|a| match a {
            LinkAttribute::Address(m) => Some(LinkAttribute::Address(m.clone())),
            _ => None,
        }));
    }
    if let Some(name) = &args.rename {
        change
            .attributes
            .push(LinkAttribute::IfName(name.to_string()));
        restore
            .attributes
            .push(LinkAttribute::IfName(args.name.to_string()));
    }
    if change.header.change_mask.is_empty() && change.attributes.is_empty() {
        return Ok(OpResult::LinkSet(Done {}));
    }
    let what = format!("change link {}", args.name);
    // Down, either way: the change or its undo takes the link down.
    let up_changes = args
        .up
        .is_some_and(|up| up != current.header.flags.contains(LinkFlags::Up));
    let new_mac = args.mac.is_some_and(|m| {
        old(|a| match a {
            LinkAttribute::Address(m) => Some(LinkAttribute::Address(m.clone())),
            _ => None,
        }) != Some(LinkAttribute::Address(m.0.to_vec()))
    });
    // In a namespace this request made, undoing its creation removes everything.
    let dependents = match (up_changes || new_mac) && !h.fresh {
        true => Some(Dependents::read(&h.nl).await?),
        false => None,
    };
    let mut undo = vec![(RouteNetlinkMessage::SetLink(restore), 0)];
    undo.extend(dependents.map(Dependents::readd_all).unwrap_or_default());
    txn.changed(&h.name, what.clone(), Undo::Netlink(undo));
    h.nl.ack(RouteNetlinkMessage::SetLink(change), 0, || what)
        .await?;
    Ok(OpResult::LinkSet(Done {}))
}
