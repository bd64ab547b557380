//! `tsimctl status`: the helper's version, uptime, objects and per-operation latencies.

use super::{CliError, Ctx, print_json};

/// Show the helper's version, uptime, managed objects and per-operation statistics.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs the command.
pub async fn run(ctx: &Ctx, _args: &Args) -> Result<(), CliError> {
    let s = ctx.client.status().await?;
    if ctx.json {
        print_json(&s);
        return Ok(());
    }
    out!(
        "tsim-helper {} (protocol {}), pid {}, up {}",
        s.helper_version,
        s.protocol,
        s.pid,
        duration(s.uptime_ms)
    );
    out!(
        "state directory {}, hidden namespace {}",
        s.state_dir,
        s.hidden_ns
    );
    out!(
        "namespaces {}, connections {}, requests in flight {}, answered {}",
        s.namespaces,
        s.connections,
        s.in_flight,
        s.requests
    );
    if let Some(jail) = &s.tool_jail {
        let refused = if jail.payloads_refused {
            " (firewall payloads are refused)"
        } else {
            ""
        };
        out!("tool jail: {}{refused}", jail.summary);
    }
    if let Some(why) = &s.explain_unsupported {
        out!("explained probes: unsupported ({why})");
    }
    if !s.ops.is_empty() {
        out!();
        out!(
            "{:<16} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9}",
            "operation",
            "count",
            "errors",
            "p50 µs",
            "p90 µs",
            "p99 µs",
            "max µs"
        );
        for op in &s.ops {
            out!(
                "{:<16} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9}",
                op.op,
                op.count,
                op.errors,
                op.p50_us,
                op.p90_us,
                op.p99_us,
                op.max_us
            );
        }
    }
    Ok(())
}

fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}
