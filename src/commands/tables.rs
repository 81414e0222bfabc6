//! `stedi tables`: what the lakehouse holds.

use std::io::Write;

use crate::catalog::TableRow;
use crate::error::{Result, StediError};

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
