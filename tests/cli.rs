//! The `stedi` binary as a user meets it: output for people and scripts, and one clear
//! line with a hint (never a panic) for every mistake.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step should fail the test

mod common;

use std::path::Path;
use std::process::Output;

use common::{Scratch, stderr, stdout, stedi};
use stedi::feed::Source;
use stedi::models::ConsentPolicy;

/// A user mistake: non-zero exit, an `error:` line first, a hint, and no panic.
fn assert_user_error(o: &Output, needle: &str) {
    let err = stderr(o);
    assert!(!o.status.success(), "{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains(needle), "{needle:?} not in {err}");
    assert!(err.contains("hint: "), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

async fn small_lakehouse() -> Scratch {
    let s = Scratch::new().await;
    s.land_lines(Source::Customer, "c.json", &[
        r#"{"email":"ann@x.com","serialNumber":"S","lastUpdateDate":1,"shareWithResearchAsOfDate":1}"#,
    ]).await;
    s.land_lines(
        Source::Accelerometer,
        "a.json",
        &[
            r#"{"user":"ann@x.com","timestamp":100,"x":1.0,"y":0.5,"z":-1.0}"#,
            r#"{"user":"ann@x.com","timestamp":200,"x":0.0,"y":0.0,"z":0.0}"#,
        ],
    )
    .await;
    s.land_lines(
        Source::StepTrainer,
        "s.json",
        &[r#"{"sensorReadingTime":100,"serialNumber":"S","distanceFromObject":250}"#],
    )
    .await;
    s.run(ConsentPolicy::AnyTime).await;
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn csv_and_json_print_only_data() {
    let s = small_lakehouse().await;
    let q = "SELECT timestamp, x FROM accelerometer_trusted ORDER BY timestamp";
    let csv = stedi(&s.location(), &["sql", q, "--format", "csv"]);
    assert!(csv.status.success(), "{}", stderr(&csv));
    assert_eq!(stdout(&csv), "timestamp,x\n100,1.0\n200,0.0\n");
    let json = stedi(&s.location(), &["sql", q, "--format", "json"]);
    assert_eq!(
        stdout(&json),
        "{\"timestamp\":100,\"x\":1.0}\n{\"timestamp\":200,\"x\":0.0}\n"
    );
    let table = stedi(&s.location(), &["sql", q]);
    assert!(
        stdout(&table).contains("| timestamp |"),
        "{}",
        stdout(&table)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tables_lists_every_table_with_zone_rows_and_version() {
    let s = small_lakehouse().await;
    let out = stedi(&s.location(), &["tables"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for (zone, table, rows) in [
        ("landing", "accelerometer_landing", "2"),
        ("landing", "quarantine", "0"),
        ("trusted", "step_trainer_trusted", "1"),
        ("curated", "machine_learning_curated", "1"),
    ] {
        let line = text
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(table))
            .unwrap_or_else(|| panic!("{table} missing in\n{text}"));
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!((cells[0], cells[2]), (zone, rows), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_reads_back_through_its_delta_log_in_a_fresh_process() {
    let s = small_lakehouse().await;
    let q = "SELECT * FROM machine_learning_curated";
    let before = stdout(&stedi(&s.location(), &["sql", q, "--format", "csv"]));
    assert_eq!(
        before.lines().count(),
        s.rows(q).await.len() + 1,
        "{before}"
    );
    // A stray Parquet file in the table folder is not part of the table: readers follow the log.
    let folder = Path::new(&s.location()).join("curated/machine_learning_curated");
    let any = std::fs::read_dir(&folder)
        .unwrap()
        .flatten()
        .find(|e| e.path().extension().is_some_and(|x| x == "parquet"))
        .unwrap();
    std::fs::copy(any.path(), folder.join("stray-copy.parquet")).unwrap();
    let after = stdout(&stedi(&s.location(), &["sql", q, "--format", "csv"]));
    assert_eq!(after, before);
    assert_eq!(after.lines().count(), 2, "{after}");
    let count = stdout(&stedi(
        &s.location(),
        &[
            "sql",
            "SELECT count(*) AS n FROM step_trainer_trusted",
            "--format",
            "csv",
        ],
    ));
    assert_eq!(count, "n\n1\n");
}

#[test]
fn a_missing_lakehouse_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = dir.path().join("nowhere");
    for args in [&["tables"][..], &["sql", "SELECT 1"], &["run"]] {
        assert_user_error(&stedi(nowhere.to_str().unwrap(), args), "no lakehouse at");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn query_mistakes_are_explained() {
    let s = small_lakehouse().await;
    let loc = s.location();
    assert_user_error(
        &stedi(&loc, &["sql", "SELECT * FROM customers"]),
        "customers",
    );
    assert_user_error(&stedi(&loc, &["sql", "SELEC 1"]), "error");
    assert_user_error(
        &stedi(&loc, &["sql", "DELETE FROM customer_trusted"]),
        "error",
    );
    assert_user_error(
        &stedi(&loc, &["sql", "DROP TABLE customer_trusted"]),
        "error",
    );
    assert_user_error(
        &stedi(&loc, &["sql", "SELECT nope FROM customer_trusted"]),
        "nope",
    );
    // Nothing was changed by the refused statements.
    assert_eq!(s.count("customer_trusted").await, 1);
}

#[test]
fn landing_mistakes_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let lh = dir.path().join("lh");
    let lh = lh.to_str().unwrap();
    assert_user_error(
        &stedi(lh, &["land", "customer", "/no/such/file.json"]),
        "/no/such/file.json",
    );
    let unknown = stedi(lh, &["land", "customers", "x.json"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        stderr(&unknown).contains("customer"),
        "{}",
        stderr(&unknown)
    );

    let file = dir.path().join("c.json");
    std::fs::write(&file, "{\"email\":\"a@x.com\"}\n").unwrap();
    assert!(
        stedi(lh, &["land", "customer", file.to_str().unwrap()])
            .status
            .success()
    );
    let again = stedi(lh, &["land", "customer", file.to_str().unwrap()]);
    assert!(again.status.success());
    assert!(stdout(&again).contains("already landed"));
    std::fs::write(&file, "{\"email\":\"b@x.com\"}\n").unwrap();
    assert_user_error(
        &stedi(lh, &["land", "customer", file.to_str().unwrap()]),
        "different content",
    );
}

#[test]
fn an_unwritable_lakehouse_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.json");
    std::fs::write(&file, "{\"email\":\"a@x.com\"}\n").unwrap();
    // A lakehouse "inside" a regular file can never be created, whoever runs the test.
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, "").unwrap();
    let lh = blocker.join("lh");
    assert_user_error(
        &stedi(
            lh.to_str().unwrap(),
            &["land", "customer", file.to_str().unwrap()],
        ),
        "cannot write",
    );
}

#[test]
fn demo_runs_the_whole_pipeline_into_a_fresh_lakehouse() {
    let dir = tempfile::tempdir().unwrap();
    let lh = dir.path().join("demo");
    let out = stedi(lh.to_str().unwrap(), &["demo", "--customers", "200"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let rows = |table: &str| -> u64 {
        text.lines()
            .find(|l| l.split_whitespace().nth(1) == Some(table))
            .unwrap()
            .split_whitespace()
            .nth(2)
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(rows("customer_landing") >= 200);
    assert!(rows("machine_learning_curated") > 0);
    assert!(rows("customer_trusted") < rows("customer_landing"));
    // A second demo into the same place refuses rather than mixing data.
    assert_user_error(&stedi(lh.to_str().unwrap(), &["demo"]), "fresh");
}

#[tokio::test(flavor = "multi_thread")]
async fn quiet_leaves_stderr_to_errors() {
    let s = small_lakehouse().await;
    let chatty = stedi(&s.location(), &["run"]);
    assert!(chatty.status.success());
    assert!(
        stderr(&chatty).contains("nothing new"),
        "{}",
        stderr(&chatty)
    );
    let quiet = stedi(&s.location(), &["--quiet", "run"]);
    assert!(quiet.status.success());
    assert_eq!(stderr(&quiet), "");
    assert!(stdout(&quiet).contains("machine_learning_curated"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_landing_table_of_an_earlier_version_is_refused_before_anything_is_written() {
    let s = Scratch::new().await;
    // customer_landing as an earlier version wrote it: without `_customer`.
    let current = Source::Customer.landing_schema();
    let earlier = arrow::datatypes::Schema::new(
        current
            .fields()
            .iter()
            .filter(|f| f.name() != "_customer")
            .cloned()
            .collect::<Vec<_>>(),
    );
    let id = stedi::lakehouse::layout::TableId::new(
        stedi::lakehouse::layout::Zone::Landing,
        "customer_landing",
    );
    stedi::delta::ensure_table(&s.lakehouse, &id, &std::sync::Arc::new(earlier))
        .await
        .unwrap();
    s.land_lines(
        Source::Customer,
        "c.json",
        &[r#"{"email":"ann@x.com","lastUpdateDate":1}"#],
    )
    .await;

    let o = stedi(&s.location(), &["run"]);
    assert_user_error(
        &o,
        "`customer_landing` was written by an earlier version of stedi",
    );
    assert!(
        stderr(&o).contains("make a new lakehouse"),
        "{}",
        stderr(&o)
    );
    assert_eq!(s.count("customer_landing").await, 0, "nothing was appended");
}
