//! Echo services served by the helper itself: a TCP or UDP socket opened inside a managed
//! namespace (on a dedicated thread that entered it), then served on the runtime. No child
//! processes.
//!
//! Invariants:
//! * A service is in the map exactly while its socket is open and served; the map is
//!   written to `services.json` after every change, so a restarted helper binds the same
//!   services again (in the same namespaces, by inode).
//! * A service never outlives its namespace: deleting the namespace stops it (an open socket
//!   would keep a deleted namespace alive).
//! * Each service has its limits: open connections, bytes echoed per connection, and an idle
//!   timeout, so one client cannot hold the helper's memory or a service's slots forever.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tsim_protocol::NsName;
use tsim_protocol::ops::{SvcAddr, SvcInfo, Transport};

use crate::base::error::{HelperError, chain};
use crate::managed::context::Helper;
use crate::managed::state::SvcRecord;

/// A service's identity: namespace, address, port, protocol.
pub type SvcKey = (NsName, IpAddr, u16, Transport);

/// The key of a record.
pub fn key_of(record: &SvcRecord) -> SvcKey {
    (record.ns.clone(), record.ip.0, record.port, record.proto)
}

/// The limits every service has.
#[derive(Debug, Clone, Copy)]
pub struct SvcLimits {
    /// Services per uid (root is exempt).
    pub quota: usize,
    /// TCP connections open at once; more are closed as soon as they are accepted.
    pub max_connections: u64,
    /// Bytes echoed per TCP connection (then it is closed), and per UDP datagram.
    pub max_bytes: u64,
    /// A TCP connection with nothing to read or write for this long is closed.
    pub idle: Duration,
}

#[derive(Debug, Default)]
struct Stats {
    open: AtomicU64,
    served: AtomicU64,
    bytes: AtomicU64,
    refused: AtomicU64,
}

#[derive(Debug)]
struct Running {
    record: SvcRecord,
    stop: CancellationToken,
    stats: Arc<Stats>,
}

/// The running services.
#[derive(Debug)]
pub struct Services {
    running: Mutex<BTreeMap<SvcKey, Running>>,
    /// Services being started (bound, not yet in `running`), with their owner: counted
    /// against the quota and taken under the `running` lock, so that concurrent starts
    /// cannot all pass the quota check before any of them is inserted.
    starting: Mutex<BTreeMap<SvcKey, u32>>,
    limits: SvcLimits,
}

/// A service's place among those being started; given up when dropped.
struct Starting<'a> {
    services: &'a Services,
    key: SvcKey,
}

impl Drop for Starting<'_> {
    fn drop(&mut self) {
        self.services
            .starting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
    }
}

enum Bound {
    Tcp(std::net::TcpListener),
    Udp(std::net::UdpSocket),
}

fn bind(proto: Transport, addr: SocketAddr) -> io::Result<Bound> {
    let bound = match proto {
        Transport::Tcp => {
            let l = std::net::TcpListener::bind(addr)?;
            l.set_nonblocking(true)?;
            Bound::Tcp(l)
        }
        Transport::Udp => {
            let s = std::net::UdpSocket::bind(addr)?;
            s.set_nonblocking(true)?;
            Bound::Udp(s)
        }
    };
    Ok(bound)
}

impl Services {
    /// No services yet.
    pub fn new(limits: SvcLimits) -> Self {
        Self {
            running: Mutex::new(BTreeMap::new()),
            starting: Mutex::new(BTreeMap::new()),
            limits,
        }
    }

