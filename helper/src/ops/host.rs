//! `host_add`, `host_delete`, `host_list`, `host_clean`: test hosts on the simulated network.
//!
//! A host is a managed namespace whose record carries where it hangs off the network (see
//! [`crate::managed::hosts`]). Adding one: check the address; find the router interface facing the
//! host's subnet and its bridge; reserve the name (with the host's address checked against
//! the router's other hosts under the same lock); make sure the gateway is on the router;
//! create the namespace; `eth0` as a veth whose other end is born on the bridge; the
//! addresses; the default route; and make the router forget any stale neighbour entry for the
//! address, so that the host's first packet is answered. Every step is recorded in the
//! request's transaction, so a failure leaves nothing behind.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tsim_protocol::ops::{
    AddrSpec, Done, HostAdd, HostAdded, HostClean, HostDelete, HostList, Hosts, HostsCleaned,
    LinkAddDummy, LinkAddVeth, RouteGet, RouteSpec,
};
use tsim_protocol::topology::INTERNET_HOSTS_IF;
use tsim_protocol::{Cidr, IfName, NsName, Op, OpResult};

use super::{OpCtx, dispatch_boxed, ns_create, ns_delete, pool};
use crate::base::auth::Peer;
use crate::base::error::HelperError;
use crate::managed::context::now_ms;
use crate::managed::hosts;
use crate::managed::registry::{HostSlot, Release, Released};
use crate::managed::state::HostFacet;
use crate::txn::{Effect, Txn};

/// Most secondary addresses a host may have.
const MAX_SECONDARIES: usize = 64;

/// How long `host_add` waits for another request that is adding or deleting the same host.
const WAIT_FOR_OTHERS: Duration = Duration::from_secs(30);

/// The shortest IPv6 host prefix a member may ask for.
const MIN_HOST_PREFIX_V6: u8 = 64;

fn ifname(s: &str) -> IfName {
    s.parse().expect("a valid interface name")
}

