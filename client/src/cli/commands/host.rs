//! `tsimctl host add|del|list|clean`: test hosts on the simulated network.

use tsim_protocol::ops::{HostAdd, HostClean, HostDelete, HostInfo};
use tsim_protocol::{Cidr, IfName, NsName, Tag};

use super::{CliError, Ctx, print_json, utc};

/// Add, delete and list test hosts on the simulated network.
///
/// A host is a namespace with `eth0` on the bridge of the router interface facing its subnet,
/// its address, and a default route via the router. If the router has no address in the
/// host's subnet, the helper adds the subnet's first address to the router interface, and
/// removes it with the last host that needs it.
///
/// An external host (`--internet`, on a network set up with `net setup --internet`) has a
/// /32 public address, e.g. 8.8.8.8/32, behind the outside world's namespace: what the
/// edge routers' default routes lead to.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Add a host (the same name, address and router again is a success: "reused").
    ///
    /// With --share, a host of yours with the same address, router and secondaries that was
    /// itself added with --share is leased instead of refused as a conflict, whatever its
    /// name: the answer names that host. The lease is named by --tag; the host goes with its
    /// last lease (`host del NAME --tag T`, `host clean --tag T`).
    Add {
        /// Its name: 1-64 characters of A-Z a-z 0-9 _ . -
        name: NsName,
        /// Its address with the subnet's prefix, e.g. 10.1.1.100/24.
        #[arg(long, value_name = "CIDR")]
        ip: Cidr,
        /// The router it hangs off.
        #[arg(long, required_unless_present = "internet")]
        router: Option<NsName>,
        /// An external host: behind the outside world's namespace (the network's router
        /// marked internet, made by `net setup --internet`), with a /32 public address.
        #[arg(long, conflicts_with = "router")]
        internet: bool,
        /// The router interface facing it [default: the one with an address in its subnet,
        /// else the one the router routes its address through].
        #[arg(long, value_name = "IF")]
        router_if: Option<IfName>,
        /// A secondary address (repeatable), reachable from inside the host only.
        #[arg(long = "secondary", value_name = "CIDR")]
        secondaries: Vec<Cidr>,
        /// A label (e.g. a job id), for `host clean --tag`; with --share, the lease's name.
        #[arg(long)]
        tag: Option<Tag>,
        /// Share the host with your other jobs: take a lease on the same host if there is
        /// one (needs --tag).
        #[arg(long, requires = "tag")]
        share: bool,
    },
    /// Delete a host (its owner, root or the admin group).
    ///
    /// On a shared host, releases the lease of --tag; the host goes with its last lease.
    /// Without --tag, a shared host is deleted only if it has one lease left.
    #[command(alias = "delete", alias = "rm")]
    Del {
        /// Its name.
        name: NsName,
        /// The lease to release, on a shared host.
        #[arg(long)]
        tag: Option<Tag>,
    },
    /// List the hosts.
    #[command(alias = "ls")]
    List,
    /// Delete the hosts matching the filters (without the admin role: one's own only).
    ///
    /// With no filter, every host the caller may delete: its own, or, for root and the admin
    /// group, all of them, shared ones with all their leases. With --tag, a shared host loses
    /// the lease of that tag and goes only with its last lease.
    Clean {
        /// Only hosts with this tag (or, for shared hosts, a lease of this tag).
        #[arg(long)]
        tag: Option<Tag>,
        /// Only hosts of this uid.
        #[arg(long, value_name = "UID")]
        owner: Option<u32>,
    },
}

/// The applied network's internet router (for `--internet`).
async fn internet_router(ctx: &Ctx, internet: bool) -> Result<NsName, CliError> {
    if !internet {
        return Err(CliError::Usage("give --router ROUTER or --internet".into()));
    }
    let shown = ctx.client.net_show().await?;
    let topology = shown.topology.ok_or_else(|| {
        CliError::Other(
            "no network is applied: build it first (`tsimctl net setup --internet`)".into(),
        )
    })?;
    topology.internet().map(|r| r.name.clone()).ok_or_else(|| {
        CliError::Other(
            "the applied network has no outside world: apply it with `tsimctl net setup --internet`".into(),
        )
    })
}