    /// How many services run.
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<SvcKey, Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The running services, by key.
    pub fn list(&self) -> Vec<SvcInfo> {
        self.lock()
            .values()
            .map(|r| SvcInfo {
                addr: SvcAddr {
                    ns: r.record.ns.clone(),
                    ip: r.record.ip,
                    port: r.record.port,
                    proto: r.record.proto,
                },
                owner_uid: r.record.owner_uid,
                tag: r.record.tag.clone(),
                created_ms: r.record.created_ms,
                open: r.stats.open.load(Ordering::Relaxed),
                served: r.stats.served.load(Ordering::Relaxed),
                bytes: r.stats.bytes.load(Ordering::Relaxed),
                refused: r.stats.refused.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// The record of the service at `key`, if it runs.
    pub fn get(&self, key: &SvcKey) -> Option<SvcRecord> {
        self.lock().get(key).map(|r| r.record.clone())
    }

    /// Opens the service's socket inside its namespace and serves it; records it.
    pub async fn start(&self, helper: &Helper, record: SvcRecord) -> Result<(), HelperError> {
        let key = key_of(&record);
        let what = || {
            format!(
                "{} {}:{} in namespace {}",
                record.proto, record.ip, record.port, record.ns
            )
        };
        let place = {
            let running = self.lock();
            let mut starting = self.starting.lock().unwrap_or_else(|p| p.into_inner());
            if running.contains_key(&key) || starting.contains_key(&key) {
                return Err(HelperError::AlreadyExists(format!(
                    "A service already listens on {}",
                    what()
                )));
            }
            let uid = record.owner_uid;
            let owned = running
                .values()
                .filter(|r| r.record.owner_uid == uid)
                .count()
                + starting.values().filter(|u| **u == uid).count();
            if uid != 0 && owned >= self.limits.quota {
                return Err(HelperError::QuotaExceeded(format!(
                    "uid {uid} has {owned} services, its quota"
                )));
            }
            starting.insert(key.clone(), uid);
            Starting {
                services: self,
                key: key.clone(),
            }
        };
        let addr = SocketAddr::new(record.ip.0, record.port);
        let proto = record.proto;
        let bound = helper
            .netns
            .run_in(&record.ns, record.ino, move || bind(proto, addr))
            .await?;
        let bound = bound.map_err(|e| match e.kind() {
            io::ErrorKind::AddrInUse => {
                HelperError::AlreadyExists(format!("The address {} is in use", what()))
            }
            io::ErrorKind::AddrNotAvailable => HelperError::InvalidArgument(format!(
                "{} is not an address of namespace {}",
                record.ip, record.ns
            )),
            _ => HelperError::Kernel(format!("Cannot listen on {}: {e}", what())),
        })?;
        let stop = CancellationToken::new();
        let stats = Arc::new(Stats::default());
        let limits = self.limits;
        // Into the runtime's reactor here, on the runtime.
        match bound {
            Bound::Tcp(l) => {
                let l = tokio::net::TcpListener::from_std(l)
                    .map_err(|e| HelperError::Internal(format!("Cannot serve {}: {e}", what())))?;
                tokio::spawn(serve_tcp(l, stop.clone(), stats.clone(), limits));
            }
            Bound::Udp(s) => {
                let s = tokio::net::UdpSocket::from_std(s)
                    .map_err(|e| HelperError::Internal(format!("Cannot serve {}: {e}", what())))?;
                tokio::spawn(serve_udp(s, stop.clone(), stats.clone(), limits));
            }
        }
        let (ns, ino) = (record.ns.clone(), record.ino);
        let mut running = self.lock();
        running.insert(
            key.clone(),
            Running {
                record,
                stop,
                stats,
            },
        );
        drop(place);
        self.persist(helper, &running);
        drop(running);
        // A deletion of the namespace that committed while the socket was being bound found
        // no service to stop; the socket would keep the deleted namespace alive. A deletion
        // still running finds it at its commit.
        let still_there = helper
            .registry
            .lookup_for_undo(&ns)
            .is_some_and(|entry| entry.ino == ino);
        if !still_there {
            self.stop(helper, &key);
            return Err(HelperError::NotFound(format!(
                "Namespace {ns} was deleted while the service was being started"
            )));
        }
        Ok(())
    }

    /// Stops the service at `key` (its connections are closed) and forgets it.
    pub fn stop(&self, helper: &Helper, key: &SvcKey) -> Option<SvcRecord> {
        let mut running = self.lock();
        let gone = running.remove(key)?;
        gone.stop.cancel();
        self.persist(helper, &running);
        Some(gone.record)
    }

    /// Stops every service in namespace `ns` (it is being deleted).
    pub fn stop_ns(&self, helper: &Helper, ns: &NsName) -> usize {
        let mut running = self.lock();
        let keys: Vec<SvcKey> = running.keys().filter(|k| &k.0 == ns).cloned().collect();
        for key in &keys {
            if let Some(gone) = running.remove(key) {
                gone.stop.cancel();
            }
        }
        if !keys.is_empty() {
            self.persist(helper, &running);
        }
        keys.len()
    }

    /// Binds the recorded services again after a restart: those whose namespace is still
    /// the same managed namespace. The others are dropped, with a log line each.
    pub async fn restore(&self, helper: &Helper) {
        let records = match helper.registry.store().load_services() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %chain(&e), "Cannot read the services' record; none are restored");
                return;
            }
        };
        for record in records {
            let same_ns = helper
                .registry
                .lookup(&record.ns, 0)
                .is_ok_and(|e| e.ino == record.ino);
            if !same_ns {
                tracing::warn!(ns = %record.ns, port = record.port, proto = %record.proto, "Service dropped: its namespace is gone");
                continue;
            }
            let (ns, port, proto) = (record.ns.clone(), record.port, record.proto);
            match self.start(helper, record).await {
                Ok(()) => {
                    tracing::info!(ns = %ns, port, proto = %proto, "Service bound again")
                }
                Err(e) => {
                    tracing::warn!(ns = %ns, port, proto = %proto, error = %chain(&e), "Service dropped: cannot bind it again")
                }
            }
        }
        // Whatever was dropped goes from the record too.
        let running = self.lock();
        self.persist(helper, &running);
    }

