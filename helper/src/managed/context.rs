//! The helper's shared state, handed to every connection and operation.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::runtime::Handle as RuntimeHandle;
use tsim_protocol::Limits;

use crate::base::auth::Authorizer;
use crate::base::config::Config;
use crate::base::metrics::Metrics;
use crate::kernel::jail::Jail;
use crate::kernel::netns::Netns;
use crate::kernel::tools::Tools;
use crate::managed::hosts::Gateways;
use crate::managed::registry::{Recovery, Registry};
use crate::managed::state::{StateError, StateStore};

/// Everything the connections and operations share.
#[derive(Debug)]
pub struct Helper {
    /// The command-line configuration.
    pub config: Config,
    /// Who is served.
    pub authz: Authorizer,
    /// The managed namespaces.
    pub registry: Registry,
    /// Namespace creation and removal.
    pub netns: Netns,
    /// Per-operation statistics.
    pub metrics: Metrics,
    /// Live counters.
    pub counters: Counters,
    /// The external programs found at start.
    pub tools: Tools,
    /// The jail they run in.
    pub jail: Jail,
    /// The gateways added to routers for hosts.
    pub gateways: Gateways,
    /// The echo services.
    pub services: crate::managed::services::Services,
    /// The routers' firewall logs.
    pub logs: crate::managed::logs::Logs,
    /// Requests running per uid, over all connections (for `--quota-in-flight`).
    pub uid_in_flight: std::sync::Mutex<std::collections::HashMap<u32, u32>>,
    /// Whether the kernel has the dummy driver: 0 not known yet, 1 yes, 2 no.
    pub dummy_driver: AtomicU8,
    /// Wakes the pool's filler (see `ops::pool`).
    pub pool_wanted: tokio::sync::Notify,
    /// The next number for a pooled namespace's name.
    pub pool_serial: AtomicU64,
    /// When each uid's namespaces were last all counted for `--quota-objects`.
    pub budget: crate::pure::budget::Remeasured,
    next_txn: AtomicU64,
    started: Instant,
}

/// Counters shown by `status`.
#[derive(Debug, Default)]
pub struct Counters {
    /// Open connections.
    pub connections: AtomicU32,
    /// Requests running.
    pub in_flight: AtomicU32,
    /// Requests answered since start.
    pub requests: AtomicU64,
}

impl Helper {
    /// Why packets cannot be traced here (`status`'s `explain_unsupported`), if they
    /// cannot: `--no-trace`, or iptables missing or its legacy variant.
    pub fn trace_unsupported(&self) -> Option<String> {
        if self.config.no_trace {
            return Some("the helper runs with --no-trace".into());
        }
        self.tools.trace_unsupported()
    }

    /// Builds the shared state, recovering the registry from `store`, with the `tools`
    /// found at start and their `jail`. Runs blocking file system work: call it before
    /// serving.
    pub fn start(
        config: Config,
        authz: Authorizer,
        store: StateStore,
        runtime: RuntimeHandle,
        (tools, jail): (Tools, Jail),
    ) -> Result<(Arc<Self>, Recovery), StateError> {
        Self::start_on(config, authz, store, Netns::new(runtime), (tools, jail))
    }

    /// [`Helper::start`] on the namespaces of `netns`.
    fn start_on(
        config: Config,
        authz: Authorizer,
        store: StateStore,
        netns: Netns,
        (tools, jail): (Tools, Jail),
    ) -> Result<(Arc<Self>, Recovery), StateError> {
        let svc_limits = crate::managed::services::SvcLimits {
            quota: config.quota_services as usize,
            max_connections: config.svc_max_connections,
            max_bytes: config.svc_max_bytes,
            idle: std::time::Duration::from_secs(config.svc_idle_secs),
        };
        let (registry, recovery) = Registry::recover(store, &netns)?;
        registry.set_quotas(crate::managed::registry::Quotas {
            namespaces: config.quota_namespaces as usize,
            hosts: config.quota_hosts as usize,
        });
        let helper = Helper {
            config,
            authz,
            registry,
            netns,
            metrics: Metrics::default(),
            counters: Counters::default(),
            tools,
            jail,
            gateways: Gateways::default(),
            logs: crate::managed::logs::Logs::default(),
            services: crate::managed::services::Services::new(svc_limits),
            uid_in_flight: std::sync::Mutex::new(std::collections::HashMap::new()),
            dummy_driver: AtomicU8::new(0),
            pool_wanted: tokio::sync::Notify::new(),
            pool_serial: AtomicU64::new(0),
            budget: Default::default(),
            next_txn: AtomicU64::new(1),
            started: Instant::now(),
        };
        Ok((Arc::new(helper), recovery))
    }

