//! `rule_add`, `rule_delete`: one policy rule. The rule a delete removes is read first, so
//! an undo can add it back exactly.

use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use tsim_protocol::OpResult;
use tsim_protocol::ops::{Done, RuleSpec};

use super::OpCtx;
use super::common::dump_rules;
use crate::base::error::HelperError;
use crate::kernel::nlmsg::{self, Mode};
use crate::pure::budget::Part;
use crate::txn::Txn;
use crate::txn::undo::Undo;

fn describe(spec: &RuleSpec) -> String {
    let mut out = String::from("rule");
    if let Some(p) = spec.pref {
        out.push_str(&format!(" {p}:"));
    }
    if let Some(f) = spec.from {
        out.push_str(&format!(" from {f}"));
    }
    if let Some(t) = spec.to {
        out.push_str(&format!(" to {t}"));
    }
    match spec.table {
        Some(t) => out.push_str(&format!(" lookup {t}")),
        None => out.push_str(&format!(" {:?}", spec.action).to_lowercase()),
    }
    out
}

pub(super) async fn add(
    ctx: &OpCtx<'_>,
    args: RuleSpec,
    txn: &mut Txn,
) -> Result<OpResult, HelperError> {
    let h = ctx.ns_mut(&args.ns).await?;
    ctx.charge(&h, (Part::Netlink, None, 1), "add a rule")
        .await?;
    let msg = nlmsg::rule_message(&args, Mode::Add)?;
    let what = format!("add {}", describe(&args));
    h.nl.ack(
        RouteNetlinkMessage::NewRule(msg.clone()),
        NLM_F_CREATE | NLM_F_EXCL,
        || what.clone(),
    )
    .await?;
    txn.changed(
        &h.name,
        what,
        Undo::Netlink(vec![(RouteNetlinkMessage::DelRule(msg), 0)]),
    );
    Ok(OpResult::RuleAdd(Done {}))
}

pub(super) async fn delete(
    ctx: &OpCtx<'_>,
    args: RuleSpec,
    txn: &mut Txn,
) -> Result<OpResult, HelperError> {
    let h = ctx.ns_mut(&args.ns).await?;
    // Validates the arguments the same way as an add would (a table is optional here).
    nlmsg::rule_message(&args, Mode::Delete)?;
    let victim = dump_rules(&h.nl, AddressFamily::Unspec)
        .await?
        .into_iter()
        .find(|r| nlmsg::rule_matches(r, &args));
    let Some(victim) = victim else {
        return Err(HelperError::NotFound(format!(
            "There is no {} in namespace {}",
            describe(&args),
            args.ns
        )));
    };
    let what = format!("delete {}", describe(&args));
    h.nl.ack(RouteNetlinkMessage::DelRule(victim.clone()), 0, || {
        what.clone()
    })
    .await?;
    txn.changed(
        &h.name,
        what,
        Undo::Netlink(vec![(
            RouteNetlinkMessage::NewRule(victim),
            NLM_F_CREATE | NLM_F_EXCL,
        )]),
    );
    ctx.uncharge(&h, 1);
    Ok(OpResult::RuleDelete(Done {}))
}
