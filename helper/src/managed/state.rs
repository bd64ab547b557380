//! The on-disk registry: one small JSON record per managed object, written atomically.
//!
//! Layout under the state directory (default `/run/tsim`):
//!
//! ```text
//! ns/<name>.json     one record per managed namespace
//! net.json           the applied simulated network
//! services.json      the echo services, all in one record
//! ```
//!
//! A record is written to a temporary file and renamed over the old one, so a reader (the
//! next helper start) sees either the old or the new record, never a torn one. There is no
//! fsync: the records describe kernel objects that do not survive a machine crash either,
//! and against a process crash the rename alone is atomic.
//!
//! These records are the only serializable types outside `tsim-protocol`; they are private
//! to the helper and versioned separately from the wire.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};

use tsim_protocol::net::Ip;
use tsim_protocol::ops::{NetWarning, NsInfo, Transport};
use tsim_protocol::topology::Topology;
use tsim_protocol::{Cidr, IfName, NsName, Tag};

pub(crate) use crate::base::error::StateError;

/// Version of the record format.
const RECORD_VERSION: u32 = 1;

/// Whether a namespace's creation is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordState {
    /// Created (or being created) by a request that has not committed; rolled back at start.
    Creating,
    /// Committed.
    Ready,
}

/// The persisted record of one managed namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NsRecord {
    /// Record format version.
    pub version: u32,
    /// The namespace's name.
    pub name: NsName,
    /// The uid of the peer that created it.
    pub owner_uid: u32,
    /// Its tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<Tag>,
    /// Creation time, Unix milliseconds.
    pub created_ms: u64,
    /// The namespace's inode number (nsfs), 0 while not yet known. Used to recognise our
    /// namespace under `/run/netns` and never mistake another one for it.
    pub netns_ino: u64,
    /// Committed or not.
    pub state: RecordState,
    /// Set when the namespace is a host of the simulated network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostFacet>,
    /// Set when the namespace is a pre-created one, waiting in the pool to become a host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<PoolFacet>,
}

/// What makes a namespace a host: where it hangs off the network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostFacet {
    /// Its primary address.
    pub ip: Cidr,
    /// Its other addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secondaries: Vec<Cidr>,
    /// The router it hangs off.
    pub router: NsName,
    /// The router's interface facing it.
    pub router_if: IfName,
    /// The bridge its `eth0` is attached to.
    pub bridge: IfName,
    /// Its default gateway.
    pub gateway: Ip,
    /// Whether the gateway was added to the router for hosts (then it is removed with the
    /// last host that needs it, and recovery removes it if no host does).
    #[serde(default)]
    pub gateway_added: bool,
    /// The name of its veth's end in the hidden namespace.
    pub hidden_end: IfName,
    /// Its leases, oldest first, if it was added with `share` (never empty then: the host
    /// goes with its last lease, in the same registry step that removes it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leases: Vec<tsim_protocol::ops::Lease>,
}

impl HostFacet {
    /// Whether it was added with `share`.
    pub fn shared(&self) -> bool {
        !self.leases.is_empty()
    }

    /// The gateway as an address on the router interface (with the host's prefix).
    pub fn gateway_cidr(&self) -> Cidr {
        Cidr::new(self.gateway.0, self.ip.prefix()).expect("the prefix of a valid CIDR")
    }
}

/// What makes a namespace a pooled one: its veth's end parked in the hidden namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolFacet {
    /// The name of its veth's end in the hidden namespace.
    pub hidden_end: IfName,
    /// That end's interface index (0 until known).
    #[serde(default)]
    pub hidden_index: u32,
    /// The index of `eth0` inside the namespace (0 until known).
    #[serde(default)]
    pub eth0_index: u32,
}

impl NsRecord {
    /// A fresh record in state `Creating`.
    pub fn creating(name: NsName, owner_uid: u32, tag: Option<Tag>, created_ms: u64) -> Self {
        Self {
            version: RECORD_VERSION,
            name,
            owner_uid,
            tag,
            created_ms,
            netns_ino: 0,
            state: RecordState::Creating,
            host: None,
            pool: None,
        }
    }

