//! The thread for heavy jobs: decoding a large frame, running a large request of immediate
//! operations. It runs at a lower priority (nice [`NICE`]) than the runtime workers, so that
//! while a member keeps it busy, a `ping` or a host change of anyone else preempts it at
//! once instead of sharing a core with it. One job at a time, in order (the callers hold
//! the one heavy permit of `conn`).
//!
//! Invariant: started in `main`, with the other thread pools, in the helper's own network
//! namespace (checked when it starts); a panicking job is caught and the thread goes on.

use std::sync::OnceLock;
use std::sync::mpsc;

/// The nice value of the heavy thread (the workers keep the helper's, 0 by default). A
/// thread's nice value can be raised without any capability, and not lowered again.
pub const NICE: i32 = 10;

type Job = Box<dyn FnOnce() + Send>;

static QUEUE: OnceLock<mpsc::Sender<Job>> = OnceLock::new();

/// Starts the heavy thread (once; later calls do nothing).
pub fn start() -> std::io::Result<()> {
    if QUEUE.get().is_some() {
        return Ok(());
    }
    let (tx, rx) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("tsim-heavy".into())
        .spawn(move || {
            crate::kernel::netns::check_home_thread();
            if let Err(e) = lower_priority() {
                tracing::warn!(error = %e, "Cannot lower the heavy thread's priority");
            }
            for job in rx {
                // The job reports its own outcome; a panic only loses that report.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            }
        })?;
    let _ = QUEUE.set(tx);
    Ok(())
}

/// Sets the calling thread's nice value to [`NICE`].
#[allow(unsafe_code, reason = "nix has no wrapper for setpriority")]
fn lower_priority() -> std::io::Result<()> {
    let tid = nix::unistd::gettid().as_raw();
    let tid = libc::id_t::try_from(tid).map_err(std::io::Error::other)?;
    // SAFETY: setpriority takes plain integers and has no memory effects; on Linux,
    // PRIO_PROCESS with a thread id sets that one thread's nice value.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, NICE) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Runs `f` on the heavy thread and waits for its result; `None` if the thread was never
/// started (a library user without `main`) or `f` panicked.
pub async fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let queue = QUEUE.get()?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    queue
        .send(Box::new(move || {
            let _ = tx.send(f());
        }))
        .ok()?;
    rx.await.ok()
}

/// Whether the heavy thread runs.
pub fn started() -> bool {
    QUEUE.get().is_some()
}
