//! A table's rows of a few customers, read once per run and shared by its queries.
//!
//! An incremental run restricts each per-customer input of each model to the affected
//! customers, and several queries restrict the same table the same way (the affected
//! keys, then every model that reads it). Each table's rows of those customers are read
//! once and kept in memory for the next query of the same table version.
//!
//! Rows of customers are found without a query plan: every data file stedi writes has,
//! per row group, a Bloom filter of the column that names the customer, so only the row
//! groups whose filter holds one of the customers are read, and their rows are kept when
//! the column holds one of them. Other restrictions (by reading), a table that is not a list of
//! data files, or a slice larger than [`MAX_SLICE_BYTES`] go through a SQL condition.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use arrow::array::{AsArray, BooleanArray};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::{
    DefaultParquetFileReaderFactory, ParquetFileReaderFactory,
};
use datafusion::parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStreamBuilder};
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use datafusion::prelude::SessionContext;
use futures::{StreamExt, TryStreamExt};

use crate::delta::SnapshotFiles;
use crate::error::{Result, StediError};
use crate::models::Grain;

/// Above this many bytes, a table's rows of the affected customers are not kept in
/// memory: each query reads them from the table instead.
const MAX_SLICE_BYTES: usize = 256 << 20;

/// Above this many keys, a restriction joins with an in-memory table of them instead of
/// naming them in the query: a long `IN` list costs more to plan than the join costs to
/// run, and that many customers touch most row groups anyway.
pub(super) const MAX_LISTED_KEYS: usize = 10_000;

/// Data files read at once when looking for a few customers.
const FILES_AT_ONCE: usize = 4;

/// Bytes read from the end of a data file at first: its footer and metadata then come
/// in one request instead of two.
const FOOTER_HINT: usize = 64 * 1024;

/// Which rows of a table a slice holds.
pub struct Restriction<'a> {
    /// The grain of the models the slice is read for: a table is restricted differently
    /// for per-customer and per-reading models.
    pub grain: Grain,
    /// For a per-customer restriction, the column that names the customer and the values
    /// of it to keep (compared exactly): what the Bloom filters are probed with.
    pub customers: Option<(&'a str, &'a [String])>,
    /// The rows to keep, in SQL on the table aliased `t`.
    pub condition: String,
}

/// The rows of tables restricted to the affected keys, by table name and the grain they
/// were restricted for, each with the provider (the table's version) it was read from.
#[derive(Clone, Default)]
pub struct Slices(Arc<Mutex<HashMap<(String, Grain), Slice>>>);

#[derive(Clone)]
struct Slice {
    from: Arc<dyn TableProvider>,
    rows: Arc<dyn TableProvider>,
}

impl std::fmt::Debug for Slices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cached = self.0.lock().map(|c| c.len()).unwrap_or(0);
        write!(f, "Slices({cached} tables)")
    }
}

impl Slices {
    /// The rows of `provider` (the table `name`) that `restriction` keeps: from memory
    /// when this version of the table was restricted before, else read now.
    pub async fn restrict(
        &self,
        ctx: &SessionContext,
        name: &str,
        provider: Arc<dyn TableProvider>,
        restriction: &Restriction<'_>,
    ) -> Result<Arc<dyn TableProvider>> {
        let key = (name.to_string(), restriction.grain);
        let cached = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .filter(|s| Arc::ptr_eq(&s.from, &provider))
            .map(|s| s.rows.clone());
        if let Some(rows) = cached {
            return Ok(rows);
        }
        let any: &dyn std::any::Any = provider.as_ref();
        let read = match (any.downcast_ref::<SnapshotFiles>(), restriction.customers) {
            (Some(files), Some((column, keys))) => {
                read_files(ctx, files, provider.schema(), column, keys).await?
            }
            _ => None,
        };
        let rows = match read {
            Some(batches) => in_memory(ctx, provider.schema(), batches)?,
            None => by_query(ctx, name, provider.clone(), &restriction.condition).await?,
        };
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(
            key,
            Slice {
                from: provider,
                rows: rows.clone(),
            },
        );
        Ok(rows)
    }
}

/// Keys looked up once per row read, hashed quickly.
type Keys = HashSet<String, ahash::RandomState>;

/// The rows of a table's data files whose `column` holds one of `keys`, reading only the
/// row groups whose Bloom filter may hold one of them. `None` when a file lacks the
/// column, its rows do not fit `schema`, or they are more than [`MAX_SLICE_BYTES`].
async fn read_files(
    ctx: &SessionContext,
    table: &SnapshotFiles,
    schema: SchemaRef,
    column: &str,
    keys: &[String],
) -> Result<Option<Vec<RecordBatch>>> {
    // Very many customers touch most row groups: probing their filters gains nothing.
    if keys.len() > MAX_LISTED_KEYS {
        return Ok(None);
    }
    let keys: Arc<Keys> = Arc::new(keys.iter().cloned().collect());
    let store = ctx.runtime_env().object_store(table.store_url())?;
    let files: Vec<_> = table
        .files()
        .map(|(path, size)| (store.clone(), path, size))
        .collect();
    let column = column.to_string();
    let mut reads = futures::stream::iter(files)
        .map(|(store, path, size)| {
            let (keys, column, schema) = (keys.clone(), column.clone(), schema.clone());
            async move { read_file(store, path, size, &column, &keys, schema).await }
        })
        .buffer_unordered(FILES_AT_ONCE);
    let (mut batches, mut bytes) = (Vec::new(), 0usize);
    while let Some(read) = reads.try_next().await? {
        let Some(read) = read else { return Ok(None) };
        bytes += read
            .iter()
            .map(|b| b.get_array_memory_size())
            .sum::<usize>();
        if bytes > MAX_SLICE_BYTES {
            return Ok(None);
        }
        batches.extend(read);
    }
    Ok(Some(batches))
}

