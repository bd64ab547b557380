//! Accepting connections: the connection limit, peer credentials, idle exit and graceful
//! shutdown. The listener and the shutdown signal come from outside, so this does not care
//! whether the socket was bound here or passed by systemd.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UnixListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tsim_protocol::{ErrorCode, WireError};

use crate::managed::context::Helper;
use crate::serve::conn::{self, Lifecycle};

/// Serves `listener` until `shutdown` completes (or the idle timeout fires), then stops
/// reading, lets running requests finish within the grace period, cancels the rest, and
/// returns once every connection is closed.
pub async fn run(listener: UnixListener, shutdown: impl Future<Output = ()>, helper: Arc<Helper>) {
    let life = Lifecycle {
        stop: CancellationToken::new(),
        abort: CancellationToken::new(),
    };
    let tracker = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(helper.config.max_connections as usize));
    let users: UserCounts = Arc::new(Mutex::new(HashMap::new()));
    let activity = Arc::new(Mutex::new(Instant::now()));
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => {
                tracing::info!("Shutting down");
                break;
            }
            () = idle(&helper, &activity) => {
                tracing::info!("No connections for {} s; exiting", helper.config.idle_exit.unwrap_or(0));
                break;
            }
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => accept(stream, &helper, &slots, &users, &tracker, &life, &activity),
            Err(e) => {
                tracing::warn!(error = %e, "Cannot accept a connection");
                // Out of descriptors or memory: give the system a moment instead of spinning.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    drop(listener);
    drain(
        tracker,
        &life,
        Duration::from_secs(helper.config.shutdown_grace),
    )
    .await;
}

/// Serves one client over stdin and stdout until it closes or `shutdown` completes.
pub async fn serve_stdio(
    helper: Arc<Helper>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let peer = helper.authz.peer_of_stdio()?;
    let life = Lifecycle {
        stop: CancellationToken::new(),
        abort: CancellationToken::new(),
    };
    let tracker = TaskTracker::new();
    let grace = Duration::from_secs(helper.config.shutdown_grace);
    helper.counters.connections.fetch_add(1, Ordering::Relaxed);
    let serving = tracker.spawn(conn::serve(
        tokio::io::stdin(),
        tokio::io::stdout(),
        peer,
        helper,
        life.clone(),
    ));
    tokio::pin!(shutdown);
    tokio::select! {
        _ = serving => {}
        () = &mut shutdown => tracing::info!("Shutting down"),
    }
    drain(tracker, &life, grace).await;
    Ok(())
}

fn accept(
    stream: tokio::net::UnixStream,
    helper: &Arc<Helper>,
    slots: &Arc<Semaphore>,
    users: &UserCounts,
    tracker: &TaskTracker,
    life: &Lifecycle,
    activity: &Arc<Mutex<Instant>>,
) {
    let peer = match helper.authz.peer_of_socket(&stream) {
        Ok(peer) => peer,
        Err(e) => {
            tracing::warn!(error = %e, "Cannot read a connection's peer credentials; closing it");
            return;
        }
    };
    let max_frame = helper.config.max_frame;
    let slot = match admit(helper, slots, users, &peer) {
        Ok(slot) => slot,
        Err((code, message)) => {
            tracing::warn!(
                uid = peer.uid,
                pid = peer.pid,
                "Refused a connection: {message}"
            );
            let (_, writer) = stream.into_split();
            tracker.spawn(conn::refuse(
                writer,
                WireError::new(code, message),
                max_frame,
            ));
            return;
        }
    };
    helper.counters.connections.fetch_add(1, Ordering::Relaxed);
    let (helper, life, activity) = (Arc::clone(helper), life.clone(), Arc::clone(activity));
    tracker.spawn(async move {
        let (reader, writer) = stream.into_split();
        conn::serve(reader, writer, peer, Arc::clone(&helper), life).await;
        helper.counters.connections.fetch_sub(1, Ordering::Relaxed);
        *activity.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        drop(slot);
    });
}

/// Connections open per uid (of peers that are neither root nor admin).
type UserCounts = Arc<Mutex<HashMap<u32, u32>>>;

/// A served connection's place: one of `--max-connections`, and for a peer that is neither
/// root nor admin, one of its uid's `--quota-connections`.
#[derive(Debug)]
struct Slot {
    _permit: OwnedSemaphorePermit,
    user: Option<(u32, UserCounts)>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some((uid, users)) = &self.user {
            let mut users = users.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = users.get_mut(uid) {
                *n -= 1;
                if *n == 0 {
                    users.remove(uid);
                }
            }
        }
    }
}

/// Decides whether `peer` may have one more connection. Root and the admin group may take
/// any free slot; everyone else (members, and peers about to be refused as unauthorized)
/// leaves `--reserved-connections` free and stays within its uid's `--quota-connections`.
fn admit(
    helper: &Helper,
    slots: &Arc<Semaphore>,
    users: &UserCounts,
    peer: &crate::base::auth::Peer,
) -> Result<Slot, (ErrorCode, String)> {
    let config = &helper.config;
    let privileged = peer.uid == 0 || (peer.authorized && peer.admin);
    let busy = || {
        (
            ErrorCode::Busy,
            format!(
                "The helper serves at most {} connections",
                config.max_connections
            ),
        )
    };
    if privileged {
        let permit = Arc::clone(slots).try_acquire_owned().map_err(|_| busy())?;
        return Ok(Slot {
            _permit: permit,
            user: None,
        });
    }
    let mut counts = users.lock().unwrap_or_else(|p| p.into_inner());
    let open = counts.get(&peer.uid).copied().unwrap_or(0);
    if open >= config.quota_connections {
        return Err((
            ErrorCode::QuotaExceeded,
            format!(
                "uid {} has {open} connections open, its quota (--quota-connections {})",
                peer.uid, config.quota_connections
            ),
        ));
    }
    if slots.available_permits() <= config.reserved_connections as usize {
        return Err(busy());
    }
    let permit = Arc::clone(slots).try_acquire_owned().map_err(|_| busy())?;
    counts.insert(peer.uid, open + 1);
    Ok(Slot {
        _permit: permit,
        user: Some((peer.uid, Arc::clone(users))),
    })
}

/// Completes once the helper has had no connection for `--idle-exit` seconds and nothing
/// else needs it running; never without `--idle-exit`.
async fn idle(helper: &Helper, activity: &Mutex<Instant>) {
    let Some(secs) = helper.config.idle_exit else {
        return std::future::pending().await;
    };
    let limit = Duration::from_secs(secs);
    loop {
        tokio::time::sleep((limit / 4).min(Duration::from_secs(1))).await;
        let quiet = activity.lock().unwrap_or_else(|p| p.into_inner()).elapsed();
        let (connections, in_flight, _) = helper.counter_values();
        if connections == 0 && in_flight == 0 && quiet >= limit && !helper.needs_process() {
            return;
        }
    }
}

async fn drain(tracker: TaskTracker, life: &Lifecycle, grace: Duration) {
    life.stop.cancel();
    tracker.close();
    tokio::select! {
        () = tracker.wait() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!("Cancelling the requests still running after {} s", grace.as_secs());
            life.abort.cancel();
            tracker.wait().await;
        }
    }
}
