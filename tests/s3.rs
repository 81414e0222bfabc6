//! The lakehouse on S3: the same commands and the same guarantees as on a local folder,
//! against a real S3-compatible server on 127.0.0.1 (SeaweedFS; see `common::s3`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step should fail the test

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::s3::{S3, Weed, command_on, stedi_on};
use common::{Scratch, land_all, sample, stderr};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use stedi::feed::Source;
use stedi::models::ConsentPolicy;

/// A user mistake: exit 1, one `error:` line first, a hint, and no panic.
fn assert_user_error(o: &std::process::Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains(needle), "{needle:?} not in {err}");
    assert!(err.contains("\nhint: "), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains(" WARN "),
        "{err}"
    );
}

/// The tables of the contract.
const TABLES: &[&str] = &[
    "customer_landing",
    "accelerometer_landing",
    "step_trainer_landing",
    "quarantine",
    "customer_trusted",
    "accelerometer_trusted",
    "customers_curated",
    "step_trainer_trusted",
    "machine_learning_curated",
];

/// Every row of every table, sorted: what two lakehouses must agree on.
async fn contents(s: &Scratch) -> BTreeMap<&'static str, Vec<String>> {
    let mut out = BTreeMap::new();
    for table in TABLES {
        let mut rows = s.rows(&format!("SELECT * FROM {table}")).await;
        rows.sort();
        out.insert(*table, rows);
    }
    out
}

/// The objects under a lakehouse's prefix (the lease's own entries aside).
async fn objects(s3: &S3, s: &Scratch) -> BTreeSet<String> {
    let prefix = s
        .location()
        .trim_start_matches(&format!("s3://{}/", s3.bucket))
        .to_string();
    let store = s3.bucket_store();
    let listed: Vec<object_store::ObjectMeta> = store
        .list(Some(&object_store::path::Path::from(prefix)))
        .try_collect()
        .await
        .unwrap();
    listed
        .into_iter()
        .map(|m| m.location.to_string())
        .filter(|p| !p.contains("/_stedi/lease/"))
        .collect()
}

/// Waits (at most 30 s) until a command holds the lakehouse's writer lease.
async fn wait_for_lease(s3: &S3, s: &Scratch) {
    let prefix = s
        .location()
        .trim_start_matches(&format!("s3://{}/", s3.bucket))
        .to_string();
    let store = s3.bucket_store();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listed: Vec<object_store::ObjectMeta> = store
            .list(Some(&object_store::path::Path::from(format!(
                "{prefix}/_stedi/lease"
            ))))
            .try_collect()
            .await
            .unwrap();
        if !listed.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "no command took the lease");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn counts(s: &Scratch) -> Vec<u64> {
    let mut out = Vec::new();
    for table in TABLES {
        out.push(s.count(table).await);
    }
    out
}

/// The real sample gives the contract's counts on S3 under both consent policies, and a
/// run with nothing new writes nothing at all.
#[tokio::test(flavor = "multi_thread")]
async fn the_real_sample_gives_the_contract_counts_on_s3() {
    let (Some(s3), Some(root)) = (S3::shared(), sample()) else {
        return;
    };
    let s = Scratch::on_s3(&s3, "sample").await;
    land_all(&s, &root).await;
    s.run(ConsentPolicy::AnyTime).await;
    assert_eq!(
        counts(&s).await,
        [956, 81_273, 28_680, 0, 482, 40_981, 482, 14_460, 40_981]
    );

    let before = objects(&s3, &s).await;
    let again = s.run(ConsentPolicy::AnyTime).await;
    assert!(
        again.models.iter().all(|m| !m.written()),
        "{:?}",
        again.models
    );
    assert_eq!(
        objects(&s3, &s).await,
        before,
        "a run with nothing new wrote objects"
    );

    s.run(ConsentPolicy::SinceConsent).await;
    assert_eq!(
        counts(&s).await,
        [956, 81_273, 28_680, 0, 482, 32_025, 464, 11_297, 32_025]
    );
}

