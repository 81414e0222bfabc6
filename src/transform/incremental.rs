//! Incremental runs: update a table in place for only what changed since it was built.
//!
//! Every model declares its grain in a header line of its SQL file:
//!
//! - `-- incremental: per customer` — each row belongs to one customer (an e-mail,
//!   trimmed and lower-cased) and depends only on that customer's landed records. The
//!   table names the customer by `_customer` (landing tables) or by an address column,
//!   `email` or `user`, holding an address as landed or its `customer_id`.
//! - `-- incremental: per reading` — each row belongs to one step-trainer reading
//!   (`serialNumber`, `sensorReadingTime`) and depends only on what happened at that
//!   instant and on the customers who were given that serial number. Its inputs are
//!   read at the affected instants, and a table without instants (customers) under the
//!   affected serial numbers.
//!
//! A run then works out which customers and readings the newly ingested files touch
//! (the *affected* keys), recomputes the model for those keys alone by running the same
//! SQL over inputs restricted to them, and replaces the table's rows of those keys in
//! one Delta commit: the data files holding any of them are rewritten without them, and
//! the recomputed rows are added. Rows of every other key cannot have changed, so the
//! result is the table a full rebuild would produce.
//!
//! A few customers are found without reading whole tables: every data file has a Bloom
//! filter of the column that names the customer, so row groups that hold none of them
//! are skipped unread (see the `slice` module, which also reads each table's rows
//! of the affected customers once for all the queries of a run).
//!
//! Readings couple customers (a reused serial number makes two customers claim the same
//! reading), which is why per-reading models are keyed by reading, not by customer: a
//! customer's change affects the readings at the instants of their phone readings under
//! every serial number they ever registered.
//!
//! The same restriction of inputs builds a large per-reading model in slices of time
//! (see [`super::sliced`]).

use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use deltalake::DeltaTable;
use deltalake::kernel::Action;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

use super::record::Watermark;
use super::slice::{MAX_LISTED_KEYS, Restriction, Slices};
use crate::error::{Result, StediError};
use crate::feed::{CUSTOMER_COLUMN, Source};
use crate::ingest::ledger::Ledger;
use crate::lakehouse::layout::TableId;
use crate::lakehouse::layout::customer_column;
use crate::models::Grain;

/// The earliest and latest instant of a set of readings.
pub type Span = (i64, i64);

/// An answer being worked out in the background, awaited by whoever needs it first.
type SeenBefore = Shared<BoxFuture<'static, std::result::Result<bool, String>>>;

/// A [`SeenBefore`] already known.
fn known(answer: bool) -> SeenBefore {
    futures::future::ready(Ok(answer)).boxed().shared()
}

/// A [`SeenBefore`]: whether `sql` (a count) finds any row, run as a task of its own.
/// The query is planned here, so that tables registered later do not change it.
async fn any_row(ctx: &SessionContext, sql: &str) -> Result<SeenBefore> {
    let rows = ctx.sql(sql).await?;
    let task = tokio::spawn(async move { count_of(rows).await.map_err(|e| e.to_string()) });
    Ok(
        async move { task.await.map_err(|e| e.to_string())?.map(|n| n > 0) }
            .boxed()
            .shared(),
    )
}

