//! The parts of a per-reading model that are the same in every slice of time.
//!
//! A model too large to join in memory at once runs once per slice of time (see
//! [`super::sliced`]). A common table expression of its SQL
//! that reads no table with instants (such as the curated customers, numbered) gives the
//! same rows in every slice. Left in the query, it would be computed again by each of its
//! references in each slice: at a million customers, sorting them several times per
//! slice. Such expressions are computed once, before the slices, and every slice reads
//! their rows from memory. Sharing one result also keeps their numbering the same in
//! every reference.
//!
//! A slice needs only some of those rows. Under the per-reading grain a reading depends
//! only on the customers given its serial number, so in each slice an expression with a
//! `serialNumber` column keeps the rows of the serial numbers of the slice's readings.
//! Each slice then joins its readings with their own customers, a fraction of all,
//! instead of with a million: smaller hash tables, and nothing shuffled between cores to
//! build them.

use std::collections::{BTreeSet, HashSet};
use std::hash::BuildHasher;
use std::ops::ControlFlow;
use std::sync::Arc;

use arrow::array::{AsArray, BooleanArray};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{Cte, Statement, visit_relations};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::error::Result;

/// A model's query with its slice-invariant expressions taken out and computed.
pub struct Hoisted {
    /// The query to run in each slice: the model's, without the hoisted expressions.
    pub sql: String,
    /// The rows of each hoisted expression, by its name (see [`Hoisted::register_in`]).
    tables: Vec<(String, SchemaRef, Vec<RecordBatch>)>,
}

impl Hoisted {
    /// Registers the hoisted tables in the session of one slice. When `serials` is given
    /// (the serial numbers of the slice's readings), a table with a `serialNumber`
    /// column keeps only their rows: the customers of the slice's readings.
    pub fn register_in<S: BuildHasher>(
        &self,
        slice: &SessionContext,
        serials: Option<&HashSet<String, S>>,
    ) -> Result<()> {
        for (name, schema, batches) in &self.tables {
            let batches = match (serials, schema.index_of(SERIAL_COLUMN)) {
                (Some(serials), Ok(column)) => batches
                    .iter()
                    .map(|batch| of_serials(batch, column, serials))
                    .collect::<Result<Vec<_>>>()?,
                _ => batches.clone(),
            };
            let table = MemTable::try_new(schema.clone(), vec![batches])?;
            slice.register_table(name.as_str(), Arc::new(table))?;
        }
        Ok(())
    }
}

/// The column that names a customer's serial number.
const SERIAL_COLUMN: &str = "serialNumber";

/// The rows of `batch` whose `column` holds one of `serials`.
fn of_serials<S: BuildHasher>(
    batch: &RecordBatch,
    column: usize,
    serials: &HashSet<String, S>,
) -> Result<RecordBatch> {
    let values = batch.column(column);
    let keep = |v: Option<&str>| Some(v.is_some_and(|v| serials.contains(v)));
    let keep: BooleanArray = match values.data_type() {
        DataType::Utf8View => values.as_string_view().iter().map(keep).collect(),
        _ => {
            let values =
                arrow::compute::cast(values, &DataType::Utf8).map_err(DataFusionError::from)?;
            values.as_string::<i32>().iter().map(keep).collect()
        }
    };
    Ok(arrow::compute::filter_record_batch(batch, &keep).map_err(DataFusionError::from)?)
}