    /// The wire view of this record.
    pub fn info(&self) -> NsInfo {
        NsInfo {
            name: self.name.clone(),
            owner_uid: self.owner_uid,
            tag: self.tag.clone(),
            created_ms: self.created_ms,
        }
    }
}

/// The persisted record of the applied simulated network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetRecord {
    /// Record format version.
    pub version: u32,
    /// The network as applied (policy routes and rules only if they were asked for).
    pub topology: Topology,
    /// Whether policy tables and rules were asked for.
    pub policy_tables: bool,
    /// What was left out.
    pub warnings: Vec<NetWarning>,
    /// When, Unix milliseconds.
    pub applied_ms: u64,
}

impl NetRecord {
    /// A record of the current format.
    pub fn new(
        topology: Topology,
        policy_tables: bool,
        warnings: Vec<NetWarning>,
        applied_ms: u64,
    ) -> Self {
        Self {
            version: RECORD_VERSION,
            topology,
            policy_tables,
            warnings,
            applied_ms,
        }
    }
}

/// An echo service, as recorded so that a restarted helper binds it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SvcRecord {
    /// The namespace it listens in.
    pub ns: NsName,
    /// That namespace's inode number when the service started: a namespace replaced since
    /// does not get the service back.
    pub ino: u64,
    /// The local address.
    pub ip: Ip,
    /// The port.
    pub port: u16,
    /// `tcp` or `udp`.
    pub proto: Transport,
    /// Who started it.
    pub owner_uid: u32,
    /// Its tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<Tag>,
    /// When it was started, Unix milliseconds.
    pub created_ms: u64,
}

/// The file of every service.
#[derive(Debug, Serialize, Deserialize)]
struct SvcFile {
    version: u32,
    services: Vec<SvcRecord>,
}

/// A record file that could not be read; reported and left in place for an operator.
#[derive(Debug)]
pub struct BadRecord {
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub reason: String,
}

/// The state directory.
#[derive(Debug)]
pub struct StateStore {
    dir: PathBuf,
    ns_dir: PathBuf,
    /// The applied network as last read or written (`None`: not read yet).
    net_cache: Mutex<Option<Option<Arc<NetRecord>>>>,
}

