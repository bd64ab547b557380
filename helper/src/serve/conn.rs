//! One client connection: handshake, then pipelined requests answered by id.
//!
//! The reader task decodes frames and starts requests; a writer task owns the write half and
//! sends whatever the requests produce, in the order they finish. A request made only of
//! immediate operations runs on the reader task; others get a task of their own, at most
//! `max_in_flight` at once, holding at most `max_conn_bytes` of request frames (the reader
//! waits for a slot and for room, so a client that sends too much is slowed down, not refused,
//! and what one connection can make the helper hold is bounded).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use tsim_protocol::diagnose::{Diagnosis, decode_client_message};
use tsim_protocol::frame::encode_body;
use tsim_protocol::version::{self, HANDSHAKE_MAX_FRAME};
use tsim_protocol::{
    ClientMessage, ErrorCode, Op, Request, Response, ServerMessage, Welcome, WireError,
};

use crate::base::auth::Peer;
use crate::managed::context::Helper;
use crate::ops;
use crate::serve::codec::{FrameCodec, FrameError};
use crate::serve::request::{self, Progress};

/// How long a client has to send `hello`.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one frame may take to write before the client is considered gone.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

/// The tokens that end a connection: `stop` stops reading new requests, `abort` cancels the
/// running ones.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    /// Stop reading; let running requests finish.
    pub stop: CancellationToken,
    /// Cancel running requests.
    pub abort: CancellationToken,
}

/// Serves one connection until the client closes it or `life.stop` fires.
pub async fn serve<R, W>(reader: R, writer: W, peer: Peer, helper: Arc<Helper>, life: Lifecycle)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let conn_id = NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed);
    let span = tracing::info_span!("conn", id = conn_id, uid = peer.uid, pid = peer.pid);
    async move {
        let out = Outbox::new(writer, helper.config.max_frame);
        let mut frames = FramedRead::new(reader, FrameCodec::new(HANDSHAKE_MAX_FRAME));
        if handshake(&mut frames, &out, &peer, &helper).await {
            frames.decoder_mut().set_max(helper.config.max_frame);
            let conn = Arc::new(Conn {
                out,
                peer,
                in_flight: Mutex::new(HashMap::new()),
                permits: Arc::new(Semaphore::new(helper.config.max_in_flight as usize)),
                bytes: Arc::new(Semaphore::new(helper.config.max_conn_bytes as usize)),
                helper,
                life,
            });
            read_loop(&conn, &mut frames).await;
            conn.out.close().await;
        } else {
            out.close().await;
        }
        tracing::debug!("Connection closed");
    }
    .instrument(span)
    .await;
}

/// Sends one connection-level error frame on a connection that is not served (e.g. over the
/// connection limit), then closes it.
pub async fn refuse<W: AsyncWrite + Unpin>(writer: W, error: WireError, max_frame: u32) {
    let mut sink = FramedWrite::new(writer, FrameCodec::new(max_frame));
    if let Ok(body) = encode_body(&ServerMessage::Error(error)) {
        let _ = sink.send(Bytes::from(body)).await;
    }
    let _ = sink.close().await;
}

