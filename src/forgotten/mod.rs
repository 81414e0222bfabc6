//! What an erasure leaves in the lakehouse, and what both ingestion and `stedi forget`
//! read and write of it: the tombstones of erased people (records of theirs landed later
//! are refused), the receipts of what was removed, and raw files rewritten without
//! some of their lines.
//!
//! It sits below both ingestion and erasure in the data path: ingestion refuses what a
//! tombstone names, erasure adds tombstones, and either rewrites raw files.

pub mod receipt;
pub mod rewrite;
pub mod tombstone;

use std::collections::{BTreeMap, BTreeSet};

use object_store::ObjectStoreExt;

use crate::error::{Result, StediError};
use crate::feed::Source;
use crate::lakehouse::{Lakehouse, layout};
use receipt::Receipt;

/// Removes the lines refused at ingest (records of erased people, see
/// [`tombstone::TombstoneFilter`]) from their raw landed files, once the batch that refused
/// them is published, and records it in a receipt of kind `ingest`.
pub async fn remove_refused_lines(
    lakehouse: &Lakehouse,
    source: Source,
    batch: i64,
    lines: &BTreeMap<String, BTreeSet<u64>>,
) -> Result<()> {
    let secret =
        tombstone::read_secret(lakehouse)
            .await?
            .ok_or_else(|| StediError::MissingSecret {
                path: lakehouse.secret_location(layout::TOMBSTONE_SECRET),
                tables_exist: false,
            })?;
    let mut receipt = Receipt {
        erasure: receipt::new_id(&format!("ingest-{}-{batch}", source.name())),
        kind: "ingest".into(),
        address_hash: None,
        started: now(),
        finished: None,
        tombstone: None,
        raw_files: Vec::new(),
        tables: Vec::new(),
        scan: None,
    };
    for (file, remove) in lines {
        let location = object_store::path::Path::from(file.as_str());
        let meta = lakehouse.store().head(&location).await?;
        let meta = object_store::ObjectMeta { location, ..meta };
        receipt
            .raw_files
            .push(rewrite::remove_lines(lakehouse, &meta, remove, &secret).await?);
    }
    receipt.finished = Some(now());
    receipt.store(lakehouse).await
}

/// Now, as receipts write times (RFC 3339, UTC, milliseconds).
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
