//! Transform: the SQL models, run in dependency order into trusted and curated tables.
//!
//! A table is rebuilt in full when it is new, when `--full` is asked for, or when the
//! models, the consent policy or the key secret changed; otherwise only the rows of the
//! customers and readings that newly ingested files touch are recomputed (see
//! [`incremental`]). Either way each table changes in one commit, and a run with nothing
//! new writes nothing.

pub mod dag;
pub mod functions;
pub mod incremental;
mod invariant;
pub mod models;
mod planner;
mod slice;

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::physical_plan::execute_stream_partitioned;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::StreamExt;
use sha2::{Digest, Sha256};

use crate::delta::{self, FINGERPRINT_KEY, FileWriter, StagedFiles};
use crate::error::{Result, StediError};
use crate::ingest::feed::Source;
use crate::ingest::ledger::Ledger;
use crate::lakehouse::Lakehouse;
use crate::lakehouse::layout::{TableId, Zone};
use crate::progress::Progress;
pub use functions::ConsentPolicy;
use incremental::{Affected, Watermark};

/// How a run changed one model's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Nothing it depends on changed: no new version.
    Unchanged,
    /// Rebuilt from all landed data (first run, `--full`, or the models, the consent
    /// policy or the key secret changed).
    Rebuilt,
    /// The rows of the affected customers or readings were replaced in place.
    Updated {
        /// Rows removed (old rows of affected keys).
        removed: u64,
        /// Rows added (recomputed rows of affected keys).
        added: u64,
    },
}

/// What happened to one model's table in a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelReport {
    /// The table.
    pub table: TableId,
    /// Rows in its current version.
    pub rows: u64,
    /// Its current version.
    pub version: i64,
    /// What this run did to it.
    pub change: Change,
}

impl ModelReport {
    /// Whether this run wrote a new version.
    pub fn written(&self) -> bool {
        self.change != Change::Unchanged
    }
}

/// How to build the trusted and curated tables.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BuildOptions {
    /// The consent policy; `None` keeps the one the tables were built with (any-time
    /// for a new lakehouse).
    pub consent: Option<ConsentPolicy>,
    /// Rebuild every table from all landed data instead of updating it in place.
    pub full: bool,
}

impl From<ConsentPolicy> for BuildOptions {
    fn from(policy: ConsentPolicy) -> Self {
        BuildOptions {
            consent: Some(policy),
            full: false,
        }
    }
}

/// Commit metadata: which ingested batches a table reflects.
const WATERMARK_KEY: &str = "stedi.watermark";
/// Commit metadata: the consent policy a table was built with.
const CONSENT_KEY: &str = "stedi.consent";

/// Memory that queries may hold before they spill to disk, unless `STEDI_MEMORY_LIMIT`
/// says otherwise (bytes, or with a `K`, `M` or `G` suffix).
const DEFAULT_MEMORY_LIMIT: usize = 1 << 30;

/// Rows of the largest input a per-reading model joins in one go: a quarter of a
/// kilobyte of the memory limit per row, which keeps a slice's hash tables within it.
fn rows_per_slice() -> u64 {
    (memory_limit() as u64 / 256).max(1)
}

/// The query memory limit in bytes: `STEDI_MEMORY_LIMIT` or [`DEFAULT_MEMORY_LIMIT`].
pub fn memory_limit() -> usize {
    std::env::var("STEDI_MEMORY_LIMIT")
        .ok()
        .and_then(|v| parse_size(&v))
        .unwrap_or(DEFAULT_MEMORY_LIMIT)
}

