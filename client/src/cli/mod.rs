//! `tsimctl`, the command-line client of tsim-helper: its arguments ([`command`] gives them
//! to the man page and completion generators) and [`main`].
//!
//! Exit status: 0 success, 1 the operation failed (code and message on stderr), 2 usage error,
//! 3 cannot connect or protocol error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::{Client, socket_path};
use clap::Parser;

mod commands;

use commands::{CliError, Ctx};

/// Control tsim-helper, the root helper of the traceroute simulator.
///
/// Talks to the helper over its Unix socket; no sudo needed, only membership of the helper's
/// group. The socket is --socket, else $TSIM_SOCKET, else /run/tsim/helper.sock.
///
/// Exit status: 0 success, 1 the operation failed, 2 usage error, 3 cannot connect.
#[derive(Debug, Parser)]
#[command(name = "tsimctl", version, max_term_width = 100)]
struct Cli {
    /// The helper's socket [default: $TSIM_SOCKET, else /run/tsim/helper.sock].
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,

    /// Print one JSON document on stdout instead of text.
    #[arg(long, global = true)]
    json: bool,

    /// Give up waiting for the helper after this many seconds.
    #[arg(long, global = true, value_name = "SECS", default_value_t = 60.0)]
    timeout: f64,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    Ping(commands::ping::Args),
    Status(commands::status::Args),
    Ns(commands::ns::Args),
    Batch(commands::batch::Args),
    Net(commands::net::Args),
    Host(commands::host::Args),
    Svc(commands::svc::Args),
    Probe(commands::probe::Args),
}

/// The command line's definition, for generated man pages and shell completions.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// Runs `tsimctl` with the process's arguments.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tsimctl: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let json = cli.json;
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(&e, json);
            ExitCode::from(e.exit_code())
        }
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    if !(cli.timeout > 0.0 && cli.timeout.is_finite()) {
        return Err(CliError::Usage(format!(
            "--timeout must be a positive number of seconds, not {}",
            cli.timeout
        )));
    }
    let timeout = Duration::from_secs_f64(cli.timeout);
    if let Command::Net(args) = &cli.command {
        if args.offline() {
            return commands::net::run_offline(args);
        }
    }
    let socket = socket_path(cli.socket.clone());
    let name = concat!("tsimctl/", env!("CARGO_PKG_VERSION"));
    let work = async {
        let client = Client::connect(&socket, name).await?;
        let ctx = Ctx {
            client,
            json: cli.json,
            socket: socket.clone(),
        };
        match &cli.command {
            Command::Ping(args) => commands::ping::run(&ctx, args).await,
            Command::Status(args) => commands::status::run(&ctx, args).await,
            Command::Ns(args) => commands::ns::run(&ctx, args).await,
            Command::Batch(args) => commands::batch::run(&ctx, args).await,
            Command::Net(args) => commands::net::run(&ctx, args).await,
            Command::Host(args) => commands::host::run(&ctx, args).await,
            Command::Svc(args) => commands::svc::run(&ctx, args).await,
            Command::Probe(args) => commands::probe::run(&ctx, args).await,
        }
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(result) => result,
        Err(_) => Err(CliError::Other(format!(
            "no answer from the helper within {} s",
            cli.timeout
        ))),
    }
}

fn report(e: &CliError, json: bool) {
    match e {
        CliError::Failed { error, results } => {
            let at = error
                .op_index
                .map(|i| format!(" (op {i})"))
                .unwrap_or_default();
            eprintln!("tsimctl: error[{}]{at}: {}", error.code, error.message);
            if json {
                commands::print_json(&serde_json::json!({ "error": error, "results": results }));
            }
        }
        CliError::Other(msg) => eprintln!("tsimctl: error: {msg}"),
        CliError::Usage(msg) => eprintln!("tsimctl: usage error: {msg}"),
        CliError::Connection(msg) => eprintln!("tsimctl: {msg}"),
    }
}
