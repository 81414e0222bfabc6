//! One function per subcommand: open the lakehouse, do the work, print the result.
//! Data goes to stdout; notes and progress go to stderr.

mod demo;
mod forget;
mod history;
mod interrupt;
mod stall;
mod tables;

use std::io::Write;

use crate::cli::{Cli, Command};
use crate::error::{Result, StediError};
use crate::lakehouse::Lakehouse;
use crate::progress::Progress;
use crate::{generate, land, pipeline, serve};

pub use interrupt::{Interrupt, Recording};
pub use tables::{TableRow, list_tables, print_tables, table_row};

/// Runs a parsed command line. Ctrl-C stops it with [`StediError::Interrupted`]; commands
/// that change the lakehouse record that in the run history before returning.
pub async fn run(cli: Cli) -> Result<()> {
    let interrupt = Interrupt::listen();
    interrupt.stop_command(execute(cli, &interrupt)).await
}

async fn execute(cli: Cli, interrupt: &Interrupt) -> Result<()> {
    let progress = Progress::for_terminal(cli.quiet);
    // Notes on stderr (what was ingested, what to do next); `--quiet` leaves only errors.
    let note = |text: &str| {
        if !cli.quiet {
            eprintln!("{text}");
        }
    };
    let mut stdout = std::io::stdout().lock();
    match cli.command {
        Command::Land { source, files } => {
            let lakehouse = Lakehouse::create(&cli.lakehouse).await?;
            for landed in land::land(&lakehouse, source, &files).await? {
                match landed {
                    land::Landed::Copied { path, bytes } => {
                        writeln!(stdout, "landed {path} ({bytes} bytes)")
                    }
                    land::Landed::AlreadyLanded { path } => {
                        writeln!(stdout, "already landed {path} (same content)")
                    }
                    land::Landed::AlreadyLandedBeforeErasure { path } => writeln!(
                        stdout,
                        "already landed {path} (this content, before `stedi forget` removed an erased person's lines)"
                    ),
                }
                .map_err(output)?;
            }
            note("next: `stedi run` ingests what was landed");
        }
        Command::Run { consent, full } => {
            let lakehouse = Lakehouse::open(&cli.lakehouse).await?;
            let options = crate::transform::BuildOptions { consent, full };
            let mut command = "run".to_string();
            if let Some(policy) = consent {
                command.push_str(" --consent ");
                command.push_str(policy.name());
            }
            if full {
                command.push_str(" --full");
            }
            let report = crate::history::record(
                &lakehouse,
                &command,
                interrupt,
                pipeline::run(&lakehouse, options, &progress),
            )
            .await?;
            for (source, s) in &report.ingest.sources {
                if s.files > 0 {
                    let quarantined: u64 = s.quarantined.values().sum();
                    let reasons: Vec<String> = s
                        .quarantined
                        .iter()
                        .map(|(r, n)| format!("{n} {r}"))
                        .collect();
                    let why = if reasons.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", reasons.join(", "))
                    };
                    note(&format!(
                        "ingested {} {source} file(s): {} rows, {quarantined} quarantined{why}",
                        s.files, s.rows
                    ));
                }
            }
            let tables = list_tables(&lakehouse).await?;
            let landed: u64 = tables
                .iter()
                .filter(|t| t.zone == "landing")
                .filter_map(|t| t.rows)
                .sum();
            if landed == 0 {
                note(&format!(
                    "nothing is landed yet\n\nhint: {}",
                    crate::error::LAND_FIRST
                ));
            } else if !report.ingest.changed() && report.models.iter().all(|m| !m.written()) {
                note("nothing new since the last run; no table changed");
            }
            print_tables(&mut stdout, &tables)?;
        }
        Command::RotateKey => {
            let lakehouse = Lakehouse::open(&cli.lakehouse).await?;
            let models = crate::history::record(
                &lakehouse,
                "rotate-key",
                interrupt,
                pipeline::rotate_key(&lakehouse, &progress),
            )
            .await?;
            let rebuilt: Vec<&str> = models
                .iter()
                .filter(|m| m.written())
                .map(|m| m.table.name.as_str())
                .collect();
            note(&format!(
                "new customer-key secret in place; rebuilt {}\n\nhint: back up `_stedi/customer_key.secret` again: the old copy no longer matches",
                rebuilt.join(", ")
            ));
            print_tables(&mut stdout, &list_tables(&lakehouse).await?)?;
        }
        Command::Sql { query, format } => {
            let lakehouse = Lakehouse::open(&cli.lakehouse).await?;
            serve::query::run(&lakehouse, &query, format, &mut stdout).await?;
        }
        Command::History { limit, format } => {
            let lakehouse = Lakehouse::open(&cli.lakehouse).await?;
            let recorded = history::print(&lakehouse, limit, format, &mut stdout).await?;
            if !recorded {
                note("no runs recorded yet: `stedi run` records each run here");
            }
        }
        Command::Tables => {
            let lakehouse = Lakehouse::open(&cli.lakehouse).await?;
            print_tables(&mut stdout, &list_tables(&lakehouse).await?)?;
        }
        Command::Generate {
            out,
            customers,
            seed,
        } => {
            let stage = progress.step("generate");
            let summary = tokio::task::spawn_blocking(move || {
                let options = generate::GenerateOptions { customers, seed };
                let written = std::sync::atomic::AtomicU64::new(0);
                generate::generate(&out, &options, &|n| {
                    let total = written.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
                    stage.message(format!("{} MiB", total >> 20));
                })
            })
            .await
            .map_err(|e| StediError::Output(e.to_string()))??;
            writeln!(
                stdout,
                "wrote {} customer records, {} accelerometer readings, {} step-trainer readings in {} files ({} bytes)",
                summary.customer_records,
                summary.accelerometer_readings,
                summary.step_trainer_readings,
                summary.files.len(),
                summary.bytes
            )
            .map_err(output)?;
        }
        Command::Forget { email } => {
            let lakehouse = Lakehouse::open(&cli.lakehouse).await?;
            // The history names the command only: never the address being erased.
            crate::history::record(
                &lakehouse,
                "forget",
                interrupt,
                forget::forget(&lakehouse, &email, &progress, &note, &mut stdout),
            )
            .await?;
        }
        Command::Demo { customers } => {
            demo::demo(&cli.lakehouse, customers, &progress, interrupt, &mut stdout).await?;
        }
    }
    Ok(())
}

fn output(e: std::io::Error) -> StediError {
    StediError::Output(e.to_string())
}
