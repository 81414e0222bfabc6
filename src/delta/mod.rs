//! Writing Delta tables the way every stedi table is written: data files first, then one
//! commit that makes them visible.
//!
//! Splitting "write files" from "commit" is what lets a run build every table before
//! publishing any, lets ingestion record which batch of files a commit holds (an
//! application transaction in the same commit), and lets files written elsewhere (a
//! cluster's executors) be committed from one place.

pub mod files;

use std::collections::HashMap;

use arrow::array::BooleanArray;
use arrow::compute::filter_record_batch;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::basic::{Compression, Encoding};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Add, StructType, Transaction};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::table::config::TablePropertiesExt;
use deltalake::{DeltaTable, DeltaTableError};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use serde_json::Value;

use crate::data_file::{DataFileSpec, DataFileWriter};
use crate::error::{Result, StediError};
use crate::lakehouse::Lakehouse;
use crate::lakehouse::layout::TableId;
pub use files::{DataFile, SnapshotFiles};

/// Files roll over at this size, so a large table is many files that scan in parallel.
const TARGET_FILE_SIZE: u64 = 128 * 1024 * 1024;

/// The false-positive rate of the Bloom filter of a row group's customers (sized for the
/// customers it holds). An incremental run probes a filter with every affected customer,
/// so the rate must stay low even for a thousand probes (1 − (1 − p)^1000 ≈ 1 %).
const BLOOM_FALSE_POSITIVES: f64 = 1e-5;

/// Values a column writer takes in one go before it checks its page's size and updates
/// its statistics: eight times Parquet's default, for fewer such rounds per row, at the
/// cost of a page overrunning its size limit by at most that many values.
const WRITE_BATCH_ROWS: usize = 8 * 1024;

/// Says which rows of a batch to remove (`true`: remove).
pub type RowMatcher = dyn Fn(&RecordBatch) -> Result<BooleanArray> + Send + Sync;

/// Data files written to a table's folder but not yet committed: invisible to readers
/// until [`commit_append`] or [`commit_replace`] publishes them.
#[derive(Debug, Clone)]
pub struct StagedFiles {
    /// The files, as Delta `add` actions with their statistics.
    pub adds: Vec<Add>,
    /// The schema the files were written with.
    pub schema: SchemaRef,
}

impl StagedFiles {
    /// Rows in the staged files, from their statistics.
    pub fn rows(&self) -> u64 {
        self.adds
            .iter()
            .filter_map(|a| a.get_stats().ok().flatten())
            .map(|s| s.num_records.max(0) as u64)
            .sum()
    }

    /// Merges files staged by several writers for the same table.
    pub fn merge(schema: SchemaRef, parts: impl IntoIterator<Item = Vec<Add>>) -> Self {
        StagedFiles {
            adds: parts.into_iter().flatten().collect(),
            schema,
        }
    }
}

/// A writer of data files into a table's folder.
pub struct FileWriter {
    inner: DataFileWriter,
    written: bool,
}

impl FileWriter {
    /// A writer for `table`, whose files will hold `schema` (text of any kind as `Utf8`).
    ///
    /// Statistics (kept in the Delta log, which outlives vacuumed data files) are collected
    /// for every column except [`PERSONAL_COLUMNS`](crate::lakehouse::layout::PERSONAL_COLUMNS),
    /// so that no e-mail address, name or raw line ever reaches `_delta_log`.
    pub fn new(table: &DeltaTable, schema: SchemaRef) -> Result<Self, DeltaTableError> {
        let stats_columns: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| f.name())
            .filter(|name| !crate::lakehouse::layout::PERSONAL_COLUMNS.contains(&name.as_str()))
            .take(deltalake::table::config::DEFAULT_NUM_INDEX_COLS as usize)
            .cloned()
            .collect();
        let spec = DataFileSpec {
            properties: writer_properties(&schema),
            bloom: crate::lakehouse::layout::customer_column(&schema)
                .map(|c| (c.to_string(), BLOOM_FALSE_POSITIVES)),
            stats_columns,
            target_size: TARGET_FILE_SIZE,
            schema,
        };
        let store = table.log_store().object_store(None);
        Ok(FileWriter {
            inner: DataFileWriter::new(store, spec)?,
            written: false,
        })
    }

    /// Writes a batch (empty batches are skipped).
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<(), DeltaTableError> {
        if batch.num_rows() > 0 {
            self.written = true;
            self.inner.write(batch).await?;
        }
        Ok(())
    }

    /// Finishes the files and returns their `add` actions (none when nothing was written).
    pub async fn close(self) -> Result<Vec<Add>, DeltaTableError> {
        if !self.written {
            return Ok(Vec::new());
        }
        self.inner.close().await
    }
}