/// Reads `hello` and answers it. Returns whether the connection is to be served.
async fn handshake<R: AsyncRead + Unpin>(
    frames: &mut FramedRead<R, FrameCodec>,
    out: &Outbox,
    peer: &Peer,
    helper: &Helper,
) -> bool {
    let refuse = |code, message: String| async move {
        tracing::info!(code = %code, "Refused a connection: {message}");
        send(out, &ServerMessage::Error(WireError::new(code, message))).await;
        false
    };
    if !peer.authorized {
        // Answer at once, without reading: a peer that may not connect gets no more of the
        // helper's time than this.
        return refuse(ErrorCode::PermissionDenied, helper.authz.refusal(peer)).await;
    }
    let first = match tokio::time::timeout(HANDSHAKE_TIMEOUT, frames.next()).await {
        Err(_) => {
            let msg = format!("No hello within {} seconds", HANDSHAKE_TIMEOUT.as_secs());
            return refuse(ErrorCode::Timeout, msg).await;
        }
        Ok(None) | Ok(Some(Err(FrameError::Io(_)))) => return false,
        Ok(Some(Err(e @ FrameError::TooLarge { .. }))) => {
            return refuse(ErrorCode::BadRequest, format!("{e} (before the handshake)")).await;
        }
        Ok(Some(Ok(body))) => body,
    };
    // At most HANDSHAKE_MAX_FRAME bytes: decoded in place.
    let hello = match decode_client_message(&first, helper.config.max_ops as usize) {
        Ok(ClientMessage::Hello(hello)) => hello,
        Ok(_) => {
            return refuse(
                ErrorCode::BadRequest,
                "The first message must be hello".into(),
            )
            .await;
        }
        Err(diagnosis) => {
            let why = diagnosis.error.message;
            return refuse(
                ErrorCode::BadRequest,
                format!("The first message must be hello: {why}"),
            )
            .await;
        }
    };
    if hello.protocol.major != version::MAJOR {
        let msg = format!(
            "The client speaks protocol {}, this helper speaks {}; the major versions must match",
            hello.protocol,
            version::CURRENT
        );
        return refuse(ErrorCode::UnsupportedVersion, msg).await;
    }
    tracing::debug!(client = %printable(&hello.client), protocol = %hello.protocol, "Handshake done");
    let welcome = Welcome {
        protocol: version::CURRENT,
        helper_version: env!("CARGO_PKG_VERSION").to_owned(),
        limits: helper.limits(),
        peer: peer.info(),
    };
    send(out, &ServerMessage::Welcome(welcome)).await
}

/// A served connection's shared state.
#[derive(Debug)]
struct Conn {
    out: Outbox,
    peer: Peer,
    helper: Arc<Helper>,
    in_flight: Mutex<HashMap<u64, CancellationToken>>,
    permits: Arc<Semaphore>,
    /// Room for request frames (`--max-conn-bytes`): a request holds its frame's size until
    /// its answer is written.
    bytes: Arc<Semaphore>,
    life: Lifecycle,
}

async fn read_loop<R: AsyncRead + Unpin>(conn: &Arc<Conn>, frames: &mut FramedRead<R, FrameCodec>) {
    let tracker = TaskTracker::new();
    let idle = conn.helper.config.idle_timeout;
    // 0 is never: a year, re-armed.
    let idle_limit = Duration::from_secs(if idle == 0 { 365 * 86400 } else { idle });
    loop {
        let next = tokio::select! {
            biased;
            () = conn.life.stop.cancelled() => break,
            next = frames.next() => next,
            () = tokio::time::sleep(idle_limit) => {
                if !conn.lock_in_flight().is_empty() {
                    continue;
                }
                tracing::info!(secs = idle, "Closing an idle connection");
                let msg = format!("The connection was idle for {idle} s; it is closed");
                conn.send_error(WireError::new(ErrorCode::Timeout, msg)).await;
                break;
            }
        };
        match next {
            None => break,
            Some(Ok(body)) => {
                // Room for this frame first: a connection over its budget is not read further.
                let want = body
                    .len()
                    .clamp(1, conn.helper.config.max_conn_bytes as usize);
                let room = tokio::select! {
                    room = Arc::clone(&conn.bytes).acquire_many_owned(want as u32) => room.expect("the semaphore is never closed"),
                    () = conn.life.stop.cancelled() => break,
                };
                handle_frame(conn, body, &tracker, room).await;
            }
            Some(Err(e @ FrameError::TooLarge { .. })) => {
                tracing::info!("Closing a connection: {e}");
                conn.send_error(WireError::new(ErrorCode::BadRequest, e.to_string()))
                    .await;
                break;
            }
            Some(Err(FrameError::Io(e))) => {
                tracing::debug!(error = %e, "Connection read failed");
                break;
            }
        }
    }
    tracker.close();
    tracker.wait().await;
}

/// Frames up to this size are decoded on the reader task: a few tens of microseconds at
/// most, so the common round trip pays nothing. Larger ones go to a blocking thread.
const INLINE_DECODE: usize = 64 * 1024;

/// Most heavy jobs at once, helper-wide: decoding a large frame (on a blocking thread), or
/// running a large request of immediate operations (off the runtime workers). Each takes a
/// core for up to tens of milliseconds and holds its decoded operations meanwhile; one at a
/// time leaves the other cores to everyone else (a root `ping` among them).
const MAX_HEAVY: usize = 1;

