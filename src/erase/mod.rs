//! Erasure: `stedi forget --email ADDRESS` removes a person from every zone, and proves it.
//!
//! In order:
//! 1. the address is tombstoned (a keyed hash), so that their records landed from now on
//!    are refused at ingest, even if this erasure is interrupted;
//! 2. the step-trainer readings attributed to them are found, before anything changes;
//! 3. raw landed files are rewritten without their lines ([`raw`]);
//! 4. their rows leave the landing tables and quarantine, one commit per table ([`tables`]);
//! 5. the trusted and curated tables are rebuilt from the cleaned landing tables;
//! 6. every table is vacuumed with zero retention: no older version can bring them back;
//! 7. all storage is searched for the address ([`scan`]); the [`Receipt`] says what was
//!    removed from where and what the scan found, and is stored under `_stedi/erasures/`.

pub mod raw;
pub mod scan;
pub mod tables;

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::datatypes::{DataType, Int64Type};

use crate::catalog;
use crate::delta;
use crate::error::{Result, StediError};
use crate::feed::Source;
use crate::feed::customer_key;
pub use crate::forgotten::receipt::{RawRewrite, Receipt, TableChange};
use crate::forgotten::{now, receipt, tombstone};
use crate::lakehouse::Lakehouse;
use crate::lakehouse::layout::{self, TableId, Zone};
use crate::models::ConsentPolicy;
use crate::models::{self, dag};
use crate::progress::Progress;
use crate::session::functions;
pub use raw::Reading;
pub use scan::{Needle, ScanResult};

/// The model whose rows say which step-trainer readings are a person's.
const ATTRIBUTION_MODEL: &str = "step_trainer_trusted";

/// Checks and normalizes an address as the whole product compares addresses: trimmed and
/// lower-cased. Anything that is not plausibly one e-mail address is refused, because a
/// short text would match (and erase) unrelated quarantined lines.
pub fn normalize_address(address: &str) -> Result<String> {
    let normalized = crate::feed::customer_id(address).into_owned();
    let bad = |reason: &str| StediError::BadAddress {
        reason: reason.to_string(),
    };
    if normalized.is_empty() {
        return Err(bad("the address is empty"));
    }
    if normalized
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(bad("an address holds no spaces or control characters"));
    }
    match normalized.split_once('@') {
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() => Ok(normalized),
        _ => Err(bad("an address looks like `name@domain`")),
    }
}

/// Erases one person (by e-mail address) from every zone of the lakehouse and returns the
/// receipt, which is also stored under `_stedi/erasures/<id>.json`.
///
/// The receipt's scan lists every place the address was still found; an empty list is the
/// proof ([`Receipt::verified`]). `stedi forget` fails when it is not empty. An address
/// that matches nothing is still tombstoned: their records may arrive later.
///
/// Nothing else may write to the lakehouse meanwhile (no `stedi run` at the same time):
/// the vacuum deletes every file the tables do not use.
pub async fn forget(lakehouse: &Lakehouse, address: &str, progress: &Progress) -> Result<Receipt> {
    let normalized = normalize_address(address)?;
    let lease = lakehouse.lease("stedi forget").await?;
    let result = forget_holding(lakehouse, &normalized, progress, &lease).await;
    lease.release().await;
    result
}

/// How long the lease must still hold before a vacuum: a vacuum deletes every file no
/// table uses, so it must never overlap another writer.
const VACUUM_MARGIN: std::time::Duration = std::time::Duration::from_secs(60);

