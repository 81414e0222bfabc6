//! Ingest: every landed file not ingested before → typed landing tables and quarantine.
//!
//! Per source, new files form a batch, registered in the ledger first. The files of all
//! batches are then decoded by one pool of workers (one per core, each taking the next
//! piece of a file, large files being cut into several, and handing rows to a writer
//! task of its own), and each batch is published by
//! one quarantine commit and one landing commit, both marked with the batch number. A run
//! killed anywhere resumes the half-done batches exactly.

pub mod decode;
mod decoding;
pub mod ledger;
mod pieces;
mod publish;
pub mod quarantine;
mod scalar;
mod scan;
mod text;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use deltalake::DeltaTable;
use object_store::ObjectStoreExt;
use object_store::path::Path;

use crate::delta::{self};
use crate::error::{Result, StediError};
use crate::feed::Source;
use crate::forgotten::tombstone::Tombstones;
use crate::lakehouse::Lakehouse;
use crate::lakehouse::layout::{self, TableId, Zone};
use crate::progress::{Progress, Stage};
use ledger::Ledger;

/// What ingesting one source did in this run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceIngest {
    /// Files ingested (including a resumed batch).
    pub files: usize,
    /// Bytes read.
    pub bytes: u64,
    /// Rows added to the landing table.
    pub rows: u64,
    /// Records sent to quarantine, per reason.
    pub quarantined: BTreeMap<&'static str, u64>,
    /// Lines refused because they belong to an erased person, by batch: file → line
    /// numbers. They are still in the raw files; the pipeline removes them (see
    /// [`crate::forgotten::remove_refused_lines`]).
    pub refused: Vec<(i64, BTreeMap<String, BTreeSet<u64>>)>,
}

/// What ingestion did, per source.
#[derive(Debug, Clone, Default)]
pub struct IngestReport {
    /// Per source, in ingestion order.
    pub sources: Vec<(Source, SourceIngest)>,
}

impl IngestReport {
    /// Whether any new data was published.
    pub fn changed(&self) -> bool {
        self.sources.iter().any(|(_, s)| s.files > 0)
    }
}

/// A point at which a test can stop ingestion, to prove that a killed run resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopAfter {
    /// Stop after the ledger registered a batch, before anything else.
    Register,
    /// Stop after the quarantine commit, before the landing commit.
    Quarantine,
}

/// Ingests every new landed file of every source.
pub async fn ingest(lakehouse: &Lakehouse, progress: &Progress) -> Result<IngestReport> {
    ingest_until(lakehouse, progress, None).await
}

/// One source's files to decode in this run, published together under one number.
struct Batch {
    source: Source,
    number: i64,
    files: Vec<object_store::ObjectMeta>,
    /// The source's landing table, where the batch's data files are written.
    landing: DeltaTable,
    /// Bytes to read, for the progress display.
    stage: Stage,
}

impl Batch {
    fn new(
        source: Source,
        number: i64,
        files: Vec<object_store::ObjectMeta>,
        landing: &DeltaTable,
        progress: &Progress,
    ) -> Batch {
        let total: u64 = files.iter().map(|f| f.size).sum();
        Batch {
            source,
            number,
            files,
            landing: landing.clone(),
            stage: progress.bytes(&format!("ingest {source}"), total),
        }
    }
}

/// The position of a source in [`Source::ALL`].
fn source_index(source: Source) -> usize {
    Source::ALL
        .iter()
        .position(|s| *s == source)
        .unwrap_or_default()
}

