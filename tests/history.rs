//! The run history and time travel, as a user meets them: `stedi history` lists what each
//! command changed, and `stedi sql` reads any table as of a version or a time.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step should fail the test

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{Scratch, stderr, stdout, stedi};
use serde_json::Value;
use stedi::feed::Source;

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

/// A user mistake: exit 1, an `error:` line first containing `needle`, and a hint.
fn assert_user_error(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(
        err.lines().next().unwrap().contains(needle),
        "{needle:?} not in {err}"
    );
    assert!(err.contains("\nhint: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
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
    let tables = stedi::catalog::list_tables(&s.lakehouse).await.unwrap();
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
async fn time_travel_reads_a_table_as_of_a_version_or_a_time() {
    let s = Scratch::new().await;
    let loc = s.location();
    s.land_lines(Source::Customer, "a.json", &[ANN, BOB]).await;
    ok(&loc, &["run"]);
    s.land_lines(Source::Customer, "b.json", &[CAT]).await;
    ok(&loc, &["run"]);

    // The history says which version the first run left `customer_landing` at, and when.
    let runs = history(&loc);
    let first = &runs[1];
    let version = object(first, "versions")["customer_landing"]
        .as_i64()
        .unwrap();
    let ended = first["ended_at"].as_str().unwrap();

    // Both states of the table in one query.
    let query = format!(
        r#"SELECT (SELECT count(*) FROM "customer_landing@{version}") AS then_,
                  (SELECT count(*) FROM customer_landing) AS now_"#
    );
    assert_eq!(
        ok(&loc, &["sql", &query, "--format", "csv"]),
        "then_,now_\n2,3\n"
    );

    // As of a time: the latest version at or before it.
    let query = format!(r#"SELECT email FROM "customer_landing@{ended}" ORDER BY email"#);
    assert_eq!(
        ok(&loc, &["sql", &query, "--format", "csv"]),
        "email\nann@x.com\nbob@x.com\n"
    );

    // Only what the old version held: the file landed later is not in it.
    let query =
        format!(r#"SELECT DISTINCT _file FROM "customer_landing@{version}" ORDER BY _file"#);
    assert_eq!(
        ok(&loc, &["sql", &query, "--format", "csv"]),
        "_file\nlanding/customer/a.json\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn time_travel_mistakes_are_explained() {
    let s = Scratch::new().await;
    let loc = s.location();
    s.land_lines(Source::Customer, "a.json", &[ANN]).await;
    ok(&loc, &["run"]);
    let latest = stedi::catalog::list_tables(&s.lakehouse)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.table == "customer_landing")
        .unwrap()
        .version
        .unwrap();

    let sql = |q: &str| stedi(&loc, &["sql", q]);
    let bad_version = sql(r#"SELECT count(*) FROM "customer_landing@99""#);
    assert_user_error(&bad_version, "`customer_landing` has no version 99");
    assert!(
        stderr(&bad_version).contains(&format!(
            "the latest version of `customer_landing` is {latest}"
        )),
        "{}",
        stderr(&bad_version)
    );
    let unknown = sql(r#"SELECT count(*) FROM "customers@1""#);
    assert_user_error(&unknown, "no table `customers`");
    assert!(
        stderr(&unknown).contains("customer_landing"),
        "{}",
        stderr(&unknown)
    );
    assert_user_error(
        &sql(r#"SELECT count(*) FROM "customer_landing@yesterday""#),
        "neither a version nor a time",
    );
    assert_user_error(
        &sql(r#"SELECT count(*) FROM "customer_landing@2001-01-01T00:00:00Z""#),
        "did not exist yet at 2001-01-01T00:00:00Z",
    );
    // Without the double quotes, a time does not parse as a name.
    let unquoted = sql("SELECT count(*) FROM customer_landing@2026-11-22T10:00:00Z");
    assert_user_error(&unquoted, "cannot parse");
    assert!(
        stderr(&unquoted).contains("double quotes"),
        "{}",
        stderr(&unquoted)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_version_whose_files_were_vacuumed_is_explained() {
    let s = Scratch::new().await;
    let loc = s.location();
    s.land_lines(Source::Customer, "a.json", &[ANN]).await;
    ok(&loc, &["run"]);
    s.land_lines(Source::Customer, "b.json", &[CAT]).await;
    ok(&loc, &["run", "--full"]);
    // `--full` rewrote `customer_trusted`; remove the files only its older versions
    // use, as a vacuum does.
    let folder = Path::new(&loc).join("trusted/customer_trusted");
    let table = s
        .lakehouse
        .load_table(&stedi::lakehouse::layout::TableId::new(
            stedi::lakehouse::layout::Zone::Trusted,
            "customer_trusted",
        ))
        .await
        .unwrap()
        .unwrap();
    let latest = stedi::delta::version(&table);
    let current: Vec<String> = table
        .get_file_uris()
        .unwrap()
        .map(|uri| uri.rsplit('/').next().unwrap().to_string())
        .collect();
    let mut removed = 0;
    for entry in std::fs::read_dir(&folder).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".parquet") && !current.contains(&name) {
            std::fs::remove_file(entry.path()).unwrap();
            removed += 1;
        }
    }
    assert!(removed > 0, "no older file to remove in {folder:?}");

    let old = stedi(
        &loc,
        &[
            "sql",
            &format!(r#"SELECT count(*) FROM "customer_trusted@{}""#, latest - 1),
        ],
    );
    assert_user_error(&old, "can no longer be read");
    assert!(stderr(&old).contains("stedi forget"), "{}", stderr(&old));
    // The latest version reads as before.
    let now = ok(
        &loc,
        &[
            "sql",
            &format!(r#"SELECT count(*) AS n FROM "customer_trusted@{latest}""#),
            "--format",
            "csv",
        ],
    );
    assert_eq!(now, "n\n2\n");
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

#[test]
fn the_demo_is_recorded_too() {
    let dir = tempfile::tempdir().unwrap();
    let lh = dir.path().join("demo");
    let lh = lh.to_str().unwrap();
    ok(lh, &["demo", "--customers", "100"]);
    let runs = history(lh);
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(
        (&runs[0]["command"], &runs[0]["outcome"]),
        (&"demo".into(), &"ok".into())
    );
    // Every file the demo landed was ingested by its run.
    let landed: usize = ["customer", "accelerometer", "step_trainer"]
        .iter()
        .map(|source| {
            std::fs::read_dir(Path::new(lh).join("landing").join(source))
                .unwrap()
                .count()
        })
        .sum();
    assert!(landed >= 3);
    assert_eq!(runs[0]["files_ingested"], landed);
}
