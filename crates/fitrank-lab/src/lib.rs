//! fitrank's lab: what data scientists and experimenters run offline, apart from the serving
//! product (the `fitrank` crate), which it uses only through its public types and its generated
//! gRPC client.
//!
//! - [`export`]: the product's feature log (served rankings and outcomes) joined into a training
//!   table, Parquet or CSV.
//! - [`train`]: training data (exported, mapped or generated tables) and the linfa fitting of a
//!   model version; [`train::generator`] is the built-in synthetic world.
//! - [`evaluate`]: model versions measured side by side, and off-policy estimates.
//! - [`report`]: an experiment's per-arm report with its statistics, from an export.
//! - [`simulate`]: the synthetic world driving a running service over gRPC, with its scorecard.
//! - [`movielens`]: the real-data benchmark through the product's feature path.
//! - [`worlds`]: world families for the simulator, differing in structure, not only in seed.
//! - [`progress`]: progress bars on a terminal.

pub mod evaluate;
pub mod export;
pub mod movielens;
pub mod posterior;
pub mod progress;
pub mod report;
pub mod simulate;
pub mod train;
pub mod worlds;
