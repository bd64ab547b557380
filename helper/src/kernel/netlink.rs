//! Netlink requests on a socket that is bound to one managed namespace.
//!
//! Sockets are opened inside their namespace by [`crate::kernel::netns`]; this module only sends
//! requests on them, from any task. It adds what the `rtnetlink` builders lack: the kernel's
//! own error message (extended ACK), retry of interrupted dumps, and one error type that
//! names the action and the namespace. Dropping the last [`Netlink`] of a namespace closes
//! its socket, which would otherwise keep the namespace alive.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use rtnetlink::packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload,
};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::packet_route::route::{RouteFlags, RouteMessage};
use rtnetlink::sys::AsyncSocket;
use tsim_protocol::{ErrorCode, NsName};

pub(crate) use crate::base::error::NetlinkError;

/// What `rtnetlink::new_connection` returns: the connection to drive, a handle, and the
/// receiver of unsolicited messages.
pub type NetlinkSocket = (
    rtnetlink::proto::Connection<RouteNetlinkMessage>,
    rtnetlink::Handle,
    futures::channel::mpsc::UnboundedReceiver<(
        NetlinkMessage<RouteNetlinkMessage>,
        rtnetlink::sys::SocketAddr,
    )>,
);

/// How many times an interrupted dump is tried again.
const DUMP_ATTEMPTS: usize = 5;

/// The threads that drive the netlink sockets. The kernel handles a netlink request inside
/// the `sendmsg` that carries it, waiting there for its global lock (RTNL) as long as others
/// hold it; on the request-serving threads, that wait would hold up every request queued
/// behind it, pings included. Here it holds up only other netlink traffic.
static DRIVER: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();

/// Starts the netlink threads. Call in `main`, before any namespace exists: a thread inherits
/// the network namespace of the thread that spawns it, so a pool started lazily from a thread
/// inside a namespace would live there for ever (and keep it alive). Each thread checks its
/// namespace when it starts ([`crate::kernel::netns::check_home_thread`]).
pub fn start_threads() -> std::io::Result<()> {
    if DRIVER.get().is_some() {
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(NETLINK_THREADS)
        .thread_name("tsim-netlink")
        .on_thread_start(crate::kernel::netns::check_home_thread)
        .enable_all()
        .build()?;
    let _ = DRIVER.set(runtime);
    Ok(())
}

fn driver() -> std::io::Result<&'static tokio::runtime::Runtime> {
    DRIVER
        .get()
        .ok_or_else(|| std::io::Error::other("the netlink threads were not started"))
}

/// Opens a netlink socket in the calling thread's network namespace, registered with the
/// netlink threads' reactor.
pub fn open_socket() -> std::io::Result<NetlinkSocket> {
    let _driver = driver()?.enter();
    rtnetlink::new_connection()
}

/// Threads driving netlink sockets: requests into different namespaces wait for RTNL
/// side by side, and a burst of them never takes the serving threads.
const NETLINK_THREADS: usize = 4;

/// Every message the kernel sends back for one request, up to its acknowledgement or the end
/// of its dump.
pub(crate) type Replies = futures::stream::BoxStream<'static, NetlinkMessage<RouteNetlinkMessage>>;

/// Where a [`Netlink`]'s requests go: the seam between the helper and the kernel's routing
/// netlink. The real one is a socket opened inside the namespace ([`rtnetlink::Handle`]);
/// the unit tests' is the in-memory kernel of `kernel::fake`, which can fail any step.
/// Everything above it (acknowledgements, echoes, gets, dumps and their retries, errors)
/// is the same code for both.
pub(crate) trait Transport: Send + Sync + std::fmt::Debug {
    /// Sends `request` and returns the stream of its replies; `None` if the socket is gone.
    fn send(&self, request: NetlinkMessage<RouteNetlinkMessage>) -> Option<Replies>;
}

impl Transport for rtnetlink::Handle {
    fn send(&self, request: NetlinkMessage<RouteNetlinkMessage>) -> Option<Replies> {
        self.clone().request(request).ok().map(StreamExt::boxed)
    }
}

/// A netlink socket inside one namespace.
#[derive(Debug, Clone)]
pub struct Netlink {
    ns: NsName,
    transport: Arc<dyn Transport>,
    /// Peer-namespace ids seen from this namespace, to name a veth's peer namespace.
    nsids: Arc<Mutex<HashMap<i32, NsName>>>,
    /// Held while a dump runs: the kernel answers a second dump on a socket that has one in
    /// progress with `EBUSY`, and requests running concurrently share this socket.
    dumping: Arc<tokio::sync::Mutex<()>>,
}

