//! Ingest: every landed file not ingested before → typed landing tables and quarantine.
//!
//! Per source, new files form a batch: registered in the ledger first, decoded in
//! parallel (one worker per core, each streaming its files and writing its own data
//! files), then published by one quarantine commit and one landing commit, both marked
//! with the batch number. A run killed anywhere resumes the half-done batch exactly.

pub mod decode;
pub mod feed;
pub mod ledger;
pub mod quarantine;
mod scan;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use deltalake::DeltaTable;
use deltalake::kernel::Transaction;
use object_store::ObjectStoreExt;
use object_store::path::Path;

use crate::delta::{self, FileWriter, StagedFiles};
use crate::erase::tombstone::{TombstoneFilter, Tombstones};
use crate::error::{Result, StediError};
use crate::lakehouse::Lakehouse;
use crate::lakehouse::layout::{self, TableId, Zone};
use crate::progress::{Progress, Stage};
use decode::Decoder;
use feed::Source;
use ledger::Ledger;
use quarantine::Quarantined;

/// Rows per landing batch handed to the Parquet writer.
const BATCH_ROWS: usize = 128 * 1024;

/// Bytes read from a landed file at a time.
const READ_CHUNK: u64 = 16 * 1024 * 1024;

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

/// [`ingest`], optionally stopping early with [`StediError::Interrupted`] (for tests).
pub async fn ingest_until(
    lakehouse: &Lakehouse,
    progress: &Progress,
    stop: Option<StopAfter>,
) -> Result<IngestReport> {
    let mut ledger = Ledger::load(lakehouse).await?;
    let quarantine_id = layout::quarantine();
    let mut quarantine =
        delta::ensure_table(lakehouse, &quarantine_id, &quarantine::schema()).await?;
    // Records of erased people are refused; checked only when someone was erased.
    let tombstones = Tombstones::load(lakehouse).await?.map(Arc::new);
    let mut report = IngestReport::default();
    for source in Source::ALL {
        let landing_id = TableId::new(Zone::Landing, source.landing_table());
        let mut landing =
            delta::ensure_table(lakehouse, &landing_id, &source.landing_schema()).await?;
        same_columns(&landing, &landing_id.name, &source.landing_schema())?;
        let mut done = SourceIngest::default();
        let app = ledger::app_id(source);
        let published = delta::transaction_version(&landing, &landing_id.name, &app)
            .await?
            .unwrap_or(0);

        // A batch registered by a run that did not finish: redo exactly its files.
        if let Some((batch, files)) = ledger.last_batch(source).filter(|(n, _)| *n > published) {
            let files: Vec<Path> = files.iter().map(|f| Path::from(f.as_str())).collect();
            tracing::info!(%source, batch, files = files.len(), "resuming an unfinished batch");
            let metas = heads(lakehouse, &files).await?;
            let part = ingest_batch(
                lakehouse,
                source,
                batch,
                &metas,
                &mut landing,
                &mut quarantine,
                tombstones.clone(),
                progress,
                stop,
            )
            .await?;
            merge(&mut done, part);
        }

        let new: Vec<_> = lakehouse
            .landed_files(source)
            .await?
            .into_iter()
            .filter(|f| !ledger.contains(f.location.as_ref()))
            .collect();
        if !new.is_empty() {
            let batch = ledger.register(source, &new).await?;
            if stop == Some(StopAfter::Register) {
                return Err(StediError::Interrupted);
            }
            let part = ingest_batch(
                lakehouse,
                source,
                batch,
                &new,
                &mut landing,
                &mut quarantine,
                tombstones.clone(),
                progress,
                stop,
            )
            .await?;
            merge(&mut done, part);
        }
        report.sources.push((source, done));
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

/// Decodes one batch of files and publishes it: quarantine commit, then landing commit.
#[allow(clippy::too_many_arguments)]
async fn ingest_batch(
    lakehouse: &Lakehouse,
    source: Source,
    batch: i64,
    files: &[object_store::ObjectMeta],
    landing: &mut DeltaTable,
    quarantine: &mut DeltaTable,
    tombstones: Option<Arc<Tombstones>>,
    progress: &Progress,
    stop: Option<StopAfter>,
) -> Result<SourceIngest> {
    let started = std::time::Instant::now();
    let total: u64 = files.iter().map(|f| f.size).sum();
    let stage = progress.bytes(&format!("ingest {source}"), total);
    let landing_name = source.landing_table();

    // Decode in parallel: each worker streams whole files and writes its own data files.
    let next = Arc::new(AtomicUsize::new(0));
    let files: Arc<Vec<object_store::ObjectMeta>> = Arc::new(files.to_vec());
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut tasks = Vec::with_capacity(workers);
    for _ in 0..workers.min(files.len()).max(1) {
        let (next, files, store, stage) = (
            next.clone(),
            files.clone(),
            lakehouse.store().clone(),
            stage.clone(),
        );
        let mut writer = FileWriter::new(landing, source.landing_schema());
        // One cache of checked addresses per worker.
        let mut erased = tombstones.clone().map(TombstoneFilter::new);
        tasks.push(async move {
            let mut rejected = Quarantined::default();
            let mut rows = 0u64;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(meta) = files.get(i) else { break };
                let sink = Sink {
                    writer: &mut writer,
                    rejected: &mut rejected,
                    erased: erased.as_mut(),
                };
                rows += decode_file(&store, source, meta, sink, &stage).await?;
            }
            let adds = writer
                .close()
                .await
                .map_err(|e| StediError::delta(landing_name, e))?;
            Ok::<_, StediError>((adds, rejected, rows))
        });
    }
    let mut adds = Vec::new();
    let mut rejected = Quarantined::default();
    let mut rows = 0;
    for (a, r, n) in crate::workers::run_all(tasks).await? {
        adds.push(a);
        rejected.extend(r);
        rows += n;
    }
    let reasons = rejected.reasons();
    let erased_lines = rejected.erased_lines();
    let app = ledger::app_id(source);
    let quarantine_name = layout::quarantine().name;

    // Quarantine first: the landing commit is what marks the batch as done. A batch
    // without rejected lines writes no quarantine version (decoding it again on a resumed
    // run rejects nothing again).
    let already = delta::transaction_version(quarantine, &quarantine_name, &app).await?;
    if !rejected.is_empty() && already.unwrap_or(0) < batch {
        let quarantined = rejected.len() as u64;
        delta::append_batch(
            quarantine,
            &quarantine_name,
            rejected.into_batch(source),
            vec![Transaction::new(&app, batch)],
            commit_metadata(source, batch, quarantined),
        )
        .await?;
    }
    if stop == Some(StopAfter::Quarantine) {
        return Err(StediError::Interrupted);
    }
    delta::commit_append(
        landing,
        landing_name,
        StagedFiles::merge(source.landing_schema(), adds),
        vec![Transaction::new(&app, batch)],
        commit_metadata(source, batch, rows),
    )
    .await?;
    // The refused lines leave the raw files too, so that no copy of the person stays.
    if !erased_lines.is_empty() {
        crate::erase::remove_refused_lines(lakehouse, source, batch, &erased_lines).await?;
    }
    stage.finish(format!(
        "{rows} rows, {} quarantined",
        reasons.values().sum::<u64>()
    ));
    tracing::info!(
        %source,
        batch,
        files = files.len(),
        bytes = total,
        rows,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "ingested"
    );
    Ok(SourceIngest {
        files: files.len(),
        bytes: total,
        rows,
        quarantined: reasons,
    })
}

fn commit_metadata(source: Source, batch: i64, rows: u64) -> HashMap<String, serde_json::Value> {
    HashMap::from([(
        "stedi.ingest".to_string(),
        serde_json::json!({ "source": source.name(), "batch": batch, "rows": rows }),
    )])
}

/// Where a worker's decoded lines go: rows to its writer, rejected lines to quarantine,
/// and the tombstone check (when someone was erased).
struct Sink<'a> {
    writer: &'a mut FileWriter,
    rejected: &'a mut Quarantined,
    erased: Option<&'a mut TombstoneFilter>,
}

