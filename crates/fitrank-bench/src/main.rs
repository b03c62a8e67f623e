//! `fitrank-bench`: the instruments. `fitrank bench …` runs `fitrank-bench …` when both are
//! installed side by side.
//!
//! - [`load`]: load-tests a running service over gRPC (`rank`, `ingest`, `floor`), and reads the
//!   server's own latency, the machine's steal time, a hiccup meter and its own threads' waits over
//!   the same window.
//! - [`stalls`]: measures how often and how long the machine stops running threads, with no
//!   service involved (`stalls`).

mod load;
mod stalls;

use std::process::ExitCode;

use clap::Parser;

/// Load-test a running service over gRPC (Rank, Ingest, or an empty call), or probe the machine.
#[derive(Parser)]
#[command(name = "fitrank-bench", version)]
struct Args {
    #[command(flatten)]
    bench: load::BenchArgs,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("FITRANK_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    match load::bench(Args::parse().bench) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