/// The keys whose rows may have changed since a watermark.
#[derive(Debug, Clone)]
pub struct Affected {
    /// The affected customers: [`customer_id`](crate::feed::customer_id)s, sorted.
    pub customers: Vec<String>,
    /// Every address of the affected customers as landed, and their customer ids: the
    /// values a table's `email` or `user` column holds in their rows. Sorted.
    pub addresses: Vec<String>,
    /// `affected_readings(serialNumber, sensorReadingTime)`.
    pub readings: Vec<RecordBatch>,
    /// The distinct serial numbers of the affected readings, sorted.
    pub serials: Vec<String>,
    /// The earliest and latest instant of the affected readings: a range that file and
    /// row-group statistics can skip whole files by.
    pub span: Option<Span>,
    /// Whether any affected customer has records in files ingested before: only then can
    /// a per-customer table hold rows of theirs (its rows come from those records).
    pub customers_seen_before: bool,
    /// Whether any affected reading was landed before: only then can a per-reading table
    /// hold rows of it. Only per-reading models, which come last, need the answer, so
    /// it is worked out (a scan of the step-trainer readings) while the per-customer
    /// models run.
    readings_seen_before: SeenBefore,
    /// Each table's rows of the affected keys, read once and shared by every query of the
    /// run that restricts that table the same way.
    slices: Slices,
}

impl Affected {
    /// Number of affected customers.
    pub fn customer_count(&self) -> usize {
        self.customers.len()
    }

    /// Number of affected readings.
    pub fn reading_count(&self) -> usize {
        self.readings.iter().map(|b| b.num_rows()).sum()
    }

    /// Whether a table of `grain` may hold rows of the affected keys, which must then be
    /// removed before the recomputed rows are added. A key first landed in this run has
    /// none: the rows of a per-customer or per-reading model come from that customer's
    /// records or that reading. An error is the message of the count that was to tell.
    pub async fn may_have_rows(&self, grain: Grain) -> std::result::Result<bool, String> {
        match grain {
            Grain::Customer => Ok(self.customers_seen_before),
            Grain::Reading => self.readings_seen_before.clone().await,
        }
    }

    /// Whether a model of `grain` has nothing to recompute.
    pub fn is_empty_for(&self, grain: Grain) -> bool {
        match grain {
            Grain::Customer => self.customers.is_empty(),
            Grain::Reading => self.reading_count() == 0,
        }
    }

    /// Registers the keys as tables `affected_customers(customer)`,
    /// `affected_addresses(address)` and `affected_readings(serialNumber,
    /// sensorReadingTime)`, for restrictions by join.
    fn register(&self, ctx: &SessionContext) -> Result<()> {
        let text = |name: &str, values: &[String]| -> Result<Vec<RecordBatch>> {
            let schema = Arc::new(arrow::datatypes::Schema::new(vec![
                arrow::datatypes::Field::new(name, arrow::datatypes::DataType::Utf8, false),
            ]));
            let column = arrow::array::StringArray::from_iter_values(values);
            let batch = RecordBatch::try_new(schema, vec![Arc::new(column)])
                .map_err(datafusion::error::DataFusionError::from)?;
            Ok(vec![batch])
        };
        for (name, batches) in [
            ("affected_customers", text("customer", &self.customers)?),
            ("affected_addresses", text("address", &self.addresses)?),
            ("affected_readings", self.readings.clone()),
        ] {
            let Some(first) = batches.first() else {
                continue;
            };
            let table = MemTable::try_new(first.schema(), vec![batches])?;
            ctx.deregister_table(name)?;
            ctx.register_table(name, Arc::new(table))?;
        }
        Ok(())
    }

    /// `expr IN (the affected customers)`.
    fn customer_in(&self, expr: &str) -> String {
        one_of(
            expr,
            &self.customers,
            "SELECT customer FROM affected_customers",
        )
    }

    /// `expr IN (the affected customers' addresses)`.
    fn address_in(&self, expr: &str) -> String {
        one_of(
            expr,
            &self.addresses,
            "SELECT address FROM affected_addresses",
        )
    }

    /// The rows of a per-customer table (`schema`) that belong to the affected
    /// customers: by `_customer` when it has one, else by the address column.
    fn restriction(&self, schema: &SchemaRef, table: &str) -> Result<Restriction<'_>> {
        let column = customer_column(schema).ok_or_else(|| StediError::Model {
            model: table.to_string(),
            message: format!(
                "a per-customer model reads a table without a `{CUSTOMER_COLUMN}`, `email` or `user` column"
            ),
        })?;
        let expr = format!("t.\"{column}\"");
        let (keys, condition) = if column == CUSTOMER_COLUMN {
            (&self.customers, self.customer_in(&expr))
        } else {
            (&self.addresses, self.address_in(&expr))
        };
        Ok(Restriction {
            grain: Grain::Customer,
            customers: Some((column, keys)),
            condition,
        })
    }
}