    /// A fresh request id for the registry (not the client's id, which is per connection).
    pub fn next_txn(&self) -> u64 {
        self.next_txn.fetch_add(1, Ordering::Relaxed)
    }

    /// The limits announced in `welcome`.
    pub fn limits(&self) -> Limits {
        Limits {
            max_frame: self.config.max_frame,
            max_ops: self.config.max_ops,
            max_in_flight: self.config.max_in_flight,
            max_connections: self.config.max_connections,
        }
    }

    /// Milliseconds since the helper started.
    pub fn uptime_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether firewall payloads pass the screen of [`crate::pure::payload`] first: always, but in
    /// a debug build run with `--test-unscreened-payloads`.
    pub fn screens_payloads(&self) -> bool {
        #[cfg(debug_assertions)]
        if self.config.test_unscreened_payloads {
            return false;
        }
        true
    }

    /// The firewall tools as this helper runs them.
    pub fn firewall(&self) -> crate::kernel::firewall::Firewall<'_> {
        crate::kernel::firewall::Firewall {
            tools: &self.tools,
            jail: &self.jail,
            netns: &self.netns,
            screen: self.screens_payloads(),
            allow_unjailed: self.config.allow_unjailed_tools,
        }
    }

    /// Whether something needs the process alive even without connections: the echo
    /// services (their sockets live in the process). Namespaces do not (they are pinned by
    /// their mounts).
    pub fn needs_process(&self) -> bool {
        self.services.count() > 0
    }

    /// Current counters as plain numbers: (connections, in flight, requests).
    pub fn counter_values(&self) -> (u32, u32, u64) {
        (
            self.counters.connections.load(Ordering::Relaxed),
            self.counters.in_flight.load(Ordering::Relaxed),
            self.counters.requests.load(Ordering::Relaxed),
        )
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
impl Helper {
    /// A helper for unit tests, on the current runtime: its state in `dir`, no tools, no
    /// jail, and namespaces `names` (owned by uid `owner`, ready) living in the fake kernel
    /// `fake`.
    pub fn for_tests(
        dir: &std::path::Path,
        fake: &crate::kernel::fake::FakeKernel,
        names: &[tsim_protocol::NsName],
        owner: u32,
    ) -> Arc<Self> {
        use clap::Parser;
        let dir_arg = dir.to_str().expect("a UTF-8 temporary directory");
        let config = Config::try_parse_from(["tsim-helper", "--state-dir", dir_arg])
            .expect("the test's options parse");
        let store = StateStore::open(dir).expect("the test's state directory");
        let authz = Authorizer {
            group: None,
            admin_group: None,
        };
        let netns = Netns::in_fake(RuntimeHandle::current(), fake.clone());
        let (helper, _) =
            Helper::start_on(config, authz, store, netns, (Tools::none(), Jail::off()))
                .expect("a helper on an empty state directory");
        for name in names {
            let (ino, netlink) = fake.add_ns(name);
            let txn = helper.next_txn();
            helper
                .registry
                .reserve(name, owner, None, now_ms(), txn)
                .expect("a free name");
            helper
                .registry
                .created(name, ino, netlink, false)
                .expect("recorded");
            helper.registry.commit_created(name).expect("committed");
        }
        helper
    }
}
