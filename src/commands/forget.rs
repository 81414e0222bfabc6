//! `stedi forget --email ADDRESS`: erase a person, print the receipt, fail unless proven.

use std::io::Write;

use crate::erase;
use crate::error::{Result, StediError};
use crate::lakehouse::Lakehouse;
use crate::progress::Progress;

/// Erases the person, prints the receipt (JSON) to `out` and a summary as notes; fails
/// when the storage scan still finds the address, naming where.
pub async fn forget(
    lakehouse: &Lakehouse,
    email: &str,
    progress: &Progress,
    note: &dyn Fn(&str),
    out: &mut dyn Write,
) -> Result<()> {
    let receipt = erase::forget(lakehouse, email, progress).await?;
    writeln!(out, "{}", receipt.to_json()).map_err(|e| StediError::Output(e.to_string()))?;
    let scan = receipt.scan.clone().unwrap_or_default();
    if !receipt.verified() {
        return Err(StediError::ErasureIncomplete {
            receipt: receipt.path(),
            locations: scan.matches,
        });
    }
    if !receipt.removed_anything() {
        note("nothing in the lakehouse matched this address; nothing was removed");
    } else {
        let rows: i64 = receipt
            .tables
            .iter()
            .filter(|t| t.zone == "landing")
            .map(|t| t.rows_removed)
            .sum();
        note(&format!(
            "removed {} line(s) from {} raw file(s) and {rows} landing and quarantine row(s); rebuilt the trusted and curated tables",
            receipt.lines_removed(),
            receipt.raw_files.len(),
        ));
    }
    let vacuumed: Vec<&str> = receipt
        .tables
        .iter()
        .filter(|t| t.vacuumed)
        .map(|t| t.table.as_str())
        .collect();
    note(&match vacuumed.as_slice() {
        [] => "no table held the address in any version: no table was vacuumed, time travel is unchanged".to_string(),
        tables => format!(
            "vacuumed {} (their versions from before the erasure can no longer be read); the other tables keep their versions",
            tables.join(", ")
        ),
    });
    match receipt.tombstone.as_deref() {
        Some("added") => {
            note("tombstoned: records of this address landed later are refused at ingest")
        }
        _ => note("already tombstoned: records of this address landed later are refused at ingest"),
    }
    note(&format!(
        "proof: {} objects ({} bytes, {} Parquet files decoded) searched, the address is found nowhere; receipt stored in {}",
        scan.objects,
        scan.bytes,
        scan.parquet_files,
        receipt.path()
    ));
    Ok(())
}
