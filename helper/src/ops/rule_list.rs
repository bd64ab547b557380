//! `rule_list`: the policy rules of a namespace, by preference.

use tsim_protocol::OpResult;
use tsim_protocol::ops::{RuleList, Rules};

use super::OpCtx;
use super::common::dump_rules;
use crate::base::error::HelperError;
use crate::kernel::nlmsg;

pub(super) async fn handle(ctx: &OpCtx<'_>, args: RuleList) -> Result<OpResult, HelperError> {
    let h = ctx.ns(&args.ns).await?;
    let messages = dump_rules(&h.nl, nlmsg::nl_family(args.family)).await?;
    let mut rules: Vec<_> = messages.iter().filter_map(nlmsg::rule_info).collect();
    rules.sort_by_key(|r| r.pref);
    Ok(OpResult::RuleList(Rules { rules }))
}
