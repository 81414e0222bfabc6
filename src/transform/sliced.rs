//! A full rebuild of a large per-reading model in slices of time.
//!
//! Every row of a per-reading model depends only on rows of its own instant (and on the
//! customers given its serial number), so a model whose joins would not fit the memory
//! limit is built one range of instants after another, each slice over its inputs
//! restricted to that range, into the same commit. What is the same in every slice (the
//! numbered customers) is computed once, before them (see [`super::invariant`]).

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use datafusion::catalog::TableProvider;
use datafusion::common::ScalarValue;
use datafusion::physical_plan::{StatisticsArgs, StatisticsContext};
use datafusion::prelude::SessionContext;

use super::incremental::{Span, count_of, gather_strings, has_reading_key, time_column};
use super::{invariant, run_model, slice};
use crate::delta::StagedFiles;
use crate::error::Result;
use crate::models::Grain;
use crate::models::dag::Node;
use crate::progress::Stage;

/// Builds a per-reading model in slices of time when its largest input holds more rows
/// than one slice may ([`crate::session::rows_per_slice`]); `None` when it is built at
/// once (not per reading, or small enough).
pub async fn build(
    ctx: &SessionContext,
    node: &Node,
    handle: &deltalake::DeltaTable,
    stage: &Stage,
) -> Result<Option<StagedFiles>> {
    let id = node.model.table();
    let started = std::time::Instant::now();
    let inputs: Vec<String> = node.reads.iter().cloned().collect();
    // The inputs a slice of time restricts: only a per-reading model is sliced.
    let timed = match node.model.header()?.incremental {
        Some(Grain::Reading) => timed_inputs(ctx, &inputs).await?,
        _ => return Ok(None),
    };
    let n = largest_input(ctx, &timed)
        .await?
        .div_ceil(crate::session::rows_per_slice());
    if n <= 1 {
        return Ok(None);
    }
    let Some((lo, hi)) = span_of(ctx, &timed).await? else {
        return Ok(None);
    };
    // Too large to join in memory at once: one slice of time after another. What is the
    // same in every slice is computed once, before them.
    let hoisted = invariant::hoist(ctx, node.model.sql, &timed).await?;
    tracing::debug!(model = %id.name, hoisted_ms = started.elapsed().as_millis() as u64, "hoisted");
    // `n` slices cover the instants `lo..=hi`, the last one possibly shorter.
    let width = (hi - lo) / n as i64 + 1;
    let mut parts = Vec::new();
    let mut schema = None;
    let mut from = lo;
    let mut i = 0;
    while from <= hi {
        i += 1;
        let until = (from + width).min(hi + 1);
        stage.message(format!("slice {i} of {n}"));
        let sliced = std::time::Instant::now();
        let slice = time_slice_session(ctx, &inputs, from, until).await?;
        let serials = serials_in_slice(&slice, &timed).await?;
        hoisted.register_in(&slice, serials.as_ref())?;
        let prepared_ms = sliced.elapsed().as_millis() as u64;
        let part = run_model(&slice, &hoisted.sql, handle, &id).await?;
        tracing::debug!(
            model = %id.name,
            slice = i,
            prepared_ms,
            built_ms = sliced.elapsed().as_millis() as u64,
            "slice built"
        );
        schema = Some(part.schema.clone());
        parts.push(part.adds);
        from = until;
    }
    tracing::info!(model = %id.name, slices = i, "built in slices of time");
    Ok(schema.map(|schema| StagedFiles::merge(schema, parts)))
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
) -> Result<SessionContext> {
    let ctx = crate::session::session_like(base);
    for name in inputs {
        let provider = base.table_provider(name.as_str()).await?;
        let input = match time_column(&provider.schema()) {
            Some(c) => {
                let slice = format!("t.\"{c}\" >= {from} AND t.\"{c}\" < {until}");
                slice::rows_where(&ctx, name, provider, &slice)
                    .await?
                    .into_view()
            }
            None => provider,
        };
        ctx.register_table(name.as_str(), input)?;
    }
    Ok(ctx)
}

/// The serial numbers of the step-trainer readings in a slice of time (see
/// [`time_slice_session`]): under the per-reading grain a reading depends only on the
/// customers given its serial number, so these are the only customers the slice needs.
/// `None` when no input of the slice holds readings.
pub async fn serials_in_slice(
    slice: &SessionContext,
    timed: &BTreeSet<String>,
) -> Result<Option<HashSet<String, ahash::RandomState>>> {
    for name in timed {
        let provider = slice.table_provider(name.as_str()).await?;
        if has_reading_key(&provider.schema()) {
            let (serials, _) = gather_strings(
                slice,
                &format!("SELECT DISTINCT \"serialNumber\" FROM \"{name}\""),
            )
            .await?;
            return Ok(Some(serials));
        }
    }
    Ok(None)
}

