//! The ledger of landed files that have been (or are being) ingested.
//!
//! A file is registered in the ledger, under a batch number, *before* its records are
//! published. The landing and quarantine commits of that batch carry an application
//! transaction with the batch number, so after a crash the next run knows exactly which
//! files a half-done batch held and which of its two commits are still missing. That is
//! how a file is never ingested twice, and never skipped.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use datafusion::prelude::SessionContext;
use deltalake::DeltaTable;
use deltalake::kernel::Transaction;
use object_store::ObjectMeta;

use crate::delta;
use crate::error::{Result, StediError};
use crate::feed::Source;
use crate::lakehouse::{Lakehouse, layout};

/// Schema of `_stedi/ingested_files`.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("source", DataType::Utf8, false),
        Field::new("file", DataType::Utf8, false),
        Field::new("bytes", DataType::Int64, false),
        Field::new("batch", DataType::Int64, false),
        Field::new("registered_at", DataType::Int64, false),
    ]))
}

/// The application id under which a source's batches are recorded in its tables.
pub fn app_id(source: Source) -> String {
    format!("stedi.ingest.{}", source.name())
}

/// What the ledger knows, loaded once per run.
pub struct Ledger {
    table: DeltaTable,
    /// For each source: batch number → files of that batch.
    batches: HashMap<Source, BTreeMap<i64, Vec<String>>>,
    known: HashSet<String>,
}

impl Ledger {
    /// Loads the ledger, creating it on first use.
    pub async fn load(lakehouse: &Lakehouse) -> Result<Ledger> {
        let id = layout::ingested_files();
        let table = delta::ensure_table(lakehouse, &id, &schema()).await?;
        let ctx = SessionContext::new();
        let provider = table
            .table_provider()
            .await
            .map_err(|e| StediError::delta(&id.name, e.into()))?;
        let batches = ctx
            .read_table(provider)?
            .select_columns(&["source", "file", "batch"])?
            .collect()
            .await?;
        let mut ledger = Ledger {
            table,
            batches: HashMap::new(),
            known: HashSet::new(),
        };
        let utf8 = |a: &Arc<dyn Array>| {
            arrow::compute::cast(a, &DataType::Utf8)
                .map_err(datafusion::error::DataFusionError::from)
        };
        for b in &batches {
            let (sources, files) = (utf8(b.column(0))?, utf8(b.column(1))?);
            let (sources, files) = (sources.as_string::<i32>(), files.as_string::<i32>());
            let numbers = b.column(2).as_primitive::<Int64Type>();
            for i in 0..b.num_rows() {
                let Some(source) = Source::from_name(sources.value(i)) else {
                    continue;
                };
                let file = files.value(i).to_string();
                ledger.known.insert(file.clone());
                ledger
                    .batches
                    .entry(source)
                    .or_default()
                    .entry(numbers.value(i))
                    .or_default()
                    .push(file);
            }
        }
        Ok(ledger)
    }

    /// Whether a landed file was registered before.
    pub fn contains(&self, file: &str) -> bool {
        self.known.contains(file)
    }

    /// The newest batch of a source and its files.
    pub fn last_batch(&self, source: Source) -> Option<(i64, &[String])> {
        self.batches
            .get(&source)
            .and_then(|b| b.last_key_value())
            .map(|(n, files)| (*n, files.as_slice()))
    }

    /// The files of a source's batches after `batch`, i.e. what a table built at that
    /// batch has not seen yet.
    pub fn files_after(&self, source: Source, batch: i64) -> Vec<String> {
        self.batches
            .get(&source)
            .map(|b| {
                b.range(batch + 1..)
                    .flat_map(|(_, files)| files.iter().cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Registers each source's files as its next batch, all in one commit. Gives the batch
    /// numbers (in the order given) at once, and the commit as a future, so that the
    /// files can be decoded while it is written: nothing decoded is published before the
    /// registration stands. Registering nothing commits nothing.
    pub fn register<'a>(
        &'a mut self,
        batches: &'a [(Source, Vec<ObjectMeta>)],
    ) -> (Vec<i64>, impl Future<Output = Result<()>> + 'a) {
        let numbers: Vec<i64> = batches
            .iter()
            .map(|(source, _)| self.last_batch(*source).map_or(1, |(n, _)| n + 1))
            .collect();
        let commit = {
            let numbers = numbers.clone();
            async move {
                if batches.is_empty() {
                    return Ok(());
                }
                self.commit(batches, &numbers).await
            }
        };
        (numbers, commit)
    }

    /// Records each source's files under its batch number, in one commit.
    async fn commit(
        &mut self,
        batches: &[(Source, Vec<ObjectMeta>)],
        numbers: &[i64],
    ) -> Result<()> {
        let now = chrono::Utc::now().timestamp_millis();
        let rows: Vec<(Source, &ObjectMeta, i64)> = batches
            .iter()
            .zip(numbers)
            .flat_map(|((source, files), n)| files.iter().map(move |f| (*source, f, *n)))
            .collect();
        let rows = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|(s, _, _)| s.name()),
                )),
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|(_, f, _)| f.location.to_string()),
                )),
                Arc::new(Int64Array::from_iter_values(
                    rows.iter().map(|(_, f, _)| f.size as i64),
                )),
                Arc::new(Int64Array::from_iter_values(
                    rows.iter().map(|(_, _, n)| *n),
                )),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|_| now))),
            ],
        )
        .map_err(datafusion::error::DataFusionError::from)?;
        let name = layout::ingested_files().name;
        // The transactions make two concurrent runs registering the same batch conflict.
        let txns = batches
            .iter()
            .zip(numbers)
            .map(|((source, _), n)| Transaction::new(format!("{}.ledger", app_id(*source)), *n))
            .collect();
        delta::append_batch(&mut self.table, &name, rows, txns, HashMap::new()).await?;
        for ((source, files), n) in batches.iter().zip(numbers) {
            let names: Vec<String> = files.iter().map(|f| f.location.to_string()).collect();
            self.known.extend(names.iter().cloned());
            self.batches.entry(*source).or_default().insert(*n, names);
        }
        Ok(())
    }
}
