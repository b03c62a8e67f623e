//! A column-oriented table with CSV and Parquet writers and a CSV reader.

use std::{fs::File, path::Path, sync::Arc};

/// Values of one column.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    I64(Vec<i64>),
    F64(Vec<f64>),
    F32(Vec<f32>),
    Str(Vec<String>),
}

impl Values {
    fn len(&self) -> usize {
        match self {
            Values::I64(v) => v.len(),
            Values::F64(v) => v.len(),
            Values::F32(v) => v.len(),
            Values::Str(v) => v.len(),
        }
    }

    fn select(&self, rows: &[usize]) -> Values {
        match self {
            Values::I64(v) => Values::I64(rows.iter().map(|r| v[*r]).collect()),
            Values::F64(v) => Values::F64(rows.iter().map(|r| v[*r]).collect()),
            Values::F32(v) => Values::F32(rows.iter().map(|r| v[*r]).collect()),
            Values::Str(v) => Values::Str(rows.iter().map(|r| v[*r].clone()).collect()),
        }
    }

    /// Puts the values in the order of `permutation` (each row exactly once), moving them.
    fn permute(&mut self, permutation: &[usize]) {
        fn moved<T: Default>(v: &mut Vec<T>, permutation: &[usize]) {
            let mut old = std::mem::take(v);
            *v = permutation.iter().map(|r| std::mem::take(&mut old[*r])).collect();
        }
        match self {
            Values::I64(v) => moved(v, permutation),
            Values::F64(v) => moved(v, permutation),
            Values::F32(v) => moved(v, permutation),
            Values::Str(v) => moved(v, permutation),
        }
    }

    fn empty_like(&self) -> Values {
        match self {
            Values::I64(_) => Values::I64(Vec::new()),
            Values::F64(_) => Values::F64(Vec::new()),
            Values::F32(_) => Values::F32(Vec::new()),
            Values::Str(_) => Values::Str(Vec::new()),
        }
    }

    fn cell(&self, row: usize) -> String {
        match self {
            Values::I64(v) => v[row].to_string(),
            Values::F64(v) => v[row].to_string(),
            Values::F32(v) => v[row].to_string(),
            Values::Str(v) => v[row].clone(),
        }
    }
}

/// A named column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub values: Values,
}

impl Column {
    /// A cell as text (any column type).
    pub fn text(&self, row: usize) -> std::borrow::Cow<'_, str> {
        match &self.values {
            Values::Str(v) => std::borrow::Cow::Borrowed(v[row].as_str()),
            other => std::borrow::Cow::Owned(other.cell(row)),
        }
    }

    fn not_a_number(&self, row: usize, value: &str) -> TableError {
        TableError::NotANumber { column: self.name.clone(), row, value: value.to_owned() }
    }

    /// A cell as f64 (numeric columns, or text that parses). Resolve a column once with
    /// [`Table::column`] and read it with these when reading many rows: a lookup by name scans
    /// every column.
    pub fn f64(&self, row: usize) -> Result<f64, TableError> {
        Ok(match &self.values {
            Values::I64(v) => v[row] as f64,
            Values::F64(v) => v[row],
            Values::F32(v) => f64::from(v[row]),
            Values::Str(v) => v[row].parse().map_err(|_| self.not_a_number(row, &v[row]))?,
        })
    }

    /// A cell as f32, exactly as written (f32 text round-trips).
    pub fn f32(&self, row: usize) -> Result<f32, TableError> {
        Ok(match &self.values {
            Values::F32(v) => v[row],
            Values::Str(v) => v[row].parse().map_err(|_| self.not_a_number(row, &v[row]))?,
            _ => self.f64(row)? as f32,
        })
    }

    /// A cell as i64.
    pub fn i64(&self, row: usize) -> Result<i64, TableError> {
        Ok(match &self.values {
            Values::I64(v) => v[row],
            Values::Str(v) => v[row].parse().map_err(|_| self.not_a_number(row, &v[row]))?,
            _ => self.f64(row)? as i64,
        })
    }
}

/// Columns of equal length.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub columns: Vec<Column>,
}