/// `expr IN (values)`: the values listed, so that row groups whose Bloom filters hold none
/// of them are skipped unread, or (very many) the rows of `subquery`.
fn one_of(expr: &str, values: &[String], subquery: &str) -> String {
    if values.is_empty() {
        return "false".to_string();
    }
    if values.len() > MAX_LISTED_KEYS {
        return format!("{expr} IN ({subquery})");
    }
    format!("{expr} IN ({})", quoted(values))
}

/// SQL string literals of `values`, comma-separated.
fn quoted<S: AsRef<str>>(values: &[S]) -> String {
    let mut list = String::with_capacity(values.len() * 32);
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            list.push_str(", ");
        }
        list.push('\'');
        list.push_str(&v.as_ref().replace('\'', "''"));
        list.push('\'');
    }
    list
}

/// The distinct non-null strings of the first column of `sql`'s result, sorted, and
/// whether any row's second column (a boolean, when there is one) is true.
async fn strings(ctx: &SessionContext, sql: &str) -> Result<(Vec<String>, bool)> {
    let (sorted, any): (std::collections::BTreeSet<String>, bool) =
        gather_strings(ctx, sql).await?;
    Ok((sorted.into_iter().collect(), any))
}

/// [`strings`] gathered into any collection, for callers that have no use for the order.
pub(super) async fn gather_strings<C: Default + Extend<String>>(
    ctx: &SessionContext,
    sql: &str,
) -> Result<(C, bool)> {
    let mut out = C::default();
    let mut any = false;
    for batch in ctx.sql(sql).await?.collect().await? {
        let column = arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Utf8)
            .map_err(datafusion::error::DataFusionError::from)?;
        out.extend(
            column
                .as_string::<i32>()
                .iter()
                .flatten()
                .map(str::to_string),
        );
        if let Some(flags) = batch.columns().get(1) {
            any |= flags.as_boolean().true_count() > 0;
        }
    }
    Ok((out, any))
}

