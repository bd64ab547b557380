//! A blocking wrapper around [`Client`], for programs without an async runtime. It is safe to
//! share between threads; calls from several threads are pipelined on one connection.

use std::path::Path;

use tokio::runtime::Runtime;
use tsim_protocol::ops::{
    HostAdd, HostAdded, HostInfo, IptablesSave, NetApplied, NetApply, NetLog, NetLogged, NetShown,
    NetTornDown, NsInfo, PingResult, ProbeEcho, ProbeEchoResult, ProbePing, ProbeReach, ProbeTrace,
    ReachResult, StatusReport, SvcAddr, SvcInfo, SvcStart, TraceResult, Transport,
};
use tsim_protocol::{NsName, Op, OpResult, Tag, Welcome};

use crate::client::{Client, ClientError, PendingRequest, RequestOptions};

/// A blocking connection to the helper.
#[derive(Debug)]
pub struct BlockingClient {
    client: Client,
    // Declared last: dropped after the client, whose reader task lives on it.
    runtime: Runtime,
}

impl BlockingClient {
    /// Connects and does the handshake.
    pub fn connect(path: impl AsRef<Path>, name: &str) -> Result<Self, ClientError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("tsim-client")
            .enable_all()
            .build()
            .map_err(ClientError::Io)?;
        let client = runtime.block_on(Client::connect(path, name))?;
        Ok(Self { client, runtime })
    }

    /// The helper's `welcome`.
    pub fn welcome(&self) -> &Welcome {
        self.client.welcome()
    }

    /// Sends a request and waits for its results.
    pub fn request(
        &self,
        ops: Vec<Op>,
        options: RequestOptions,
    ) -> Result<Vec<OpResult>, ClientError> {
        self.runtime.block_on(self.client.request(ops, options))
    }

    /// Sends a request without waiting; see [`BlockingClient::wait`].
    pub fn start(
        &self,
        ops: Vec<Op>,
        options: RequestOptions,
    ) -> Result<PendingRequest, ClientError> {
        self.runtime.block_on(self.client.start(ops, options))
    }

    /// Waits for a request started with [`BlockingClient::start`].
    pub fn wait(&self, pending: PendingRequest) -> Result<Vec<OpResult>, ClientError> {
        self.runtime.block_on(pending.wait())
    }

    /// Asks the helper to cancel request `id`.
    pub fn cancel(&self, id: u64) -> Result<(), ClientError> {
        self.runtime.block_on(self.client.cancel(id))
    }

    /// Runs one operation.
    pub fn call(&self, op: Op) -> Result<OpResult, ClientError> {
        self.runtime.block_on(self.client.call(op))
    }

    /// A no-op round trip.
    pub fn ping(&self) -> Result<(), ClientError> {
        self.runtime.block_on(self.client.ping())
    }

    /// The helper's status.
    pub fn status(&self) -> Result<StatusReport, ClientError> {
        self.runtime.block_on(self.client.status())
    }

    /// Creates a managed namespace.
    pub fn ns_create(&self, name: NsName, tag: Option<Tag>) -> Result<(), ClientError> {
        self.runtime.block_on(self.client.ns_create(name, tag))
    }

    /// Deletes a managed namespace.
    pub fn ns_delete(&self, name: NsName) -> Result<(), ClientError> {
        self.runtime.block_on(self.client.ns_delete(name))
    }

    /// Lists the managed namespaces.
    pub fn ns_list(&self) -> Result<Vec<NsInfo>, ClientError> {
        self.runtime.block_on(self.client.ns_list())
    }

    /// Adds a host to the simulated network (or finds the same one there: `reused`).
    pub fn host_add(&self, args: HostAdd) -> Result<HostAdded, ClientError> {
        self.runtime.block_on(self.client.host_add(args))
    }

    /// Deletes a host.
    pub fn host_delete(&self, name: NsName) -> Result<(), ClientError> {
        self.runtime.block_on(self.client.host_delete(name))
    }

    /// Lists the hosts.
    pub fn host_list(&self) -> Result<Vec<HostInfo>, ClientError> {
        self.runtime.block_on(self.client.host_list())
    }

    /// Deletes the hosts with `tag` and/or of `owner` (without the admin role: one's own).
    pub fn host_clean(
        &self,
        tag: Option<Tag>,
        owner: Option<u32>,
    ) -> Result<Vec<NsName>, ClientError> {
        self.runtime.block_on(self.client.host_clean(tag, owner))
    }

    /// Starts an echo service inside a namespace.
    pub fn svc_start(&self, args: SvcStart) -> Result<SvcInfo, ClientError> {
        self.runtime.block_on(self.client.svc_start(args))
    }

    /// Stops an echo service.
    pub fn svc_stop(&self, addr: SvcAddr) -> Result<(), ClientError> {
        self.runtime.block_on(self.client.svc_stop(addr))
    }

    /// Lists the echo services.
    pub fn svc_list(&self) -> Result<Vec<SvcInfo>, ClientError> {
        self.runtime.block_on(self.client.svc_list())
    }

    /// Sends ICMP echo requests from inside a namespace.
    pub fn probe_ping(&self, args: ProbePing) -> Result<PingResult, ClientError> {
        self.runtime.block_on(self.client.probe_ping(args))
    }

    /// Traces the route from inside a namespace, hop by hop.
    pub fn probe_trace(&self, args: ProbeTrace) -> Result<TraceResult, ClientError> {
        self.runtime.block_on(self.client.probe_trace(args))
    }

    /// Runs the quick reachability analysis: which routers forward which services.
    pub fn probe_reach(&self, args: ProbeReach) -> Result<ReachResult, ClientError> {
        self.runtime.block_on(self.client.probe_reach(args))
    }

    /// Applies a topology (root or the admin group): the simulated network becomes it.
    pub fn net_apply(&self, args: NetApply) -> Result<NetApplied, ClientError> {
        self.runtime.block_on(self.client.net_apply(args))
    }

    /// The applied topology, if any.
    pub fn net_show(&self) -> Result<NetShown, ClientError> {
        self.runtime.block_on(self.client.net_show())
    }

    /// What the routers' firewall LOG rules logged (see [`NetLog`]).
    pub fn net_log(&self, args: NetLog) -> Result<NetLogged, ClientError> {
        self.runtime.block_on(self.client.net_log(args))
    }

    /// Removes the simulated network (root or the admin group).
    pub fn net_teardown(&self) -> Result<NetTornDown, ClientError> {
        self.runtime.block_on(self.client.net_teardown())
    }

    /// The firewall rules of a namespace as `iptables-save` prints them.
    pub fn iptables_save(&self, args: IptablesSave) -> Result<String, ClientError> {
        self.runtime.block_on(self.client.iptables_save(args))
    }

    /// Sends a message to an echo service from inside a namespace and reads it back.
    pub fn probe_echo(
        &self,
        proto: Transport,
        args: ProbeEcho,
    ) -> Result<ProbeEchoResult, ClientError> {
        self.runtime.block_on(self.client.probe_echo(proto, args))
    }
}

/// Every operation as a typed method, generated from the protocol's table like
/// [`crate::client::Ops`]: `client.op().route_add(spec)?`.
#[derive(Debug, Clone, Copy)]
pub struct BlockingOps<'a>(&'a BlockingClient);

impl BlockingClient {
    /// Every operation as a typed method: see [`BlockingOps`].
    pub fn op(&self) -> BlockingOps<'_> {
        BlockingOps(self)
    }
}

macro_rules! typed_methods {
    ($( $(#[$doc:meta])* $variant:ident($args:ty) -> $result:ty, $name:ident, $mutating:literal; )+) => {
        impl BlockingOps<'_> {
            $(
                $(#[$doc])*
                ///
                #[doc = concat!("Sends one `", stringify!($name), "` and returns its result.")]
                pub fn $name(&self, args: $args) -> Result<$result, ClientError> {
                    self.0.runtime.block_on(self.0.client.op().$name(args))
                }
            )+
        }
    };
}

tsim_protocol::for_each_op!(typed_methods);
