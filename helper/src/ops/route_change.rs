//! `route_add`, `route_replace`, `route_delete`: one route in any table. What a replace or a
//! delete will change is read first, so that an undo can put it back exactly.

use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use rtnetlink::packet_route::RouteNetlinkMessage;
use tsim_protocol::ErrorCode;
use tsim_protocol::IfName;
use tsim_protocol::OpResult;
use tsim_protocol::ops::{Done, RouteSpec};

use super::OpCtx;
use super::common::{describe_route, dump_routes, resolve_route};
use crate::base::error::HelperError;
use crate::kernel::nlmsg::{self, Mode};
use crate::pure::budget::Part;
use crate::txn::Txn;
use crate::txn::undo::Undo;

pub(super) async fn add(
    ctx: &OpCtx<'_>,
    args: RouteSpec,
    txn: &mut Txn,
) -> Result<OpResult, HelperError> {
    let h = ctx.ns_mut(&args.ns).await?;
    ctx.guard_host_eth0(&h, touches_eth0(&args), "change a route through eth0")?;
    ctx.charge(&h, (Part::Netlink, None, 1), "add a route")
        .await?;
    let req = resolve_route(&h, &args).await?;
    let msg = nlmsg::route_message(&req, Mode::Add)?;
    let what = format!("add {}", describe_route(&args));
    h.nl.ack(
        RouteNetlinkMessage::NewRoute(msg.clone()),
        NLM_F_CREATE | NLM_F_EXCL,
        || what.clone(),
    )
    .await?;
    txn.changed(
        &h.name,
        what,
        Undo::Netlink(vec![(RouteNetlinkMessage::DelRoute(msg), 0)]),
    );
    Ok(OpResult::RouteAdd(Done {}))
}

pub(super) async fn replace(
    ctx: &OpCtx<'_>,
    args: RouteSpec,
    txn: &mut Txn,
) -> Result<OpResult, HelperError> {
    let h = ctx.ns_mut(&args.ns).await?;
    ctx.guard_host_eth0(&h, touches_eth0(&args), "change a route through eth0")?;
    ctx.charge(&h, (Part::Netlink, None, 1), "add a route")
        .await?;
    let req = resolve_route(&h, &args).await?;
    let msg = nlmsg::route_message(&req, Mode::Add)?;
    let family = nlmsg::family_of(req.dst.addr());
    let prior = dump_routes(&h.nl, family, Some(req.table))
        .await?
        .into_iter()
        .find(|r| nlmsg::route_matches(r, &req, true));
    let what = format!("replace {}", describe_route(&args));
    let undo = match prior {
        Some(old) => (
            RouteNetlinkMessage::NewRoute(nlmsg::readdable_route(old)),
            NLM_F_CREATE | NLM_F_REPLACE,
        ),
        None => (RouteNetlinkMessage::DelRoute(msg.clone()), 0),
    };
    h.nl.ack(
        RouteNetlinkMessage::NewRoute(msg),
        NLM_F_CREATE | NLM_F_REPLACE,
        || what.clone(),
    )
    .await?;
    txn.changed(&h.name, what, Undo::Netlink(vec![undo]));
    Ok(OpResult::RouteReplace(Done {}))
}

pub(super) async fn delete(
    ctx: &OpCtx<'_>,
    args: RouteSpec,
    txn: &mut Txn,
) -> Result<OpResult, HelperError> {
    let h = ctx.ns_mut(&args.ns).await?;
    ctx.guard_host_eth0(&h, touches_eth0(&args), "change a route through eth0")?;
    let req = resolve_route(&h, &args).await?;
    let msg = nlmsg::route_message(&req, Mode::Delete)?;
    let family = nlmsg::family_of(req.dst.addr());
    let victim = dump_routes(&h.nl, family, Some(req.table))
        .await?
        .into_iter()
        .find(|r| nlmsg::route_matches(r, &req, false));
    let what = format!("delete {}", describe_route(&args));
    let Some(victim) = victim else {
        return Err(HelperError::NotFound(format!(
            "There is no {} in namespace {}",
            describe_route(&args),
            args.ns
        )));
    };
    h.nl.ack(RouteNetlinkMessage::DelRoute(msg), 0, || what.clone())
        .await
        .map_err(|e| {
            if e.errno == libc::ESRCH {
                e.with_code(ErrorCode::NotFound)
            } else {
                e
            }
        })?;
    let readd = RouteNetlinkMessage::NewRoute(nlmsg::readdable_route(victim));
    txn.changed(
        &h.name,
        what,
        Undo::Netlink(vec![(readd, NLM_F_CREATE | NLM_F_EXCL)]),
    );
    ctx.uncharge(&h, 1);
    Ok(OpResult::RouteDelete(Done {}))
}

/// Whether a route may go out of `eth0`: it names it, or it names no device (the kernel
/// picks the one that reaches its gateway, or, for a deletion, any route that matches).
fn touches_eth0(route: &RouteSpec) -> bool {
    let eth0 = |dev: Option<&IfName>| dev.is_none_or(|d| d.as_str() == "eth0");
    eth0(route.dev.as_ref()) || route.nexthops.iter().any(|hop| eth0(hop.dev.as_ref()))
}
