//! `net_teardown`: remove the hosts, the routers, the hidden namespace (with its bridges)
//! and the record of the network. Deleting whole namespaces is the fast way: the kernel
//! frees their links together, in the background.

use tsim_protocol::ops::{NetTeardown, NetTornDown, NsDelete};
use tsim_protocol::{Op, OpResult};

use super::{OpCtx, dispatch_boxed};
use crate::base::error::HelperError;
use crate::txn::{Effect, Txn};

pub(super) async fn handle(
    ctx: &OpCtx<'_>,
    _args: NetTeardown,
    txn: &mut Txn,
) -> Result<OpResult, HelperError> {
    super::require_admin(ctx, "tear the network down")?;
    let helper = ctx.helper;
    let record = helper.registry.store().load_net()?;
    let hosts: Vec<_> = helper
        .registry
        .hosts()
        .into_iter()
        .map(|(r, _)| r.name)
        .collect();
    for host in &hosts {
        super::host::remove(ctx, host, &crate::managed::registry::Release::All, txn).await?;
    }
    let pooled = super::pool::drain(ctx, txn).await?;
    let mut names: Vec<_> = record
        .iter()
        .flat_map(|r| r.topology.routers.iter().map(|r| r.name.clone()))
        .collect();
    names.push(helper.config.hidden_ns.clone());
    let mut removed = u32::try_from(hosts.len()).unwrap_or(u32::MAX) + pooled;
    for name in names.into_iter().filter(|n| helper.registry.is_managed(n)) {
        dispatch_boxed(ctx, Op::NsDelete(NsDelete { name }), txn).await?;
        removed += 1;
    }
    if record.is_some() {
        helper.registry.store().save_net(None)?;
        txn.push(Effect::NetState {
            previous: record.map(Box::new),
        });
    }
    Ok(OpResult::NetTeardown(NetTornDown {
        namespaces: removed,
        hosts: u32::try_from(hosts.len()).unwrap_or(u32::MAX),
    }))
}
