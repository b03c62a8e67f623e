//! The `fitrank` binary hands the lab's and the instruments' commands to their own binaries, found
//! beside it, with the arguments and the exit code unchanged; without them it says how to get them.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// A copy of the `fitrank` binary alone in a fresh folder, and that folder.
fn lone_fitrank() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("fitrank");
    std::fs::copy(env!("CARGO_BIN_EXE_fitrank"), &bin).unwrap();
    (dir, bin)
}

/// Writes an executable script `name` into `dir` that prints its arguments and exits with `code`.
fn program(dir: &Path, name: &str, code: i32) {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\necho \"{name} $*\"\nexit {code}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn lab_and_instrument_commands_run_the_binary_beside_fitrank() {
    let (dir, fitrank) = lone_fitrank();
    program(dir.path(), "fitrank-lab", 3);
    program(dir.path(), "fitrank-bench", 0);
    let out = Command::new(&fitrank).args(["train", "--data", "x y.parquet"]).env("PATH", "").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "fitrank-lab train --data x y.parquet\n");
    assert_eq!(out.status.code(), Some(3), "the lab's exit code is fitrank's");
    let out = Command::new(&fitrank).args(["bench", "stalls"]).env("PATH", "").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "fitrank-bench stalls\n", "fitrank-bench is the bench command");
    assert!(out.status.success());
}

#[test]
fn a_missing_lab_binary_is_named_with_how_to_build_it() {
    let (_dir, fitrank) = lone_fitrank();
    let out = Command::new(&fitrank).args(["export", "--out", "x.csv"]).env("PATH", "").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`fitrank export` is run by fitrank-lab"), "{err}");
    assert!(err.contains("cargo build --release -p fitrank-lab"), "{err}");
    let out = Command::new(&fitrank).arg("no-such-command").env("PATH", "").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let help = Command::new(&fitrank).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("serve") && help.contains("Lab commands") && help.contains("movielens"), "{help}");
}
