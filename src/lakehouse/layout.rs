//! Where everything lives inside a lakehouse. No other module builds a path.
//!
//! ```text
//! landing/<source>/            raw files, verbatim, append-only
//! landing/<source>_landing/    typed landing tables (Delta)
//! landing/quarantine/          rejected records (Delta)
//! trusted/<table>/, curated/<table>/   tables built by the SQL models (Delta)
//! _stedi/                      the lakehouse's own state: marker, ledger, run history,
//!                              secrets, tombstones of erased people, erasure receipts
//! ```

use std::fmt;

use object_store::path::Path;

use crate::feed::Source;

/// The zones data moves through, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Zone {
    /// Raw feeds, typed but not filtered.
    Landing,
    /// Filtered to customers who consented to research.
    Trusted,
    /// Joined and ready for analysis.
    Curated,
    /// The lakehouse's own bookkeeping.
    System,
}

impl Zone {
    /// The folder of the zone, which is also its name in `stedi tables`.
    pub fn folder(self) -> &'static str {
        match self {
            Zone::Landing => "landing",
            Zone::Trusted => "trusted",
            Zone::Curated => "curated",
            Zone::System => "_stedi",
        }
    }

    /// Parses a zone folder name (used for the folders of the SQL models).
    pub fn from_folder(folder: &str) -> Option<Zone> {
        match folder {
            "landing" => Some(Zone::Landing),
            "trusted" => Some(Zone::Trusted),
            "curated" => Some(Zone::Curated),
            _ => None,
        }
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.folder())
    }
}

/// A table of the lakehouse: its zone and name decide its location.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableId {
    /// The zone the table belongs to.
    pub zone: Zone,
    /// The table name, as used in SQL.
    pub name: String,
}

impl TableId {
    /// Builds an id.
    pub fn new(zone: Zone, name: impl Into<String>) -> Self {
        TableId {
            zone,
            name: name.into(),
        }
    }

    /// The table's folder, relative to the lakehouse root, ending with `/`.
    pub fn folder(&self) -> String {
        format!("{}/{}/", self.zone.folder(), self.name)
    }
}

/// The quarantine table: every landed record that could not be typed.
pub fn quarantine() -> TableId {
    TableId::new(Zone::Landing, "quarantine")
}

/// The ledger of landed files already ingested.
pub fn ingested_files() -> TableId {
    TableId::new(Zone::System, "ingested_files")
}

/// The history of commands that changed the lakehouse (`stedi history`), one row per
/// command, kept beside the ledger so that it is never mistaken for data.
pub fn runs() -> TableId {
    TableId::new(Zone::System, "runs")
}

/// The folder where raw files of a source are landed.
pub fn landing_folder(source: Source) -> Path {
    Path::from(format!("landing/{}", source.name()))
}

/// The file whose presence says "this location is a stedi lakehouse".
pub fn marker() -> Path {
    Path::from("_stedi/lakehouse.json")
}

/// The name of the secret that keys pseudonymous customer keys. It lives outside every
/// table (see `lakehouse::secrets` for where).
pub const CUSTOMER_KEY_SECRET: &str = "customer_key.secret";

/// Columns that hold personal data: an e-mail address, a name, a phone number, a birthday,
/// or (in `quarantine`) a raw landed line and a message quoting it.
///
/// Delta records min/max statistics of every data file in its log (`_delta_log/*.json`),
/// and the log is kept after the data files are vacuumed. No statistics are collected for
/// these columns, so that erasing a person (`stedi forget`) can remove every copy of
/// their data: the data files are rewritten and vacuumed, and the log never held it.
pub const PERSONAL_COLUMNS: &[&str] = &[
    "email",
    "user",
    crate::feed::CUSTOMER_COLUMN,
    "customerName",
    "phone",
    "birthDay",
    "raw",
    "detail",
];

/// The column a table names its customer by: `_customer` where ingest stored it, else
/// the address as landed (`email` or `user`). Every data file keeps a Bloom filter of
/// it, so that an incremental run finds the rows of a few customers without reading the
/// table.
pub fn customer_column(schema: &arrow::datatypes::Schema) -> Option<&'static str> {
    [crate::feed::CUSTOMER_COLUMN, "email", "user"]
        .into_iter()
        .find(|c| schema.column_with_name(c).is_some())
}

/// Keyed hashes of the addresses of erased people, whose records are refused at ingest.
pub fn tombstones() -> TableId {
    TableId::new(Zone::System, "tombstones")
}

/// The name of the secret that keys the tombstone hashes. Unlike the customer-key secret
/// it is never rotated: a tombstone must keep matching its address for as long as the
/// lakehouse lives.
pub const TOMBSTONE_SECRET: &str = "tombstone.secret";

/// The folder of erasure receipts, one JSON file per `stedi forget`.
pub fn erasures_folder() -> Path {
    Path::from("_stedi/erasures")
}

/// The receipt of one erasure.
pub fn erasure_receipt(id: &str) -> Path {
    Path::from(format!("_stedi/erasures/{id}.json"))
}
