//! The `tsim-helper` daemon's start, called by `main.rs`: options, logging, listener,
//! capabilities, thread pools, runtime, recovery, serving.

use std::process::ExitCode;
use std::time::Duration;

use crate::base::auth::{Authorizer, GroupSpec};
use crate::base::config::Config;
use crate::base::logging;
use crate::kernel::jail::{Jail, LandlockState};
use crate::kernel::tools::Tools;
use crate::kernel::{caps, netlink, netns};
use crate::managed::context::Helper;
use crate::managed::state::StateStore;
use crate::serve::listener::{self, Origin};
use crate::serve::server;
use anyhow::Context;
use clap::Parser;

/// Runs the daemon with the process's arguments, to its exit status.
pub fn main() -> ExitCode {
    #[cfg(debug_assertions)]
    if std::env::args().nth(1).as_deref() == Some("--test-jail-probe") {
        let args: Vec<String> = std::env::args().skip(2).collect();
        return ExitCode::from(crate::kernel::jail::probe(&args));
    }
    let config = Config::parse();
    logging::init(config.log);
    #[cfg(debug_assertions)]
    if let Some(command) = &config.test_jail_run {
        let program = std::path::Path::new(&command[0]);
        return match crate::kernel::jail::test_run(program, &command[1..], !config.test_no_jail) {
            Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(255)),
            Err(e) => {
                tracing::error!("{e}");
                ExitCode::from(125)
            }
        };
    }
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(config: Config) -> anyhow::Result<()> {
    // Everything up to the capability drop runs before any other thread exists: capabilities
    // are per thread, and taking the activated socket changes the environment.
    let activated = take_activated_socket()?;
    let authz = authorizer(&config)?;
    let (std_listener, origin) = if config.stdio {
        (None, None)
    } else if let Some(l) = activated {
        (Some(l), Some(Origin::Activated))
    } else {
        let gid = authz.group.as_ref().and_then(|g| g.gid);
        let (l, origin) = listener::bind(&config.socket, config.socket_mode, gid)?;
        (Some(l), Some(origin))
    };
    let store = StateStore::open(&config.state_dir)?;
    // The applied network's record is read now, so a damaged or planted one stops the start.
    store.net()?;
    raise_fd_limit();
    let report = caps::restrict()?;
    tracing::info!(effective = %report.effective.join(","), bounding = %report.bounding.join(","), "Capabilities restricted");
    if !report.missing.is_empty() {
        tracing::warn!(missing = %report.missing.join(","), "Started without some capabilities; operations that need them will fail");
    }

    // Every thread pool starts here, in the helper's own network namespace, and checks it.
    netns::record_home().context("Cannot read the helper's network namespace")?;
    netlink::start_threads().context("Cannot start the netlink threads")?;
    crate::serve::heavy::start().context("Cannot start the heavy thread")?;
    let tools = Tools::discover();
    let jail = tool_jail(&config, &tools)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("tsim-worker")
        .on_thread_start(netns::check_home_thread)
        .build()
        .context("Cannot start the async runtime")?;
    let result = runtime.block_on(async {
        let (helper, recovery) = Helper::start(config, authz, store, tokio::runtime::Handle::current(), (tools, jail))?;
        tracing::info!(
            adopted = recovery.adopted.len(),
            rolled_back = recovery.rolled_back.len(),
            dropped = recovery.dropped.len(),
            state_dir = %helper.config.state_dir.display(),
            "Registry recovered"
        );
        crate::ops::recover(&helper, &recovery).await;
        let signal = shutdown_signal()?;
        let shutdown = async {
            signal.await;
            notify_stopping();
        };
        match std_listener {
            Some(l) => {
                l.set_nonblocking(true)?;
                let l = tokio::net::UnixListener::from_std(l)?;
                match &origin {
                    Some(Origin::Bound { path, .. }) => tracing::info!(socket = %path.display(), version = env!("CARGO_PKG_VERSION"), "Listening"),
                    _ => tracing::info!(version = env!("CARGO_PKG_VERSION"), "Listening on the socket passed by systemd"),
                }
                notify_ready();
                server::run(l, shutdown, helper).await;
            }
            None => {
                notify_ready();
                server::serve_stdio(helper, shutdown).await?;
            }
        }
        anyhow::Ok(())
    });
    // A pending read of stdin (in --stdio mode) would otherwise hold the runtime open.
    runtime.shutdown_timeout(Duration::from_secs(1));
    if let Some(origin) = &origin {
        listener::remove_bound(origin);
    }
    result
}

/// Builds the tools' jail (and tries it once per tool), and says what it holds.
fn tool_jail(config: &Config, tools: &Tools) -> anyhow::Result<Jail> {
    #[cfg(debug_assertions)]
    if config.test_no_jail {
        tracing::warn!("The tools run without their jail (--test-no-jail)");
        return Ok(Jail::off());
    }
    let jail = Jail::prepare(tools).context("Cannot set up the jail the firewall tools run in")?;
    match jail.landlock() {
        LandlockState::Enforced(_) => {
            tracing::info!(jail = %jail.describe(), "The tools' jail is ready")
        }
        LandlockState::Unsupported(_) if config.allow_unjailed_tools => tracing::warn!(
            jail = %jail.describe(),
            "The kernel lacks Landlock; firewall payloads run anyway (--allow-unjailed-tools)"
        ),
        LandlockState::Unsupported(_) => tracing::warn!(
            jail = %jail.describe(),
            "The kernel lacks Landlock; firewall payloads will be refused (see --allow-unjailed-tools)"
        ),
    }
    Ok(jail)
}

/// Takes the socket passed by systemd, if any. Call before any other thread exists.
#[allow(
    unsafe_code,
    reason = "taking systemd's socket unsets LISTEN_* in the environment"
)]
fn take_activated_socket()
-> Result<Option<std::os::unix::net::UnixListener>, listener::ListenerError> {
    // SAFETY: called first thing in `run`, before any other thread is started (logging set-up
    // starts none).
    unsafe { listener::activated() }
}

fn authorizer(config: &Config) -> anyhow::Result<Authorizer> {
    let resolve = |spec: &str| {
        GroupSpec::resolve(spec).with_context(|| format!("Cannot look up group {spec}"))
    };
    let group = resolve(&config.group)?;
    if group.gid.is_none() {
        tracing::warn!(group = %config.group, "The group does not exist; only root will be served");
    }
    let admin_group = config.admin_group.as_deref().map(resolve).transpose()?;
    if let Some(GroupSpec { spec, gid: None }) = &admin_group {
        tracing::warn!(group = %spec, "The admin group does not exist; only root is admin");
    }
    Ok(Authorizer {
        group: Some(group),
        admin_group,
    })
}

/// Completes on SIGTERM or SIGINT.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

/// Tells systemd the helper is ready (`Type=notify`); nothing happens outside systemd.
fn notify_ready() {
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::warn!(error = %e, "Cannot notify systemd of readiness");
    }
}

/// Tells systemd the helper is shutting down (running requests may still finish).
fn notify_stopping() {
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Stopping]) {
        tracing::warn!(error = %e, "Cannot notify systemd of the shutdown");
    }
}

/// Each managed namespace keeps a netlink socket open: raise the soft descriptor limit to
/// the hard one.
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!(error = %e, "Cannot raise the open-file limit");
            }
        }
    }
}