async fn forget_holding(
    lakehouse: &Lakehouse,
    normalized: &str,
    progress: &Progress,
    lease: &crate::lakehouse::lease::Lease,
) -> Result<Receipt> {
    let normalized = normalized.to_string();
    let needle = Needle::new(&normalized);
    let stage = progress.step("forget");

    // 1. Tombstone first: from now on nothing of theirs is ingested.
    let id = receipt::new_id("forget");
    let secret = tombstone::secret(lakehouse).await?;
    let hash = tombstone::address_hash(&secret, &normalized);
    let added = tombstone::add(lakehouse, &hash, &id).await?;
    let mut receipt = Receipt {
        erasure: id.clone(),
        kind: "forget".into(),
        address_hash: Some(hash),
        started: now(),
        finished: None,
        tombstone: Some(if added { "added" } else { "already present" }.into()),
        raw_files: Vec::new(),
        tables: Vec::new(),
        scan: None,
    };

    // 2. Their step-trainer readings, while the tables still attribute them.
    stage.message("finding attributed step-trainer readings");
    let readings = Arc::new(attributed_readings(lakehouse, &normalized).await?);

    // 3. Raw landed files. The receipt is stored at once: it is what lets `stedi land`
    // recognize an original file landed again, even if the erasure stops half-way.
    stage.message("rewriting raw landed files");
    receipt.raw_files = raw::erase_landed(lakehouse, &needle, &readings, &secret).await?;
    for file in &mut receipt.raw_files {
        withhold(&mut file.path, &needle);
    }
    receipt.store(lakehouse).await?;

    // 4. Landing tables and quarantine, one commit each; then their old files go.
    stage.message("removing rows from the landing tables");
    let mut changes = Vec::new();
    let mut landing_changed = false;
    for (id, matcher) in landing_matchers(&needle, &readings) {
        let Some(mut table) = lakehouse.load_table(&id).await? else {
            continue;
        };
        let before = delta::row_count(&table).unwrap_or(0);
        let removed = tables::remove_rows(&mut table, &id, &receipt.erasure, &*matcher).await?;
        landing_changed |= removed.rows > 0;
        let vacuumed =
            removed.rows > 0 || tables::old_files_hold(&table, &id.name, &*matcher).await?;
        let files_vacuumed = match vacuumed {
            true => {
                lease.check(VACUUM_MARGIN)?;
                tables::vacuum(lakehouse, &id).await?
            }
            false => 0,
        };
        changes.push(TableChange {
            zone: id.zone.to_string(),
            table: id.name.clone(),
            rows_removed: removed.rows as i64,
            rows: before.saturating_sub(removed.rows),
            version: removed.version,
            vacuumed,
            files_vacuumed,
        });
    }

    // 5. Trusted and curated tables, rebuilt from the cleaned landing tables.
    let landed = has_landing_tables(lakehouse).await?;
    let models = catalog::tables()?
        .into_iter()
        .filter(|t| t.zone != Zone::Landing)
        .collect::<Vec<_>>();
    let mut before = Vec::new();
    for id in &models {
        let table = lakehouse.load_table(id).await?;
        before.push(table.as_ref().and_then(delta::row_count).unwrap_or(0));
    }
    let mut rebuilt = Vec::new();
    if landed && (landing_changed || models_hold(lakehouse, &needle, &normalized).await?) {
        stage.message("rebuilding the trusted and curated tables");
        // A full rebuild under the policy the tables were built with: rows removed from
        // the landing tables are not news a watermark could show.
        let options = crate::transform::BuildOptions {
            consent: None,
            full: true,
        };
        rebuilt = crate::transform::build(lakehouse, options, progress).await?;
    }

    // 6. Vacuum those whose earlier versions held the person: time travel could bring
    // them back. A table that never held them keeps its earlier versions.
    stage.message("vacuuming");
    let key = customer_key(&lakehouse.customer_key_secret().await?, &normalized);
    let theirs = model_matcher(&needle, key);
    for (id, rows_before) in models.iter().zip(before) {
        let Some(table) = lakehouse.load_table(id).await? else {
            continue;
        };
        let rows = delta::row_count(&table).unwrap_or(0);
        let version = rebuilt
            .iter()
            .find(|r| &r.table == id && r.written())
            .map(|r| r.version);
        let vacuumed = tables::old_files_hold(&table, &id.name, &*theirs).await?;
        let files_vacuumed = match vacuumed {
            true => {
                lease.check(VACUUM_MARGIN)?;
                tables::vacuum(lakehouse, id).await?
            }
            false => 0,
        };
        changes.push(TableChange {
            zone: id.zone.to_string(),
            table: id.name.clone(),
            rows_removed: rows_before as i64 - rows as i64,
            rows,
            version,
            vacuumed,
            files_vacuumed,
        });
    }
    receipt.tables = changes;

    // 7. The proof.
    stage.message("searching all storage for the address");
    let mut found = scan::scan_storage(lakehouse.store(), &needle).await?;
    for place in &mut found.matches {
        withhold(place, &needle);
    }
    receipt.scan = Some(found);
    receipt.finished = Some(now());
    receipt.store(lakehouse).await?;
    stage.finish(if receipt.verified() {
        "done; the address is found nowhere"
    } else {
        "the address is still found"
    });
    Ok(receipt)
}

