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
    #[error("the secret `{path}` is missing")]
    MissingSecret {
        /// Where it should be.
        path: String,
        /// Whether curated tables were built with it already (a new one would re-key them).
        tables_exist: bool,
    },
    /// A secret file that is not a secret stedi wrote.
    #[error("the secret `{path}` cannot be used: {reason}")]
    BadSecret {
        /// Where it is.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A secret file that users other than its owner can read.
    #[error("the secret `{path}` can be read by other users (mode {mode:o})")]
    InsecureSecret {
        /// Where it is.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The storage of the lakehouse cannot be used at all: no bucket, refused
    /// credentials, no network.
    #[error("cannot use `{location}`: {reason}")]
    StorageUnusable {
        /// The location as the user gave it.
        location: String,
        /// What is wrong, in words.
        reason: String,
        /// What to set or check.
        hint: String,
    },
    /// Another command holds the lakehouse's writer lease.
    #[error(
        "another {command} is writing this lakehouse (started {started}, by {by}); run again when it ends"
    )]
    Busy {
        /// The other command, e.g. `stedi run`.
        command: String,
        /// When it started (UTC).
        started: String,
        /// Who runs it: user, host and process.
        by: String,
        /// When its lease runs out if it stops renewing it (killed), UTC.
        expires: String,
    },
    /// This command lost its writer lease (it could not renew it in time, and another
    /// command may have taken it over), so it stopped before changing more.
    #[error("stopped: the lease on this lakehouse could not be renewed ({reason})")]
    LeaseLost {
        /// Why.
        reason: String,
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
    /// A command failed, and its row in the run history could not be written either: the
    /// command's own error is what the user sees, the history's below it.
    #[error("{error}")]
    Unrecorded {
        /// The command's error.
        error: Box<StediError>,
        /// Why the history could not be written.
        not_recorded: String,
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

/// An error with its causes, as one text: object stores keep the HTTP status and the
/// service's error code in the causes.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

/// What went wrong with a request to object storage (S3 or an S3-compatible store),
/// from the error's text: what happened and what to set or check. `None` when it is not
/// one of the known kinds.
pub fn explain_storage(text: &str) -> Option<(&'static str, String)> {
    let has = |needle: &str| text.contains(needle);
    let credentials = "set `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`, or `AWS_PROFILE` for a profile of `~/.aws/credentials` (for an S3-compatible store also `AWS_ENDPOINT_URL`)";
    if has("NoSuchBucket") {
        return Some((
            "the bucket does not exist",
            "create it first (`aws s3 mb s3://BUCKET`), or check its name, `AWS_REGION` and `AWS_ENDPOINT_URL`".into(),
        ));
    }
    if has("InvalidAccessKeyId") || has("SignatureDoesNotMatch") || has("Unauthenticated") {
        return Some((
            "the credentials were refused",
            format!("check them: {credentials}"),
        ));
    }
    if has("no credentials") || has("No credentials") || has("CredentialsNotLoaded") {
        return Some(("no AWS credentials were found", credentials.to_string()));
    }
    if has("AccessDenied") || has("403 Forbidden") || has("PermissionDenied") {
        return Some((
            "access was denied",
            "these credentials lack a permission on this bucket or prefix: stedi needs `s3:ListBucket` on the bucket and `s3:GetObject`, `s3:PutObject`, `s3:DeleteObject` and `s3:AbortMultipartUpload` under the lakehouse's prefix".into(),
        ));
    }
    if has("redirect without LOCATION") || has("PermanentRedirect") {
        return Some((
            "the bucket is in another region",
            "set `AWS_REGION` to the bucket's region".into(),
        ));
    }
    if has("dns error") || has("failed to lookup address") {
        return Some((
            "the storage's host name cannot be resolved",
            "check the network, and `AWS_ENDPOINT_URL` if you use an S3-compatible store".into(),
        ));
    }
    if has("tcp connect error")
        || has("Connection refused")
        || has("error sending request")
        || has("timed out")
    {
        return Some((
            "the storage cannot be reached",
            "check the network and `AWS_ENDPOINT_URL` (for a plain-http endpoint also `AWS_ALLOW_HTTP=true`); each request was retried before giving up (`AWS_MAX_ATTEMPTS`)".into(),
        ));
    }
    if has("SlowDown") || has("503 Service Unavailable") {
        return Some((
            "the storage is overloaded",
            "requests were retried with backoff (`AWS_MAX_ATTEMPTS`); run again later: no table was left half-written".into(),
        ));
    }
    None
}

/// The hint for a Delta error: a lost race for a commit, or a storage problem underneath.
fn delta_hint(source: &deltalake::DeltaTableError) -> Option<String> {
    let text = error_chain(source);
    if text.contains("Concurrent") || text.contains("conflict") {
        return Some(
            "another process committed to this table at the same time (one not holding stedi's lease, e.g. an older stedi); nothing was left half-written: run the command again".into(),
        );
    }
    explain_storage(&text).map(|(_, hint)| hint)
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
            StediError::MissingSecret { tables_exist: true, .. } => Some(
                "the curated tables were built with it, and a new one would give every customer a new key: restore it from your backup (or point `STEDI_SECRETS` at the folder that holds it); to re-key on purpose, run `stedi rotate-key`".into(),
            ),
            StediError::MissingSecret { .. } => Some(
                "restore it from your backup (or point `STEDI_SECRETS` at the folder that holds it); without it erased people cannot be recognized, so nothing is ingested".into(),
            ),
            StediError::BadSecret { .. } => Some(
                "restore the file from your backup; it holds 64 hex digits".into(),
            ),
            StediError::InsecureSecret { path, .. } => Some(format!(
                "a secret readable by others lets them link customer keys to addresses: `chmod 600 {path}` (and check who could read it)"
            )),
            StediError::StorageUnusable { hint, .. } => Some(hint.clone()),
            StediError::Unrecorded { error, .. } => error.hint(),
            StediError::Busy { expires, .. } => Some(format!(
                "one command at a time changes a lakehouse; if that one was killed, its lease runs out at {expires} and the next command carries on"
            )),
            StediError::LeaseLost { .. } => Some(
                "storage could not be reached for a while; what was committed is consistent, and running the command again carries on".into(),
            ),
            StediError::Storage { source } => {
                explain_storage(&error_chain(source)).map(|(_, hint)| hint)
            }
            StediError::Delta { source, .. } => delta_hint(source),
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

    /// The command's own error, seen through [`StediError::Unrecorded`].
    pub fn root(&self) -> &StediError {
        match self {
            StediError::Unrecorded { error, .. } => error.root(),
            other => other,
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

#[cfg(test)]
mod tests {
    use super::explain_storage;

    #[test]
    fn storage_errors_are_explained_with_what_to_set() {
        for (text, says, hint) in [
            (
                "Generic S3 error: Error performing list request: Server returned non-2xx status code: 404 Not Found: <Error><Code>NoSuchBucket</Code></Error>",
                "does not exist",
                "aws s3 mb",
            ),
            (
                "Error performing HEAD: 403 Forbidden: <Code>SignatureDoesNotMatch</Code>",
                "refused",
                "AWS_ACCESS_KEY_ID",
            ),
            (
                "Error performing PUT http://x/b/lh/landing/a.json: 403 Forbidden: <Code>AccessDenied</Code>",
                "denied",
                "s3:PutObject",
            ),
            (
                "HTTP error: error sending request: client error (Connect): tcp connect error: Connection refused (os error 111)",
                "cannot be reached",
                "AWS_ENDPOINT_URL",
            ),
            (
                "client error (Connect): dns error: failed to lookup address information",
                "host name",
                "network",
            ),
        ] {
            let (message, h) = explain_storage(text).unwrap();
            assert!(message.contains(says), "{message}");
            assert!(h.contains(hint), "{h}");
        }
        assert!(explain_storage("Object at location x not found").is_none());
    }
}
