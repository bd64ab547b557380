//! The managed namespaces: kept in memory, persisted through [`crate::state`], and
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
use tsim_protocol::{NsName, Tag};

use crate::error::{HelperError, chain};
use crate::netlink::Netlink;
use crate::netns::{Netns, PathState};
use crate::state::{NsRecord, RecordState, StateError, StateStore};

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
}

/// The helper's managed namespaces.
#[derive(Debug)]
pub struct Registry {
    entries: Mutex<BTreeMap<NsName, Entry>>,
    store: StateStore,
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
            store.remove_ns(&name)?;
        }
        let registry = Self {
            entries: Mutex::new(entries),
            store,
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
        {
            let mut entries = self.lock();
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
            entries.insert(
                name.clone(),
                Entry {
                    record: record.clone(),
                    phase: Phase::Creating { txn },
                    netlink: None,
                },
            );
        }
        if let Err(e) = self.store.save_ns(&record) {
            self.lock().remove(name);
            return Err(e.into());
        }
        Ok(())
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