/// How stedi writes Parquet: Snappy pages; no min/max statistics of personal columns,
/// which would only be more copies of an address (a Bloom filter finds a customer, min/max
/// of addresses in hash order would not); and integers (instants, line numbers,
/// distances) as differences from one value to the next instead of through a dictionary:
/// they seldom repeat but lie close together, so this is both smaller and far cheaper to
/// write. Values are encoded [`WRITE_BATCH_ROWS`] at a time. Text columns are written by
/// runs (see [`crate::data_file::text_runs`]) and doubles by their few values (see
/// [`crate::data_file::few_values`]), with the same statistics settings.
fn writer_properties(schema: &SchemaRef) -> WriterProperties {
    let mut builder = WriterProperties::builder()
        .set_created_by(format!("stedi {}", env!("CARGO_PKG_VERSION")))
        .set_compression(Compression::SNAPPY)
        .set_write_batch_size(WRITE_BATCH_ROWS);
    for field in schema.fields() {
        let name = field.name().as_str();
        if crate::lakehouse::layout::PERSONAL_COLUMNS.contains(&name) {
            builder = builder.set_column_statistics_enabled(name.into(), EnabledStatistics::None);
        }
        if field.data_type() == &arrow::datatypes::DataType::Int64 {
            builder = builder
                .set_column_dictionary_enabled(name.into(), false)
                .set_column_encoding(name.into(), Encoding::DELTA_BINARY_PACKED);
        }
    }
    builder.build()
}

/// Opens a table, creating it empty with `schema` when it does not exist yet, so that
/// every table of the contract is visible (with zero rows) from the first run.
pub async fn ensure_table(
    lakehouse: &Lakehouse,
    id: &TableId,
    schema: &SchemaRef,
) -> Result<DeltaTable> {
    if let Some(table) = lakehouse.load_table(id).await? {
        return Ok(table);
    }
    let columns = delta_columns(schema).map_err(|e| StediError::delta(&id.name, e))?;
    let handle = lakehouse.table_handle(id).await?;
    handle
        .create()
        .with_table_name(id.name.clone())
        .with_columns(columns.fields().cloned())
        .with_save_mode(SaveMode::Ignore)
        .await
        .map_err(|e| StediError::delta(&id.name, e))
}

fn delta_columns(schema: &SchemaRef) -> Result<StructType, DeltaTableError> {
    let columns: StructType = schema.as_ref().try_into_kernel()?;
    Ok(columns)
}

/// Publishes staged files by appending them in one commit, together with application
/// transactions (`txn` actions) that say which batch of work the commit completes.
pub async fn commit_append(
    table: &mut DeltaTable,
    name: &str,
    staged: StagedFiles,
    transactions: Vec<Transaction>,
    metadata: HashMap<String, Value>,
) -> Result<i64> {
    let actions = staged.adds.into_iter().map(Action::Add).collect();
    let operation = DeltaOperation::Write {
        mode: SaveMode::Append,
        partition_by: None,
        predicate: None,
    };
    commit(table, name, actions, operation, transactions, metadata).await
}

