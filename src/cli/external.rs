//! `fitrank <command>` for the commands that live outside the serving binary: the lab's
//! (`fitrank-lab`) and the instruments' (`fitrank-bench`), run the way `git` and `cargo` run their
//! external subcommands. The program is looked up beside this executable first (where
//! `cargo build --workspace` and `cargo install` put it), then on the `PATH`; on Unix it replaces
//! this process, so signals and the exit code are its own.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::process::{Command, ExitCode};

/// Which program runs which command, and whether the command word is passed on: `fitrank-lab`
/// has a subcommand per job (`fitrank train …` runs `fitrank-lab train …`); `fitrank-bench` *is*
/// the bench command (`fitrank bench rank …` runs `fitrank-bench rank …`).
const COMMANDS: &[(&str, &str, bool)] = &[
    ("train", "fitrank-lab", true),
    ("export", "fitrank-lab", true),
    ("evaluate", "fitrank-lab", true),
    ("report", "fitrank-lab", true),
    ("generate", "fitrank-lab", true),
    ("simulate", "fitrank-lab", true),
    ("movielens", "fitrank-lab", true),
    ("bench", "fitrank-bench", false),
];

/// The help text's list of these commands.
pub const HELP: &str = "\
Lab commands (run by fitrank-lab, crate crates/fitrank-lab):
  train      Train a model version and write it under the models folder
  export     Export served rows joined to outcomes (Parquet or CSV)
  evaluate   Measure model versions on a data set, side by side
  report     Report an experiment from an export: per-arm metrics, lifts, SRM
  generate   Write rows of the built-in synthetic world as a training table
  simulate   Drive a running service with the synthetic world and print the scorecard
  movielens  The MovieLens 100k benchmark through fitrank's feature path
Instruments (run by fitrank-bench, crate crates/fitrank-bench):
  bench      Load-test a running service over gRPC (rank, ingest, floor), or probe the machine (stalls)
Build them with `cargo build --release --workspace`; `fitrank <command> --help` shows their options.";

/// The program that runs `command`, and whether it takes the command word, if any.
pub fn program_for(command: &OsStr) -> Option<(&'static str, bool)> {
    COMMANDS.iter().find(|(name, ..)| OsStr::new(name) == command).map(|(_, program, keep)| (*program, *keep))
}

/// Where `program` is: beside this executable, else the first match on the `PATH`.
fn locate(program: &str) -> Option<PathBuf> {
    let file = format!("{program}{}", std::env::consts::EXE_SUFFIX);
    let beside = std::env::current_exe().ok().and_then(|exe| exe.parent().map(|dir| dir.join(&file)));
    let on_path = std::env::var_os("PATH").into_iter().flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>());
    beside.into_iter().chain(on_path.map(|dir| dir.join(&file))).find(|p| p.is_file())
}

/// Runs `words` (the command and its arguments) with the program that owns the command.
pub fn run(words: &[OsString]) -> ExitCode {
    let Some(command) = words.first() else { return ExitCode::FAILURE };
    let Some((program, keep_command)) = program_for(command) else {
        eprintln!("error: unknown command {:?}\n\n{HELP}", command.to_string_lossy());
        return ExitCode::from(2);
    };
    let Some(path) = locate(program) else {
        eprintln!(
            "error: `fitrank {}` is run by {program}, which is not installed beside this binary or on the PATH.\n\
             Build it with `cargo build --release -p {program}` (or `--workspace`), or run \
             `cargo run --release -p {program} -- {} …`.",
            command.to_string_lossy(),
            command.to_string_lossy()
        );
        return ExitCode::FAILURE;
    };
    let mut child = Command::new(&path);
    child.args(if keep_command { words } else { &words[1..] });
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let error = child.exec();
        eprintln!("error: could not run {}: {error}", path.display());
        ExitCode::FAILURE
    }
    #[cfg(not(unix))]
    match child.status() {
        Ok(status) => ExitCode::from(status.code().unwrap_or(1).clamp(0, 255) as u8),
        Err(error) => {
            eprintln!("error: could not run {}: {error}", path.display());
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_lab_and_instrument_command_has_one_program_and_a_help_line() {
        for (name, program, keep) in COMMANDS {
            assert_eq!(program_for(OsStr::new(name)), Some((*program, *keep)));
            assert!(HELP.lines().any(|l| l.trim_start().starts_with(name)), "{name} is missing from HELP");
        }
        assert_eq!(program_for(OsStr::new("serve")), None);
        assert_eq!(program_for(OsStr::new("trainx")), None);
    }
}