impl Netlink {
    /// Starts driving a socket opened inside namespace `ns`, on the netlink threads.
    pub fn start(ns: NsName, socket: NetlinkSocket) -> Self {
        let (mut connection, handle, unsolicited) = socket;
        // The kernel's own error messages; only the header of the failed request echoed;
        // dump requests checked strictly, so their filters are honoured.
        let sock = connection.socket_mut().socket_mut();
        for (what, result) in [
            ("extended ACK", sock.set_ext_ack(true)),
            ("capped ACK", sock.set_cap_ack(true)),
            ("strict checking", sock.set_netlink_get_strict_chk(true)),
        ] {
            if let Err(e) = result {
                tracing::debug!(ns = %ns, error = %e, "Cannot enable netlink {what}");
            }
        }
        // Nobody listens for unsolicited messages; dropping the receiver lets the connection
        // end as soon as the last handle is dropped.
        drop(unsolicited);
        driver()
            .expect("a socket was opened, so the netlink threads run")
            .spawn(connection);
        Self::over(ns, Arc::new(handle))
    }

    /// Requests for namespace `ns` sent through `transport`.
    pub(crate) fn over(ns: NsName, transport: Arc<dyn Transport>) -> Self {
        Self {
            ns,
            transport,
            nsids: Arc::default(),
            dumping: Arc::default(),
        }
    }

    /// An error for `action` in this namespace, without a kernel error number.
    pub fn error(
        &self,
        action: impl Into<String>,
        errno: i32,
        kernel: Option<String>,
    ) -> NetlinkError {
        NetlinkError::new(action.into(), &self.ns, errno, kernel)
    }

