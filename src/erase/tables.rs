//! Rows of an erased person removed from a Delta table in one commit, and old files
//! vacuumed so that no version of the table can bring them back.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use deltalake::DeltaTable;
use deltalake::kernel::Action;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::operations::vacuum::VacuumMode;
use deltalake::protocol::DeltaOperation;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;

use crate::delta::{self, FileWriter};
use crate::error::{Result, StediError};
use crate::lakehouse::Lakehouse;
use crate::lakehouse::layout::TableId;

/// Says which rows of a batch belong to the erased person (`true`: remove).
pub type RowMatcher = dyn Fn(&RecordBatch) -> Result<BooleanArray> + Send + Sync;

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

fn parquet_err(
    name: &str,
) -> impl Fn(datafusion::parquet::errors::ParquetError) -> StediError + '_ {
    move |e| StediError::delta(name, deltalake::DeltaTableError::from(e))
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
    let store = table.log_store().object_store(None);
    let files: Vec<(object_store::path::Path, u64, deltalake::kernel::Remove)> = {
        let snapshot = table.snapshot().map_err(delta_err(name))?;
        snapshot
            .snapshot()
            .file_views(table.log_store().as_ref(), None)
            .map_ok(|f| {
                (
                    f.object_store_path(),
                    f.size().max(0) as u64,
                    f.remove_action(true),
                )
            })
            .try_collect()
            .await
            .map_err(delta_err(name))?
    };
    let mut actions = Vec::new();
    let mut removed = 0u64;
    for (path, size, remove) in files {
        // Data files are at most the target file size: read each once, decode it twice.
        let bytes = store
            .get(&path)
            .await
            .map_err(|e| StediError::delta(name, e.into()))?
            .bytes()
            .await
            .map_err(|e| StediError::delta(name, e.into()))?;
        if bytes.len() as u64 != size {
            tracing::debug!(table = name, %path, "data file size differs from the log");
        }
        let read = || {
            ParquetRecordBatchReaderBuilder::try_new(bytes.clone())
                .and_then(|b| b.build())
                .map_err(parquet_err(name))
        };
        // First pass: does the file hold a matching row at all?
        let mut hits = 0u64;
        for batch in read()? {
            let batch = batch.map_err(|e| parquet_err(name)(e.into()))?;
            hits += matches(&batch)?.true_count() as u64;
        }
        if hits == 0 {
            continue;
        }
        // Second pass: write what is kept into a new file of the table.
        let mut writer: Option<FileWriter> = None;
        for batch in read()? {
            let batch = batch.map_err(|e| parquet_err(name)(e.into()))?;
            let mask = matches(&batch)?;
            let keep =
                arrow::compute::not(&mask).map_err(datafusion::error::DataFusionError::from)?;
            let kept = filter_record_batch(&batch, &keep)
                .map_err(datafusion::error::DataFusionError::from)?;
            let writer = writer.get_or_insert_with(|| FileWriter::new(table, batch.schema()));
            writer.write(&kept).await.map_err(delta_err(name))?;
        }
        if let Some(writer) = writer {
            let adds = writer.close().await.map_err(delta_err(name))?;
            actions.extend(adds.into_iter().map(Action::Add));
        }
        actions.push(Action::Remove(remove));
        removed += hits;
    }
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
    let properties = CommitProperties::default().with_metadata(delta::build_record(&table).await?);
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
