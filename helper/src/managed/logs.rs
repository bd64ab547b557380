//! The routers' firewall logs (`net_log`): what their `LOG` rules, applied as `NFLOG` to
//! [`LOG_GROUP`], hand over, read by one task per router and kept in a ring per router.
//!
//! Invariants:
//! * A router's reader is started when a request that made or kept the router commits
//!   (`Effect::LogWanted`) and at start for the routers of the applied network; it is stopped
//!   when the router's deletion commits, because its socket would keep the namespace alive.
//! * A ring keeps the newest [`RING`] entries of its router; what it lets go is counted.
//! * Every entry has a helper-wide sequence number, increasing, so a reader follows the log
//!   by asking for what came after the last number it saw.

use std::collections::{HashMap, VecDeque};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::unix::AsyncFd;
use tsim_protocol::NsName;
use tsim_protocol::ops::LogEntry;
use tsim_protocol::topology::LOG_GROUP;

use crate::base::error::chain;
use crate::kernel::netlink::Netlink;
use crate::kernel::nflog;
use crate::managed::context::{Helper, now_ms};

/// Entries kept per router.
pub const RING: usize = 4096;

#[derive(Debug, Default)]
struct Ring {
    entries: VecDeque<LogEntry>,
}

#[derive(Debug)]
struct Reader {
    ino: u64,
    ring: Arc<Mutex<Ring>>,
    task: Option<tokio::task::AbortHandle>,
    unavailable: Option<String>,
}

impl Reader {
    /// Whether this reader reads namespace `ino` now: its task runs (one that stopped on
    /// an error, or a router whose log could not be opened, is tried again).
    fn serves(&self, ino: u64) -> bool {
        self.ino == ino && self.task.as_ref().is_some_and(|t| !t.is_finished())
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// The readers and their rings.
#[derive(Debug, Default)]
pub struct Logs {
    readers: Mutex<HashMap<NsName, Reader>>,
    seq: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
}

/// What `read` found.
#[derive(Debug, Default)]
pub struct Read {
    /// The entries, oldest first.
    pub entries: Vec<LogEntry>,
    /// The highest sequence number so far.
    pub last: u64,
    /// Entries let go since the start.
    pub dropped: u64,
    /// Routers whose log cannot be read, and why.
    pub unavailable: Vec<String>,
}

impl Logs {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<NsName, Reader>> {
        self.readers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts reading router `name` (namespace inode `ino`) unless it is read already. A
    /// kernel that cannot give the group is recorded (and logged), not an error.
    pub async fn start(&self, helper: &Helper, name: &NsName, ino: u64) {
        if self.lock().get(name).is_some_and(|r| r.serves(ino)) {
            return;
        }
        let opened = helper
            .netns
            .run_in(name, ino, || nflog::open(LOG_GROUP))
            .await;
        let ring = Arc::new(Mutex::new(Ring::default()));
        let mut reader = Reader {
            ino,
            ring: ring.clone(),
            task: None,
            unavailable: None,
        };
        let socket = match opened {
            Ok(Ok(fd)) => register(fd),
            Ok(Err(e)) => Err(format!("cannot read NFLOG group {LOG_GROUP}: {e}")),
            Err(e) => Err(format!("cannot enter the namespace: {e}")),
        };
        match socket {
            Ok(fd) => {
                let nl = crate::managed::hosts::router_netlink(helper, name)
                    .await
                    .ok();
                let task = tokio::spawn(read_loop(
                    fd,
                    name.clone(),
                    nl,
                    ring,
                    self.seq.clone(),
                    self.dropped.clone(),
                ));
                reader.task = Some(task.abort_handle());
            }
            Err(why) => {
                tracing::warn!(router = %name, reason = %why, "The router's firewall log cannot be read");
                reader.unavailable = Some(why);
            }
        }
        let mut readers = self.lock();
        if readers.get(name).is_some_and(|r| r.serves(ino)) {
            return; // Another start got there first; ours closes as it drops.
        }
        readers.insert(name.clone(), reader);
    }

    /// Stops reading router `name` and forgets its ring (its namespace is being deleted).
    pub fn stop(&self, name: &NsName) {
        self.lock().remove(name);
    }

    /// The entries of `router` (or of every router) after sequence number `after` and not
    /// older than `since_ms`, the newest `limit` of them, oldest first.
    pub fn read(&self, router: Option<&NsName>, after: u64, since_ms: u64, limit: usize) -> Read {
        let readers = self.lock();
        let mut out = Read {
            last: self.seq.load(Ordering::Acquire),
            dropped: self.dropped.load(Ordering::Relaxed),
            ..Read::default()
        };
        for (name, reader) in readers.iter() {
            if router.is_some_and(|r| r != name) {
                continue;
            }
            if let Some(why) = &reader.unavailable {
                out.unavailable.push(format!("{name}: {why}"));
            }
            let ring = reader.ring.lock().unwrap_or_else(|p| p.into_inner());
            // The newest `limit` of each ring are all that can be in the answer.
            out.entries.extend(
                ring.entries
                    .iter()
                    .rev()
                    .take_while(|e| e.seq > after)
                    .filter(|e| e.time_ms >= since_ms)
                    .take(limit)
                    .cloned(),
            );
        }
        out.entries.sort_by_key(|e| e.seq);
        let cut = out.entries.len().saturating_sub(limit);
        out.entries.drain(..cut);
        out.unavailable.sort();
        out
    }
}

#[allow(
    unsafe_code,
    reason = "registering a descriptor with the reactor is unsafe in tokio's API"
)]
fn register(fd: OwnedFd) -> Result<AsyncFd<OwnedFd>, String> {
    // SAFETY: an `OwnedFd` is open, refers to the same socket, and is closed only when
    // dropped, which happens with the `AsyncFd` that owns it.
    unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
        .map_err(|e| format!("cannot register the NFLOG socket: {}", e.into_parts().1))
}

#[allow(unsafe_code, reason = "recv(2) into a buffer of ours")]
fn recv(fd: &OwnedFd, buf: &mut [u8]) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: the buffer is valid for `buf.len()` bytes for the call.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    usize::try_from(n).map_err(|_| std::io::Error::last_os_error())
}

