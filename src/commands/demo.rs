//! `stedi demo`: the whole product on generated data, in one command.

use std::io::Write;

use crate::error::{Result, StediError};
use crate::feed::Source;
use crate::lakehouse::Lakehouse;
use crate::models::ConsentPolicy;
use crate::progress::Progress;
use crate::{generate, land, pipeline};

/// Generates a landing set, lands it into a fresh lakehouse, runs, and prints the counts.
pub async fn demo(
    location: &str,
    customers: u64,
    progress: &Progress,
    interrupt: &crate::interrupt::Interrupt,
    out: &mut dyn Write,
) -> Result<()> {
    let lakehouse = prepare(location, customers).await?;
    crate::history::record(
        &lakehouse,
        "demo",
        interrupt,
        pipeline::run(&lakehouse, ConsentPolicy::AnyTime.into(), progress),
    )
    .await?;
    super::tables::print_tables(out, &crate::catalog::list_tables(&lakehouse).await?)?;
    writeln!(
        out,
        "\nlakehouse: {}\ntry: stedi --lakehouse {location} sql \"SELECT count(*) FROM machine_learning_curated\"",
        lakehouse.url()
    )
    .map_err(|e| StediError::Output(e.to_string()))?;
    Ok(())
}

/// Generates the landing set and lands it into a fresh lakehouse.
async fn prepare(location: &str, customers: u64) -> Result<Lakehouse> {
    if Lakehouse::open(location).await.is_ok() {
        return Err(StediError::Unwritable {
            path: location.to_string(),
            reason: "a lakehouse is already there and the demo needs a fresh one; pass `--lakehouse ./another-folder`, or remove it".into(),
        });
    }
    let scratch = std::env::temp_dir().join(format!("stedi-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let generated = {
        let scratch = scratch.clone();
        tokio::task::spawn_blocking(move || {
            generate::generate(
                &scratch,
                &generate::GenerateOptions {
                    customers,
                    seed: 42,
                },
                &|_| {},
            )
        })
        .await
        .map_err(|e| StediError::Output(e.to_string()))??
    };
    let lakehouse = Lakehouse::create(location).await?;
    for source in Source::ALL {
        let files: Vec<_> = generated
            .files
            .iter()
            .filter(|f| {
                f.parent()
                    .and_then(|p| p.file_name())
                    .is_some_and(|n| n == source.name())
            })
            .cloned()
            .collect();
        land::land(&lakehouse, source, &files).await?;
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(lakehouse)
}
