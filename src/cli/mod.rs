//! The `fitrank` binary's commands beside `serve`: the gRPC client ([`call`]) and the hand-off of
//! the lab's and the instruments' commands to their own binaries ([`external`]).

pub mod access;
mod call;
pub mod connect;
pub mod external;

pub use call::{CallArgs, call};

/// An error a command reports and exits with.
pub type CommandError = Box<dyn std::error::Error + Send + Sync>;

/// Logs to standard error at `FITRANK_LOG`'s level (default `default_level`), in colour on a
/// terminal. Every binary of the workspace starts with it.
pub fn init_logging(default_level: &str) {
    init_logging_as(default_level, LogFormat::Text);
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// For people: one line per event, in colour on a terminal.
    #[default]
    Text,
    /// For log pipelines: one JSON object per line, with the fields of the current span (a call's
    /// `trace_id` when the caller sent a W3C `traceparent`).
    Json,
}

/// [`init_logging`] in `format`.
pub fn init_logging_as(default_level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FITRANK_LOG").unwrap_or_else(|_| default_level.into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init(),
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(false).init(),
    }
}

/// The process's exit code for a command's result; an error is printed first.
pub fn exit_code(result: Result<(), CommandError>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
