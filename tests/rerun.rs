//! Re-running is safe: nothing new changes nothing, a new file adds exactly its records,
//! and a run killed anywhere ends, after the next run, in the same tables as one clean run.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step should fail the test

mod common;

use std::path::{Path, PathBuf};

use common::{Scratch, source_files};
use stedi::catalog::list_tables;
use stedi::feed::Source;
use stedi::generate::{GenerateOptions, generate};
use stedi::ingest::{StopAfter, ingest_until};
use stedi::models::ConsentPolicy;
use stedi::progress::Progress;

fn generated(dir: &Path, customers: u64) -> PathBuf {
    let out = dir.join("generated");
    generate(&out, &GenerateOptions { customers, seed: 7 }, &|_| {}).unwrap();
    out
}

/// Every table's rows, sorted, so two lakehouses can be compared.
async fn snapshot(s: &Scratch) -> Vec<(String, Vec<String>)> {
    let mut all = Vec::new();
    for t in list_tables(&s.lakehouse).await.unwrap() {
        let mut rows = s.rows(&format!("SELECT * FROM {}", t.table)).await;
        rows.sort();
        all.push((t.table, rows));
    }
    all
}

fn data_files(dir: &Path) -> usize {
    walk(dir)
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .count()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.path().is_dir() {
                out.extend(walk(&e.path()));
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

/// One clean run of everything in `root`, in a new lakehouse that shares the customer-key
/// secret of `like` (keys are keyed per lakehouse).
async fn clean_run(root: &Path, like: &Scratch) -> Vec<(String, Vec<String>)> {
    let s = Scratch::new().await;
    s.share_secret_of(like).await;
    common::land_all(&s, root).await;
    s.run(ConsentPolicy::AnyTime).await;
    snapshot(&s).await
}

/// A new lakehouse keyed like `keyed`, with everything in `root` landed and nothing run.
async fn landed_like(root: &Path, keyed: &Scratch) -> Scratch {
    let s = Scratch::new().await;
    s.share_secret_of(keyed).await;
    common::land_all(&s, root).await;
    s
}

/// Starts `stedi run` on `s` in its own process.
fn start_run(s: &Scratch, stderr: std::process::Stdio) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_stedi"))
        .args(["--quiet", "--lakehouse", &s.location(), "run"])
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_run_with_nothing_new_changes_nothing() {
    let s = Scratch::new().await;
    let root = generated(s.dir.path(), 300);
    common::land_all(&s, &root).await;
    s.run(ConsentPolicy::AnyTime).await;
    let before = list_tables(&s.lakehouse).await.unwrap();
    let files_before = data_files(Path::new(&s.location()));

    let report = s.run(ConsentPolicy::AnyTime).await;
    assert!(!report.ingest.changed());
    assert!(
        report.models.iter().all(|m| !m.written()),
        "{:?}",
        report.models
    );
    assert_eq!(list_tables(&s.lakehouse).await.unwrap(), before);
    assert_eq!(data_files(Path::new(&s.location())), files_before);
}

#[tokio::test(flavor = "multi_thread")]
async fn landing_a_new_file_adds_exactly_its_records() {
    let s = Scratch::new().await;
    let root = generated(s.dir.path(), 300);
    let accel = source_files(&root, Source::Accelerometer);
    let (first, last) = accel.split_at(accel.len() - 1);
    for source in [Source::Customer, Source::StepTrainer] {
        s.land_files(source, &source_files(&root, source)).await;
    }
    s.land_files(Source::Accelerometer, first).await;
    s.run(ConsentPolicy::AnyTime).await;
    let before = s.count("accelerometer_landing").await;

    s.land_files(Source::Accelerometer, last).await;
    let report = s.run(ConsentPolicy::AnyTime).await;
    let new_lines = std::fs::read_to_string(&last[0])
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count() as u64;
    let (_, accel_report) = report
        .ingest
        .sources
        .iter()
        .find(|(src, _)| *src == Source::Accelerometer)
        .unwrap();
    assert_eq!(accel_report.files, 1);
    assert_eq!(s.count("accelerometer_landing").await, before + new_lines);
    // Landing the same file again is a no-op, and so is the next run.
    s.land_files(Source::Accelerometer, last).await;
    assert!(!s.run(ConsentPolicy::AnyTime).await.ingest.changed());
    assert_eq!(snapshot(&s).await, clean_run(&root, &s).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_stopped_at_any_point_is_finished_by_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let root = generated(dir.path(), 200);
    let keyed = Scratch::new().await;
    let expected = clean_run(&root, &keyed).await;
    for stop in [Some(StopAfter::Register), Some(StopAfter::Quarantine), None] {
        let s = landed_like(&root, &keyed).await;
        // `None`: ingestion completes but the run dies before building any table.
        let stopped = ingest_until(&s.lakehouse, &Progress::hidden(), stop).await;
        assert_eq!(stopped.is_err(), stop.is_some());
        s.run(ConsentPolicy::AnyTime).await;
        assert_eq!(snapshot(&s).await, expected, "stopped at {stop:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_process_leaves_tables_that_the_next_run_completes() {
    let dir = tempfile::tempdir().unwrap();
    let root = generated(dir.path(), 2000);
    let keyed = Scratch::new().await;
    let expected = clean_run(&root, &keyed).await;
    for delay_ms in [150u64, 400, 900] {
        let s = landed_like(&root, &keyed).await;
        let mut child = start_run(&s, std::process::Stdio::null());
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        s.run(ConsentPolicy::AnyTime).await;
        assert_eq!(snapshot(&s).await, expected, "killed after {delay_ms} ms");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_stops_cleanly_and_the_next_run_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let root = generated(dir.path(), 2000);
    let keyed = Scratch::new().await;
    let expected = clean_run(&root, &keyed).await;
    // Early, middle and late in a run: Ctrl-C then finds different work under way
    // (Delta log reads, ingest, models, commits).
    for delay_ms in [100u64, 300, 550, 800] {
        let s = landed_like(&root, &keyed).await;
        let child = start_run(&s, std::process::Stdio::piped());
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        // SAFETY: sends SIGINT, as Ctrl-C does, to our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() == Some(130) {
            assert!(
                stderr.contains("interrupted"),
                "after {delay_ms} ms: {stderr}"
            );
            assert!(stderr.contains("hint: "), "after {delay_ms} ms: {stderr}");
        } else {
            // The run was faster than the signal: it must then have succeeded.
            assert!(out.status.success(), "after {delay_ms} ms: {stderr}");
        }
        assert!(
            !stderr.contains("panicked"),
            "after {delay_ms} ms: {stderr}"
        );
        s.run(ConsentPolicy::AnyTime).await;
        assert_eq!(snapshot(&s).await, expected, "after {delay_ms} ms");
    }
}

/// The Delta version of a table, as `stedi tables` lists it.
async fn version_of(s: &Scratch, table: &str) -> Option<i64> {
    list_tables(&s.lakehouse)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.table == table)
        .and_then(|t| t.version)
}

#[tokio::test(flavor = "multi_thread")]
async fn quarantine_gets_a_version_only_when_something_was_rejected() {
    let s = Scratch::new().await;
    let ann = r#"{"email":"ann@x.com","lastUpdateDate":1}"#;
    s.land_lines(Source::Customer, "a.json", &[ann]).await;
    s.run(ConsentPolicy::AnyTime).await;
    let before = version_of(&s, "quarantine").await;

    s.land_lines(Source::Customer, "b.json", &[ann]).await;
    s.run(ConsentPolicy::AnyTime).await;
    assert_eq!(version_of(&s, "quarantine").await, before, "a clean file");
    assert_eq!(s.count("customer_landing").await, 2);

    s.land_lines(Source::Customer, "c.json", &["{not json"])
        .await;
    s.run(ConsentPolicy::AnyTime).await;
    assert_ne!(
        version_of(&s, "quarantine").await,
        before,
        "a rejected line"
    );
    assert_eq!(s.count("quarantine").await, 1);
}
