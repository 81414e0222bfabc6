//! Incremental runs: update a table in place for only what changed since it was built.
//!
//! Every model declares its grain in a header line of its SQL file:
//!
//! - `-- incremental: per customer` — each row belongs to one customer (an e-mail,
//!   trimmed and lower-cased) and depends only on that customer's landed records.
//! - `-- incremental: per reading` — each row belongs to one step-trainer reading
//!   (`serialNumber`, `sensorReadingTime`) and depends only on what happened at that
//!   instant.
//!
//! A run then works out which customers and readings the newly ingested files touch
//! (the *affected* keys), recomputes the model for those keys alone by running the same
//! SQL over inputs restricted to them, and replaces the table's rows of those keys in
//! one Delta commit: the data files holding any of them are rewritten without them, and
//! the recomputed rows are added. Rows of every other key cannot have changed, so the
//! result is the table a full rebuild would produce.
//!
//! Readings couple customers (a reused serial number makes two customers claim the same
//! reading), which is why per-reading models are keyed by reading, not by customer: a
//! customer's change affects the readings at the instants of their phone readings under
//! every serial number they ever registered.
//!
//! The same restriction of inputs builds a large per-reading model in slices of time
//! (see [`time_slice_session`]): every row depends only on rows of its own instant, so a
//! model whose join would not fit the memory limit is built one range of instants after
//! another into the same commit.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use deltalake::DeltaTable;
use deltalake::kernel::Action;

use crate::error::{Result, StediError};
use crate::ingest::feed::Source;
use crate::ingest::ledger::Ledger;
use crate::lakehouse::layout::TableId;

/// The grain of a model: what one of its rows belongs to, and so what an incremental
/// run can recompute it by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grain {
    /// One customer (e-mail address compared trimmed and case-insensitively).
    Customer,
    /// One step-trainer reading: serial number and instant.
    Reading,
}

impl Grain {
    /// The grain a model's SQL declares in a `-- incremental: per …` line; a model
    /// without one is always rebuilt in full.
    pub fn declared_in(sql: &str) -> Option<Grain> {
        sql.lines().find_map(|line| {
            let rest = line.trim().strip_prefix("--")?.trim();
            let rest = rest.strip_prefix("incremental:")?.trim();
            match rest.trim_end_matches('.') {
                "per customer" => Some(Grain::Customer),
                "per reading" => Some(Grain::Reading),
                _ => None,
            }
        })
    }
}

/// Which ingested batches a table reflects: for each source, the newest batch number.
///
/// Batches come from the ledger of ingested files, so a watermark names exactly which
/// landed files were already taken into account, and the files after it are the news.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Watermark(BTreeMap<String, i64>);

impl Watermark {
    /// The watermark of everything ingested so far.
    pub fn current(ledger: &Ledger) -> Watermark {
        Watermark(
            Source::ALL
                .iter()
                .map(|s| {
                    (
                        s.name().to_string(),
                        ledger.last_batch(*s).map_or(0, |b| b.0),
                    )
                })
                .collect(),
        )
    }

    /// As recorded in a commit.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::from(*v)))
                .collect(),
        )
    }

    /// Reads a recorded watermark; `None` when it is not one.
    pub fn from_json(value: &serde_json::Value) -> Option<Watermark> {
        let map = value.as_object()?;
        let mut out = BTreeMap::new();
        for (k, v) in map {
            out.insert(k.clone(), v.as_i64()?);
        }
        Some(Watermark(out))
    }

    /// The batch of a source this watermark has seen (0: none).
    fn batch(&self, source: Source) -> i64 {
        self.0.get(source.name()).copied().unwrap_or(0)
    }

    /// Whether a table at `self` has seen every batch of `current`.
    pub fn covers(&self, current: &Watermark) -> bool {
        Source::ALL
            .iter()
            .all(|s| self.batch(*s) >= current.batch(*s))
    }
}

