//! Logging set-up: journald when run by systemd (or asked for), otherwise text or JSON on
//! stderr. The level comes from `TSIM_LOG` (e.g. `debug`, `tsim_helper=trace`), default `info`.

use std::str::FromStr;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The syslog identifier used in the journal.
pub const SYSLOG_IDENTIFIER: &str = "tsim-helper";

/// Where and how to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines on stderr.
    Text,
    /// One JSON object per line on stderr.
    Json,
    /// The systemd journal, with structured fields.
    Journald,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        <Self as clap::ValueEnum>::from_str(s, true)
    }
}

/// Installs the global subscriber and returns the format actually used. With no explicit
/// format, journald is used when `JOURNAL_STREAM` is set (stderr goes to the journal), text
/// otherwise. If journald cannot be reached, it falls back to text on stderr, with a warning.
pub fn init(format: Option<LogFormat>) -> LogFormat {
    let filter = || EnvFilter::try_from_env("TSIM_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let wanted = format.unwrap_or_else(|| {
        if std::env::var_os("JOURNAL_STREAM").is_some() {
            LogFormat::Journald
        } else {
            LogFormat::Text
        }
    });
    let registry = tracing_subscriber::registry().with(filter());
    match wanted {
        LogFormat::Journald => match tracing_journald::layer() {
            Ok(layer) => {
                registry
                    .with(layer.with_syslog_identifier(SYSLOG_IDENTIFIER.to_owned()))
                    .init();
                LogFormat::Journald
            }
            Err(e) => {
                registry.with(text_layer()).init();
                tracing::warn!(error = %e, "Cannot reach journald; logging to stderr");
                LogFormat::Text
            }
        },
        LogFormat::Json => {
            let layer = tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(true)
                .with_span_list(false)
                .with_writer(std::io::stderr);
            registry.with(layer).init();
            LogFormat::Json
        }
        LogFormat::Text => {
            registry.with(text_layer()).init();
            LogFormat::Text
        }
    }
}

fn text_layer<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
}