/// Takes out of `sql` the common table expressions that read none of the `timed` tables
/// (directly or through another expression), computes them once in `ctx` and returns
/// the query left to run per slice. A query that is not a single `SELECT` with common
/// table expressions is returned as it is.
pub async fn hoist(ctx: &SessionContext, sql: &str, timed: &BTreeSet<String>) -> Result<Hoisted> {
    let unchanged = || Hoisted {
        sql: sql.to_string(),
        tables: Vec::new(),
    };
    let Ok(mut statements) = Parser::parse_sql(&GenericDialect {}, sql) else {
        return Ok(unchanged());
    };
    let [Statement::Query(query)] = statements.as_mut_slice() else {
        return Ok(unchanged());
    };
    let Some(with) = query.with.as_mut().filter(|w| !w.recursive) else {
        return Ok(unchanged());
    };
    let names: BTreeSet<String> = with
        .cte_tables
        .iter()
        .map(|cte| cte.alias.name.value.clone())
        .collect();
    let (mut invariant, mut kept): (Vec<Cte>, Vec<Cte>) = (Vec::new(), Vec::new());
    // The tables the hoisted expressions read (other than each other).
    let mut read = BTreeSet::new();
    for cte in with.cte_tables.drain(..) {
        let mut relations = Vec::new();
        let _ = visit_relations(&cte.query, |relation| {
            if let Some(name) = relation.0.last().and_then(|part| part.as_ident()) {
                relations.push(name.value.clone());
            }
            ControlFlow::<()>::Continue(())
        });
        let reads_time = relations.iter().any(|name| {
            let hoisted = invariant.iter().any(|c| c.alias.name.value == *name);
            timed.contains(name) || (names.contains(name) && !hoisted)
        });
        if reads_time {
            kept.push(cte);
        } else {
            read.extend(relations.into_iter().filter(|name| !names.contains(name)));
            invariant.push(cte);
        }
    }
    if invariant.is_empty() {
        return Ok(unchanged());
    }
    // Each expression is computed once, in order, in a session of its own where the
    // ones before it are tables: an expression that reads another reads its rows.
    let own = crate::session::session_like(ctx);
    for name in read {
        if let Ok(table) = ctx.table_provider(name.as_str()).await {
            own.register_table(name.as_str(), table)?;
        }
    }
    let mut tables = Vec::with_capacity(invariant.len());
    for cte in &invariant {
        let name = &cte.alias.name;
        let rows = own.sql(&format!("WITH {cte} SELECT * FROM {name}")).await?;
        let schema = Arc::new(rows.schema().as_arrow().clone());
        let batches = rows.collect().await?;
        own.register_table(
            name.value.as_str(),
            Arc::new(MemTable::try_new(schema.clone(), vec![batches.clone()])?),
        )?;
        tables.push((name.value.clone(), schema, batches));
    }
    if kept.is_empty() {
        query.with = None;
    } else {
        with.cte_tables = kept;
    }
    Ok(Hoisted {
        sql: statements[0].to_string(),
        tables,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashSet};

    use arrow::record_batch::RecordBatch;
    use arrow::util::pretty::pretty_format_batches;
    use datafusion::prelude::SessionContext;

    use super::{Hoisted, hoist};

    /// Customers and their phone readings, as tables of a session.
    async fn session() -> SessionContext {
        let ctx = SessionContext::new();
        ctx.sql(
            "CREATE TABLE customers_curated AS VALUES ('b@x.com', 'key-b'), ('a@x.com', 'key-a')",
        )
        .await
        .unwrap();
        ctx.sql(
            "CREATE TABLE accelerometer_trusted AS VALUES ('a@x.com', 10), ('b@x.com', 10), ('a@x.com', 20)",
        )
        .await
        .unwrap();
        ctx
    }

    const MODEL: &str = "
        WITH customers AS (
            SELECT column1 AS email, row_number() OVER (ORDER BY column2) AS number
            FROM customers_curated
        ),
        numbers AS (SELECT number FROM customers),
        phone AS (
            SELECT c.number, a.column2 AS instant
            FROM customers AS c JOIN accelerometer_trusted AS a ON a.column1 = c.email
        )
        SELECT p.number, p.instant FROM numbers AS n JOIN phone AS p ON p.number = n.number
        ORDER BY p.number, p.instant";

    /// The rows of what `hoisted` leaves to each slice, run in a slice's session holding
    /// `table` of `ctx` and the hoisted rows (restricted to `serials` when given).
    async fn in_slice(
        ctx: &SessionContext,
        hoisted: &Hoisted,
        table: &str,
        serials: Option<&HashSet<String>>,
    ) -> Vec<RecordBatch> {
        let slice = SessionContext::new();
        slice
            .register_table(table, ctx.table_provider(table).await.unwrap())
            .unwrap();
        hoisted.register_in(&slice, serials).unwrap();
        slice
            .sql(&hoisted.sql)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn expressions_without_instants_are_computed_once_and_the_rest_gives_the_same_rows() {
        let ctx = session().await;
        let timed = BTreeSet::from(["accelerometer_trusted".to_string()]);

        let hoisted = hoist(&ctx, MODEL, &timed).await.unwrap();

        let names: Vec<&str> = hoisted.tables.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(names, ["customers", "numbers"]);
        assert!(
            hoisted.sql.starts_with("WITH phone AS ("),
            "{}",
            hoisted.sql
        );
        assert!(!hoisted.sql.contains("numbers AS ("), "{}", hoisted.sql);
        let whole = ctx.sql(MODEL).await.unwrap().collect().await.unwrap();
        let sliced = in_slice(&ctx, &hoisted, "accelerometer_trusted", None).await;
        assert_eq!(
            pretty_format_batches(&sliced).unwrap().to_string(),
            pretty_format_batches(&whole).unwrap().to_string()
        );
    }

    #[tokio::test]
    async fn a_slice_keeps_the_customers_of_its_serial_numbers_numbered_as_among_all() {
        let ctx = SessionContext::new();
        ctx.sql(
            "CREATE TABLE customers_curated (email TEXT, \"serialNumber\" TEXT) AS VALUES
             ('a@x.com', 's1'), ('b@x.com', 's2'), ('c@x.com', 's1'), ('d@x.com', 's3')",
        )
        .await
        .unwrap();
        ctx.sql("CREATE TABLE step_trainer_landing AS VALUES ('s1', 10)")
            .await
            .unwrap();
        let model = "
            WITH customers AS (
                SELECT email, \"serialNumber\", row_number() OVER (ORDER BY email) AS number
                FROM customers_curated
            ),
            emails AS (SELECT email FROM customers)
            SELECT c.email, c.number, (SELECT count(*) FROM emails) AS everyone
            FROM customers AS c, step_trainer_landing AS s
            ORDER BY c.number";
        let timed = BTreeSet::from(["step_trainer_landing".to_string()]);
        let hoisted = hoist(&ctx, model, &timed).await.unwrap();

        let serials = HashSet::from(["s1".to_string(), "s9".to_string()]);
        let rows = in_slice(&ctx, &hoisted, "step_trainer_landing", Some(&serials)).await;

        // The customers of s1 keep the numbers they have among all four; a table without
        // serial numbers is whole.
        assert_eq!(
            pretty_format_batches(&rows).unwrap().to_string(),
            "+---------+--------+----------+\n\
             | email   | number | everyone |\n\
             +---------+--------+----------+\n\
             | a@x.com | 1      | 4        |\n\
             | c@x.com | 3      | 4        |\n\
             +---------+--------+----------+"
        );
    }

    #[tokio::test]
    async fn a_query_whose_expressions_all_read_instants_is_left_as_it_is() {
        let ctx = session().await;
        let timed = BTreeSet::from([
            "accelerometer_trusted".to_string(),
            "customers_curated".to_string(),
        ]);

        let hoisted = hoist(&ctx, MODEL, &timed).await.unwrap();

        assert!(hoisted.tables.is_empty());
        assert_eq!(hoisted.sql, MODEL);
    }
}
