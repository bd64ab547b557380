//! The managed namespaces: kept in memory, persisted through [`crate::managed::state`], and
//! reconciled with the kernel when the helper starts.
//!
//! Invariants:
//! * A name is reserved here (phase `Creating`, record written) before anything is created in
//!   the kernel, so two requests can never create the same namespace, and a crash leaves a
//!   record that the next start rolls back.
//! * Only namespaces in this registry are ever modified or deleted; a namespace found under
//!   `/run/netns` that is not here is foreign and left alone.
//! * At start, a record is adopted only if the namespace at its path has the recorded inode.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use tsim_protocol::ops::{Lease, NsInfo};
use tsim_protocol::{Cidr, IfName, NsName, Tag};

use crate::base::error::{HelperError, chain};
use crate::kernel::netlink::Netlink;
use crate::kernel::netns::{Netns, PathState};
use crate::managed::state::{HostFacet, NsRecord, PoolFacet, RecordState, StateError, StateStore};
use crate::pure::budget::{Counts, Part};

/// Where a managed namespace is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Being created by request `txn`, which has not committed.
    Creating { txn: u64 },
    /// Committed.
    Ready,
    /// Being deleted by request `txn`, which has not committed.
    Deleting { txn: u64 },
}

/// A managed namespace as an operation sees it.
#[derive(Debug, Clone)]
pub struct NsEntry {
    /// Its inode number.
    pub ino: u64,
    /// The uid that created it.
    pub owner_uid: u32,
    /// Its netlink socket, if one is open.
    pub netlink: Option<Netlink>,
    /// Whether the asking request created it (so undoing that creation removes everything
    /// done inside it).
    pub created_by_this_request: bool,
}

/// Why a namespace cannot be used by a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    /// Not in the registry.
    Unknown,
    /// Another request is creating or deleting it.
    Busy(String),
    /// This request deleted it.
    Deleted,
}

#[derive(Debug)]
struct Entry {
    record: NsRecord,
    phase: Phase,
    netlink: Option<Netlink>,
    /// Its kernel objects, for `--quota-objects` (see [`crate::pure::budget`]).
    objects: Counts,
}

/// The helper's managed namespaces.
#[derive(Debug)]
pub struct Registry {
    entries: Mutex<BTreeMap<NsName, Entry>>,
    store: StateStore,
    quotas: std::sync::OnceLock<Quotas>,
}

/// Per-uid limits on what the registry holds (root is exempt).
#[derive(Debug, Clone, Copy)]
pub struct Quotas {
    /// Managed namespaces, hosts included.
    pub namespaces: usize,
    /// Hosts.
    pub hosts: usize,
}

/// Refuses a new namespace (and, with `host`, a new host) for `uid` if it would exceed
/// `quotas` (`None`: no quotas set).
fn check_quota(
    entries: &BTreeMap<NsName, Entry>,
    quotas: Option<&Quotas>,
    uid: u32,
    host: bool,
) -> Result<(), HelperError> {
    let Some(q) = quotas.filter(|_| uid != 0) else {
        return Ok(());
    };
    let owned = entries.values().filter(|e| e.record.owner_uid == uid);
    let (namespaces, hosts) = owned.fold((0, 0), |(n, h), e| {
        (n + 1, h + usize::from(e.record.host.is_some()))
    });
    if namespaces >= q.namespaces {
        return Err(HelperError::QuotaExceeded(format!(
            "uid {uid} has {namespaces} namespaces, its quota"
        )));
    }
    if host && hosts >= q.hosts {
        return Err(HelperError::QuotaExceeded(format!(
            "uid {uid} has {hosts} hosts, its quota"
        )));
    }
    Ok(())
}

/// What happened to the persisted records at start.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Namespaces adopted again.
    pub adopted: Vec<NsName>,
    /// Interrupted creations that were rolled back.
    pub rolled_back: Vec<NsName>,
    /// Records dropped because their namespace vanished or was replaced.
    pub dropped: Vec<NsName>,
    /// The hosts among the rolled-back and dropped records (their gateways may have to go).
    pub lost_hosts: Vec<HostFacet>,
}

/// The outcome of reserving a host's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostSlot {
    /// Reserved: go on and create it.
    Reserved,
    /// The same host (name, address, router) exists, or, when sharing, the caller holds a
    /// lease on it already: here is its record.
    Reuse(Box<NsRecord>),
    /// A lease was taken on this shared host (the record as it is now, lease included).
    Leased(Box<NsRecord>),
    /// The same host is being created or deleted by another request: ask again later.
    Wait,
}

/// Most leases a shared host may have.
pub const MAX_LEASES: usize = 256;

/// What [`Registry::release_host`] is asked to give up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Release {
    /// The lease of this tag (on a host that is not shared: the host, if it has that tag).
    Tag(Tag),
    /// The host, if it is not shared or has one lease left.
    Sole,
    /// The host, with every lease.
    All,
}

/// What [`Registry::release_host`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Released {
    /// Only this lease went (written to disk); the host stays for the others.
    Lease(Lease),
    /// The host is being deleted (phase `Deleting`) as [`Registry::begin_delete`] does; its
    /// namespace has this inode.
    Deleting(u64),
}

