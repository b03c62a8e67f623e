//! The `fitrank` binary's commands beside `serve`: the gRPC client ([`call`]) and the hand-off of
//! the lab's and the instruments' commands to their own binaries ([`external`]).

mod call;
pub mod external;

pub use call::{CallArgs, call};

/// An error a command reports and exits with.
pub type CommandError = Box<dyn std::error::Error + Send + Sync>;

/// Logs to standard error at `FITRANK_LOG`'s level (default `default_level`), in colour on a
/// terminal. Every binary of the workspace starts with it.
pub fn init_logging(default_level: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FITRANK_LOG").unwrap_or_else(|_| default_level.into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
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
