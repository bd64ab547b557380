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

use tsim_protocol::ops::NsInfo;
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
    /// The same host (name, address, router) exists: here is its record.
    Reuse(Box<NsRecord>),
    /// The same host is being created or deleted by another request: ask again later.
    Wait,
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
    pub fn reserve_host(
        &self,
        name: &NsName,
        owner_uid: u32,
        tag: Option<Tag>,
        now_ms: u64,
        txn: u64,
        host: HostFacet,
    ) -> Result<HostSlot, HelperError> {
        let mut record = NsRecord::creating(name.clone(), owner_uid, tag, now_ms);
        {
            let entries = self.lock();
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
        self.store.check_removable()?;
        entry.phase = Phase::Deleting { txn };
        entry.netlink = None;
        Ok(entry.record.netns_ino)
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
}
