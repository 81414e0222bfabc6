//! One function per subcommand: open the lakehouse, do the work, print the result.
//! Data goes to stdout; notes and progress go to stderr.

mod demo;
mod forget;
mod history;
mod tables;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::error::{Result, StediError};
use crate::interrupt::Interrupt;
use crate::lakehouse::Lakehouse;
use crate::progress::Progress;
use crate::{generate, land, pipeline, serve};

use crate::catalog::list_tables;
use tables::print_tables;

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
            .await;
            finish(&lakehouse, &note);
            let report = report?;
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
            .await;
            finish(&lakehouse, &note);
            let models = models?;
            let rebuilt: Vec<&str> = models
                .iter()
                .filter(|m| m.written())
                .map(|m| m.table.name.as_str())
                .collect();
            note(&format!(
                "new customer-key secret in place; rebuilt {}\n\nhint: back up `{}` again: the old copy no longer matches",
                rebuilt.join(", "),
                lakehouse.secret_location(crate::lakehouse::layout::CUSTOMER_KEY_SECRET)
            ));
            print_tables(&mut stdout, &list_tables(&lakehouse).await?)?;
        }
        Command::Sql { query, format } => {
            let lakehouse = Lakehouse::open(&cli.lakehouse).await?;
            serve::query::run(&lakehouse, &query, format, &mut stdout).await?;
            finish(&lakehouse, &note);
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
            let forgotten = crate::history::record(
                &lakehouse,
                "forget",
                interrupt,
                forget::forget(&lakehouse, &email, &progress, &note, &mut stdout),
            )
            .await;
            finish(&lakehouse, &note);
            forgotten?;
        }
        Command::Demo { customers } => {
            demo::demo(&cli.lakehouse, customers, &progress, interrupt, &mut stdout).await?;
        }
    }
    Ok(())
}

/// After a command: the notes the lakehouse gathered (a secret was created, where to back
/// it up), and what the command cost on storage (`STEDI_LOG=stedi=info`).
fn finish(lakehouse: &Lakehouse, note: &dyn Fn(&str)) {
    for notice in lakehouse.take_notices() {
        note(&format!("note: {notice}"));
    }
    let requests = lakehouse.requests();
    if requests.total() > 0 {
        tracing::info!(target: "stedi::storage", "{requests}");
    }
}

fn output(e: std::io::Error) -> StediError {
    StediError::Output(e.to_string())
}

/// Parses the command line, runs the command and turns its outcome into an exit code:
/// 0 on success, 1 on an error (printed with a hint), 2 on a usage error, 130 on Ctrl-C.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Ctrl-C is handled inside: a command that changes the lakehouse must still record
    // that it was interrupted before the process exits.
    let outcome = runtime.block_on(run(cli));
    // A command stopped by Ctrl-C or an error can leave Delta log reads of the abandoned
    // work running on the runtime's blocking threads. Shutting the runtime down would drop
    // the tasks those reads wait on and make them panic after the error was printed.
    // Nothing left running can change a table (commits are atomic), so the process ends
    // without waiting for them.
    std::mem::forget(runtime);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(&e);
            if matches!(e.root(), crate::error::StediError::Interrupted) {
                ExitCode::from(130)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Logs go to stderr: stedi's own warnings by default, more with `STEDI_LOG`
/// (e.g. `STEDI_LOG=stedi=info` for the time each stage takes).
fn init_tracing() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("STEDI_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("stedi=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// Prints an error as `error: …`, its causes, and a `hint: …` after a blank line.
pub fn report(e: &crate::error::StediError) {
    use std::error::Error as _;
    let unrecorded = match e {
        crate::error::StediError::Unrecorded { not_recorded, .. } => Some(not_recorded),
        _ => None,
    };
    let e = e.root();
    eprintln!("error: {e}");
    let mut source = e.source();
    let mut last = e.to_string();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !last.contains(&text) {
            eprintln!("  caused by: {text}");
        }
        last = text;
        source = cause.source();
    }
    if let Some(not_recorded) = unrecorded {
        eprintln!("  (nor could it be recorded in the run history: {not_recorded})");
    }
    if let Some(hint) = e.hint() {
        eprintln!("\nhint: {hint}");
    }
}