static HEAVY: Semaphore = Semaphore::const_new(MAX_HEAVY);

/// A request of immediate operations with more than this many runs off the runtime workers:
/// 10 000 `status` take about 50 ms of CPU, with their answer's encoding.
const INLINE_OPS: usize = 16;

/// Decodes a frame body (bounded: see `tsim_protocol::diagnose`), off the runtime workers
/// when it is large. `None` when the connection is stopping.
async fn decode(conn: &Conn, body: bytes::BytesMut) -> Option<Result<ClientMessage, Diagnosis>> {
    let max_ops = conn.helper.config.max_ops as usize;
    if body.len() <= INLINE_DECODE {
        return Some(decode_client_message(&body, max_ops));
    }
    let permit = tokio::select! {
        permit = HEAVY.acquire() => permit.expect("the semaphore is never closed"),
        () = conn.life.stop.cancelled() => return None,
    };
    let body = body.freeze();
    let decoded = if crate::serve::heavy::started() {
        crate::serve::heavy::run(move || decode_client_message(&body, max_ops))
            .await
            .ok_or("it panicked".to_string())
    } else {
        tokio::task::spawn_blocking(move || decode_client_message(&body, max_ops))
            .await
            .map_err(|e| e.to_string())
    };
    drop(permit);
    match decoded {
        Ok(decoded) => Some(decoded),
        Err(e) => {
            tracing::error!(error = %e, "The decoder of a frame failed");
            Some(Err(Diagnosis {
                request_id: None,
                error: WireError::new(ErrorCode::Internal, "The frame could not be decoded"),
            }))
        }
    }
}

async fn handle_frame(
    conn: &Arc<Conn>,
    body: bytes::BytesMut,
    tracker: &TaskTracker,
    room: OwnedSemaphorePermit,
) {
    let Some(decoded) = decode(conn, body).await else {
        return;
    };
    match decoded {
        Ok(ClientMessage::Request(request)) => start_request(conn, request, tracker, room).await,
        Ok(ClientMessage::Cancel(cancel)) => {
            let token = conn.lock_in_flight().get(&cancel.id).cloned();
            if let Some(token) = token {
                tracing::debug!(id = cancel.id, "Cancelling a request");
                token.cancel();
            }
        }
        Ok(ClientMessage::Hello(_)) => {
            let msg = "The handshake is already done; hello is only valid as the first message";
            conn.send_error(WireError::new(ErrorCode::BadRequest, msg))
                .await;
        }
        Err(diagnosis) => {
            tracing::info!(id = ?diagnosis.request_id, error = %diagnosis.error, "Undecodable message");
            match diagnosis.request_id {
                Some(id) => {
                    let response = Response {
                        id,
                        results: Vec::new(),
                        error: Some(diagnosis.error),
                    };
                    conn.send_response(response).await;
                }
                None => conn.send_error(diagnosis.error).await,
            }
        }
    }
}

