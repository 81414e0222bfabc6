//! Transform: the SQL models, run in dependency order into trusted and curated tables.
//!
//! Every model is computed and its files written before any table is published; then
//! each table is replaced in one commit. A model that fails leaves every table at its
//! previous version. A run whose inputs, models and policy are unchanged rebuilds nothing.

pub mod dag;
pub mod functions;
pub mod models;

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::datasource::empty::EmptyTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::physical_plan::execute_stream_partitioned;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::StreamExt;
use sha2::{Digest, Sha256};

use crate::delta::{self, FINGERPRINT_KEY, FileWriter, StagedFiles};
use crate::error::{Result, StediError};
use crate::ingest::feed::Source;
use crate::lakehouse::Lakehouse;
use crate::lakehouse::layout::{TableId, Zone};
use crate::progress::Progress;
pub use functions::ConsentPolicy;

/// What happened to one model's table in a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelReport {
    /// The table.
    pub table: TableId,
    /// Rows in its current version.
    pub rows: u64,
    /// Its current version.
    pub version: i64,
    /// Whether this run wrote a new version.
    pub rebuilt: bool,
}

/// Memory that queries may hold before they spill to disk, unless `STEDI_MEMORY_LIMIT`
/// says otherwise (bytes, or with a `K`, `M` or `G` suffix).
const DEFAULT_MEMORY_LIMIT: usize = 1 << 30;

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

/// Builds every trusted and curated table from the current landing tables.
pub async fn build(
    lakehouse: &Lakehouse,
    policy: ConsentPolicy,
    progress: &Progress,
) -> Result<Vec<ModelReport>> {
    let secret = lakehouse.customer_key_secret().await?;
    let ctx = session();
    functions::register(&ctx, policy, secret.clone());

    let mut inputs = Vec::new();
    for source in Source::ALL {
        let id = TableId::new(Zone::Landing, source.landing_table());
        let table = lakehouse
            .load_table(&id)
            .await?
            .ok_or_else(|| StediError::NothingLanded {
                location: lakehouse.location().to_string(),
            })?;
        delta::register(&ctx, &id.name, &table).await?;
        inputs.push(format!("{}@{}", id.name, delta::version(&table)));
    }
    let base: Vec<&str> = Source::ALL.iter().map(|s| s.landing_table()).collect();
    let nodes = dag::order(models::MODELS, &base)?;

    let fingerprint = {
        let mut h = Sha256::new();
        for node in &nodes {
            h.update(node.model.name.as_bytes());
            h.update(node.model.sql.as_bytes());
        }
        h.update(policy.name().as_bytes());
        h.update(inputs.join(",").as_bytes());
        h.update(Sha256::digest(&secret));
        hex::encode(h.finalize())
    };

    let mut reports = Vec::new();
    let mut staged = Vec::new();
    for node in &nodes {
        let id = node.model.table();
        let existing = lakehouse.load_table(&id).await?;
        if let Some(table) = &existing {
            let recorded = delta::last_commit_value(table, FINGERPRINT_KEY).await?;
            if recorded.as_ref().and_then(|v| v.as_str()) == Some(fingerprint.as_str()) {
                delta::register(&ctx, &id.name, table).await?;
                reports.push(ModelReport {
                    table: id,
                    rows: delta::row_count(table).unwrap_or(0),
                    version: delta::version(table),
                    rebuilt: false,
                });
                continue;
            }
        }
        let stage = progress.step(&format!("build {}", id.name));
        stage.message("computing");
        let handle = match existing {
            Some(t) => t,
            None => lakehouse.table_handle(&id).await?,
        };
        let started = std::time::Instant::now();
        let files = run_model(&ctx, node.model.sql, &handle, &id).await?;
        tracing::info!(
            model = %id.name,
            rows = files.rows(),
            files = files.adds.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "built"
        );
        stage.finish(format!("{} rows", files.rows()));
        register_staged(&ctx, lakehouse, &id, &files)?;
        staged.push((id, files));
    }

    // Every model succeeded: publish, one commit per table.
    let metadata = HashMap::from([(
        FINGERPRINT_KEY.to_string(),
        serde_json::Value::String(fingerprint.clone()),
    )]);
    for (id, files) in staged {
        let rows = files.rows();
        let started = std::time::Instant::now();
        let version = delta::commit_replace(lakehouse, &id, files, metadata.clone()).await?;
        tracing::info!(
            table = %id.name,
            version,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "published"
        );
        reports.push(ModelReport {
            table: id,
            rows,
            version,
            rebuilt: true,
        });
    }
    reports.sort_by_key(|r| nodes.iter().position(|n| n.model.name == r.table.name));
    Ok(reports)
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
    let df = ctx.sql(sql).await.map_err(failed)?;
    let plan = df.create_physical_plan().await.map_err(failed)?;
    let schema = plan.schema();
    let streams = execute_stream_partitioned(plan, ctx.task_ctx()).map_err(failed)?;
    let mut tasks = Vec::with_capacity(streams.len());
    for mut stream in streams {
        let mut writer = FileWriter::new(table, schema.clone());
        let name = id.name.clone();
        tasks.push(tokio::spawn(async move {
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
        }));
    }
    let mut parts = Vec::with_capacity(tasks.len());
    for task in tasks {
        parts.push(
            task.await
                .map_err(|e| StediError::Output(e.to_string()))??,
        );
    }
    Ok(StagedFiles::merge(schema, parts))
}

/// Lets the models downstream read a model's staged (not yet published) files.
fn register_staged(
    ctx: &SessionContext,
    lakehouse: &Lakehouse,
    id: &TableId,
    files: &StagedFiles,
) -> Result<()> {
    ctx.deregister_table(&id.name)?;
    if files.adds.is_empty() {
        ctx.register_table(&id.name, Arc::new(EmptyTable::new(files.schema.clone())))?;
        return Ok(());
    }
    let root = lakehouse.table_url(id);
    let urls = files
        .adds
        .iter()
        .map(|add| {
            let url = root.join(&add.path).map_err(|e| StediError::Model {
                model: id.name.clone(),
                message: format!("bad data file path `{}`: {e}", add.path),
            })?;
            Ok(ListingTableUrl::parse(url.as_str())?)
        })
        .collect::<Result<Vec<_>>>()?;
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .with_schema(files.schema.clone());
    ctx.register_table(&id.name, Arc::new(ListingTable::try_new(config)?))?;
    Ok(())
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
