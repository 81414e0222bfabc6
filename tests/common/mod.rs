//! Helpers shared by the integration tests: a scratch lakehouse, landing, running and
//! querying, and the real sample when it is present.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use stedi::feed::Source;
use stedi::lakehouse::Lakehouse;
use stedi::models::ConsentPolicy;
use stedi::progress::Progress;

pub mod s3;

/// A lakehouse in a temporary folder (or under a fresh prefix of the test bucket), with a
/// scratch folder beside it for files to land; the folder is removed when dropped.
pub struct Scratch {
    pub dir: tempfile::TempDir,
    pub lakehouse: Lakehouse,
    location: String,
}

impl Scratch {
    pub async fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        let location = dir.path().join("lakehouse").to_string_lossy().into_owned();
        let lakehouse = Lakehouse::create(&location).await.unwrap();
        Scratch {
            dir,
            lakehouse,
            location,
        }
    }

    /// A new lakehouse under a fresh prefix of the test bucket, its secrets in the
    /// scratch folder.
    pub async fn on_s3(s3: &s3::S3, name: &str) -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        let location = s3.location(name);
        let lakehouse = Lakehouse::create_with(&location, s3.settings(dir.path()))
            .await
            .unwrap();
        Scratch {
            dir,
            lakehouse,
            location,
        }
    }

    /// The location, as given to `--lakehouse`.
    pub fn location(&self) -> String {
        self.location.clone()
    }

    /// Uses the customer-key secret of `other`, so that two lakehouses built from the same
    /// data hold the same customer keys and can be compared row by row.
    pub async fn share_secret_of(&self, other: &Scratch) {
        let secret = other.lakehouse.customer_key_secret().await.unwrap();
        self.lakehouse
            .set_customer_key_secret(&secret)
            .await
            .unwrap();
    }

    /// Writes `lines` to a file named `name` in the scratch folder and lands it.
    pub async fn land_lines(&self, source: Source, name: &str, lines: &[&str]) -> PathBuf {
        let path = self.dir.path().join("inbox").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        stedi::land::land(&self.lakehouse, source, std::slice::from_ref(&path))
            .await
            .unwrap();
        path
    }

    pub async fn land_files(&self, source: Source, files: &[PathBuf]) {
        stedi::land::land(&self.lakehouse, source, files)
            .await
            .unwrap();
    }

    pub async fn run(&self, policy: ConsentPolicy) -> stedi::pipeline::RunReport {
        stedi::pipeline::run(&self.lakehouse, policy.into(), &Progress::hidden())
            .await
            .unwrap()
    }

    /// Runs a read-only query the way `stedi sql` does and returns the batches.
    pub async fn query(&self, sql: &str) -> Vec<RecordBatch> {
        let ctx = stedi::session::context(&self.lakehouse).await.unwrap();
        ctx.sql(sql).await.unwrap().collect().await.unwrap()
    }

    pub async fn count(&self, table: &str) -> u64 {
        self.scalar(&format!("SELECT count(*) FROM {table}")).await as u64
    }

    /// The single integer a query returns.
    pub async fn scalar(&self, sql: &str) -> i64 {
        let batches = self.query(sql).await;
        let column = arrow::compute::cast(batches[0].column(0), &DataType::Int64).unwrap();
        column
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0)
    }

    /// The rows of a query as strings, one per row with columns joined by `|`.
    pub async fn rows(&self, sql: &str) -> Vec<String> {
        rows_of(&self.query(sql).await)
    }
}

/// Renders batches as sorted-by-query strings `a|b|c`.
pub fn rows_of(batches: &[RecordBatch]) -> Vec<String> {
    let mut out = Vec::new();
    for b in batches {
        let cols: Vec<_> = b
            .columns()
            .iter()
            .map(|c| arrow::compute::cast(c, &DataType::Utf8).unwrap())
            .collect();
        for i in 0..b.num_rows() {
            let cells: Vec<String> = cols
                .iter()
                .map(|c| {
                    if c.is_null(i) {
                        "NULL".to_string()
                    } else {
                        c.as_string::<i32>().value(i).to_string()
                    }
                })
                .collect();
            out.push(cells.join("|"));
        }
    }
    out
}

/// A customer record line.
pub fn customer(email: &str, serial: &str, updated: i64, consent: Option<i64>) -> String {
    let mut v = serde_json::json!({
        "customerName": "Some One", "email": email, "phone": "8015551212",
        "birthDay": "1990-01-01", "serialNumber": serial,
        "registrationDate": 1000, "lastUpdateDate": updated,
    });
    if let Some(c) = consent {
        v["shareWithResearchAsOfDate"] = c.into();
    }
    v.to_string()
}

/// A phone (accelerometer) reading line.
pub fn reading(user: &str, ts: i64) -> String {
    serde_json::json!({"user": user, "timestamp": ts, "x": 1.0, "y": 0.0, "z": -1.0}).to_string()
}

/// A step-trainer reading line.
pub fn step(serial: &str, ts: i64) -> String {
    serde_json::json!({"sensorReadingTime": ts, "serialNumber": serial, "distanceFromObject": 250})
        .to_string()
}

/// Runs the `stedi` binary on a lakehouse, as a user would.
pub fn stedi(lakehouse: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_stedi"))
        .arg("--lakehouse")
        .arg(lakehouse)
        .args(args)
        .env_remove("STEDI_LAKEHOUSE")
        .output()
        .unwrap()
}

/// What a command printed on stderr.
pub fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// What a command printed on stdout.
pub fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Writes a generated landing set of `customers` into the scratch folder and returns
/// its root (laid out as `land_all` expects).
pub fn generated(scratch: &Scratch, customers: u64, seed: u64) -> PathBuf {
    let root = scratch
        .dir
        .path()
        .join(format!("generated-{customers}-{seed}"));
    stedi::generate::generate(
        &root,
        &stedi::generate::GenerateOptions { customers, seed },
        &|_| {},
    )
    .unwrap();
    root
}

/// The real public sample, or `None` (with a printed notice) when it is not beside the
/// repository. CI sets `STEDI_REQUIRE_SAMPLE=1`, which turns a missing sample into a failure.
pub fn sample() -> Option<PathBuf> {
    let dir = std::env::var_os("STEDI_SAMPLE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/stedi-data"));
    if dir.join("customer").is_dir() {
        return Some(dir);
    }
    if std::env::var("STEDI_REQUIRE_SAMPLE").is_ok_and(|v| v == "1") {
        panic!(
            "the STEDI sample is required but missing at {}",
            dir.display()
        );
    }
    eprintln!(
        "notice: skipping: the STEDI sample is not at {} (set STEDI_SAMPLE to its folder)",
        dir.display()
    );
    None
}

/// The JSON files of one source in a landing set laid out as `<source>/landing/*.json`
/// or `<source>/*.json`.
pub fn source_files(root: &Path, source: Source) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in [
        root.join(source.name()).join("landing"),
        root.join(source.name()),
    ] {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                if e.path().extension().is_some_and(|x| x == "json") {
                    files.push(e.path());
                }
            }
        }
        if !files.is_empty() {
            break;
        }
    }
    files.sort();
    files
}

/// Lands a whole landing set.
pub async fn land_all(scratch: &Scratch, root: &Path) {
    for source in Source::ALL {
        scratch
            .land_files(source, &source_files(root, source))
            .await;
    }
}