/// Works out the affected keys from the files ingested after `since`. `ctx` must have the
/// landing tables registered under their names.
pub async fn affected(
    ctx: &SessionContext,
    ledger: &Ledger,
    since: &Watermark,
) -> Result<Affected> {
    let started = std::time::Instant::now();
    let news = |source: Source| -> String {
        let files = ledger.files_after(source, since.batch(source));
        if files.is_empty() {
            return "false".to_string();
        }
        format!("_file IN ({})", quoted(&files))
    };
    // Rows of files ingested before `since`.
    let earlier = |source: Source| format!("NOT ({})", news(source));
    let customer = CUSTOMER_COLUMN;
    let customers_sql = format!(
        "SELECT DISTINCT \"{customer}\" FROM customer_landing WHERE {}
         UNION
         SELECT DISTINCT \"{customer}\" FROM accelerometer_landing WHERE {}",
        news(Source::Customer),
        news(Source::Accelerometer),
    );
    let step_readings_sql = format!(
        "SELECT DISTINCT serialNumber, sensorReadingTime FROM step_trainer_landing WHERE {}",
        news(Source::StepTrainer),
    );
    let ((customers, _), step_readings) =
        futures::try_join!(strings(ctx, &customers_sql), async {
            Ok(ctx.sql(&step_readings_sql).await?.collect().await?)
        },)?;
    let mut affected = Affected {
        customers,
        addresses: Vec::new(),
        readings: Vec::new(),
        serials: Vec::new(),
        span: None,
        customers_seen_before: false,
        readings_seen_before: known(false),
        slices: Slices::default(),
    };
    let new_keys_ms = started.elapsed().as_millis() as u64;
    let mut customer_readings = Vec::new();
    if !affected.customers.is_empty() {
        // Their landed records, read once: for what follows, and for the models.
        let theirs = SessionContext::new_with_config_rt(ctx.copied_config(), ctx.runtime_env());
        // Very many customers are restricted by a join with `affected_customers`.
        affected.register(&theirs)?;
        let landed = futures::future::try_join_all([Source::Customer, Source::Accelerometer].map(
            |source| {
                let affected = &affected;
                let theirs = &theirs;
                async move {
                    let name = source.landing_table();
                    let provider = ctx.table_provider(name).await?;
                    let restriction = affected.restriction(&provider.schema(), name)?;
                    let rows = affected
                        .slices
                        .restrict(theirs, name, provider, &restriction)
                        .await?;
                    Ok::<_, StediError>((name, rows))
                }
            },
        ))
        .await?;
        for (name, rows) in landed {
            theirs.register_table(name, rows)?;
        }
        // Every spelling of their addresses, in any landed record; and the readings at
        // every instant of their phone readings, under every serial number any of their
        // records gave (a customer's change reaches those).
        let addresses_sql = format!(
            "SELECT DISTINCT email, {} AS earlier FROM customer_landing
             UNION
             SELECT DISTINCT user, {} AS earlier FROM accelerometer_landing",
            earlier(Source::Customer),
            earlier(Source::Accelerometer),
        );
        let readings_sql = format!(
            "SELECT DISTINCT c.serialNumber, a.timestamp AS sensorReadingTime
             FROM customer_landing AS c
             JOIN accelerometer_landing AS a ON a.\"{customer}\" = c.\"{customer}\""
        );
        let ((mut addresses, seen_before), readings) =
            futures::try_join!(strings(&theirs, &addresses_sql), async {
                Ok(theirs.sql(&readings_sql).await?.collect().await?)
            },)?;
        affected.customers_seen_before = seen_before;
        addresses.extend(affected.customers.iter().cloned());
        addresses.sort();
        addresses.dedup();
        affected.addresses = addresses;
        customer_readings = readings;
    }
    let their_rows_ms = started.elapsed().as_millis() as u64;
    let (readings, span, serials) = distinct_readings(step_readings, customer_readings)?;
    affected.serials = serials;
    affected.readings = readings;
    affected.span = span;
    if affected.reading_count() > 0 {
        affected.register(ctx)?;
        let schema = ctx.table_provider("step_trainer_landing").await?.schema();
        let condition = belongs(Grain::Reading, &schema, "step_trainer_landing", &affected)?;
        affected.readings_seen_before = any_row(
            ctx,
            &format!(
                "SELECT count(*) FROM step_trainer_landing AS t WHERE {} AND {condition}",
                earlier(Source::StepTrainer)
            ),
        )
        .await?;
    }
    tracing::debug!(new_keys_ms, their_rows_ms, "affected steps");
    Ok(affected)
}

