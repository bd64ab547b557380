//! `tsimctl svc start|stop|list`: TCP and UDP echo services inside managed namespaces,
//! served by the helper itself.

use tsim_protocol::NsName;
use tsim_protocol::Tag;
use tsim_protocol::net::Ip;
use tsim_protocol::ops::{SvcAddr, SvcInfo, SvcStart, Transport};

use super::{CliError, Ctx, print_json, utc};

/// Start, stop and list echo services.
///
/// A service answers every byte (TCP) or datagram (UDP) with the same bytes. It runs inside
/// the helper, not as a process; it stops when its namespace is deleted, and is bound again
/// when the helper restarts.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

/// Where a service listens.
#[derive(Debug, clap::Args)]
struct Where {
    /// The namespace (a host or a router).
    #[arg(long)]
    ns: NsName,
    /// The local address to listen on (0.0.0.0 for all).
    #[arg(long)]
    ip: Ip,
    /// The port.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    port: u16,
    /// tcp or udp.
    #[arg(long, default_value = "tcp")]
    proto: Transport,
}

impl Where {
    fn addr(&self) -> SvcAddr {
        SvcAddr {
            ns: self.ns.clone(),
            ip: self.ip,
            port: self.port,
            proto: self.proto,
        }
    }
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Start an echo service (the namespace's owner, root or the admin group).
    Start {
        #[command(flatten)]
        at: Where,
        /// A label (e.g. a job id).
        #[arg(long)]
        tag: Option<Tag>,
    },
    /// Stop an echo service (its owner, root or the admin group).
    Stop {
        #[command(flatten)]
        at: Where,
    },
    /// List the echo services, with their connection and byte counts.
    #[command(alias = "ls")]
    List,
}

fn describe(a: &SvcAddr) -> String {
    format!("{} {}:{} in {}", a.proto, a.ip, a.port, a.ns)
}

/// Runs the command.
pub async fn run(ctx: &Ctx, args: &Args) -> Result<(), CliError> {
    match &args.command {
        Command::Start { at, tag } => {
            let info = ctx
                .client
                .svc_start(SvcStart {
                    addr: at.addr(),
                    tag: tag.clone(),
                })
                .await?;
            if ctx.json {
                print_json(&info);
            } else {
                out!("started {}", describe(&info.addr));
            }
        }
        Command::Stop { at } => {
            ctx.client.svc_stop(at.addr()).await?;
            if ctx.json {
                print_json(&serde_json::json!({ "stopped": at.addr() }));
            } else {
                out!("stopped {}", describe(&at.addr()));
            }
        }
        Command::List => {
            let services = ctx.client.svc_list().await?;
            if ctx.json {
                print_json(&serde_json::json!({ "services": services }));
            } else {
                print_services(&services);
            }
        }
    }
    Ok(())
}

fn print_services(services: &[SvcInfo]) {
    if services.is_empty() {
        out!("no services");
        return;
    }
    let ns_w = services
        .iter()
        .map(|s| s.addr.ns.as_str().len())
        .max()
        .unwrap_or(2)
        .max(9);
    out!(
        "{:<ns_w$}  {:<5}  {:<21}  {:>9}  {:>6}  {:>8}  {:>10}  {:<20}  TAG",
        "NAMESPACE",
        "PROTO",
        "ADDRESS",
        "OWNER",
        "OPEN",
        "SERVED",
        "BYTES",
        "CREATED"
    );
    for s in services {
        out!(
            "{:<ns_w$}  {:<5}  {:<21}  {:>9}  {:>6}  {:>8}  {:>10}  {:<20}  {}",
            s.addr.ns.as_str(),
            s.addr.proto,
            format!("{}:{}", s.addr.ip, s.addr.port),
            s.owner_uid,
            s.open,
            s.served,
            s.bytes,
            utc(s.created_ms),
            s.tag.as_ref().map(|t| t.as_str()).unwrap_or("")
        );
    }
}
