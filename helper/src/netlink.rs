//! Netlink requests on a socket that is bound to one managed namespace.
//!
//! Sockets are opened inside their namespace by [`crate::netns`]; this module only sends
//! requests on them, from any thread. Dropping the last [`Netlink`] of a namespace closes its
//! socket, which would otherwise keep the namespace alive.

use rtnetlink::LinkUnspec;
use rtnetlink::packet_core::NetlinkMessage;
use rtnetlink::packet_route::RouteNetlinkMessage;
use tokio::runtime::Handle as RuntimeHandle;
use tsim_protocol::NsName;

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

/// A failed netlink request.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The kernel (or the socket) refused a request.
    #[error("Cannot {action} in namespace {ns}")]
    Request {
        /// What was being done, e.g. "set lo up".
        action: String,
        /// The namespace.
        ns: NsName,
        /// The netlink error.
        #[source]
        source: rtnetlink::Error,
    },
}

/// A netlink socket inside one namespace.
#[derive(Debug, Clone)]
pub struct Netlink {
    ns: NsName,
    handle: rtnetlink::Handle,
}

impl Netlink {
    /// Starts driving a socket opened inside namespace `ns` on `runtime`.
    pub fn start(ns: NsName, socket: NetlinkSocket, runtime: &RuntimeHandle) -> Self {
        let (connection, handle, unsolicited) = socket;
        // Nobody listens for unsolicited messages; dropping the receiver lets the connection
        // end as soon as the last handle is dropped.
        drop(unsolicited);
        runtime.spawn(connection);
        Self { ns, handle }
    }

    /// The namespace this socket is bound to.
    pub fn ns(&self) -> &NsName {
        &self.ns
    }

    /// Sets link `index` (called `what` in errors) up.
    pub async fn set_up(&self, index: u32, what: &str) -> Result<(), NetlinkError> {
        let message = LinkUnspec::new_with_index(index).up().build();
        self.handle
            .link()
            .set(message)
            .execute()
            .await
            .map_err(|source| self.error(format!("set {what} up"), source))
    }

    fn error(&self, action: String, source: rtnetlink::Error) -> NetlinkError {
        NetlinkError::Request {
            action,
            ns: self.ns.clone(),
            source,
        }
    }
}