/// The keys whose rows may have changed since a watermark, as small in-memory tables.
#[derive(Debug, Clone)]
pub struct Affected {
    /// `affected_customers(customer)`: normalized e-mail addresses.
    pub customers: Vec<RecordBatch>,
    /// `affected_readings(serialNumber, sensorReadingTime)`.
    pub readings: Vec<RecordBatch>,
    /// The earliest and latest instant of the affected readings: a range that file and
    /// row-group statistics can skip whole files by.
    pub span: Option<(i64, i64)>,
}

impl Affected {
    /// Number of affected customers.
    pub fn customer_count(&self) -> usize {
        self.customers.iter().map(|b| b.num_rows()).sum()
    }

    /// Number of affected readings.
    pub fn reading_count(&self) -> usize {
        self.readings.iter().map(|b| b.num_rows()).sum()
    }

    /// Whether a model of `grain` has nothing to recompute.
    pub fn is_empty_for(&self, grain: Grain) -> bool {
        match grain {
            Grain::Customer => self.customer_count() == 0,
            Grain::Reading => self.reading_count() == 0,
        }
    }

    fn register(&self, ctx: &SessionContext) -> Result<()> {
        for (name, batches) in [
            ("affected_customers", &self.customers),
            ("affected_readings", &self.readings),
        ] {
            let Some(first) = batches.first() else {
                continue;
            };
            let table = MemTable::try_new(first.schema(), vec![batches.clone()])?;
            ctx.deregister_table(name)?;
            ctx.register_table(name, Arc::new(table))?;
        }
        Ok(())
    }
}

/// Works out the affected keys from the files ingested after `since`. `ctx` must have the
/// landing tables registered under their names.
pub async fn affected(
    ctx: &SessionContext,
    ledger: &Ledger,
    since: &Watermark,
) -> Result<Affected> {
    let news = |source: Source| -> String {
        let files = ledger.files_after(source, since.batch(source));
        if files.is_empty() {
            return "false".to_string();
        }
        let quoted: Vec<String> = files
            .iter()
            .map(|f| format!("'{}'", f.replace('\'', "''")))
            .collect();
        format!("_file IN ({})", quoted.join(", "))
    };
    let customers_sql = format!(
        "SELECT DISTINCT customer_id(email) AS customer FROM customer_landing WHERE {}
         UNION
         SELECT DISTINCT customer_id(user) AS customer FROM accelerometer_landing WHERE {}",
        news(Source::Customer),
        news(Source::Accelerometer),
    );
    let customers = ctx.sql(&customers_sql).await?.collect().await?;
    let customers = Affected {
        customers,
        readings: Vec::new(),
        span: None,
    };
    customers.register(ctx)?;
    // A customer's change reaches the readings at every instant of their phone readings,
    // under every serial number any of their records gave.
    let customer_readings = if customers.customer_count() == 0 {
        String::new()
    } else {
        "UNION
         SELECT DISTINCT c.serialNumber, a.timestamp AS sensorReadingTime
         FROM customer_landing AS c
         JOIN accelerometer_landing AS a ON customer_id(a.user) = customer_id(c.email)
         WHERE customer_id(c.email) IN (SELECT customer FROM affected_customers)"
            .to_string()
    };
    let readings_sql = format!(
        "SELECT DISTINCT serialNumber, sensorReadingTime FROM step_trainer_landing WHERE {}
         {customer_readings}",
        news(Source::StepTrainer),
    );
    let readings = ctx.sql(&readings_sql).await?.collect().await?;
    let mut span: Option<(i64, i64)> = None;
    for batch in &readings {
        let instants = arrow::compute::cast(batch.column(1), &arrow::datatypes::DataType::Int64)
            .map_err(datafusion::error::DataFusionError::from)?;
        let instants = instants.as_primitive::<arrow::datatypes::Int64Type>();
        if let (Some(lo), Some(hi)) = (arrow::compute::min(instants), arrow::compute::max(instants))
        {
            span = Some(span.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
        }
    }
    Ok(Affected {
        customers: customers.customers,
        readings,
        span,
    })
}

/// The column of a table that names its customer, if it has one.
fn customer_column(schema: &SchemaRef) -> Option<&'static str> {
    ["email", "user"]
        .into_iter()
        .find(|c| schema.column_with_name(c).is_some())
}