/// Why a table could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("I/O on {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("malformed CSV {path} line {line}: {reason}")]
    Csv { path: String, line: usize, reason: String },
    #[error("column {0:?} is missing")]
    MissingColumn(String),
    #[error("column {column:?} row {row}: {value:?} is not a number")]
    NotANumber { column: String, row: usize, value: String },
}

impl Table {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.columns.first().map_or(0, |c| c.values.len())
    }

    /// The rows `rows` (in that order) of every column.
    pub fn select(&self, rows: &[usize]) -> Table {
        Table {
            columns: self
                .columns
                .iter()
                .map(|c| Column { name: c.name.clone(), values: c.values.select(rows) })
                .collect(),
        }
    }

    /// Puts the rows in the order of `permutation` (each row exactly once), one column at a time:
    /// no second copy of the table.
    pub fn permute(&mut self, permutation: &[usize]) {
        debug_assert_eq!(permutation.len(), self.rows());
        self.columns.iter_mut().for_each(|c| c.values.permute(permutation));
    }

    /// A table with the same columns and no rows.
    pub fn empty_like(&self) -> Table {
        Table {
            columns: self
                .columns
                .iter()
                .map(|c| Column { name: c.name.clone(), values: c.values.empty_like() })
                .collect(),
        }
    }

    /// The column named `name`.
    pub fn column(&self, name: &str) -> Result<&Column, TableError> {
        self.columns.iter().find(|c| c.name == name).ok_or_else(|| TableError::MissingColumn(name.to_owned()))
    }

    /// A cell as text (any column type).
    pub fn text(&self, name: &str, row: usize) -> Result<String, TableError> {
        Ok(self.column(name)?.text(row).into_owned())
    }

    /// A cell as f64 (numeric columns, or text that parses).
    pub fn f64(&self, name: &str, row: usize) -> Result<f64, TableError> {
        self.column(name)?.f64(row)
    }

    /// A cell as f32, exactly as written (f32 text round-trips).
    pub fn f32(&self, name: &str, row: usize) -> Result<f32, TableError> {
        self.column(name)?.f32(row)
    }

    /// A cell as i64.
    pub fn i64(&self, name: &str, row: usize) -> Result<i64, TableError> {
        self.column(name)?.i64(row)
    }

    /// Writes CSV with a header row (the `csv` crate: RFC 4180 quoting). Numbers are written in
    /// shortest round-trip form, so reading them back gives the same bits.
    pub fn write_csv(&self, path: &Path) -> Result<(), TableError> {
        let p = path.display().to_string();
        let csv_error = |e: csv::Error| TableError::Csv { path: p.clone(), line: 0, reason: e.to_string() };
        let mut out = csv::Writer::from_path(path).map_err(csv_error)?;
        out.write_record(self.columns.iter().map(|c| c.name.as_str())).map_err(csv_error)?;
        let mut record = csv::StringRecord::with_capacity(256, self.columns.len());
        for row in 0..self.rows() {
            record.clear();
            for c in &self.columns {
                record.push_field(&c.values.cell(row));
            }
            out.write_record(&record).map_err(csv_error)?;
        }
        out.flush().map_err(|source| TableError::Io { path: p.clone(), source })
    }

    /// Reads a CSV file with a header row; every column is text (see the typed getters). Quoted
    /// fields may hold commas, quotes and newlines; a UTF-8 byte-order mark (as Excel writes) is
    /// skipped.
    pub fn read_csv(path: &Path) -> Result<Table, TableError> {
        let p = path.display().to_string();
        let csv_error = |e: csv::Error| {
            let line = e.position().map_or(0, |pos| pos.line() as usize);
            match e.into_kind() {
                csv::ErrorKind::Io(source) => TableError::Io { path: p.clone(), source },
                csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
                    TableError::Csv { path: p.clone(), line, reason: format!("{len} cells, header has {expected_len}") }
                }
                kind => TableError::Csv { path: p.clone(), line, reason: format!("{kind:?}") },
            }
        };
        let mut reader = csv::ReaderBuilder::new().has_headers(true).from_path(path).map_err(csv_error)?;
        let header: Vec<String> = reader.headers().map_err(csv_error)?.iter().map(str::to_owned).collect();
        let mut cols: Vec<Vec<String>> = vec![Vec::new(); header.len()];
        let mut record = csv::StringRecord::new();
        while reader.read_record(&mut record).map_err(csv_error)? {
            for (c, cell) in cols.iter_mut().zip(record.iter()) {
                c.push(cell.to_owned());
            }
        }
        Ok(Table {
            columns: header.into_iter().zip(cols).map(|(name, v)| Column { name, values: Values::Str(v) }).collect(),
        })
    }

    /// Reads a Parquet file of flat columns (ints, floats, booleans, strings; nulls read as NaN or "").
    pub fn read_parquet(path: &Path) -> Result<Table, TableError> {
        use parquet::basic::Type as Physical;
        use parquet::column::reader::ColumnReader;
        use parquet::file::reader::{FileReader, SerializedFileReader};

        let file = File::open(path).map_err(|source| TableError::Io { path: path.display().to_string(), source })?;
        let reader = SerializedFileReader::new(file)?;
        let schema = reader.metadata().file_metadata().schema_descr_ptr();
        let flat = (0..schema.num_columns()).all(|i| {
            let c = schema.column(i);
            c.max_rep_level() == 0
                && c.path().parts().len() == 1
                && matches!(
                    c.physical_type(),
                    Physical::BOOLEAN
                        | Physical::INT32
                        | Physical::INT64
                        | Physical::FLOAT
                        | Physical::DOUBLE
                        | Physical::BYTE_ARRAY
                )
        });
        if !flat {
            return Table::read_parquet_rows(path);
        }
        // Column by column: a million rows of 267 columns read in seconds, where the record API
        // (one boxed row of named fields per row) took about a minute.
        let mut table = Table {
            columns: (0..schema.num_columns())
                .map(|i| {
                    let c = schema.column(i);
                    let values = match c.physical_type() {
                        Physical::FLOAT => Values::F32(Vec::new()),
                        Physical::DOUBLE => Values::F64(Vec::new()),
                        Physical::BYTE_ARRAY => Values::Str(Vec::new()),
                        _ => Values::I64(Vec::new()),
                    };
                    Column { name: c.name().to_owned(), values }
                })
                .collect(),
        };
        const BATCH: usize = 65_536;
        for g in 0..reader.num_row_groups() {
            let group = reader.get_row_group(g)?;
            let rows = usize::try_from(group.metadata().num_rows()).unwrap_or(0);
            for (i, column) in table.columns.iter_mut().enumerate() {
                let max_def = schema.column(i).max_def_level();
                let mut defs = Vec::new();
                let mut read = 0;
                // Values come packed, nulls left out; the definition levels put them back at their
                // rows (a null reads as 0, NaN or "", as the record API's reading does).
                macro_rules! read_all {
                    ($reader:expr, $buf:expr, $out:expr, $null:expr, $conv:expr) => {{
                        let mut r = $reader;
                        let mut buf = $buf;
                        while read < rows {
                            defs.clear();
                            buf.clear();
                            let (records, _, levels) = r.read_records(
                                BATCH.min(rows - read),
                                (max_def > 0).then_some(&mut defs),
                                None,
                                &mut buf,
                            )?;
                            if records == 0 {
                                break;
                            }
                            let mut values = buf.iter();
                            if max_def > 0 {
                                for d in &defs[..levels] {
                                    $out.push(if *d == max_def {
                                        $conv(values.next().expect("a value per defined level"))
                                    } else {
                                        $null
                                    });
                                }
                            } else {
                                $out.extend(values.map($conv));
                            }
                            read += records;
                        }
                    }};
                }
                match (group.get_column_reader(i)?, &mut column.values) {
                    (ColumnReader::BoolColumnReader(r), Values::I64(out)) => {
                        read_all!(r, Vec::<bool>::new(), out, 0, |v: &bool| i64::from(*v))
                    }
                    (ColumnReader::Int32ColumnReader(r), Values::I64(out)) => {
                        read_all!(r, Vec::<i32>::new(), out, 0, |v: &i32| i64::from(*v))
                    }
                    (ColumnReader::Int64ColumnReader(r), Values::I64(out)) => {
                        read_all!(r, Vec::<i64>::new(), out, 0, |v: &i64| *v)
                    }
                    (ColumnReader::FloatColumnReader(r), Values::F32(out)) => {
                        read_all!(r, Vec::<f32>::new(), out, f32::NAN, |v: &f32| *v)
                    }
                    (ColumnReader::DoubleColumnReader(r), Values::F64(out)) => {
                        read_all!(r, Vec::<f64>::new(), out, f64::NAN, |v: &f64| *v)
                    }
                    (ColumnReader::ByteArrayColumnReader(r), Values::Str(out)) => {
                        read_all!(
                            r,
                            Vec::<parquet::data_type::ByteArray>::new(),
                            out,
                            String::new(),
                            |v: &parquet::data_type::ByteArray| { String::from_utf8_lossy(v.data()).into_owned() }
                        )
                    }
                    _ => return Table::read_parquet_rows(path),
                }
                if read != rows {
                    return Err(TableError::Parquet(parquet::errors::ParquetError::General(format!(
                        "column {} of row group {g} holds {read} of its {rows} rows",
                        column.name
                    ))));
                }
            }
        }
        Ok(table)
    }

    /// Reads Parquet row by row through the record API: any schema the record API reads
    /// (nested or unusual column types), slowly.
    pub fn read_parquet_rows(path: &Path) -> Result<Table, TableError> {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        use parquet::record::Field;

        let file = File::open(path).map_err(|source| TableError::Io { path: path.display().to_string(), source })?;
        let reader = SerializedFileReader::new(file)?;
        let mut table = Table::default();
        for (n, row) in reader.get_row_iter(None)?.enumerate() {
            let row = row?;
            for (i, (name, field)) in row.get_column_iter().enumerate() {
                if n == 0 {
                    let values = match field {
                        Field::Float(_) => Values::F32(Vec::new()),
                        Field::Double(_) | Field::Null => Values::F64(Vec::new()),
                        Field::Str(_) | Field::Bytes(_) => Values::Str(Vec::new()),
                        _ => Values::I64(Vec::new()),
                    };
                    table.columns.push(Column { name: name.clone(), values });
                }
                let column = table.columns.get_mut(i).ok_or_else(|| TableError::MissingColumn(name.clone()))?;
                let number = |f: &Field| -> f64 {
                    match f {
                        Field::Bool(b) => f64::from(u8::from(*b)),
                        Field::Byte(v) => f64::from(*v),
                        Field::Short(v) => f64::from(*v),
                        Field::Int(v) => f64::from(*v),
                        Field::Long(v) => *v as f64,
                        Field::UByte(v) => f64::from(*v),
                        Field::UShort(v) => f64::from(*v),
                        Field::UInt(v) => f64::from(*v),
                        Field::ULong(v) => *v as f64,
                        Field::Float(v) => f64::from(*v),
                        Field::Double(v) => *v,
                        _ => f64::NAN,
                    }
                };
                match (&mut column.values, field) {
                    (Values::I64(v), Field::Long(x)) => v.push(*x),
                    (Values::I64(v), f) => v.push(number(f) as i64),
                    (Values::F32(v), Field::Float(x)) => v.push(*x),
                    (Values::F32(v), f) => v.push(number(f) as f32),
                    (Values::F64(v), f) => v.push(number(f)),
                    (Values::Str(v), Field::Str(x)) => v.push(x.clone()),
                    (Values::Str(v), Field::Null) => v.push(String::new()),
                    (Values::Str(v), f) => v.push(f.to_string()),
                }
            }
        }
        Ok(table)
    }

    /// Reads `.parquet` or `.csv`, by extension.
    pub fn read(path: &Path) -> Result<Table, TableError> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("parquet") => Table::read_parquet(path),
            Some("csv") => Table::read_csv(path),
            _ => Err(TableError::Csv {
                path: path.display().to_string(),
                line: 0,
                reason: "use .parquet or .csv".into(),
            }),
        }
    }

    /// Renames columns: `mapping` holds (name fitrank expects, name in this table).
    pub fn rename(&mut self, mapping: &[(String, String)]) -> Result<(), TableError> {
        for (ours, theirs) in mapping {
            let column = self
                .columns
                .iter_mut()
                .find(|c| &c.name == theirs)
                .ok_or_else(|| TableError::MissingColumn(theirs.clone()))?;
            column.name = ours.clone();
        }
        Ok(())
    }

    /// Whether a column exists.
    pub fn has(&self, name: &str) -> bool {
        self.columns.iter().any(|c| c.name == name)
    }

    /// Writes Parquet (snappy-compressed, one row group per 100,000 rows, every column required).
    pub fn write_parquet(&self, path: &Path) -> Result<(), TableError> {
        use parquet::basic::{Compression, LogicalType, Repetition, Type as Physical};
        use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, FloatType, Int64Type};
        use parquet::file::{properties::WriterProperties, writer::SerializedFileWriter};
        use parquet::schema::types::Type;

        let mut fields = Vec::with_capacity(self.columns.len());
        for c in &self.columns {
            let (physical, logical) = match c.values {
                Values::I64(_) => (Physical::INT64, None),
                Values::F64(_) => (Physical::DOUBLE, None),
                Values::F32(_) => (Physical::FLOAT, None),
                Values::Str(_) => (Physical::BYTE_ARRAY, Some(LogicalType::String)),
            };
            let field = Type::primitive_type_builder(&c.name, physical)
                .with_repetition(Repetition::REQUIRED)
                .with_logical_type(logical)
                .build()?;
            fields.push(Arc::new(field));
        }
        let schema = Arc::new(Type::group_type_builder("fitrank_export").with_fields(fields).build()?);
        let props = Arc::new(WriterProperties::builder().set_compression(Compression::SNAPPY).build());
        let file = File::create(path).map_err(|source| TableError::Io { path: path.display().to_string(), source })?;
        let mut writer = SerializedFileWriter::new(file, schema, props)?;
        const GROUP: usize = 100_000;
        let rows = self.rows();
        let mut start = 0;
        while start < rows || (rows == 0 && start == 0) {
            let end = (start + GROUP).min(rows);
            let mut group = writer.next_row_group()?;
            let mut columns = self.columns.iter();
            while let Some(mut col) = group.next_column()? {
                let c = columns.next().expect("one writer per column");
                match &c.values {
                    Values::I64(v) => {
                        col.typed::<Int64Type>().write_batch(&v[start..end], None, None)?;
                    }
                    Values::F64(v) => {
                        col.typed::<DoubleType>().write_batch(&v[start..end], None, None)?;
                    }
                    Values::F32(v) => {
                        col.typed::<FloatType>().write_batch(&v[start..end], None, None)?;
                    }
                    Values::Str(v) => {
                        let bytes: Vec<ByteArray> = v[start..end].iter().map(|s| ByteArray::from(s.as_str())).collect();
                        col.typed::<ByteArrayType>().write_batch(&bytes, None, None)?;
                    }
                }
                col.close()?;
            }
            group.close()?;
            if rows == 0 {
                break;
            }
            start = end;
        }
        writer.close()?;
        Ok(())
    }
}

