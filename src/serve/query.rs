//! Read-only SQL over every table by name, printed for people or for scripts.

use std::io::Write;

use arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use crate::delta;
use crate::error::{Result, StediError};
use crate::lakehouse::Lakehouse;
use crate::session::{self, queryable_tables};

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

/// [`session::context`], plus every time-travel reference of `sql` (`"customer_trusted@3"`,
/// `"customer_trusted@2026-11-22T10:00:00Z"`) registered under its full name, so that one
/// query can compare a table with an earlier state of itself.
pub async fn context_for(lakehouse: &Lakehouse, sql: &str) -> Result<SessionContext> {
    let ctx = session::context(lakehouse).await?;
    register_time_travel(&ctx, lakehouse, sql).await?;
    Ok(ctx)
}

/// Runs one read-only query and prints its result to `out`.
pub async fn run(
    lakehouse: &Lakehouse,
    sql: &str,
    format: Format,
    out: &mut dyn Write,
) -> Result<()> {
    let ctx = context_for(lakehouse, sql).await?;
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
        .map_err(|e| query_error(ctx, e))?;
    let schema = df.schema().as_arrow().clone();
    let mut stream = df.execute_stream().await.map_err(|e| query_error(ctx, e))?;
    let output = |e: &dyn std::fmt::Display| StediError::Output(e.to_string());
    match format {
        Format::Table => {
            let mut batches: Vec<RecordBatch> = Vec::new();
            while let Some(batch) = stream.next().await {
                batches.push(batch.map_err(|e| query_error(ctx, e))?);
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
                    .write(&batch.map_err(|e| query_error(ctx, e))?)
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
                    .write(&batch.map_err(|e| query_error(ctx, e))?)
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
    // A failed optimizer rule is worded as the rule's name with the cause below it: the
    // cause is what the user can act on.
    let message = e.find_root().strip_backtrace();
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
    let hint = if message.contains("Object at location")
        && message.contains("not found")
        && tables().contains('@')
    {
        Some(format!(
            "{FORGET_VACUUMS}; query the latest version instead"
        ))
    } else if message.contains("not found") && message.starts_with("table") {
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

/// Why an old version may be unreadable, shown wherever that is the likely cause.
const FORGET_VACUUMS: &str = "`stedi forget` erases by rewriting tables and vacuuming the files of their earlier versions, so versions from before an erasure can no longer be read";

/// Which state of a table a time-travel reference asks for: what follows `@` in
/// `"customer_trusted@3"` or `"customer_trusted@2026-11-22T10:00:00Z"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    /// A Delta version, as `stedi tables` and `stedi history` show them.
    Version(i64),
    /// The latest version committed at or before this time.
    Time(chrono::DateTime<chrono::Utc>),
}

impl AsOf {
    /// Parses a version number or an RFC 3339 timestamp (`2026-11-22T10:00:00Z`,
    /// `2026-11-22T11:00:00+01:00`); `None` when it is neither.
    pub fn parse(text: &str) -> Option<AsOf> {
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            return text.parse().ok().map(AsOf::Version);
        }
        chrono::DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| AsOf::Time(t.with_timezone(&chrono::Utc)))
    }
}

/// Finds the `table@…` references of a query with DataFusion's own resolution (so that
/// CTE names and string literals are never mistaken for tables) and registers each one
/// as that table at that version.
async fn register_time_travel(
    ctx: &SessionContext,
    lakehouse: &Lakehouse,
    sql: &str,
) -> Result<()> {
    if !sql.contains('@') {
        return Ok(());
    }
    let state = ctx.state();
    let dialect = state.config().options().sql_parser.dialect;
    let statement = state
        .sql_to_statement(sql, &dialect)
        .map_err(|e| match query_error(ctx, e) {
            StediError::Query { message, .. }
                if message.starts_with("cannot parse") && has_unquoted_at(sql) =>
            {
                StediError::Query {
                    message,
                    hint: Some("write a table as of a version or a time as one name in double quotes: `\"customer_trusted@3\"`, `\"customer_trusted@2026-11-22T10:00:00Z\"`".into()),
                }
            }
            other => other,
        })?;
    let references = state
        .resolve_table_references(&statement)
        .map_err(|e| query_error(ctx, e))?;
    for reference in references {
        let Some((base, at)) = reference.table().split_once('@') else {
            continue;
        };
        if ctx.table_exist(reference.clone())? {
            continue;
        }
        let table = load_as_of(lakehouse, reference.table(), base, at).await?;
        let err = |e| StediError::delta(base, e);
        table.update_datafusion_session(&ctx.state()).map_err(err)?;
        let provider = table.table_provider().await.map_err(|e| err(e.into()))?;
        ctx.register_table(reference, provider)?;
    }
    Ok(())
}

/// Whether `@` appears outside quotes: a time-travel reference written without the
/// double quotes it needs.
fn has_unquoted_at(sql: &str) -> bool {
    let mut quote = None;
    for c in sql.chars() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '@') => return true,
            _ => {}
        }
    }
    false
}

