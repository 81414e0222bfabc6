//! The main job: ingest what was landed, then build trusted and curated tables.

use crate::error::Result;
use crate::forgotten;
use crate::ingest::{self, IngestReport};
use crate::lakehouse::Lakehouse;
use crate::progress::Progress;
use crate::transform::{self, BuildOptions, ModelReport};

/// What one `stedi run` did.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// Files and rows ingested, per source.
    pub ingest: IngestReport,
    /// The trusted and curated tables.
    pub models: Vec<ModelReport>,
}

/// Runs the pipeline once, holding the lakehouse's writer lease (a second command that
/// would change the lakehouse meanwhile stops, saying this one holds it).
pub async fn run(
    lakehouse: &Lakehouse,
    options: BuildOptions,
    progress: &Progress,
) -> Result<RunReport> {
    let lease = lakehouse.lease("stedi run").await?;
    let result = run_holding(lakehouse, options, progress).await;
    lease.release().await;
    result
}

async fn run_holding(
    lakehouse: &Lakehouse,
    options: BuildOptions,
    progress: &Progress,
) -> Result<RunReport> {
    let ingest = ingest::ingest(lakehouse, progress).await?;
    // Lines of erased people refused at ingest leave the raw files too, so that no copy
    // of the person stays.
    for (source, part) in &ingest.sources {
        for (batch, lines) in &part.refused {
            forgotten::remove_refused_lines(lakehouse, *source, *batch, lines).await?;
        }
    }
    let models = transform::build(lakehouse, options, progress).await?;
    Ok(RunReport { ingest, models })
}

/// Replaces the customer-key secret and re-keys the curated tables in the same run
/// (every model is rebuilt, because each table records the secret it was built with).
pub async fn rotate_key(lakehouse: &Lakehouse, progress: &Progress) -> Result<Vec<ModelReport>> {
    let lease = lakehouse.lease("stedi rotate-key").await?;
    let result = async {
        lakehouse.rotate_customer_key_secret().await?;
        transform::build(lakehouse, BuildOptions::default(), progress).await
    }
    .await;
    lease.release().await;
    result
}
