//! The tables of a lakehouse, in the order data flows through them, and their state.

use crate::delta;
use crate::error::Result;
use crate::feed::Source;
use crate::lakehouse::Lakehouse;
use crate::lakehouse::layout::{self, TableId, Zone};
use crate::models::{self, dag};

/// Every table of the contract: landing tables, quarantine, then the models in
/// dependency order.
pub fn tables() -> Result<Vec<TableId>> {
    let mut tables: Vec<TableId> = Source::ALL
        .iter()
        .map(|s| TableId::new(Zone::Landing, s.landing_table()))
        .collect();
    tables.push(layout::quarantine());
    let base: Vec<&str> = Source::ALL.iter().map(|s| s.landing_table()).collect();
    let mut modeled: Vec<TableId> = dag::order(models::MODELS, &base)?
        .into_iter()
        .map(|n| n.model.table())
        .collect();
    // Stable by zone, keeping dependency order within a zone.
    modeled.sort_by_key(|t| t.zone);
    tables.extend(modeled);
    Ok(tables)
}

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
    let ids = tables()?;
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