impl StateStore {
    /// Opens (creating if needed) the state directory, refusing one that another user could
    /// tamper with: it must be a real directory (not a symlink), owned by the helper's user,
    /// and not writable by group or others.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        ensure_private_dir(dir, 0o755)?;
        let ns_dir = dir.join("ns");
        ensure_private_dir(&ns_dir, 0o700)?;
        Ok(Self {
            dir: dir.to_owned(),
            ns_dir,
            net_cache: Mutex::new(None),
        })
    }

    fn ns_path(&self, name: &NsName) -> PathBuf {
        self.ns_dir.join(format!("{name}.json"))
    }

    /// Writes a namespace record atomically.
    pub fn save_ns(&self, record: &NsRecord) -> Result<(), StateError> {
        let path = self.ns_path(&record.name);
        let json = serde_json::to_vec_pretty(record).expect("a record always serializes");
        write_atomic(&path, &json).map_err(|source| StateError::Write { path, source })
    }

    /// Checks that namespace records can be removed (the directory is writable by the helper,
    /// as it runs now), so that a deletion fails before it starts rather than leaving a record
    /// of a namespace that is gone. A full file system does not stop a removal.
    pub fn check_removable(&self) -> Result<(), StateError> {
        use nix::unistd::{AccessFlags, faccessat};
        faccessat(
            nix::fcntl::AT_FDCWD,
            &self.ns_dir,
            AccessFlags::W_OK | AccessFlags::X_OK,
            nix::fcntl::AtFlags::AT_EACCESS,
        )
        .map_err(|e| StateError::Remove {
            path: self.ns_dir.clone(),
            source: io::Error::from(e),
        })
    }

    /// Removes a namespace record; a missing record is not an error.
    pub fn remove_ns(&self, name: &NsName) -> Result<(), StateError> {
        let path = self.ns_path(name);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StateError::Remove { path, source }),
        }
    }

    fn net_path(&self) -> PathBuf {
        self.dir.join("net.json")
    }

    /// The applied network's record, if there is one.
    pub fn load_net(&self) -> Result<Option<NetRecord>, StateError> {
        let path = self.net_path();
        match read_nofollow(&path) {
            Ok(bytes) => match serde_json::from_slice::<NetRecord>(&bytes) {
                Ok(record) if record.version == RECORD_VERSION => Ok(Some(record)),
                Ok(record) => Err(StateError::UnsafeDir {
                    path,
                    reason: format!("unknown network record version {}", record.version),
                }),
                Err(e) => Err(StateError::UnsafeDir {
                    path,
                    reason: format!("unreadable network record: {e}"),
                }),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StateError::Dir { path, source }),
        }
    }

    /// The applied network's record, shared and read from disk only once.
    pub fn net(&self) -> Result<Option<Arc<NetRecord>>, StateError> {
        let mut cache = self.net_cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cached) = cache.as_ref() {
            return Ok(cached.clone());
        }
        let loaded = self.load_net()?.map(Arc::new);
        *cache = Some(loaded.clone());
        Ok(loaded)
    }

    /// Writes (or, with `None`, removes) the applied network's record.
    pub fn save_net(&self, record: Option<&NetRecord>) -> Result<(), StateError> {
        let written = self.write_net(record);
        // Whatever happened on disk, the next read goes to the disk again.
        *self.net_cache.lock().unwrap_or_else(|p| p.into_inner()) = match (&written, record) {
            (Ok(()), r) => Some(r.cloned().map(Arc::new)),
            (Err(_), _) => None,
        };
        written
    }

    fn write_net(&self, record: Option<&NetRecord>) -> Result<(), StateError> {
        let path = self.net_path();
        match record {
            Some(record) => {
                let json = serde_json::to_vec(record).expect("a record always serializes");
                write_atomic(&path, &json).map_err(|source| StateError::Write { path, source })
            }
            None => match fs::remove_file(&path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(source) => Err(StateError::Remove { path, source }),
            },
        }
    }

    fn svc_path(&self) -> PathBuf {
        self.dir.join("services.json")
    }

    /// Writes the records of every running service (all of them, atomically).
    pub fn save_services(&self, services: &[SvcRecord]) -> Result<(), StateError> {
        let path = self.svc_path();
        let file = SvcFile {
            version: RECORD_VERSION,
            services: services.to_vec(),
        };
        let json = serde_json::to_vec(&file).expect("a record always serializes");
        write_atomic(&path, &json).map_err(|source| StateError::Write { path, source })
    }

    /// The recorded services (none if there is no record).
    pub fn load_services(&self) -> Result<Vec<SvcRecord>, StateError> {
        let path = self.svc_path();
        match read_nofollow(&path) {
            Ok(bytes) => match serde_json::from_slice::<SvcFile>(&bytes) {
                Ok(file) if file.version == RECORD_VERSION => Ok(file.services),
                Ok(file) => Err(StateError::UnsafeDir {
                    path,
                    reason: format!("unknown services record version {}", file.version),
                }),
                Err(e) => Err(StateError::UnsafeDir {
                    path,
                    reason: format!("unreadable services record: {e}"),
                }),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(source) => Err(StateError::Dir { path, source }),
        }
    }

    /// Reads every namespace record. Unreadable ones are returned apart, untouched.
    pub fn load_ns(&self) -> Result<(Vec<NsRecord>, Vec<BadRecord>), StateError> {
        let dir_err = |source| StateError::Dir {
            path: self.ns_dir.clone(),
            source,
        };
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for entry in fs::read_dir(&self.ns_dir).map_err(dir_err)? {
            let path = entry.map_err(dir_err)?.path();
            let file_name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if file_name.starts_with('.') {
                // A temporary file left by a crash between write and rename.
                let _ = fs::remove_file(&path);
                continue;
            }
            let Some(stem) = file_name.strip_suffix(".json") else {
                continue;
            };
            match read_record(&path) {
                Ok(record) if record.name.as_str() == stem => good.push(record),
                Ok(record) => bad.push(BadRecord {
                    reason: format!("it names namespace {:?}", record.name.as_str()),
                    path,
                }),
                Err(reason) => bad.push(BadRecord { path, reason }),
            }
        }
        good.sort_by(|a, b| a.name.cmp(&b.name));
        Ok((good, bad))
    }
}