async fn start_request(
    conn: &Arc<Conn>,
    request: Request,
    tracker: &TaskTracker,
    room: OwnedSemaphorePermit,
) {
    let id = request.id;
    // Enforced while decoding (decode_client_message); checked again here for any other way
    // a request could arrive.
    let max_ops = conn.helper.config.max_ops as usize;
    if request.ops.len() > max_ops {
        let msg = format!(
            "The request has {} operations; the limit is {max_ops}",
            request.ops.len()
        );
        let error = WireError::new(ErrorCode::BadRequest, msg);
        conn.send_response(Response {
            id,
            results: Vec::new(),
            error: Some(error),
        })
        .await;
        return;
    }
    let token = conn.life.abort.child_token();
    let registered = match conn.lock_in_flight().entry(id) {
        std::collections::hash_map::Entry::Occupied(_) => false,
        std::collections::hash_map::Entry::Vacant(slot) => {
            slot.insert(token.clone());
            true
        }
    };
    if !registered {
        let msg = format!("Request id {id} is already in flight on this connection");
        conn.send_error(WireError::new(ErrorCode::BadRequest, msg))
            .await;
        return;
    }
    let Some(slot) = UidSlot::take(&conn.helper, conn.peer.uid) else {
        conn.lock_in_flight().remove(&id);
        let quota = conn.helper.config.quota_in_flight;
        let msg = format!(
            "uid {} has {quota} requests running, its quota; wait for one to end",
            conn.peer.uid
        );
        conn.send_response(Response {
            id,
            results: Vec::new(),
            error: Some(WireError::new(ErrorCode::QuotaExceeded, msg)),
        })
        .await;
        return;
    };
    let permit = tokio::select! {
        permit = Arc::clone(&conn.permits).acquire_owned() => permit.expect("the semaphore is never closed"),
        () = conn.life.stop.cancelled() => {
            conn.lock_in_flight().remove(&id);
            return;
        }
    };
    let span = tracing::info_span!("request", id, ops = %summarize(&request.ops));
    let immediate = !request.progress && request.ops.iter().all(ops::is_immediate);
    let conn_ops = request.ops.len();
    let conn = Arc::clone(conn);
    let job = async move {
        let started = Instant::now();
        let progress = request
            .progress
            .then(|| Progress::new(id, conn.out.clone()));
        let response = request::run(&conn.helper, &conn.peer, request, &token, progress).await;
        log_outcome(&response, started.elapsed());
        conn.lock_in_flight().remove(&id);
        conn.send_response(response).await;
        drop(permit);
        drop(room);
        drop(slot);
    }
    .instrument(span);
    if immediate && conn_ops <= INLINE_OPS {
        job.await;
    } else if immediate {
        // Many immediate operations: CPU only, never a wait, so nothing in them yields. Run
        // them on the heavy thread, below the workers' priority (or, without it, on this
        // thread with the worker's other tasks handed to another one), one such request at
        // a time helper-wide; this connection reads on when it is done.
        let permit = HEAVY
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let runtime = tokio::runtime::Handle::current();
        if crate::serve::heavy::started() {
            // A panic is caught in `request::run`, per operation; the job itself answers.
            let _ = crate::serve::heavy::run(move || runtime.block_on(job)).await;
        } else {
            match runtime.runtime_flavor() {
                tokio::runtime::RuntimeFlavor::MultiThread => {
                    tokio::task::block_in_place(|| runtime.block_on(job));
                }
                _ => job.await,
            }
        }
        drop(permit);
    } else {
        tracker.spawn(job);
    }
}

/// A running request counted against its uid's `--quota-in-flight` (root is exempt); the
/// count goes down when it is dropped.
#[derive(Debug)]
struct UidSlot {
    helper: Arc<Helper>,
    uid: u32,
}

impl UidSlot {
    fn take(helper: &Arc<Helper>, uid: u32) -> Option<Self> {
        let mut counts = helper
            .uid_in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let running = counts.entry(uid).or_insert(0);
        if uid != 0 && *running >= helper.config.quota_in_flight {
            return None;
        }
        *running += 1;
        Some(Self {
            helper: Arc::clone(helper),
            uid,
        })
    }
}

impl Drop for UidSlot {
    fn drop(&mut self) {
        let mut counts = self
            .helper
            .uid_in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(running) = counts.get_mut(&self.uid) {
            *running -= 1;
            if *running == 0 {
                counts.remove(&self.uid);
            }
        }
    }
}

impl Conn {
    fn lock_in_flight(&self) -> std::sync::MutexGuard<'_, HashMap<u64, CancellationToken>> {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn send_error(&self, error: WireError) {
        send(&self.out, &ServerMessage::Error(error)).await;
    }

    async fn send_response(&self, response: Response) {
        let id = response.id;
        let body = match encode_body(&ServerMessage::Response(response)) {
            Ok(body) if body.len() <= self.helper.config.max_frame as usize => body,
            Ok(body) => {
                let msg = format!(
                    "The response of {} bytes exceeds the frame limit of {} bytes",
                    body.len(),
                    self.helper.config.max_frame
                );
                tracing::warn!(id, "{msg}");
                let error = WireError::new(ErrorCode::Internal, msg);
                let response = ServerMessage::Response(Response {
                    id,
                    results: Vec::new(),
                    error: Some(error),
                });
                encode_body(&response).expect("a small response encodes")
            }
            Err(e) => {
                tracing::error!(id, error = %e, "Cannot encode a response");
                let error = WireError::new(ErrorCode::Internal, "Cannot encode the response");
                let response = ServerMessage::Response(Response {
                    id,
                    results: Vec::new(),
                    error: Some(error),
                });
                encode_body(&response).expect("a small response encodes")
            }
        };
        self.out.send(Bytes::from(body)).await;
    }
}

