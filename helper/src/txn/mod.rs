//! Transactions: what a request changed ([`Effect`]s in a [`Txn`]), made permanent by
//! [`Txn::commit`] or undone, newest first, by [`Txn::rollback`].
//!
//! Invariants:
//! * Every operation records what it changed as an [`Effect`] in the request's [`Txn`]
//!   before returning, so that it can be undone.
//! * Undo never stops half-way: a failing or panicking undo is logged and the next one runs.
//! * Commit first does the steps that can fail (writing records); if one fails, everything
//!   is undone, so a commit is all or nothing.
//!
//! How a request uses a `Txn` (per operation or for the whole request when `atomic`) is
//! [`crate::serve::request`]'s business; the undo of one change inside a namespace is in
//! [`undo`].

pub(crate) mod undo;

use std::os::fd::OwnedFd;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use tsim_protocol::{Cidr, IfName, NsName};

use crate::base::error::{HelperError, chain};
use crate::managed::context::Helper;
use crate::txn::undo::Undo;

/// A change made by an operation, undoable until committed.
#[derive(Debug)]
pub enum Effect {
    /// A name was reserved in the registry (phase `Creating`) for this request; undoing gives
    /// the reservation up, and the namespace made under it if there is one. Recorded the
    /// moment the name is reserved, so that nothing (an error or a panic) between the
    /// reservation and the namespace's creation can leave it reserved.
    Reserved {
        /// Its name.
        name: NsName,
    },
    /// A namespace was created (phase `Creating`).
    NsCreated {
        /// Its name.
        name: NsName,
        /// Its inode.
        ino: u64,
    },
    /// A router's firewall log is to be read once the request commits (nothing to undo).
    LogWanted {
        /// The router.
        router: NsName,
        /// Its namespace's inode.
        ino: u64,
    },
    /// A namespace was removed from `/run/netns`; the handle keeps it alive until commit.
    NsDeleted {
        /// Its name.
        name: NsName,
        /// Keeps the namespace alive so the deletion can be undone.
        handle: OwnedFd,
    },
    /// The record of the applied network was replaced.
    NetState {
        /// The record before (`None`: there was none).
        previous: Option<Box<crate::managed::state::NetRecord>>,
    },
    /// A host holds a gateway the helper added to its router; undoing releases it (the
    /// gateway goes if no other host needs it).
    GatewayHeld {
        /// The host it is held for: undoing gives up that host's reservation first (the
        /// gateway is counted from the host records, the one being made included).
        host: NsName,
        /// The router.
        router: NsName,
        /// Its interface.
        dev: IfName,
        /// The gateway, with the host's prefix.
        gateway: Cidr,
    },
    /// An echo service was started; undoing stops it.
    SvcStarted {
        /// Which.
        key: crate::managed::services::SvcKey,
    },
    /// An echo service was stopped; undoing binds it again (if its address is still free).
    SvcStopped {
        /// Its record.
        record: crate::managed::state::SvcRecord,
    },
    /// A host was deleted (its namespace's deletion is an [`Effect::NsDeleted`] before this
    /// one): on commit, its gateway is released and its router forgets its address.
    HostGone {
        /// The router.
        router: NsName,
        /// The router's interface facing it.
        dev: IfName,
        /// Its address.
        ip: std::net::IpAddr,
        /// The gateway added for it, if one was.
        gateway: Option<Cidr>,
    },
    /// A lease was taken on a shared host that existed; undoing gives it up (and deletes the
    /// host if the others were released meanwhile).
    LeaseTaken {
        /// The host.
        host: NsName,
        /// The lease's tag.
        tag: tsim_protocol::Tag,
    },
    /// A lease on a shared host was released (the host stays for the others); undoing puts
    /// it back.
    LeaseReleased {
        /// The host.
        host: NsName,
        /// The lease.
        lease: tsim_protocol::ops::Lease,
    },
    /// Something changed inside a namespace.
    Changed {
        /// The namespace.
        ns: NsName,
        /// What was changed, for the log if undoing fails.
        what: String,
        /// How to put it back.
        undo: Undo,
    },
}

/// The effects of a request that are not committed yet.
#[derive(Debug)]
pub struct Txn {
    /// The request's registry id (see [`Helper::next_txn`]).
    pub id: u64,
    effects: Vec<Effect>,
}

impl Txn {
    /// An empty transaction for request `id`.
    pub fn new(id: u64) -> Self {
        Self {
            id,
            effects: Vec::new(),
        }
    }

    /// Records a change inside namespace `ns` and how to undo it.
    pub fn changed(&mut self, ns: &NsName, what: impl Into<String>, undo: Undo) {
        self.effects.push(Effect::Changed {
            ns: ns.clone(),
            what: what.into(),
            undo,
        });
    }

    /// Records an effect.
    pub fn push(&mut self, effect: Effect) {
        self.effects.push(effect);
    }