/// Whether a table is keyed by step-trainer reading.
fn has_reading_key(schema: &SchemaRef) -> bool {
    schema.column_with_name("serialNumber").is_some()
        && schema.column_with_name("sensorReadingTime").is_some()
}

/// The column of a table that holds the instant of a reading, if it has one.
fn time_column(schema: &SchemaRef) -> Option<&'static str> {
    ["sensorReadingTime", "timestamp"]
        .into_iter()
        .find(|c| schema.column_with_name(c).is_some())
}

/// The condition "this row belongs to an affected key", on a table aliased `t`.
fn belongs(grain: Grain, schema: &SchemaRef, table: &str, affected: &Affected) -> Result<String> {
    let within = |column: &str| match affected.span {
        Some((lo, hi)) => format!("t.\"{column}\" BETWEEN {lo} AND {hi} AND "),
        None => String::new(),
    };
    match grain {
        Grain::Customer => {
            let column = customer_column(schema).ok_or_else(|| StediError::Model {
                model: table.to_string(),
                message: "a per-customer model reads a table without an `email` or `user` column"
                    .to_string(),
            })?;
            Ok(format!(
                "EXISTS (SELECT 1 FROM affected_customers AS k WHERE k.customer = customer_id(t.\"{column}\"))"
            ))
        }
        Grain::Reading => {
            if has_reading_key(schema) {
                Ok(format!(
                    "{}EXISTS (SELECT 1 FROM affected_readings AS k \
                     WHERE k.\"serialNumber\" = t.\"serialNumber\" \
                     AND k.\"sensorReadingTime\" = t.\"sensorReadingTime\")",
                    within("sensorReadingTime")
                ))
            } else if let Some(column) = time_column(schema) {
                Ok(format!(
                    "{}t.\"{column}\" IN (SELECT DISTINCT \"sensorReadingTime\" FROM affected_readings)",
                    within(column)
                ))
            } else {
                // A table without instants (customers) is read whole.
                Ok("true".to_string())
            }
        }
    }
}

/// A session where a model can run over its inputs restricted to the affected keys:
/// each input is a view of the same name over the full table.
pub async fn restricted_session(
    base: &SessionContext,
    inputs: &[String],
    grain: Grain,
    affected: &Affected,
    register_functions: impl Fn(&SessionContext),
) -> Result<SessionContext> {
    let ctx = SessionContext::new_with_config_rt(base.copied_config(), base.runtime_env());
    register_functions(&ctx);
    affected.register(&ctx)?;
    restrict_inputs(base, &ctx, inputs, |name, schema| {
        belongs(grain, schema, name, affected).map(Some)
    })
    .await?;
    Ok(ctx)
}

/// Registers in `ctx` each input of `base` under its own name, as a view restricted by
/// the condition `restriction` gives for it (on the table aliased `t`), or whole when it
/// gives none.
async fn restrict_inputs(
    base: &SessionContext,
    ctx: &SessionContext,
    inputs: &[String],
    restriction: impl Fn(&str, &SchemaRef) -> Result<Option<String>>,
) -> Result<()> {
    for name in inputs {
        let provider = base.table_provider(name.as_str()).await?;
        let Some(condition) = restriction(name, &provider.schema())? else {
            ctx.register_table(name.as_str(), provider)?;
            continue;
        };
        let full = format!("{name}__all");
        ctx.register_table(full.as_str(), provider)?;
        let view = ctx
            .sql(&format!(
                "SELECT t.* FROM \"{full}\" AS t WHERE {condition}"
            ))
            .await?
            .into_view();
        ctx.register_table(name.as_str(), view)?;
    }
    Ok(())
}

/// A session where a per-reading model runs over one slice of time, `[from, until)`:
/// each input with instants is a view of the same name restricted to the slice, and
/// tables without instants (customers) are read whole. Every row of a per-reading model
/// depends only on rows of its own instant, so the slices together give the whole table.
pub async fn time_slice_session(
    base: &SessionContext,
    inputs: &[String],
    from: i64,
    until: i64,
    register_functions: impl Fn(&SessionContext),
) -> Result<SessionContext> {
    let ctx = SessionContext::new_with_config_rt(base.copied_config(), base.runtime_env());
    register_functions(&ctx);
    restrict_inputs(base, &ctx, inputs, |_, schema| {
        Ok(time_column(schema).map(|c| format!("t.\"{c}\" >= {from} AND t.\"{c}\" < {until}")))
    })
    .await?;
    Ok(ctx)
}