/// Builds a table row by row; the first row fixes the columns, later rows must push the same
/// names in the same order.
#[derive(Debug, Default)]
pub struct TableBuilder {
    pub table: Table,
    at: usize,
    rows: usize,
}

impl TableBuilder {
    fn slot(&mut self, name: &str, empty: impl FnOnce() -> Values) -> &mut Values {
        if self.rows == 0 {
            self.table.columns.push(Column { name: name.to_owned(), values: empty() });
        }
        let column = &mut self.table.columns[self.at];
        debug_assert_eq!(column.name, name, "rows must push the same columns in the same order");
        self.at += 1;
        &mut column.values
    }

    /// Pushes an i64 cell.
    pub fn i64(&mut self, name: &str, v: i64) {
        if let Values::I64(c) = self.slot(name, || Values::I64(Vec::new())) {
            c.push(v);
        }
    }

    /// Pushes an f64 cell.
    pub fn f64(&mut self, name: &str, v: f64) {
        if let Values::F64(c) = self.slot(name, || Values::F64(Vec::new())) {
            c.push(v);
        }
    }

    /// Pushes an f32 cell.
    pub fn f32(&mut self, name: &str, v: f32) {
        if let Values::F32(c) = self.slot(name, || Values::F32(Vec::new())) {
            c.push(v);
        }
    }