/// A path that spells the address itself is not written into the receipt.
fn withhold(text: &mut String, needle: &Needle) {
    if needle.is_in(text.as_bytes()) {
        *text = "(a path that contains the address itself)".into();
    }
}

/// How each landing table and quarantine recognizes the person's rows.
fn landing_matchers(
    needle: &Needle,
    readings: &Arc<HashSet<Reading>>,
) -> Vec<(TableId, Arc<tables::RowMatcher>)> {
    let mut out: Vec<(TableId, Arc<tables::RowMatcher>)> = Vec::new();
    for source in Source::ALL {
        let id = TableId::new(Zone::Landing, source.landing_table());
        let matcher: Arc<tables::RowMatcher> = match source.person_field() {
            Some(field) => {
                let needle = needle.clone();
                tables::string_matcher(field, move |v| needle.is_exactly(v))
            }
            None => {
                let readings = readings.clone();
                Arc::new(move |batch: &RecordBatch| reading_mask(batch, &readings))
            }
        };
        out.push((id, matcher));
    }
    let needle = needle.clone();
    let quarantine: Arc<tables::RowMatcher> = Arc::new(move |batch: &RecordBatch| {
        let raw = tables::string_matcher("raw", {
            let needle = needle.clone();
            move |v| needle.is_in(v.as_bytes())
        })(batch)?;
        let detail = tables::string_matcher("detail", {
            let needle = needle.clone();
            move |v| needle.is_in(v.as_bytes())
        })(batch)?;
        Ok(arrow::compute::or(&raw, &detail).map_err(datafusion::error::DataFusionError::from)?)
    });
    out.push((layout::quarantine(), quarantine));
    out
}

/// How a trusted or curated table's rows are recognized as the person's: their address
/// in `email` or `user`, or their customer key.
fn model_matcher(needle: &Needle, key: String) -> Arc<tables::RowMatcher> {
    let by_address = |column: &'static str| {
        let needle = needle.clone();
        tables::string_matcher(column, move |v| needle.is_exactly(v))
    };
    let (email, user) = (by_address("email"), by_address("user"));
    let by_key = tables::string_matcher("customer_key", move |v| v == key);
    Arc::new(move |batch: &RecordBatch| {
        let or = |a: &BooleanArray, b: &BooleanArray| {
            arrow::compute::or(a, b).map_err(datafusion::error::DataFusionError::from)
        };
        let either = or(&email(batch)?, &user(batch)?)?;
        Ok(or(&either, &by_key(batch)?)?)
    })
}

/// Rows of a step-trainer batch whose (serialNumber, sensorReadingTime) is in `readings`.
fn reading_mask(batch: &RecordBatch, readings: &HashSet<Reading>) -> Result<BooleanArray> {
    let (Some(serials), Some(times)) = (
        batch.column_by_name("serialNumber"),
        batch.column_by_name("sensorReadingTime"),
    ) else {
        return Ok(BooleanArray::from(vec![false; batch.num_rows()]));
    };
    if readings.is_empty() {
        return Ok(BooleanArray::from(vec![false; batch.num_rows()]));
    }
    let cast = |a, t: &DataType| {
        arrow::compute::cast(a, t).map_err(datafusion::error::DataFusionError::from)
    };
    let serials = cast(serials, &DataType::Utf8)?;
    let times = cast(times, &DataType::Int64)?;
    let (serials, times) = (
        serials.as_string::<i32>(),
        times.as_primitive::<Int64Type>(),
    );
    Ok((0..batch.num_rows())
        .map(|i| {
            Some(
                serials.is_valid(i)
                    && times.is_valid(i)
                    && readings.contains(&(serials.value(i).to_string(), times.value(i))),
            )
        })
        .collect())
}