/// Appends one in-memory batch (small bookkeeping writes: ledger, quarantine) in one
/// commit with its application transactions.
pub async fn append_batch(
    table: &mut DeltaTable,
    name: &str,
    batch: RecordBatch,
    transactions: Vec<Transaction>,
    metadata: HashMap<String, Value>,
) -> Result<i64> {
    let schema = batch.schema();
    let mut writer =
        FileWriter::new(table, schema.clone()).map_err(|e| StediError::delta(name, e))?;
    writer
        .write(&batch)
        .await
        .map_err(|e| StediError::delta(name, e))?;
    let adds = writer
        .close()
        .await
        .map_err(|e| StediError::delta(name, e))?;
    commit_append(
        table,
        name,
        StagedFiles::merge(schema, [adds]),
        transactions,
        metadata,
    )
    .await
}

/// Publishes staged files as the whole new content of the table, in one commit. A table
/// that does not exist yet, or whose schema changed, is created or replaced in that commit.
pub async fn commit_replace(
    lakehouse: &Lakehouse,
    id: &TableId,
    staged: StagedFiles,
    metadata: HashMap<String, Value>,
) -> Result<i64> {
    let err = |e| StediError::delta(&id.name, e);
    let columns = delta_columns(&staged.schema).map_err(err)?;
    let existing = lakehouse.load_table(id).await?;
    let same_schema = match &existing {
        Some(t) => t.snapshot().map_err(err)?.schema().as_ref() == &columns,
        None => false,
    };
    if let (Some(mut table), true) = (existing, same_schema) {
        let snapshot = table.snapshot().map_err(err)?;
        let removes: Vec<Action> = snapshot
            .snapshot()
            .file_views(table.log_store().as_ref(), None)
            .map_ok(|f| Action::Remove(f.remove_action(true)))
            .try_collect()
            .await
            .map_err(err)?;
        let mut actions = removes;
        actions.extend(staged.adds.into_iter().map(Action::Add));
        let operation = DeltaOperation::Write {
            mode: SaveMode::Overwrite,
            partition_by: None,
            predicate: None,
        };
        return commit(
            &mut table,
            &id.name,
            actions,
            operation,
            Vec::new(),
            metadata,
        )
        .await;
    }
    let handle = lakehouse.table_handle(id).await?;
    let table = handle
        .create()
        .with_table_name(id.name.clone())
        .with_columns(columns.fields().cloned())
        .with_save_mode(SaveMode::Overwrite)
        .with_actions(staged.adds.into_iter().map(Action::Add))
        .with_commit_properties(CommitProperties::default().with_metadata(metadata))
        .await
        .map_err(err)?;
    Ok(version(&table))
}

/// Writes again, without the rows `matches` selects, every data file of `table` holding
/// one (uncommitted). Returns the actions that swap them (a `remove` of each old file,
/// `add`s of its rewrite) and the number of rows removed; files without a match are not
/// touched. Both erasure and incremental runs remove rows this way.
pub async fn rewrite_without(
    table: &DeltaTable,
    name: &str,
    matches: &RowMatcher,
) -> Result<(Vec<Action>, u64)> {
    let delta_err = |e| StediError::delta(name, e);
    let parquet_err = |e: datafusion::parquet::errors::ParquetError| {
        StediError::delta(name, DeltaTableError::from(e))
    };
    let store = table.log_store().object_store(None);
    let files: Vec<(object_store::path::Path, u64, deltalake::kernel::Remove)> = {
        let snapshot = table.snapshot().map_err(delta_err)?;
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
            .map_err(delta_err)?
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
                .map_err(parquet_err)
        };
        // First pass: does the file hold a matching row at all?
        let mut hits = 0u64;
        for batch in read()? {
            let batch = batch.map_err(|e| parquet_err(e.into()))?;
            hits += matches(&batch)?.true_count() as u64;
        }
        if hits == 0 {
            continue;
        }
        // Second pass: write what is kept into a new file of the table.
        let mut writer: Option<FileWriter> = None;
        for batch in read()? {
            let batch = batch.map_err(|e| parquet_err(e.into()))?;
            let mask = matches(&batch)?;
            let keep =
                arrow::compute::not(&mask).map_err(datafusion::error::DataFusionError::from)?;
            let kept = filter_record_batch(&batch, &keep)
                .map_err(datafusion::error::DataFusionError::from)?;
            if writer.is_none() {
                writer = Some(FileWriter::new(table, batch.schema()).map_err(delta_err)?);
            }
            if let Some(writer) = writer.as_mut() {
                writer.write(&kept).await.map_err(delta_err)?;
            }
        }
        if let Some(writer) = writer {
            let adds = writer.close().await.map_err(delta_err)?;
            actions.extend(adds.into_iter().map(Action::Add));
        }
        actions.push(Action::Remove(remove));
        removed += hits;
    }
    Ok((actions, removed))
}