pub(super) async fn add(
    ctx: &OpCtx<'_>,
    args: HostAdd,
    txn: &mut Txn,
) -> Result<OpResult, HelperError> {
    let helper = ctx.helper;
    if args.ip.prefix() != 32 {
        // Refused before anything is looked up; a /32 only once the router is known.
        hosts::check_address(&args.ip, false)?;
    }
    if args.secondaries.len() > MAX_SECONDARIES {
        return Err(HelperError::InvalidArgument(format!(
            "A host may have at most {MAX_SECONDARIES} secondary addresses, not {}",
            args.secondaries.len()
        )));
    }
    for (i, s) in args.secondaries.iter().enumerate() {
        if s.addr() == args.ip.addr() || args.secondaries[..i].iter().any(|o| o.addr() == s.addr())
        {
            return Err(HelperError::InvalidArgument(format!(
                "Secondary address {s} is given twice"
            )));
        }
    }
    if !ctx.peer.admin {
        let (min, family) = match args.ip.addr() {
            IpAddr::V4(_) => (helper.config.min_host_prefix, "IPv4"),
            IpAddr::V6(_) => (MIN_HOST_PREFIX_V6, "IPv6"),
        };
        if args.ip.prefix() < min {
            return Err(HelperError::NotAllowed(format!(
                "Host address {}: an {family} prefix shorter than /{min} is for root and the admin group (--min-host-prefix)",
                args.ip
            )));
        }
    }
    if args.name == helper.config.hidden_ns {
        return Err(HelperError::NotAllowed(format!(
            "Namespace {:?} is reserved for the simulated network's bridges",
            args.name.as_str()
        )));
    }
    if pool::is_reserved(helper, &args.name) {
        return Err(HelperError::NotAllowed(format!(
            "Names starting {:?} are reserved for pooled namespaces",
            helper.config.pool_prefix
        )));
    }
    let net = helper.registry.store().net()?.ok_or_else(|| {
        HelperError::NotFound(
            "No network is applied: add hosts after building it (`tsimctl net setup`)".into(),
        )
    })?;
    let router = net
        .topology
        .routers
        .iter()
        .find(|r| r.name == args.router)
        .ok_or_else(|| {
            HelperError::NotFound(format!(
                "{} is not a router of the applied network",
                args.router
            ))
        })?;
    hosts::check_address(&args.ip, router.internet)?;
    if !helper.registry.is_managed(&args.router) {
        return Err(HelperError::NotFound(format!(
            "Router {} is gone (its namespace was deleted)",
            args.router
        )));
    }
    let external = router.internet && args.ip.prefix() == 32;
    let placement = if external {
        match &args.router_if {
            Some(dev) if dev.as_str() != INTERNET_HOSTS_IF => {
                return Err(HelperError::InvalidArgument(format!(
                    "External host {}: a /32 on router {} hangs off {INTERNET_HOSTS_IF}, not {dev}",
                    args.ip, args.router
                )));
            }
            _ => hosts::external(&net.topology, router, &args.ip)?,
        }
    } else {
        match hosts::facing(router, &args.ip, args.router_if.as_ref())? {
            Some(p) => p,
            None => {
                let dev = routed_dev(ctx, &args.router, args.ip.addr(), txn).await?;
                hosts::behind(router, &args.ip, &dev)?
            }
        }
    };
    hosts::check_bridge(&net.topology, &placement, &args.router, &args.ip)?;
    hosts::check_claims(&net.topology, &args.secondaries)?;
    let facet = HostFacet {
        ip: args.ip,
        secondaries: args.secondaries.clone(),
        router: args.router.clone(),
        router_if: placement.router_if,
        bridge: placement.bridge,
        gateway: placement.gateway.into(),
        gateway_added: placement.gateway_added,
        hidden_end: hosts::hidden_end(&args.name),
        leases: Vec::new(),
    };
    ns_create::refuse_foreign(ctx, &args.name)?;
    ns_create::refuse_router_name(ctx, &args.name)?;
    let deadline = Instant::now() + WAIT_FOR_OTHERS;
    loop {
        let slot = helper.registry.reserve_host(
            &args.name,
            ctx.peer.uid,
            args.tag.clone(),
            now_ms(),
            ctx.txn,
            facet.clone(),
            args.share,
        )?;
        match slot {
            HostSlot::Reserved => {
                txn.push(Effect::Reserved {
                    name: args.name.clone(),
                });
                break;
            }
            HostSlot::Reuse(record) => {
                let host = hosts::info(&record, "ready").expect("a host record");
                return Ok(OpResult::HostAdd(HostAdded {
                    shared: !host.leases.is_empty(),
                    host,
                    reused: true,
                    pooled: false,
                }));
            }
            HostSlot::Leased(record) => {
                let host = hosts::info(&record, "ready").expect("a host record");
                txn.push(Effect::LeaseTaken {
                    host: host.name.clone(),
                    tag: args.tag.clone().expect("share needs a tag"),
                });
                return Ok(OpResult::HostAdd(HostAdded {
                    host,
                    reused: false,
                    pooled: false,
                    shared: true,
                }));
            }
            HostSlot::Wait => {
                if ctx.cancel.is_cancelled() {
                    return Err(HelperError::Cancelled);
                }
                if Instant::now() > deadline {
                    return Err(HelperError::Busy(format!(
                        "Host {} is being added or deleted by another request",
                        args.name
                    )));
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    }
    let built = build(ctx, &args.name, &facet, txn).await;
    pool::kick(helper);
    let pooled = built?;
    let (record, _) = helper
        .registry
        .host(&args.name)
        .ok_or_else(|| HelperError::Internal(format!("Host {} vanished", args.name)))?;
    // Ready once the request commits, which is when the caller sees this.
    let host = hosts::info(&record, "ready").expect("a host record");
    Ok(OpResult::HostAdd(HostAdded {
        host,
        reused: false,
        pooled,
        shared: args.share,
    }))
}

/// The router interface `router` routes `ip` through.
async fn routed_dev(
    ctx: &OpCtx<'_>,
    router: &NsName,
    ip: IpAddr,
    txn: &mut Txn,
) -> Result<IfName, HelperError> {
    let get = Op::RouteGet(RouteGet {
        ns: router.clone(),
        dst: ip.into(),
        src: None,
        iif: None,
        mark: None,
    });
    let no_route = || {
        HelperError::InvalidArgument(format!(
            "Router {router} has no address in the subnet of {ip} and no route to it: give --router-if"
        ))
    };
    match dispatch_boxed(ctx, get, txn).await {
        Ok(OpResult::RouteGet(route)) => {
            route.dev.and_then(|d| d.parse().ok()).ok_or_else(no_route)
        }
        Ok(_) => Err(HelperError::Internal(
            "route_get answered something else".into(),
        )),
        // The kernel has no route; any other failure is passed on as it is (a `not_found`
        // for another reason, such as the router's namespace gone, is not a missing route).
        Err(HelperError::NoRoute { .. }) => Err(no_route()),
        Err(e) => Err(e),
    }
}

/// Makes the host reserved under `name`: the gateway, the namespace, its links, addresses
/// and route. On failure before the namespace exists, the reservation is given up here;
/// after, the transaction's undo removes everything.
async fn build(
    ctx: &OpCtx<'_>,
    name: &NsName,
    facet: &HostFacet,
    txn: &mut Txn,
) -> Result<bool, HelperError> {
    let helper = ctx.helper;
    if facet.gateway_added {
        let gateway = facet.gateway_cidr();
        let ensured = helper
            .gateways
            .ensure(helper, &facet.router, &facet.router_if, &gateway)
            .await;
        if let Err(e) = ensured {
            helper.registry.abort_create(name);
            // A gateway added by a host that failed goes again unless another host needs it.
            let _ = helper
                .gateways
                .release(helper, &facet.router, &facet.router_if, &gateway)
                .await;
            return Err(e);
        }
        txn.push(Effect::GatewayHeld {
            host: name.clone(),
            router: facet.router.clone(),
            dev: facet.router_if.clone(),
            gateway,
        });
        crate::base::test_hooks::panic_point("host_add:gateway");
    }
    // The host's end of the network is the caller's; its peer on the bridge and its gateway
    // on the router are the helper's to make on the caller's behalf.
    let admin = Peer {
        admin: true,
        ..ctx.peer.clone()
    };
    let up = ctx.with_peer(&admin);
    let make = async {
        let pooled = pool::adopt(ctx, name, facet, txn).await?;
        if !pooled {
            make_fresh(&up, name, facet, txn).await?;
        }
        for (i, secondary) in facet.secondaries.iter().enumerate() {
            let dev = secondary_dev(&up, name, i, txn).await?;
            dispatch_boxed(&up, Op::AddrAdd(addr(name, &dev, *secondary)), txn).await?;
        }
        Ok::<bool, HelperError>(pooled)
    };
    // The router forgets the address's old owner meanwhile.
    let forget = hosts::forget_neighbour(helper, &facet.router, &facet.router_if, facet.ip.addr());
    let (made, ()) = tokio::join!(make, forget);
    made
}

/// Makes a host's namespace from scratch: the namespace, `eth0` with its other end born on
/// the bridge, the address and the default route.
async fn make_fresh(
    up: &OpCtx<'_>,
    name: &NsName,
    facet: &HostFacet,
    txn: &mut Txn,
) -> Result<(), HelperError> {
    ns_create::make(up, name, false, txn).await?;
    let eth0 = ifname("eth0");
    let veth = LinkAddVeth {
        ns: name.clone(),
        name: eth0.clone(),
        peer_ns: up.helper.config.hidden_ns.clone(),
        peer_name: facet.hidden_end.clone(),
        mtu: None,
        mac: None,
        peer_mac: None,
        master: None,
        peer_master: Some(facet.bridge.clone()),
        up: true,
    };
    dispatch_boxed(up, Op::LinkAddVeth(veth), txn).await?;
    dispatch_boxed(up, Op::AddrAdd(addr(name, &eth0, facet.ip)), txn).await?;
    let default = RouteSpec {
        ns: name.clone(),
        dst: Cidr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0).expect("the default route"),
        table: None,
        kind: None,
        via: Some(facet.gateway),
        dev: Some(eth0),
        src: None,
        metric: None,
        tos: None,
        scope: None,
        proto: None,
        onlink: hosts::onlink(&facet.ip, facet.gateway.0),
        nexthops: Vec::new(),
    };
    dispatch_boxed(up, Op::RouteAdd(default), txn).await?;
    Ok(())
}

fn addr(ns: &NsName, dev: &IfName, addr: Cidr) -> AddrSpec {
    AddrSpec {
        ns: ns.clone(),
        dev: dev.clone(),
        addr,
        broadcast: None,
        scope: None,
        secondary: false,
    }
}

/// The interface for secondary address `i`: `dummy<i>` where the kernel has the dummy
/// driver, `lo` otherwise (learned once).
async fn secondary_dev(
    ctx: &OpCtx<'_>,
    ns: &NsName,
    i: usize,
    txn: &mut Txn,
) -> Result<IfName, HelperError> {
    const UNKNOWN: u8 = 0;
    const YES: u8 = 1;
    const NO: u8 = 2;
    let known = &ctx.helper.dummy_driver;
    if known.load(Ordering::Relaxed) == NO {
        return Ok(ifname("lo"));
    }
    let name = ifname(&format!("dummy{i}"));
    let dummy = LinkAddDummy {
        ns: ns.clone(),
        name: name.clone(),
        mtu: None,
        up: true,
    };
    match dispatch_boxed(ctx, Op::LinkAddDummy(dummy), txn).await {
        Ok(_) => {
            let _ = known.compare_exchange(UNKNOWN, YES, Ordering::Relaxed, Ordering::Relaxed);
            Ok(name)
        }
        Err(HelperError::NoDriver { .. }) => {
            known.store(NO, Ordering::Relaxed);
            Ok(ifname("lo"))
        }
        Err(e) => Err(e),
    }
}

pub(super) async fn delete(
    ctx: &OpCtx<'_>,
    args: HostDelete,
    txn: &mut Txn,
) -> Result<OpResult, HelperError> {
    let how = args.tag.map_or(Release::Sole, Release::Tag);
    remove(ctx, &args.name, &how, txn).await?;
    Ok(OpResult::HostDelete(Done {}))
}

/// Releases what `how` says of host `name` (the caller must own it, or be root or an
/// admin): a lease of a shared host, or the host itself (its namespace, with its links; on
/// commit, its share of the gateway and its router's neighbour entry). Returns whether the
/// host goes.
pub(super) async fn remove(
    ctx: &OpCtx<'_>,
    name: &NsName,
    how: &Release,
    txn: &mut Txn,
) -> Result<bool, HelperError> {
    let helper = ctx.helper;
    let Some((record, _)) = helper.registry.host(name) else {
        return Err(HelperError::NotFound(if helper.registry.is_managed(name) {
            format!("Namespace {name} is not a host")
        } else {
            format!("There is no host {name}")
        }));
    };
    let facet = record.host.expect("a host record");
    let ino =
        match helper
            .registry
            .release_host(name, ctx.peer.uid, ctx.peer.admin, ctx.txn, how)?
        {
            Released::Lease(lease) => {
                txn.push(Effect::LeaseReleased {
                    host: name.clone(),
                    lease,
                });
                return Ok(false);
            }
            Released::Deleting(ino) => ino,
        };
    ns_delete::detach(ctx, name, ino, txn).await?;
    txn.push(Effect::HostGone {
        router: facet.router.clone(),
        dev: facet.router_if.clone(),
        ip: facet.ip.addr(),
        gateway: facet.gateway_added.then(|| facet.gateway_cidr()),
    });
    Ok(true)
}

pub(super) fn list(ctx: &OpCtx<'_>, _args: HostList) -> Result<OpResult, HelperError> {
    let hosts = ctx
        .helper
        .registry
        .hosts()
        .iter()
        .filter_map(|(record, state)| hosts::info(record, state))
        .collect();
    Ok(OpResult::HostList(Hosts { hosts }))
}

pub(super) async fn clean(
    ctx: &OpCtx<'_>,
    args: HostClean,
    txn: &mut Txn,
) -> Result<OpResult, HelperError> {
    let me = ctx.peer.uid;
    let owner = match (args.owner, ctx.peer.admin) {
        (Some(o), false) if o != me => {
            return Err(HelperError::PermissionDenied(format!(
                "Only root or the admin group may clean the hosts of uid {o} (uid {me} is neither)"
            )));
        }
        (None, false) => Some(me),
        (o, _) => o,
    };
    // With a tag: the hosts of that tag, and the shared hosts with a lease of that tag
    // (which lose only that lease, unless it is their last).
    let victims: Vec<(NsName, Release)> = ctx
        .helper
        .registry
        .hosts()
        .into_iter()
        .filter(|(r, state)| *state == "ready" && owner.is_none_or(|o| r.owner_uid == o))
        .filter_map(|(r, _)| {
            let shared = r.host.as_ref().is_some_and(|h| h.shared());
            let how = match &args.tag {
                None => Release::All,
                Some(t) if shared => {
                    let leases = &r.host.as_ref().expect("a host record").leases;
                    leases
                        .iter()
                        .any(|l| &l.tag == t)
                        .then(|| Release::Tag(t.clone()))?
                }
                Some(t) => (r.tag.as_ref() == Some(t)).then_some(Release::All)?,
            };
            Some((r.name, how))
        })
        .collect();
    let mut removed = Vec::new();
    let mut released = Vec::new();
    for (name, how) in victims {
        if remove(ctx, &name, &how, txn).await? {
            removed.push(name);
        } else {
            released.push(name);
        }
    }
    Ok(OpResult::HostClean(HostsCleaned { removed, released }))
}
