//! The async client: connect, handshake, and pipelined requests over one connection.
//!
//! A [`Client`] is cheap to share (`&Client` is enough to send requests from many tasks at
//! once). A background task reads the helper's frames and hands each response to the request
//! that is waiting for it, so requests may complete in any order.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tsim_protocol::frame::{decode_body, encode_body};
use tsim_protocol::ops::{
    HostAdd, HostAdded, HostClean, HostDelete, HostInfo, HostList, IptablesSave, NetApplied,
    NetApply, NetLog, NetLogged, NetShow, NetShown, NetTeardown, NetTornDown, NsCreate, NsDelete,
    NsInfo, NsList, Ping, PingResult, ProbeEcho, ProbeEchoResult, ProbePing, ProbeReach,
    ProbeTrace, ReachResult, Status, StatusReport, SvcAddr, SvcInfo, SvcList, SvcStart, SvcStop,
    TraceResult, Transport,
};
use tsim_protocol::version::{self, DEFAULT_MAX_FRAME, HEADER_LEN};
use tsim_protocol::{
    Cancel, ClientMessage, ErrorCode, Event, Hello, NsName, Op, OpResult, Request, Response,
    ServerMessage, Tag, Welcome, WireError,
};

/// The default socket path.
pub const DEFAULT_SOCKET: &str = "/run/tsim/helper.sock";

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket could not be connected to.
    #[error("Cannot connect to {path}")]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The helper refused the connection (`permission_denied`, `unsupported_version`, `busy`…).
    #[error("The helper refused the connection: {0}")]
    Refused(WireError),
    /// The request failed; `results` holds those of the operations that stay in effect.
    #[error("{error}")]
    Remote {
        /// What failed.
        error: WireError,
        /// Results of the operations that completed and were not undone.
        results: Vec<OpResult>,
    },
    /// The helper sent something this client does not understand.
    #[error("Protocol error: {0}")]
    Protocol(String),
    /// The connection broke or was closed before the answer came.
    #[error("The connection to the helper was closed{}", .0.as_ref().map(|e| format!(" ({e})")).unwrap_or_default())]
    Closed(Option<WireError>),
    /// Reading or writing the socket failed.
    #[error("I/O error talking to the helper")]
    Io(#[source] std::io::Error),
}

impl ClientError {
    /// The protocol error code, for errors that carry one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Refused(e) | ClientError::Remote { error: e, .. } => Some(e.code),
            ClientError::Closed(Some(e)) => Some(e.code),
            _ => None,
        }
    }
}

/// Options of one request.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestOptions {
    /// Undo everything if an operation fails.
    pub atomic: bool,
    /// Ask for progress events.
    pub progress: bool,
}

type Writer = FramedWrite<Pin<Box<dyn AsyncWrite + Send>>, LengthDelimitedCodec>;
type Reader = FramedRead<Pin<Box<dyn AsyncRead + Send>>, LengthDelimitedCodec>;

#[derive(Debug)]
struct Slot {
    done: oneshot::Sender<Result<Response, ClientError>>,
    events: Option<mpsc::UnboundedSender<Event>>,
}

#[derive(Debug, Default)]
struct Pending {
    calls: HashMap<u64, Slot>,
    /// Set when the connection is gone; later calls fail at once.
    closed: bool,
    /// The last connection-level error the helper sent.
    last_error: Option<WireError>,
}

/// A connection to the helper. Dropping it closes the connection.
pub struct Client {
    /// Owned here only, so that dropping the client closes the connection.
    writer: tokio::sync::Mutex<Writer>,
    /// Shared with the reader task.
    pending: Arc<Mutex<Pending>>,
    next_id: AtomicU64,
    welcome: Welcome,
    reader: JoinHandle<()>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("welcome", &self.welcome)
            .finish_non_exhaustive()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// A request that was sent and whose response has not been awaited yet.
#[derive(Debug)]
pub struct PendingRequest {
    /// The request's id (for [`Client::cancel`]).
    pub id: u64,
    /// Progress events, when the request asked for them.
    pub events: Option<mpsc::UnboundedReceiver<Event>>,
    done: oneshot::Receiver<Result<Response, ClientError>>,
}

impl PendingRequest {
    /// Waits for the response.
    pub async fn wait(self) -> Result<Vec<OpResult>, ClientError> {
        let response = self.done.await.map_err(|_| ClientError::Closed(None))??;
        match response.error {
            None => Ok(response.results),
            Some(error) => Err(ClientError::Remote {
                error,
                results: response.results,
            }),
        }
    }
}

fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .big_endian()
        .length_field_length(HEADER_LEN)
        .max_frame_length(DEFAULT_MAX_FRAME as usize)
        .new_codec()
}

