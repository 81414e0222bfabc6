//! Every failure a user can see, with the hint that tells them what to do next.
//!
//! Each stage reports its own precise variant; `main` prints the message, then the
//! causes, then the hint, and exits non-zero. A user mistake never panics.

use std::path::PathBuf;

/// Errors of every stedi command.
#[derive(Debug, thiserror::Error)]
pub enum StediError {
    /// The lakehouse location does not hold a lakehouse yet.
    #[error("no lakehouse at `{location}`")]
    NoLakehouse {
        /// The location as the user gave it.
        location: String,
    },
    /// The lakehouse location cannot be understood or opened.
    #[error("cannot use `{location}` as a lakehouse: {reason}")]
    BadLocation {
        /// The location as the user gave it.
        location: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// A file the user named cannot be read.
    #[error("cannot read `{path}`: {source}")]
    ReadInput {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A folder or file cannot be written.
    #[error("cannot write to `{path}`: {reason}")]
    Unwritable {
        /// Where the write failed.
        path: String,
        /// The cause.
        reason: String,
    },
    /// A file with the same name but other content was landed before.
    #[error("`{name}` is already landed in `landing/{source_name}/` with different content")]
    LandConflict {
        /// The source feed.
        source_name: String,
        /// The file name.
        name: String,
    },
    /// `stedi run` found nothing landed at all.
    #[error("nothing is landed in `{location}`")]
    NothingLanded {
        /// The lakehouse location.
        location: String,
    },
    /// A query could not be planned or run.
    #[error("{message}")]
    Query {
        /// DataFusion's message, cleaned up.
        message: String,
        /// A hint that depends on what went wrong.
        hint: Option<String>,
    },
    /// A transformation model failed.
    #[error("model `{model}` failed: {message}")]
    Model {
        /// The model (table) name.
        model: String,
        /// What went wrong.
        message: String,
    },
    /// The model files refer to each other in a cycle or to unknown tables.
    #[error("{0}")]
    Dag(String),
    /// A Delta table could not be read or written.
    #[error("table `{table}`: {source}")]
    Delta {
        /// The table name.
        table: String,
        /// The cause.
        #[source]
        source: deltalake::DeltaTableError,
    },
    /// Object storage failed.
    #[error("storage: {source}")]
    Storage {
        /// The cause.
        #[from]
        source: object_store::Error,
    },
    /// Query engine failure outside a model.
    #[error("query engine: {source}")]
    Engine {
        /// The cause.
        #[from]
        source: datafusion::error::DataFusionError,
    },
    /// Generating a synthetic landing set failed.
    #[error(transparent)]
    Generate(Box<dyn std::error::Error + Send + Sync>),
    /// The run was stopped by the user.
    #[error("interrupted")]
    Interrupted,
    /// The command was stopped because its process made no progress (used no CPU time)
    /// for this long: a query deadlocked (see `interrupt::stall`).
    #[error("stopped after {minutes} minutes without progress: the process used no CPU time")]
    Stalled {
        /// How long nothing happened.
        minutes: u64,
    },
    /// An output could not be written to stdout.
    #[error("cannot write output: {0}")]
    Output(String),
    /// `stedi forget` was given something that is not an e-mail address.
    #[error("cannot forget this address: {reason}")]
    BadAddress {
        /// What is wrong with it.
        reason: String,
    },
    /// A secret the lakehouse needs is missing.
    #[error("`{path}` is missing")]
    MissingSecret {
        /// Its path within the lakehouse.
        path: String,
    },
    /// After an erasure the address was still found on storage.
    #[error("the erased address is still found in {} place(s): {}", locations.len(), locations.join(", "))]
    ErasureIncomplete {
        /// Where the receipt is stored.
        receipt: String,
        /// Where the address was found.
        locations: Vec<String>,
    },
    /// A file is landed again under a name whose landed file an erasure rewrote, and it is
    /// not the file that was landed then.
    #[error(
        "`{name}` is already landed in `landing/{source_name}/`, rewritten by an erasure (`stedi forget`), and this file is not the one landed then"
    )]
    LandErased {
        /// The source feed.
        source_name: String,
        /// The file name.
        name: String,
    },
    /// A landing table was written by an earlier version of stedi, with other columns.
    #[error(
        "`{table}` was written by an earlier version of stedi: it has the columns {found}, this version writes {expected}"
    )]
    OutdatedTable {
        /// The table.
        table: String,
        /// Its columns.
        found: String,
        /// The columns this version writes.
        expected: String,
    },
    /// A command finished, but its row in the run history could not be written.
    #[error("`{command}` finished, but could not be recorded in the run history: {source}")]
    NotRecorded {
        /// The command, as the history would have shown it.
        command: String,
        /// Why the row could not be written.
        #[source]
        source: Box<StediError>,
    },
}