/// The largest row count among the inputs that have instants, and the range of their
/// instants: what decides whether, and how, a per-reading model is built in slices.
pub async fn instants_of(
    ctx: &SessionContext,
    inputs: &[String],
) -> Result<(u64, Option<(i64, i64)>)> {
    let (mut rows, mut span): (u64, Option<(i64, i64)>) = (0, None);
    for name in inputs {
        let provider = ctx.table_provider(name.as_str()).await?;
        let Some(column) = time_column(&provider.schema()) else {
            continue;
        };
        let batches = ctx
            .sql(&format!(
                "SELECT count(*), min(CAST(\"{column}\" AS BIGINT)), max(CAST(\"{column}\" AS BIGINT)) FROM \"{name}\""
            ))
            .await?
            .collect()
            .await?;
        let Some(batch) = batches.first().filter(|b| b.num_rows() > 0) else {
            continue;
        };
        let int = |i: usize| {
            let column = batch
                .column(i)
                .as_primitive::<arrow::datatypes::Int64Type>();
            (!column.is_null(0)).then(|| column.value(0))
        };
        rows = rows.max(int(0).unwrap_or(0).max(0) as u64);
        if let (Some(lo), Some(hi)) = (int(1), int(2)) {
            span = Some(span.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
        }
    }
    Ok((rows, span))
}

/// What replacing the affected rows of a table takes: the actions that swap the data
/// files holding them for rewrites without them, and how many rows go.
pub struct Removal {
    /// `remove`s of the old files and `add`s of their rewrites.
    pub rewrites: Vec<Action>,
    /// Rows removed.
    pub rows: u64,
}

/// Finds the table's data files that hold rows of affected keys and writes them again
/// without those rows (uncommitted). A query first asks whether any row is affected at
/// all, which file statistics usually answer without reading the table.
pub async fn remove_affected(
    ctx: &SessionContext,
    id: &TableId,
    table: &DeltaTable,
    grain: Grain,
    affected: &Affected,
) -> Result<Removal> {
    let whole = table
        .table_provider()
        .await
        .map_err(|e| StediError::delta(&id.name, e.into()))?;
    let schema = whole.schema();
    let condition = belongs(grain, &schema, &id.name, affected)?;
    let ctx = SessionContext::new_with_config_rt(ctx.copied_config(), ctx.runtime_env());
    super::functions::register_customer_id(&ctx);
    affected.register(&ctx)?;
    ctx.register_table("t", whole)?;
    if count(&ctx, &format!("SELECT count(*) FROM t WHERE {condition}")).await? == 0 {
        return Ok(Removal {
            rewrites: Vec::new(),
            rows: 0,
        });
    }
    let matcher = row_matcher(grain, &schema, affected)?;
    let (rewrites, rows) = crate::delta::rewrite_without(table, &id.name, &matcher).await?;
    Ok(Removal { rewrites, rows })
}

/// The rows of affected keys, as a test on batches of a table with `schema`: the same
/// keys as [`belongs`] selects in SQL, compared with the same [`customer_id`].
///
/// [`customer_id`]: super::functions::customer_id
fn row_matcher(
    grain: Grain,
    schema: &SchemaRef,
    affected: &Affected,
) -> Result<Box<crate::delta::RowMatcher>> {
    let text = |batch: &RecordBatch, column: &str| -> Result<Option<arrow::array::ArrayRef>> {
        let Some(values) = batch.column_by_name(column) else {
            return Ok(None);
        };
        Ok(Some(
            arrow::compute::cast(values, &arrow::datatypes::DataType::Utf8)
                .map_err(datafusion::error::DataFusionError::from)?,
        ))
    };
    let instant = |batch: &RecordBatch, column: &str| -> Result<Option<arrow::array::ArrayRef>> {
        let Some(values) = batch.column_by_name(column) else {
            return Ok(None);
        };
        Ok(Some(
            arrow::compute::cast(values, &arrow::datatypes::DataType::Int64)
                .map_err(datafusion::error::DataFusionError::from)?,
        ))
    };
    match grain {
        Grain::Customer => {
            let column = customer_column(schema).unwrap_or("email");
            let mut keys = std::collections::HashSet::new();
            for batch in &affected.customers {
                if let Some(values) = text(batch, "customer")? {
                    keys.extend(
                        values
                            .as_string::<i32>()
                            .iter()
                            .flatten()
                            .map(str::to_string),
                    );
                }
            }
            Ok(Box::new(move |batch: &RecordBatch| {
                let Some(values) = text(batch, column)? else {
                    return Ok(arrow::array::BooleanArray::from(vec![
                        false;
                        batch.num_rows()
                    ]));
                };
                Ok(values
                    .as_string::<i32>()
                    .iter()
                    .map(|v| {
                        Some(v.is_some_and(|v| {
                            keys.contains(super::functions::customer_id(v).as_ref())
                        }))
                    })
                    .collect())
            }))
        }
        Grain::Reading => {
            let mut keys: std::collections::HashMap<String, std::collections::HashSet<i64>> =
                std::collections::HashMap::new();
            for batch in &affected.readings {
                if let (Some(serials), Some(instants)) = (
                    text(batch, "serialNumber")?,
                    instant(batch, "sensorReadingTime")?,
                ) {
                    let serials = serials.as_string::<i32>();
                    let instants = instants.as_primitive::<arrow::datatypes::Int64Type>();
                    for i in 0..batch.num_rows() {
                        if serials.is_valid(i) && instants.is_valid(i) {
                            keys.entry(serials.value(i).to_string())
                                .or_default()
                                .insert(instants.value(i));
                        }
                    }
                }
            }
            Ok(Box::new(move |batch: &RecordBatch| {
                let (Some(serials), Some(instants)) = (
                    text(batch, "serialNumber")?,
                    instant(batch, "sensorReadingTime")?,
                ) else {
                    return Ok(arrow::array::BooleanArray::from(vec![
                        false;
                        batch.num_rows()
                    ]));
                };
                let serials = serials.as_string::<i32>();
                let instants = instants.as_primitive::<arrow::datatypes::Int64Type>();
                Ok((0..batch.num_rows())
                    .map(|i| {
                        Some(
                            serials.is_valid(i)
                                && instants.is_valid(i)
                                && keys
                                    .get(serials.value(i))
                                    .is_some_and(|at| at.contains(&instants.value(i))),
                        )
                    })
                    .collect())
            }))
        }
    }
}

async fn count(ctx: &SessionContext, sql: &str) -> Result<u64> {
    let batches = ctx.sql(sql).await?.collect().await?;
    let n = batches
        .first()
        .filter(|b| b.num_rows() > 0)
        .and_then(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .map(|a| a.value(0))
        })
        .unwrap_or(0);
    Ok(n.max(0) as u64)
}

/// The size of an affected set, for progress and logs.
pub fn describe(affected: &Affected) -> String {
    format!(
        "{} customers, {} readings affected",
        affected.customer_count(),
        affected.reading_count()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_declare_their_grain_in_a_header_line() {
        assert_eq!(
            Grain::declared_in("-- x\n-- incremental: per customer.\nSELECT 1"),
            Some(Grain::Customer)
        );
        assert_eq!(
            Grain::declared_in("-- incremental: per reading\nSELECT 1"),
            Some(Grain::Reading)
        );
        assert_eq!(Grain::declared_in("SELECT 1 -- incremental"), None);
    }

    #[test]
    fn a_watermark_covers_another_when_it_has_seen_every_batch() {
        let old = Watermark(BTreeMap::from([
            ("customer".into(), 1),
            ("accelerometer".into(), 2),
        ]));
        let new = Watermark(BTreeMap::from([
            ("customer".into(), 2),
            ("accelerometer".into(), 2),
        ]));
        assert!(new.covers(&old));
        assert!(!old.covers(&new));
        assert_eq!(Watermark::from_json(&new.to_json()), Some(new));
    }
}