/// Runs the command.
pub async fn run(ctx: &Ctx, args: &Args) -> Result<(), CliError> {
    match &args.command {
        Command::Add {
            name,
            ip,
            router,
            router_if,
            secondaries,
            tag,
            share,
            internet,
        } => {
            let router = match router {
                Some(r) => r.clone(),
                None => internet_router(ctx, *internet).await?,
            };
            let added = ctx
                .client
                .host_add(HostAdd {
                    name: name.clone(),
                    ip: *ip,
                    router,
                    router_if: router_if.clone(),
                    secondaries: secondaries.clone(),
                    tag: tag.clone(),
                    share: *share,
                })
                .await?;
            if ctx.json {
                print_json(&added);
            } else {
                let h = &added.host;
                let how = match (added.reused, added.pooled, added.shared) {
                    (true, _, true) => "already holding a lease on host",
                    (true, _, false) => "reused host",
                    (false, _, true) if h.leases.len() > 1 => "leased shared host",
                    (false, true, _) => "added host (from the pool)",
                    (false, false, _) => "added host",
                };
                let gateway = if h.gateway_added {
                    format!("{} (added for hosts)", h.gateway)
                } else {
                    h.gateway.to_string()
                };
                out!(
                    "{how} {} {} on {} {} via {gateway}",
                    h.name,
                    h.ip,
                    h.router,
                    h.router_if
                );
            }
        }
        Command::Del { name, tag } => {
            // Only a lease's release can leave the host; the count says whether it does.
            let leases = match tag {
                Some(_) => ctx
                    .client
                    .host_list()
                    .await?
                    .iter()
                    .find(|h| &h.name == name)
                    .map_or(0, |h| h.leases.len()),
                None => 0,
            };
            ctx.client
                .op()
                .host_delete(HostDelete {
                    name: name.clone(),
                    tag: tag.clone(),
                })
                .await?;
            // A shared host with other leases stays.
            let kept = tag.is_some() && leases > 1;
            if ctx.json {
                print_json(&if kept {
                    serde_json::json!({ "released": name, "tag": tag })
                } else {
                    serde_json::json!({ "deleted": name })
                });
            } else if kept {
                out!(
                    "released lease {} on host {name} ({} left)",
                    tag.as_ref().map_or("", |t| t.as_str()),
                    leases - 1
                );
            } else {
                out!("deleted host {name}");
            }
        }
        Command::List => {
            let hosts = ctx.client.host_list().await?;
            if ctx.json {
                print_json(&serde_json::json!({ "hosts": hosts }));
            } else {
                print_hosts(&hosts);
            }
        }
        Command::Clean { tag, owner } => {
            let cleaned = ctx
                .client
                .op()
                .host_clean(HostClean {
                    tag: tag.clone(),
                    owner: *owner,
                })
                .await?;
            if ctx.json {
                print_json(&cleaned);
            } else {
                let plural = |n: usize| if n == 1 { "" } else { "s" };
                let (removed, released) = (cleaned.removed.len(), cleaned.released.len());
                if released == 0 {
                    out!("deleted {removed} host{}", plural(removed));
                } else {
                    out!(
                        "deleted {removed} host{}, released leases on {released} shared host{}",
                        plural(removed),
                        plural(released)
                    );
                }
            }
        }
    }
    Ok(())
}

fn print_hosts(hosts: &[HostInfo]) {
    if hosts.is_empty() {
        out!("no hosts");
        return;
    }
    let width = |f: &dyn Fn(&HostInfo) -> usize, min: usize| {
        hosts.iter().map(f).max().unwrap_or(min).max(min)
    };
    let name_w = width(&|h| h.name.as_str().len(), 4);
    let router_w = width(
        &|h| h.router.as_str().len() + 1 + h.router_if.as_str().len(),
        6,
    );
    out!(
        "{:<name_w$}  {:<18}  {:<router_w$}  {:<16}  {:>9}  {:<20}  {:<8}  {:>6}  TAG",
        "NAME",
        "ADDRESS",
        "ROUTER",
        "GATEWAY",
        "OWNER",
        "CREATED",
        "STATE",
        "LEASES"
    );
    for h in hosts {
        let gateway = format!("{}{}", h.gateway, if h.gateway_added { "+" } else { "" });
        let mut address = h.ip.to_string();
        if !h.secondaries.is_empty() {
            address.push_str(&format!(" +{}", h.secondaries.len()));
        }
        let leases = if h.leases.is_empty() {
            "-".to_owned()
        } else {
            h.leases.len().to_string()
        };
        out!(
            "{:<name_w$}  {:<18}  {:<router_w$}  {:<16}  {:>9}  {:<20}  {:<8}  {:>6}  {}",
            h.name.as_str(),
            address,
            format!("{}/{}", h.router, h.router_if),
            gateway,
            h.owner_uid,
            utc(h.created_ms),
            h.state,
            leases,
            h.tag.as_ref().map_or("-", |t| t.as_str())
        );
    }
    if hosts.iter().any(|h| !h.leases.is_empty()) {
        out!("\nLEASES: a shared host goes with its last lease (`host del NAME --tag T`)");
    }
    if hosts.iter().any(|h| h.gateway_added) {
        out!("\n+ gateway added to the router for hosts; it goes with the last host that needs it");
    }
}
