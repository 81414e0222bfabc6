//! A version of a table read as what it is on storage: the Parquet files its Delta log
//! lists, each with its size and statistics from the log.
//!
//! DataFusion's `ListingTable` over a list of file URLs asks storage about every file
//! before it reads any (a HEAD for its size, and its footer for statistics): on S3 that
//! is a round trip per file on every query. The log already knows both, so this table
//! hands them to DataFusion's Parquet scan directly. The scan is DataFusion's own, with
//! its pruning by statistics, Bloom filters and page index; filters reach it through the
//! engine's filter pushdown. It is also how the files of a snapshot can travel in a
//! plan (a file list) where delta-rs's own scan cannot.

use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::stats::Precision;
use datafusion::common::{ColumnStatistics, ScalarValue, Statistics};
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use datafusion::datasource::table_schema::TableSchema;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use object_store::path::Path;
use url::Url;

/// One data file of a table, as its log (or the writer that staged it) describes it.
#[derive(Debug, Clone)]
pub struct DataFile {
    /// Path relative to the table's folder.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// Statistics as the Delta log keeps them (JSON: `numRecords`, `minValues`, …).
    pub stats: Option<String>,
}

/// The data files of one version of a table, as a table of DataFusion.
#[derive(Debug)]
pub struct SnapshotFiles {
    store_url: ObjectStoreUrl,
    files: Vec<PartitionedFile>,
    schema: SchemaRef,
    statistics: Statistics,
}

impl SnapshotFiles {
    /// The files `files` of the table whose folder is `table_url`, holding `schema`.
    pub fn new(
        table_url: &Url,
        files: &[DataFile],
        schema: SchemaRef,
    ) -> datafusion::error::Result<Self> {
        let store_url = ObjectStoreUrl::parse(
            &table_url[url::Position::BeforeScheme..url::Position::BeforePath],
        )?;
        let mut partitioned = Vec::with_capacity(files.len());
        for file in files {
            let url = table_url.join(&file.path).map_err(|e| {
                datafusion::error::DataFusionError::Plan(format!(
                    "bad data file path `{}`: {e}",
                    file.path
                ))
            })?;
            let location = Path::from_url_path(url.path())?;
            let statistics = Arc::new(file_statistics(file.stats.as_deref(), &schema));
            partitioned.push(
                PartitionedFile::new(location.to_string(), file.size).with_statistics(statistics),
            );
        }
        let statistics = merged(&partitioned, &schema);
        Ok(SnapshotFiles {
            store_url,
            files: partitioned,
            schema,
            statistics,
        })
    }

    /// Each file: its path within the store and its size.
    pub fn files(&self) -> impl Iterator<Item = (Path, u64)> + '_ {
        self.files
            .iter()
            .map(|f| (f.object_meta.location.clone(), f.object_meta.size))
    }

    /// Where the files' store is registered in a session.
    pub fn store_url(&self) -> &ObjectStoreUrl {
        &self.store_url
    }
}

#[async_trait::async_trait]
impl TableProvider for SnapshotFiles {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn statistics(&self) -> Option<Statistics> {
        Some(self.statistics.clone())
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        // Applied to row groups and pages by the Parquet scan; rows are filtered above it.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let format = ParquetFormat::default().with_options(state.table_options().parquet.clone());
        let source = format.file_source(TableSchema::from(self.schema.clone()));
        let groups =
            FileGroup::new(self.files.clone()).split_files(state.config().target_partitions());
        let config = FileScanConfigBuilder::new(self.store_url.clone(), source)
            .with_file_groups(groups)
            .with_statistics(self.statistics.clone())
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        format.create_physical_plan(state, config).await
    }
}

