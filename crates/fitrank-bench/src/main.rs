//! `fitrank-bench`: the instruments. `fitrank bench …` runs `fitrank-bench …` when both are
//! installed side by side.
//!
//! - [`load`]: load-tests a running service over gRPC (`rank`, `ingest`, `floor`), and reads the
//!   server's own latency, the machine's steal time, a hiccup meter and its own threads' waits over
//!   the same window.
//! - [`stalls`]: measures how often and how long the machine stops running threads, with no
//!   service involved (`stalls`).
//! - [`verify`]: checks that ingest counts every acknowledged event exactly once while replicas and
//!   the store fail (`verify`).

mod load;
mod stalls;
mod verify;

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
    fitrank::cli::init_logging("warn");
    fitrank::cli::exit_code(load::bench(Args::parse().bench))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `fitrank bench rank …` runs `fitrank-bench rank …` (`fitrank::cli::external`): the target
    /// comes first.
    #[test]
    fn the_target_comes_first_as_fitrank_passes_it_on() {
        assert!(Args::try_parse_from(["fitrank-bench", "floor", "--rate", "100"]).is_ok());
        assert!(Args::try_parse_from(["fitrank-bench", "stalls", "--duty", "0.5"]).is_ok());
        assert!(Args::try_parse_from(["fitrank-bench", "bench", "floor"]).is_err());
    }
}
