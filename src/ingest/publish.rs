//! Publishing one decoded batch: its quarantine commit, then its landing commit, both
//! marked with the batch number, so that a run killed in between resumes exactly.

use std::collections::HashMap;

use deltalake::DeltaTable;
use deltalake::kernel::Transaction;

use super::decoding::Decoded;
use super::{Batch, SourceIngest, StopAfter, ledger};
use crate::delta::{self, StagedFiles};
use crate::error::{Result, StediError};
use crate::feed::Source;
use crate::lakehouse::{Lakehouse, layout};

/// Publishes one decoded batch: quarantine commit, then landing commit.
pub(super) async fn publish(
    _lakehouse: &Lakehouse,
    batch: &Batch,
    decoded: Decoded,
    landing: &mut DeltaTable,
    quarantine: &mut DeltaTable,
    stop: Option<StopAfter>,
) -> Result<SourceIngest> {
    let Decoded {
        adds,
        rejected,
        rows,
    } = decoded;
    let source = batch.source;
    let reasons = rejected.reasons();
    let erased_lines = rejected.erased_lines();
    let app = ledger::app_id(source);
    let quarantine_name = layout::quarantine().name;

    // Quarantine first: the landing commit is what marks the batch as done. A batch
    // without rejected lines writes no quarantine version (decoding it again on a resumed
    // run rejects nothing again).
    let already = delta::transaction_version(quarantine, &quarantine_name, &app).await?;
    if !rejected.is_empty() && already.unwrap_or(0) < batch.number {
        let quarantined = rejected.len() as u64;
        delta::append_batch(
            quarantine,
            &quarantine_name,
            rejected.into_batch(source),
            vec![Transaction::new(&app, batch.number)],
            commit_metadata(source, batch.number, quarantined),
        )
        .await?;
    }
    if stop == Some(StopAfter::Quarantine) {
        return Err(StediError::Interrupted);
    }
    delta::commit_append(
        landing,
        source.landing_table(),
        StagedFiles::merge(source.landing_schema(), adds),
        vec![Transaction::new(&app, batch.number)],
        commit_metadata(source, batch.number, rows),
    )
    .await?;
    batch.stage.finish(format!(
        "{rows} rows, {} quarantined",
        reasons.values().sum::<u64>()
    ));
    Ok(SourceIngest {
        files: batch.files.len(),
        bytes: batch.files.iter().map(|f| f.size).sum(),
        rows,
        quarantined: reasons,
        refused: match erased_lines.is_empty() {
            true => Vec::new(),
            false => vec![(batch.number, erased_lines)],
        },
    })
}

fn commit_metadata(source: Source, batch: i64, rows: u64) -> HashMap<String, serde_json::Value> {
    HashMap::from([(
        "stedi.ingest".to_string(),
        serde_json::json!({ "source": source.name(), "batch": batch, "rows": rows }),
    )])
}
