//! The receipt of an erasure: what was removed from where, when, and the storage scan that
//! proves nothing of the person is left. Printed by `stedi forget` and kept under
//! `_stedi/erasures/<id>.json`.
//!
//! A receipt never holds the address: only its keyed hash (the tombstone), so that the
//! receipt itself does not become a copy of what was erased.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::lakehouse::{Lakehouse, layout};

/// One raw landed file rewritten without some of its lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawRewrite {
    /// The file, relative to the lakehouse (`landing/<source>/<name>`).
    pub path: String,
    /// Lines removed.
    pub lines_removed: u64,
    /// Size before.
    pub bytes_before: u64,
    /// Size after.
    pub bytes_after: u64,
    /// Keyed digest (HMAC-SHA-256 under the tombstone secret) of the content before: lets
    /// `stedi land` recognize the original file if it is landed again.
    pub digest_before: String,
    /// Keyed digest of the content after.
    pub digest_after: String,
}

/// What an erasure did to one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableChange {
    /// Zone of the table.
    pub zone: String,
    /// Table name.
    pub table: String,
    /// Rows before minus rows after. For a rebuilt table this can differ from the
    /// person's rows: a step-trainer reading that two customers' evidence pointed at may be
    /// attributed to the remaining one.
    pub rows_removed: i64,
    /// Rows now.
    pub rows: u64,
    /// The Delta version that removed the rows (`None`: nothing to remove, no commit).
    pub version: Option<i64>,
    /// Whether the table was vacuumed: only a table that held the person in a version
    /// time travel could still read is; the others keep their earlier versions.
    #[serde(default)]
    pub vacuumed: bool,
    /// Data files deleted from storage by that vacuum.
    pub files_vacuumed: u64,
}

/// The receipt of one `stedi forget` (or of records refused at ingest, `kind = "ingest"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// Its id, also its file name under `_stedi/erasures/`.
    pub erasure: String,
    /// `forget` for `stedi forget`, `ingest` for records of erased people refused at ingest.
    pub kind: String,
    /// The keyed hash of the address (the tombstone), never the address itself.
    pub address_hash: Option<String>,
    /// When the erasure started (RFC 3339, UTC).
    pub started: String,
    /// When it finished; `None` in a receipt stored while it ran.
    pub finished: Option<String>,
    /// `added`, or `already present` for an address erased before.
    pub tombstone: Option<String>,
    /// Raw landed files rewritten.
    pub raw_files: Vec<RawRewrite>,
    /// Tables changed, in the order of the lakehouse's tables.
    pub tables: Vec<TableChange>,
    /// The scan of all storage after the erasure (`None` before it ran).
    pub scan: Option<ScanResult>,
}

impl Receipt {
    /// Whether the scan ran and found the address nowhere.
    pub fn verified(&self) -> bool {
        self.scan.as_ref().is_some_and(|s| s.matches.is_empty())
    }

    /// Raw lines removed in all.
    pub fn lines_removed(&self) -> u64 {
        self.raw_files.iter().map(|f| f.lines_removed).sum()
    }

    /// Whether anything of the person was found and removed.
    pub fn removed_anything(&self) -> bool {
        self.lines_removed() > 0 || self.tables.iter().any(|t| t.rows_removed != 0)
    }

    /// Where the receipt is stored, relative to the lakehouse.
    pub fn path(&self) -> String {
        layout::erasure_receipt(&self.erasure).to_string()
    }

    /// The receipt as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// Stores the receipt under `_stedi/erasures/<id>.json`, replacing an earlier copy.
    pub async fn store(&self, lakehouse: &Lakehouse) -> Result<()> {
        let text = self.to_json() + "\n";
        lakehouse
            .put(&layout::erasure_receipt(&self.erasure), Bytes::from(text))
            .await
    }
}

/// A new erasure id: the UTC time and a random suffix, so that ids sort by time.
pub fn new_id(kind: &str) -> String {
    let now = chrono::Utc::now().format("%Y%m%dT%H%M%S%3fZ");
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{now}-{kind}-{}", &random[..8])
}

/// What a storage scan found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanResult {
    /// Objects read.
    pub objects: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Parquet files whose string columns were decoded and searched value by value.
    pub parquet_files: u64,
    /// Where the address was found (object paths, with the column for a Parquet value),
    /// or which objects could not be read. Empty is the proof.
    pub matches: Vec<String>,
}
