//! The agent's log: `tracing` events on stderr. `--log-format text` (the default) writes each
//! message alone on its line, as the agent always has (`mirror: ready: ...`); `json` writes one
//! JSON object a line with the time, the level, the message and the event's fields (`iface`,
//! `pod`, `remote`, ...), which is what Kubernetes log pipelines ingest. `RUST_LOG` chooses what
//! is written (default: the agent's own events from `info` up). A usage error is never logged:
//! it stays one `error:` line (see `main.rs`).
use clap::ValueEnum;
use tracing_subscriber::{EnvFilter, fmt::format::debug_fn};

use crate::UsageError;

/// `--log-format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// The messages alone, one a line.
    #[default]
    Text,
    /// One JSON object a line: timestamp, level, message, fields.
    Json,
}

/// What is logged unless `RUST_LOG` says otherwise.
const DEFAULT_FILTER: &str = "mirror=info";

/// Starts the log; a `RUST_LOG` that does not parse is a usage error.
pub fn init(format: LogFormat) -> Result<(), UsageError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.is_empty() => EnvFilter::try_new(&directives)
            .map_err(|e| UsageError(format!("RUST_LOG={directives}: {e}")))?,
        _ => EnvFilter::new(DEFAULT_FILTER),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    // A second start (tests) keeps the first.
    let _ = match format {
        LogFormat::Text => builder
            .without_time()
            .with_level(false)
            .with_target(false)
            .fmt_fields(debug_fn(|out, field, value| {
                if field.name() == "message" {
                    write!(out, "{value:?}")
                } else {
                    Ok(())
                }
            }))
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
    Ok(())
}