async fn send(out: &Outbox, msg: &ServerMessage) -> bool {
    match encode_body(msg) {
        Ok(body) => out.send(Bytes::from(body)).await,
        Err(e) => {
            tracing::error!(error = %e, "Cannot encode a message");
            false
        }
    }
}

type FrameSink = FramedWrite<Pin<Box<dyn AsyncWrite + Send>>, FrameCodec>;

/// The write half of a connection, shared by everything that answers on it. Each frame is
/// written and flushed by the task that produced it, without a hop through another task.
#[derive(Clone)]
pub struct Outbox {
    sink: Arc<tokio::sync::Mutex<FrameSink>>,
    broken: Arc<AtomicBool>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl Outbox {
    fn new<W: AsyncWrite + Send + 'static>(writer: W, max_frame: u32) -> Self {
        let writer: Pin<Box<dyn AsyncWrite + Send>> = Box::pin(writer);
        let sink = FramedWrite::new(writer, FrameCodec::new(max_frame));
        Self {
            sink: Arc::new(tokio::sync::Mutex::new(sink)),
            broken: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Writes one frame body. Returns false if the client is gone (a write failed or took
    /// longer than [`WRITE_TIMEOUT`]); later frames are then dropped at once.
    pub async fn send(&self, body: Bytes) -> bool {
        if self.broken.load(Ordering::Relaxed) {
            return false;
        }
        let mut sink = self.sink.lock().await;
        let ok = matches!(
            tokio::time::timeout(WRITE_TIMEOUT, sink.send(body)).await,
            Ok(Ok(()))
        );
        if !ok {
            tracing::debug!("Writing to the client failed or timed out; dropping its answers");
            self.broken.store(true, Ordering::Relaxed);
        }
        ok
    }

    async fn close(&self) {
        if !self.broken.load(Ordering::Relaxed) {
            let mut sink = self.sink.lock().await;
            let _ = tokio::time::timeout(WRITE_TIMEOUT, sink.close()).await;
        }
    }
}

fn log_outcome(response: &Response, elapsed: Duration) {
    let us = elapsed.as_micros() as u64;
    match &response.error {
        None => tracing::debug!(us, "Request done"),
        Some(e) if matches!(e.code, ErrorCode::Internal | ErrorCode::Kernel) => {
            tracing::warn!(us, code = %e.code, op_index = ?e.op_index, "Request failed: {}", e.message);
        }
        // A client's own mistake is the client's to see: logged at debug, so a member
        // sending failing requests in a loop cannot fill the journal.
        Some(e) => {
            tracing::debug!(us, code = %e.code, op_index = ?e.op_index, "Request failed: {}", e.message)
        }
    }
}

/// "ns_create×3,ping": the operations of a request, for its log span.
fn summarize(ops: &[Op]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < ops.len() {
        let name = ops[i].name();
        let run = ops[i..].iter().take_while(|op| op.name() == name).count();
        if !out.is_empty() {
            out.push(',');
        }
        if out.len() > 200 {
            out.push('…');
            break;
        }
        out.push_str(name);
        if run > 1 {
            out.push_str(&format!("×{run}"));
        }
        i += run;
    }
    out
}

/// A client-supplied string made safe for a log line.
fn printable(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tsim_protocol::ops::{NsList, Ping};

    #[test]
    fn summaries() {
        let ping = Op::Ping(Ping::default());
        let ops = vec![ping.clone(), ping.clone(), Op::NsList(NsList {}), ping];
        assert_eq!(summarize(&ops), "ping×2,ns_list,ping");
        assert_eq!(summarize(&[]), "");
        assert_eq!(printable("a\nb\u{7}"), "a?b?");
    }
}
