//! The Delta `add` action of a written data file: its path, size and the statistics
//! (rows, and each column's least and greatest values and nulls) that let a reader skip
//! it, gathered from the file's row groups.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use arrow::datatypes::{DataType, Schema};
use datafusion::parquet::file::metadata::ParquetMetaData;
use datafusion::parquet::file::statistics::Statistics;
use deltalake::DeltaTableError;
use deltalake::kernel::Add;
use deltalake::protocol::{ColumnCountStat, ColumnValueStat, Stats};
use object_store::path::Path;
use serde_json::Value;

/// The `add` action that publishes the file at `path` (relative to the table's folder).
pub fn add_action(
    path: &Path,
    size: u64,
    metadata: &ParquetMetaData,
    schema: &Schema,
    stats_columns: &[String],
) -> Result<Add, DeltaTableError> {
    let stats = file_stats(metadata, schema, stats_columns);
    let modification_time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |t| t.as_millis() as i64);
    Ok(Add {
        path: path.to_string(),
        size: size as i64,
        partition_values: HashMap::new(),
        modification_time,
        data_change: true,
        stats: Some(serde_json::to_string(&stats)?),
        tags: None,
        deletion_vector: None,
        base_row_id: None,
        default_row_commit_version: None,
        clustering_provider: None,
    })
}

/// Rows of the file, and for each of `stats_columns` its nulls and, for numbers and
/// text, its least and greatest value. A column some row group has no statistics for
/// gets none: a bound that is not one would skip files that hold matches.
fn file_stats(metadata: &ParquetMetaData, schema: &Schema, stats_columns: &[String]) -> Stats {
    let mut stats = Stats {
        num_records: metadata.file_metadata().num_rows(),
        ..Default::default()
    };
    for name in stats_columns {
        let Ok(index) = schema.index_of(name) else {
            continue;
        };
        let data_type = schema.field(index).data_type();
        let mut nulls = Some(0i64);
        let mut bounds: Option<(Value, Value)> = None;
        let mut bounded = true;
        for row_group in metadata.row_groups() {
            let Some(s) = row_group.column(index).statistics() else {
                nulls = None;
                bounded = false;
                continue;
            };
            nulls = nulls.zip(s.null_count_opt()).map(|(a, b)| a + b as i64);
            if row_group.num_rows() == s.null_count_opt().unwrap_or(0) as i64 {
                continue; // only nulls: no bound to take
            }
            match (bounded, bounds_of(s, data_type)) {
                (true, Some((min, max))) => {
                    bounds = Some(match bounds.take() {
                        None => (min, max),
                        Some((a, b)) => (least(a, min), greatest(b, max)),
                    })
                }
                _ => bounded = false,
            }
        }
        if let Some(nulls) = nulls {
            stats
                .null_count
                .insert(name.clone(), ColumnCountStat::Value(nulls));
        }
        if let (true, Some((min, max))) = (bounded, bounds) {
            stats
                .min_values
                .insert(name.clone(), ColumnValueStat::Value(min));
            stats
                .max_values
                .insert(name.clone(), ColumnValueStat::Value(max));
        }
    }
    stats
}

/// A row group's least and greatest value as the Delta log writes them, for the types
/// whose Parquet order is their order in Delta; `None` for the others.
fn bounds_of(s: &Statistics, data_type: &DataType) -> Option<(Value, Value)> {
    match (s, data_type) {
        (Statistics::Int64(v), DataType::Int64) => {
            Some(((*v.min_opt()?).into(), (*v.max_opt()?).into()))
        }
        (Statistics::Int32(v), DataType::Int32) => {
            Some(((*v.min_opt()?).into(), (*v.max_opt()?).into()))
        }
        (Statistics::Double(v), DataType::Float64) => {
            Some((finite(*v.min_opt()?)?, finite(*v.max_opt()?)?))
        }
        (Statistics::ByteArray(v), DataType::Utf8) => {
            if !v.min_is_exact() || !v.max_is_exact() {
                return None;
            }
            let text = |b: &[u8]| {
                std::str::from_utf8(b)
                    .ok()
                    .map(|s| Value::from(s.to_owned()))
            };
            Some((text(v.min_opt()?.data())?, text(v.max_opt()?.data())?))
        }
        _ => None,
    }
}

fn finite(x: f64) -> Option<Value> {
    serde_json::Number::from_f64(x).map(Value::Number)
}

fn least(a: Value, b: Value) -> Value {
    if before(&b, &a) { b } else { a }
}

fn greatest(a: Value, b: Value) -> Value {
    if before(&a, &b) { b } else { a }
}

/// Whether `a` sorts before `b` (two numbers or two strings of one column).
fn before(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(a), Value::String(b)) => a < b,
        (Value::Number(a), Value::Number(b)) => match (a.as_i64(), b.as_i64()) {
            (Some(a), Some(b)) => a < b,
            _ => a.as_f64() < b.as_f64(),
        },
        _ => false,
    }
}
