//! `stedi tables`: what the lakehouse holds.

use std::io::Write;

use crate::catalog;
use crate::delta;
use crate::error::{Result, StediError};
use crate::lakehouse::Lakehouse;
use crate::lakehouse::layout::TableId;

/// One line of `stedi tables`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRow {
    /// Zone folder.
    pub zone: String,
    /// Table name.
    pub table: String,
    /// Rows in the current version (`None`: the table was never written).
    pub rows: Option<u64>,
    /// Current Delta version.
    pub version: Option<i64>,
    /// URL of the table.
    pub location: String,
}

/// Every table of the contract with its current state, the tables read at the same time.
pub async fn list_tables(lakehouse: &Lakehouse) -> Result<Vec<TableRow>> {
    let ids = catalog::tables()?;
    futures::future::try_join_all(ids.iter().map(|id| table_row(lakehouse, id))).await
}

/// The current state of one table. Separate from [`list_tables`] so that the run history
/// can still see every readable table when one of them is damaged.
pub async fn table_row(lakehouse: &Lakehouse, id: &TableId) -> Result<TableRow> {
    let table = lakehouse.load_table(id).await?;
    Ok(TableRow {
        zone: id.zone.to_string(),
        table: id.name.clone(),
        rows: table.as_ref().and_then(delta::row_count),
        version: table.as_ref().map(delta::version),
        location: lakehouse.table_url(id).to_string(),
    })
}

/// Prints rows as an aligned table.
pub fn print_tables(out: &mut dyn Write, rows: &[TableRow]) -> Result<()> {
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            [
                r.zone.clone(),
                r.table.clone(),
                r.rows.map_or("-".into(), |n| n.to_string()),
                r.version.map_or("-".into(), |v| v.to_string()),
                r.location.clone(),
            ]
        })
        .collect();
    let header = ["zone", "table", "rows", "version", "location"];
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let mut line = |row: [&str; 5]| {
        writeln!(
            out,
            "{:<w0$}  {:<w1$}  {:>w2$}  {:>w3$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
        )
        .map_err(|e| StediError::Output(e.to_string()))
    };
    line(header)?;
    for row in &cells {
        line([&row[0], &row[1], &row[2], &row[3], &row[4]])?;
    }
    Ok(())
}
