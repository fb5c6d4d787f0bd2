//! Logging setup: `tracing` with an env filter (`RUST_LOG`), pretty or
//! JSON lines. Handlers log outcomes, never personal data.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    Pretty,
    /// One JSON object per line, for log shippers.
    Json,
}

/// The MCP SDK logs whole requests (tool arguments: emails, phone numbers)
/// at debug and trace level, so it never logs below `error`, whatever
/// `RUST_LOG` asks.
pub const MCP_SDK_CAP: &str = "rmcp=error";

static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// When this process started (the first call; `main` makes it first
/// thing), for the "serving" log line's start-up time.
pub fn process_started() -> std::time::Instant {
    *STARTED.get_or_init(std::time::Instant::now)
}

/// Installs the global subscriber, writing to stderr. The default filter is
/// `info` for this crate and `warn` for libraries; `RUST_LOG` overrides it,
/// except that the MCP SDK is capped at [`MCP_SDK_CAP`].
/// Calling it twice is harmless (the second call does nothing).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("warn,customer_context=info"))
        .add_directive(MCP_SDK_CAP.parse().expect("a valid directive"));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Pretty => registry
            .with(fmt::layer().with_writer(std::io::stderr))
            .try_init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
}