fn parse_size(text: &str) -> Option<usize> {
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
fn session_like(base: &SessionContext) -> SessionContext {
    let ctx = SessionContext::new_with_config_rt(base.copied_config(), base.runtime_env());
    for function in base.state().scalar_functions().values() {
        ctx.register_udf(function.as_ref().clone());
    }
    ctx
}

/// Brings every trusted and curated table up to date with the landing tables.
///
/// Each model is, in dependency order, left alone when nothing it depends on changed,
/// updated in place for the customers and readings that new files touch (see
/// [`incremental`]), or rebuilt in full. Each table changes in one commit, which records
/// what it was built from, so a run stopped between two tables is completed by the next.
pub async fn build(
    lakehouse: &Lakehouse,
    options: BuildOptions,
    progress: &Progress,
) -> Result<Vec<ModelReport>> {
    let ctx = session();
    let base: Vec<&str> = Source::ALL.iter().map(|s| s.landing_table()).collect();
    let nodes = dag::order(models::MODELS, &base)?;
    // What a build starts from, read at the same time: the landing tables, each model's
    // table with its build record, the ledger and the key secret.
    let landing = futures::future::try_join_all(Source::ALL.iter().map(|source| async move {
        let id = TableId::new(Zone::Landing, source.landing_table());
        let table = lakehouse
            .load_table(&id)
            .await?
            .ok_or_else(|| StediError::NothingLanded {
                location: lakehouse.location().to_string(),
            })?;
        Ok::<_, StediError>((id, table))
    }));
    let loaded = futures::future::try_join_all(nodes.iter().map(|node| async move {
        let id = node.model.table();
        Ok::<_, StediError>(match lakehouse.load_table(&id).await? {
            Some(table) => {
                let record = delta::build_record(&table).await?;
                Some((id.name, (table, record)))
            }
            None => None,
        })
    }));
    let (secret, landing, loaded, ledger) = futures::try_join!(
        lakehouse.customer_key_secret(),
        landing,
        loaded,
        Ledger::load(lakehouse)
    )?;
    for (id, table) in &landing {
        delta::register_files(&ctx, lakehouse, id, table).await?;
    }
    let current = Watermark::current(&ledger);
    let mut existing: HashMap<_, _> = loaded.into_iter().flatten().collect();
    let policy = match options.consent {
        Some(policy) => policy,
        None => recorded_policy(existing.values().map(|(_, record)| record)).unwrap_or_default(),
    };
    functions::register(&ctx, policy, secret.clone());

    let fingerprint = {
        let mut h = Sha256::new();
        for node in &nodes {
            h.update(node.model.name.as_bytes());
            h.update(node.model.sql.as_bytes());
        }
        h.update(policy.name().as_bytes());
        h.update(Sha256::digest(&secret));
        hex::encode(h.finalize())
    };
    let metadata = HashMap::from([
        (
            FINGERPRINT_KEY.to_string(),
            serde_json::Value::from(fingerprint.clone()),
        ),
        (WATERMARK_KEY.to_string(), current.to_json()),
        (
            CONSENT_KEY.to_string(),
            serde_json::Value::from(policy.name()),
        ),
    ]);

    // Affected keys by watermark: tables built together share one computation.
    let mut affected_since: Vec<(Watermark, Affected)> = Vec::new();
    let mut reports = Vec::new();
    for node in &nodes {
        let id = node.model.table();
        let grain = incremental::Grain::declared_in(node.model.sql);
        let (table, record) = existing.remove(&id.name).unzip();
        let built_from = match (record, options.full, grain) {
            (Some(record), false, Some(grain))
                if record.get(FINGERPRINT_KEY).and_then(|v| v.as_str())
                    == Some(fingerprint.as_str()) =>
            {
                record
                    .get(WATERMARK_KEY)
                    .and_then(Watermark::from_json)
                    .map(|w| (w, grain))
            }
            _ => None,
        };
        let (mut table, (mark, grain)) = match (table, built_from) {
            (Some(table), Some(built_from)) => (table, built_from),
            (table, _) => {
                reports.push(rebuild(&ctx, lakehouse, node, table, &metadata, progress).await?);
                continue;
            }
        };
        let started = std::time::Instant::now();
        let affected = if mark.covers(&current) {
            None
        } else {
            Some(match affected_since.iter().find(|(w, _)| *w == mark) {
                Some((_, a)) => a.clone(),
                None => {
                    // Reading the landing tables for the affected keys is part of
                    // updating this model: a failure names it.
                    let a = incremental::affected(&ctx, &ledger, &mark)
                        .await
                        .map_err(|e| StediError::Model {
                            model: id.name.clone(),
                            message: e.to_string(),
                        })?;
                    affected_since.push((mark.clone(), a.clone()));
                    a
                }
            })
        };
        let Some(affected) = affected.filter(|a| !a.is_empty_for(grain)) else {
            // Nothing this table depends on arrived since it was built.
            delta::register_files(&ctx, lakehouse, &id, &table).await?;
            reports.push(ModelReport {
                rows: delta::row_count(&table).unwrap_or(0),
                version: delta::version(&table),
                table: id,
                change: Change::Unchanged,
            });
            continue;
        };
        let stage = progress.step(&format!("update {}", id.name));
        stage.message(incremental::describe(&affected));
        let inputs: Vec<String> = node.reads.iter().cloned().collect();
        let restricted = incremental::restricted_session(&ctx, &inputs, grain, &affected).await?;
        let prepared_ms = started.elapsed().as_millis() as u64;
        let added = run_model(&restricted, node.model.sql, &table, &id).await?;
        let computed_ms = started.elapsed().as_millis() as u64;
        let removal =
            incremental::remove_affected(&ctx, lakehouse, &id, &table, grain, &affected).await?;
        tracing::debug!(
            model = %id.name,
            prepared_ms,
            computed_ms,
            removed_ms = started.elapsed().as_millis() as u64,
            "update steps"
        );
        let (removed, added_rows) = (removal.rows, added.rows());
        let version = delta::commit_update(
            &mut table,
            &id.name,
            removal.rewrites,
            added.adds,
            grain.label(),
            metadata.clone(),
        )
        .await?;
        tracing::info!(
            model = %id.name,
            affected = %incremental::describe(&affected),
            removed,
            added = added_rows,
            version,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "updated"
        );
        stage.finish(format!("-{removed} +{added_rows} rows"));
        delta::register_files(&ctx, lakehouse, &id, &table).await?;
        reports.push(ModelReport {
            rows: delta::row_count(&table).unwrap_or(0),
            version,
            table: id,
            change: Change::Updated {
                removed,
                added: added_rows,
            },
        });
    }
    Ok(reports)
}

/// The consent policy the tables were last built with, if any.
fn recorded_policy<'a>(
    records: impl Iterator<Item = &'a HashMap<String, serde_json::Value>>,
) -> Option<ConsentPolicy> {
    let name = records
        .filter_map(|record| record.get(CONSENT_KEY)?.as_str())
        .next()?;
    [ConsentPolicy::AnyTime, ConsentPolicy::SinceConsent]
        .into_iter()
        .find(|p| p.name() == name)
}

