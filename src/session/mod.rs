//! How every query of stedi runs: the engine's settings, the memory it may hold, the SQL
//! functions, and sessions with the lakehouse's tables registered.
//!
//! The models (`transform`), `stedi sql` (`serve`), the run history and the erasure all
//! query through sessions made here, so that they see the same settings and functions.

pub mod functions;

use std::sync::Arc;

use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::catalog;
use crate::delta;
use crate::error::Result;
use crate::lakehouse::Lakehouse;
use crate::lakehouse::layout::{self, TableId};

/// Memory that queries may hold before they spill to disk, unless `STEDI_MEMORY_LIMIT`
/// says otherwise (bytes, or with a `K`, `M` or `G` suffix).
const DEFAULT_MEMORY_LIMIT: usize = 1 << 30;

/// Rows of the largest input a per-reading model joins in one go: a quarter of a
/// kilobyte of the memory limit per row, which keeps a slice's hash tables within it.
pub fn rows_per_slice() -> u64 {
    (memory_limit() as u64 / 256).max(1)
}

/// The query memory limit in bytes: `STEDI_MEMORY_LIMIT` or [`DEFAULT_MEMORY_LIMIT`].
pub fn memory_limit() -> usize {
    std::env::var("STEDI_MEMORY_LIMIT")
        .ok()
        .and_then(|v| parse_size(&v))
        .unwrap_or(DEFAULT_MEMORY_LIMIT)
}

/// A size as people write it: bytes, or with a `K`, `M` or `G` suffix (`512M`, `2GiB`).
pub fn parse_size(text: &str) -> Option<usize> {
    let text = text.trim().trim_end_matches(['b', 'B', 'i']);
    let (digits, unit) = match text.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&text[..i], c.to_ascii_uppercase()),
        _ => (text, ' '),
    };
    let shift = match unit {
        ' ' => 0,
        'K' => 10,
        'M' => 20,
        'G' => 30,
        _ => return None,
    };
    digits.trim().parse::<usize>().ok().map(|n| n << shift)
}

/// A session with the settings every stedi query runs with: identifiers as written,
/// one partition per core, and a memory pool beyond which sorts and aggregations spill.
pub fn session() -> SessionContext {
    // `DATAFUSION_*` variables tune the engine (e.g. `DATAFUSION_OPTIMIZER_PREFER_HASH_JOIN`).
    let config = SessionConfig::from_env().unwrap_or_else(|e| {
        tracing::warn!("ignoring the DATAFUSION_* settings: {e}");
        SessionConfig::new()
    });
    let mut config = config
        .with_information_schema(true)
        .with_target_partitions(std::thread::available_parallelism().map_or(2, |n| n.get()));
    // Column names are case-sensitive as in the feeds (`serialNumber`), without quotes.
    config.options_mut().sql_parser.enable_ident_normalization = false;
    // A sort sets this much aside to merge what it spilled; with several sorts sharing a
    // small pool, the default (10 MiB each) alone can exhaust it.
    if std::env::var_os("DATAFUSION_EXECUTION_SORT_SPILL_RESERVATION_BYTES").is_none() {
        let execution = &mut config.options_mut().execution;
        execution.sort_spill_reservation_bytes = execution
            .sort_spill_reservation_bytes
            .min(memory_limit() / 32);
    }
    // A partial aggregation pays for itself when it shrinks what is repartitioned; on one
    // machine, grouping readings by instant (nearly one group per three rows) it only
    // doubles the work. Skip it unless it shrinks the rows tenfold.
    if std::env::var_os("DATAFUSION_EXECUTION_SKIP_PARTIAL_AGGREGATION_PROBE_RATIO_THRESHOLD")
        .is_none()
    {
        config
            .options_mut()
            .execution
            .skip_partial_aggregation_probe_ratio_threshold = 0.1;
    }
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(FairSpillPool::new(memory_limit())))
        .build_arc();
    match runtime {
        Ok(runtime) => SessionContext::new_with_config_rt(config, runtime),
        Err(e) => {
            tracing::warn!("cannot set up the memory pool ({e}); running without a limit");
            SessionContext::new_with_config(config)
        }
    }
}

/// A new session with `base`'s settings, memory pool and SQL functions but none of its
/// tables: where a model runs over its inputs registered differently (restricted to a
/// few customers, to a slice of time) or where parts of it are computed ahead.
pub fn session_like(base: &SessionContext) -> SessionContext {
    let ctx = SessionContext::new_with_config_rt(base.copied_config(), base.runtime_env());
    for function in base.state().scalar_functions().values() {
        ctx.register_udf(function.as_ref().clone());
    }
    ctx
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
    let ctx = session();
    // Analysts match customers the way the models do.
    functions::register_customer_id(&ctx);
    for id in queryable_tables()? {
        if let Some(table) = lakehouse.load_table(&id).await? {
            delta::register(&ctx, &id.name, &table).await?;
        }
    }
    Ok(ctx)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn memory_sizes_read_like_people_write_them() {
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("512M"), Some(512 << 20));
        assert_eq!(parse_size("2GiB"), Some(2 << 30));
        assert_eq!(parse_size("3g"), Some(3 << 30));
        assert_eq!(parse_size("lots"), None);
    }
}
