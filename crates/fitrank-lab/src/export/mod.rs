//! `fitrank export`: served rows joined to outcomes, as Parquet or CSV for training.
//!
//! [`export`] reads the feature log of one or more folders (several replicas' logs export
//! together), joins outcomes to served items ([`join`]), and builds the table whose layout
//! [`columns`] defines. Every served row's features are recomputed from its logged raw inputs
//! during the export and compared bit for bit; a mismatch (training/serving skew, or a log from
//! another schema) is counted in [`JoinStats::skewed_rows`].

pub mod columns;
mod join;
pub mod table;

use std::path::{Path, PathBuf};

pub use join::{JoinOptions, JoinStats};
pub use table::{Table, TableError};

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("reading the feature log: {0}")]
    Read(#[from] std::io::Error),
    #[error(transparent)]
    Table(#[from] TableError),
    #[error("unknown output format for {0}: use .parquet or .csv")]
    Format(PathBuf),
}

/// Joins the logs in `dirs` and returns the table.
pub fn export(dirs: &[PathBuf], options: &JoinOptions) -> Result<(Table, JoinStats), ExportError> {
    Ok(join::join(dirs, options)?)
}

/// Writes `table` as Parquet or CSV, chosen by the extension of `path`.
pub fn write(table: &Table, path: &Path) -> Result<(), ExportError> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("parquet") => table.write_parquet(path)?,
        Some("csv") => table.write_csv(path)?,
        _ => return Err(ExportError::Format(path.to_owned())),
    }
    Ok(())
}