impl Client {
    /// Connects to the helper's socket and does the handshake, naming this client `name`
    /// (e.g. `"tsimctl/0.1.0"`).
    pub async fn connect(path: impl AsRef<Path>, name: &str) -> Result<Client, ClientError> {
        let path = path.as_ref();
        let stream = UnixStream::connect(path)
            .await
            .map_err(|source| ClientError::Connect {
                path: path.to_owned(),
                source,
            })?;
        let (reader, writer) = stream.into_split();
        Self::handshake(Box::pin(reader), Box::pin(writer), name).await
    }

    /// Does the handshake over any byte streams (e.g. the pipes of `tsim-helper --stdio`).
    pub async fn over<R, W>(reader: R, writer: W, name: &str) -> Result<Client, ClientError>
    where
        R: AsyncRead + Send + 'static,
        W: AsyncWrite + Send + 'static,
    {
        Self::handshake(Box::pin(reader), Box::pin(writer), name).await
    }

    async fn handshake(
        reader: Pin<Box<dyn AsyncRead + Send>>,
        writer: Pin<Box<dyn AsyncWrite + Send>>,
        name: &str,
    ) -> Result<Client, ClientError> {
        let mut reader: Reader = FramedRead::new(reader, codec());
        let mut writer: Writer = FramedWrite::new(writer, codec());
        let hello = ClientMessage::Hello(Hello {
            protocol: version::CURRENT,
            client: name.to_owned(),
        });
        let body = encode_body(&hello).map_err(|e| ClientError::Protocol(e.to_string()))?;
        // The helper may refuse before reading hello; its error frame is still to be read.
        let sent = writer.send(Bytes::from(body)).await;
        let welcome = match reader.next().await {
            Some(Ok(frame)) => match decode_body::<ServerMessage>(&frame) {
                Ok(ServerMessage::Welcome(w)) => w,
                Ok(ServerMessage::Error(e)) => return Err(ClientError::Refused(e)),
                Ok(other) => {
                    return Err(ClientError::Protocol(format!(
                        "expected welcome, got {other:?}"
                    )));
                }
                Err(e) => {
                    return Err(ClientError::Protocol(format!(
                        "undecodable handshake answer: {e}"
                    )));
                }
            },
            Some(Err(e)) => return Err(ClientError::Io(e)),
            None => {
                return Err(match sent {
                    Err(e) => ClientError::Io(e),
                    Ok(()) => ClientError::Closed(None),
                });
            }
        };
        let pending = Arc::new(Mutex::new(Pending::default()));
        let reader = tokio::spawn(read_loop(reader, Arc::clone(&pending)));
        Ok(Client {
            writer: tokio::sync::Mutex::new(writer),
            pending,
            next_id: AtomicU64::new(1),
            welcome,
            reader,
        })
    }

    /// The helper's `welcome`: its version, the limits, and how it sees this client.
    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// Sends a request and returns at once; await [`PendingRequest::wait`] for the answer.
    pub async fn start(
        &self,
        ops: Vec<Op>,
        options: RequestOptions,
    ) -> Result<PendingRequest, ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (done, rx) = oneshot::channel();
        let (events_tx, events) = if options.progress {
            let (tx, rx) = mpsc::unbounded_channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        {
            let mut pending = lock(&self.pending);
            if pending.closed {
                return Err(ClientError::Closed(pending.last_error.clone()));
            }
            pending.calls.insert(
                id,
                Slot {
                    done,
                    events: events_tx,
                },
            );
        }
        let request = ClientMessage::Request(Request {
            id,
            ops,
            atomic: options.atomic,
            progress: options.progress,
        });
        if let Err(e) = self.send(&request).await {
            lock(&self.pending).calls.remove(&id);
            return Err(e);
        }
        Ok(PendingRequest {
            id,
            events,
            done: rx,
        })
    }

    /// Sends a request and waits for its results.
    pub async fn request(
        &self,
        ops: Vec<Op>,
        options: RequestOptions,
    ) -> Result<Vec<OpResult>, ClientError> {
        self.start(ops, options).await?.wait().await
    }

    /// Runs one operation.
    pub async fn call(&self, op: Op) -> Result<OpResult, ClientError> {
        let mut results = self.request(vec![op], RequestOptions::default()).await?;
        results
            .pop()
            .ok_or_else(|| ClientError::Protocol("a response without results".into()))
    }

    /// Asks the helper to cancel request `id`.
    pub async fn cancel(&self, id: u64) -> Result<(), ClientError> {
        self.send(&ClientMessage::Cancel(Cancel { id })).await
    }

    /// A no-op round trip.
    pub async fn ping(&self) -> Result<(), ClientError> {
        self.call(Op::Ping(Ping::default())).await.map(drop)
    }

    /// The helper's status.
    pub async fn status(&self) -> Result<StatusReport, ClientError> {
        match self.call(Op::Status(Status {})).await? {
            OpResult::Status(report) => Ok(report),
            other => Err(unexpected(&other)),
        }
    }

