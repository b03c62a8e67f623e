//! The product's test harness (the real server on an ephemeral port), shared with the lab's tests,
//! and the lab's own binary.

#![allow(dead_code)]

#[path = "../../../../tests/common/mod.rs"]
mod product;

pub use product::*;

/// Runs `fitrank-lab` with `args` and returns its standard output; panics when it fails.
pub fn fitrank(args: &[&str]) -> String {
    product::run(env!("CARGO_BIN_EXE_fitrank-lab"), args)
}
