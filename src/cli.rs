//! The command line as typed: flags and subcommands (what runs them is in `commands`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::feed::Source;
use crate::models::ConsentPolicy;
use crate::serve::query::Format;

/// stedi: a lakehouse for STEDI step-trainer and phone sensor data.
///
/// Raw JSON feeds are landed, ingested into typed landing tables, and curated zone by
/// zone (landing → trusted → curated) into Delta Lake tables, keeping only data of
/// customers who consented to research.
#[derive(Debug, Parser)]
#[command(name = "stedi", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Where the lakehouse lives: a local folder, `file:///path` or `s3://bucket/prefix`.
    #[arg(
        long,
        global = true,
        env = "STEDI_LAKEHOUSE",
        default_value = "./lakehouse"
    )]
    pub lakehouse: String,

    /// Print no progress bars and no notes on stderr, only errors (progress bars are never
    /// shown when stderr is not a terminal).
    #[arg(long, short, global = true)]
    pub quiet: bool,

    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Copy raw JSON files, verbatim, into `landing/<source>/` of the lakehouse.
    Land {
        /// Which feed the files belong to.
        source: Source,
        /// Newline-delimited JSON files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Ingest newly landed files, then bring the trusted and curated tables up to date.
    Run {
        /// Which readings of a consenting customer may be used: `any-time` (the default
        /// for a new lakehouse) or `since-consent`. Remembered by later runs.
        #[arg(long, value_enum)]
        consent: Option<ConsentPolicy>,
        /// Rebuild every trusted and curated table from all landed data, instead of
        /// updating only the customers and readings that new files touch.
        #[arg(long)]
        full: bool,
    },
    /// Replace the secret behind `customer_key` and re-key the curated tables.
    ///
    /// Keys handed out before can no longer be linked to anyone: the old secret is gone.
    RotateKey,
    /// Run a read-only SQL query over every table by name.
    Sql {
        /// The query, e.g. "SELECT count(*) FROM machine_learning_curated".
        query: String,
        /// `table` for people; `csv` and `json` (one object per row) for scripts.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Show the commands that changed the lakehouse, newest first: when, how they ended,
    /// and the table versions they wrote (to read with `stedi sql "... FROM \"table@VERSION\""`).
    History {
        /// Show only the newest N runs.
        #[arg(long)]
        limit: Option<u64>,
        /// `table` for people; `csv` and `json` (one object per row) for scripts.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// List every table: zone, name, rows, Delta version and location.
    Tables,
    /// Write a deterministic synthetic landing set shaped like the real feeds.
    Generate {
        /// Folder to write `customer/`, `accelerometer/` and `step_trainer/` into.
        #[arg(long)]
        out: PathBuf,
        /// Number of customers.
        #[arg(long, default_value_t = 1000)]
        customers: u64,
        /// Seed: the same seed and size give the same bytes.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Erase a person from every zone (raw files, every table, old versions) and prove it.
    ///
    /// Prints a receipt (JSON) of what was removed from where and of a scan of all storage
    /// that found the address nowhere; the receipt is kept in `_stedi/erasures/`. Records of
    /// the person landed later are refused at ingest.
    Forget {
        /// The person's e-mail address (compared trimmed and case-insensitively).
        #[arg(long)]
        email: String,
    },
    /// Generate data, land it and run the pipeline in a fresh lakehouse, then print counts.
    Demo {
        /// Number of customers to generate.
        #[arg(long, default_value_t = 1000)]
        customers: u64,
    },
}
