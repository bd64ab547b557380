//! Running a request: operations in order, with undo for atomic requests, cancellation,
//! progress events and per-operation statistics.
//!
//! Invariants:
//! * Every operation records what it changed as an [`Effect`] in the request's [`Txn`]
//!   before returning, so that it can be undone.
//! * Without `atomic`, each operation's effects are committed as soon as it succeeds; a
//!   failing operation's own effects are undone, so each operation is all-or-nothing.
//! * With `atomic`, effects are committed only after the last operation succeeded; on any
//!   failure (or cancellation) all of them are undone, newest first, before the response.

use std::os::fd::OwnedFd;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::FutureExt;
use tokio_util::sync::CancellationToken;
use tsim_protocol::frame::encode_body;
use tsim_protocol::{
    Cidr, ErrorCode, Event, IfName, NsName, Request, Response, ServerMessage, WireError,
};

use crate::auth::Peer;
use crate::conn::Outbox;
use crate::context::Helper;
use crate::error::{HelperError, chain};
use crate::ops::{self, OpCtx};
use crate::undo::{self, Undo};

/// A change made by an operation, undoable until committed.
#[derive(Debug)]
pub enum Effect {
    /// A name was reserved in the registry (phase `Creating`) for this request; undoing gives
    /// the reservation up, and the namespace made under it if there is one. Recorded the
    /// moment the name is reserved, so that nothing (an error or a panic) between the
    /// reservation and the namespace's creation can leave it reserved.
    Reserved {
        /// Its name.
        name: NsName,
    },
    /// A namespace was created (phase `Creating`).
    NsCreated {
        /// Its name.
        name: NsName,
        /// Its inode.
        ino: u64,
    },
    /// A namespace was removed from `/run/netns`; the handle keeps it alive until commit.
    NsDeleted {
        /// Its name.
        name: NsName,
        /// Keeps the namespace alive so the deletion can be undone.
        handle: OwnedFd,
    },
    /// The record of the applied network was replaced.
    NetState {
        /// The record before (`None`: there was none).
        previous: Option<Box<crate::state::NetRecord>>,
    },
    /// A host holds a gateway the helper added to its router; undoing releases it (the
    /// gateway goes if no other host needs it).
    GatewayHeld {
        /// The host it is held for: undoing gives up that host's reservation first (the
        /// gateway is counted from the host records, the one being made included).
        host: NsName,
        /// The router.
        router: NsName,
        /// Its interface.
        dev: IfName,
        /// The gateway, with the host's prefix.
        gateway: Cidr,
    },
    /// An echo service was started; undoing stops it.
    SvcStarted {
        /// Which.
        key: crate::services::SvcKey,
    },
    /// An echo service was stopped; undoing binds it again (if its address is still free).
    SvcStopped {
        /// Its record.
        record: crate::state::SvcRecord,
    },
    /// A host was deleted (its namespace's deletion is an [`Effect::NsDeleted`] before this
    /// one): on commit, its gateway is released and its router forgets its address.
    HostGone {
        /// The router.
        router: NsName,
        /// The router's interface facing it.
        dev: IfName,
        /// Its address.
        ip: std::net::IpAddr,
        /// The gateway added for it, if one was.
        gateway: Option<Cidr>,
    },
    /// Something changed inside a namespace.
    Changed {
        /// The namespace.
        ns: NsName,
        /// What was changed, for the log if undoing fails.
        what: String,
        /// How to put it back.
        undo: Undo,
    },
}

/// The effects of a request that are not committed yet.
#[derive(Debug)]
pub struct Txn {
    /// The request's registry id (see [`Helper::next_txn`]).
    pub id: u64,
    effects: Vec<Effect>,
}

impl Txn {
    /// An empty transaction for request `id`.
    pub fn new(id: u64) -> Self {
        Self {
            id,
            effects: Vec::new(),
        }
    }

    /// Records a change inside namespace `ns` and how to undo it.
    pub fn changed(&mut self, ns: &NsName, what: impl Into<String>, undo: Undo) {
        self.effects.push(Effect::Changed {
            ns: ns.clone(),
            what: what.into(),
            undo,
        });
    }

    /// Records an effect.
    pub fn push(&mut self, effect: Effect) {
        self.effects.push(effect);
    }

