//! `netem_set`: a netem root qdisc with a delay on an interface, over netlink. Undoing it
//! removes the root qdisc. `unsupported` where the kernel has no netem.

use rtnetlink::packet_core::{DefaultNla, NLM_F_CREATE, NLM_F_REPLACE};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::tc::{TcAttribute, TcHandle, TcMessage};
use tsim_protocol::ErrorCode;
use tsim_protocol::OpResult;
use tsim_protocol::ops::{Done, NetemSet};

use super::OpCtx;
use crate::base::error::HelperError;
use crate::kernel::nlmsg;
use crate::txn::Txn;
use crate::txn::undo::Undo;

/// `TCA_OPTIONS`.
const TCA_OPTIONS: u16 = 2;
/// Longest delay accepted, in microseconds (60 s).
const MAX_DELAY_US: u32 = 60_000_000;

/// The root qdisc of interface `index`.
pub(super) fn root_qdisc(index: u32) -> TcMessage {
    let mut msg = TcMessage::default();
    msg.header.index = index as i32;
    msg.header.parent = TcHandle::ROOT;
    msg
}

pub(super) async fn handle(
    ctx: &OpCtx<'_>,
    args: NetemSet,
    txn: &mut Txn,
) -> Result<OpResult, HelperError> {
    if args.delay_us > MAX_DELAY_US {
        return Err(HelperError::InvalidArgument(format!(
            "delay_us {} is over the limit of {MAX_DELAY_US}",
            args.delay_us
        )));
    }
    let h = ctx.ns_mut(&args.ns).await?;
    let index = h.nl.link_index(args.dev.as_str()).await?;
    let mut msg = root_qdisc(index);
    msg.attributes.push(TcAttribute::Kind("netem".into()));
    msg.attributes.push(TcAttribute::Other(DefaultNla::new(
        TCA_OPTIONS,
        nlmsg::netem_options(args.delay_us),
    )));
    let what = format!("set a netem delay of {} µs on {}", args.delay_us, args.dev);
    let result =
        h.nl.ack(
            RouteNetlinkMessage::NewQueueDiscipline(msg),
            NLM_F_CREATE | NLM_F_REPLACE,
            || what.clone(),
        )
        .await;
    result.map_err(|e| match e.errno {
        libc::ENOENT | libc::EOPNOTSUPP => e
            .explained("the kernel has no netem qdisc (module sch_netem)")
            .with_code(ErrorCode::Unsupported),
        _ => e,
    })?;
    txn.changed(
        &h.name,
        what,
        Undo::Netlink(vec![(
            RouteNetlinkMessage::DelQueueDiscipline(root_qdisc(index)),
            0,
        )]),
    );
    Ok(OpResult::NetemSet(Done {}))
}
