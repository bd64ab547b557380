//! `tsimctl batch FILE|-`: send a JSON list of operations as one request.

use std::io::Read;
use std::path::PathBuf;

use tsim_protocol::{Op, OpResult};

use super::{CliError, Ctx, print_json};
use crate::RequestOptions;

/// Send a JSON list of operations as one request.
///
/// Example file: [{"op": "ns_create", "name": "a"}, {"op": "ns_list"}]. The operations and
/// their fields are described in protocol/PROTOCOL.md.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The file, or - for standard input.
    #[arg(value_name = "FILE|-")]
    pub file: PathBuf,
    /// If an operation fails, undo what the earlier ones did.
    #[arg(long)]
    pub atomic: bool,
}

/// Reads and validates the operations; errors name the operation's index.
pub fn parse_ops(text: &str) -> Result<Vec<Op>, String> {
    let values: Vec<serde_json::Value> =
        serde_json::from_str(text).map_err(|e| format!("not a JSON list of operations: {e}"))?;
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| serde_json::from_value::<Op>(v).map_err(|e| format!("op {i}: {e}")))
        .collect()
}

/// Runs the command.
pub async fn run(ctx: &Ctx, args: &Args) -> Result<(), CliError> {
    let shown = args.file.display().to_string();
    let text = if shown == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| CliError::Usage(format!("cannot read standard input: {e}")))?;
        text
    } else {
        std::fs::read_to_string(&args.file)
            .map_err(|e| CliError::Usage(format!("cannot read {shown}: {e}")))?
    };
    let ops = parse_ops(&text).map_err(|e| CliError::Usage(format!("{shown}: {e}")))?;
    let options = RequestOptions {
        atomic: args.atomic,
        progress: false,
    };
    let results = ctx.client.request(ops, options).await?;
    if ctx.json {
        print_json(&serde_json::json!({ "results": results }));
    } else {
        for (i, result) in results.iter().enumerate() {
            out!("{i}: {}", describe(result));
        }
        out!(
            "{} operation{} done",
            results.len(),
            if results.len() == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

fn describe(result: &OpResult) -> String {
    match result {
        OpResult::Ping(_) => "ping ok".into(),
        OpResult::Status(s) => format!(
            "status: helper {}, {} namespaces",
            s.helper_version, s.namespaces
        ),
        OpResult::NsCreate(r) => format!("created namespace {}", r.name),
        OpResult::NsDelete(r) => format!("deleted namespace {}", r.name),
        OpResult::NsList(l) => format!("{} namespaces", l.namespaces.len()),
        OpResult::LinkAddVeth(l) | OpResult::LinkAddBridge(l) | OpResult::LinkAddDummy(l) => {
            format!("{}: index {}", result.name(), l.index)
        }
        OpResult::LinkList(l) => format!("{} links", l.links.len()),
        OpResult::AddrList(a) => format!("{} addresses", a.addrs.len()),
        OpResult::RouteList(r) => format!("{} routes", r.routes.len()),
        OpResult::RuleList(r) => format!("{} rules", r.rules.len()),
        OpResult::LinkFlush(f) | OpResult::RouteFlush(f) | OpResult::NeighFlush(f) => {
            format!("{}: {} removed", result.name(), f.count)
        }
        OpResult::SysctlGet(s) | OpResult::SysctlSet(s) => format!("{} = {}", s.key, s.value),
        OpResult::IptablesSave(s) | OpResult::IpsetSave(s) => {
            format!("{}: {} lines", result.name(), s.payload.lines().count())
        }
        OpResult::RouteGet(r) => {
            let via = r.via.map(|v| format!(" via {v}")).unwrap_or_default();
            let dev = r
                .dev
                .as_ref()
                .map(|d| format!(" dev {d}"))
                .unwrap_or_default();
            format!("route to {}{via}{dev}", r.dst)
        }
        other => format!("{} ok", other.name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_name_the_index() {
        assert_eq!(
            parse_ops(r#"[{"op":"ping"},{"op":"ns_list"}]"#)
                .unwrap()
                .len(),
            2
        );
        let err = parse_ops(r#"[{"op":"ping"},{"op":"ns_create","name":"../x"}]"#).unwrap_err();
        assert!(
            err.starts_with("op 1: invalid namespace name \"../x\""),
            "{err}"
        );
        assert!(
            parse_ops(r#"{"op":"ping"}"#)
                .unwrap_err()
                .contains("not a JSON list")
        );
        assert!(
            parse_ops(r#"[{"op":"fly"}]"#)
                .unwrap_err()
                .contains("unknown variant")
        );
    }
}