    fn persist(&self, helper: &Helper, running: &BTreeMap<SvcKey, Running>) {
        let records: Vec<SvcRecord> = running.values().map(|r| r.record.clone()).collect();
        if let Err(e) = helper.registry.store().save_services(&records) {
            // The services run; only a restart would not find them again.
            tracing::error!(error = %chain(&e), "Cannot record the services");
        }
    }
}

async fn serve_tcp(
    listener: tokio::net::TcpListener,
    stop: CancellationToken,
    stats: Arc<Stats>,
    limits: SvcLimits,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                if stats.open.load(Ordering::Relaxed) >= limits.max_connections {
                    stats.refused.fetch_add(1, Ordering::Relaxed);
                    drop(stream);
                    continue;
                }
                stats.open.fetch_add(1, Ordering::Relaxed);
                stats.served.fetch_add(1, Ordering::Relaxed);
                let (stop, stats) = (stop.clone(), stats.clone());
                tokio::spawn(async move {
                    echo(stream, &stop, &stats, limits).await;
                    stats.open.fetch_sub(1, Ordering::Relaxed);
                });
            }
            // Out of descriptors, or a connection reset before it was accepted: go on.
            Err(e) => {
                tracing::debug!(error = %e, "Accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Echoes one connection until its peer closes it, the byte limit is reached, it idles,
/// or the service stops.
async fn echo(
    mut stream: tokio::net::TcpStream,
    stop: &CancellationToken,
    stats: &Stats,
    limits: SvcLimits,
) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut left = limits.max_bytes;
    while left > 0 {
        let read = tokio::select! {
            _ = stop.cancelled() => return,
            read = tokio::time::timeout(limits.idle, stream.read(&mut buf)) => read,
        };
        let n = match read {
            Ok(Ok(n)) if n > 0 => n,
            _ => return,
        };
        let n = n.min(usize::try_from(left).unwrap_or(usize::MAX));
        let write = tokio::select! {
            _ = stop.cancelled() => return,
            write = tokio::time::timeout(limits.idle, stream.write_all(&buf[..n])) => write,
        };
        if !matches!(write, Ok(Ok(()))) {
            return;
        }
        left -= n as u64;
        stats.bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
}

async fn serve_udp(
    socket: tokio::net::UdpSocket,
    stop: CancellationToken,
    stats: Arc<Stats>,
    limits: SvcLimits,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let max = usize::try_from(limits.max_bytes).unwrap_or(usize::MAX);
    loop {
        let received = tokio::select! {
            _ = stop.cancelled() => return,
            received = socket.recv_from(&mut buf) => received,
        };
        let Ok((n, peer)) = received else {
            // An ICMP error for an earlier reply: nothing to do.
            continue;
        };
        let n = n.min(max);
        if socket.send_to(&buf[..n], peer).await.is_ok() {
            stats.served.fetch_add(1, Ordering::Relaxed);
            stats.bytes.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
}