/// Rebuilds one model from all its inputs and publishes it in one commit.
async fn rebuild(
    ctx: &SessionContext,
    lakehouse: &Lakehouse,
    node: &dag::Node,
    existing: Option<deltalake::DeltaTable>,
    metadata: &HashMap<String, serde_json::Value>,
    progress: &Progress,
) -> Result<ModelReport> {
    let id = node.model.table();
    let stage = progress.step(&format!("build {}", id.name));
    stage.message("computing");
    let handle = match existing {
        Some(t) => t,
        None => lakehouse.table_handle(&id).await?,
    };
    let started = std::time::Instant::now();
    let inputs: Vec<String> = node.reads.iter().cloned().collect();
    // The inputs a slice of time restricts: only a per-reading model is sliced.
    let timed = match incremental::Grain::declared_in(node.model.sql) {
        Some(incremental::Grain::Reading) => incremental::timed_inputs(ctx, &inputs).await?,
        _ => Default::default(),
    };
    let slices = match incremental::largest_input(ctx, &timed)
        .await?
        .div_ceil(rows_per_slice())
    {
        n if n > 1 => incremental::span_of(ctx, &timed)
            .await?
            .map(|span| (span, n)),
        _ => None,
    };
    let files = match slices {
        Some(((lo, hi), n)) if n > 1 => {
            // Too large to join in memory at once: one slice of time after another. What
            // is the same in every slice is computed once, before them.
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
                let slice = incremental::time_slice_session(ctx, &inputs, from, until).await?;
                let serials = incremental::serials_in_slice(&slice, &timed).await?;
                hoisted.register_in(&slice, serials.as_ref())?;
                let prepared_ms = sliced.elapsed().as_millis() as u64;
                let part = run_model(&slice, &hoisted.sql, &handle, &id).await?;
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
            match schema {
                Some(schema) => StagedFiles::merge(schema, parts),
                None => run_model(ctx, node.model.sql, &handle, &id).await?,
            }
        }
        _ => run_model(ctx, node.model.sql, &handle, &id).await?,
    };
    let rows = files.rows();
    tracing::info!(
        model = %id.name,
        rows,
        files = files.adds.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "built"
    );
    stage.finish(format!("{rows} rows"));
    register_staged(ctx, lakehouse, &id, &files)?;
    let version = delta::commit_replace(lakehouse, &id, files, metadata.clone()).await?;
    Ok(ModelReport {
        table: id,
        rows,
        version,
        change: Change::Rebuilt,
    })
}

/// Runs one model and writes its result as uncommitted files of its table, one writer
/// per partition so that both cores encode Parquet.
async fn run_model(
    ctx: &SessionContext,
    sql: &str,
    table: &deltalake::DeltaTable,
    id: &TableId,
) -> Result<StagedFiles> {
    let failed = |e: datafusion::error::DataFusionError| StediError::Model {
        model: id.name.clone(),
        message: e.to_string(),
    };
    let started = std::time::Instant::now();
    let state = planner::model_planner(ctx);
    let logical = state.create_logical_plan(sql).await.map_err(failed)?;
    let plan = state.create_physical_plan(&logical).await.map_err(failed)?;
    tracing::debug!(model = %id.name, planned_ms = started.elapsed().as_millis() as u64, "planned");
    tracing::trace!(
        model = %id.name,
        "plan with estimates:\n{}",
        datafusion::physical_plan::displayable(plan.as_ref())
            .set_show_statistics(true)
            .indent(true)
    );
    let schema = plan.schema();
    let streams = execute_stream_partitioned(plan, ctx.task_ctx()).map_err(failed)?;
    let mut tasks = Vec::with_capacity(streams.len());
    for mut stream in streams {
        let mut writer =
            FileWriter::new(table, schema.clone()).map_err(|e| StediError::delta(&id.name, e))?;
        let name = id.name.clone();
        tasks.push(async move {
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(|e| StediError::Model {
                    model: name.clone(),
                    message: e.to_string(),
                })?;
                writer
                    .write(&batch)
                    .await
                    .map_err(|e| StediError::delta(&name, e))?;
            }
            writer
                .close()
                .await
                .map_err(|e| StediError::delta(&name, e))
        });
    }
    let parts = crate::workers::run_all(tasks).await?;
    Ok(StagedFiles::merge(schema, parts))
}

/// Lets the models downstream read a model's staged (not yet published) files.
fn register_staged(
    ctx: &SessionContext,
    lakehouse: &Lakehouse,
    id: &TableId,
    files: &StagedFiles,
) -> Result<()> {
    let paths: Vec<String> = files.adds.iter().map(|add| add.path.clone()).collect();
    delta::register_paths(ctx, lakehouse, id, &paths, files.schema.clone())
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