    /// Makes every recorded effect permanent. If that fails, everything is undone and the
    /// error returned.
    pub async fn commit(&mut self, helper: &Helper) -> Result<(), HelperError> {
        // First the steps that can fail (writing records), so a failure can still undo all.
        for effect in &self.effects {
            if let Effect::NsCreated { name, .. } = effect {
                if let Err(e) = helper.registry.commit_created(name) {
                    self.rollback(helper).await;
                    return Err(e.into());
                }
            }
        }
        // A router deleted by this request needs no gateway released or neighbour forgotten.
        let deleted: std::collections::HashSet<NsName> = self
            .effects
            .iter()
            .filter_map(|e| match e {
                Effect::NsDeleted { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect();
        for effect in self.effects.drain(..) {
            match effect {
                Effect::Reserved { .. }
                | Effect::NsCreated { .. }
                | Effect::Changed { .. }
                | Effect::NetState { .. }
                | Effect::GatewayHeld { .. }
                | Effect::SvcStarted { .. }
                | Effect::SvcStopped { .. } => {}
                Effect::NsDeleted { name, handle } => {
                    // Its services' sockets would keep the namespace alive.
                    helper.services.stop_ns(helper, &name);
                    drop(handle);
                    helper.registry.finish_delete(&name);
                }
                Effect::HostGone {
                    router,
                    dev,
                    ip,
                    gateway,
                } if !deleted.contains(&router) => {
                    if let Some(gateway) = gateway {
                        if let Err(e) = helper
                            .gateways
                            .release(helper, &router, &dev, &gateway)
                            .await
                        {
                            tracing::error!(router = %router, error = %chain(&e), "Cannot remove a gateway no host needs");
                        }
                    }
                    if helper.registry.is_managed(&router) {
                        crate::hosts::forget_neighbour(helper, &router, &dev, ip).await;
                    }
                }
                Effect::HostGone { .. } => {}
            }
        }
        Ok(())
    }

    /// Undoes every recorded effect, newest first. Failures are logged, and so is a panic
    /// while undoing one effect; undo goes on with the next.
    pub async fn rollback(&mut self, helper: &Helper) {
        while let Some(effect) = self.effects.pop() {
            let undone = AssertUnwindSafe(self.undo(helper, effect))
                .catch_unwind()
                .await;
            if let Err(panic) = undone {
                tracing::error!(
                    "Undoing an effect panicked (a bug); undo goes on: {}",
                    panic_message(&*panic)
                );
            }
        }
    }

    /// Gives up this request's reservation of `name`, with the namespace made under it.
    async fn give_up(&self, helper: &Helper, name: &NsName) {
        if let Some(ino) = helper.registry.abort_reservation(name, self.id) {
            match helper.netns.detach(name, ino).await {
                Ok(handle) => drop(handle),
                Err(e) => {
                    tracing::error!(ns = %name, error = %chain(&e), "Cannot undo a namespace creation")
                }
            }
        }
    }

    async fn undo(&self, helper: &Helper, effect: Effect) {
        match effect {
            Effect::Reserved { name } => self.give_up(helper, &name).await,
            Effect::NsCreated { name, ino } => {
                match helper.netns.detach(&name, ino).await {
                    Ok(handle) => drop(handle),
                    Err(e) => {
                        tracing::error!(ns = %name, error = %chain(&e), "Cannot undo a namespace creation")
                    }
                }
                helper.registry.abort_create(&name);
            }
            Effect::GatewayHeld {
                host,
                router,
                dev,
                gateway,
            } => {
                self.give_up(helper, &host).await;
                if let Err(e) = helper
                    .gateways
                    .release(helper, &router, &dev, &gateway)
                    .await
                {
                    tracing::error!(router = %router, error = %chain(&e), "Cannot remove a gateway no host needs");
                }
            }
            Effect::HostGone { .. } => {}
            Effect::SvcStarted { key } => {
                helper.services.stop(helper, &key);
            }
            Effect::SvcStopped { record } => {
                if let Err(e) = helper.services.start(helper, record).await {
                    tracing::error!(error = %chain(&e), "Cannot undo a service's stop; it stays stopped");
                }
            }
            Effect::NetState { previous } => {
                if let Err(e) = helper.registry.store().save_net(previous.as_deref()) {
                    tracing::error!(error = %chain(&e), "Cannot put the network's record back");
                }
            }
            Effect::Changed { ns, what, undo } => {
                if let Err(e) = undo::apply(helper, &ns, undo).await {
                    tracing::error!(ns = %ns, error = %chain(&e), "Cannot undo: {what}");
                }
            }
            Effect::NsDeleted { name, handle } => {
                match helper.netns.reattach(&name, handle).await {
                    Ok(()) => helper.registry.abort_delete(&name, self.id),
                    Err(e) => {
                        tracing::error!(ns = %name, error = %chain(&e), "Cannot undo a namespace deletion; it stays deleted");
                        helper.registry.finish_delete(&name);
                    }
                }
            }
        }
    }
}

/// The text of a caught panic.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// Runs one operation; a panic in it becomes an `internal` error, and what the operation had
/// recorded in `txn` before it panicked stays there to be undone.
async fn dispatch_caught(
    ctx: &OpCtx<'_>,
    op: tsim_protocol::Op,
    txn: &mut Txn,
) -> Result<tsim_protocol::OpResult, HelperError> {
    let name = op.name();
    let run = async {
        crate::test_hooks::panic_point(&format!("dispatch:{name}"));
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

    /// Reports `done` of `total` steps, now at `stage`; skipped if the last event was less
    /// than 50 ms ago, unless `force`.
    pub async fn report(&self, done: usize, total: usize, stage: &str, force: bool) {
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
        progress: progress.as_ref(),
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
