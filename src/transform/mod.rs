//! Transform: the SQL models, run in dependency order into trusted and curated tables.
//!
//! A table is rebuilt in full when it is new, when `--full` is asked for, or when the
//! models, the consent policy or the key secret changed; otherwise only the rows of the
//! customers and readings that newly ingested files touch are recomputed (see
//! [`incremental`]). Either way each table changes in one commit, and a run with nothing
//! new writes nothing.

pub mod incremental;
mod invariant;
mod planner;
pub mod record;
mod slice;
mod sliced;

use std::collections::HashMap;

use datafusion::physical_plan::execute_stream_partitioned;
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use crate::delta::{self, FileWriter, StagedFiles};
use crate::error::{Result, StediError};
use crate::feed::Source;
use crate::ingest::ledger::Ledger;
use crate::lakehouse::Lakehouse;
use crate::lakehouse::layout::{TableId, Zone};
use crate::models::{self, ConsentPolicy, dag};
use crate::progress::Progress;
use crate::session::{self, functions};
use incremental::Affected;
use record::{FINGERPRINT_KEY, WATERMARK_KEY, Watermark};

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
    let ctx = session::session();
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
                let record = record::build_record(&table).await?;
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
        None => {
            record::recorded_policy(existing.values().map(|(_, record)| record)).unwrap_or_default()
        }
    };
    functions::register(&ctx, policy, secret.clone());

    let fingerprint = record::fingerprint(&nodes, policy, &secret);
    let metadata = record::metadata(&fingerprint, &current, policy);

    // Affected keys by watermark: tables built together share one computation.
    let mut affected_since: Vec<(Watermark, Affected)> = Vec::new();
    let mut reports = Vec::new();
    for node in &nodes {
        let id = node.model.table();
        let grain = node.model.header()?.incremental;
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
    let files = match sliced::build(ctx, node, &handle, &stage).await? {
        Some(files) => files,
        None => run_model(ctx, node.model.sql, &handle, &id).await?,
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
    delta::register_data_files(
        ctx,
        lakehouse,
        id,
        &files.data_files(),
        files.schema.clone(),
    )
}
