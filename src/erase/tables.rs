//! Rows of an erased person removed from a Delta table in one commit, and old files
//! vacuumed so that no version of the table can bring them back.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, BooleanArray, RecordBatch};
use deltalake::DeltaTable;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::operations::vacuum::VacuumMode;
use deltalake::protocol::DeltaOperation;

use crate::delta;
use crate::error::{Result, StediError};
use crate::lakehouse::Lakehouse;
use crate::lakehouse::layout::TableId;

pub use crate::delta::RowMatcher;

/// Key under which an erasure's commits record the erasure id.
pub const ERASURE_KEY: &str = "stedi.erasure";

/// What removing rows from one table did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    /// Rows removed.
    pub rows: u64,
    /// The version of the commit, `None` when nothing matched (no commit).
    pub version: Option<i64>,
}

fn delta_err(name: &str) -> impl Fn(deltalake::DeltaTableError) -> StediError + '_ {
    move |e| StediError::delta(name, e)
}

/// Removes the rows `matches` selects from `table`: every data file holding one is
/// rewritten without it, and the old files are replaced by the new ones in one commit.
/// Files without a match are not touched.
pub async fn remove_rows(
    table: &mut DeltaTable,
    id: &TableId,
    erasure: &str,
    matches: &RowMatcher,
) -> Result<Removed> {
    let name = id.name.as_str();
    let (actions, removed) = delta::rewrite_without(table, name, matches).await?;
    if removed == 0 {
        return Ok(Removed {
            rows: 0,
            version: None,
        });
    }
    let properties = CommitProperties::default().with_metadata(HashMap::from([(
        ERASURE_KEY.to_string(),
        serde_json::json!({ "erasure": erasure, "rows": removed }),
    )]));
    // No predicate is recorded: it would write the address into the log.
    let operation = DeltaOperation::Delete { predicate: None };
    let version = {
        let snapshot = table.snapshot().map_err(delta_err(name))?;
        CommitBuilder::from(properties)
            .with_actions(actions)
            .build(Some(snapshot), table.log_store(), operation)
            .await
            .map_err(delta_err(name))?
            .version()
    };
    table.update_state().await.map_err(delta_err(name))?;
    Ok(Removed {
        rows: removed,
        version: Some(version as i64),
    })
}

/// Deletes from storage every data file the table's current version does not use, at
/// once (zero retention), so that no older version can be read back: its files are gone.
/// Returns the number of files deleted (0 when the table does not exist).
///
/// The vacuum's commit carries the table's build record forward (see
/// [`delta::build_record`]), so the next `stedi run` still sees the table as up to date.
pub async fn vacuum(lakehouse: &Lakehouse, id: &TableId) -> Result<u64> {
    let Some(table) = lakehouse.load_table(id).await? else {
        return Ok(0);
    };
    let properties = CommitProperties::default()
        .with_metadata(crate::transform::record::build_record(&table).await?);
    let (_, metrics) = table
        .vacuum()
        .with_retention_period(chrono::Duration::zero())
        .with_enforce_retention_duration(false)
        .with_mode(VacuumMode::Full)
        .with_commit_properties(properties)
        .await
        .map_err(delta_err(&id.name))?;
    Ok(metrics.files_deleted.len() as u64)
}

/// Whether a data file that the table's current version no longer uses (one a vacuum
/// would delete, and time travel can still read) holds a row `matches` selects.
///
/// Only such a table needs a vacuum after an erasure: vacuuming every table would take
/// away the time travel of tables that never held the person.
pub async fn old_files_hold(table: &DeltaTable, name: &str, matches: &RowMatcher) -> Result<bool> {
    use datafusion::parquet::arrow::ProjectionMask;
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use object_store::ObjectStoreExt;

    let (_, plan) = table
        .clone()
        .vacuum()
        .with_retention_period(chrono::Duration::zero())
        .with_enforce_retention_duration(false)
        .with_mode(VacuumMode::Full)
        .with_dry_run(true)
        .await
        .map_err(delta_err(name))?;
    let store = table.log_store().object_store(None);
    let parquet = |e: datafusion::parquet::errors::ParquetError| {
        StediError::delta(name, deltalake::DeltaTableError::from(e))
    };
    // The plan also lists the removed files of the log that an earlier vacuum deleted.
    for path in plan
        .files_deleted
        .iter()
        .filter(|p| p.ends_with(".parquet"))
    {
        let bytes = match store
            .get(&object_store::path::Path::from(path.as_str()))
            .await
        {
            Ok(got) => got.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(parquet)?;
        // Only the columns that can name a person are read.
        let roots: Vec<usize> = builder
            .schema()
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| PERSON_COLUMNS.contains(&f.name().as_str()))
            .map(|(i, _)| i)
            .collect();
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
        for batch in builder.with_projection(mask).build().map_err(parquet)? {
            let batch = batch.map_err(|e| parquet(e.into()))?;
            if matches(&batch)?.true_count() > 0 {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// The columns by which an erasure recognizes a person's rows in any table.
const PERSON_COLUMNS: &[&str] = &[
    "email",
    "user",
    crate::feed::CUSTOMER_COLUMN,
    "customer_key",
    "raw",
    "detail",
    "serialNumber",
    "sensorReadingTime",
];

/// A matcher on one string column: rows whose value satisfies `test`.
pub fn string_matcher(
    column: &'static str,
    test: impl Fn(&str) -> bool + Send + Sync + 'static,
) -> Arc<RowMatcher> {
    Arc::new(move |batch: &RecordBatch| {
        let Some(values) = batch.column_by_name(column) else {
            return Ok(BooleanArray::from(vec![false; batch.num_rows()]));
        };
        let values = arrow::compute::cast(values, &arrow::datatypes::DataType::Utf8)
            .map_err(datafusion::error::DataFusionError::from)?;
        let values = arrow::array::AsArray::as_string::<i32>(&values);
        Ok((0..values.len())
            .map(|i| Some(values.is_valid(i) && test(values.value(i))))
            .collect())
    })
}
