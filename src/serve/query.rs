//! Read-only SQL over every table by name, printed for people or for scripts.

use std::io::Write;

use arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use crate::catalog;
use crate::delta;
use crate::error::{Result, StediError};
use crate::lakehouse::Lakehouse;
use crate::lakehouse::layout::{self, TableId};
use crate::transform;

/// How query results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// An aligned table for people.
    #[default]
    Table,
    /// CSV with a header row.
    Csv,
    /// One JSON object per row.
    Json,
}

/// Every table `stedi sql` can read: the tables of the contract, the ledger of ingested
/// files (`ingested_files`) and the run history (`runs`).
pub fn queryable_tables() -> Result<Vec<TableId>> {
    let mut tables = catalog::tables()?;
    tables.push(layout::ingested_files());
    tables.push(layout::runs());
    Ok(tables)
}

/// A session where every existing table of the lakehouse is registered under its name,
/// the ledger of ingested files as `ingested_files` and the run history as `runs`.
pub async fn context(lakehouse: &Lakehouse) -> Result<SessionContext> {
    let ctx = transform::session();
    for id in queryable_tables()? {
        if let Some(table) = lakehouse.load_table(&id).await? {
            delta::register(&ctx, &id.name, &table).await?;
        }
    }
    Ok(ctx)
}

/// Runs one read-only query and prints its result to `out`.
pub async fn run(
    lakehouse: &Lakehouse,
    sql: &str,
    format: Format,
    out: &mut dyn Write,
) -> Result<()> {
    let ctx = context(lakehouse).await?;
    print(&ctx, sql, format, out).await
}

/// Runs one read-only query in a prepared session and prints its result to `out`: the one
/// way query results are printed, shared by `stedi sql` and `stedi history`.
pub async fn print(
    ctx: &SessionContext,
    sql: &str,
    format: Format,
    out: &mut dyn Write,
) -> Result<()> {
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let df = ctx
        .sql_with_options(sql, options)
        .await
        .map_err(|e| query_error(&ctx, e))?;
    let schema = df.schema().as_arrow().clone();
    let mut stream = df
        .execute_stream()
        .await
        .map_err(|e| query_error(&ctx, e))?;
    let output = |e: &dyn std::fmt::Display| StediError::Output(e.to_string());
    match format {
        Format::Table => {
            let mut batches: Vec<RecordBatch> = Vec::new();
            while let Some(batch) = stream.next().await {
                batches.push(batch.map_err(|e| query_error(&ctx, e))?);
            }
            if batches.is_empty() {
                batches.push(RecordBatch::new_empty(std::sync::Arc::new(schema)));
            }
            let table =
                arrow::util::pretty::pretty_format_batches(&batches).map_err(|e| output(&e))?;
            writeln!(out, "{table}").map_err(|e| output(&e))?;
        }
        Format::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut *out);
            let mut wrote = false;
            while let Some(batch) = stream.next().await {
                writer
                    .write(&batch.map_err(|e| query_error(&ctx, e))?)
                    .map_err(|e| output(&e))?;
                wrote = true;
            }
            if !wrote {
                writer
                    .write(&RecordBatch::new_empty(std::sync::Arc::new(schema)))
                    .map_err(|e| output(&e))?;
            }
        }
        Format::Json => {
            let mut writer = arrow::json::LineDelimitedWriter::new(&mut *out);
            while let Some(batch) = stream.next().await {
                writer
                    .write(&batch.map_err(|e| query_error(&ctx, e))?)
                    .map_err(|e| output(&e))?;
            }
            writer.finish().map_err(|e| output(&e))?;
        }
    }
    out.flush().map_err(|e| output(&e))?;
    Ok(())
}

/// Turns an engine error into one line and a hint that fits it.
fn query_error(ctx: &SessionContext, e: DataFusionError) -> StediError {
    let message = e.strip_backtrace();
    let mut message = message.lines().next().unwrap_or_default().to_string();
    for prefix in ["Error during planning: ", "SQL error: ", "Schema error: "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            message = rest.to_string();
        }
    }
    let tables = || {
        let mut names: Vec<String> = ctx
            .catalog("datafusion")
            .and_then(|c| c.schema("public"))
            .map(|s| s.table_names())
            .unwrap_or_default();
        names.sort();
        names.join(", ")
    };
    let parse_error = message.starts_with("ParserError(");
    if let Some(inner) = message
        .strip_prefix("ParserError(\"")
        .and_then(|m| m.strip_suffix("\")"))
    {
        message = format!("cannot parse the query: {inner}");
    }
    let hint = if message.contains("not found") && message.starts_with("table") {
        Some(format!("the tables are: {}", tables()))
    } else if message.contains("not supported")
        || message.contains("DML")
        || message.contains("DDL")
    {
        Some("`stedi sql` is read-only: use SELECT, and `stedi run` to change tables".into())
    } else if matches!(e, DataFusionError::SQL(..)) || parse_error {
        Some("check the SQL syntax".into())
    } else if message.contains("No field named") {
        Some("column names are case-sensitive, as in the feeds (`serialNumber`); `stedi sql \"DESCRIBE customer_trusted\"` lists a table's columns".into())
    } else {
        None
    };
    StediError::Query { message, hint }
}
