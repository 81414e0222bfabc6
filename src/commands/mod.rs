//! One function per subcommand: open the lakehouse, do the work, print the result.
//! Data goes to stdout; notes and progress go to stderr.

mod demo;
mod forget;
mod history;
mod tables;

use std::future::Future;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::watch;

use crate::cli::{Cli, Command};
use crate::error::{Result, StediError};
use crate::lakehouse::Lakehouse;
use crate::progress::Progress;
use crate::{generate, land, pipeline, serve};

pub use tables::{TableRow, list_tables, print_tables, table_row};

/// Ctrl-C, as seen by every part of a command.
///
/// One listener is installed as soon as a command starts, so no Ctrl-C is missed. The
/// whole command is dropped on Ctrl-C, except while a
/// section marked with [`Interrupt::recording`] runs: such a section (see
/// [`crate::history::record`]) stops its own work and still writes its row in the run
/// history, and the command ends right after.
#[derive(Debug, Clone)]
pub struct Interrupt {
    pressed: watch::Receiver<bool>,
    recording: Arc<AtomicUsize>,
}

/// While alive, Ctrl-C is left to the section that holds it (see [`Interrupt::recording`]).
#[derive(Debug)]
pub struct Recording {
    count: Arc<AtomicUsize>,
}

impl Drop for Recording {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Interrupt {
    /// Starts listening for Ctrl-C. Must be called inside the Tokio runtime.
    pub fn listen() -> Interrupt {
        let (tx, pressed) = watch::channel(false);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                let _ = tx.send(true);
            }
            // Keep the sender alive: a closed channel would read as "never pressed".
            std::future::pending::<()>().await;
        });
        Interrupt {
            pressed,
            recording: Arc::default(),
        }
    }

    /// An interrupt that never fires, for library callers that handle signals themselves.
    pub fn never() -> Interrupt {
        let (_, pressed) = watch::channel(false);
        Interrupt {
            pressed,
            recording: Arc::default(),
        }
    }

    /// Resolves once Ctrl-C was pressed (at once if it already was).
    pub async fn pressed(&self) {
        let mut pressed = self.pressed.clone();
        if pressed.wait_for(|p| *p).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Marks a section that handles Ctrl-C itself (with [`Interrupt::stop`]), until the
    /// returned guard is dropped: the command is then left to finish that section instead
    /// of being dropped on Ctrl-C.
    pub fn recording(&self) -> Recording {
        self.recording.fetch_add(1, Ordering::SeqCst);
        Recording {
            count: self.recording.clone(),
        }
    }

    /// Runs `work` until it ends or Ctrl-C is pressed; on Ctrl-C the work is dropped
    /// (Delta commits are atomic, so no table is left half-written) and the result is
    /// [`StediError::Interrupted`].
    pub async fn stop<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        tokio::select! {
            biased;
            _ = self.pressed() => Err(StediError::Interrupted),
            result = work => result,
        }
    }

    /// [`Interrupt::stop`] for a whole command: while a [`Interrupt::recording`] section
    /// runs, Ctrl-C is left to it, so that it can record the interruption before the
    /// command ends.
    async fn stop_command<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        let mut work = std::pin::pin!(work);
        tokio::select! {
            biased;
            _ = self.pressed() => {}
            result = &mut work => return result,
        }
        if self.recording.load(Ordering::SeqCst) > 0 {
            return work.await;
        }
        Err(StediError::Interrupted)
    }
}

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
