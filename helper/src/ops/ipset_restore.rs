//! `ipset_restore`: apply an `ipset save` payload inside the namespace. The sets in force
//! before are saved first, so that an undo (or a rejected payload) puts them back.

use tsim_protocol::OpResult;
use tsim_protocol::ops::{Done, IpsetRestore};

use super::OpCtx;
use crate::base::error::HelperError;
use crate::kernel::tools::Tool;
use crate::pure::budget::{self, Part};
use crate::txn::Txn;
use crate::txn::undo::Undo;

pub(super) async fn handle(
    ctx: &OpCtx<'_>,
    args: IpsetRestore,
    txn: &mut Txn,
) -> Result<OpResult, HelperError> {
    // Screened before the save, so a refused payload costs nothing.
    if ctx.helper.screens_payloads() {
        crate::pure::payload::check_ipset(&args.payload)?;
    }
    let h = ctx.ns_mut(&args.ns).await?;
    let add = budget::ipset_objects(&args.payload);
    if h.fresh {
        ctx.charge(&h, (Part::Ipset, None, add), "restore sets")
            .await?;
    } else {
        let before = ctx
            .helper
            .firewall()
            .run_checked(&h.name, h.ino, Tool::Ipset, &["save"], None)
            .await?;
        let now = budget::ipset_objects(&before);
        ctx.charge(&h, (Part::Ipset, Some(now), add), "restore sets")
            .await?;
        txn.changed(&h.name, "ipset restore", Undo::Ipset { payload: before });
    }
    let argv: &[&str] = if args.exist {
        &["restore", "-exist"]
    } else {
        &["restore"]
    };
    ctx.helper
        .firewall()
        .run_checked(&h.name, h.ino, Tool::Ipset, argv, Some(args.payload))
        .await?;
    Ok(OpResult::IpsetRestore(Done {}))
}
