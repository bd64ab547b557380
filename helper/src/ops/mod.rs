//! Operation handlers, one file per operation. `dispatch` is the only place that lists them.

use tokio_util::sync::CancellationToken;
use tsim_protocol::{Op, OpResult};

use crate::auth::Peer;
use crate::batch::Txn;
use crate::context::Helper;
use crate::error::HelperError;

mod ns_create;
mod ns_delete;
mod ns_list;
mod ping;
mod status;

/// What an operation handler may use.
#[derive(Debug, Clone, Copy)]
pub struct OpCtx<'a> {
    /// The helper's shared state.
    pub helper: &'a Helper,
    /// Who asked.
    pub peer: &'a Peer,
    /// Cancelled when the request is.
    pub cancel: &'a CancellationToken,
    /// Whether the request is atomic (its effects are committed only at its end).
    pub atomic: bool,
}

/// Runs one operation, recording its effects in `txn`.
pub async fn dispatch(ctx: &OpCtx<'_>, op: Op, txn: &mut Txn) -> Result<OpResult, HelperError> {
    match op {
        Op::Ping(args) => ping::handle(ctx, args).await,
        Op::Status(args) => status::handle(ctx, args),
        Op::NsCreate(args) => ns_create::handle(ctx, args, txn).await,
        Op::NsDelete(args) => ns_delete::handle(ctx, args, txn).await,
        Op::NsList(args) => ns_list::handle(ctx, args),
    }
}

/// Whether an operation finishes at once without blocking, so a request made only of such
/// operations can be answered on the connection's reader task instead of a task of its own.
pub fn is_immediate(op: &Op) -> bool {
    match op {
        Op::Ping(p) => p.delay_ms.is_none(),
        Op::Status(_) | Op::NsList(_) => true,
        Op::NsCreate(_) | Op::NsDelete(_) => false,
    }
}