/// A file's statistics from its log entry: its row count, and the bounds and null counts
/// of its numeric columns (text bounds may be truncated, and personal columns have none).
fn file_statistics(stats: Option<&str>, schema: &SchemaRef) -> Statistics {
    let Some(stats) = stats.and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok()) else {
        return Statistics::new_unknown(schema);
    };
    let rows = stats
        .get("numRecords")
        .and_then(|n| n.as_u64())
        .map_or(Precision::Absent, |n| Precision::Exact(n as usize));
    let bound = |kind: &str, name: &str, data_type: &DataType| {
        let value = stats.get(kind).and_then(|m| m.get(name));
        let scalar = match (data_type, value) {
            (DataType::Int64, Some(v)) => v.as_i64().map(|v| ScalarValue::Int64(Some(v))),
            (DataType::Float64, Some(v)) => v.as_f64().map(|v| ScalarValue::Float64(Some(v))),
            _ => None,
        };
        scalar.map_or(Precision::Absent, Precision::Inexact)
    };
    let columns = schema
        .fields()
        .iter()
        .map(|field| {
            let nulls = stats
                .get("nullCount")
                .and_then(|m| m.get(field.name()))
                .and_then(|n| n.as_u64())
                .map_or(Precision::Absent, |n| Precision::Exact(n as usize));
            ColumnStatistics {
                null_count: nulls,
                max_value: bound("maxValues", field.name(), field.data_type()),
                min_value: bound("minValues", field.name(), field.data_type()),
                ..ColumnStatistics::new_unknown()
            }
        })
        .collect();
    Statistics {
        num_rows: rows,
        total_byte_size: Precision::Absent,
        column_statistics: columns,
    }
}

/// The statistics of all the files together.
fn merged(files: &[PartitionedFile], schema: &SchemaRef) -> Statistics {
    let mut all = match files.first().and_then(|f| f.statistics.as_deref()) {
        Some(first) => first.clone(),
        None => return Statistics::new_unknown(schema),
    };
    for file in &files[1..] {
        let Some(stats) = file.statistics.as_deref() else {
            return Statistics::new_unknown(schema);
        };
        all.num_rows = all.num_rows.add(&stats.num_rows);
        for (into, more) in all
            .column_statistics
            .iter_mut()
            .zip(&stats.column_statistics)
        {
            into.null_count = into.null_count.add(&more.null_count);
            into.min_value = into.min_value.min(&more.min_value);
            into.max_value = into.max_value.max(&more.max_value);
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Field, Schema};

    #[test]
    fn statistics_come_from_the_log_for_numbers_and_add_up_over_files() {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("t", DataType::Int64, false),
            Field::new("email", DataType::Utf8, true),
        ]));
        let file = |path: &str, stats: &str| DataFile {
            path: path.into(),
            size: 100,
            stats: Some(stats.into()),
        };
        let table = SnapshotFiles::new(
            &Url::parse("s3://bucket/lh/trusted/t/").unwrap(),
            &[
                file("a.parquet", r#"{"numRecords":3,"minValues":{"t":5},"maxValues":{"t":9},"nullCount":{"t":0,"email":1}}"#),
                file("b.parquet", r#"{"numRecords":2,"minValues":{"t":1},"maxValues":{"t":7},"nullCount":{"t":0,"email":0}}"#),
            ],
            schema,
        )
        .unwrap();
        let stats = table.statistics().unwrap();
        assert_eq!(stats.num_rows, Precision::Exact(5));
        let t = &stats.column_statistics[0];
        assert_eq!(t.min_value.get_value(), Some(&ScalarValue::Int64(Some(1))));
        assert_eq!(t.max_value.get_value(), Some(&ScalarValue::Int64(Some(9))));
        assert_eq!(stats.column_statistics[1].null_count, Precision::Exact(1));
        assert_eq!(stats.column_statistics[1].min_value, Precision::Absent);
        let files: Vec<_> = table.files().collect();
        assert_eq!(files[0].0.as_ref(), "lh/trusted/t/a.parquet");
        assert_eq!(files[1].1, 100);
        assert_eq!(table.store_url().as_str(), "s3://bucket/");
    }
}
