//! The run history, as a user meets it: `stedi history` lists what each command changed.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::Scratch;
use serde_json::Value;
use stedi::ingest::feed::Source;

fn stedi(lakehouse: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stedi"))
        .arg("--lakehouse")
        .arg(lakehouse)
        .args(args)
        .env_remove("STEDI_LAKEHOUSE")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs `stedi` and expects success.
fn ok(lakehouse: &str, args: &[&str]) -> String {
    let out = stedi(lakehouse, args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

/// The recorded runs, newest first, as `stedi history --format json` prints them.
fn history(lakehouse: &str) -> Vec<Value> {
    ok(lakehouse, &["history", "--format", "json"])
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// A JSON object stored as text in a history column (`rows`, `versions`).
fn object(run: &Value, column: &str) -> serde_json::Map<String, Value> {
    let text = run[column].as_str().unwrap();
    serde_json::from_str::<Value>(text)
        .unwrap()
        .as_object()
        .unwrap()
        .clone()
}

const ANN: &str =
    r#"{"email":"ann@x.com","serialNumber":"S","lastUpdateDate":1,"shareWithResearchAsOfDate":1}"#;
const BOB: &str =
    r#"{"email":"bob@x.com","serialNumber":"T","lastUpdateDate":1,"shareWithResearchAsOfDate":0}"#;
const CAT: &str =
    r#"{"email":"cat@x.com","serialNumber":"U","lastUpdateDate":1,"shareWithResearchAsOfDate":1}"#;

#[tokio::test(flavor = "multi_thread")]
async fn each_run_is_recorded_newest_first_with_what_it_wrote() {
    let s = Scratch::new().await;
    let loc = s.location();
    s.land_lines(Source::Customer, "a.json", &[ANN, BOB]).await;

    // Before any run: an empty result and a note, not an error.
    let before = stedi(&loc, &["history", "--format", "csv"]);
    assert!(before.status.success(), "{}", stderr(&before));
    assert_eq!(
        stdout(&before),
        "run_id,command,started_at,ended_at,outcome,error,files_ingested,rows,versions\n"
    );
    assert!(
        stderr(&before).contains("no runs recorded yet"),
        "{}",
        stderr(&before)
    );

    ok(&loc, &["run"]);
    ok(&loc, &["run"]); // nothing new

    let runs = history(&loc);
    assert_eq!(runs.len(), 2, "{runs:?}");
    let (second, first) = (&runs[0], &runs[1]);
    assert!(
        first["started_at"].as_str().unwrap() < second["started_at"].as_str().unwrap(),
        "newest first: {runs:?}"
    );
    for run in &runs {
        assert_eq!(run["command"], "run");
        assert_eq!(run["outcome"], "ok");
        assert!(run.get("error").is_none_or(Value::is_null), "{run}");
        assert!(run["started_at"].as_str().unwrap() <= run["ended_at"].as_str().unwrap());
    }
    assert_ne!(first["run_id"], second["run_id"]);

    // The first run ingested the one landed file and wrote every table.
    assert_eq!(first["files_ingested"], 1);
    let versions = object(first, "versions");
    let rows = object(first, "rows");
    assert_eq!(rows["customer_landing"], 2);
    assert_eq!(rows["customer_trusted"], 1);
    assert!(
        versions.contains_key("machine_learning_curated"),
        "{versions:?}"
    );
    // The versions are those the tables are at now, as `stedi tables` shows them.
    let tables = stedi::commands::list_tables(&s.lakehouse).await.unwrap();
    for t in &tables {
        assert_eq!(
            versions.get(&t.table).and_then(Value::as_i64),
            t.version,
            "{}",
            t.table
        );
    }

    // The second run found nothing new and wrote nothing.
    assert_eq!(second["files_ingested"], 0);
    assert!(object(second, "versions").is_empty(), "{second}");
    assert!(object(second, "rows").is_empty(), "{second}");

    // `--limit` keeps the newest; the history is also the `runs` table of `stedi sql`.
    let newest = ok(&loc, &["history", "--limit", "1", "--format", "json"]);
    assert_eq!(newest.lines().count(), 1);
    assert!(
        newest.contains(second["run_id"].as_str().unwrap()),
        "{newest}"
    );
    let counted = ok(
        &loc,
        &[
            "sql",
            "SELECT outcome, count(*) AS n FROM runs GROUP BY outcome",
            "--format",
            "csv",
        ],
    );
    assert_eq!(counted, "outcome,n\nok,2\n");
    let table = ok(&loc, &["history"]);
    assert!(table.contains("| outcome"), "{table}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_run_is_recorded_and_still_fails_with_its_own_error() {
    let s = Scratch::new().await;
    let loc = s.location();
    s.land_lines(Source::Customer, "a.json", &[ANN, BOB]).await;
    ok(&loc, &["run"]);
    // A data file of `customer_landing` is damaged on disk (a bad sector, a bad copy).
    let folder = Path::new(&loc).join("landing/customer_landing");
    for entry in std::fs::read_dir(&folder).unwrap().flatten() {
        if entry.path().extension().is_some_and(|x| x == "parquet") {
            std::fs::write(entry.path(), "not parquet").unwrap();
        }
    }
    s.land_lines(Source::Customer, "b.json", &[CAT]).await;

    let failed = stedi(&loc, &["run"]);
    assert_eq!(failed.status.code(), Some(1), "{}", stderr(&failed));
    let err = stderr(&failed);
    assert!(
        err.starts_with("error: model `customer_trusted` failed"),
        "{err}"
    );
    assert!(err.contains("hint: "), "{err}");

    let runs = history(&loc);
    assert_eq!(runs.len(), 2, "{runs:?}");
    let last = &runs[0];
    assert_eq!(last["outcome"], "failed");
    // The recorded error is the line the user saw.
    assert_eq!(
        format!("error: {}", last["error"].as_str().unwrap()),
        err.lines().next().unwrap()
    );
    // Ingestion had already published the new file before the model failed.
    assert_eq!(last["files_ingested"], 1);
    let versions = object(last, "versions");
    assert!(versions.contains_key("customer_landing"), "{versions:?}");
    assert!(!versions.contains_key("customer_trusted"), "{versions:?}");
    assert_eq!(object(last, "rows")["customer_landing"], 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_stopped_with_ctrl_c_is_recorded_as_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let feeds = dir.path().join("feeds");
    let lh = dir.path().join("lh");
    let lh = lh.to_str().unwrap();
    ok(
        lh,
        &[
            "generate",
            "--out",
            feeds.to_str().unwrap(),
            "--customers",
            "2000",
        ],
    );
    for source in ["customer", "accelerometer", "step_trainer"] {
        let mut args = vec!["land".to_string(), source.to_string()];
        for f in std::fs::read_dir(feeds.join(source)).unwrap().flatten() {
            args.push(f.path().to_string_lossy().into_owned());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(lh, &args);
    }
    let child = Command::new(env!("CARGO_BIN_EXE_stedi"))
        .args(["--lakehouse", lh, "run"])
        .env_remove("STEDI_LAKEHOUSE")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The run of 2000 customers takes seconds; the signal comes well before it ends.
    std::thread::sleep(std::time::Duration::from_millis(200));
    // SAFETY: sends SIGINT, as Ctrl-C does, to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.starts_with("error: interrupted"), "{err}");
    assert!(err.contains("hint: "), "{err}");

    let runs = history(lh);
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["outcome"], "interrupted");
    assert_eq!(runs[0]["command"], "run");
    // The next run carries on and is recorded too.
    ok(lh, &["run"]);
    let runs = history(lh);
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["outcome"], "ok");
}
