//! `stedi history`: the commands that changed the lakehouse, newest first.

use std::io::Write;
use std::sync::Arc;

use datafusion::datasource::MemTable;

use crate::error::Result;
use crate::lakehouse::{Lakehouse, layout};
use crate::serve::query::{self, Format};
use crate::{delta, history};

/// Prints the run history through the same query path as `stedi sql`; returns whether any
/// run was recorded (before the first one, an empty result is printed, not an error).
pub async fn print(
    lakehouse: &Lakehouse,
    limit: Option<u64>,
    format: Format,
    out: &mut dyn Write,
) -> Result<bool> {
    // Only the history is registered: a damaged data table must not hide it.
    let ctx = crate::session::session();
    let id = layout::runs();
    let recorded = match lakehouse.load_table(&id).await? {
        Some(table) => {
            delta::register(&ctx, &id.name, &table).await?;
            true
        }
        None => {
            let empty = MemTable::try_new(history::schema(), vec![Vec::new()])?;
            ctx.register_table(id.name.as_str(), Arc::new(empty))?;
            false
        }
    };
    let mut sql = format!(
        "SELECT run_id, command, started_at, ended_at, outcome, error, files_ingested, rows, versions \
         FROM {} ORDER BY started_at DESC, ended_at DESC",
        id.name
    );
    if let Some(limit) = limit {
        sql.push_str(&format!(" LIMIT {limit}"));
    }
    query::print(&ctx, &sql, format, out).await?;
    Ok(recorded)
}