/// Whether every landing table exists (the models can be built).
async fn has_landing_tables(lakehouse: &Lakehouse) -> Result<bool> {
    for source in Source::ALL {
        let id = TableId::new(Zone::Landing, source.landing_table());
        if lakehouse.load_table(&id).await?.is_none() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The step-trainer readings attributed to the person: their rows in the stored
/// `step_trainer_trusted`, and, computed afresh from the landing tables under the
/// `any-time` policy, the readings that policy attributes to them (a lakehouse built
/// `since-consent` does not attribute readings taken before consent, yet they are theirs).
pub async fn attributed_readings(lakehouse: &Lakehouse, address: &str) -> Result<HashSet<Reading>> {
    let secret = lakehouse.customer_key_secret().await?;
    let key = customer_key(&secret, address);
    let query = format!(
        "SELECT serialNumber, sensorReadingTime FROM {ATTRIBUTION_MODEL} WHERE customer_key = '{key}'"
    );
    let mut readings = HashSet::new();

    let stored = models::MODELS
        .iter()
        .find(|m| m.name == ATTRIBUTION_MODEL)
        .map(|m| m.table());
    if let Some(id) = stored
        && let Some(table) = lakehouse.load_table(&id).await?
    {
        let ctx = crate::session::session();
        delta::register(&ctx, &id.name, &table).await?;
        collect_readings(&ctx.sql(&query).await?.collect().await?, &mut readings)?;
    }

    if has_landing_tables(lakehouse).await? {
        let ctx = crate::session::session();
        functions::register(&ctx, ConsentPolicy::AnyTime, secret);
        let mut base = Vec::new();
        for source in Source::ALL {
            let id = TableId::new(Zone::Landing, source.landing_table());
            if let Some(table) = lakehouse.load_table(&id).await? {
                delta::register(&ctx, &id.name, &table).await?;
            }
            base.push(source.landing_table());
        }
        for node in dag::order(models::MODELS, &base)? {
            let failed = |e: datafusion::error::DataFusionError| StediError::Model {
                model: node.model.name.to_string(),
                message: e.to_string(),
            };
            let view = ctx.sql(node.model.sql).await.map_err(failed)?.into_view();
            ctx.register_table(node.model.name, view)?;
        }
        collect_readings(&ctx.sql(&query).await?.collect().await?, &mut readings)?;
    }
    Ok(readings)
}

fn collect_readings(batches: &[RecordBatch], into: &mut HashSet<Reading>) -> Result<()> {
    for batch in batches {
        let serials = arrow::compute::cast(batch.column(0), &DataType::Utf8)
            .map_err(datafusion::error::DataFusionError::from)?;
        let times = arrow::compute::cast(batch.column(1), &DataType::Int64)
            .map_err(datafusion::error::DataFusionError::from)?;
        let (serials, times) = (
            serials.as_string::<i32>(),
            times.as_primitive::<Int64Type>(),
        );
        for i in 0..batch.num_rows() {
            if serials.is_valid(i) && times.is_valid(i) {
                into.insert((serials.value(i).to_string(), times.value(i)));
            }
        }
    }
    Ok(())
}

/// Whether a trusted or curated table still holds the person (an erasure that stopped
/// after cleaning the landing tables, before the rebuild).
async fn models_hold(lakehouse: &Lakehouse, needle: &Needle, address: &str) -> Result<bool> {
    let ctx = crate::session::context(lakehouse).await?;
    let key = customer_key(&lakehouse.customer_key_secret().await?, address);
    let quoted = needle.text().replace('\'', "''");
    for id in catalog::tables()? {
        if id.zone == Zone::Landing || !ctx.table_exist(id.name.as_str())? {
            continue;
        }
        let schema = ctx.table(id.name.as_str()).await?.schema().clone();
        let mut tests = Vec::new();
        for column in ["email", "user"] {
            if schema.has_column_with_unqualified_name(column) {
                tests.push(format!("customer_id(\"{column}\") = '{quoted}'"));
            }
        }
        if schema.has_column_with_unqualified_name("customer_key") {
            tests.push(format!("customer_key = '{key}'"));
        }
        if tests.is_empty() {
            continue;
        }
        let sql = format!(
            "SELECT count(*) FROM {} WHERE {}",
            id.name,
            tests.join(" OR ")
        );
        let batches = ctx.sql(&sql).await?.collect().await?;
        let count = batches
            .first()
            .map(|b| arrow::compute::cast(b.column(0), &DataType::Int64))
            .transpose()
            .map_err(datafusion::error::DataFusionError::from)?;
        if count.is_some_and(|c| c.as_primitive::<Int64Type>().value(0) > 0) {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_normalized_and_nonsense_is_refused() {
        assert_eq!(
            normalize_address("  Ann.Lee@Test.COM ").unwrap(),
            "ann.lee@test.com"
        );
        for bad in ["", "   ", "a", "@x.com", "ann@", "ann lee@x.com"] {
            assert!(normalize_address(bad).is_err(), "{bad:?}");
        }
    }
}