    /// Creates a managed namespace.
    pub async fn ns_create(&self, name: NsName, tag: Option<Tag>) -> Result<(), ClientError> {
        self.call(Op::NsCreate(NsCreate {
            name,
            tag,
            ipv6: None,
        }))
        .await
        .map(drop)
    }

    /// Deletes a managed namespace.
    pub async fn ns_delete(&self, name: NsName) -> Result<(), ClientError> {
        self.call(Op::NsDelete(NsDelete { name })).await.map(drop)
    }

    /// Lists the managed namespaces.
    pub async fn ns_list(&self) -> Result<Vec<NsInfo>, ClientError> {
        match self.call(Op::NsList(NsList {})).await? {
            OpResult::NsList(listing) => Ok(listing.namespaces),
            other => Err(unexpected(&other)),
        }
    }

    /// Adds a host to the simulated network (or finds the same one there: `reused`).
    pub async fn host_add(&self, args: HostAdd) -> Result<HostAdded, ClientError> {
        match self.call(Op::HostAdd(args)).await? {
            OpResult::HostAdd(added) => Ok(added),
            other => Err(unexpected(&other)),
        }
    }

    /// Deletes a host (a shared one only if it has one lease left; to release a lease, use
    /// `op().host_delete` with its tag).
    pub async fn host_delete(&self, name: NsName) -> Result<(), ClientError> {
        self.call(Op::HostDelete(HostDelete { name, tag: None }))
            .await
            .map(drop)
    }

    /// Lists the hosts.
    pub async fn host_list(&self) -> Result<Vec<HostInfo>, ClientError> {
        match self.call(Op::HostList(HostList {})).await? {
            OpResult::HostList(list) => Ok(list.hosts),
            other => Err(unexpected(&other)),
        }
    }

    /// Deletes the hosts with `tag` and/or of `owner` (without the admin role: one's own).
    pub async fn host_clean(
        &self,
        tag: Option<Tag>,
        owner: Option<u32>,
    ) -> Result<Vec<NsName>, ClientError> {
        match self.call(Op::HostClean(HostClean { tag, owner })).await? {
            OpResult::HostClean(cleaned) => Ok(cleaned.removed),
            other => Err(unexpected(&other)),
        }
    }

    /// Starts an echo service inside a namespace.
    pub async fn svc_start(&self, args: SvcStart) -> Result<SvcInfo, ClientError> {
        match self.call(Op::SvcStart(args)).await? {
            OpResult::SvcStart(info) => Ok(info),
            other => Err(unexpected(&other)),
        }
    }

    /// Stops an echo service.
    pub async fn svc_stop(&self, addr: SvcAddr) -> Result<(), ClientError> {
        self.call(Op::SvcStop(SvcStop { addr })).await.map(drop)
    }

    /// Lists the echo services.
    pub async fn svc_list(&self) -> Result<Vec<SvcInfo>, ClientError> {
        match self.call(Op::SvcList(SvcList {})).await? {
            OpResult::SvcList(list) => Ok(list.services),
            other => Err(unexpected(&other)),
        }
    }

    /// Sends a message to an echo service from inside a namespace and reads it back, over
    /// TCP or UDP.
    pub async fn probe_echo(
        &self,
        proto: Transport,
        args: ProbeEcho,
    ) -> Result<ProbeEchoResult, ClientError> {
        let op = match proto {
            Transport::Tcp => Op::ProbeTcp(args),
            Transport::Udp => Op::ProbeUdp(args),
        };
        match self.call(op).await? {
            OpResult::ProbeTcp(r) | OpResult::ProbeUdp(r) => Ok(r),
            other => Err(unexpected(&other)),
        }
    }

    /// Sends ICMP echo requests from inside a namespace.
    pub async fn probe_ping(&self, args: ProbePing) -> Result<PingResult, ClientError> {
        match self.call(Op::ProbePing(args)).await? {
            OpResult::ProbePing(r) => Ok(r),
            other => Err(unexpected(&other)),
        }
    }

    /// Traces the route from inside a namespace, hop by hop.
    pub async fn probe_trace(&self, args: ProbeTrace) -> Result<TraceResult, ClientError> {
        match self.call(Op::ProbeTrace(args)).await? {
            OpResult::ProbeTrace(r) => Ok(r),
            other => Err(unexpected(&other)),
        }
    }

    /// Runs the quick reachability analysis: which routers forward which services.
    pub async fn probe_reach(&self, args: ProbeReach) -> Result<ReachResult, ClientError> {
        match self.call(Op::ProbeReach(args)).await? {
            OpResult::ProbeReach(r) => Ok(r),
            other => Err(unexpected(&other)),
        }
    }

