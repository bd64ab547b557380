//! `ns_list`: the committed managed namespaces, sorted by name.

use tsim_protocol::OpResult;
use tsim_protocol::ops::{NsList, NsListing};

use super::OpCtx;
use crate::base::error::HelperError;

pub(super) fn handle(ctx: &OpCtx<'_>, _args: NsList) -> Result<OpResult, HelperError> {
    Ok(OpResult::NsList(NsListing {
        namespaces: ctx.helper.registry.list(),
    }))
}
