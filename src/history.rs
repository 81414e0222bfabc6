//! The run history: one row per command that changed the lakehouse, in the Delta table
//! `_stedi/runs` (shown by `stedi history`, queryable as `runs` in `stedi sql`).
//!
//! Delta keeps the versions of every table, but not *why* a version exists: which command
//! wrote it, when, whether it finished. The history answers that, and gives the versions
//! to read with time travel (`"customer_trusted@3"` in `stedi sql`).
//!
//! What a command wrote is found by comparing the version of every table before and after
//! it, not by asking the command, so the history stays right whatever a command does
//! inside. A command is recorded when it ends, also when it fails or is stopped with
//! Ctrl-C; a process killed outright (SIGKILL, power loss) records nothing.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};

use crate::catalog;
use crate::delta;
use crate::error::{Result, StediError};
use crate::interrupt::Interrupt;
use crate::lakehouse::{Lakehouse, layout};

/// How a recorded command ended (the `outcome` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It finished.
    Ok,
    /// It stopped on an error (the `error` column says which).
    Failed,
    /// The user stopped it with Ctrl-C.
    Interrupted,
}

impl Outcome {
    /// The value stored in the `outcome` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Interrupted => "interrupted",
        }
    }

    /// The outcome of a command's result.
    pub fn of<T>(result: &Result<T>) -> Outcome {
        match result {
            Ok(_) => Outcome::Ok,
            Err(StediError::Interrupted) => Outcome::Interrupted,
            Err(_) => Outcome::Failed,
        }
    }
}

/// Schema of `_stedi/runs`.
pub fn schema() -> SchemaRef {
    let time = || DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("run_id", DataType::Utf8, false),
        Field::new("command", DataType::Utf8, false),
        Field::new("started_at", time(), false),
        Field::new("ended_at", time(), false),
        Field::new("outcome", DataType::Utf8, false),
        Field::new("error", DataType::Utf8, true),
        Field::new("files_ingested", DataType::Int64, false),
        Field::new("rows", DataType::Utf8, false),
        Field::new("versions", DataType::Utf8, false),
    ]))
}

/// What the lakehouse looked like at one moment: the version and rows of every table that
/// could be read, and the number of files in the ledger of ingested files.
struct State {
    tables: BTreeMap<String, (Option<i64>, Option<u64>)>,
    ledger_files: Option<u64>,
}

impl State {
    /// Reads every table on its own, so that one damaged table (often the very reason a
    /// command fails) does not hide what happened to the others.
    async fn read(lakehouse: &Lakehouse) -> State {
        // Read all at once: each is a few small reads of its log.
        let ids = catalog::tables().unwrap_or_default();
        let ledger_id = layout::ingested_files();
        let (rows, ledger) = futures::join!(
            futures::future::join_all(ids.iter().map(|id| catalog::table_row(lakehouse, id))),
            lakehouse.load_table(&ledger_id)
        );
        let tables = rows
            .into_iter()
            .flatten()
            .map(|row| (row.table, (row.version, row.rows)))
            .collect::<BTreeMap<_, _>>();
        let ledger_files = match ledger {
            Ok(Some(t)) => delta::row_count(&t),
            Ok(None) => Some(0),
            Err(_) => None,
        };
        State {
            tables,
            ledger_files,
        }
    }
}

/// Records one command in the run history.
///
/// Start it before the command touches the lakehouse and finish it with the command's
/// result: the row then says what the command changed (tables whose version moved, files
/// ingested), how it ended, and when. Every command that changes the lakehouse records
/// itself this way, so that `stedi history` is complete and time travel has versions to
/// point at. Most commands want [`record`], which also turns Ctrl-C into an `interrupted`
/// row.
///
/// ```no_run
/// # async fn forget(lakehouse: &stedi::lakehouse::Lakehouse) -> stedi::Result<()> {
/// let recorder = stedi::history::Recorder::start(lakehouse, "forget").await;
/// let result = async { /* change the lakehouse */ Ok(()) }.await;
/// recorder.finish(result).await
/// # }
/// ```
pub struct Recorder {
    lakehouse: Lakehouse,
    run_id: String,
    command: String,
    started_at: DateTime<Utc>,
    before: State,
}

impl Recorder {
    /// Notes the start time and the version of every table. `command` is what the row
    /// shows, e.g. `run` or `run --consent since-consent`: name the command and its
    /// options, never personal data (the history is kept for ever and is not erased).
    ///
    /// It cannot fail: a table that cannot be read is left out of the comparison.
    pub async fn start(lakehouse: &Lakehouse, command: &str) -> Recorder {
        let started_at = Utc::now();
        let before = State::read(lakehouse).await;
        Recorder {
            lakehouse: lakehouse.clone(),
            run_id: uuid::Uuid::new_v4().to_string(),
            command: command.to_string(),
            started_at,
            before,
        }
    }

