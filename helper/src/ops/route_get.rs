//! `route_get`: the route the kernel would use for a destination (as `ip route get`).

use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use tsim_protocol::ErrorCode;
use tsim_protocol::OpResult;
use tsim_protocol::ops::RouteGet;

use super::OpCtx;
use crate::base::error::HelperError;
use crate::kernel::nlmsg;

fn address(ip: std::net::IpAddr) -> RouteAddress {
    match ip {
        std::net::IpAddr::V4(a) => RouteAddress::Inet(a),
        std::net::IpAddr::V6(a) => RouteAddress::Inet6(a),
    }
}

pub(super) async fn handle(ctx: &OpCtx<'_>, args: RouteGet) -> Result<OpResult, HelperError> {
    let h = ctx.ns(&args.ns).await?;
    let dst = args.dst.0;
    let family = nlmsg::family_of(dst);
    let full = if dst.is_ipv4() { 32 } else { 128 };
    let mut msg = RouteMessage::default();
    msg.header.address_family = family;
    msg.header.destination_prefix_length = full;
    msg.attributes
        .push(RouteAttribute::Destination(address(dst)));
    if let Some(src) = args.src {
        nlmsg::check_family("source", src.0, family)?;
        msg.header.source_prefix_length = full;
        msg.attributes.push(RouteAttribute::Source(address(src.0)));
    }
    if let Some(iif) = &args.iif {
        msg.attributes
            .push(RouteAttribute::Iif(h.nl.link_index(iif.as_str()).await?));
    }
    if let Some(mark) = args.mark {
        msg.attributes.push(RouteAttribute::Mark(mark));
    }
    let answer =
        h.nl.get(RouteNetlinkMessage::GetRoute(msg), || {
            format!("look up the route to {dst}")
        })
        .await;
    let answer = answer.map_err(|e| match e.errno {
        libc::ENETUNREACH | libc::EHOSTUNREACH | libc::EINVAL | libc::ENETDOWN => {
            HelperError::NoRoute {
                ns: h.name.clone(),
                dst,
                inner: e
                    .explained(format!("there is no route to {dst}"))
                    .with_code(ErrorCode::NotFound),
            }
        }
        _ => e.into(),
    })?;
    let RouteNetlinkMessage::NewRoute(route) = answer else {
        return Err(HelperError::Internal(
            "The kernel answered a route lookup with something else".into(),
        ));
    };
    // Only the links the answer names, each by a get: a whole dump here would queue behind
    // every other dump on this namespace's socket.
    let mut names = nlmsg::LinkNames::new();
    for index in route.attributes.iter().flat_map(|a| match a {
        RouteAttribute::Oif(i) => vec![*i],
        RouteAttribute::MultiPath(hops) => hops.iter().map(|h| h.interface_index).collect(),
        _ => Vec::new(),
    }) {
        if index != 0 && !names.contains_key(&index) {
            names.insert(index, h.nl.link_name_of(index).await?);
        }
    }
    let info = nlmsg::route_info(&route, &names).ok_or_else(|| {
        HelperError::Internal("The kernel's route answer could not be read".into())
    })?;
    Ok(OpResult::RouteGet(info))
}