/// One data file's rows whose `column` holds one of `keys`, as `schema`.
async fn read_file(
    store: Arc<dyn object_store::ObjectStore>,
    path: object_store::path::Path,
    size: u64,
    column: &str,
    keys: &Keys,
    schema: SchemaRef,
) -> Result<Option<Vec<RecordBatch>>> {
    let parquet = |e: datafusion::parquet::errors::ParquetError| {
        StediError::from(datafusion::error::DataFusionError::from(e))
    };
    // The log knows the file's size: no request to ask for it.
    let file = PartitionedFile::new(path.to_string(), size);
    let reader: Box<dyn AsyncFileReader> = DefaultParquetFileReaderFactory::new(store)
        .create_reader(0, file, Some(FOOTER_HINT), &ExecutionPlanMetricsSet::new())?;
    let mut builder = ParquetRecordBatchStreamBuilder::new(reader)
        .await
        .map_err(parquet)?;
    let Some(leaf) = builder
        .parquet_schema()
        .columns()
        .iter()
        .position(|c| c.path().string() == column)
    else {
        return Ok(None);
    };
    let mut row_groups = Vec::new();
    for row_group in 0..builder.metadata().num_row_groups() {
        let may_hold = match builder
            .get_row_group_column_bloom_filter(row_group, leaf)
            .await
            .map_err(parquet)?
        {
            Some(filter) => keys.iter().any(|k| filter.check(k.as_str())),
            None => true,
        };
        if may_hold {
            row_groups.push(row_group);
        }
    }
    if row_groups.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let mut stream = builder
        .with_row_groups(row_groups)
        .build()
        .map_err(parquet)?;
    let mut out = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(parquet)?;
        let Some(values) = batch.column_by_name(column) else {
            return Ok(None);
        };
        let values = arrow::compute::cast(values, &DataType::Utf8)
            .map_err(datafusion::error::DataFusionError::from)?;
        let keep: BooleanArray = values
            .as_string::<i32>()
            .iter()
            .map(|v| Some(v.is_some_and(|v| keys.contains(v))))
            .collect();
        if keep.true_count() == 0 {
            continue;
        }
        let kept = arrow::compute::filter_record_batch(&batch, &keep)
            .map_err(datafusion::error::DataFusionError::from)?;
        match RecordBatch::try_new(schema.clone(), kept.columns().to_vec()) {
            Ok(rows) => out.push(rows),
            Err(_) => return Ok(None),
        }
    }
    Ok(Some(out))
}

/// The rows of `provider` (the table `name`) that `condition` selects (SQL on the table
/// aliased `t`), as a query in `ctx`.
pub async fn rows_where(
    ctx: &SessionContext,
    name: &str,
    provider: Arc<dyn TableProvider>,
    condition: &str,
) -> Result<datafusion::dataframe::DataFrame> {
    let full = format!("{name}__all");
    ctx.register_table(full.as_str(), provider)?;
    Ok(ctx
        .sql(&format!(
            "SELECT t.* FROM \"{full}\" AS t WHERE {condition}"
        ))
        .await?)
}

/// A table of `batches`, split over the session's partitions so that every core works.
fn in_memory(
    ctx: &SessionContext,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
) -> Result<Arc<dyn TableProvider>> {
    let n = ctx
        .copied_config()
        .target_partitions()
        .clamp(1, batches.len().max(1));
    let mut partitions = vec![Vec::new(); n];
    for (i, batch) in batches.into_iter().enumerate() {
        partitions[i % n].push(batch);
    }
    Ok(Arc::new(MemTable::try_new(schema, partitions)?))
}

