//! The build record of a table: what it was built from, kept in the metadata of the
//! commits that wrote it (keys `stedi.*`), so that a run knows whether a table is up to
//! date without reading it.
//!
//! - `stedi.fingerprint`: a digest of the models, the consent policy and the key secret.
//!   A table whose fingerprint differs from the run's is rebuilt in full.
//! - `stedi.watermark`: which ingested batches of each source the table reflects (see
//!   [`Watermark`]); the files ingested after it are what an incremental run works on.
//! - `stedi.consent`: the consent policy, which later runs keep unless told otherwise.

use std::collections::{BTreeMap, HashMap};

use deltalake::DeltaTable;
use futures::TryStreamExt;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{Result, StediError};
use crate::feed::Source;
use crate::ingest::ledger::Ledger;
use crate::models::ConsentPolicy;
use crate::models::dag::Node;

/// Prefix of the commit metadata in which stedi records how a table was built.
pub const BUILD_RECORD_PREFIX: &str = "stedi.";

/// Key under which a commit records what it was built from (models, policy, secret).
pub const FINGERPRINT_KEY: &str = "stedi.fingerprint";

/// Commit metadata: which ingested batches a table reflects.
pub const WATERMARK_KEY: &str = "stedi.watermark";
/// Commit metadata: the consent policy a table was built with.
pub const CONSENT_KEY: &str = "stedi.consent";

/// Which ingested batches a table reflects: for each source, the newest batch number.
///
/// Batches come from the ledger of ingested files, so a watermark names exactly which
/// landed files were already taken into account, and the files after it are the news.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Watermark(BTreeMap<String, i64>);

impl Watermark {
    /// The watermark of everything ingested so far.
    pub fn current(ledger: &Ledger) -> Watermark {
        Watermark(
            Source::ALL
                .iter()
                .map(|s| {
                    (
                        s.name().to_string(),
                        ledger.last_batch(*s).map_or(0, |b| b.0),
                    )
                })
                .collect(),
        )
    }

    /// As recorded in a commit.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::from(*v)))
                .collect(),
        )
    }

    /// Reads a recorded watermark; `None` when it is not one.
    pub fn from_json(value: &serde_json::Value) -> Option<Watermark> {
        let map = value.as_object()?;
        let mut out = BTreeMap::new();
        for (k, v) in map {
            out.insert(k.clone(), v.as_i64()?);
        }
        Some(Watermark(out))
    }

    /// The batch of a source this watermark has seen (0: none).
    pub fn batch(&self, source: Source) -> i64 {
        self.0.get(source.name()).copied().unwrap_or(0)
    }

    /// Whether a table at `self` has seen every batch of `current`.
    pub fn covers(&self, current: &Watermark) -> bool {
        Source::ALL
            .iter()
            .all(|s| self.batch(*s) >= current.batch(*s))
    }
}

/// The fingerprint of a build: the models (names and SQL, in build order), the consent
/// policy and a digest of the key secret (never the secret itself).
pub fn fingerprint(nodes: &[Node], policy: ConsentPolicy, secret: &[u8]) -> String {
    let mut h = Sha256::new();
    for node in nodes {
        h.update(node.model.name.as_bytes());
        h.update(node.model.sql.as_bytes());
    }
    h.update(policy.name().as_bytes());
    h.update(Sha256::digest(secret));
    hex::encode(h.finalize())
}

/// The metadata every commit of a build carries.
pub fn metadata(
    fingerprint: &str,
    watermark: &Watermark,
    policy: ConsentPolicy,
) -> HashMap<String, Value> {
    HashMap::from([
        (FINGERPRINT_KEY.to_string(), Value::from(fingerprint)),
        (WATERMARK_KEY.to_string(), watermark.to_json()),
        (CONSENT_KEY.to_string(), Value::from(policy.name())),
    ])
}

/// The build record of a table: the `stedi.*` metadata of the most recent commit that
/// has any, looking back a few commits (maintenance commits such as vacuum may have
/// none). Read once per table; empty when no commit has one.
pub async fn build_record(table: &DeltaTable) -> Result<HashMap<String, Value>> {
    let mut history = table.history(Some(20));
    while let Some(info) = history
        .try_next()
        .await
        .map_err(|e| StediError::delta(table.table_url().to_string(), e))?
    {
        let record: HashMap<String, Value> = info
            .info
            .into_iter()
            .filter(|(k, _)| k.starts_with(BUILD_RECORD_PREFIX))
            .collect();
        if !record.is_empty() {
            return Ok(record);
        }
    }
    Ok(HashMap::new())
}

/// The consent policy the tables were last built with, if any.
pub fn recorded_policy<'a>(
    records: impl Iterator<Item = &'a HashMap<String, serde_json::Value>>,
) -> Option<ConsentPolicy> {
    let name = records
        .filter_map(|record| record.get(CONSENT_KEY)?.as_str())
        .next()?;
    [ConsentPolicy::AnyTime, ConsentPolicy::SinceConsent]
        .into_iter()
        .find(|p| p.name() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watermark_covers_another_when_it_has_seen_every_batch() {
        let old = Watermark(BTreeMap::from([
            ("customer".into(), 1),
            ("accelerometer".into(), 2),
        ]));
        let new = Watermark(BTreeMap::from([
            ("customer".into(), 2),
            ("accelerometer".into(), 2),
        ]));
        assert!(new.covers(&old));
        assert!(!old.covers(&new));
        assert_eq!(Watermark::from_json(&new.to_json()), Some(new));
    }
}