/// What to do when nothing is landed yet (an error's hint, or a note of `stedi run`).
pub const LAND_FIRST: &str =
    "land files first: `stedi land customer customers.json`, or try `stedi demo`";

/// Shorthand used across the crate.
pub type Result<T, E = StediError> = std::result::Result<T, E>;

impl StediError {
    /// What the user can do about it, shown as `hint:` under the error.
    pub fn hint(&self) -> Option<String> {
        match self {
            StediError::NoLakehouse { .. } => Some(
                "land files with `stedi land SOURCE FILE...` or try `stedi demo`; pass `--lakehouse` (or set `STEDI_LAKEHOUSE`) to use another location".into(),
            ),
            StediError::BadLocation { .. } => Some(
                "use a local folder, `file:///path` or `s3://bucket/prefix`".into(),
            ),
            StediError::ReadInput { .. } => Some("check the path and that you may read it".into()),
            StediError::Unwritable { .. } => Some(
                "choose a folder you can write to with `--lakehouse`, or fix its permissions".into(),
            ),
            StediError::LandConflict { .. } => Some(
                "landed files are immutable; give the new file a new name and land it again".into(),
            ),
            StediError::NothingLanded { .. } => Some(LAND_FIRST.into()),
            StediError::Query { hint, .. } => hint.clone(),
            StediError::Model { .. } => Some(
                "the model's SQL is in `sql/`; this table keeps its previous version, and the next `stedi run` carries on from it".into(),
            ),
            StediError::BadAddress { .. } => Some(
                "give the person's e-mail address, e.g. `stedi forget --email ann.lee@example.com`".into(),
            ),
            StediError::MissingSecret { .. } => Some(
                "restore it from the lakehouse's backup; without it erased people cannot be recognized, so nothing is ingested".into(),
            ),
            StediError::ErasureIncomplete { receipt, .. } => Some(format!(
                "the receipt is in `{receipt}`; these objects were not written by this version of stedi (copied in by hand, or Delta logs from an older version that kept statistics of personal columns): remove them, then run `stedi forget` again"
            )),
            StediError::LandErased { .. } => Some(
                "`stedi forget` removed an erased person's lines from the landed file; the file landed again is neither the original nor the rewritten one. Give new records a new file name; records of erased people are refused at ingest".into(),
            ),
            StediError::OutdatedTable { .. } => Some(
                "the raw files are kept in `landing/<source>/`: make a new lakehouse, land them into it (`stedi land SOURCE FILE...`) and run `stedi run` there".into(),
            ),
            StediError::Stalled { .. } => Some(
                "queries can deadlock when they spill to disk under memory pressure; give them more memory and run again, e.g. `STEDI_MEMORY_LIMIT=4G stedi run`: no table was left half-written, and the next run carries on".into(),
            ),
            StediError::Interrupted => Some(
                "no table was left half-written; run `stedi run` again to carry on".into(),
            ),
            StediError::NotRecorded { .. } => Some(
                "the command's changes are in place, but `stedi history` will not show it; check that `_stedi/runs/` in the lakehouse can be written".into(),
            ),
            _ => None,
        }
    }

    /// Wraps a Delta error with the table it concerns.
    pub fn delta(table: impl Into<String>, source: deltalake::DeltaTableError) -> Self {
        StediError::Delta {
            table: table.into(),
            source,
        }
    }
}