/// The inputs that have instants (a reading time): those a slice of time restricts.
pub async fn timed_inputs(ctx: &SessionContext, inputs: &[String]) -> Result<BTreeSet<String>> {
    let mut timed = std::collections::BTreeSet::new();
    for name in inputs {
        let provider = ctx.table_provider(name.as_str()).await?;
        if time_column(&provider.schema()).is_some() {
            timed.insert(name.clone());
        }
    }
    Ok(timed)
}

/// The largest row count among `timed` inputs (see [`timed_inputs`]): what decides
/// whether a per-reading model is built in slices. It is taken from an input's
/// statistics (its Parquet footers or Delta log) when it has them, which reads no rows,
/// and counted otherwise.
pub async fn largest_input(ctx: &SessionContext, timed: &BTreeSet<String>) -> Result<u64> {
    let mut rows = 0;
    for name in timed {
        let provider = ctx.table_provider(name.as_str()).await?;
        let known = scan_statistics(ctx, &provider, None)
            .await?
            .num_rows
            .get_value()
            .copied();
        let count = match known {
            Some(n) => n as u64,
            None => count_of(ctx.sql(&format!("SELECT count(*) FROM \"{name}\"")).await?).await?,
        };
        rows = rows.max(count);
    }
    Ok(rows)
}

/// The earliest and latest instant among `timed` inputs: the range a per-reading model
/// too large to build at once is cut into slices of. An input's range is taken from its
/// statistics (the bounds in its Parquet footers) when they hold one, which reads no
/// rows: those bounds may be wider than its instants, never narrower. Otherwise it is
/// queried.
pub async fn span_of(ctx: &SessionContext, timed: &BTreeSet<String>) -> Result<Option<Span>> {
    let mut span: Option<Span> = None;
    for name in timed {
        let provider = ctx.table_provider(name.as_str()).await?;
        let schema = provider.schema();
        let Some(column) = time_column(&schema) else {
            continue;
        };
        let index = schema
            .index_of(column)
            .map_err(datafusion::error::DataFusionError::from)?;
        let range = match bounds_in_statistics(ctx, &provider, index).await? {
            Some(range) => Some(range),
            None => queried_range(ctx, name, column).await?,
        };
        if let Some((lo, hi)) = range {
            span = Some(span.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
        }
    }
    Ok(span)
}

/// The lowest and highest value of an integer column as the statistics of a table's
/// scan give them, when they give both.
async fn bounds_in_statistics(
    ctx: &SessionContext,
    provider: &Arc<dyn TableProvider>,
    column: usize,
) -> Result<Option<Span>> {
    let statistics = scan_statistics(ctx, provider, Some(vec![column])).await?;
    let Some(column) = statistics.column_statistics.first() else {
        return Ok(None);
    };
    let int = |v: Option<&ScalarValue>| match v {
        Some(ScalarValue::Int64(Some(v))) => Some(*v),
        _ => None,
    };
    Ok(int(column.min_value.get_value()).zip(int(column.max_value.get_value())))
}

/// What a table's scan (of the columns `projection`, or all) knows without reading rows:
/// its row count and column bounds, from Parquet footers or the Delta log.
async fn scan_statistics(
    ctx: &SessionContext,
    provider: &Arc<dyn TableProvider>,
    projection: Option<Vec<usize>>,
) -> Result<Arc<datafusion::common::Statistics>> {
    let scan = provider
        .scan(&ctx.state(), projection.as_ref(), &[], None)
        .await?;
    Ok(StatisticsContext::new().compute(scan.as_ref(), &StatisticsArgs::new())?)
}

/// The lowest and highest instant in `column` of the table `name`, read from its rows.
async fn queried_range(ctx: &SessionContext, name: &str, column: &str) -> Result<Option<Span>> {
    let batches = ctx
        .sql(&format!(
            "SELECT min(CAST(\"{column}\" AS BIGINT)), max(CAST(\"{column}\" AS BIGINT)) FROM \"{name}\""
        ))
        .await?
        .collect()
        .await?;
    let Some(batch) = batches.first().filter(|b| b.num_rows() > 0) else {
        return Ok(None);
    };
    let int = |i: usize| {
        let column = batch
            .column(i)
            .as_primitive::<arrow::datatypes::Int64Type>();
        (!column.is_null(0)).then(|| column.value(0))
    };
    Ok(int(0).zip(int(1)))
}
