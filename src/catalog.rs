//! The tables of a lakehouse, in the order data flows through them.

use crate::error::Result;
use crate::ingest::feed::Source;
use crate::lakehouse::layout::{self, TableId, Zone};
use crate::transform::{dag, models};

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