/// Loads `base` as of `at`, with an error that says what exists instead.
async fn load_as_of(
    lakehouse: &Lakehouse,
    name: &str,
    base: &str,
    at: &str,
) -> Result<deltalake::DeltaTable> {
    let error = |message: String, hint: String| StediError::Query {
        message,
        hint: Some(hint),
    };
    let tables = queryable_tables()?;
    let Some(id) = tables.iter().find(|t| t.name == base) else {
        let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
        return Err(error(
            format!("no table `{base}` to read in `{name}`"),
            format!("the tables are: {}", names.join(", ")),
        ));
    };
    let Some(as_of) = AsOf::parse(at) else {
        return Err(error(
            format!("`{at}` in `{name}` is neither a version nor a time"),
            format!(
                "write `\"{base}@3\"` for version 3, or `\"{base}@2026-11-22T10:00:00Z\"` (RFC 3339) for the version current at that time"
            ),
        ));
    };
    let Some(mut table) = lakehouse.load_table(id).await? else {
        return Err(error(
            format!("`{base}` has not been written yet, so it has no versions"),
            "`stedi run` writes the tables; `stedi history` lists the versions each run wrote"
                .into(),
        ));
    };
    let latest = delta::version(&table);
    let err = |e| StediError::delta(base, e);
    let version = match as_of {
        AsOf::Version(version) => {
            if version > latest {
                return Err(error(
                    format!("`{base}` has no version {version}"),
                    format!(
                        "the latest version of `{base}` is {latest}; `stedi history` lists the versions each run wrote"
                    ),
                ));
            }
            if let Err(e) = table.load_version(version as u64).await {
                let cause = e.to_string();
                return Err(error(
                    format!(
                        "version {version} of `{base}` can no longer be read: {}",
                        cause.lines().next().unwrap_or_default()
                    ),
                    format!("{FORGET_VACUUMS}; the latest version of `{base}` is {latest}"),
                ));
            }
            version
        }
        AsOf::Time(time) => {
            table.load_with_datetime(time).await.map_err(err)?;
            let version = delta::version(&table);
            let written = commit_time(&table, version).await.map_err(err)?;
            // Delta's time travel compares milliseconds; so does this check.
            if written.timestamp_millis() > time.timestamp_millis() {
                let shown = time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
                let first = written.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                return Err(if version == 0 {
                    error(
                        format!("`{base}` did not exist yet at {shown}"),
                        format!("its first version was written at {first}"),
                    )
                } else {
                    error(
                        format!("no version of `{base}` from {shown} or before can still be read"),
                        format!("the oldest readable version, {version}, was written at {first}"),
                    )
                });
            }
            version
        }
    };
    if version < latest {
        let missing = missing_files(&table).await.map_err(err)?;
        if missing > 0 {
            return Err(error(
                format!(
                    "version {version} of `{base}` can no longer be read: {missing} of its data files were removed by vacuum"
                ),
                format!("{FORGET_VACUUMS}; the latest version of `{base}` is {latest}"),
            ));
        }
    }
    Ok(table)
}

/// When a version was committed: the time of its commit file, as Delta's own time travel
/// (`load_with_datetime`) reckons it.
async fn commit_time(
    table: &deltalake::DeltaTable,
    version: i64,
) -> std::result::Result<chrono::DateTime<chrono::Utc>, deltalake::DeltaTableError> {
    use object_store::ObjectStoreExt;
    let path = object_store::path::Path::from(format!("_delta_log/{version:020}.json"));
    let meta = table.object_store().head(&path).await?;
    Ok(meta.last_modified)
}

/// How many data files of the loaded version are gone from storage (vacuumed). One
/// listing of the table's folder, however many files the version has.
async fn missing_files(
    table: &deltalake::DeltaTable,
) -> std::result::Result<usize, deltalake::DeltaTableError> {
    use futures::TryStreamExt;
    let present: std::collections::HashSet<object_store::path::Path> = table
        .object_store()
        .list(None)
        .map_ok(|meta| meta.location)
        .try_collect()
        .await?;
    Ok(table
        .snapshot()?
        .log_data()
        .into_iter()
        .filter(|file| !present.contains(&file.object_store_path()))
        .count())
}

#[cfg(test)]
mod tests {
    use super::AsOf;

    #[test]
    fn as_of_is_a_version_or_an_rfc3339_time() {
        assert_eq!(AsOf::parse("3"), Some(AsOf::Version(3)));
        let utc = AsOf::parse("2026-11-22T10:00:00Z");
        assert_eq!(utc, AsOf::parse("2026-11-22T11:00:00+01:00"));
        assert!(matches!(utc, Some(AsOf::Time(t)) if t.timestamp() == 1_795_341_600));
        for bad in [
            "",
            "-1",
            "3.0",
            "yesterday",
            "2026-11-22",
            "99999999999999999999",
        ] {
            assert_eq!(AsOf::parse(bad), None, "{bad}");
        }
    }

    /// An optimizer rule that fails wraps the cause in its own name; the message is the
    /// cause, not the rule's name.
    #[test]
    fn a_failed_optimizer_rule_is_reported_by_its_cause() {
        use datafusion::error::DataFusionError;
        let cause = "Cannot infer common argument type for logical boolean operation";
        let failed = DataFusionError::Plan(cause.into()).context("type_coercion");
        let message = super::query_error(&datafusion::prelude::SessionContext::new(), failed);
        assert!(message.to_string().contains(cause), "{message}");
    }

    #[test]
    fn an_at_sign_outside_quotes_is_found() {
        assert!(super::has_unquoted_at(
            "SELECT * FROM t@2026-11-22T10:00:00Z"
        ));
        assert!(!super::has_unquoted_at(
            r#"SELEC * FROM "t@3" WHERE x = 'a@b'"#
        ));
    }
}
