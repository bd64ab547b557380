//! `link_add_veth`, `link_add_bridge`, `link_add_dummy`: create a link carrying the helper's
//! link group; a veth's peer is born directly in its namespace.

use std::os::fd::AsRawFd;

use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::link::{
    InfoBridge, InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use tsim_protocol::ErrorCode;
use tsim_protocol::OpResult;
use tsim_protocol::net::Mac;
use tsim_protocol::ops::{LINK_GROUP, LinkAddBridge, LinkAddDummy, LinkAddVeth, LinkAdded};

use super::{NsHandle, OpCtx};
use crate::base::error::HelperError;
use crate::kernel::nlmsg;
use crate::pure::budget::{self, Part};
use crate::txn::Txn;
use crate::txn::undo::Undo;

/// The attributes every new link gets.
fn base(name: &str, mtu: Option<u32>, mac: Option<Mac>, up: bool) -> LinkMessage {
    let mut msg = LinkMessage::default();
    if up {
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
    }
    msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
    msg.attributes.push(LinkAttribute::Group(LINK_GROUP));
    if let Some(mtu) = mtu {
        msg.attributes.push(LinkAttribute::Mtu(mtu));
    }
    if let Some(mac) = mac {
        msg.attributes.push(LinkAttribute::Address(mac.0.to_vec()));
    }
    msg
}

/// Creates `msg` in `h`, records its undo, and returns its index (from the kernel's echo of
/// the new link, or a lookup where the kernel does not echo).
async fn create(
    h: &NsHandle,
    msg: LinkMessage,
    name: &str,
    kind: &str,
    txn: &mut Txn,
) -> Result<u32, HelperError> {
    let what = || format!("add {kind} {name}");
    let echoed = match h
        .nl
        .ack_echo(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            what,
        )
        .await
    {
        Ok(echoed) => echoed,
        Err(e) => {
            return Err(match e.errno {
                libc::EOPNOTSUPP => HelperError::NoDriver {
                    kind: kind.to_owned(),
                    inner: e
                        .explained(format!("the kernel has no {kind} driver"))
                        .with_code(ErrorCode::Unsupported),
                },
                libc::EEXIST => e
                    .explained(format!("an interface named {name} exists already"))
                    .into(),
                _ => e.into(),
            });
        }
    };
    let echoed_index = echoed.iter().find_map(|m| match m {
        RouteNetlinkMessage::NewLink(l) if nlmsg::link_name(l).as_deref() == Some(name) => {
            Some(l.header.index)
        }
        _ => None,
    });
    let index = match echoed_index {
        Some(index) => index,
        None => h.nl.link_index(name).await?,
    };
    let mut delete = LinkMessage::default();
    delete.header.index = index;
    txn.changed(
        &h.name,
        what(),
        Undo::Netlink(vec![(RouteNetlinkMessage::DelLink(delete), 0)]),
    );
    Ok(index)
}

async fn master_index(
    h: &NsHandle,
    master: Option<&tsim_protocol::IfName>,
) -> Result<Option<u32>, HelperError> {
    Ok(match master {
        Some(m) => Some(h.nl.link_index(m.as_str()).await?),
        None => None,
    })
}

pub(super) async fn veth(
    ctx: &OpCtx<'_>,
    args: LinkAddVeth,
    txn: &mut Txn,
) -> Result<OpResult, HelperError> {
    let a = ctx.ns_mut(&args.ns).await?;
    let b = if args.peer_ns == args.ns {
        a.clone()
    } else {
        ctx.ns_mut(&args.peer_ns).await?
    };
    if b.name == a.name {
        ctx.charge(
            &a,
            (Part::Netlink, None, 2 * budget::LINK_WEIGHT),
            "add a veth pair",
        )
        .await?;
    } else {
        ctx.charge(&a, (Part::Netlink, None, budget::LINK_WEIGHT), "add a veth")
            .await?;
        ctx.charge(&b, (Part::Netlink, None, budget::LINK_WEIGHT), "add a veth")
            .await?;
    }
    let (master, peer_master) = futures::try_join!(
        master_index(&a, args.master.as_ref()),
        master_index(&b, args.peer_master.as_ref())
    )?;
    let peer_ns = ctx.helper.netns.open(&b.name, b.ino)?;

    // The peer cannot be created up (it would open before it is linked to its pair); the
    // first end can, since the kernel configures it once the pair exists.
    let mut peer = base(args.peer_name.as_str(), args.mtu, args.peer_mac, false);
    peer.attributes
        .push(LinkAttribute::NetNsFd(peer_ns.as_raw_fd()));
    let mut link = base(args.name.as_str(), args.mtu, args.mac, args.up);
    if let Some(m) = master {
        link.attributes.push(LinkAttribute::Controller(m));
    }
    link.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
    ]));
    let label = format!(
        "veth (peer {} in namespace {})",
        args.peer_name, args.peer_ns
    );
    let index = create(&a, link, args.name.as_str(), &label, txn).await?;
    drop(peer_ns);

    // The peer's index, and (at the same time) its master and state, set by name.
    let configure_peer = async {
        if peer_master.is_none() && !args.up {
            return Ok(());
        }
        let mut set = LinkMessage::default();
        set.attributes
            .push(LinkAttribute::IfName(args.peer_name.to_string()));
        if args.up {
            set.header.flags = LinkFlags::Up;
            set.header.change_mask = LinkFlags::Up;
        }
        if let Some(m) = peer_master {
            set.attributes.push(LinkAttribute::Controller(m));
        }
        let what = || format!("set up {} in namespace {}", args.peer_name, b.name);
        b.nl.ack(RouteNetlinkMessage::SetLink(set), 0, what).await
    };
    let (peer_index, ()) =
        futures::try_join!(b.nl.link_index(args.peer_name.as_str()), configure_peer)?;
    Ok(OpResult::LinkAddVeth(LinkAdded {
        index,
        peer_index: Some(peer_index),
    }))
}

pub(super) async fn bridge(
    ctx: &OpCtx<'_>,
    args: LinkAddBridge,
    txn: &mut Txn,
) -> Result<OpResult, HelperError> {
    let h = ctx.ns_mut(&args.ns).await?;
    ctx.charge(
        &h,
        (Part::Netlink, None, budget::LINK_WEIGHT),
        "add a bridge",
    )
    .await?;
    let mut link = base(args.name.as_str(), args.mtu, None, args.up);
    let mut info = vec![LinkInfo::Kind(InfoKind::Bridge)];
    if let Some(ageing) = args.ageing_time {
        info.push(LinkInfo::Data(InfoData::Bridge(vec![
            InfoBridge::AgeingTime(ageing),
        ])));
    }
    link.attributes.push(LinkAttribute::LinkInfo(info));
    let index = create(&h, link, args.name.as_str(), "bridge", txn).await?;
    Ok(OpResult::LinkAddBridge(LinkAdded {
        index,
        peer_index: None,
    }))
}

pub(super) async fn dummy(
    ctx: &OpCtx<'_>,
    args: LinkAddDummy,
    txn: &mut Txn,
) -> Result<OpResult, HelperError> {
    let h = ctx.ns_mut(&args.ns).await?;
    ctx.charge(
        &h,
        (Part::Netlink, None, budget::LINK_WEIGHT),
        "add a dummy",
    )
    .await?;
    let mut link = base(args.name.as_str(), args.mtu, None, args.up);
    link.attributes
        .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
            InfoKind::Dummy,
        )]));
    let index = create(&h, link, args.name.as_str(), "dummy", txn).await?;
    Ok(OpResult::LinkAddDummy(LinkAdded {
        index,
        peer_index: None,
    }))
}