/// The distinct readings of two lists of `(serialNumber, sensorReadingTime)`, as one
/// batch of nullable text and instants; the earliest and latest of those instants; and
/// their distinct serial numbers, sorted.
fn distinct_readings(
    a: Vec<RecordBatch>,
    b: Vec<RecordBatch>,
) -> Result<(Vec<RecordBatch>, Option<Span>, Vec<String>)> {
    let mut span: Option<Span> = None;
    let rows: usize = a.iter().chain(&b).map(RecordBatch::num_rows).sum();
    let (mut serials, mut instants) = (
        arrow::array::StringBuilder::new(),
        arrow::array::Int64Builder::new(),
    );
    let mut columns = Vec::new();
    for batch in a.iter().chain(&b) {
        let cast = |i: usize, to: &arrow::datatypes::DataType| {
            arrow::compute::cast(batch.column(i), to)
                .map_err(datafusion::error::DataFusionError::from)
        };
        columns.push((
            cast(0, &arrow::datatypes::DataType::Utf8)?,
            cast(1, &arrow::datatypes::DataType::Int64)?,
        ));
    }
    // Keys borrow from the columns, hashed quickly, in a set sized for them all once:
    // tens of thousands of readings, under a few serial numbers.
    let mut seen: std::collections::HashSet<(Option<&str>, Option<i64>), ahash::RandomState> =
        std::collections::HashSet::with_capacity_and_hasher(rows, Default::default());
    let mut distinct_serials: std::collections::HashSet<&str, ahash::RandomState> =
        std::collections::HashSet::default();
    for (serial, instant) in &columns {
        let (serial, instant) = (
            serial.as_string::<i32>(),
            instant.as_primitive::<arrow::datatypes::Int64Type>(),
        );
        for (s, t) in serial.iter().zip(instant.iter()) {
            if seen.insert((s, t)) {
                distinct_serials.extend(s);
                serials.append_option(s);
                instants.append_option(t);
                if let Some(t) = t {
                    span = Some(span.map_or((t, t), |(lo, hi)| (lo.min(t), hi.max(t))));
                }
            }
        }
    }
    if seen.is_empty() {
        return Ok((Vec::new(), None, Vec::new()));
    }
    let schema = Arc::new(arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new("serialNumber", arrow::datatypes::DataType::Utf8, true),
        arrow::datatypes::Field::new("sensorReadingTime", arrow::datatypes::DataType::Int64, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![Arc::new(serials.finish()), Arc::new(instants.finish())],
    )
    .map_err(datafusion::error::DataFusionError::from)?;
    let mut distinct_serials: Vec<String> =
        distinct_serials.into_iter().map(str::to_string).collect();
    distinct_serials.sort();
    Ok((vec![batch], span, distinct_serials))
}

/// Whether a table is keyed by step-trainer reading.
pub(super) fn has_reading_key(schema: &SchemaRef) -> bool {
    schema.column_with_name("serialNumber").is_some()
        && schema.column_with_name("sensorReadingTime").is_some()
}

/// The column of a table that holds the instant of a reading, if it has one.
pub(super) fn time_column(schema: &SchemaRef) -> Option<&'static str> {
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
        Grain::Customer => Ok(affected.restriction(schema, table)?.condition),
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
            } else if schema.column_with_name("serialNumber").is_some() {
                // Customers: a reading can only be theirs under their serial number.
                // Listed, the serial numbers are checked while the table is read, and
                // only the customers that have one are decoded whole.
                Ok(one_of(
                    "t.\"serialNumber\"",
                    &affected.serials,
                    "SELECT DISTINCT \"serialNumber\" FROM affected_readings",
                ))
            } else {
                // A table without instants or serial numbers is read whole.
                Ok("true".to_string())
            }
        }
    }
}

/// A session where a model can run over its inputs restricted to the affected keys:
/// each input is registered under its own name as its rows of those keys (see
/// [`Slices`]), or whole when no restriction applies to it.
pub async fn restricted_session(
    base: &SessionContext,
    inputs: &[String],
    grain: Grain,
    affected: &Affected,
) -> Result<SessionContext> {
    let ctx = crate::session::session_like(base);
    affected.register(&ctx)?;
    // Each input restricted at the same time: most are read from storage.
    let restricted = futures::future::try_join_all(inputs.iter().map(|name| {
        let ctx = &ctx;
        async move {
            let provider = base.table_provider(name.as_str()).await?;
            let schema = provider.schema();
            let restriction = match grain {
                Grain::Customer => affected.restriction(&schema, name)?,
                Grain::Reading => Restriction {
                    grain,
                    customers: None,
                    condition: belongs(grain, &schema, name, affected)?,
                },
            };
            if restriction.condition == "true" {
                return Ok::<_, StediError>((name, provider));
            }
            let rows = affected
                .slices
                .restrict(ctx, name, provider, &restriction)
                .await?;
            Ok((name, rows))
        }
    }))
    .await?;
    for (name, rows) in restricted {
        ctx.register_table(name.as_str(), rows)?;
    }
    Ok(ctx)
}