/// Streams one landed file through the decoder; returns the rows written.
async fn decode_file(
    store: &Arc<dyn object_store::ObjectStore>,
    source: Source,
    meta: &object_store::ObjectMeta,
    sink: Sink<'_>,
    stage: &Stage,
) -> Result<u64> {
    let Sink {
        writer,
        rejected,
        mut erased,
    } = sink;
    let file = meta.location.to_string();
    let mut decoder = Decoder::new(source, file.clone());
    let mut carry: Vec<u8> = Vec::new();
    let mut line_no = 0u64;
    let mut rows = 0u64;
    let flush = |decoder: &mut Decoder| decoder.finish();
    // Large reads: a stream of small chunks costs more than the decoding itself.
    let mut offset = 0u64;
    while offset < meta.size {
        let end = (offset + READ_CHUNK).min(meta.size);
        let chunk = store.get_range(&meta.location, offset..end).await?;
        offset = end;
        stage.inc(chunk.len() as u64);
        let Some(last_newline) = memchr::memrchr(b'\n', &chunk) else {
            carry.extend_from_slice(&chunk);
            continue;
        };
        let (mut complete, rest) = chunk.split_at(last_newline + 1);
        if !carry.is_empty() {
            // Finish the line cut at the end of the previous chunk, copying only it.
            let first = memchr::memchr(b'\n', complete).map_or(complete.len(), |i| i + 1);
            carry.extend_from_slice(&complete[..first]);
            decode_lines(
                &mut decoder,
                &carry,
                &mut line_no,
                &file,
                rejected,
                erased.as_deref_mut(),
            );
            carry.clear();
            complete = &complete[first..];
        }
        decode_lines(
            &mut decoder,
            complete,
            &mut line_no,
            &file,
            rejected,
            erased.as_deref_mut(),
        );
        carry.extend_from_slice(rest);
        if decoder.len() >= BATCH_ROWS {
            rows += decoder.len() as u64;
            let batch = flush(&mut decoder);
            writer
                .write(&batch)
                .await
                .map_err(|e| StediError::delta(source.landing_table(), e))?;
        }
    }
    if !carry.is_empty() {
        carry.push(b'\n');
        decode_lines(&mut decoder, &carry, &mut line_no, &file, rejected, erased);
    }
    rows += decoder.len() as u64;
    let batch = flush(&mut decoder);
    writer
        .write(&batch)
        .await
        .map_err(|e| StediError::delta(source.landing_table(), e))?;
    Ok(rows)
}

/// Decodes complete lines (`bytes` ends with a newline).
fn decode_lines(
    decoder: &mut Decoder,
    bytes: &[u8],
    line_no: &mut u64,
    file: &str,
    rejected: &mut Quarantined,
    erased: Option<&mut TombstoneFilter>,
) {
    let mut start = 0;
    match erased {
        None => {
            for end in memchr::memchr_iter(b'\n', bytes) {
                *line_no += 1;
                if let Err(r) = decoder.decode_line(&bytes[start..end], *line_no) {
                    rejected.push(file, r);
                }
                start = end + 1;
            }
        }
        Some(filter) => {
            let mut is_erased = |who: &str| filter.is_erased(who);
            for end in memchr::memchr_iter(b'\n', bytes) {
                *line_no += 1;
                let line = &bytes[start..end];
                if let Err(r) = decoder.decode_line_refusing(line, *line_no, &mut is_erased) {
                    rejected.push(file, r);
                }
                start = end + 1;
            }
        }
    }
}
