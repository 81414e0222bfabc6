//! Tombstones: the erased people, kept so that their records landed later are refused.
//!
//! A tombstone is the keyed hash (HMAC-SHA-256) of the trimmed, lower-cased address under
//! `_stedi/tombstone.secret`, stored in the Delta table `_stedi/tombstones`. The address
//! itself is never stored. The secret is separate from the customer-key secret because
//! that one may be rotated, and a tombstone must keep matching for ever.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::delta;
use crate::error::{Result, StediError};
use crate::lakehouse::{Lakehouse, layout};

/// Schema of `_stedi/tombstones`: the keyed hash, and the erasure that added it.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("address_hash", DataType::Utf8, false),
        Field::new("erasure", DataType::Utf8, false),
    ]))
}

/// The keyed hash of an address: HMAC-SHA-256 of the trimmed, lower-cased address.
pub fn address_hash(secret: &[u8], address: &str) -> String {
    crate::feed::customer_key(secret, address)
}

/// The tombstone secret, or `None` when no erasure ever created it.
pub async fn read_secret(lakehouse: &Lakehouse) -> Result<Option<Vec<u8>>> {
    lakehouse.read_secret(layout::TOMBSTONE_SECRET).await
}

/// The tombstone secret, created on first use (by the first erasure).
pub async fn secret(lakehouse: &Lakehouse) -> Result<Vec<u8>> {
    lakehouse
        .create_secret(layout::TOMBSTONE_SECRET, "tombstone")
        .await
}

/// Every tombstone with the secret that keys them.
#[derive(Debug)]
pub struct Tombstones {
    secret: Vec<u8>,
    hashes: HashSet<String>,
}

impl Tombstones {
    /// Loads the tombstones; `None` when there are none, so that ingestion pays nothing
    /// in a lakehouse where no one was erased.
    pub async fn load(lakehouse: &Lakehouse) -> Result<Option<Tombstones>> {
        let hashes = hashes(lakehouse).await?;
        if hashes.is_empty() {
            return Ok(None);
        }
        let secret = read_secret(lakehouse)
            .await?
            .ok_or_else(|| StediError::MissingSecret {
                path: lakehouse.secret_location(layout::TOMBSTONE_SECRET),
                tables_exist: false,
            })?;
        Ok(Some(Tombstones { secret, hashes }))
    }

    /// Whether an address (as written in a record) is tombstoned.
    pub fn contains(&self, address: &str) -> bool {
        self.hashes.contains(&address_hash(&self.secret, address))
    }

    /// Number of tombstones.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }
}

/// Asks [`Tombstones`] once per distinct value: one ingestion worker's cache. Feeds repeat
/// the same address on every reading, so hashing each row would cost more than decoding it.
#[derive(Debug)]
pub struct TombstoneFilter {
    tombstones: Arc<Tombstones>,
    seen: HashMap<String, bool>,
}

impl TombstoneFilter {
    /// A filter with an empty cache.
    pub fn new(tombstones: Arc<Tombstones>) -> Self {
        TombstoneFilter {
            tombstones,
            seen: HashMap::new(),
        }
    }

    /// Whether the value of a record's person field is a tombstoned address.
    pub fn is_erased(&mut self, value: &str) -> bool {
        if let Some(known) = self.seen.get(value) {
            return *known;
        }
        let erased = self.tombstones.contains(value);
        self.seen.insert(value.to_string(), erased);
        erased
    }
}

/// The hashes in `_stedi/tombstones` (none when the table does not exist).
async fn hashes(lakehouse: &Lakehouse) -> Result<HashSet<String>> {
    let id = layout::tombstones();
    let Some(table) = lakehouse.load_table(&id).await? else {
        return Ok(HashSet::new());
    };
    let ctx = datafusion::prelude::SessionContext::new();
    delta::register(&ctx, &id.name, &table).await?;
    let batches = ctx
        .sql(&format!("SELECT address_hash FROM {}", id.name))
        .await?
        .collect()
        .await?;
    let mut hashes = HashSet::new();
    for batch in &batches {
        let column = arrow::compute::cast(batch.column(0), &DataType::Utf8)
            .map_err(datafusion::error::DataFusionError::from)?;
        hashes.extend(column.as_string::<i32>().iter().flatten().map(String::from));
    }
    Ok(hashes)
}

/// Adds a tombstone unless it is there already; returns whether it was added.
pub async fn add(lakehouse: &Lakehouse, hash: &str, erasure: &str) -> Result<bool> {
    if hashes(lakehouse).await?.contains(hash) {
        return Ok(false);
    }
    let id = layout::tombstones();
    let mut table = delta::ensure_table(lakehouse, &id, &schema()).await?;
    let batch = RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(StringArray::from(vec![hash])),
            Arc::new(StringArray::from(vec![erasure])),
        ],
    )
    .map_err(datafusion::error::DataFusionError::from)?;
    delta::append_batch(
        &mut table,
        &id.name,
        batch,
        Vec::new(),
        HashMap::from([("stedi.erasure".to_string(), serde_json::json!(erasure))]),
    )
    .await?;
    Ok(true)
}