/// Replaces the rows of some keys in one commit: `rewrites` swap the data files that held
/// them for rewrites without them (see [`rewrite_without`]), `adds` bring the recomputed
/// rows. `keys` describes the
/// keys for the table's history (e.g. "per customer").
pub async fn commit_update(
    table: &mut DeltaTable,
    name: &str,
    rewrites: Vec<Action>,
    adds: Vec<Add>,
    keys: &str,
    metadata: HashMap<String, Value>,
) -> Result<i64> {
    let mut actions = rewrites;
    actions.extend(adds.into_iter().map(Action::Add));
    let operation = DeltaOperation::Merge {
        predicate: None,
        merge_predicate: Some(format!("rows of affected keys ({keys})")),
        matched_predicates: vec![deltalake::protocol::MergePredicate {
            action_type: "delete".to_string(),
            predicate: None,
        }],
        not_matched_predicates: vec![deltalake::protocol::MergePredicate {
            action_type: "insert".to_string(),
            predicate: None,
        }],
        not_matched_by_source_predicates: Vec::new(),
    };
    commit(table, name, actions, operation, Vec::new(), metadata).await
}

async fn commit(
    table: &mut DeltaTable,
    name: &str,
    actions: Vec<Action>,
    operation: DeltaOperation,
    transactions: Vec<Transaction>,
    metadata: HashMap<String, Value>,
) -> Result<i64> {
    let err = |e| StediError::delta(name, e);
    let snapshot = table.snapshot().map_err(err)?;
    let config = snapshot.table_config();
    // Expired log files can only go once a checkpoint covers them: look for them when a
    // commit writes a checkpoint, not after every commit (a listing of the log each time).
    let next = snapshot.version() + 1;
    let cleanup = config.enable_expired_log_cleanup()
        && next.is_multiple_of(config.checkpoint_interval().get());
    let properties = CommitProperties::default()
        .with_metadata(metadata)
        .with_application_transactions(transactions)
        .with_cleanup_expired_logs(Some(cleanup));
    let finalized = CommitBuilder::from(properties)
        .with_actions(actions)
        .build(Some(snapshot), table.log_store(), operation)
        .await
        .map_err(err)?;
    // The commit leaves the table's state at its own version.
    let version = finalized.version();
    table.state = Some(finalized.snapshot);
    Ok(version as i64)
}

/// The version of the table's latest commit.
pub fn version(table: &DeltaTable) -> i64 {
    table.version().map_or(-1, |v| v as i64)
}

/// The latest application-transaction version recorded for `app_id` (see [`commit_append`]).
pub async fn transaction_version(
    table: &DeltaTable,
    name: &str,
    app_id: &str,
) -> Result<Option<i64>> {
    table
        .snapshot()
        .map_err(|e| StediError::delta(name, e))?
        .transaction_version(table.log_store().as_ref(), app_id)
        .await
        .map_err(|e| StediError::delta(name, e))
}

/// Rows in the current version, from file statistics (no data is read).
pub fn row_count(table: &DeltaTable) -> Option<u64> {
    let snapshot = table.snapshot().ok()?;
    let log = snapshot.log_data();
    let mut rows = 0u64;
    for file in log.iter() {
        rows += file.num_records()? as u64;
    }
    Some(rows)
}