    /// Pushes a text cell.
    pub fn str(&mut self, name: &str, v: impl Into<String>) {
        if let Values::Str(c) = self.slot(name, || Values::Str(Vec::new())) {
            c.push(v.into());
        }
    }

    /// Ends the current row.
    pub fn end_row(&mut self) {
        debug_assert_eq!(self.at, self.table.columns.len(), "row is missing columns");
        self.at = 0;
        self.rows += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permute_is_select_without_the_copy() {
        let mut b = TableBuilder::default();
        for i in 0..5 {
            b.i64("n", i);
            b.f32("x", i as f32 / 2.0);
            b.f64("y", -i as f64);
            b.str("s", format!("row {i}"));
            b.end_row();
        }
        let order = [3, 0, 4, 1, 2];
        let selected = b.table.select(&order);
        let mut permuted = b.table.clone();
        permuted.permute(&order);
        assert_eq!(permuted, selected);
        assert_eq!(permuted.text("s", 0).unwrap(), "row 3");
    }

    #[test]
    fn csv_round_trip_keeps_bits_and_text() {
        let mut b = TableBuilder::default();
        for (i, s) in ["plain", "with, comma", "with \"quote\"\nand a newline"].iter().enumerate() {
            b.i64("n", i as i64 - 1);
            b.f32("x", 0.1 + i as f32 / 3.0);
            b.f64("y", std::f64::consts::PI * i as f64);
            b.str("s", *s);
            b.end_row();
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        b.table.write_csv(&path).unwrap();
        let back = Table::read_csv(&path).unwrap();
        assert_eq!(back.rows(), 3);
        for row in 0..3 {
            assert_eq!(back.f32("x", row).unwrap().to_bits(), b.table.f32("x", row).unwrap().to_bits());
            assert_eq!(back.f64("y", row).unwrap(), b.table.f64("y", row).unwrap());
            assert_eq!(back.i64("n", row).unwrap(), row as i64 - 1);
            assert_eq!(back.text("s", row).unwrap(), b.table.text("s", row).unwrap());
        }
        b.table.write_parquet(&dir.path().join("t.parquet")).unwrap();
        let pq = Table::read_parquet(&dir.path().join("t.parquet")).unwrap();
        assert_eq!(pq, b.table, "parquet round trip keeps types and values");
        b.table.empty_like().write_parquet(&dir.path().join("empty.parquet")).unwrap();
    }

    #[test]
    fn csv_as_python_and_excel_write_it_reads() {
        // A byte-order mark, CRLF line ends, a quoted newline, and a row of the wrong length.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("excel.csv");
        std::fs::write(&path, "\u{feff}user_id,note\r\nu1,\"two\r\nlines\"\r\nu2,plain\r\n").unwrap();
        let t = Table::read_csv(&path).unwrap();
        assert_eq!(t.columns[0].name, "user_id");
        assert_eq!(t.rows(), 2);
        assert_eq!(t.text("note", 0).unwrap(), "two\r\nlines");
        std::fs::write(&path, "a,b\n1,2\n3\n").unwrap();
        match Table::read_csv(&path) {
            Err(TableError::Csv { line, reason, .. }) => {
                assert_eq!((line, reason.as_str()), (3, "1 cells, header has 2"))
            }
            other => panic!("{other:?}"),
        }
    }

    /// A table written by another tool: nullable columns of every flat type, several row groups.
    /// The column reader must read it as the record API does.
    #[test]
    fn parquet_column_reader_matches_record_reader_with_nulls() {
        use parquet::basic::{LogicalType, Repetition, Type as Physical};
        use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, FloatType, Int32Type, Int64Type};
        use parquet::file::{properties::WriterProperties, writer::SerializedFileWriter};
        use parquet::schema::types::Type;

        let kinds = [
            ("b", Physical::BOOLEAN, None),
            ("i32", Physical::INT32, None),
            ("i64", Physical::INT64, None),
            ("f", Physical::FLOAT, None),
            ("d", Physical::DOUBLE, None),
            ("s", Physical::BYTE_ARRAY, Some(LogicalType::String)),
        ];
        let fields = kinds
            .iter()
            .map(|(name, physical, logical)| {
                Arc::new(
                    Type::primitive_type_builder(name, *physical)
                        .with_repetition(Repetition::OPTIONAL)
                        .with_logical_type(logical.clone())
                        .build()
                        .unwrap(),
                )
            })
            .collect();
        let schema = Arc::new(Type::group_type_builder("other_tool").with_fields(fields).build().unwrap());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nulls.parquet");
        let mut writer = SerializedFileWriter::new(
            File::create(&path).unwrap(),
            schema,
            Arc::new(WriterProperties::builder().build()),
        )
        .unwrap();
        for group in 0..3 {
            let n = 5 + group;
            // Rows 1, 4, 7, ... of every group are null in every column (row 0 is not: the record
            // reader types a column by its first row).
            let defs: Vec<i16> = (0..n).map(|r| i16::from(r % 3 != 1)).collect();
            let present: Vec<usize> = (0..n).filter(|r| r % 3 != 1).collect();
            let mut g = writer.next_row_group().unwrap();
            let mut k = 0;
            while let Some(mut col) = g.next_column().unwrap() {
                let v = |r: &usize| (group * 10 + r) as i64;
                match k {
                    0 => col.typed::<BoolType>().write_batch(
                        &present.iter().map(|r| r % 2 == 0).collect::<Vec<_>>(),
                        Some(&defs),
                        None,
                    ),
                    1 => col.typed::<Int32Type>().write_batch(
                        &present.iter().map(|r| v(r) as i32 - 7).collect::<Vec<_>>(),
                        Some(&defs),
                        None,
                    ),
                    2 => col.typed::<Int64Type>().write_batch(
                        &present.iter().map(|r| v(r) << 33).collect::<Vec<_>>(),
                        Some(&defs),
                        None,
                    ),
                    3 => col.typed::<FloatType>().write_batch(
                        &present.iter().map(|r| v(r) as f32 / 3.0).collect::<Vec<_>>(),
                        Some(&defs),
                        None,
                    ),
                    4 => col.typed::<DoubleType>().write_batch(
                        &present.iter().map(|r| v(r) as f64 / 7.0).collect::<Vec<_>>(),
                        Some(&defs),
                        None,
                    ),
                    _ => col.typed::<ByteArrayType>().write_batch(
                        &present.iter().map(|r| ByteArray::from(format!("row {}", v(r)).as_str())).collect::<Vec<_>>(),
                        Some(&defs),
                        None,
                    ),
                }
                .unwrap();
                col.close().unwrap();
                k += 1;
            }
            g.close().unwrap();
        }
        writer.close().unwrap();

        let columns = Table::read_parquet(&path).unwrap();
        let records = Table::read_parquet_rows(&path).unwrap();
        assert_eq!(columns.rows(), 5 + 6 + 7);
        assert_eq!(columns.text("s", 0).unwrap(), "row 0");
        assert_eq!(columns.text("s", 1).unwrap(), "", "a null string reads as empty");
        assert_eq!(columns.i64("i64", 2).unwrap(), 2 << 33);
        assert_eq!(columns.i64("i32", 7).unwrap(), 12 - 7);
        assert_eq!(columns.f64("d", 3).unwrap(), 3.0 / 7.0);
        assert!(columns.f64("d", 4).unwrap().is_nan(), "a null number reads as NaN");
        assert_eq!(columns.i64("i32", 4).unwrap(), 0, "a null integer reads as 0");
        for (a, b) in columns.columns.iter().zip(&records.columns) {
            assert_eq!(a.name, b.name);
            assert_eq!(std::mem::discriminant(&a.values), std::mem::discriminant(&b.values), "type of {}", a.name);
            for row in 0..columns.rows() {
                assert_eq!(a.text(row), b.text(row), "{} row {row}", a.name);
            }
        }
    }
}