async fn read_loop(
    fd: AsyncFd<OwnedFd>,
    router: NsName,
    nl: Option<Netlink>,
    ring: Arc<Mutex<Ring>>,
    seq: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
) {
    let mut names: HashMap<u32, String> = HashMap::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let n = match fd.readable().await {
            Ok(mut guard) => match guard.try_io(|fd| recv(fd.get_ref(), &mut buf)) {
                Ok(Ok(n)) => n,
                Ok(Err(e)) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    // The kernel dropped packets the socket had no room for.
                    dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Ok(Err(e)) => {
                    tracing::warn!(router = %router, error = %e, "The router's firewall log stopped");
                    return;
                }
                Err(_would_block) => continue,
            },
            Err(e) => {
                tracing::warn!(router = %router, error = %e, "The router's firewall log stopped");
                return;
            }
        };
        let packets = nflog::parse(&buf[..n]);
        for p in &packets {
            for index in [p.indev, p.outdev].into_iter().flatten() {
                if let std::collections::hash_map::Entry::Vacant(slot) = names.entry(index) {
                    let name = match &nl {
                        Some(nl) => nl.link_name_of(index).await.unwrap_or_else(|e| {
                            tracing::debug!(router = %router, error = %chain(&e), "Cannot name an interface");
                            String::new()
                        }),
                        None => String::new(),
                    };
                    slot.insert(name);
                }
            }
        }
        let time_ms = now_ms();
        let mut ring = ring.lock().unwrap_or_else(|p| p.into_inner());
        for p in packets {
            let line = nflog::line(&p, &|i| names.get(&i).cloned().unwrap_or_default());
            ring.entries.push_back(LogEntry {
                seq: seq.fetch_add(1, Ordering::AcqRel) + 1,
                router: router.clone(),
                time_ms,
                prefix: p.prefix,
                line,
            });
            if ring.entries.len() > RING {
                ring.entries.pop_front();
                dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, router: &str, time_ms: u64) -> LogEntry {
        LogEntry {
            seq,
            router: router.parse().unwrap(),
            time_ms,
            prefix: "P: ".into(),
            line: format!("n={seq}"),
        }
    }

    fn logs_with(entries: &[(&str, u64, u64)]) -> Logs {
        let logs = Logs::default();
        for (router, seq, time) in entries {
            let name: NsName = router.parse().unwrap();
            let mut readers = logs.lock();
            let reader = readers.entry(name).or_insert_with(|| Reader {
                ino: 1,
                ring: Arc::default(),
                task: None,
                unavailable: None,
            });
            reader
                .ring
                .lock()
                .unwrap()
                .entries
                .push_back(entry(*seq, router, *time));
            logs.seq.fetch_max(*seq, Ordering::AcqRel);
        }
        logs
    }

    #[test]
    fn reads_merge_routers_in_order_and_filter_by_router_cursor_time_and_limit() {
        let logs = logs_with(&[("a", 1, 100), ("b", 2, 200), ("a", 3, 300), ("b", 4, 400)]);
        let seqs = |r: Read| r.entries.iter().map(|e| e.seq).collect::<Vec<_>>();
        assert_eq!(seqs(logs.read(None, 0, 0, 100)), [1, 2, 3, 4]);
        assert_eq!(logs.read(None, 0, 0, 100).last, 4);
        let a: NsName = "a".parse().unwrap();
        assert_eq!(seqs(logs.read(Some(&a), 0, 0, 100)), [1, 3]);
        assert_eq!(seqs(logs.read(None, 2, 0, 100)), [3, 4]);
        assert_eq!(seqs(logs.read(None, 0, 250, 100)), [3, 4]);
        // The newest `limit`, oldest first.
        assert_eq!(seqs(logs.read(None, 0, 0, 2)), [3, 4]);
        logs.stop(&a);
        assert_eq!(seqs(logs.read(None, 0, 0, 100)), [2, 4]);
    }

    #[test]
    fn a_router_that_cannot_be_read_says_why() {
        let logs = Logs::default();
        logs.lock().insert(
            "r".parse().unwrap(),
            Reader {
                ino: 1,
                ring: Arc::default(),
                task: None,
                unavailable: Some("no nfnetlink_log".into()),
            },
        );
        assert_eq!(
            logs.read(None, 0, 0, 10).unavailable,
            ["r: no nfnetlink_log"]
        );
    }
}
