//! The parts of a per-reading model that are the same in every slice of time.
//!
//! A model too large to join in memory at once runs once per slice of time (see
//! [`super::incremental::time_slice_session`]). A common table expression of its SQL
//! that reads no table with instants (such as the curated customers, numbered) gives the
//! same rows in every slice. Left in the query, it would be computed again by each of its
//! references in each slice: at a million customers, sorting them several times per
//! slice. Such expressions are computed once, before the slices, and every slice reads
//! their rows from memory. Sharing one result also keeps their numbering the same in
//! every reference.

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{Cte, Statement, visit_relations};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::error::Result;

/// A model's query with its slice-invariant expressions taken out and computed.
pub struct Hoisted {
    /// The query to run in each slice: the model's, without the hoisted expressions.
    pub sql: String,
    /// The rows of each hoisted expression, by its name, to register in each slice.
    pub tables: Vec<(String, Arc<MemTable>)>,
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
    for cte in with.cte_tables.drain(..) {
        let mut reads_time = false;
        let _ = visit_relations(&cte.query, |relation| {
            let name = relation
                .0
                .last()
                .and_then(|part| part.as_ident())
                .map(|ident| ident.value.as_str())
                .unwrap_or_default();
            let hoisted = invariant.iter().any(|c| c.alias.name.value == name);
            if timed.contains(name) || (names.contains(name) && !hoisted) {
                reads_time = true;
            }
            ControlFlow::<()>::Continue(())
        });
        if reads_time {
            kept.push(cte);
        } else {
            invariant.push(cte);
        }
    }
    if invariant.is_empty() {
        return Ok(unchanged());
    }
    let mut tables = Vec::with_capacity(invariant.len());
    for (i, cte) in invariant.iter().enumerate() {
        let prefix: Vec<String> = invariant[..=i].iter().map(|c| c.to_string()).collect();
        let name = &cte.alias.name;
        let rows = ctx
            .sql(&format!("WITH {} SELECT * FROM {name}", prefix.join(", ")))
            .await?;
        let schema = Arc::new(rows.schema().as_arrow().clone());
        let batches = rows.collect().await?;
        let table = MemTable::try_new(schema, vec![batches])?;
        tables.push((name.value.clone(), Arc::new(table)));
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
    use std::collections::BTreeSet;

    use arrow::util::pretty::pretty_format_batches;
    use datafusion::prelude::SessionContext;

    use super::hoist;

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

    #[tokio::test]
    async fn expressions_without_instants_are_computed_once_and_the_rest_gives_the_same_rows() {
        let ctx = session().await;
        let timed = BTreeSet::from(["accelerometer_trusted".to_string()]);

        let hoisted = hoist(&ctx, MODEL, &timed).await.unwrap();

        let names: Vec<&str> = hoisted.tables.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["customers", "numbers"]);
        assert!(
            hoisted.sql.starts_with("WITH phone AS ("),
            "{}",
            hoisted.sql
        );
        assert!(!hoisted.sql.contains("numbers AS ("), "{}", hoisted.sql);
        let slice = SessionContext::new();
        slice
            .register_table(
                "accelerometer_trusted",
                ctx.table_provider("accelerometer_trusted").await.unwrap(),
            )
            .unwrap();
        for (name, table) in hoisted.tables {
            slice.register_table(name, table).unwrap();
        }
        let whole = ctx.sql(MODEL).await.unwrap().collect().await.unwrap();
        let sliced = slice
            .sql(&hoisted.sql)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(
            pretty_format_batches(&sliced).unwrap().to_string(),
            pretty_format_batches(&whole).unwrap().to_string()
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
