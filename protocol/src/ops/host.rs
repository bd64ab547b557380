//! Arguments and results of the host operations: test hosts attached to the simulated
//! network (`host_add`, `host_delete`, `host_list`, `host_clean`).

use serde::{Deserialize, Serialize};

use crate::names::{Cidr, IfName, NsName, Tag};
use crate::net::Ip;

fn is_false(b: &bool) -> bool {
    !*b
}

/// Arguments of `host_add`: a namespace with `lo`, and `eth0` on the bridge of the router
/// interface facing the host's subnet, the address, and a default route via the router.
///
/// A host's identity is its name, address and router: the same three again is a success
/// (`reused`); the same name with another address or router is a `conflict`.
///
/// With `share` (since 1.3), a host with the same address, router and secondaries that was
/// itself added with `share`, by the same uid, is not a conflict: the caller takes a lease
/// on it (named by its `tag`, which `share` needs) and gets that host back (`shared`). A
/// shared host goes with its last lease.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostAdd {
    /// The host's name (its namespace).
    pub name: NsName,
    /// Its primary address, with the prefix of its subnet (at most /30, not the network's
    /// or the broadcast address).
    pub ip: Cidr,
    /// The router it hangs off (a router of the applied network).
    pub router: NsName,
    /// The router's interface facing the host; by default the one with an address in the
    /// host's subnet, or else the one the router routes the host's address through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router_if: Option<IfName>,
    /// More addresses, reachable from inside the host only (on dummy interfaces, or on `lo`
    /// where the kernel has no dummy driver).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "crate::bounded::vec::<_, _, 1024>")]
    pub secondaries: Vec<Cidr>,
    /// A label (e.g. a job id) for `host_clean`; with `share`, the lease's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<Tag>,
    /// Share the host with other requests of the same uid (since 1.3): see above.
    #[serde(default, skip_serializing_if = "is_false")]
    pub share: bool,
}

/// Arguments of `host_delete`: the namespace, its links, and its share of the gateway.
/// Only the owner, root or the admin group may delete a host.
///
/// On a shared host it releases the lease named `tag` (since 1.3), and deletes the host only
/// if that was the last one; without `tag`, a shared host is deleted only if it has one lease
/// left.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostDelete {
    /// The host's name.
    pub name: NsName,
    /// The lease to release (since 1.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<Tag>,
}

/// A lease on a shared host: who holds it.
///
/// Since protocol 1.3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The uid that took it (always the host's owner).
    pub uid: u32,
    /// Its name: the tag of the `host_add` that took it.
    pub tag: Tag,
    /// When it was taken, Unix milliseconds.
    pub since_ms: u64,
}

/// Arguments of `host_list` (none).
///
/// Since protocol 1.1.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostList {}

/// Arguments of `host_clean`: delete every host matching the filters. Without the admin
/// role, only the caller's own hosts. With `tag`, a shared host loses the lease of that tag
/// and goes only with its last one; without, shared hosts go with all their leases.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostClean {
    /// Only hosts with this tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<Tag>,
    /// Only hosts of this uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<u32>,
}

/// A host, as `host_list` and `host_add` show it.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInfo {
    /// Its name.
    pub name: NsName,
    /// Its primary address.
    pub ip: Cidr,
    /// Its other addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secondaries: Vec<Cidr>,
    /// The router it hangs off.
    pub router: NsName,
    /// The router's interface facing it.
    pub router_if: IfName,
    /// Its default gateway (the router's address in its subnet).
    pub gateway: Ip,
    /// Whether the helper added the gateway to the router (it goes with the last host that
    /// needs it).
    #[serde(default, skip_serializing_if = "is_false")]
    pub gateway_added: bool,
    /// The bridge its `eth0` is attached to, in the hidden namespace.
    pub bridge: IfName,
    /// Who added it.
    pub owner_uid: u32,
    /// Its tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<Tag>,
    /// When it was added, Unix milliseconds.
    pub created_ms: u64,
    /// `ready`, or `creating`/`deleting` while a request works on it.
    pub state: String,
    /// Its leases, oldest first, if it is shared (since 1.3).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leases: Vec<Lease>,
}

/// Result of `host_add`.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostAdded {
    /// The host.
    pub host: HostInfo,
    /// The same host existed already and was left as it was.
    #[serde(default, skip_serializing_if = "is_false")]
    pub reused: bool,
    /// It came from the pool of pre-created namespaces.
    #[serde(default, skip_serializing_if = "is_false")]
    pub pooled: bool,
    /// The host is shared: the caller holds a lease on it (since 1.3). With `reused`, the
    /// caller held that lease already.
    #[serde(default, skip_serializing_if = "is_false")]
    pub shared: bool,
}

/// Result of `host_list`.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hosts {
    /// The hosts, by name.
    pub hosts: Vec<HostInfo>,
}

/// Result of `host_clean`.
///
/// Since protocol 1.1.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostsCleaned {
    /// The hosts deleted.
    pub removed: Vec<NsName>,
    /// The shared hosts that lost the caller's lease and stay for their other leases
    /// (since 1.3).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub released: Vec<NsName>,
}