/// The rows of `provider` that `condition` selects, by a query: in memory when they fit
/// in [`MAX_SLICE_BYTES`], else as a view that each query reads anew.
async fn by_query(
    ctx: &SessionContext,
    name: &str,
    provider: Arc<dyn TableProvider>,
    condition: &str,
) -> Result<Arc<dyn TableProvider>> {
    let view = rows_where(ctx, name, provider, condition).await?;
    let mut stream = view.clone().execute_stream().await?;
    let schema = stream.schema();
    let (mut batches, mut bytes) = (Vec::new(), 0usize);
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        bytes += batch.get_array_memory_size();
        if bytes > MAX_SLICE_BYTES {
            return Ok(view.into_view());
        }
        batches.push(batch);
    }
    in_memory(ctx, schema, batches)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::file::properties::WriterProperties;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("user", DataType::Utf8, true),
            Field::new("timestamp", DataType::Int64, false),
        ]))
    }

    /// A data file of `users` (reading `i` at instant `i`), in row groups of two rows,
    /// each with a Bloom filter of `user`.
    fn data_file(dir: &std::path::Path, name: &str, users: &[Option<&str>]) -> String {
        let path = dir.join(name);
        let properties = WriterProperties::builder()
            .set_max_row_group_row_count(Some(2))
            .set_bloom_filter_enabled(true)
            .build();
        let file = std::fs::File::create(&path).unwrap();
        let mut writer = ArrowWriter::try_new(file, schema(), Some(properties)).unwrap();
        let batch = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(StringArray::from(users.to_vec())),
                Arc::new(Int64Array::from_iter_values(0..users.len() as i64)),
            ],
        )
        .unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        url::Url::from_file_path(&path).unwrap().to_string()
    }

    /// The data files (URLs of one folder) as a table, as a snapshot registers them.
    fn files_table(urls: &[String]) -> Arc<dyn TableProvider> {
        let first = url::Url::parse(&urls[0]).unwrap();
        let folder = first.join("./").unwrap();
        let files: Vec<crate::delta::DataFile> = urls
            .iter()
            .map(|u| {
                let path = url::Url::parse(u).unwrap().to_file_path().unwrap();
                crate::delta::DataFile {
                    path: path.file_name().unwrap().to_string_lossy().into_owned(),
                    size: std::fs::metadata(&path).unwrap().len(),
                    stats: None,
                }
            })
            .collect();
        Arc::new(SnapshotFiles::new(&folder, &files, schema()).unwrap())
    }

    async fn users_of(ctx: &SessionContext, rows: Arc<dyn TableProvider>) -> Vec<String> {
        ctx.register_table("slice", rows).unwrap();
        let batches = ctx
            .sql("SELECT user FROM slice ORDER BY user, timestamp")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        ctx.deregister_table("slice").unwrap();
        batches
            .iter()
            .flat_map(|b| {
                let users = b.column(0).as_string::<i32>();
                (0..b.num_rows())
                    .map(|i| users.value(i).to_string())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[tokio::test]
    async fn a_slice_holds_exactly_the_rows_of_the_customers_and_is_read_once_per_version() {
        let dir = tempfile::tempdir().unwrap();
        let a = data_file(
            dir.path(),
            "a.parquet",
            &[Some("ann"), Some("bob"), Some("cy"), None],
        );
        let b = data_file(
            dir.path(),
            "b.parquet",
            &[Some("dee"), Some("ann"), Some("eve"), Some("ann")],
        );
        let ctx = SessionContext::new();
        let table = files_table(&[a.clone(), b]);
        let keys = vec!["ann".to_string(), "eve".to_string()];
        let restriction = Restriction {
            grain: Grain::Customer,
            customers: Some(("user", &keys)),
            condition: "t.user IN ('ann', 'eve')".to_string(),
        };
        let slices = Slices::default();
        let rows = slices
            .restrict(&ctx, "phone", table.clone(), &restriction)
            .await
            .unwrap();
        let any: &dyn std::any::Any = rows.as_ref();
        assert!(any.is::<MemTable>(), "the slice is kept in memory");
        let files: &dyn std::any::Any = table.as_ref();
        let files = files.downcast_ref::<SnapshotFiles>().unwrap();
        let read = read_files(&ctx, files, schema(), "user", &keys)
            .await
            .unwrap();
        assert!(read.is_some(), "the files are read by their Bloom filters");
        assert_eq!(
            users_of(&ctx, rows.clone()).await,
            ["ann", "ann", "ann", "eve"]
        );

        // The same version of the table is not read again...
        let again = slices
            .restrict(&ctx, "phone", table, &restriction)
            .await
            .unwrap();
        assert!(Arc::ptr_eq(&rows, &again));
        // ...a new version is.
        let newer = slices
            .restrict(&ctx, "phone", files_table(&[a]), &restriction)
            .await
            .unwrap();
        assert_eq!(users_of(&ctx, newer).await, ["ann"]);
    }

    #[tokio::test]
    async fn a_table_that_is_not_a_list_of_files_is_restricted_by_its_condition() {
        let ctx = SessionContext::new();
        let batch = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(StringArray::from(vec!["ann", "bob", "ann"])),
                Arc::new(Int64Array::from(vec![1, 2, 3])),
            ],
        )
        .unwrap();
        let table: Arc<dyn TableProvider> =
            Arc::new(MemTable::try_new(schema(), vec![vec![batch]]).unwrap());
        let keys = vec!["ann".to_string()];
        let restriction = Restriction {
            grain: Grain::Customer,
            customers: Some(("user", &keys)),
            condition: "t.user IN ('ann')".to_string(),
        };
        let rows = Slices::default()
            .restrict(&ctx, "phone", table, &restriction)
            .await
            .unwrap();
        assert_eq!(users_of(&ctx, rows).await, ["ann", "ann"]);
    }
}