/// One more landed file adds exactly its records, and time travel reads the version
/// before it.
#[tokio::test(flavor = "multi_thread")]
async fn one_more_file_adds_exactly_its_records_and_time_travel_reads_back() {
    use common::{customer, reading, step};
    let Some(s3) = S3::shared() else {
        return;
    };
    let s = Scratch::on_s3(&s3, "more").await;
    s.land_lines(
        Source::Customer,
        "c.json",
        &[&customer("ann@x.com", "S", 1, Some(1))],
    )
    .await;
    s.land_lines(
        Source::Accelerometer,
        "a.json",
        &[&reading("ann@x.com", 100)],
    )
    .await;
    s.land_lines(
        Source::StepTrainer,
        "s.json",
        &[&step("S", 100), &step("S", 200)],
    )
    .await;
    s.run(ConsentPolicy::AnyTime).await;
    assert_eq!(s.count("machine_learning_curated").await, 1);
    let landed = s.count("accelerometer_landing").await;
    s.land_lines(
        Source::Accelerometer,
        "a2.json",
        &[&reading("ann@x.com", 200), &reading("ann@x.com", 300)],
    )
    .await;
    s.run(ConsentPolicy::AnyTime).await;
    assert_eq!(s.count("accelerometer_landing").await, landed + 2);
    assert_eq!(s.count("machine_learning_curated").await, 2);

    // `stedi sql` with time travel, as a user runs it.
    let out = stedi_on(
        &s3,
        &s.location(),
        s.dir.path(),
        &[
            "sql",
            r#"SELECT (SELECT count(*) FROM "accelerometer_landing@1") AS before, (SELECT count(*) FROM accelerometer_landing) AS now"#,
            "--format",
            "csv",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "before,now\n1,3\n");
}

/// `stedi forget` on S3 leaves the address in no object under the lakehouse's prefix
/// (every object listed, Parquet decoded) and refuses their records landed later.
#[tokio::test(flavor = "multi_thread")]
async fn forget_on_s3_leaves_the_address_in_no_object() {
    let (Some(s3), Some(root)) = (S3::shared(), sample()) else {
        return;
    };
    let s = Scratch::on_s3(&s3, "forget").await;
    land_all(&s, &root).await;
    s.run(ConsentPolicy::AnyTime).await;
    let email = s
        .rows("SELECT lower(email) FROM customers_curated ORDER BY 1 LIMIT 1")
        .await
        .remove(0);
    let receipt = stedi::erase::forget(&s.lakehouse, &email, &stedi::progress::Progress::hidden())
        .await
        .unwrap();
    assert!(receipt.verified(), "{:?}", receipt.scan);
    assert!(receipt.removed_anything());

    // An independent look at the bucket: every object, Parquet decoded value by value.
    let needle = stedi::erase::Needle::new(&email);
    let store = s3.bucket_store();
    let mut looked = 0;
    for key in objects(&s3, &s).await {
        let bytes = store
            .get(&object_store::path::Path::from(key.as_str()))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        looked += 1;
        assert!(!needle.is_in(&bytes), "{key} holds the address");
        if key.ends_with(".parquet") {
            let found = stedi::erase::scan::scan_parquet(&key, bytes, &needle);
            assert!(found.is_empty(), "{found:?}");
        }
    }
    assert!(looked > 50, "{looked} objects");

    // Landed again later: refused.
    s.land_lines(
        Source::Accelerometer,
        "late.json",
        &[&common::reading(&email.to_uppercase(), 1)],
    )
    .await;
    s.run(ConsentPolicy::AnyTime).await;
    assert_eq!(s.rows("SELECT reason FROM quarantine").await, ["erased"]);
}

/// A run killed with SIGKILL at several points and run again equals one clean run.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_anywhere_and_run_again_equals_one_clean_run() {
    let (Some(s3), Some(root)) = (S3::shared(), sample()) else {
        return;
    };
    let clean = Scratch::on_s3(&s3, "clean").await;
    land_all(&clean, &root).await;
    clean.run(ConsentPolicy::AnyTime).await;
    let expected = contents(&clean).await;
    for delay_ms in [80, 250, 500, 800, 1200] {
        let s = Scratch::on_s3(&s3, &format!("killed-{delay_ms}")).await;
        s.share_secret_of(&clean).await;
        land_all(&s, &root).await;
        let mut run = command_on(&s3, &s.location(), s.dir.path(), &["--quiet", "run"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        let _ = run.kill();
        let _ = run.wait();
        let out = stedi_on(&s3, &s.location(), s.dir.path(), &["--quiet", "run"]);
        assert!(
            out.status.success(),
            "after {delay_ms} ms: {}",
            stderr(&out)
        );
        assert_eq!(contents(&s).await, expected, "killed after {delay_ms} ms");
    }
}

/// Two runs at once: one holds the lease, the other stops with one line saying so and a
/// non-zero exit; the next run converges to one clean run. `stedi forget` meanwhile is
/// refused the same way, so its vacuum never deletes files the run is writing.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_writer_stops_with_who_holds_the_lease_and_nothing_is_lost() {
    let (Some(s3), Some(root)) = (S3::shared(), sample()) else {
        return;
    };
    let clean = Scratch::on_s3(&s3, "clean2").await;
    land_all(&clean, &root).await;
    clean.run(ConsentPolicy::AnyTime).await;
    let expected = contents(&clean).await;

    let s = Scratch::on_s3(&s3, "two").await;
    s.share_secret_of(&clean).await;
    land_all(&s, &root).await;
    let first = command_on(&s3, &s.location(), s.dir.path(), &["--quiet", "run"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_lease(&s3, &s).await;
    for args in [
        vec!["run"],
        vec!["forget", "--email", "Angie.Abram@test.com"],
    ] {
        let second = stedi_on(&s3, &s.location(), s.dir.path(), &args);
        let err = stderr(&second);
        assert_eq!(second.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.starts_with("error: another stedi run is writing this lakehouse (started "),
            "{err}"
        );
        assert!(
            err.contains("run again when it ends") && err.contains("hint: "),
            "{err}"
        );
        assert_eq!(err.matches("error:").count(), 1, "{err}");
    }
    let first = first.wait_with_output().unwrap();
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(contents(&s).await, expected);
    // Once it ended, the next writer goes ahead.
    let out = stedi_on(&s3, &s.location(), s.dir.path(), &["run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(contents(&s).await, expected);
}

/// The storage stops in the middle of a run: one clean error, every table readable at a
/// whole version, and a run after the storage is back converges to one clean run.
#[tokio::test(flavor = "multi_thread")]
async fn an_outage_mid_run_fails_cleanly_and_the_run_after_it_converges() {
    let (Some(mut weed), Some(root)) = (Weed::start(), sample()) else {
        return;
    };
    let clean = Scratch::on_s3(&weed.s3, "clean").await;
    land_all(&clean, &root).await;
    clean.run(ConsentPolicy::AnyTime).await;
    let expected = contents(&clean).await;

    let s = Scratch::on_s3(&weed.s3, "outage").await;
    s.share_secret_of(&clean).await;
    land_all(&s, &root).await;
    let run = command_on(&weed.s3, &s.location(), s.dir.path(), &["--quiet", "run"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_lease(&weed.s3, &s).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    weed.stop();
    let out = run.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("hint: "), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains(" WARN "),
        "{err}"
    );

    weed.start_again();
    let reopened =
        stedi::lakehouse::Lakehouse::open_with(&s.location(), weed.s3.settings(s.dir.path()))
            .await
            .unwrap();
    // Every table that exists is at a whole version: its rows are what its log says.
    for table in TABLES {
        let id = stedi::catalog::tables()
            .unwrap()
            .into_iter()
            .find(|t| t.name == *table)
            .unwrap();
        if let Some(t) = reopened.load_table(&id).await.unwrap() {
            let logged = stedi::delta::row_count(&t).unwrap();
            assert_eq!(s.count(table).await, logged, "{table}");
        }
    }
    let out = stedi_on(&weed.s3, &s.location(), s.dir.path(), &["--quiet", "run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(contents(&s).await, expected);
}

/// A run with nothing new sends few requests: a change that reads every data file again
/// on each run shows up here. No HEAD per data file either, in any run: the Delta log
/// knows every file's size and statistics.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_with_nothing_new_sends_few_requests() {
    let (Some(s3), Some(root)) = (S3::shared(), sample()) else {
        return;
    };
    let s = Scratch::on_s3(&s3, "requests").await;
    land_all(&s, &root).await;
    s.run(ConsentPolicy::AnyTime).await;
    // A fresh process's view: nothing cached.
    let fresh = stedi::lakehouse::Lakehouse::open_with(&s.location(), s3.settings(s.dir.path()))
        .await
        .unwrap();
    let before = fresh.requests();
    let report = stedi::pipeline::run(
        &fresh,
        ConsentPolicy::AnyTime.into(),
        &stedi::progress::Progress::hidden(),
    )
    .await
    .unwrap();
    assert!(report.models.iter().all(|m| !m.written()));
    let spent = fresh.requests().since(&before);
    eprintln!("a run with nothing new: {spent}");
    assert!(spent.bytes_written < 10_000, "{spent}");
    assert!(spent.total() <= 120, "{spent}");
    assert!(spent.head <= 2, "{spent}");

    // An incremental run reads data files without asking for each one's size first.
    s.land_lines(
        Source::Accelerometer,
        "one-more.json",
        &[&common::reading("Angie.Abram@test.com", 1_655_564_444_103)],
    )
    .await;
    let fresh = stedi::lakehouse::Lakehouse::open_with(&s.location(), s3.settings(s.dir.path()))
        .await
        .unwrap();
    let before = fresh.requests();
    stedi::pipeline::run(
        &fresh,
        ConsentPolicy::AnyTime.into(),
        &stedi::progress::Progress::hidden(),
    )
    .await
    .unwrap();
    let spent = fresh.requests().since(&before);
    eprintln!("an incremental run: {spent}");
    assert!(spent.head <= 2, "{spent}");
    assert!(spent.total() <= 400, "{spent}");
}

/// What a user gets when the bucket is missing, the credentials are wrong, the storage
/// cannot be reached, or the credentials may read but not write: one `error:` line that
/// names the lakehouse and a `hint:` saying what to set or which permission is missing.
#[test]
fn storage_mistakes_get_one_error_and_a_hint_that_says_what_to_set() {
    let Some(s3) = S3::shared() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let missing = "s3://no-such-bucket-stedi/lh";
    let out = stedi_on(&s3, missing, dir.path(), &["tables"]);
    assert_user_error(
        &out,
        "cannot use `s3://no-such-bucket-stedi/lh`: the bucket does not exist",
    );
    assert!(stderr(&out).contains("aws s3 mb"), "{}", stderr(&out));

    let location = s3.location("mistakes");
    let wrong = std::process::Command::new(env!("CARGO_BIN_EXE_stedi"))
        .args(["--lakehouse", &location, "tables"])
        .envs(s3.env_with(&s3.key, "not-the-secret"))
        .env("STEDI_SECRETS", dir.path())
        .output()
        .unwrap();
    assert_user_error(&wrong, "the credentials were refused");
    assert!(
        stderr(&wrong).contains("AWS_SECRET_ACCESS_KEY"),
        "{}",
        stderr(&wrong)
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let started = Instant::now();
    let unreachable = std::process::Command::new(env!("CARGO_BIN_EXE_stedi"))
        .args(["--lakehouse", &location, "tables"])
        .envs(s3.env())
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env("STEDI_SECRETS", dir.path())
        .output()
        .unwrap();
    assert_user_error(&unreachable, "the storage cannot be reached");
    assert!(stderr(&unreachable).contains("AWS_ENDPOINT_URL"));
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );

    if let Some((key, secret)) = &s3.reader {
        let file = dir.path().join("c.json");
        std::fs::write(&file, "{\"email\":\"a@b.com\"}\n").unwrap();
        let denied = std::process::Command::new(env!("CARGO_BIN_EXE_stedi"))
            .args([
                "--lakehouse",
                &location,
                "land",
                "customer",
                file.to_str().unwrap(),
            ])
            .envs(s3.env_with(key, secret))
            .env("STEDI_SECRETS", dir.path())
            .output()
            .unwrap();
        assert_user_error(&denied, "access was denied");
        assert!(
            stderr(&denied).contains("s3:PutObject"),
            "{}",
            stderr(&denied)
        );
    }
}

/// Credentials from a profile of the AWS files (`AWS_PROFILE`), with no key variables:
/// the SDK's chain reads them; the server checks every signature.
#[test]
fn a_profile_of_the_aws_files_is_enough() {
    let Some(s3) = S3::shared() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("credentials");
    let config = dir.path().join("config");
    std::fs::write(
        &credentials,
        format!(
            "[lakehouse]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            s3.key, s3.secret
        ),
    )
    .unwrap();
    std::fs::write(&config, "[profile lakehouse]\nregion = us-east-1\n").unwrap();
    let file = dir.path().join("c.json");
    std::fs::write(&file, "{\"email\":\"a@b.com\"}\n").unwrap();
    let location = s3.location("profile");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stedi"))
        .args([
            "--lakehouse",
            &location,
            "land",
            "customer",
            file.to_str().unwrap(),
        ])
        .env("AWS_ENDPOINT_URL", &s3.endpoint)
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_PROFILE", "lakehouse")
        .env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
        .env("AWS_CONFIG_FILE", &config)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_REGION")
        .env("STEDI_SECRETS", dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("landed landing/customer/c.json"));
}

/// `stedi land` into S3 is verbatim, also for a file large enough to go up in parts.
#[tokio::test(flavor = "multi_thread")]
async fn a_large_file_lands_verbatim_in_parts() {
    let Some(s3) = S3::shared() else {
        return;
    };
    let s = Scratch::on_s3(&s3, "large").await;
    let path = s.dir.path().join("big.json");
    let mut text = String::new();
    let mut i = 0u64;
    while text.len() < 20 << 20 {
        text.push_str(&format!(
            "{{\"user\":\"u{}@x.com\",\"timestamp\":{i},\"x\":1,\"y\":2,\"z\":3}}\r\n",
            i % 977
        ));
        i += 1;
    }
    std::fs::write(&path, &text).unwrap();
    s.land_files(Source::Accelerometer, std::slice::from_ref(&path))
        .await;
    let key = format!(
        "{}/landing/accelerometer/big.json",
        s.location()
            .trim_start_matches(&format!("s3://{}/", s3.bucket))
    );
    let stored = s3
        .bucket_store()
        .get(&object_store::path::Path::from(key))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(
        stored.as_ref() == text.as_bytes(),
        "the landed object differs from the file"
    );
}
