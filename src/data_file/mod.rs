//! Writing a table's data files: Parquet files, rolled over at a target size, each
//! described by the Delta `add` action (with its statistics) that will publish it.
//!
//! Text columns go through [`text_runs`], which does its work once per run of equal
//! values; doubles through [`few_values`], which finds each value among the few a sensor
//! reports; every other column through Parquet's own Arrow column writer. Each row group
//! is assembled from these, so a file is ordinary Parquet to every reader.

mod chunk;
pub mod few_values;
pub mod stats;
pub mod text_runs;

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray};
use arrow::datatypes::{DataType, Field, Float64Type, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::arrow_writer::{
    ArrowColumnWriter, ArrowRowGroupWriterFactory, compute_leaves,
};
use datafusion::parquet::arrow::{ArrowSchemaConverter, add_encoded_arrow_schema_to_metadata};
use datafusion::parquet::errors::{ParquetError, Result as ParquetResult};
use datafusion::parquet::file::properties::{WriterProperties, WriterPropertiesPtr};
use datafusion::parquet::file::writer::SerializedFileWriter;
use datafusion::parquet::schema::types::SchemaDescriptor;
use deltalake::DeltaTableError;
use deltalake::kernel::Add;
use object_store::ObjectStore;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use tokio::io::AsyncWriteExt;

use few_values::FewValuesEncoder;
use text_runs::TextRunsEncoder;

/// Rows of a row group: Parquet's default, a unit a reader skips or reads whole.
const ROW_GROUP_ROWS: usize = 1024 * 1024;

/// How the columns of a table are written.
#[derive(Debug, Clone)]
pub struct DataFileSpec {
    /// The schema of the batches written (files hold their text of any kind as `Utf8`).
    pub schema: SchemaRef,
    /// Parquet settings of the columns written by Parquet's own writer.
    pub properties: WriterProperties,
    /// The text column that gets a Bloom filter in every row group, and its
    /// false-positive rate.
    pub bloom: Option<(String, f64)>,
    /// Columns whose statistics go into the `add` actions.
    pub stats_columns: Vec<String>,
    /// Files roll over once they reach this size.
    pub target_size: u64,
}

/// Writes batches as data files into a table's folder and returns their `add` actions.
pub struct DataFileWriter {
    store: Arc<dyn ObjectStore>,
    spec: DataFileSpec,
    parquet_schema: Arc<SchemaDescriptor>,
    properties: WriterPropertiesPtr,
    file: Option<OpenFile>,
    adds: Vec<Add>,
}

/// A file being written: its row groups so far are on their way to the store.
struct OpenFile {
    path: Path,
    writer: SerializedFileWriter<Vec<u8>>,
    /// Parquet's writers of the columns that are not text.
    factory: ArrowRowGroupWriterFactory,
    upload: BufWriter,
    /// The row group being written (empty until its first rows arrive).
    columns: Vec<Column>,
    rows: usize,
}

/// One column of the row group being written.
enum Column {
    Text(TextRunsEncoder),
    Double(FewValuesEncoder),
    Other(Box<ArrowColumnWriter>),
}

impl DataFileWriter {
    /// A writer of `spec`'s files into `store` (the table's folder). Text of any kind is
    /// stored as `Utf8`, which is what the Delta table declares and what [`text_runs`]
    /// encodes.
    pub fn new(store: Arc<dyn ObjectStore>, mut spec: DataFileSpec) -> ParquetResult<Self> {
        spec.schema = file_schema(&spec.schema);
        let mut properties = spec.properties.clone();
        add_encoded_arrow_schema_to_metadata(&spec.schema, &mut properties);
        let parquet_schema = ArrowSchemaConverter::new().convert(&spec.schema)?;
        Ok(DataFileWriter {
            store,
            spec,
            parquet_schema: Arc::new(parquet_schema),
            properties: Arc::new(properties),
            file: None,
            adds: Vec::new(),
        })
    }

    /// Writes a batch, finishing row groups and files as they fill.
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<(), DeltaTableError> {
        let mut offset = 0;
        while offset < batch.num_rows() {
            if self.file.is_none() {
                self.file = Some(self.open()?);
            }
            let Some(file) = self.file.as_mut() else {
                break;
            };
            if file.columns.is_empty() {
                let row_group = file.writer.flushed_row_groups().len();
                file.columns = new_columns(
                    &self.spec,
                    &self.parquet_schema,
                    &self.properties,
                    &file.factory,
                    row_group,
                )?;
            }
            let take = (ROW_GROUP_ROWS - file.rows).min(batch.num_rows() - offset);
            let part = batch.slice(offset, take);
            for ((column, array), field) in file
                .columns
                .iter_mut()
                .zip(part.columns())
                .zip(self.spec.schema.fields())
            {
                write_column(column, array, field)?;
            }
            file.rows += take;
            offset += take;
            if file.rows == ROW_GROUP_ROWS {
                self.finish_row_group().await?;
                let written = self.file.as_ref().map_or(0, |f| f.writer.bytes_written());
                if written as u64 >= self.spec.target_size {
                    self.finish_file().await?;
                }
            }
        }
        Ok(())
    }

    /// Finishes the last file and returns the `add` actions of every file written.
    pub async fn close(mut self) -> Result<Vec<Add>, DeltaTableError> {
        if self.file.as_ref().is_some_and(|f| f.rows > 0) {
            self.finish_row_group().await?;
        }
        self.finish_file().await?;
        Ok(self.adds)
    }

    fn open(&self) -> ParquetResult<OpenFile> {
        let name = format!("part-{}.snappy.parquet", uuid::Uuid::new_v4());
        let path = Path::from(name);
        let writer = SerializedFileWriter::new(
            Vec::new(),
            self.parquet_schema.root_schema_ptr(),
            self.properties.clone(),
        )?;
        let factory = ArrowRowGroupWriterFactory::new(&writer, self.spec.schema.clone());
        Ok(OpenFile {
            upload: BufWriter::new(self.store.clone(), path.clone()),
            path,
            columns: Vec::new(),
            factory,
            writer,
            rows: 0,
        })
    }

    async fn finish_row_group(&mut self) -> Result<(), DeltaTableError> {
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        let columns = std::mem::take(&mut file.columns);
        let mut row_group = file.writer.next_row_group()?;
        for column in columns {
            match column {
                Column::Text(encoder) => {
                    let (bytes, close) = encoder.finish()?;
                    row_group.append_column(&bytes, close)?;
                }
                Column::Double(encoder) => {
                    let (bytes, close) = encoder.finish()?;
                    row_group.append_column(&bytes, close)?;
                }
                Column::Other(writer) => writer.close()?.append_to_row_group(&mut row_group)?,
            }
        }
        row_group.close()?;
        file.rows = 0;
        file.send_written().await
    }

    async fn finish_file(&mut self) -> Result<(), DeltaTableError> {
        let Some(mut file) = self.file.take() else {
            return Ok(());
        };
        if file.writer.flushed_row_groups().is_empty() {
            // Nothing was written: no file, and nothing left half-uploaded.
            file.upload.abort().await.map_err(DeltaTableError::from)?;
            return Ok(());
        }
        let metadata = file.writer.finish()?;
        let size = file.writer.bytes_written() as u64;
        file.send_written().await?;
        file.upload
            .shutdown()
            .await
            .map_err(DeltaTableError::from)?;
        self.adds.push(stats::add_action(
            &file.path,
            size,
            &metadata,
            &self.spec.schema,
            &self.spec.stats_columns,
        )?);
        Ok(())
    }
}

impl OpenFile {
    /// Sends what the Parquet writer has written since last time on to the store.
    async fn send_written(&mut self) -> Result<(), DeltaTableError> {
        self.writer.flush()?;
        let bytes = std::mem::take(self.writer.inner_mut());
        self.upload.put(bytes.into()).await?;
        Ok(())
    }
}

/// The schema files hold for batches of `schema`: text of any kind as `Utf8`.
fn file_schema(schema: &Schema) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8View | DataType::LargeUtf8 => {
                f.as_ref().clone().with_data_type(DataType::Utf8)
            }
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// Fresh encoders for row group `row_group` of a file: text columns by runs, doubles by
/// their few values, the rest by Parquet. (Parquet's factory makes a writer for every
/// column; those of text columns and doubles go unused.)
fn new_columns(
    spec: &DataFileSpec,
    parquet_schema: &SchemaDescriptor,
    properties: &WriterProperties,
    factory: &ArrowRowGroupWriterFactory,
    row_group: usize,
) -> ParquetResult<Vec<Column>> {
    let mut arrow_writers = factory.create_column_writers(row_group)?.into_iter();
    let mut columns = Vec::with_capacity(spec.schema.fields().len());
    for (i, field) in spec.schema.fields().iter().enumerate() {
        let arrow_writer = arrow_writers
            .next()
            .ok_or_else(|| ParquetError::General("a column without a writer".into()))?;
        columns.push(match field.data_type() {
            DataType::Utf8 => {
                let bloom = spec
                    .bloom
                    .as_ref()
                    .filter(|(name, _)| name == field.name())
                    .map(|(_, fpp)| *fpp);
                Column::Text(TextRunsEncoder::new(
                    parquet_schema.column(i),
                    properties,
                    bloom,
                ))
            }
            DataType::Float64 => {
                Column::Double(FewValuesEncoder::new(parquet_schema.column(i), properties))
            }
            _ => Column::Other(Box::new(arrow_writer)),
        });
    }
    Ok(columns)
}

/// Hands one column of a batch to its encoder.
fn write_column(column: &mut Column, array: &ArrayRef, field: &Field) -> ParquetResult<()> {
    match column {
        Column::Text(encoder) => {
            if let Some(text) = array.as_string_opt::<i32>() {
                encoder.write(text);
            } else {
                let text = arrow::compute::cast(array, &DataType::Utf8)?;
                encoder.write(text.as_string::<i32>());
            }
        }
        Column::Double(encoder) => encoder.write(array.as_primitive::<Float64Type>()),
        Column::Other(writer) => {
            for leaf in compute_leaves(field, array)? {
                writer.write(&leaf)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int64Array, StringArray};
    use bytes::Bytes;
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use datafusion::parquet::basic::Encoding;
    use datafusion::parquet::file::properties::{EnabledStatistics, ReaderProperties};
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
    use datafusion::parquet::file::serialized_reader::ReadOptionsBuilder;
    use datafusion::parquet::file::statistics::Statistics;
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;

    fn spec(schema: SchemaRef, bloom: Option<&str>) -> DataFileSpec {
        DataFileSpec {
            stats_columns: schema.fields().iter().map(|f| f.name().clone()).collect(),
            schema,
            properties: WriterProperties::builder().build(),
            bloom: bloom.map(|c| (c.to_string(), 1e-5)),
            target_size: u64::MAX,
        }
    }

    /// Writes `batches` as one table's files and reads every file back.
    async fn round_trip(spec: DataFileSpec, batches: &[RecordBatch]) -> (Vec<Add>, Vec<Bytes>) {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let mut writer = DataFileWriter::new(store.clone(), spec).unwrap();
        for batch in batches {
            writer.write(batch).await.unwrap();
        }
        let adds = writer.close().await.unwrap();
        let mut files = Vec::new();
        for add in &adds {
            let bytes = store.get(&Path::from(add.path.as_str())).await.unwrap();
            files.push(bytes.bytes().await.unwrap());
        }
        (adds, files)
    }

    fn read_all(file: &Bytes) -> Vec<RecordBatch> {
        ParquetRecordBatchReaderBuilder::try_new(file.clone())
            .unwrap()
            .build()
            .unwrap()
            .collect::<std::result::Result<_, _>>()
            .unwrap()
    }

    /// A reader of `file` that reads its Bloom filters too.
    fn with_bloom_filters(file: &Bytes) -> SerializedFileReader<Bytes> {
        let options = ReadOptionsBuilder::new()
            .with_reader_properties(
                ReaderProperties::builder()
                    .set_read_bloom_filter(true)
                    .build(),
            )
            .build();
        SerializedFileReader::new_with_options(file.clone(), options).unwrap()
    }

    fn readings(users: Vec<Option<&str>>) -> RecordBatch {
        let n = users.len() as i64;
        let schema = Arc::new(Schema::new(vec![
            Field::new("user", DataType::Utf8, true),
            Field::new("timestamp", DataType::Int64, false),
            Field::new("x", DataType::Float64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(users)),
                Arc::new(Int64Array::from_iter_values(0..n)),
                Arc::new(Float64Array::from_iter_values(
                    (0..n).map(|i| (i % 3) as f64 - 1.0),
                )),
            ],
        )
        .unwrap()
    }

    #[tokio::test]
    async fn text_in_runs_across_batches_reads_back_as_written() {
        // Runs that continue from one batch into the next, nulls alone and in runs, an
        // empty string, and more rows than a page holds.
        let mut users: Vec<Option<&str>> = Vec::new();
        for (value, n) in [
            (Some("a@x.com"), 30_000),
            (None, 1),
            (Some(""), 2),
            (Some("b@x.com"), 5),
            (None, 7),
            (Some("a@x.com"), 3),
        ] {
            users.extend(std::iter::repeat_n(value, n));
        }
        let whole = readings(users);
        let batches = [
            whole.slice(0, 10_000),
            whole.slice(10_000, 20_001),
            whole.slice(30_001, 17),
        ];
        let (adds, files) = round_trip(spec(whole.schema(), Some("user")), &batches).await;
        assert_eq!(adds.len(), 1);
        let read = arrow::compute::concat_batches(&whole.schema(), &read_all(&files[0])).unwrap();
        assert_eq!(read, whole);

        // The text column is dictionary encoded, and its Bloom filter knows every value.
        let reader = with_bloom_filters(&files[0]);
        let chunk = reader.metadata().row_group(0).column(0);
        assert!(chunk.encodings().any(|e| e == Encoding::RLE_DICTIONARY));
        let row_group = reader.get_row_group(0).unwrap();
        let bloom = row_group
            .get_column_bloom_filter(0)
            .expect("a Bloom filter");
        for user in ["a@x.com", "b@x.com", ""] {
            assert!(bloom.check(user.as_bytes()), "{user} not in the filter");
        }
        assert!(!bloom.check("c@x.com".as_bytes()));
    }

    #[tokio::test]
    async fn text_that_seldom_repeats_is_written_plain() {
        // Names that never repeat; then runs, values seen before and nulls, so many that
        // the column as a whole would have paid for a dictionary: the decision is taken
        // early, from its first thousand distinct values.
        let mut names: Vec<Option<String>> = (0..5_000)
            .map(|i| Some(format!("customer {i:04}")))
            .collect();
        for i in 0..20_000 {
            names.push(match i % 7 {
                0 => None,
                1 | 2 => Some("customer 0001".to_string()),
                _ => Some(format!("customer {:04}", i % 50)),
            });
        }
        let whole = readings(names.iter().map(|n| n.as_deref()).collect());
        let batches = [whole.slice(0, 1_500), whole.slice(1_500, 23_500)];
        let (adds, files) = round_trip(spec(whole.schema(), Some("user")), &batches).await;
        let read = arrow::compute::concat_batches(&whole.schema(), &read_all(&files[0])).unwrap();
        assert_eq!(read, whole);
        let reader = with_bloom_filters(&files[0]);
        let chunk = reader.metadata().row_group(0).column(0);
        assert!(chunk.encodings().all(|e| e != Encoding::RLE_DICTIONARY));
        assert!(chunk.dictionary_page_offset().is_none());

        // Written plain, the column is still described whole: bounds, nulls, filter.
        let stats = adds[0].get_stats().unwrap().unwrap();
        assert_eq!(
            stats.min_values["user"].as_value().unwrap(),
            "customer 0000"
        );
        assert_eq!(
            stats.max_values["user"].as_value().unwrap(),
            "customer 4999"
        );
        assert_eq!(stats.null_count["user"].as_value(), Some(2858));
        let row_group = reader.get_row_group(0).unwrap();
        let bloom = row_group
            .get_column_bloom_filter(0)
            .expect("a Bloom filter");
        for name in ["customer 0000", "customer 2500", "customer 4999"] {
            assert!(bloom.check(name.as_bytes()), "{name} not in the filter");
        }
    }

    #[tokio::test]
    async fn a_file_is_described_by_its_rows_and_bounds() {
        let whole = readings(vec![Some("m"), Some("m"), None, Some("b"), Some("z")]);
        let (adds, _) = round_trip(
            spec(whole.schema(), None),
            &[whole.slice(0, 2), whole.slice(2, 3)],
        )
        .await;
        let stats = adds[0].get_stats().unwrap().unwrap();
        assert_eq!(stats.num_records, 5);
        let value =
            |m: &std::collections::HashMap<String, deltalake::protocol::ColumnValueStat>,
             c: &str| { m[c].as_value().unwrap().clone() };
        assert_eq!(value(&stats.min_values, "user"), "b");
        assert_eq!(value(&stats.max_values, "user"), "z");
        assert_eq!(value(&stats.min_values, "timestamp"), 0);
        assert_eq!(value(&stats.max_values, "timestamp"), 4);
        assert_eq!(value(&stats.min_values, "x"), -1.0);
        assert_eq!(value(&stats.max_values, "x"), 1.0);
        assert_eq!(stats.null_count["user"].as_value(), Some(1));
        assert_eq!(stats.null_count["timestamp"].as_value(), Some(0));
    }

    #[tokio::test]
    async fn files_roll_over_at_their_target_size_between_row_groups() {
        let whole = readings(vec![Some("a"); ROW_GROUP_ROWS * 2 + 10]);
        let mut spec = spec(whole.schema(), None);
        spec.target_size = 1;
        let (adds, files) = round_trip(spec, std::slice::from_ref(&whole)).await;
        assert_eq!(adds.len(), 3);
        let rows: Vec<i64> = adds
            .iter()
            .map(|a| a.get_stats().unwrap().unwrap().num_records)
            .collect();
        assert_eq!(rows, [ROW_GROUP_ROWS as i64, ROW_GROUP_ROWS as i64, 10]);
        for (add, file) in adds.iter().zip(&files) {
            assert_eq!(add.size as usize, file.len());
        }
    }

    #[tokio::test]
    async fn text_without_statistics_leaves_no_value_in_the_footer() {
        // What keeps personal columns out of footers and out of the Delta log.
        let whole = readings(vec![Some("a@x.com"), Some("b@x.com")]);
        let mut spec = spec(whole.schema(), None);
        spec.properties = WriterProperties::builder()
            .set_column_statistics_enabled("user".into(), EnabledStatistics::None)
            .build();
        spec.stats_columns.retain(|c| c != "user");
        let (adds, files) = round_trip(spec, std::slice::from_ref(&whole)).await;
        let reader = SerializedFileReader::new(files[0].clone()).unwrap();
        assert!(
            reader
                .metadata()
                .row_group(0)
                .column(0)
                .statistics()
                .is_none()
        );
        assert!(
            reader
                .metadata()
                .row_group(0)
                .column(1)
                .statistics()
                .is_some()
        );
        assert!(!adds[0].stats.as_deref().unwrap().contains("x.com"));
    }

    #[tokio::test]
    async fn a_column_of_one_value_or_of_nulls_reads_back() {
        // One value needs keys of no bits at all; nulls only need no dictionary.
        for users in [vec![Some("only@x.com"); 50], vec![None; 50]] {
            let whole = readings(users);
            let (_, files) = round_trip(
                spec(whole.schema(), Some("user")),
                std::slice::from_ref(&whole),
            )
            .await;
            let read =
                arrow::compute::concat_batches(&whole.schema(), &read_all(&files[0])).unwrap();
            assert_eq!(read, whole);
        }
    }
    fn doubles(values: &[Option<f64>]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Float64, true)]));
        RecordBatch::try_new(schema, vec![Arc::new(Float64Array::from(values.to_vec()))]).unwrap()
    }

    /// Writes `values` in batches of `batch_rows`, checks that they read back bit for bit,
    /// and returns the file.
    async fn doubles_round_trip(values: &[Option<f64>], batch_rows: usize) -> Bytes {
        let whole = doubles(values);
        let batches: Vec<RecordBatch> = (0..values.len())
            .step_by(batch_rows)
            .map(|at| whole.slice(at, batch_rows.min(values.len() - at)))
            .collect();
        let (_, files) = round_trip(spec(whole.schema(), None), &batches).await;
        let read = arrow::compute::concat_batches(&whole.schema(), &read_all(&files[0])).unwrap();
        let bits = |values: Vec<Option<f64>>| -> Vec<Option<u64>> {
            values.iter().map(|v| v.map(f64::to_bits)).collect()
        };
        let read_values = read
            .column(0)
            .as_primitive::<arrow::datatypes::Float64Type>()
            .iter()
            .collect();
        assert_eq!(bits(read_values), bits(values.to_vec()));
        files[0].clone()
    }

    fn encodings_of(file: &Bytes) -> Vec<Encoding> {
        let reader = SerializedFileReader::new(file.clone()).unwrap();
        reader
            .metadata()
            .row_group(0)
            .column(0)
            .encodings()
            .collect()
    }

    /// A sequence that looks random, the same on every run.
    fn scrambled(n: usize, modulo: u64) -> impl Iterator<Item = u64> {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        (0..n).map(move |_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            (state >> 33) % modulo
        })
    }

    #[tokio::test]
    async fn readings_of_few_values_read_back_bit_for_bit() {
        // An axis in three values at random, long repeats that cross pages, nulls alone and
        // in runs, and the values a double can hold that compare oddly.
        let mut values: Vec<Option<f64>> =
            scrambled(50_000, 3).map(|k| Some(k as f64 - 1.0)).collect();
        values.extend(std::iter::repeat_n(Some(0.5), 45_003));
        values.extend(std::iter::repeat_n(None, 30));
        values.extend([
            Some(-0.0),
            Some(f64::NAN),
            None,
            Some(f64::INFINITY),
            Some(0.0),
        ]);
        values.extend(scrambled(10_000, 4).map(|k| (k > 0).then_some(k as f64)));
        let file = doubles_round_trip(&values, 7_777).await;
        assert!(encodings_of(&file).contains(&Encoding::RLE_DICTIONARY));
    }

    #[tokio::test]
    async fn readings_of_many_values_use_a_dictionary_while_they_repeat() {
        // Tenths of g: more values than are compared one by one.
        let tenths: Vec<Option<f64>> = scrambled(40_000, 41)
            .map(|k| Some((k as f64 - 20.0) / 10.0))
            .collect();
        let file = doubles_round_trip(&tenths, 10_000).await;
        assert!(encodings_of(&file).contains(&Encoding::RLE_DICTIONARY));

        // Values that seldom repeat, and more distinct values than a dictionary holds.
        for n in [5_000, few_values::MAX_DISTINCT * 2] {
            let distinct: Vec<Option<f64>> = (0..n).map(|i| Some(i as f64 / 3.0)).collect();
            let file = doubles_round_trip(&distinct, 50_000).await;
            assert!(!encodings_of(&file).contains(&Encoding::RLE_DICTIONARY));
        }
    }

    #[tokio::test]
    async fn bounds_of_doubles_leave_out_nan_and_take_in_either_zero() {
        let values = [Some(0.0), Some(f64::NAN), None, Some(2.5), Some(2.5)];
        let whole = doubles(&values);
        let (adds, files) =
            round_trip(spec(whole.schema(), None), std::slice::from_ref(&whole)).await;
        let reader = SerializedFileReader::new(files[0].clone()).unwrap();
        match reader.metadata().row_group(0).column(0).statistics() {
            Some(Statistics::Double(s)) => {
                assert_eq!(s.min_opt().map(|v| v.to_bits()), Some((-0.0f64).to_bits()));
                assert_eq!(s.max_opt(), Some(&2.5));
                assert_eq!(s.null_count_opt(), Some(1));
            }
            other => panic!("statistics of doubles expected, found {other:?}"),
        }
        let stats = adds[0].get_stats().unwrap().unwrap();
        assert_eq!(stats.max_values["x"].as_value().unwrap(), 2.5);
    }
}
