//! `svc_start`, `svc_stop`, `svc_list`: echo services inside managed namespaces (see
//! [`crate::managed::services`]).

use tsim_protocol::OpResult;
use tsim_protocol::ops::{Done, Services, SvcInfo, SvcList, SvcStart, SvcStop};

use super::OpCtx;
use crate::base::error::HelperError;
use crate::managed::context::now_ms;
use crate::managed::services::key_of;
use crate::managed::state::SvcRecord;
use crate::txn::{Effect, Txn};

pub(super) async fn start(
    ctx: &OpCtx<'_>,
    args: SvcStart,
    txn: &mut Txn,
) -> Result<OpResult, HelperError> {
    let a = args.addr;
    if a.port == 0 {
        return Err(HelperError::InvalidArgument(
            "A service needs a port from 1 to 65535, not 0".into(),
        ));
    }
    // Starting a service changes what the namespace does: its owner, root or an admin.
    let ns = ctx.ns_mut(&a.ns).await?;
    let record = SvcRecord {
        ns: ns.name,
        ino: ns.ino,
        ip: a.ip,
        port: a.port,
        proto: a.proto,
        owner_uid: ctx.peer.uid,
        tag: args.tag,
        created_ms: now_ms(),
    };
    let key = key_of(&record);
    ctx.helper.services.start(ctx.helper, record).await?;
    txn.push(Effect::SvcStarted { key: key.clone() });
    let info = ctx
        .helper
        .services
        .list()
        .into_iter()
        .find(|s| (s.addr.ns.clone(), s.addr.ip.0, s.addr.port, s.addr.proto) == key)
        .ok_or_else(|| HelperError::Internal("A service stopped as it started".into()))?;
    Ok(OpResult::SvcStart(info))
}

pub(super) fn stop(ctx: &OpCtx<'_>, args: SvcStop, txn: &mut Txn) -> Result<OpResult, HelperError> {
    let a = args.addr;
    let key = (a.ns.clone(), a.ip.0, a.port, a.proto);
    let services = &ctx.helper.services;
    let Some(record) = services.get(&key) else {
        return Err(HelperError::NotFound(format!(
            "No {} service listens on {}:{} in namespace {}",
            a.proto, a.ip, a.port, a.ns
        )));
    };
    if !ctx.peer.admin && record.owner_uid != ctx.peer.uid {
        return Err(HelperError::PermissionDenied(format!(
            "The {} service on {}:{} in namespace {} belongs to uid {}; only its owner, root or the admin group may stop it",
            a.proto, a.ip, a.port, a.ns, record.owner_uid
        )));
    }
    if let Some(record) = services.stop(ctx.helper, &key) {
        txn.push(Effect::SvcStopped { record });
    }
    Ok(OpResult::SvcStop(Done {}))
}

pub(super) fn list(ctx: &OpCtx<'_>, _args: SvcList) -> Result<OpResult, HelperError> {
    let services: Vec<SvcInfo> = ctx.helper.services.list();
    Ok(OpResult::SvcList(Services { services }))
}
