//! Running one request: its operations in order, committed one by one or (atomic) at the
//! end, undone on failure, cancellation or timeout, with progress events and statistics.
//!
//! Invariants (with those of [`crate::txn`]):
//! * Without `atomic`, each operation's effects are committed as soon as it succeeds; a
//!   failing operation's own effects are undone, so each operation is all-or-nothing.
//! * With `atomic`, effects are committed only after the last operation succeeded; on any
//!   failure (or cancellation) all of them are undone, newest first, before the response.
//! * A panic in an operation is answered `internal` at its index, and undone like a failure.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;
use tsim_protocol::frame::encode_body;
use tsim_protocol::{ErrorCode, Event, Request, Response, ServerMessage, WireError};

use crate::base::auth::Peer;
use crate::base::error::HelperError;
use crate::managed::context::Helper;
use crate::ops::{self, OpCtx, Report};
use crate::serve::conn::Outbox;
use crate::txn::{Txn, panic_message};

/// Runs one operation; a panic in it becomes an `internal` error, and what the operation had
/// recorded in `txn` before it panicked stays there to be undone.
async fn dispatch_caught(
    ctx: &OpCtx<'_>,
    op: tsim_protocol::Op,
    txn: &mut Txn,
) -> Result<tsim_protocol::OpResult, HelperError> {
    let name = op.name();
    let run = async {
        crate::base::test_hooks::panic_point(&format!("dispatch:{name}"));
        ops::dispatch(ctx, op, txn).await
    };
    match AssertUnwindSafe(run).catch_unwind().await {
        Ok(outcome) => outcome,
        Err(panic) => {
            tracing::error!(
                op = name,
                "An operation panicked (a bug): {}",
                panic_message(&*panic)
            );
            Err(HelperError::Internal(format!(
                "Operation {name} failed on a bug in the helper (logged); its changes are undone"
            )))
        }
    }
}

/// Sends progress events for one request, at most one every 50 ms (besides the first and the
/// last).
#[derive(Debug)]
pub struct Progress {
    id: u64,
    out: Outbox,
    last: std::sync::Mutex<Option<Instant>>,
}

impl Progress {
    /// Least time between two events, except the first and the last.
    const INTERVAL: Duration = Duration::from_millis(50);

    /// Events for request `id`, written to `out`.
    pub fn new(id: u64, out: Outbox) -> Self {
        Self {
            id,
            out,
            last: std::sync::Mutex::new(None),
        }
    }
}

impl Report for Progress {
    /// Skipped if the last event was less than 50 ms ago, unless `force`.
    fn report<'a>(
        &'a self,
        done: usize,
        total: usize,
        stage: &'a str,
        force: bool,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            {
                let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
                if !force && last.is_some_and(|t| t.elapsed() < Self::INTERVAL) {
                    return;
                }
                *last = Some(Instant::now());
            }
            let event = ServerMessage::Event(Event {
                id: self.id,
                done: u32::try_from(done).unwrap_or(u32::MAX),
                total: u32::try_from(total).unwrap_or(u32::MAX),
                stage: stage.to_owned(),
            });
            if let Ok(body) = encode_body(&event) {
                self.out.send(Bytes::from(body)).await;
            }
        })
    }
}

/// Runs `request` for `peer` and returns its response.
pub async fn run(
    helper: &Helper,
    peer: &Peer,
    request: Request,
    cancel: &CancellationToken,
    progress: Option<Progress>,
) -> Response {
    helper.counters.in_flight.fetch_add(1, Ordering::Relaxed);
    // `--max-request-secs`: past it the request is cancelled like any other (undone if
    // atomic), and answered `timeout`.
    let limit = Duration::from_secs(helper.config.max_request_secs);
    let Request {
        id, ops, atomic, ..
    } = request;
    let total = ops.len();
    if atomic {
        if let Some((index, op)) = ops.iter().enumerate().find(|(_, op)| !ops::is_undoable(op)) {
            let message = format!(
                "Operation {index} ({}) cannot be undone, so it cannot be part of an atomic request; send it in a request that is not atomic",
                op.name()
            );
            helper.counters.in_flight.fetch_sub(1, Ordering::Relaxed);
            helper.counters.requests.fetch_add(1, Ordering::Relaxed);
            return Response {
                id,
                results: Vec::new(),
                error: Some(HelperError::NotAllowed(message).to_wire().at(index)),
            };
        }
    }
    let mut txn = Txn::new(helper.next_txn());
    let ctx = OpCtx {
        helper,
        peer,
        cancel,
        atomic,
        txn: txn.id,
        progress: progress.as_ref().map(|p| p as &dyn Report),
    };
    let mut timed_out = false;
    let (mut results, mut failure) = {
        let ops_loop = async {
            let mut results = Vec::with_capacity(total);
            let mut failure: Option<WireError> = None;
            for (index, op) in ops.into_iter().enumerate() {
                if cancel.is_cancelled() {
                    failure = Some(HelperError::Cancelled.to_wire().at(index));
                    break;
                }
                let name = op.name();
                if let Some(p) = progress.as_ref() {
                    p.report(index, total, name, index == 0).await;
                }
                let started = Instant::now();
                let outcome = dispatch_caught(&ctx, op, &mut txn).await;
                let outcome = match outcome {
                    Ok(result) if !atomic => txn.commit(helper).await.map(|()| result),
                    other => other,
                };
                helper
                    .metrics
                    .record(name, started.elapsed(), outcome.is_ok());
                match outcome {
                    Ok(result) => results.push(result),
                    Err(e) => {
                        failure = Some(e.to_wire().at(index));
                        break;
                    }
                }
            }
            (results, failure)
        };
        // Past the limit, the token tells the operations to stop, and the loop runs on until they
        // have (so that what they did is recorded and can be undone).
        let deadline = tokio::time::sleep(limit);
        tokio::pin!(ops_loop, deadline);
        tokio::select! {
            biased;
            done = &mut ops_loop => done,
            () = &mut deadline => {
                timed_out = true;
                cancel.cancel();
                (&mut ops_loop).await
            }
        }
    };

    if failure.is_none() && atomic {
        if let Err(e) = txn.commit(helper).await {
            failure = Some(e.to_wire());
        }
    }
    if failure.is_some() {
        txn.rollback(helper).await;
        if atomic {
            results.clear();
        }
    } else if let Some(p) = progress.as_ref() {
        p.report(total, total, "done", true).await;
    }
    if let Some(error) = failure
        .as_mut()
        .filter(|e| timed_out && e.code == ErrorCode::Cancelled)
    {
        error.code = ErrorCode::Timeout;
        error.message = format!(
            "The request ran longer than {} s (--max-request-secs) and was stopped{}",
            limit.as_secs(),
            if atomic {
                "; everything it did was undone"
            } else {
                ""
            }
        );
    }
    helper.counters.in_flight.fetch_sub(1, Ordering::Relaxed);
    helper.counters.requests.fetch_add(1, Ordering::Relaxed);
    Response {
        id,
        results,
        error: failure,
    }
}