/// [`ingest`], optionally stopping early with [`StediError::Interrupted`] (for tests).
///
/// Every source's batch is registered while all their files are decoded by one pool of
/// workers (so that one source's last big file decodes beside the next source's files),
/// then each batch is published in order.
pub async fn ingest_until(
    lakehouse: &Lakehouse,
    progress: &Progress,
    stop: Option<StopAfter>,
) -> Result<IngestReport> {
    let started = std::time::Instant::now();
    let (quarantine_id, quarantine_schema) = (layout::quarantine(), quarantine::schema());
    // What ingestion starts from, read at the same time: each source's landing table and
    // landed files, the ledger, quarantine, and the tombstones (records of erased people
    // are refused; checked only when someone was erased).
    let sources = futures::future::try_join_all(Source::ALL.map(|source| async move {
        let landing_id = TableId::new(Zone::Landing, source.landing_table());
        let schema = source.landing_schema();
        let (landing, landed) = futures::try_join!(
            delta::ensure_table(lakehouse, &landing_id, &schema),
            lakehouse.landed_files(source)
        )?;
        same_columns(&landing, &landing_id.name, &schema)?;
        let app = ledger::app_id(source);
        let published = delta::transaction_version(&landing, &landing_id.name, &app)
            .await?
            .unwrap_or(0);
        Ok::<_, StediError>((landing, landed, published))
    }));
    let (mut ledger, mut quarantine, tombstones, sources) = futures::try_join!(
        Ledger::load(lakehouse),
        delta::ensure_table(lakehouse, &quarantine_id, &quarantine_schema),
        Tombstones::load(lakehouse),
        sources,
    )?;
    let tombstones = tombstones.map(Arc::new);
    let mut landings = Vec::new();
    let mut batches = Vec::new();
    let mut new_files = Vec::new();
    for (source, (landing, landed, published)) in Source::ALL.into_iter().zip(sources) {
        // A batch registered by a run that did not finish: redo exactly its files.
        if let Some((number, files)) = ledger.last_batch(source).filter(|(n, _)| *n > published) {
            let files: Vec<Path> = files.iter().map(|f| Path::from(f.as_str())).collect();
            tracing::info!(%source, batch = number, files = files.len(), "resuming an unfinished batch");
            let files = heads(lakehouse, &files).await?;
            batches.push(Batch::new(source, number, files, &landing, progress));
        }
        let new: Vec<_> = landed
            .into_iter()
            .filter(|f| !ledger.contains(f.location.as_ref()))
            .collect();
        if !new.is_empty() {
            new_files.push((source, new));
        }
        landings.push(landing);
    }
    // Every source's new files become its next batch, registered in one commit while
    // they are decoded.
    let (numbers, registration) = ledger.register(&new_files);
    for ((source, files), number) in new_files.iter().zip(numbers) {
        let landing = &landings[source_index(*source)];
        batches.push(Batch::new(
            *source,
            number,
            files.clone(),
            landing,
            progress,
        ));
    }
    // Batches in source order: each source's are published one after another.
    batches.sort_by_key(|b| (source_index(b.source), b.number));
    if stop == Some(StopAfter::Register) {
        registration.await?;
        return Err(StediError::Interrupted);
    }

    let prepared_ms = started.elapsed().as_millis() as u64;
    let batches = Arc::new(batches);
    let (decoded, ()) = futures::try_join!(
        decoding::decode_batches(lakehouse, batches.clone(), tombstones),
        registration
    )?;
    tracing::debug!(
        prepared_ms,
        decoded_ms = started.elapsed().as_millis() as u64,
        "ingest steps"
    );
    let mut report = IngestReport {
        sources: Source::ALL
            .iter()
            .map(|s| (*s, SourceIngest::default()))
            .collect(),
    };
    for (batch, decoded) in batches.iter().zip(decoded) {
        let i = source_index(batch.source);
        let part = publish::publish(
            lakehouse,
            batch,
            decoded,
            &mut landings[i],
            &mut quarantine,
            stop,
        )
        .await?;
        tracing::info!(
            source = %batch.source,
            batch = batch.number,
            files = part.files,
            bytes = part.bytes,
            rows = part.rows,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "ingested"
        );
        merge(&mut report.sources[i].1, part);
    }
    Ok(report)
}

/// Refuses to append to a landing table whose columns are not the ones this version
/// writes (a table made by an earlier version), before anything is written.
fn same_columns(
    table: &DeltaTable,
    name: &str,
    schema: &arrow::datatypes::SchemaRef,
) -> Result<()> {
    let expected: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let found: Vec<String> = match table.snapshot() {
        Ok(snapshot) => snapshot
            .schema()
            .fields()
            .map(|f| f.name().to_string())
            .collect(),
        Err(e) => return Err(StediError::delta(name, e)),
    };
    if found
        .iter()
        .map(String::as_str)
        .eq(expected.iter().copied())
    {
        return Ok(());
    }
    Err(StediError::OutdatedTable {
        table: name.to_string(),
        found: found.join(", "),
        expected: expected.join(", "),
    })
}

fn merge(into: &mut SourceIngest, part: SourceIngest) {
    into.files += part.files;
    into.bytes += part.bytes;
    into.rows += part.rows;
    for (reason, n) in part.quarantined {
        *into.quarantined.entry(reason).or_insert(0) += n;
    }
    into.refused.extend(part.refused);
}

async fn heads(lakehouse: &Lakehouse, files: &[Path]) -> Result<Vec<object_store::ObjectMeta>> {
    let mut metas = Vec::with_capacity(files.len());
    for f in files {
        match lakehouse.store().head(f).await {
            // Keep the path as asked: a prefixed store may report its own full path.
            Ok(meta) => metas.push(object_store::ObjectMeta {
                location: f.clone(),
                ..meta
            }),
            Err(object_store::Error::NotFound { .. }) => {
                return Err(StediError::Unwritable {
                    path: f.to_string(),
                    reason: "this landed file was registered for ingestion but is gone; landed files must not be removed".into(),
                });
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(metas)
}
