//! Training data from a table: a `fitrank export` file, or any table renamed onto its layout.

use super::{Dataset, TrainError};
use crate::export::table::Column;
use crate::export::{Table, columns};
use fitrank::features::{self, IdentityKeys, NUM_FEATURES, extract, feature_names};

/// Where the labels are and how features are obtained.
#[derive(Debug, Clone)]
pub struct TableSource {
    /// Column of the engagement label (0/1).
    pub engage_label: String,
    /// Column of the purchase label (0/1).
    pub purchase_label: String,
    /// Recompute features from raw-input columns instead of reading `f.*`.
    pub recompute: bool,
}

impl Default for TableSource {
    fn default() -> Self {
        TableSource { engage_label: "label_engage".into(), purchase_label: "label_purchase".into(), recompute: false }
    }
}

fn label(column: &Column, row: usize) -> Result<bool, TrainError> {
    let v = column.f64(row)?;
    if v == 0.0 || v == 1.0 {
        Ok(v == 1.0)
    } else {
        Err(TrainError::Data(format!("{} row {row} is {v}, labels must be 0 or 1", column.name)))
    }
}

/// Builds the training matrix of `table`.
pub fn dataset(table: &mut Table, source: &TableSource) -> Result<Dataset, TrainError> {
    let n = table.rows();
    let mut data = Dataset::with_rows(n);
    let mut row = [0f32; NUM_FEATURES];
    let has_time = table.has("time_ms");
    if source.recompute {
        let filled = columns::fill_missing_inputs(table);
        if !filled.is_empty() {
            eprintln!("  {} raw-input columns missing, filled with defaults: {}", filled.len(), filled.join(", "));
        }
        let raw = columns::RawColumns::new(table);
        let (engage, purchase) = (table.column(&source.engage_label)?, table.column(&source.purchase_label)?);
        for i in 0..n {
            let input = raw.inputs(i)?;
            extract(&input.input(), &mut row);
            data.set(i, &row, label(engage, i)?, label(purchase, i)?, input.context.time_ms);
        }
    } else {
        if table.has("schema_hash") {
            let hashes = table.column("schema_hash")?;
            for i in 0..n {
                let hash = hashes.text(i);
                if hash != features::schema_hash() {
                    return Err(TrainError::Data(format!(
                        "row {i} was served with feature schema {hash}, this fitrank extracts {}; use --recompute",
                        features::schema_hash()
                    )));
                }
            }
        }
        if let Some(missing) = feature_names().iter().find(|f| !table.has(&format!("f.{f}"))) {
            return Err(TrainError::Data(format!("column f.{missing} is missing; use --recompute for raw tables")));
        }
        // Columns are resolved once: a lookup by name scans every column, and this reads
        // rows × features cells (a million rows of 264 features took 150 s by name).
        let features = columns::FeatureColumns::new(table)?;
        let (engage, purchase) = (table.column(&source.engage_label)?, table.column(&source.purchase_label)?);
        let time = if has_time { Some(table.column("time_ms")?) } else { None };
        for i in 0..n {
            row = features.row(i)?;
            let t = time.map(|c| c.i64(i)).transpose()?.unwrap_or(0);
            data.set(i, &row, label(engage, i)?, label(purchase, i)?, t);
        }
    }
    read_identity(table, &mut data)?;
    read_groups(table, &mut data)?;
    Ok(data)
}

/// The rows' served rankings from the `ranking_id` column, hashed (0 where the table has none or
/// the row names none).
fn read_groups(table: &Table, data: &mut Dataset) -> Result<(), TrainError> {
    if !table.has("ranking_id") {
        return Ok(());
    }
    let column = table.column("ranking_id")?;
    for (i, group) in data.groups.iter_mut().enumerate() {
        let id = column.text(i);
        *group = if id.is_empty() { 0 } else { fitrank::hash::mixed(id.as_bytes()).max(1) };
    }
    Ok(())
}

/// The rows' identity keys from the `user_id` and `session.host_id` columns, where the table has
/// them (a `fitrank export` file has both); a missing column means no id of that kind.
fn read_identity(table: &Table, data: &mut Dataset) -> Result<(), TrainError> {
    let user = if table.has("user_id") { Some(table.column("user_id")?) } else { None };
    let host = if table.has("session.host_id") { Some(table.column("session.host_id")?) } else { None };
    if user.is_none() && host.is_none() {
        return Ok(());
    }
    for (i, keys) in data.ids.iter_mut().enumerate() {
        let user = user.map(|c| c.text(i)).unwrap_or_default();
        let host = host.map(|c| c.text(i)).unwrap_or_default();
        *keys = IdentityKeys::of(&user, &host);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::generator::{GeneratorConfig, generate};

    /// `fitrank generate` writes what `fitrank train --data` reads back, exactly.
    #[test]
    fn generated_rows_round_trip_through_a_table() {
        let data = generate(GeneratorConfig { users: 50, sessions: 10, impressions: 300, seed: 1 });
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.parquet");
        crate::export::write(&data.to_table(), &path).unwrap();
        let mut table = Table::read(&path).unwrap();
        let back = dataset(&mut table, &TableSource::default()).unwrap();
        assert_eq!(back.x, data.x);
        assert_eq!((back.engaged, back.purchased, back.time_ms), (data.engaged, data.purchased, data.time_ms));
    }

    /// The served ranking of each row groups rows for `--purchase-objective ranking`.
    #[test]
    fn rows_of_one_ranking_share_a_group() {
        use crate::export::table::{Column, Values};
        let data = generate(GeneratorConfig { users: 20, sessions: 5, impressions: 4, seed: 2 });
        let mut table = data.to_table();
        let ids = ["r1", "r2", "r1", ""].map(String::from).to_vec();
        table.columns.push(Column { name: "ranking_id".into(), values: Values::Str(ids) });
        let back = dataset(&mut table, &TableSource::default()).unwrap();
        let g = &back.groups;
        assert!(g[0] == g[2] && g[0] != g[1] && g[0] != 0 && g[1] != 0 && g[3] == 0, "{g:?}");
        assert_eq!(dataset(&mut data.to_table(), &TableSource::default()).unwrap().groups, vec![0; 4]);
    }
}