    /// The id of the row this recorder writes (`run_id`).
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Writes the row for the command's `result` and hands the result back.
    ///
    /// The command's own error always wins: if it failed, the row says `failed` (or
    /// `interrupted`) and that error is returned even if the row could not be written (as
    /// [`StediError::Unrecorded`], which says so below it). If the command succeeded but the row could not be written, that
    /// is returned as [`StediError::NotRecorded`], because a history with holes would
    /// silently mislead whoever reads it.
    pub async fn finish<T>(self, result: Result<T>) -> Result<T> {
        let outcome = Outcome::of(&result);
        let error = result.as_ref().err().map(one_line);
        let command = self.command.clone();
        let written = self.write(outcome, error).await;
        match (result, written) {
            (Ok(value), Ok(())) => Ok(value),
            (Ok(_), Err(e)) => Err(StediError::NotRecorded {
                command,
                source: Box::new(e),
            }),
            (Err(e), Ok(())) => Err(e),
            (Err(e), Err(not_recorded)) => Err(StediError::Unrecorded {
                error: Box::new(e),
                not_recorded: one_line(&not_recorded),
            }),
        }
    }

    async fn write(self, outcome: Outcome, error: Option<String>) -> Result<()> {
        let after = State::read(&self.lakehouse).await;
        let ended_at = Utc::now();
        let mut rows = serde_json::Map::new();
        let mut versions = serde_json::Map::new();
        for (name, (version, count)) in &after.tables {
            let Some((before, _)) = self.before.tables.get(name) else {
                continue;
            };
            if let Some(version) = version
                && before != &Some(*version)
            {
                versions.insert(name.clone(), (*version).into());
                rows.insert(
                    name.clone(),
                    count.map_or(serde_json::Value::Null, Into::into),
                );
            }
        }
        let files_ingested = match (self.before.ledger_files, after.ledger_files) {
            (Some(b), Some(a)) => a.saturating_sub(b) as i64,
            _ => 0,
        };
        let micros = |t: DateTime<Utc>| t.timestamp_micros();
        let batch = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(StringArray::from(vec![self.run_id])),
                Arc::new(StringArray::from(vec![self.command])),
                Arc::new(
                    TimestampMicrosecondArray::from(vec![micros(self.started_at)])
                        .with_timezone("UTC"),
                ),
                Arc::new(
                    TimestampMicrosecondArray::from(vec![micros(ended_at)]).with_timezone("UTC"),
                ),
                Arc::new(StringArray::from(vec![outcome.as_str()])),
                Arc::new(StringArray::from(vec![error])),
                Arc::new(Int64Array::from(vec![files_ingested])),
                Arc::new(StringArray::from(vec![
                    serde_json::Value::Object(rows).to_string(),
                ])),
                Arc::new(StringArray::from(vec![
                    serde_json::Value::Object(versions).to_string(),
                ])),
            ],
        )
        .map_err(|e| StediError::Output(e.to_string()))?;
        let id = layout::runs();
        let mut table = delta::ensure_table(&self.lakehouse, &id, &schema()).await?;
        delta::append_batch(&mut table, &id.name, batch, Vec::new(), HashMap::new()).await?;
        Ok(())
    }
}

/// Runs `work` as a recorded command: starts a [`Recorder`], stops the work when the user
/// presses Ctrl-C (the row then says `interrupted` and [`StediError::Interrupted`] is
/// returned), and finishes the row with the result. This is the one call a command that
/// changes the lakehouse needs; `interrupt` is the one `commands::run` hands every command.
///
/// ```no_run
/// # async fn forget(
/// #     lakehouse: &stedi::lakehouse::Lakehouse,
/// #     interrupt: &stedi::interrupt::Interrupt,
/// # ) -> stedi::Result<()> {
/// stedi::history::record(lakehouse, "forget", interrupt, async {
///     // change the lakehouse
///     Ok(())
/// })
/// .await
/// # }
/// ```
pub async fn record<T>(
    lakehouse: &Lakehouse,
    command: &str,
    interrupt: &Interrupt,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    // Ctrl-C is handled here, so that the row is written before the command ends.
    let _recording = interrupt.recording();
    let recorder = Recorder::start(lakehouse, command).await;
    let result = interrupt.stop(work).await;
    recorder.finish(result).await
}

/// An error as the one line `error:` shows.
fn one_line(e: &StediError) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}