/// Reads a record, refusing a symbolic link in its place (`ELOOP`, named as such): records
/// are only ever written by renaming a regular file over them.
fn read_nofollow(path: &Path) -> io::Result<Vec<u8>> {
    let mut file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => io::Error::other("it is a symbolic link, which is not followed"),
            _ => e,
        })?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::other("it is not a regular file"));
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn read_record(path: &Path) -> Result<NsRecord, String> {
    let bytes = read_nofollow(path).map_err(|e| e.to_string())?;
    let record: NsRecord = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    if record.version != RECORD_VERSION {
        return Err(format!("unknown record version {}", record.version));
    }
    Ok(record)
}

/// Creates `dir` with `mode` if missing, then checks that it is safe to use.
fn ensure_private_dir(dir: &Path, mode: u32) -> Result<(), StateError> {
    let unsafe_dir = |reason: String| StateError::UnsafeDir {
        path: dir.to_owned(),
        reason,
    };
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(mode)
                .create(dir)
                .map_err(|source| StateError::Dir {
                    path: dir.to_owned(),
                    source,
                })?;
            // The umask may have narrowed the mode; set it exactly.
            fs::set_permissions(dir, fs::Permissions::from_mode(mode)).map_err(|source| {
                StateError::Dir {
                    path: dir.to_owned(),
                    source,
                }
            })?;
        }
        Err(source) => {
            return Err(StateError::Dir {
                path: dir.to_owned(),
                source,
            });
        }
        Ok(_) => {}
    }
    let meta = fs::symlink_metadata(dir).map_err(|source| StateError::Dir {
        path: dir.to_owned(),
        source,
    })?;
    if meta.file_type().is_symlink() {
        return Err(unsafe_dir("it is a symbolic link".into()));
    }
    if !meta.is_dir() {
        return Err(unsafe_dir("it is not a directory".into()));
    }
    let euid = nix::unistd::geteuid().as_raw();
    if meta.uid() != euid {
        return Err(unsafe_dir(format!(
            "it is owned by uid {}, not {euid}",
            meta.uid()
        )));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(unsafe_dir(format!(
            "its mode {:04o} lets others write",
            meta.mode() & 0o7777
        )));
    }
    Ok(())
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`.
fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("record");
    let tmp = path.with_file_name(format!(".{file_name}.tmp"));
    let result = (|| {
        // Whatever is at the temporary name (a crash's leftover, or a planted link) goes first;
        // the file is then created new, never opened through a link.
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        file.write_all(bytes)?;
        drop(file);
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> NsName {
        s.parse().unwrap()
    }

    #[test]
    fn save_load_remove() {
        let tmp = tempfile::tempdir().unwrap();
        let store = StateStore::open(&tmp.path().join("state")).unwrap();
        let mut rec = NsRecord::creating(name("a"), 1000, Some("t".parse().unwrap()), 5);
        store.save_ns(&rec).unwrap();
        rec.state = RecordState::Ready;
        rec.netns_ino = 77;
        store.save_ns(&rec).unwrap();
        store
            .save_ns(&NsRecord::creating(name("b"), 0, None, 6))
            .unwrap();
        fs::write(tmp.path().join("state/ns/garbage.json"), b"{").unwrap();
        fs::write(tmp.path().join("state/ns/.c.json.tmp"), b"{").unwrap();
        let (good, bad) = store.load_ns().unwrap();
        assert_eq!(good.len(), 2);
        assert_eq!(good[0], rec);
        assert_eq!(bad.len(), 1);
        assert!(!tmp.path().join("state/ns/.c.json.tmp").exists());
        store.remove_ns(&name("a")).unwrap();
        store.remove_ns(&name("a")).unwrap();
        assert_eq!(store.load_ns().unwrap().0.len(), 1);
    }

    #[test]
    fn unsafe_dirs_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        fs::create_dir(&real).unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let err = StateStore::open(&link).unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
        fs::set_permissions(&real, fs::Permissions::from_mode(0o777)).unwrap();
        let err = StateStore::open(&real).unwrap_err().to_string();
        assert!(err.contains("lets others write"), "{err}");
        let file = tmp.path().join("file");
        fs::write(&file, b"").unwrap();
        let err = StateStore::open(&file).unwrap_err().to_string();
        assert!(err.contains("not a directory"), "{err}");
    }
}