/// Registers a table's current version in a session as the list of its Parquet data
/// files, read by DataFusion's own Parquet scan (see [`files`]).
///
/// Every stedi table is plain Parquet under a Delta log (no partitions, deletion vectors
/// or column mapping), so its files are the whole table. A query that names a few
/// customers then costs what pruning them costs: each row group's Bloom filter and
/// statistics decide whether it is read, without evaluating the filter against the
/// statistics of every file in the log first (which costs more than the scan for a long
/// `IN` list). The log gives each file's size and statistics, so no file is asked about
/// before it is read. It is also how a cluster reads a Delta table.
pub async fn register_files(
    ctx: &datafusion::prelude::SessionContext,
    lakehouse: &Lakehouse,
    id: &TableId,
    table: &DeltaTable,
) -> Result<()> {
    let err = |e| StediError::delta(&id.name, e);
    table.update_datafusion_session(&ctx.state()).map_err(err)?;
    let snapshot = table.snapshot().map_err(err)?;
    let schema = snapshot.snapshot().arrow_schema();
    let files: Vec<DataFile> = snapshot
        .snapshot()
        .file_views(table.log_store().as_ref(), None)
        .map_ok(|f| DataFile {
            path: f.path().into_owned(),
            size: f.size().max(0) as u64,
            stats: f.stats(),
        })
        .try_collect()
        .await
        .map_err(err)?;
    register_data_files(ctx, lakehouse, id, &files, schema)
}

/// Registers the given data files of `id` in a session under the table's name, replacing
/// what was registered under it.
pub fn register_data_files(
    ctx: &datafusion::prelude::SessionContext,
    lakehouse: &Lakehouse,
    id: &TableId,
    files: &[DataFile],
    schema: SchemaRef,
) -> Result<()> {
    let provider: std::sync::Arc<dyn datafusion::catalog::TableProvider> = if files.is_empty() {
        std::sync::Arc::new(datafusion::datasource::empty::EmptyTable::new(schema))
    } else {
        std::sync::Arc::new(
            SnapshotFiles::new(&lakehouse.table_url(id), files, schema).map_err(|e| {
                StediError::Model {
                    model: id.name.clone(),
                    message: e.to_string(),
                }
            })?,
        )
    };
    ctx.deregister_table(&id.name)?;
    ctx.register_table(&id.name, provider)?;
    Ok(())
}

impl StagedFiles {
    /// The staged files as data files of their table, to read before they are committed.
    pub fn data_files(&self) -> Vec<DataFile> {
        self.adds
            .iter()
            .map(|add| DataFile {
                path: add.path.clone(),
                size: add.size.max(0) as u64,
                stats: add.stats.clone(),
            })
            .collect()
    }
}

/// Registers a table's current version in a session under `name`, read through delta-rs.
pub async fn register(
    ctx: &datafusion::prelude::SessionContext,
    name: &str,
    table: &DeltaTable,
) -> Result<()> {
    let err = |e| StediError::delta(name, e);
    table.update_datafusion_session(&ctx.state()).map_err(err)?;
    let provider = table.table_provider().await.map_err(|e| err(e.into()))?;
    ctx.deregister_table(name)?;
    ctx.register_table(name, provider)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lakehouse::layout::{self, TableId};
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    #[tokio::test]
    async fn a_table_loaded_before_shows_what_was_committed_since() {
        let dir = tempfile::tempdir().unwrap();
        let location = dir.path().to_str().unwrap();
        let reader = Lakehouse::create(location).await.unwrap();
        let writer = Lakehouse::open(location).await.unwrap();
        let id = TableId::new(layout::Zone::Trusted, "counts");
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let mut table = ensure_table(&writer, &id, &schema).await.unwrap();
        let before = reader.load_table(&id).await.unwrap().unwrap();
        let batch =
            RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1, 2, 3]))]).unwrap();
        append_batch(&mut table, &id.name, batch, Vec::new(), HashMap::new())
            .await
            .unwrap();

        let after = reader.load_table(&id).await.unwrap().unwrap();
        assert_eq!(after.version(), before.version().map(|v| v + 1));
        assert_eq!(row_count(&after), Some(3));
    }
}
