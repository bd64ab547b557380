//! `tsimctl probe tcp|udp`: probes sent from inside managed namespaces by the helper.

use std::time::Duration;

use tsim_protocol::NsName;
use tsim_protocol::net::Ip;
use tsim_protocol::ops::{ProbeEcho, ProbeEchoResult, ProbeStatus, Transport};

use super::{CliError, Ctx, print_json};

/// Probe the simulated network from inside a namespace.
///
/// Exit status 0 when the probe succeeded, 1 when it ran but did not succeed (refused,
/// timeout, unreachable, a wrong echo) or could not run.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

/// An echo test.
#[derive(Debug, clap::Args)]
struct Echo {
    /// The namespace to send from (a host or a router).
    #[arg(long)]
    from: NsName,
    /// The local address to send from [default: the kernel's choice].
    #[arg(long)]
    src: Option<Ip>,
    /// The destination, ADDRESS:PORT.
    #[arg(value_name = "DST:PORT", value_parser = parse_dst)]
    dst: (Ip, u16),
    /// What to send.
    #[arg(long, short, default_value = "tsim")]
    message: String,
    /// How long to wait, in seconds.
    #[arg(long = "wait", value_name = "SECS", default_value_t = 1.0)]
    wait: f64,
}

fn parse_dst(s: &str) -> Result<(Ip, u16), String> {
    let (ip, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?} is not ADDRESS:PORT"))?;
    let ip: Ip = ip
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|e| format!("{ip:?}: {e}"))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("{port:?} is not a port (1-65535)"))?;
    Ok((ip, port))
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Connect over TCP, send a message and read the echo.
    Tcp(Echo),
    /// Send a UDP datagram and read the echo.
    Udp(Echo),
}

/// Runs the command.
pub async fn run(ctx: &Ctx, args: &Args) -> Result<(), CliError> {
    let (proto, echo) = match &args.command {
        Command::Tcp(e) => (Transport::Tcp, e),
        Command::Udp(e) => (Transport::Udp, e),
    };
    if !(echo.wait > 0.0 && echo.wait <= 60.0) {
        return Err(CliError::Usage(format!(
            "--wait must be more than 0 and at most 60 seconds, not {}",
            echo.wait
        )));
    }
    let timeout_ms = Duration::from_secs_f64(echo.wait).as_millis().max(1);
    let result = ctx
        .client
        .probe_echo(
            proto,
            ProbeEcho {
                ns: echo.from.clone(),
                dst: echo.dst.0,
                port: echo.dst.1,
                src: echo.src,
                message: Some(echo.message.clone()),
                timeout_ms: Some(u32::try_from(timeout_ms).unwrap_or(u32::MAX)),
            },
        )
        .await?;
    if ctx.json {
        print_json(&result);
    } else {
        print_echo(proto, echo, &result);
    }
    match result.status {
        ProbeStatus::Ok => Ok(()),
        other => Err(CliError::Other(format!(
            "{proto} probe to {}:{}: {}",
            echo.dst.0,
            echo.dst.1,
            serde_json::to_value(other)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        ))),
    }
}

fn print_echo(proto: Transport, echo: &Echo, r: &ProbeEchoResult) {
    let status = serde_json::to_value(r.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    out!(
        "{proto} {} -> {}:{}: {status} in {:.3} ms{}{}",
        r.local.as_deref().unwrap_or("?"),
        echo.dst.0,
        echo.dst.1,
        r.elapsed_us as f64 / 1000.0,
        r.reply
            .as_ref()
            .map(|s| format!(", reply {s:?}"))
            .unwrap_or_default(),
        r.detail
            .as_ref()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default()
    );
}
