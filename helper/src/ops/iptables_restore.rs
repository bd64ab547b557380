//! `iptables_restore`: apply an `iptables-save` payload inside the namespace. The rules in
//! force before are saved first, so that an undo (or a rejected payload) puts them back.

use tsim_protocol::OpResult;
use tsim_protocol::ops::{Done, IptablesRestore};

use super::OpCtx;
use crate::base::error::HelperError;
use crate::kernel::firewall;
use crate::pure::budget::{self, Part};
use crate::txn::Txn;
use crate::txn::undo::Undo;

pub(super) async fn handle(
    ctx: &OpCtx<'_>,
    args: IptablesRestore,
    txn: &mut Txn,
) -> Result<OpResult, HelperError> {
    // Screened before the save, so a refused payload costs nothing.
    if ctx.helper.screens_payloads() {
        crate::pure::payload::check_iptables(&args.payload)?;
    }
    let h = ctx.ns_mut(&args.ns).await?;
    let (save, restore) = firewall::iptables_tools(args.ipv6);
    let part = if args.ipv6 {
        Part::Ip6tables
    } else {
        Part::Iptables
    };
    // A namespace this request created needs no undo of its own: removing it removes this.
    // Its rules so far are what this request restored, already counted.
    if h.fresh {
        let (_, after) = budget::iptables_after("", &args.payload, true);
        ctx.charge(&h, (part, None, after), "restore firewall rules")
            .await?;
    } else {
        let before = ctx
            .helper
            .firewall()
            .run_checked(&h.name, h.ino, save, &[], None)
            .await?;
        let (now, after) = budget::iptables_after(&before, &args.payload, args.noflush);
        // Counted as the rules in force now plus what the payload makes, or, without
        // --noflush, as the tables the payload leaves plus its own.
        let (base, add) = if after >= now {
            (now, after - now)
        } else {
            (after, 0)
        };
        ctx.charge(&h, (part, Some(base), add), "restore firewall rules")
            .await?;
        let undo = Undo::Iptables {
            ipv6: args.ipv6,
            payload: firewall::restoring_payload(&before),
        };
        txn.changed(&h.name, format!("{} payload", restore.name()), undo);
    }
    let flags: &[&str] = if args.noflush { &["--noflush"] } else { &[] };
    ctx.helper
        .firewall()
        .run_checked(&h.name, h.ino, restore, flags, Some(args.payload))
        .await?;
    Ok(OpResult::IptablesRestore(Done {}))
}