/// What replacing the affected rows of a table takes: the actions that swap the data
/// files holding them for rewrites without them, and how many rows go.
#[derive(Default)]
pub struct Removal {
    /// `remove`s of the old files and `add`s of their rewrites.
    pub rewrites: Vec<Action>,
    /// Rows removed.
    pub rows: u64,
}

/// Finds the table's data files that hold rows of affected keys and writes them again
/// without those rows (uncommitted). Nothing is read when no affected key was landed
/// before this run; otherwise a query first asks whether any row is affected at all,
/// which the row groups' Bloom filters and statistics usually answer unread.
pub async fn remove_affected(
    ctx: &SessionContext,
    lakehouse: &crate::lakehouse::Lakehouse,
    id: &TableId,
    table: &DeltaTable,
    grain: Grain,
    affected: &Affected,
) -> Result<Removal> {
    let may_have_rows =
        affected
            .may_have_rows(grain)
            .await
            .map_err(|message| StediError::Model {
                model: id.name.clone(),
                message,
            })?;
    if !may_have_rows {
        return Ok(Removal::default());
    }
    let ctx = SessionContext::new_with_config_rt(ctx.copied_config(), ctx.runtime_env());
    crate::session::functions::register_customer_id(&ctx);
    affected.register(&ctx)?;
    crate::delta::register_files(&ctx, lakehouse, id, table).await?;
    let schema = ctx.table_provider(id.name.as_str()).await?.schema();
    let condition = belongs(grain, &schema, &id.name, affected)?;
    if count(
        &ctx,
        &format!(
            "SELECT count(*) FROM \"{}\" AS t WHERE {condition}",
            id.name
        ),
    )
    .await?
        == 0
    {
        return Ok(Removal::default());
    }
    let matcher = row_matcher(grain, &schema, affected)?;
    let (rewrites, rows) = crate::delta::rewrite_without(table, &id.name, &matcher).await?;
    Ok(Removal { rewrites, rows })
}

/// The rows of affected keys, as a test on batches of a table with `schema`: the same
/// keys as [`belongs`] selects in SQL, compared with the same [`customer_id`].
///
/// [`customer_id`]: crate::feed::customer_id
fn row_matcher(
    grain: Grain,
    schema: &SchemaRef,
    affected: &Affected,
) -> Result<Box<crate::delta::RowMatcher>> {
    let cast = |batch: &RecordBatch, column: &str, to: arrow::datatypes::DataType| {
        batch
            .column_by_name(column)
            .map(|values| arrow::compute::cast(values, &to))
            .transpose()
            .map_err(|e| StediError::from(datafusion::error::DataFusionError::from(e)))
    };
    let text = move |batch: &RecordBatch, column: &str| {
        cast(batch, column, arrow::datatypes::DataType::Utf8)
    };
    let instant = move |batch: &RecordBatch, column: &str| {
        cast(batch, column, arrow::datatypes::DataType::Int64)
    };
    match grain {
        Grain::Customer => {
            let column = customer_column(schema).unwrap_or("email");
            let keys: std::collections::HashSet<String> =
                affected.customers.iter().cloned().collect();
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
                        Some(v.is_some_and(|v| keys.contains(crate::feed::customer_id(v).as_ref())))
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
    count_of(ctx.sql(sql).await?).await
}

/// The count a planned `SELECT count(*)` gives.
pub(super) async fn count_of(rows: datafusion::dataframe::DataFrame) -> Result<u64> {
    let batches = rows.collect().await?;
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
mod tests {}