    /// Applies a topology (root or the admin group): the simulated network becomes it.
    pub async fn net_apply(&self, args: NetApply) -> Result<NetApplied, ClientError> {
        match self.call(Op::NetApply(args)).await? {
            OpResult::NetApply(r) => Ok(r),
            other => Err(unexpected(&other)),
        }
    }

    /// The applied topology, if any.
    pub async fn net_show(&self) -> Result<NetShown, ClientError> {
        match self.call(Op::NetShow(NetShow {})).await? {
            OpResult::NetShow(r) => Ok(r),
            other => Err(unexpected(&other)),
        }
    }

    /// What the routers' firewall LOG rules logged (see [`NetLog`]).
    pub async fn net_log(&self, args: NetLog) -> Result<NetLogged, ClientError> {
        self.op().net_log(args).await
    }

    /// Removes the simulated network (root or the admin group).
    pub async fn net_teardown(&self) -> Result<NetTornDown, ClientError> {
        match self.call(Op::NetTeardown(NetTeardown {})).await? {
            OpResult::NetTeardown(r) => Ok(r),
            other => Err(unexpected(&other)),
        }
    }

    /// The firewall rules of a namespace as `iptables-save` prints them (with counters when
    /// asked: before and after a probe, they say what the probe's packets met).
    pub async fn iptables_save(&self, args: IptablesSave) -> Result<String, ClientError> {
        match self.call(Op::IptablesSave(args)).await? {
            OpResult::IptablesSave(r) => Ok(r.payload),
            other => Err(unexpected(&other)),
        }
    }

    async fn send(&self, msg: &ClientMessage) -> Result<(), ClientError> {
        let body = encode_body(msg).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let max = self.welcome.limits.max_frame as usize;
        if body.len() > max {
            let message = format!(
                "The request of {} bytes exceeds the helper's frame limit of {max} bytes",
                body.len()
            );
            return Err(ClientError::Remote {
                error: WireError::new(ErrorCode::BadRequest, message),
                results: Vec::new(),
            });
        }
        let mut writer = self.writer.lock().await;
        writer
            .send(Bytes::from(body))
            .await
            .map_err(ClientError::Io)
    }
}

fn lock(pending: &Mutex<Pending>) -> std::sync::MutexGuard<'_, Pending> {
    pending.lock().unwrap_or_else(|p| p.into_inner())
}

/// Every operation as a typed method, generated from the protocol's table of operations
/// (`tsim_protocol::for_each_op!`): `client.op().route_add(spec).await?` sends one
/// `route_add` and returns its result, so that a new operation needs no code in the clients.
/// The methods of [`Client`] itself are the shorter forms of the common ones.
#[derive(Debug, Clone, Copy)]
pub struct Ops<'a>(&'a Client);

impl Client {
    /// Every operation as a typed method: see [`Ops`].
    pub fn op(&self) -> Ops<'_> {
        Ops(self)
    }
}

macro_rules! typed_methods {
    ($( $(#[$doc:meta])* $variant:ident($args:ty) -> $result:ty, $name:ident, $mutating:literal; )+) => {
        impl Ops<'_> {
            $(
                $(#[$doc])*
                ///
                #[doc = concat!("Sends one `", stringify!($name), "` and returns its result.")]
                pub async fn $name(&self, args: $args) -> Result<$result, ClientError> {
                    match self.0.call(Op::$variant(args)).await? {
                        OpResult::$variant(result) => Ok(result),
                        other => Err(unexpected(&other)),
                    }
                }
            )+
        }
    };
}

tsim_protocol::for_each_op!(typed_methods);

fn unexpected(result: &OpResult) -> ClientError {
    ClientError::Protocol(format!("unexpected result for operation {}", result.name()))
}

async fn read_loop(mut reader: Reader, pending: Arc<Mutex<Pending>>) {
    while let Some(Ok(frame)) = reader.next().await {
        match decode_body::<ServerMessage>(&frame) {
            Ok(ServerMessage::Response(response)) => {
                let slot = lock(&pending).calls.remove(&response.id);
                if let Some(slot) = slot {
                    let _ = slot.done.send(Ok(response));
                }
            }
            Ok(ServerMessage::Event(event)) => {
                let state = lock(&pending);
                if let Some(tx) = state.calls.get(&event.id).and_then(|s| s.events.as_ref()) {
                    let _ = tx.send(event);
                }
            }
            Ok(ServerMessage::Error(error)) => lock(&pending).last_error = Some(error),
            Ok(ServerMessage::Welcome(_)) | Err(_) => {}
        }
    }
    let mut state = lock(&pending);
    state.closed = true;
    let last = state.last_error.clone();
    for (_, slot) in state.calls.drain() {
        let _ = slot.done.send(Err(ClientError::Closed(last.clone())));
    }
}
