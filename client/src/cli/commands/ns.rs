//! `tsimctl ns add|del|list`: managed network namespaces.

use tsim_protocol::{NsName, Tag};

use super::{CliError, Ctx, print_json, utc};

/// Create, delete and list the helper's network namespaces.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Create a namespace (visible to `ip netns list`, with lo up).
    Add {
        /// Its name: 1-64 characters of A-Z a-z 0-9 _ . -
        name: NsName,
        /// A label to group it with others (e.g. a job id).
        #[arg(long)]
        tag: Option<Tag>,
    },
    /// Delete a namespace this helper manages (only the owner, root or the admin group).
    #[command(alias = "delete", alias = "rm")]
    Del {
        /// Its name.
        name: NsName,
    },
    /// List the namespaces this helper manages.
    #[command(alias = "ls")]
    List,
}

/// Runs the command.
pub async fn run(ctx: &Ctx, args: &Args) -> Result<(), CliError> {
    match &args.command {
        Command::Add { name, tag } => {
            ctx.client.ns_create(name.clone(), tag.clone()).await?;
            if ctx.json {
                print_json(&serde_json::json!({ "created": name }));
            } else {
                out!("created namespace {name}");
            }
        }
        Command::Del { name } => {
            ctx.client.ns_delete(name.clone()).await?;
            if ctx.json {
                print_json(&serde_json::json!({ "deleted": name }));
            } else {
                out!("deleted namespace {name}");
            }
        }
        Command::List => {
            let list = ctx.client.ns_list().await?;
            if ctx.json {
                print_json(&list);
            } else if list.is_empty() {
                out!("no namespaces");
            } else {
                let width = list
                    .iter()
                    .map(|n| n.name.as_str().len())
                    .max()
                    .unwrap_or(4)
                    .max(4);
                out!("{:<width$}  {:>9}  {:<20}  TAG", "NAME", "OWNER", "CREATED");
                for ns in &list {
                    let tag = ns.tag.as_ref().map_or("-", |t| t.as_str());
                    out!(
                        "{:<width$}  {:>9}  {:<20}  {tag}",
                        ns.name.as_str(),
                        ns.owner_uid,
                        utc(ns.created_ms)
                    );
                }
            }
        }
    }
    Ok(())
}
