//! Ingest: every landed file not ingested before → typed landing tables and quarantine.
//!
//! Per source, new files form a batch, registered in the ledger first. The files of all
//! batches are then decoded by one pool of workers (one per core, each taking the next
//! piece of a file, large files being cut into several, and handing rows to a writer
//! task of its own), and each batch is published by
//! one quarantine commit and one landing commit, both marked with the batch number. A run
//! killed anywhere resumes the half-done batches exactly.

pub mod decode;
pub mod feed;
pub mod ledger;
pub mod quarantine;
mod scan;
mod text;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::RecordBatch;
use deltalake::DeltaTable;
use deltalake::kernel::Transaction;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

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
use text::PieceReader;

/// Rows per landing batch handed to the Parquet writer.
const BATCH_ROWS: usize = 32 * 1024;

/// The most bytes of a landed file one worker decodes in one go (a piece of the file).
const MAX_PIECE: u64 = 16 * 1024 * 1024;

/// The fewest: below this, splitting a file costs more than it spreads.
const MIN_PIECE: u64 = 1024 * 1024;

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

/// What the workers made of one batch.
#[derive(Default)]
struct Decoded {
    adds: Vec<Vec<deltalake::kernel::Add>>,
    rejected: Quarantined,
    rows: u64,
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
        decode_batches(lakehouse, batches.clone(), tombstones),
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
        let part = publish(
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

/// Decodes the files of every batch with one worker per core. A worker takes the next
/// piece of a file (see [`Pieces`]; batches in order), decodes it, and hands its rows to
/// a writer task of its own for that batch, so that decoding and Parquet encoding
/// overlap. A worker has one batch's writer open at a time.
async fn decode_batches(
    lakehouse: &Lakehouse,
    batches: Arc<Vec<Batch>>,
    tombstones: Option<Arc<Tombstones>>,
) -> Result<Vec<Decoded>> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let sizes: Vec<Vec<u64>> = batches
        .iter()
        .map(|b| b.files.iter().map(|f| f.size).collect())
        .collect();
    let pieces = Arc::new(Pieces::plan(&sizes, workers));
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(workers);
    for _ in 0..workers.min(pieces.list.len()) {
        let (next, pieces, batches) = (next.clone(), pieces.clone(), batches.clone());
        let mut reader = PieceReader::new(lakehouse.store().clone());
        // One cache of checked addresses per worker.
        let mut erased = tombstones.clone().map(TombstoneFilter::new);
        tasks.push(async move {
            // This worker's part of each batch.
            let mut decoded: Vec<Decoded> = batches.iter().map(|_| Decoded::default()).collect();
            // Aborted with the worker: no writer keeps going behind a failed run.
            let mut writers: JoinSet<Result<(usize, Vec<deltalake::kernel::Add>)>> = JoinSet::new();
            let mut current: Option<(usize, mpsc::Sender<RecordBatch>)> = None;
            let decoding = async {
                loop {
                    let at = next.fetch_add(1, Ordering::Relaxed);
                    let Some(piece) = pieces.list.get(at) else {
                        break;
                    };
                    // The piece this worker will likely take after this one, while the
                    // others decode theirs.
                    if let Some(ahead) = pieces.list.get(at + workers) {
                        let file = &batches[ahead.batch].files[ahead.file];
                        reader.prefetch(file, ahead.start..ahead.end).await;
                    }
                    let b = piece.batch;
                    let batch = &batches[b];
                    let rows_out = match &mut current {
                        Some((open, tx)) if *open == b => tx,
                        _ => {
                            // Replacing the sender lets the previous batch's writer finish.
                            let (tx, rx) = mpsc::channel(2);
                            let writer =
                                FileWriter::new(&batch.landing, batch.source.landing_schema())
                                    .map_err(|e| {
                                        StediError::delta(batch.source.landing_table(), e)
                                    })?;
                            writers.spawn(write_all(b, rx, writer, batch.source));
                            &mut current.insert((b, tx)).1
                        }
                    };
                    let sink = Sink {
                        rows: rows_out,
                        rejected: &mut decoded[b].rejected,
                        erased: erased.as_mut(),
                    };
                    let meta = &batch.files[piece.file];
                    decoded[b].rows += decode_piece(
                        &mut reader,
                        batch.source,
                        meta,
                        &pieces,
                        at,
                        sink,
                        &batch.stage,
                    )
                    .await?;
                }
                Ok::<_, StediError>(())
            };
            let decoding = decoding.await;
            drop(current);
            while let Some(joined) = writers.join_next().await {
                let (b, adds) = joined.map_err(|e| StediError::Output(e.to_string()))??;
                decoded[b].adds.push(adds);
            }
            // A writer's failure is the cause of a decoder's failed hand-over.
            decoding?;
            Ok::<_, StediError>(decoded)
        });
    }
    let mut all: Vec<Decoded> = batches.iter().map(|_| Decoded::default()).collect();
    for parts in crate::workers::run_all(tasks).await? {
        for (into, part) in all.iter_mut().zip(parts) {
            into.adds.extend(part.adds);
            into.rejected.extend(part.rejected);
            into.rows += part.rows;
        }
    }
    Ok(all)
}

/// Writes the rows a decoder hands over into one batch's data files.
async fn write_all(
    batch: usize,
    mut rows: mpsc::Receiver<RecordBatch>,
    mut writer: FileWriter,
    source: Source,
) -> Result<(usize, Vec<deltalake::kernel::Add>)> {
    let landing_name = source.landing_table();
    while let Some(next) = rows.recv().await {
        writer
            .write(&next)
            .await
            .map_err(|e| StediError::delta(landing_name, e))?;
    }
    let adds = writer
        .close()
        .await
        .map_err(|e| StediError::delta(landing_name, e))?;
    Ok((batch, adds))
}

/// Publishes one decoded batch: quarantine commit, then landing commit.
async fn publish(
    lakehouse: &Lakehouse,
    batch: &Batch,
    decoded: Decoded,
    landing: &mut DeltaTable,
    quarantine: &mut DeltaTable,
    stop: Option<StopAfter>,
) -> Result<SourceIngest> {
    let Decoded {
        adds,
        rejected,
        rows,
    } = decoded;
    let source = batch.source;
    let reasons = rejected.reasons();
    let erased_lines = rejected.erased_lines();
    let app = ledger::app_id(source);
    let quarantine_name = layout::quarantine().name;

    // Quarantine first: the landing commit is what marks the batch as done. A batch
    // without rejected lines writes no quarantine version (decoding it again on a resumed
    // run rejects nothing again).
    let already = delta::transaction_version(quarantine, &quarantine_name, &app).await?;
    if !rejected.is_empty() && already.unwrap_or(0) < batch.number {
        let quarantined = rejected.len() as u64;
        delta::append_batch(
            quarantine,
            &quarantine_name,
            rejected.into_batch(source),
            vec![Transaction::new(&app, batch.number)],
            commit_metadata(source, batch.number, quarantined),
        )
        .await?;
    }
    if stop == Some(StopAfter::Quarantine) {
        return Err(StediError::Interrupted);
    }
    delta::commit_append(
        landing,
        source.landing_table(),
        StagedFiles::merge(source.landing_schema(), adds),
        vec![Transaction::new(&app, batch.number)],
        commit_metadata(source, batch.number, rows),
    )
    .await?;
    // The refused lines leave the raw files too, so that no copy of the person stays.
    if !erased_lines.is_empty() {
        crate::erase::remove_refused_lines(lakehouse, source, batch.number, &erased_lines).await?;
    }
    batch.stage.finish(format!(
        "{rows} rows, {} quarantined",
        reasons.values().sum::<u64>()
    ));
    Ok(SourceIngest {
        files: batch.files.len(),
        bytes: batch.files.iter().map(|f| f.size).sum(),
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

/// Where a worker's decoded lines go: rows to its writer task, rejected lines to
/// quarantine, and the tombstone check (when someone was erased).
struct Sink<'a> {
    rows: &'a mpsc::Sender<RecordBatch>,
    rejected: &'a mut Quarantined,
    erased: Option<&'a mut TombstoneFilter>,
}

/// A piece of a landed file: the lines that start within `start..end` of it.
struct Piece {
    batch: usize,
    file: usize,
    /// Its place among the pieces of its file.
    index: usize,
    start: u64,
    end: u64,
}

impl Piece {
    /// File `file` of batch `batch` (of `file_size` bytes) cut into pieces of at most
    /// `size` bytes, as even as can be; one empty piece for an empty file.
    fn cut(batch: usize, file: usize, file_size: u64, size: u64) -> impl Iterator<Item = Piece> {
        let n = file_size.div_ceil(size).max(1);
        let step = file_size.div_ceil(n);
        (0..n as usize).map(move |index| Piece {
            batch,
            file,
            index,
            start: (index as u64 * step).min(file_size),
            end: ((index as u64 + 1) * step).min(file_size),
        })
    }
}

/// The pieces every landed file is decoded in, in order (batches, then files, then
/// position), and the line count of each piece once it is known.
///
/// Large files are split so that a few big files (or a single one) keep every core
/// busy. A piece's first line number depends on the pieces before it in its file: each
/// worker counts its piece's lines as soon as it has read it, before it waits for the
/// counts it needs, so pieces taken in order never wait on one that is not under way.
struct Pieces {
    list: Vec<Piece>,
    /// Per piece of `list`: its number of lines, once counted.
    lines: Vec<tokio::sync::watch::Sender<Option<u64>>>,
}

impl Pieces {
    /// Pieces for files of the given sizes (per batch, per file), for `workers` workers.
    fn plan(sizes: &[Vec<u64>], workers: usize) -> Pieces {
        let total: u64 = sizes.iter().flatten().sum();
        // A few pieces per worker, so that the last ones even out.
        let size = (total / (workers as u64 * 4).max(1)).clamp(MIN_PIECE, MAX_PIECE);
        let mut list = Vec::new();
        for (b, batch) in sizes.iter().enumerate() {
            for (f, &file_size) in batch.iter().enumerate() {
                list.extend(Piece::cut(b, f, file_size, size));
            }
        }
        Pieces::of(list)
    }

    /// `list` (each file's pieces one after another, in order) with nothing counted yet.
    fn of(list: Vec<Piece>) -> Pieces {
        let lines = list
            .iter()
            .map(|_| tokio::sync::watch::Sender::new(None))
            .collect();
        Pieces { list, lines }
    }

    /// Records how many lines piece `at` holds.
    fn counted(&self, at: usize, lines: u64) {
        self.lines[at].send_replace(Some(lines));
    }

    /// The lines of the file before piece `at`, once every earlier piece of it is
    /// counted (they are the `index` pieces just before it in the list).
    async fn lines_before(&self, at: usize) -> u64 {
        let mut before = 0;
        for count in &self.lines[at - self.list[at].index..at] {
            let mut count = count.subscribe();
            // The sender lives as long as `self`, so waiting cannot fail.
            if let Ok(lines) = count.wait_for(Option::is_some).await {
                before += lines.unwrap_or(0);
            }
        }
        before
    }
}

/// Reads the lines of piece `at` of a landed file and streams them through the decoder,
/// handing rows over [`BATCH_ROWS`] at a time; returns the rows decoded.
async fn decode_piece(
    reader: &mut PieceReader,
    source: Source,
    meta: &object_store::ObjectMeta,
    pieces: &Pieces,
    at: usize,
    sink: Sink<'_>,
    stage: &Stage,
) -> Result<u64> {
    let Sink {
        rows: out,
        rejected,
        mut erased,
    } = sink;
    let piece = &pieces.list[at];
    let text = reader.lines(meta, piece.start, piece.end).await?;
    stage.inc(piece.end - piece.start);
    pieces.counted(at, memchr::memchr_iter(b'\n', text).count() as u64);
    let mut line_no = pieces.lines_before(at).await;

    let file = meta.location.to_string();
    let mut decoder = Decoder::new(source, file.clone());
    let mut rows = 0u64;
    let mut complete = text;
    while !complete.is_empty() {
        let used = decode_lines(
            &mut decoder,
            complete,
            &mut line_no,
            &file,
            rejected,
            erased.as_deref_mut(),
        );
        complete = &complete[used..];
        if decoder.len() >= BATCH_ROWS {
            rows += decoder.len() as u64;
            hand_over(out, source, decoder.finish()).await?;
        }
    }
    if !decoder.is_empty() {
        rows += decoder.len() as u64;
        hand_over(out, source, decoder.finish()).await?;
    }
    Ok(rows)
}

/// Sends a batch of rows to the writer of its landing table.
async fn hand_over(
    out: &mpsc::Sender<RecordBatch>,
    source: Source,
    batch: RecordBatch,
) -> Result<()> {
    out.send(batch).await.map_err(|_| {
        StediError::Output(format!("the writer of {} stopped", source.landing_table()))
    })
}

/// Decodes complete lines (`bytes` ends with a newline) until [`BATCH_ROWS`] rows are
/// waiting, refusing the records of erased people; returns the bytes consumed.
fn decode_lines(
    decoder: &mut Decoder,
    bytes: &[u8],
    line_no: &mut u64,
    file: &str,
    rejected: &mut Quarantined,
    mut erased: Option<&mut TombstoneFilter>,
) -> usize {
    let mut is_erased = |who: &str| erased.as_mut().is_some_and(|f| f.is_erased(who));
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', bytes) {
        *line_no += 1;
        if let Err(r) = decoder.decode_line_refusing(&bytes[start..end], *line_no, &mut is_erased) {
            rejected.push(file, r);
        }
        start = end + 1;
        if decoder.len() >= BATCH_ROWS {
            break;
        }
    }
    start
}

#[cfg(test)]
mod tests {
    use super::text::TAIL_READ;
    use super::*;
    use arrow::array::AsArray;
    use arrow::datatypes::Int64Type;
    use object_store::memory::InMemory;

    /// One file cut into pieces of at most `size` bytes.
    fn cut(file_size: u64, size: u64) -> Pieces {
        Pieces::of(Piece::cut(0, 0, file_size, size).collect())
    }

    /// Decodes every piece at once, the last first, and gives each decoded row as
    /// (line, user) and each rejected line as (line, reason).
    async fn decode(
        store: &Arc<dyn object_store::ObjectStore>,
        meta: &object_store::ObjectMeta,
        pieces: &Pieces,
    ) -> (Vec<(i64, String)>, Vec<(u64, &'static str)>) {
        let stage = Progress::hidden().bytes("test", meta.size);
        let work = (0..pieces.list.len()).rev().map(|at| {
            let stage = &stage;
            async move {
                let (tx, mut rx) = mpsc::channel(1024);
                let mut rejected = Quarantined::default();
                let sink = Sink {
                    rows: &tx,
                    rejected: &mut rejected,
                    erased: None,
                };
                let source = Source::Accelerometer;
                let mut reader = PieceReader::new(store.clone());
                decode_piece(&mut reader, source, meta, pieces, at, sink, stage)
                    .await
                    .unwrap();
                drop(tx);
                let mut rows = Vec::new();
                while let Some(batch) = rx.recv().await {
                    let lines = batch.column_by_name("_line").unwrap();
                    let users = batch.column_by_name("user").unwrap().as_string::<i32>();
                    for (line, user) in lines.as_primitive::<Int64Type>().iter().zip(users) {
                        rows.push((line.unwrap(), user.unwrap().to_string()));
                    }
                }
                (rows, rejected)
            }
        });
        let (mut rows, mut rejected) = (Vec::new(), Vec::new());
        for (r, q) in futures::future::join_all(work).await {
            rows.extend(r);
            let batch = q.into_batch(Source::Accelerometer);
            let lines = batch.column(2).as_primitive::<Int64Type>();
            let reasons = batch.column(3).as_string::<i32>();
            for (line, reason) in lines.iter().zip(reasons) {
                let code = [
                    decode::Reason::MalformedJson,
                    decode::Reason::MissingField,
                    decode::Reason::WrongType,
                ]
                .into_iter()
                .find(|r| Some(r.code()) == reason)
                .unwrap()
                .code();
                rejected.push((line.unwrap() as u64, code));
            }
        }
        rows.sort();
        rejected.sort();
        (rows, rejected)
    }

    /// Each file's pieces follow one another from its first byte to its last, none larger
    /// than a worker should hold; one large file is cut for every worker to share, many
    /// small ones are not cut at all.
    #[test]
    fn pieces_cover_each_file_exactly_and_spread_a_large_one() {
        const MIB: u64 = 1024 * 1024;
        let cases = [
            vec![vec![8 * MIB], vec![300 * 1024, 0], vec![3 * MIB]],
            vec![vec![400 * MIB]],
            vec![(0..100).map(|_| 8 * MIB).collect()],
            vec![vec![0]],
        ];
        for sizes in cases {
            let pieces = Pieces::plan(&sizes, 2);
            for (b, files) in sizes.iter().enumerate() {
                for (f, &size) in files.iter().enumerate() {
                    let mine: Vec<&Piece> = pieces
                        .list
                        .iter()
                        .filter(|p| p.batch == b && p.file == f)
                        .collect();
                    assert!(!mine.is_empty());
                    let mut at = 0;
                    for (i, p) in mine.iter().enumerate() {
                        assert_eq!((p.index, p.start), (i, at), "{sizes:?}");
                        assert!(p.end - p.start <= MAX_PIECE);
                        at = p.end;
                    }
                    assert_eq!(at, size);
                }
            }
            // In order: batches, files, then position.
            let order: Vec<_> = pieces
                .list
                .iter()
                .map(|p| (p.batch, p.file, p.index))
                .collect();
            assert!(order.windows(2).all(|w| w[0] < w[1]));
        }
        // One big file alone: several pieces per worker; a hundred files: none cut.
        assert!(Pieces::plan(&[vec![8 * MIB]], 2).list.len() >= 4);
        assert_eq!(
            Pieces::plan(&[(0..100).map(|_| 8 * MIB).collect()], 2)
                .list
                .len(),
            100
        );
    }

    /// A line longer than several reads past a piece's end is read whole, once.
    #[tokio::test]
    async fn a_line_longer_than_the_reads_past_a_piece_is_read_whole() {
        let long_user = "u".repeat(3 * TAIL_READ as usize);
        let line =
            |user: &str| format!(r#"{{"user":"{user}","timestamp":1,"x":1.0,"y":2.0,"z":3.0}}"#);
        let text = [line("a@x"), line(&long_user), line("b@x")].join("\n") + "\n";
        let store: Arc<dyn object_store::ObjectStore> = Arc::new(InMemory::new());
        let path = Path::from("landing/accelerometer/long.json");
        store.put(&path, text.into()).await.unwrap();
        let meta = store.head(&path).await.unwrap();
        let (rows, rejected) = decode(&store, &meta, &cut(meta.size, TAIL_READ / 2)).await;
        let expected: Vec<(i64, String)> =
            vec![(1, "a@x".into()), (2, long_user), (3, "b@x".into())];
        assert_eq!(rows, expected);
        assert!(rejected.is_empty());
    }

    /// Wherever a file is cut, every line is decoded once, with its own line number:
    /// short and long lines, blank and malformed ones, and a last line without newline.
    #[tokio::test]
    async fn a_file_cut_into_pieces_anywhere_decodes_as_a_whole() {
        let reading =
            |user: &str| format!(r#"{{"user":"{user}","timestamp":1,"x":1.0,"y":2.0,"z":3.0}}"#);
        let long_user = "l".repeat(300);
        let lines = [
            reading("a@x"),
            String::new(),
            reading("b@x"),
            "{not json".to_string(),
            reading(&long_user),
            "   ".to_string(),
            r#"{"user":"c@x","timestamp":"soon","x":1,"y":1,"z":1}"#.to_string(),
            reading("d@x"),
            reading("e@x"), // no newline after the last line
        ];
        let text = lines.join("\n");
        let store: Arc<dyn object_store::ObjectStore> = Arc::new(InMemory::new());
        let path = Path::from("landing/accelerometer/f.json");
        store.put(&path, text.clone().into()).await.unwrap();
        let meta = store.head(&path).await.unwrap();
        let expected_rows: Vec<(i64, String)> = vec![
            (1, "a@x".into()),
            (3, "b@x".into()),
            (5, long_user.clone()),
            (8, "d@x".into()),
            (9, "e@x".into()),
        ];
        let expected_rejected = vec![(4, "malformed_json"), (7, "wrong_type")];
        for size in [1, 2, 3, 5, 8, 13, 40, 64, 100, 333, text.len() as u64] {
            let pieces = cut(meta.size, size);
            let (rows, rejected) = decode(&store, &meta, &pieces).await;
            assert_eq!(rows, expected_rows, "pieces of {size} bytes");
            assert_eq!(rejected, expected_rejected, "pieces of {size} bytes");
        }
        // With a final newline, the last line is the same line.
        store.put(&path, format!("{text}\n").into()).await.unwrap();
        let meta = store.head(&path).await.unwrap();
        let (rows, _) = decode(&store, &meta, &cut(meta.size, 7)).await;
        assert_eq!(rows, expected_rows);
    }
}