    /// Makes every recorded effect permanent. If that fails, everything is undone and the
    /// error returned.
    pub async fn commit(&mut self, helper: &Helper) -> Result<(), HelperError> {
        // First the steps that can fail (writing records), so a failure can still undo all.
        for effect in &self.effects {
            if let Effect::NsCreated { name, .. } = effect {
                if let Err(e) = helper.registry.commit_created(name) {
                    self.rollback(helper).await;
                    return Err(e.into());
                }
            }
        }
        // A router deleted by this request needs no gateway released or neighbour forgotten.
        let deleted: std::collections::HashSet<NsName> = self
            .effects
            .iter()
            .filter_map(|e| match e {
                Effect::NsDeleted { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect();
        let mut logs_wanted = Vec::new();
        for effect in self.effects.drain(..) {
            match effect {
                Effect::Reserved { .. }
                | Effect::NsCreated { .. }
                | Effect::Changed { .. }
                | Effect::NetState { .. }
                | Effect::GatewayHeld { .. }
                | Effect::SvcStarted { .. }
                | Effect::SvcStopped { .. }
                | Effect::LeaseTaken { .. }
                | Effect::LeaseReleased { .. } => {}
                Effect::LogWanted { router, ino } => {
                    if !deleted.contains(&router) {
                        logs_wanted.push((router, ino));
                    }
                }
                Effect::NsDeleted { name, handle } => {
                    // Its services' and its log's sockets would keep the namespace alive.
                    helper.services.stop_ns(helper, &name);
                    helper.logs.stop(&name);
                    drop(handle);
                    helper.registry.finish_delete(&name);
                }
                Effect::HostGone {
                    router,
                    dev,
                    ip,
                    gateway,
                } if !deleted.contains(&router) => {
                    if let Some(gateway) = gateway {
                        if let Err(e) = helper
                            .gateways
                            .release(helper, &router, &dev, &gateway)
                            .await
                        {
                            tracing::error!(router = %router, error = %chain(&e), "Cannot remove a gateway no host needs");
                        }
                    }
                    if helper.registry.is_managed(&router) {
                        crate::managed::hosts::forget_neighbour(helper, &router, &dev, ip).await;
                    }
                }
                Effect::HostGone { .. } => {}
            }
        }
        // The routers' log readers, all at once (each opens its socket on a thread of its own).
        futures::future::join_all(
            logs_wanted
                .iter()
                .map(|(router, ino)| helper.logs.start(helper, router, *ino)),
        )
        .await;
        Ok(())
    }

    /// Undoes every recorded effect, newest first. Failures are logged, and so is a panic
    /// while undoing one effect; undo goes on with the next.
    pub async fn rollback(&mut self, helper: &Helper) {
        while let Some(effect) = self.effects.pop() {
            let undone = AssertUnwindSafe(self.undo(helper, effect))
                .catch_unwind()
                .await;
            if let Err(panic) = undone {
                tracing::error!(
                    "Undoing an effect panicked (a bug); undo goes on: {}",
                    panic_message(&*panic)
                );
            }
        }
    }

    /// Gives up this request's reservation of `name`, with the namespace made under it.
    async fn give_up(&self, helper: &Helper, name: &NsName) {
        if let Some(ino) = helper.registry.abort_reservation(name, self.id) {
            match helper.netns.detach(name, ino).await {
                Ok(handle) => drop(handle),
                Err(e) => {
                    tracing::error!(ns = %name, error = %chain(&e), "Cannot undo a namespace creation")
                }
            }
        }
    }

    async fn undo(&self, helper: &Helper, effect: Effect) {
        match effect {
            Effect::LogWanted { .. } => {}
            Effect::Reserved { name } => self.give_up(helper, &name).await,
            Effect::NsCreated { name, ino } => {
                match helper.netns.detach(&name, ino).await {
                    Ok(handle) => drop(handle),
                    Err(e) => {
                        tracing::error!(ns = %name, error = %chain(&e), "Cannot undo a namespace creation")
                    }
                }
                helper.registry.abort_create(&name);
            }
            Effect::GatewayHeld {
                host,
                router,
                dev,
                gateway,
            } => {
                self.give_up(helper, &host).await;
                if let Err(e) = helper
                    .gateways
                    .release(helper, &router, &dev, &gateway)
                    .await
                {
                    tracing::error!(router = %router, error = %chain(&e), "Cannot remove a gateway no host needs");
                }
            }
            Effect::HostGone { .. } => {}
            Effect::LeaseTaken { host, tag } => {
                if let Some(ino) = helper.registry.drop_lease(&host, &tag, self.id) {
                    crate::managed::hosts::delete_unleased(helper, &host, ino).await;
                }
            }
            Effect::LeaseReleased { host, lease } => helper.registry.restore_lease(&host, lease),
            Effect::SvcStarted { key } => {
                helper.services.stop(helper, &key);
            }
            Effect::SvcStopped { record } => {
                if let Err(e) = helper.services.start(helper, record).await {
                    tracing::error!(error = %chain(&e), "Cannot undo a service's stop; it stays stopped");
                }
            }
            Effect::NetState { previous } => {
                if let Err(e) = helper.registry.store().save_net(previous.as_deref()) {
                    tracing::error!(error = %chain(&e), "Cannot put the network's record back");
                }
            }
            Effect::Changed { ns, what, undo } => {
                if let Err(e) = undo::apply(helper, &ns, undo).await {
                    tracing::error!(ns = %ns, error = %chain(&e), "Cannot undo: {what}");
                }
            }
            Effect::NsDeleted { name, handle } => {
                match helper.netns.reattach(&name, handle).await {
                    Ok(()) => helper.registry.abort_delete(&name, self.id),
                    Err(e) => {
                        tracing::error!(ns = %name, error = %chain(&e), "Cannot undo a namespace deletion; it stays deleted");
                        helper.registry.finish_delete(&name);
                    }
                }
            }
        }
    }
}

/// The text of a caught panic.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}