/// Whether `existing`, a host with the address and router a `share` request asks for, may
/// be shared with it.
fn check_shareable(
    other: &NsName,
    entry: &Entry,
    owner_uid: u32,
    host: &HostFacet,
) -> Result<(), HelperError> {
    let existing = entry.record.host.as_ref().expect("a host record");
    if !existing.shared() {
        return Err(HelperError::Conflict(format!(
            "Host {other} has address {} on router {} and was not added with share; it cannot be shared",
            existing.ip, existing.router
        )));
    }
    if entry.record.owner_uid != owner_uid {
        return Err(HelperError::Conflict(format!(
            "Host {other} with address {} on router {} belongs to uid {}; hosts are shared within one uid only",
            existing.ip, existing.router, entry.record.owner_uid
        )));
    }
    if existing.ip != host.ip
        || existing.router_if != host.router_if
        || existing.secondaries != host.secondaries
    {
        return Err(HelperError::Conflict(format!(
            "Shared host {other} is {} on {} of router {} with secondaries [{}]; a host shared with it must be the same",
            existing.ip,
            existing.router_if,
            existing.router,
            existing
                .secondaries
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    if existing.leases.len() >= MAX_LEASES {
        return Err(HelperError::QuotaExceeded(format!(
            "Shared host {other} has {MAX_LEASES} leases, the most a host may have"
        )));
    }
    Ok(())
}

impl Registry {
    /// Loads the records from `store` and reconciles them with the kernel.
    pub fn recover(store: StateStore, netns: &Netns) -> Result<(Self, Recovery), StateError> {
        let (records, bad) = store.load_ns()?;
        for b in bad {
            tracing::warn!(path = %b.path.display(), reason = %b.reason, "Ignoring an unreadable state record");
        }
        let mut recovery = Recovery::default();
        let mut entries = BTreeMap::new();
        for record in records {
            let name = record.name.clone();
            let found = netns.inspect(&name);
            match (record.state, found) {
                (RecordState::Ready, Ok(PathState::Mounted { ino })) if ino == record.netns_ino => {
                    entries.insert(
                        name.clone(),
                        Entry {
                            record,
                            phase: Phase::Ready,
                            netlink: None,
                            objects: Counts::default(),
                        },
                    );
                    recovery.adopted.push(name);
                    continue;
                }
                (RecordState::Creating, Ok(PathState::Mounted { ino }))
                    if record.netns_ino == 0 || ino == record.netns_ino =>
                {
                    roll_back(netns, &name);
                    recovery.rolled_back.push(name.clone());
                }
                (RecordState::Creating, Ok(PathState::Placeholder)) => {
                    roll_back(netns, &name);
                    recovery.rolled_back.push(name.clone());
                }
                (RecordState::Creating, Ok(PathState::Missing)) => {
                    recovery.rolled_back.push(name.clone());
                }
                (_, Ok(PathState::Missing)) => {
                    tracing::warn!(ns = %name, "A managed namespace vanished while the helper was down; forgetting it");
                    recovery.dropped.push(name.clone());
                }
                (_, Ok(_)) => {
                    tracing::warn!(ns = %name, "The namespace under this name is no longer the one this helper created; forgetting it and leaving it alone");
                    recovery.dropped.push(name.clone());
                }
                (_, Err(e)) => {
                    tracing::warn!(ns = %name, error = %chain(&e), "Cannot inspect a managed namespace; forgetting it and leaving it alone");
                    recovery.dropped.push(name.clone());
                }
            }
            if let Some(host) = record.host {
                recovery.lost_hosts.push(host);
            }
            store.remove_ns(&name)?;
        }
        let registry = Self {
            entries: Mutex::new(entries),
            store,
            quotas: std::sync::OnceLock::new(),
        };
        Ok((registry, recovery))
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<NsName, Entry>> {
        // A panic while holding the lock leaves the map consistent (every change is one
        // insert, remove or field write), so poisoning is ignored.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The state directory.
    pub fn store(&self) -> &StateStore {
        &self.store
    }

    /// Whether `name` is managed and committed.
    pub fn is_ready(&self, name: &NsName) -> bool {
        self.lock()
            .get(name)
            .is_some_and(|e| e.phase == Phase::Ready)
    }

    /// Whether `name` is managed (in any phase).
    pub fn is_managed(&self, name: &NsName) -> bool {
        self.lock().contains_key(name)
    }

    /// The namespace `name` for request `txn`: committed ones, and ones this request is
    /// creating.
    pub fn lookup(&self, name: &NsName, txn: u64) -> Result<NsEntry, Unusable> {
        let entries = self.lock();
        let entry = entries.get(name).ok_or(Unusable::Unknown)?;
        let created_by_this_request = match entry.phase {
            Phase::Ready => false,
            Phase::Creating { txn: t } if t == txn => true,
            Phase::Deleting { txn: t } if t == txn => return Err(Unusable::Deleted),
            Phase::Creating { .. } => {
                return Err(Unusable::Busy("is being created by another request".into()));
            }
            Phase::Deleting { .. } => {
                return Err(Unusable::Busy("is being deleted by another request".into()));
            }
        };
        let netlink = entry.netlink.clone();
        Ok(NsEntry {
            ino: entry.record.netns_ino,
            owner_uid: entry.record.owner_uid,
            netlink,
            created_by_this_request,
        })
    }

    /// The namespace `name` in any phase, for undoing a request's changes inside it.
    pub fn lookup_for_undo(&self, name: &NsName) -> Option<NsEntry> {
        let entries = self.lock();
        let entry = entries.get(name)?;
        let netlink = entry.netlink.clone();
        Some(NsEntry {
            ino: entry.record.netns_ino,
            owner_uid: entry.record.owner_uid,
            netlink,
            created_by_this_request: false,
        })
    }

    /// Keeps a netlink socket opened for namespace `name` (if it is still the same one).
    pub fn store_netlink(&self, name: &NsName, ino: u64, netlink: Netlink) {
        if let Some(entry) = self.lock().get_mut(name) {
            if entry.record.netns_ino == ino && !matches!(entry.phase, Phase::Deleting { .. }) {
                entry.netlink = Some(netlink);
            }
        }
    }

    /// Every managed namespace with its inode, in any phase (to name a veth's peer).
    pub fn all(&self) -> Vec<(NsName, u64)> {
        self.lock()
            .iter()
            .map(|(n, e)| (n.clone(), e.record.netns_ino))
            .collect()
    }

    /// Reserves `name` for a creation by request `txn`: records it (phase `Creating`) in
    /// memory and on disk.
    pub fn reserve(
        &self,
        name: &NsName,
        owner_uid: u32,
        tag: Option<Tag>,
        now_ms: u64,
        txn: u64,
    ) -> Result<(), HelperError> {
        let record = NsRecord::creating(name.clone(), owner_uid, tag, now_ms);
        self.reserve_record(record, txn)
    }

    /// Reserves `name` for a pooled namespace (owned by the helper itself, uid 0).
    pub fn reserve_pool(
        &self,
        name: &NsName,
        now_ms: u64,
        txn: u64,
        pool: PoolFacet,
    ) -> Result<(), HelperError> {
        let mut record = NsRecord::creating(name.clone(), 0, None, now_ms);
        record.pool = Some(pool);
        self.reserve_record(record, txn)
    }

    fn reserve_record(&self, record: NsRecord, txn: u64) -> Result<(), HelperError> {
        let name = &record.name;
        {
            let entries = self.lock();
            if let Some(entry) = entries.get(name) {
                let what = match entry.phase {
                    Phase::Creating { .. } => "is being created by another request",
                    Phase::Ready => "already exists",
                    Phase::Deleting { .. } => "is being deleted by another request",
                };
                return Err(HelperError::AlreadyExists(format!(
                    "Namespace {:?} {what}",
                    name.as_str()
                )));
            }
            check_quota(&entries, self.quotas.get(), record.owner_uid, false)?;
            self.insert_and_save(entries, record, txn)
        }
    }

    /// Inserts `record` as being created by request `txn` (under the lock held as
    /// `entries`), then writes it; if the write fails, the reservation is taken back.
    fn insert_and_save(
        &self,
        mut entries: std::sync::MutexGuard<'_, BTreeMap<NsName, Entry>>,
        record: NsRecord,
        txn: u64,
    ) -> Result<(), HelperError> {
        let name = record.name.clone();
        entries.insert(
            name.clone(),
            Entry {
                record: record.clone(),
                phase: Phase::Creating { txn },
                netlink: None,
                // Nothing in it yet (a loopback link the budget's slack covers).
                objects: Counts::empty(),
            },
        );
        drop(entries);
        if let Err(e) = self.store.save_ns(&record) {
            self.lock().remove(&name);
            return Err(e.into());
        }
        Ok(())
    }

    /// Sets the per-uid quotas (once, at start).
    pub fn set_quotas(&self, quotas: Quotas) {
        let _ = self.quotas.set(quotas);
    }

    /// Reserves `name` for a host (as [`Registry::reserve`]), after checking, under the same
    /// lock, that no other host has its address on its router.
    ///
    /// With `share` (which needs `tag`), a host of `owner_uid` with the same address, router,
    /// interface and secondaries that was added with `share` too is leased instead
    /// ([`HostSlot::Leased`], the lease written to disk before this returns), whatever its
    /// name; the new host is made shared, with the caller's lease.
    #[allow(clippy::too_many_arguments)]
    pub fn reserve_host(
        &self,
        name: &NsName,
        owner_uid: u32,
        tag: Option<Tag>,
        now_ms: u64,
        txn: u64,
        mut host: HostFacet,
        share: bool,
    ) -> Result<HostSlot, HelperError> {
        let lease = match (share, &tag) {
            (false, _) => None,
            (true, Some(t)) => Some(Lease {
                uid: owner_uid,
                tag: t.clone(),
                since_ms: now_ms,
            }),
            (true, None) => {
                return Err(HelperError::InvalidArgument(
                    "A shared host needs a tag: the lease is named by it".into(),
                ));
            }
        };
        let mut record = NsRecord::creating(name.clone(), owner_uid, tag, now_ms);
        {
            let mut entries = self.lock();
            if let Some(entry) = entries.get(name) {
                let Some(existing) = &entry.record.host else {
                    return Err(HelperError::AlreadyExists(format!(
                        "Namespace {:?} exists and is not a host",
                        name.as_str()
                    )));
                };
                if existing.ip != host.ip || existing.router != host.router {
                    return Err(HelperError::Conflict(format!(
                        "Host {name} exists with address {} on router {}",
                        existing.ip, existing.router
                    )));
                }
                match &lease {
                    Some(_) => check_shareable(name, entry, owner_uid, &host)?,
                    None if existing.shared() => {
                        return Err(HelperError::Conflict(format!(
                            "Host {name} is shared: add it with share (and a tag) to take a lease on it"
                        )));
                    }
                    None => {}
                }
            }
            // A shared host with this address on this router, under any name.
            let shared = lease.as_ref().and_then(|_| {
                entries.iter().find_map(|(other, e)| {
                    let h = e.record.host.as_ref()?;
                    (h.router == host.router && h.ip.addr() == host.ip.addr())
                        .then(|| other.clone())
                })
            });
            if let (Some(lease), Some(other)) = (lease.as_ref(), shared) {
                let entry = entries.get_mut(&other).expect("found under the lock");
                check_shareable(&other, entry, owner_uid, &host)?;
                match entry.phase {
                    Phase::Ready => {}
                    Phase::Creating { txn: t } if t == txn => {}
                    _ => return Ok(HostSlot::Wait),
                }
                let facet = entry.record.host.as_mut().expect("a host record");
                if facet.leases.iter().any(|l| l.tag == lease.tag) {
                    return Ok(HostSlot::Reuse(Box::new(entry.record.clone())));
                }
                facet.leases.push(lease.clone());
                // Written under the lock, so that lease changes reach the disk in order.
                if let Err(e) = self.store.save_ns(&entry.record) {
                    let facet = entry.record.host.as_mut().expect("a host record");
                    facet.leases.pop();
                    return Err(e.into());
                }
                return Ok(HostSlot::Leased(Box::new(entry.record.clone())));
            }
            if let Some(entry) = entries.get(name) {
                return Ok(match entry.phase {
                    Phase::Ready => HostSlot::Reuse(Box::new(entry.record.clone())),
                    Phase::Creating { txn: t } if t == txn => {
                        HostSlot::Reuse(Box::new(entry.record.clone()))
                    }
                    _ => HostSlot::Wait,
                });
            }
            for (other, e) in entries.iter() {
                let Some(h) = e.record.host.as_ref() else {
                    continue;
                };
                if h.hidden_end == host.hidden_end {
                    // 48 bits of a hash of the name: practically never, but never silently.
                    return Err(HelperError::Conflict(format!(
                        "Host {name}'s link name {} is host {other}'s; choose another name",
                        host.hidden_end
                    )));
                }
                // A secondary is answered for on the host's eth0 (ARP), so it may be nobody
                // else's address, secondary or gateway, behind any router.
                let theirs_all: Vec<std::net::IpAddr> = std::iter::once(h.ip.addr())
                    .chain(h.secondaries.iter().map(|a| a.addr()))
                    .chain(std::iter::once(h.gateway.0))
                    .collect();
                if let Some(s) = host
                    .secondaries
                    .iter()
                    .find(|s| theirs_all.contains(&s.addr()))
                {
                    return Err(HelperError::Conflict(format!(
                        "Secondary address {} is host {other}'s address, secondary or gateway",
                        s.addr()
                    )));
                }
                if h.bridge == host.bridge
                    && h.secondaries.iter().any(|a| a.addr() == host.ip.addr())
                {
                    return Err(HelperError::Conflict(format!(
                        "Address {} is a secondary of host {other}, on the same bridge {}",
                        host.ip.addr(),
                        h.bridge
                    )));
                }
                if h.bridge == host.bridge && h.ip.addr() == host.ip.addr() {
                    return Err(HelperError::Conflict(format!(
                        "Address {} is taken by host {other} on the same bridge {} (behind router {})",
                        host.ip.addr(),
                        h.bridge,
                        h.router
                    )));
                }
                if h.router != host.router {
                    continue;
                }
                let mut theirs = std::iter::once(&h.ip).chain(&h.secondaries);
                if theirs.any(|a| a.addr() == host.ip.addr()) {
                    return Err(HelperError::Conflict(format!(
                        "Address {} on router {} is taken by host {other} ({})",
                        host.ip.addr(),
                        host.router,
                        h.ip
                    )));
                }
                if host.ip.addr() == h.gateway.0 {
                    return Err(HelperError::Conflict(format!(
                        "Address {} is the gateway of host {other} on router {}",
                        host.ip.addr(),
                        host.router
                    )));
                }
                if host.gateway_added && h.ip.addr() == host.gateway.0 {
                    return Err(HelperError::Conflict(format!(
                        "The gateway {} this host needs on router {} is host {other}'s address",
                        host.gateway, host.router
                    )));
                }
            }
            check_quota(&entries, self.quotas.get(), owner_uid, true)?;
            host.leases = lease.into_iter().collect();
            record.host = Some(host);
            self.insert_and_save(entries, record, txn)?;
        }
        Ok(HostSlot::Reserved)
    }

    /// Takes a committed pooled namespace out of the registry: the caller now holds it, and
    /// must call [`Registry::forget_record`] once its path is gone (until then a crash leaves
    /// it pooled, as it was).
    pub fn take_pool(&self) -> Option<(NsRecord, Option<Netlink>)> {
        let mut entries = self.lock();
        let name = entries
            .iter()
            .find(|(_, e)| e.record.pool.is_some() && e.phase == Phase::Ready)
            .map(|(n, _)| n.clone())?;
        let taken = entries.remove(&name)?;
        Some((taken.record, taken.netlink))
    }

    /// Notes the interface indexes of pooled namespace `name`'s `eth0` and of its parked end
    /// (written with the record when the creation commits).
    pub fn set_pool_index(&self, name: &NsName, eth0: u32, hidden: u32) {
        if let Some(pool) = self
            .lock()
            .get_mut(name)
            .and_then(|e| e.record.pool.as_mut())
        {
            pool.eth0_index = eth0;
            pool.hidden_index = hidden;
        }
    }

    /// Notes the name of host `name`'s end in the hidden namespace (when it came from the
    /// pool, the parked end's name; written with the record when the creation commits).
    pub fn set_host_end(&self, name: &NsName, end: &IfName) {
        if let Some(host) = self
            .lock()
            .get_mut(name)
            .and_then(|e| e.record.host.as_mut())
        {
            host.hidden_end = end.clone();
        }
    }

    /// Removes the record of a namespace no longer in the registry.
    pub fn forget_record(&self, name: &NsName) {
        if let Err(e) = self.store.remove_ns(name) {
            tracing::error!(ns = %name, error = %chain(&e), "Cannot remove a namespace's record");
        }
    }

    /// How many pooled namespaces there are: (committed, being made).
    pub fn pool_count(&self) -> (usize, usize) {
        let entries = self.lock();
        let pooled = entries.values().filter(|e| e.record.pool.is_some());
        pooled.fold((0, 0), |(ready, making), e| match e.phase {
            Phase::Ready => (ready + 1, making),
            _ => (ready, making + 1),
        })
    }

    /// The committed pooled namespaces.
    pub fn pooled(&self) -> Vec<NsName> {
        self.lock()
            .iter()
            .filter(|(_, e)| e.record.pool.is_some() && e.phase == Phase::Ready)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// How many hosts (in any phase) use `gateway` on `router` as a gateway added for hosts.
    pub fn gateway_users(&self, router: &NsName, gateway: &Cidr) -> usize {
        self.lock()
            .values()
            .filter_map(|e| e.record.host.as_ref())
            .filter(|h| h.gateway_added && &h.router == router && &h.gateway_cidr() == gateway)
            .count()
    }

    /// The record of host `name`, in any phase, with its phase's name.
    pub fn host(&self, name: &NsName) -> Option<(NsRecord, &'static str)> {
        let entries = self.lock();
        let entry = entries.get(name)?;
        entry.record.host.as_ref()?;
        Some((entry.record.clone(), phase_name(entry.phase)))
    }

    /// Every host, in any phase, by name, with its phase's name.
    pub fn hosts(&self) -> Vec<(NsRecord, &'static str)> {
        self.lock()
            .values()
            .filter(|e| e.record.host.is_some())
            .map(|e| (e.record.clone(), phase_name(e.phase)))
            .collect()
    }

    /// Notes the kernel side of a reserved namespace. With `persist`, the inode is written to
    /// disk at once (for requests that will not commit right away).
    pub fn created(
        &self,
        name: &NsName,
        ino: u64,
        netlink: Netlink,
        persist: bool,
    ) -> Result<(), StateError> {
        let record = {
            let mut entries = self.lock();
            let Some(entry) = entries.get_mut(name) else {
                return Ok(());
            };
            entry.record.netns_ino = ino;
            entry.netlink = Some(netlink);
            entry.record.clone()
        };
        if persist {
            self.store.save_ns(&record)
        } else {
            Ok(())
        }
    }

    /// Commits a creation: phase `Ready`, record `ready` on disk.
    pub fn commit_created(&self, name: &NsName) -> Result<(), StateError> {
        let mut record = match self.lock().get(name) {
            Some(entry) => entry.record.clone(),
            None => return Ok(()),
        };
        record.state = RecordState::Ready;
        self.store.save_ns(&record)?;
        if let Some(entry) = self.lock().get_mut(name) {
            entry.record = record;
            entry.phase = Phase::Ready;
        }
        Ok(())
    }

    /// Gives up a reservation that request `txn` made and has not committed, if it is still
    /// there (a failed operation may have given it up already, and another request may have
    /// taken the name since). Returns the namespace's inode if one was made under it.
    pub fn abort_reservation(&self, name: &NsName, txn: u64) -> Option<u64> {
        let ino = {
            let mut entries = self.lock();
            match entries.get(name) {
                Some(entry) if entry.phase == (Phase::Creating { txn }) => {
                    let ino = entry.record.netns_ino;
                    entries.remove(name);
                    ino
                }
                _ => return None,
            }
        };
        if let Err(e) = self.store.remove_ns(name) {
            tracing::error!(ns = %name, error = %chain(&e), "Cannot remove the record of an undone namespace");
        }
        (ino != 0).then_some(ino)
    }

    /// Forgets a creation that was undone (or failed).
    pub fn abort_create(&self, name: &NsName) {
        self.lock().remove(name);
        if let Err(e) = self.store.remove_ns(name) {
            tracing::error!(ns = %name, error = %chain(&e), "Cannot remove the record of an undone namespace");
        }
    }

    /// Starts deleting `name` for request `txn` on behalf of `uid`: checks ownership, marks it
    /// `Deleting`, and returns its inode. Its netlink socket is closed.
    pub fn begin_delete(
        &self,
        name: &NsName,
        uid: u32,
        admin: bool,
        txn: u64,
    ) -> Result<u64, HelperError> {
        let mut entries = self.lock();
        let Some(entry) = entries.get_mut(name) else {
            return Err(HelperError::NotFound(format!(
                "Namespace {:?} is not managed by this helper",
                name.as_str()
            )));
        };
        Self::check_deletable(name, entry, uid, admin, txn)?;
        self.store.check_removable()?;
        entry.phase = Phase::Deleting { txn };
        entry.netlink = None;
        Ok(entry.record.netns_ino)
    }

    /// Releases what `how` says of host `name` for request `txn` on behalf of `uid` (see
    /// [`Release`]): a lease, written to disk at once, or, with the last lease (or a host
    /// that is not shared), the host, whose deletion begins as [`Registry::begin_delete`]'s
    /// does, in the same step, so that no lease can be taken on a host being deleted.
    pub fn release_host(
        &self,
        name: &NsName,
        uid: u32,
        admin: bool,
        txn: u64,
        how: &Release,
    ) -> Result<Released, HelperError> {
        let mut entries = self.lock();
        let Some(entry) = entries.get_mut(name) else {
            return Err(HelperError::NotFound(format!("There is no host {name}")));
        };
        let Some(host) = entry.record.host.as_ref() else {
            return Err(HelperError::NotFound(format!(
                "Namespace {name} is not a host"
            )));
        };
        Self::check_deletable(name, entry, uid, admin, txn)?;
        let tags = || {
            host.leases
                .iter()
                .map(|l| l.tag.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let lease_at = match how {
            Release::All => None,
            Release::Sole if host.leases.len() > 1 => {
                return Err(HelperError::Conflict(format!(
                    "Host {name} is shared by {} leases ({}); give the tag of yours to release it",
                    host.leases.len(),
                    tags()
                )));
            }
            Release::Sole => None,
            Release::Tag(t) if !host.shared() => {
                if entry.record.tag.as_ref() != Some(t) {
                    return Err(HelperError::NotFound(format!(
                        "Host {name} is not shared and is not tagged {t}"
                    )));
                }
                None
            }
            Release::Tag(t) => match host.leases.iter().position(|l| &l.tag == t) {
                None => {
                    return Err(HelperError::NotFound(format!(
                        "Host {name} has no lease tagged {t} (its leases: {})",
                        tags()
                    )));
                }
                Some(_) if host.leases.len() == 1 => None,
                Some(i) => Some(i),
            },
        };
        if let Some(i) = lease_at {
            let facet = entry.record.host.as_mut().expect("a host record");
            let lease = facet.leases.remove(i);
            if let Err(e) = self.store.save_ns(&entry.record) {
                let facet = entry.record.host.as_mut().expect("a host record");
                facet.leases.insert(i, lease);
                return Err(e.into());
            }
            return Ok(Released::Lease(lease));
        }
        self.store.check_removable()?;
        entry.phase = Phase::Deleting { txn };
        entry.netlink = None;
        Ok(Released::Deleting(entry.record.netns_ino))
    }

    /// Puts back a lease [`Registry::release_host`] released (undo), if the host is still
    /// there.
    pub fn restore_lease(&self, name: &NsName, lease: Lease) {
        let mut entries = self.lock();
        let Some(entry) = entries.get_mut(name) else {
            return;
        };
        let Some(facet) = entry.record.host.as_mut() else {
            return;
        };
        if facet.leases.iter().any(|l| l.tag == lease.tag) {
            return;
        }
        let at = facet
            .leases
            .partition_point(|l| l.since_ms <= lease.since_ms);
        facet.leases.insert(at, lease);
        if let Err(e) = self.store.save_ns(&entry.record) {
            tracing::error!(ns = %name, error = %chain(&e), "Cannot write a host's lease back");
        }
    }

    /// Gives up the lease `tag` that request `txn` took on host `name` (undo). If it was the
    /// last lease (the others were released meanwhile), the host's deletion begins instead,
    /// as in [`Registry::release_host`], and its inode is returned: the caller deletes it.
    pub fn drop_lease(&self, name: &NsName, tag: &Tag, txn: u64) -> Option<u64> {
        let mut entries = self.lock();
        let entry = entries.get_mut(name)?;
        let facet = entry.record.host.as_mut()?;
        let i = facet.leases.iter().position(|l| &l.tag == tag)?;
        if facet.leases.len() > 1 {
            facet.leases.remove(i);
            if let Err(e) = self.store.save_ns(&entry.record) {
                tracing::error!(ns = %name, error = %chain(&e), "Cannot write a host's leases");
            }
            return None;
        }
        if entry.phase != Phase::Ready {
            // Another request is deleting it (or this one is creating it: its reservation's
            // undo removes it).
            return None;
        }
        entry.phase = Phase::Deleting { txn };
        entry.netlink = None;
        Some(entry.record.netns_ino)
    }

    /// Whether request `txn` of `uid` may delete the entry `name` now.
    fn check_deletable(
        name: &NsName,
        entry: &Entry,
        uid: u32,
        admin: bool,
        txn: u64,
    ) -> Result<(), HelperError> {
        match entry.phase {
            Phase::Ready => {}
            Phase::Creating { txn: t } if t == txn => {}
            Phase::Creating { .. } => {
                return Err(HelperError::Busy(format!(
                    "Namespace {:?} is being created by another request",
                    name.as_str()
                )));
            }
            Phase::Deleting { txn: t } if t == txn => {
                return Err(HelperError::NotFound(format!(
                    "Namespace {:?} was deleted earlier in this request",
                    name.as_str()
                )));
            }
            Phase::Deleting { .. } => {
                return Err(HelperError::Busy(format!(
                    "Namespace {:?} is being deleted by another request",
                    name.as_str()
                )));
            }
        }
        if !admin && entry.record.owner_uid != uid {
            return Err(HelperError::PermissionDenied(format!(
                "Namespace {:?} belongs to uid {}; only its owner, root or the admin group may delete it",
                name.as_str(),
                entry.record.owner_uid
            )));
        }
        Ok(())
    }

    /// Commits a deletion: forgets the namespace and removes its record.
    pub fn finish_delete(&self, name: &NsName) {
        self.lock().remove(name);
        if let Err(e) = self.store.remove_ns(name) {
            tracing::error!(ns = %name, error = %chain(&e), "Cannot remove the record of a deleted namespace");
        }
    }

    /// Undoes [`Registry::begin_delete`] by request `txn`: the namespace is back in the phase
    /// it had (committed, or being created by that same request).
    pub fn abort_delete(&self, name: &NsName, txn: u64) {
        if let Some(entry) = self.lock().get_mut(name) {
            entry.phase = match entry.record.state {
                RecordState::Ready => Phase::Ready,
                RecordState::Creating => Phase::Creating { txn },
            };
        }
    }

    /// The object counts of `name` and the sum of those of `uid`'s other namespaces.
    pub fn objects(&self, name: &NsName, uid: u32) -> (Counts, u64) {
        let entries = self.lock();
        let mine = entries.get(name).map(|e| e.objects).unwrap_or_default();
        let others = entries
            .iter()
            .filter(|(n, e)| e.record.owner_uid == uid && *n != name)
            .map(|(_, e)| e.objects.total())
            .fold(0, u64::saturating_add);
        (mine, others)
    }

    /// Under one lock: sets `part` of `name` to `base` when given, then adds `add` to it
    /// if `uid`'s total stays within `quota` and every count that `exact` names is known.
    /// `Err` carries the total the charge would reach (`None`: a count must be measured
    /// first).
    pub fn charge_objects(
        &self,
        name: &NsName,
        uid: u32,
        (part, base, add): (Part, Option<u64>, u64),
        quota: u64,
    ) -> Result<(), Option<u64>> {
        let mut entries = self.lock();
        let others = entries
            .iter()
            .filter(|(n, e)| e.record.owner_uid == uid && *n != name)
            .map(|(_, e)| e.objects.total())
            .fold(0, u64::saturating_add);
        let Some(entry) = entries.get_mut(name) else {
            return Ok(());
        };
        if let Some(b) = base {
            *entry.objects.slot(part) = Some(b);
        }
        if entry.objects.netlink.is_none() || entry.objects.get(part).is_none() {
            return Err(None);
        }
        let total = others
            .saturating_add(entry.objects.total())
            .saturating_add(add);
        if total > quota {
            return Err(Some(total));
        }
        let slot = entry.objects.slot(part);
        *slot = Some(slot.unwrap_or(0).saturating_add(add));
        Ok(())
    }

    /// Sets `part` of `name` to a measured `count`.
    pub fn set_objects(&self, name: &NsName, part: Part, count: u64) {
        if let Some(e) = self.lock().get_mut(name) {
            *e.objects.slot(part) = Some(count);
        }
    }

    /// Takes `n` deleted netlink objects off the count of `name` (still an upper bound).
    pub fn uncharge_objects(&self, name: &NsName, n: u64) {
        if let Some(e) = self.lock().get_mut(name)
            && let Some(c) = e.objects.netlink.as_mut()
        {
            *c = c.saturating_sub(n);
        }
    }

    /// `uid`'s namespaces other than `except`, with their inodes and open sockets.
    pub fn owned_by(&self, uid: u32, except: &NsName) -> Vec<(NsName, u64, Option<Netlink>)> {
        self.lock()
            .iter()
            .filter(|(n, e)| e.record.owner_uid == uid && *n != except && e.phase == Phase::Ready)
            .map(|(n, e)| (n.clone(), e.record.netns_ino, e.netlink.clone()))
            .collect()
    }

    /// The committed namespaces, sorted by name.
    pub fn list(&self) -> Vec<NsInfo> {
        self.lock()
            .values()
            .filter(|e| e.phase == Phase::Ready)
            .map(|e| e.record.info())
            .collect()
    }

    /// How many namespaces are committed.
    pub fn count(&self) -> usize {
        self.lock()
            .values()
            .filter(|e| e.phase == Phase::Ready)
            .count()
    }
}

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Creating { .. } => "creating",
        Phase::Ready => "ready",
        Phase::Deleting { .. } => "deleting",
    }
}

fn roll_back(netns: &Netns, name: &NsName) {
    match netns.remove_blocking(name) {
        Ok(()) => {
            tracing::info!(ns = %name, "Rolled back a namespace whose creation was interrupted")
        }
        Err(e) => {
            tracing::error!(ns = %name, error = %chain(&e), "Cannot roll back an interrupted namespace creation")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::managed::state::HostFacet;

    fn entry(name: &str, uid: u32, host: bool) -> (NsName, Entry) {
        let name: NsName = name.parse().unwrap();
        let mut record = NsRecord::creating(name.clone(), uid, None, 0);
        if host {
            record.host = Some(HostFacet {
                ip: "10.0.0.5/24".parse().unwrap(),
                secondaries: Vec::new(),
                router: "r1".parse().unwrap(),
                router_if: "eth0".parse().unwrap(),
                bridge: "br0".parse().unwrap(),
                gateway: "10.0.0.1".parse().unwrap(),
                gateway_added: false,
                hidden_end: "h1".parse().unwrap(),
                leases: Vec::new(),
            });
        }
        let e = Entry {
            record,
            phase: Phase::Ready,
            netlink: None,
            objects: Counts::default(),
        };
        (name, e)
    }

    #[test]
    fn quotas_count_what_a_uid_owns() {
        let q = Quotas {
            namespaces: 3,
            hosts: 1,
        };
        let entries: BTreeMap<NsName, Entry> = [
            entry("a", 1000, false),
            entry("h", 1000, true),
            entry("x", 1001, true),
        ]
        .into_iter()
        .collect();
        // uid 1000: 2 namespaces (one a host) of 3; hosts 1 of 1.
        assert!(check_quota(&entries, Some(&q), 1000, false).is_ok());
        let e = check_quota(&entries, Some(&q), 1000, true).unwrap_err();
        assert_eq!(e.code(), tsim_protocol::ErrorCode::QuotaExceeded);
        assert!(e.to_string().contains("1 hosts"), "{e}");
        // Another uid has its own count; root and "no quotas" are never refused.
        assert!(check_quota(&entries, Some(&q), 1001, false).is_ok());
        let full: BTreeMap<NsName, Entry> =
            (0..3).map(|i| entry(&format!("n{i}"), 0, true)).collect();
        assert!(check_quota(&full, Some(&q), 0, true).is_ok());
        assert!(check_quota(&full, None, 1000, true).is_ok());
        let full: BTreeMap<NsName, Entry> =
            (0..3).map(|i| entry(&format!("n{i}"), 7, false)).collect();
        assert!(check_quota(&full, Some(&q), 7, false).is_err());
    }

    fn registry(dir: &std::path::Path) -> Registry {
        Registry {
            entries: Mutex::new(BTreeMap::new()),
            store: StateStore::open(dir).unwrap(),
            quotas: std::sync::OnceLock::new(),
        }
    }

    fn facet(ip: &str, end: &str) -> HostFacet {
        HostFacet {
            ip: ip.parse().unwrap(),
            secondaries: Vec::new(),
            router: "r1".parse().unwrap(),
            router_if: "eth0".parse().unwrap(),
            bridge: "br0".parse().unwrap(),
            gateway: "10.0.0.1".parse().unwrap(),
            gateway_added: false,
            hidden_end: end.parse().unwrap(),
            leases: Vec::new(),
        }
    }

    fn n(s: &str) -> NsName {
        s.parse().unwrap()
    }

    fn t(s: &str) -> Tag {
        s.parse().unwrap()
    }

    /// Adds host `name` for uid 1000 (shared under `tag` when given) and commits it.
    fn add(r: &Registry, name: &str, ip: &str, tag: Option<&str>, txn: u64) -> HostSlot {
        let slot = r
            .reserve_host(
                &n(name),
                1000,
                tag.map(t),
                txn,
                txn,
                facet(ip, &format!("h{name}")),
                tag.is_some(),
            )
            .unwrap();
        if slot == HostSlot::Reserved {
            r.commit_created(&n(name)).unwrap();
        }
        slot
    }

    fn leases(r: &Registry, name: &str) -> Vec<String> {
        let (record, _) = r.host(&n(name)).unwrap();
        let h = record.host.unwrap();
        h.leases.iter().map(|l| l.tag.to_string()).collect()
    }

    #[test]
    fn shared_hosts_go_with_their_last_lease() {
        let dir = tempfile::tempdir().unwrap();
        let r = registry(dir.path());
        assert_eq!(
            add(&r, "job1-s", "10.0.0.5/24", Some("job1"), 1),
            HostSlot::Reserved
        );
        // Another job, another name, the same address and router: a lease on job1-s.
        let HostSlot::Leased(record) = add(&r, "job2-s", "10.0.0.5/24", Some("job2"), 2) else {
            panic!("not leased");
        };
        assert_eq!(record.name, n("job1-s"));
        assert!(r.host(&n("job2-s")).is_none());
        // The same lease asked again is reused, not counted twice.
        assert!(matches!(
            add(&r, "job2-s", "10.0.0.5/24", Some("job2"), 3),
            HostSlot::Reuse(_)
        ));
        assert!(matches!(
            add(&r, "job3-x", "10.0.0.5/24", Some("job3"), 4),
            HostSlot::Leased(_)
        ));
        assert_eq!(leases(&r, "job1-s"), ["job1", "job2", "job3"]);
        // The leases are on disk: a restart finds them.
        let (records, bad) = StateStore::open(dir.path()).unwrap().load_ns().unwrap();
        assert!(bad.is_empty());
        let on_disk = records[0].host.as_ref().unwrap();
        assert_eq!(on_disk.leases.len(), 3);
        // Without a tag, a host with several leases is not deleted.
        let e = r
            .release_host(&n("job1-s"), 1000, false, 5, &Release::Sole)
            .unwrap_err();
        assert_eq!(e.code(), tsim_protocol::ErrorCode::Conflict, "{e}");
        assert!(e.to_string().contains("job1, job2, job3"), "{e}");
        let e = r
            .release_host(&n("job1-s"), 1000, false, 5, &Release::Tag(t("job9")))
            .unwrap_err();
        assert_eq!(e.code(), tsim_protocol::ErrorCode::NotFound, "{e}");
        // The creator's lease goes first; the host stays for the others.
        let released = r
            .release_host(&n("job1-s"), 1000, false, 5, &Release::Tag(t("job1")))
            .unwrap();
        assert!(matches!(released, Released::Lease(ref l) if l.tag == t("job1")));
        assert_eq!(leases(&r, "job1-s"), ["job2", "job3"]);
        // Undoing a release puts the lease back, in its place.
        let Released::Lease(lease) = released else {
            unreachable!()
        };
        r.restore_lease(&n("job1-s"), lease);
        assert_eq!(leases(&r, "job1-s"), ["job1", "job2", "job3"]);
        for tag in ["job1", "job3"] {
            r.release_host(&n("job1-s"), 1000, false, 6, &Release::Tag(t(tag)))
                .unwrap();
        }
        // Undoing a lease that is not the last only drops it.
        assert!(matches!(
            add(&r, "job4-s", "10.0.0.5/24", Some("job4"), 7),
            HostSlot::Leased(_)
        ));
        assert_eq!(r.drop_lease(&n("job1-s"), &t("job4"), 7), None);
        assert_eq!(leases(&r, "job1-s"), ["job2"]);
        // The last lease takes the host with it, in the same step: nobody can lease it now.
        let gone = r
            .release_host(&n("job1-s"), 1000, false, 8, &Release::Tag(t("job2")))
            .unwrap();
        assert!(matches!(gone, Released::Deleting(_)));
        assert_eq!(r.host(&n("job1-s")).unwrap().1, "deleting");
        assert_eq!(
            add(&r, "job5-s", "10.0.0.5/24", Some("job5"), 9),
            HostSlot::Wait
        );
        r.finish_delete(&n("job1-s"));
        assert_eq!(
            add(&r, "job5-s", "10.0.0.5/24", Some("job5"), 10),
            HostSlot::Reserved
        );
    }

    #[test]
    fn an_undone_lease_that_was_the_last_deletes_the_host() {
        let dir = tempfile::tempdir().unwrap();
        let r = registry(dir.path());
        add(&r, "a", "10.0.0.5/24", Some("ja"), 1);
        assert!(matches!(
            add(&r, "b", "10.0.0.5/24", Some("jb"), 2),
            HostSlot::Leased(_)
        ));
        r.release_host(&n("a"), 1000, false, 3, &Release::Tag(t("ja")))
            .unwrap();
        // Request 2 is undone after its lease became the host's only one.
        assert!(r.drop_lease(&n("a"), &t("jb"), 2).is_some());
        assert_eq!(r.host(&n("a")).unwrap().1, "deleting");
    }

    #[test]
    fn sharing_is_asked_for_on_both_sides_and_within_one_uid() {
        let dir = tempfile::tempdir().unwrap();
        let r = registry(dir.path());
        let code = |slot: Result<HostSlot, HelperError>| slot.unwrap_err().code();
        let conflict = tsim_protocol::ErrorCode::Conflict;
        add(&r, "plain", "10.0.0.5/24", None, 1);
        // A host added without share is not leased ...
        let shared = r.reserve_host(
            &n("x"),
            1000,
            Some(t("j")),
            2,
            2,
            facet("10.0.0.5/24", "hx"),
            true,
        );
        assert_eq!(code(shared), conflict);
        // ... and a shared host is not taken without share, under its name or another.
        add(&r, "s", "10.0.0.6/24", Some("j1"), 3);
        for name in ["s", "y"] {
            let plain = r.reserve_host(
                &n(name),
                1000,
                None,
                4,
                4,
                facet("10.0.0.6/24", "hy"),
                false,
            );
            assert_eq!(code(plain), conflict);
        }
        // Another uid may not lease it: it could keep the owner's host alive.
        let other = r.reserve_host(
            &n("z"),
            1001,
            Some(t("j2")),
            5,
            5,
            facet("10.0.0.6/24", "hz"),
            true,
        );
        let e = other.unwrap_err();
        assert_eq!(e.code(), conflict);
        assert!(e.to_string().contains("within one uid"), "{e}");
        // Nor another prefix or other secondaries.
        let wider = r.reserve_host(
            &n("w"),
            1000,
            Some(t("j3")),
            6,
            6,
            facet("10.0.0.6/16", "hw"),
            true,
        );
        assert_eq!(code(wider), conflict);
        let mut f = facet("10.0.0.6/24", "hv");
        f.secondaries = vec!["192.0.2.9/32".parse().unwrap()];
        let more = r.reserve_host(&n("v"), 1000, Some(t("j4")), 7, 7, f, true);
        assert_eq!(code(more), conflict);
        // Share needs a tag (the lease's name).
        let untagged = r.reserve_host(&n("u"), 1000, None, 8, 8, facet("10.0.0.7/24", "hu"), true);
        assert_eq!(code(untagged), tsim_protocol::ErrorCode::InvalidArgument);
        // A host that is not shared is deleted by tag only if it has that tag.
        let e = r
            .release_host(&n("plain"), 1000, false, 9, &Release::Tag(t("j")))
            .unwrap_err();
        assert_eq!(e.code(), tsim_protocol::ErrorCode::NotFound);
        assert!(matches!(
            r.release_host(&n("plain"), 1000, false, 9, &Release::Sole),
            Ok(Released::Deleting(_))
        ));
        // Only the owner (or an admin) releases anything.
        let e = r
            .release_host(&n("s"), 1001, false, 10, &Release::Tag(t("j1")))
            .unwrap_err();
        assert_eq!(e.code(), tsim_protocol::ErrorCode::PermissionDenied);
    }
}