    /// Sends a request that expects only an acknowledgement.
    pub async fn ack(
        &self,
        message: RouteNetlinkMessage,
        flags: u16,
        action: impl FnOnce() -> String,
    ) -> Result<(), NetlinkError> {
        let mut request = NetlinkMessage::from(message);
        request.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        let mut responses = match self.transport.send(request) {
            Some(r) => r,
            None => return Err(self.error(action(), 0, None)),
        };
        while let Some(response) = responses.next().await {
            if let NetlinkPayload::Error(e) = response.payload {
                if e.code.is_some() {
                    return Err(self.error(
                        action(),
                        e.raw_code().abs(),
                        kernel_message(&e.header),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Sends a request with `NLM_F_ECHO` and returns what the kernel echoed (for a new link:
    /// its message, with the index the kernel gave it), once it is acknowledged.
    pub async fn ack_echo(
        &self,
        message: RouteNetlinkMessage,
        flags: u16,
        action: impl FnOnce() -> String,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        use rtnetlink::packet_core::NLM_F_ECHO;
        let mut request = NetlinkMessage::from(message);
        request.header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_ECHO | flags;
        let mut responses = match self.transport.send(request) {
            Some(r) => r,
            None => return Err(self.error(action(), 0, None)),
        };
        let mut echoed = Vec::new();
        while let Some(response) = responses.next().await {
            match response.payload {
                NetlinkPayload::InnerMessage(m) => echoed.push(m),
                NetlinkPayload::Error(e) if e.code.is_some() => {
                    return Err(self.error(
                        action(),
                        e.raw_code().abs(),
                        kernel_message(&e.header),
                    ));
                }
                _ => {}
            }
        }
        Ok(echoed)
    }

    /// Sends a request that expects one answer (a `get` that is not a dump).
    pub async fn get(
        &self,
        message: RouteNetlinkMessage,
        action: impl FnOnce() -> String,
    ) -> Result<RouteNetlinkMessage, NetlinkError> {
        let mut request = NetlinkMessage::from(message);
        request.header.flags = NLM_F_REQUEST;
        let mut responses = match self.transport.send(request) {
            Some(r) => r,
            None => return Err(self.error(action(), 0, None)),
        };
        let mut answer = None;
        while let Some(response) = responses.next().await {
            match response.payload {
                NetlinkPayload::InnerMessage(m) => answer = Some(m),
                NetlinkPayload::Error(e) if e.code.is_some() => {
                    return Err(self.error(
                        action(),
                        e.raw_code().abs(),
                        kernel_message(&e.header),
                    ));
                }
                _ => {}
            }
        }
        answer.ok_or_else(|| self.error(action(), libc::ENODATA, None))
    }

    /// Dumps, one at a time on this socket, trying again when the kernel reports that the
    /// dump was interrupted by a change (`NLM_F_DUMP_INTR`).
    pub async fn dump(
        &self,
        message: RouteNetlinkMessage,
        action: impl Fn() -> String,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        let _one_at_a_time = self.dumping.lock().await;
        for _ in 0..DUMP_ATTEMPTS {
            let mut request = NetlinkMessage::from(message.clone());
            request.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
            let mut responses = match self.transport.send(request) {
                Some(r) => r,
                None => return Err(self.error(action(), 0, None)),
            };
            let mut out = Vec::new();
            let mut interrupted = false;
            while let Some(response) = responses.next().await {
                interrupted |= response.header.flags & NLM_F_DUMP_INTR != 0;
                match response.payload {
                    NetlinkPayload::InnerMessage(m) => out.push(m),
                    NetlinkPayload::Error(e) if e.code.is_some() => {
                        return Err(self.error(
                            action(),
                            e.raw_code().abs(),
                            kernel_message(&e.header),
                        ));
                    }
                    _ => {}
                }
            }
            if !interrupted {
                return Ok(out);
            }
            tracing::debug!(ns = %self.ns, "Netlink dump interrupted; trying again");
        }
        Err(self.error(
            action(),
            libc::EINTR,
            Some("the dump was interrupted by changes every time".into()),
        ))
    }

    /// The index of link `name`, or `not_found`.
    pub async fn link_index(&self, name: &str) -> Result<u32, NetlinkError> {
        Ok(self.link_by_name(name).await?.header.index)
    }

    /// The name of the link with index `index`, by a get (not a dump).
    pub async fn link_name_of(&self, index: u32) -> Result<String, NetlinkError> {
        let mut message = LinkMessage::default();
        message.header.index = index;
        let action = || format!("find interface {index}");
        match self
            .get(RouteNetlinkMessage::GetLink(message), action)
            .await?
        {
            RouteNetlinkMessage::NewLink(link) => crate::kernel::nlmsg::link_name(&link)
                .ok_or_else(|| self.error(action(), libc::EPROTO, None)),
            _ => Err(self.error(action(), libc::EPROTO, None)),
        }
    }

    /// Link `name` as the kernel reports it, or `not_found`.
    pub async fn link_by_name(&self, name: &str) -> Result<LinkMessage, NetlinkError> {
        let mut message = LinkMessage::default();
        message
            .attributes
            .push(LinkAttribute::IfName(name.to_owned()));
        let action = || format!("find interface {name}");
        match self
            .get(RouteNetlinkMessage::GetLink(message), action)
            .await
        {
            Ok(RouteNetlinkMessage::NewLink(link)) => Ok(link),
            Ok(_) => Err(self.error(action(), libc::EPROTO, None)),
            Err(e) if e.errno == libc::ENODEV => Err(e
                .explained(format!("there is no interface {name}"))
                .with_code(ErrorCode::NotFound)),
            Err(e) => Err(e),
        }
    }

    /// Every link in the namespace.
    pub async fn links(&self) -> Result<Vec<LinkMessage>, NetlinkError> {
        let messages = self
            .dump(RouteNetlinkMessage::GetLink(LinkMessage::default()), || {
                "list links".into()
            })
            .await?;
        Ok(messages
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            })
            .collect())
    }

    /// The cached name of the managed namespace with peer-namespace id `nsid`.
    pub fn cached_nsid(&self, nsid: i32) -> Option<NsName> {
        self.nsids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&nsid)
            .cloned()
    }

    /// Remembers that peer-namespace id `nsid` is namespace `name`.
    pub fn remember_nsid(&self, nsid: i32, name: NsName) {
        self.nsids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(nsid, name);
    }

    /// The id this namespace gives the namespace open at `fd` (-1 if none).
    pub async fn nsid_of(&self, fd: std::os::fd::RawFd) -> Result<i32, NetlinkError> {
        use rtnetlink::packet_route::nsid::{NsidAttribute, NsidMessage};
        let mut message = NsidMessage::default();
        message.attributes.push(NsidAttribute::Fd(fd as u32));
        let answer = self
            .get(RouteNetlinkMessage::GetNsId(message), || {
                "read a namespace id".into()
            })
            .await?;
        if let RouteNetlinkMessage::NewNsId(m) = answer {
            for attr in m.attributes {
                if let NsidAttribute::Id(id) = attr {
                    return Ok(id);
                }
            }
        }
        Ok(-1)
    }
}

/// The kernel's message in an extended ACK: after the echoed request header (16 bytes, as
/// the socket caps the echo), attributes of which `NLMSGERR_ATTR_MSG` (1) is the text.
fn kernel_message(echo: &[u8]) -> Option<String> {
    const HEADER: usize = 16;
    const NLMSGERR_ATTR_MSG: u16 = 1;
    let mut rest = echo.get(HEADER..)?;
    while rest.len() >= 4 {
        let len = u16::from_ne_bytes([rest[0], rest[1]]) as usize;
        let kind = u16::from_ne_bytes([rest[2], rest[3]]) & 0x3fff;
        if len < 4 || len > rest.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let text = &rest[4..len];
            let text = text.split(|b| *b == 0).next().unwrap_or_default();
            let text = String::from_utf8_lossy(text)
                .trim()
                .trim_end_matches('.')
                .to_owned();
            return (!text.is_empty()).then_some(text);
        }
        rest = rest.get((len + 3) & !3..).unwrap_or_default();
    }
    None
}

/// Counts the links, addresses, routes (every table and family, cached clones left out),
/// policy rules and neighbour entries of the namespace behind `nl`.
pub async fn count_objects(nl: &Netlink) -> Result<u64, NetlinkError> {
    let action = || "count the namespace's objects".to_string();
    let mut total = 0u64;
    let requests = [
        RouteNetlinkMessage::GetLink(LinkMessage::default()),
        RouteNetlinkMessage::GetAddress(Default::default()),
        RouteNetlinkMessage::GetRoute(RouteMessage::default()),
        RouteNetlinkMessage::GetRule(Default::default()),
        RouteNetlinkMessage::GetNeighbour(Default::default()),
    ];
    for request in requests {
        let answers = nl.dump(request, action).await?;
        total += answers
            .iter()
            .filter(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => !r.header.flags.contains(RouteFlags::Cloned),
                RouteNetlinkMessage::NewLink(_)
                | RouteNetlinkMessage::NewAddress(_)
                | RouteNetlinkMessage::NewRule(_)
                | RouteNetlinkMessage::NewNeighbour(_) => true,
                _ => false,
            })
            .count() as u64;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extended_ack_messages() {
        let mut echo = vec![0u8; 16];
        let text = b"Nexthop has invalid gateway.\0";
        let len = 4 + text.len();
        echo.extend_from_slice(&(len as u16).to_ne_bytes());
        echo.extend_from_slice(&1u16.to_ne_bytes());
        echo.extend_from_slice(text);
        assert_eq!(
            kernel_message(&echo).as_deref(),
            Some("Nexthop has invalid gateway")
        );
        assert_eq!(kernel_message(&echo[..16]), None);
        assert_eq!(kernel_message(&[0u8; 4]), None);
        let mut skip = vec![0u8; 16];
        skip.extend_from_slice(&8u16.to_ne_bytes());
        skip.extend_from_slice(&2u16.to_ne_bytes());
        skip.extend_from_slice(&[9, 9, 9, 9]);
        skip.extend_from_slice(&echo[16..]);
        assert_eq!(
            kernel_message(&skip).as_deref(),
            Some("Nexthop has invalid gateway")
        );
    }

    #[test]
    fn errors_name_the_action_and_map_codes() {
        let ns: NsName = "r1".parse().unwrap();
        let e = NetlinkError::new(
            "add route 10.0.0.0/8".into(),
            &ns,
            libc::ENETUNREACH,
            Some("Nexthop has invalid gateway".into()),
        );
        assert_eq!(
            e.to_string(),
            "Cannot add route 10.0.0.0/8 in namespace r1: Nexthop has invalid gateway (Network is unreachable (os error 101))"
        );
        assert_eq!(e.code, ErrorCode::Kernel);
        assert_eq!(
            NetlinkError::new("x".into(), &ns, libc::EEXIST, None).code,
            ErrorCode::AlreadyExists
        );
        assert_eq!(
            NetlinkError::new("x".into(), &ns, libc::ESRCH, None).code,
            ErrorCode::NotFound
        );
        assert_eq!(
            NetlinkError::new("x".into(), &ns, libc::EOPNOTSUPP, None).code,
            ErrorCode::Unsupported
        );
    }
}
