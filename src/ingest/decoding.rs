//! Decoding every batch's landed files with one worker per core: a worker takes the
//! next piece of a file, decodes it, and hands its rows to a writer task of its own, so
//! that decoding and Parquet encoding overlap.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::RecordBatch;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::Batch;
use super::decode::Decoder;
use super::pieces::Pieces;
use super::quarantine::Quarantined;
use super::text::PieceReader;
use crate::delta::FileWriter;
use crate::error::{Result, StediError};
use crate::feed::Source;
use crate::forgotten::tombstone::{TombstoneFilter, Tombstones};
use crate::lakehouse::Lakehouse;
use crate::progress::Stage;

/// Rows per landing batch handed to the Parquet writer.
const BATCH_ROWS: usize = 32 * 1024;

/// What the workers made of one batch.
#[derive(Default)]
pub(super) struct Decoded {
    pub adds: Vec<Vec<deltalake::kernel::Add>>,
    pub rejected: Quarantined,
    pub rows: u64,
}

/// Decodes the files of every batch with one worker per core. A worker takes the next
/// piece of a file (see [`Pieces`]; batches in order), decodes it, and hands its rows to
/// a writer task of its own for that batch, so that decoding and Parquet encoding
/// overlap. A worker has one batch's writer open at a time.
pub(super) async fn decode_batches(
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

/// Where a worker's decoded lines go: rows to its writer task, rejected lines to
/// quarantine, and the tombstone check (when someone was erased).
struct Sink<'a> {
    rows: &'a mpsc::Sender<RecordBatch>,
    rejected: &'a mut Quarantined,
    erased: Option<&'a mut TombstoneFilter>,
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
    use super::super::decode;
    use super::super::pieces::Piece;
    use super::super::text::TAIL_READ;
    use super::*;
    use crate::progress::Progress;
    use arrow::array::AsArray;
    use arrow::datatypes::Int64Type;
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;
    use object_store::path::Path;

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
