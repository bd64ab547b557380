//! `tsimctl` subcommands, one file each, and what they share: the connection, output and
//! the mapping of failures to exit codes.

use std::path::PathBuf;

use serde::Serialize;
use tsim_protocol::{OpResult, WireError};

use crate::{Client, ClientError};

/// `println!` on standard output that ends the process quietly (status 0) when the output is
/// a pipe its reader closed (`tsimctl ... | head`), instead of panicking.
macro_rules! out {
    () => {
        $crate::cli::commands::write_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::cli::commands::write_line(format_args!($($arg)*))
    };
}

pub mod batch;
pub mod host;
pub mod net;
pub mod ns;
pub mod ping;
pub mod probe;
pub mod progress;
pub mod status;
pub mod svc;

/// What every command gets.
#[derive(Debug)]
pub struct Ctx {
    /// The connected client.
    pub client: Client,
    /// Print one JSON document on stdout.
    pub json: bool,
    /// The socket in use, for messages.
    pub socket: PathBuf,
}

/// Why a command failed; decides the exit status.
#[derive(Debug)]
pub enum CliError {
    /// The helper ran the request and it failed (exit 1).
    Failed {
        /// What failed.
        error: WireError,
        /// Results that stay in effect.
        results: Vec<OpResult>,
    },
    /// Something else went wrong while running (exit 1).
    Other(String),
    /// The command line or its input is invalid (exit 2).
    Usage(String),
    /// The helper cannot be reached or spoke nonsense (exit 3).
    Connection(String),
}

impl CliError {
    /// The process exit status.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Failed { .. } | CliError::Other(_) => 1,
            CliError::Usage(_) => 2,
            CliError::Connection(_) => 3,
        }
    }
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Remote { error, results } => CliError::Failed { error, results },
            ClientError::Refused(error) => {
                CliError::Connection(format!("the helper refused the connection: {error}"))
            }
            other => CliError::Connection(crate_error_chain(&other)),
        }
    }
}

/// "Outer: inner": an error with its causes.
pub fn crate_error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Writes one line on standard output; see [`out!`].
pub fn write_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_fmt(args)
        .and_then(|()| stdout.write_all(b"\n"));
    if let Err(e) = written {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("tsimctl: cannot write the output: {e}");
        std::process::exit(1);
    }
}

/// Prints `value` as one pretty JSON document on stdout.
pub fn print_json<T: Serialize + ?Sized>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => out!("{text}"),
        Err(e) => eprintln!("tsimctl: cannot format the output as JSON: {e}"),
    }
}

/// Formats Unix milliseconds as UTC `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(1_700_000_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(utc(4_102_444_799_000), "2099-12-31T23:59:59Z");
    }
}
