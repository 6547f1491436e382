//! The one log set-up of every dfs daemon and the mount: `tracing` events with structured
//! fields, filtered by `RUST_LOG` (default `info`), written as text or JSON lines to stderr or
//! a file. Stdout stays free for what a command prints (`--print-config`, the mount's
//! readiness pipe).

use crate::LogFormat;
use std::path::Path;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// The filter when `RUST_LOG` is unset.
const DEFAULT_FILTER: &str = "info";

/// Why logging could not start.
#[derive(Debug, thiserror::Error)]
pub enum LogInitError {
    #[error("open log file {path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("install the log subscriber: {0}")]
    Install(String),
}

/// Starts logging for this process, to `file` (appended) or else stderr. Call once, early.
///
/// An unparsable `RUST_LOG` is not fatal: the default filter applies and a warning says so.
pub fn init(format: LogFormat, file: Option<&Path>) -> Result<(), LogInitError> {
    let (filter, bad_filter) = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => match EnvFilter::try_new(&spec) {
            Ok(f) => (f, None),
            Err(e) => (EnvFilter::new(DEFAULT_FILTER), Some(format!("{spec}: {e}"))),
        },
        _ => (EnvFilter::new(DEFAULT_FILTER), None),
    };
    match file {
        Some(path) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| LogInitError::Open {
                    path: path.display().to_string(),
                    source,
                })?;
            install(format, filter, std::sync::Mutex::new(f), false)?;
        }
        None => {
            use std::io::IsTerminal;
            let ansi = std::io::stderr().is_terminal();
            install(format, filter, std::io::stderr, ansi)?;
        }
    }
    if let Some(why) = bad_filter {
        tracing::warn!(rust_log = %why, "RUST_LOG is not a valid filter; logging at info");
    }
    Ok(())
}

fn install<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
    ansi: bool,
) -> Result<(), LogInitError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let result = match format {
        LogFormat::Text => builder.with_ansi(ansi).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
    result.map_err(|e| LogInitError::Install(e.to_string()))
}
