//! Incremental runs give the tables a full rebuild gives.
//!
//! A property test: many random histories of landed files, each landed a few files at a
//! time with a run in between. After every run, each trusted and curated table must hold
//! exactly the rows that one run over all files landed so far produces in a fresh
//! lakehouse. The histories are small but dense with the hard cases: consent granted and
//! revoked by later records, readings that arrive before their customer's record, e-mails
//! in other case and padding, serial numbers shared between customers (so that a new
//! customer makes an old reading ambiguous), ties on lastUpdateDate, malformed lines.
//!
//! `STEDI_PROPERTY_CASES` sets the number of histories (default 40); a failure prints
//! the seed, and `STEDI_PROPERTY_SEED` replays one history.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step should fail the test

mod common;

use std::path::{Path, PathBuf};

use common::{Scratch, customer, reading, step};
use stedi::feed::Source;
use stedi::models::ConsentPolicy;
use stedi::transform::BuildOptions;

const MODELS: [&str; 5] = [
    "customer_trusted",
    "accelerometer_trusted",
    "customers_curated",
    "step_trainer_trusted",
    "machine_learning_curated",
];

/// SplitMix64: small, seedable, good enough to pick events.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const PEOPLE: [&str; 5] = ["ann", "bob", "cy", "dee", "eve"];
const SERIALS: [&str; 3] = ["S-1", "S-2", "S-3"];
const INSTANTS: [i64; 6] = [100, 200, 300, 400, 500, 600];

/// An e-mail of one of the people, as a feed might write it.
fn email(rng: &mut Rng) -> String {
    let who = rng.pick(&PEOPLE);
    match rng.below(6) {
        0 => format!("{}@X.COM", who.to_uppercase()),
        1 => format!("  {who}@x.com "),
        _ => format!("{who}@x.com"),
    }
}

/// One line of a source's file.
fn line(rng: &mut Rng, source: Source) -> String {
    if rng.below(25) == 0 {
        return "{\"broken\": ".to_string();
    }
    match source {
        Source::Customer => {
            let (who, serial, updated) = (email(rng), *rng.pick(&SERIALS), 1 + rng.below(4) as i64);
            let consent = match rng.below(5) {
                0 => None,
                1 => Some(0),
                _ => Some(*rng.pick(&INSTANTS) + 50),
            };
            customer(&who, serial, updated, consent)
        }
        Source::Accelerometer => {
            let user = if rng.below(10) == 0 {
                "stranger@x.com".to_string()
            } else {
                email(rng)
            };
            serde_json::json!({
                "user": user, "timestamp": rng.pick(&INSTANTS),
                "x": rng.below(3) as f64, "y": 0.5, "z": -1.0,
            })
            .to_string()
        }
        Source::StepTrainer => serde_json::json!({
            "sensorReadingTime": rng.pick(&INSTANTS), "serialNumber": rng.pick(&SERIALS),
            "distanceFromObject": 200 + rng.below(50),
        })
        .to_string(),
    }
}

/// A random history: files (source, path) in landing order, cut into runs.
fn history(seed: u64, dir: &Path) -> (Vec<Vec<(Source, PathBuf)>>, ConsentPolicy) {
    let mut rng = Rng(seed);
    let policy = if rng.below(3) == 0 {
        ConsentPolicy::SinceConsent
    } else {
        ConsentPolicy::AnyTime
    };
    let mut runs = Vec::new();
    let mut n = 0;
    for _ in 0..2 + rng.below(3) {
        let mut files = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let source = *rng.pick(&Source::ALL);
            let lines: Vec<String> = (0..1 + rng.below(6))
                .map(|_| line(&mut rng, source))
                .collect();
            let path = dir.join(format!("{}-{n:02}.json", source.name()));
            n += 1;
            std::fs::write(&path, lines.join("\n") + "\n").unwrap();
            files.push((source, path));
        }
        runs.push(files);
    }
    (runs, policy)
}

async fn table_rows(s: &Scratch, table: &str) -> Vec<String> {
    let mut rows = s.rows(&format!("SELECT * FROM {table}")).await;
    rows.sort();
    rows
}

/// Lands a history run by run into one lakehouse, comparing it after every run with a
/// lakehouse that got everything so far in one run.
async fn check(seed: u64) {
    let s = Scratch::new().await;
    let inbox = s.dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let (runs, policy) = history(seed, &inbox);
    let mut landed: Vec<(Source, PathBuf)> = Vec::new();
    for (i, files) in runs.iter().enumerate() {
        for (source, path) in files {
            s.land_files(*source, std::slice::from_ref(path)).await;
        }
        landed.extend(files.iter().cloned());
        let incremental = stedi::pipeline::run(
            &s.lakehouse,
            if i == 0 {
                policy.into()
            } else {
                BuildOptions::default()
            },
            &stedi::progress::Progress::hidden(),
        )
        .await;
        let full = Scratch::new().await;
        full.share_secret_of(&s).await;
        for (source, path) in &landed {
            full.land_files(*source, std::slice::from_ref(path)).await;
        }
        let rebuilt = stedi::pipeline::run(
            &full.lakehouse,
            policy.into(),
            &stedi::progress::Progress::hidden(),
        )
        .await;
        match (incremental, rebuilt) {
            (Ok(_), Ok(_)) => {}
            // Until every source has landed something there is nothing to build, and
            // both say so.
            (Err(_), Err(_)) => continue,
            (a, b) => panic!("seed {seed}, run {i}: incremental {a:?} but full {b:?}"),
        }
        for table in MODELS {
            assert_eq!(
                table_rows(&s, table).await,
                table_rows(&full, table).await,
                "seed {seed}: `{table}` after run {i} differs from a full rebuild \
                 (replay with STEDI_PROPERTY_SEED={seed})"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn incremental_runs_equal_a_full_rebuild_over_random_histories() {
    if let Some(seed) = std::env::var("STEDI_PROPERTY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        check(seed).await;
        return;
    }
    let cases: u64 = std::env::var("STEDI_PROPERTY_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    for seed in 0..cases {
        check(seed).await;
    }
}

/// The hard cases one by one, so that a failure names the case.
#[tokio::test(flavor = "multi_thread")]
async fn consent_changes_and_late_records_reach_every_table_in_the_same_run() {
    let s = Scratch::new().await;
    // Readings and a step reading arrive before Ann's record.
    s.land_lines(
        Source::Customer,
        "c1.json",
        &[&customer("bob@x.com", "T", 1, Some(1))],
    )
    .await;
    s.land_lines(
        Source::Accelerometer,
        "a1.json",
        &[&reading("ann@x.com", 100), &reading("bob@x.com", 100)],
    )
    .await;
    s.land_lines(
        Source::StepTrainer,
        "s1.json",
        &[&step("S", 100), &step("T", 100)],
    )
    .await;
    s.run(ConsentPolicy::AnyTime).await;
    assert_eq!(
        s.count("step_trainer_trusted").await,
        1,
        "only Bob's T reading"
    );

    // Ann's record with consent arrives: her earlier readings come in.
    s.land_lines(
        Source::Customer,
        "c2.json",
        &[&customer("ann@x.com", "S", 1, Some(1))],
    )
    .await;
    let report = s.run(ConsentPolicy::AnyTime).await;
    assert!(
        report
            .models
            .iter()
            .any(|m| matches!(m.change, stedi::transform::Change::Updated { .. }))
    );
    assert_eq!(s.count("accelerometer_trusted").await, 2);
    assert_eq!(s.count("step_trainer_trusted").await, 2);
    assert_eq!(s.count("machine_learning_curated").await, 2);

    // Bob revokes (a later record without consent): every row of his goes.
    s.land_lines(
        Source::Customer,
        "c3.json",
        &[&customer(" BOB@x.com", "T", 2, None)],
    )
    .await;
    s.run(ConsentPolicy::AnyTime).await;
    assert_eq!(s.count("customer_trusted").await, 1);
    assert_eq!(s.count("accelerometer_trusted").await, 1);
    assert_eq!(
        s.rows("SELECT serialNumber FROM step_trainer_trusted")
            .await,
        ["S"]
    );
    assert_eq!(s.count("machine_learning_curated").await, 1);

    // Cy is given Ann's serial and recorded at Ann's instant: the reading is now
    // claimed by two customers and leaves step_trainer_trusted.
    s.land_lines(
        Source::Customer,
        "c4.json",
        &[&customer("cy@x.com", "S", 1, Some(1))],
    )
    .await;
    s.land_lines(
        Source::Accelerometer,
        "a2.json",
        &[&reading("cy@x.com", 100)],
    )
    .await;
    s.run(ConsentPolicy::AnyTime).await;
    assert_eq!(s.count("step_trainer_trusted").await, 0);
    assert_eq!(s.count("machine_learning_curated").await, 0);
}

/// `--full` rebuilds every table, and gives the same rows.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_run_rebuilds_every_table_with_the_same_rows() {
    let s = Scratch::new().await;
    let root = common::generated(&s, 200, 3);
    common::land_all(&s, &root).await;
    s.run(ConsentPolicy::SinceConsent).await;
    let before: Vec<Vec<String>> = model_rows(&s).await;
    let report = stedi::pipeline::run(
        &s.lakehouse,
        BuildOptions {
            consent: None,
            full: true,
        },
        &stedi::progress::Progress::hidden(),
    )
    .await
    .unwrap();
    assert!(
        report
            .models
            .iter()
            .all(|m| m.change == stedi::transform::Change::Rebuilt)
    );
    // The consent policy of the first run was remembered.
    assert_eq!(model_rows(&s).await, before);
}

async fn model_rows(s: &Scratch) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for table in MODELS {
        out.push(table_rows(s, table).await);
    }
    out
}

/// Rotating the secret re-keys every curated row in one run and changes nothing else.
#[tokio::test(flavor = "multi_thread")]
async fn rotating_the_secret_rekeys_the_curated_tables_in_one_run() {
    let s = Scratch::new().await;
    let root = common::generated(&s, 200, 5);
    common::land_all(&s, &root).await;
    s.run(ConsentPolicy::AnyTime).await;
    let keyed = "SELECT c.email, m.sensorReadingTime, m.x, m.customer_key \
                 FROM machine_learning_curated m JOIN customers_curated c USING (customer_key)";
    let before = s.rows(keyed).await;
    let old_secret = s.lakehouse.customer_key_secret().await.unwrap();

    let models = stedi::pipeline::rotate_key(&s.lakehouse, &stedi::progress::Progress::hidden())
        .await
        .unwrap();
    assert!(models.iter().all(|m| m.written()));
    let new_secret = s.lakehouse.customer_key_secret().await.unwrap();
    assert_ne!(old_secret, new_secret);

    let after = s.rows(keyed).await;
    assert_eq!(after.len(), before.len());
    let strip_key = |rows: &[String]| -> Vec<String> {
        let mut v: Vec<String> = rows
            .iter()
            .map(|r| r.rsplit_once('|').unwrap().0.to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        strip_key(&after),
        strip_key(&before),
        "same rows apart from the key"
    );
    let old_keys: std::collections::HashSet<&str> = before
        .iter()
        .map(|r| r.rsplit_once('|').unwrap().1)
        .collect();
    for row in &after {
        let (rest, key) = row.rsplit_once('|').unwrap();
        assert!(!old_keys.contains(key), "an old key survived rotation");
        let email = rest.split('|').next().unwrap();
        assert_eq!(key, stedi::feed::customer_key(&new_secret, email));
    }
}

/// A per-reading model too large for the memory limit is built one slice of time after
/// another; the table is the same as one built at once.
#[tokio::test(flavor = "multi_thread")]
async fn a_model_built_in_slices_of_time_equals_one_built_at_once() {
    let at_once = Scratch::new().await;
    let root = common::generated(&at_once, 300, 9);
    common::land_all(&at_once, &root).await;
    at_once.run(ConsentPolicy::AnyTime).await;

    let sliced = Scratch::new().await;
    sliced.share_secret_of(&at_once).await;
    common::land_all(&sliced, &root).await;
    // 2 MiB of memory: slices of 8,192 rows, so the trusted phone readings take two or more.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stedi"))
        .args(["--lakehouse", &sliced.location(), "run"])
        .env("STEDI_MEMORY_LIMIT", "2M")
        .env("STEDI_LOG", "stedi=info")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("built in slices of time"), "{log}");
    assert!(at_once.count("accelerometer_trusted").await > 8_192);
    // As many slices as it takes to hold the largest input 8,192 rows at a time.
    for (model, inputs) in [
        (
            "step_trainer_trusted",
            ["accelerometer_trusted", "step_trainer_landing"],
        ),
        (
            "machine_learning_curated",
            ["accelerometer_trusted", "step_trainer_trusted"],
        ),
    ] {
        let mut largest = 0;
        for input in inputs {
            largest = largest.max(at_once.count(input).await);
        }
        let slices = largest.div_ceil(8_192);
        assert!(
            log.contains(&format!("model={model} slices={slices}")),
            "{model} in {slices} slices: {log}"
        );
    }
    for table in MODELS {
        assert_eq!(
            table_rows(&sliced, table).await,
            table_rows(&at_once, table).await,
            "`{table}` built in slices differs"
        );
    }
}

/// The Parquet data files under a folder of the lakehouse.
fn data_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() && !path.ends_with("_delta_log") {
            files.extend(data_files(&path));
        } else if path.extension().is_some_and(|x| x == "parquet") {
            files.push(path);
        }
    }
    files
}

/// Whether a data file's Bloom filter of `column` may hold `value`, in any row group.
fn bloom_may_hold(file: &Path, column: &str, value: &str) -> bool {
    use datafusion::parquet::file::properties::ReaderProperties;
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
    use datafusion::parquet::file::serialized_reader::ReadOptionsBuilder;
    let options = ReadOptionsBuilder::new()
        .with_reader_properties(
            ReaderProperties::builder()
                .set_read_bloom_filter(true)
                .build(),
        )
        .build();
    let reader =
        SerializedFileReader::new_with_options(std::fs::File::open(file).unwrap(), options)
            .unwrap();
    let metadata = reader.metadata();
    let index = metadata
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .position(|c| c.name() == column)
        .unwrap_or_else(|| panic!("{} has no column {column}", file.display()));
    (0..metadata.num_row_groups()).any(|g| {
        let group = reader.get_row_group(g).unwrap();
        let bloom = group
            .get_column_bloom_filter(index)
            .unwrap_or_else(|| panic!("{} has no Bloom filter of {column}", file.display()));
        bloom.check(value)
    })
}

/// The values of a text column in a data file.
fn column_values(file: &Path, column: &str) -> Vec<String> {
    use arrow::array::AsArray;
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(file).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let mut values = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let text = arrow::compute::cast(
            batch.column_by_name(column).unwrap(),
            &arrow::datatypes::DataType::Utf8,
        )
        .unwrap();
        values.extend(text.as_string::<i32>().iter().flatten().map(str::to_string));
    }
    values
}

/// Every data file of a table that names customers carries a Bloom filter of the column
/// that names them, which is how an incremental run skips the row groups of everyone else:
/// also the files an incremental run writes, whose filters are sized for its few customers.
#[tokio::test(flavor = "multi_thread")]
async fn every_data_file_has_a_bloom_filter_of_its_customers() {
    let s = Scratch::new().await;
    let land = |name: &'static str, who: &'static str, serial: &'static str, at: i64| {
        let s = &s;
        async move {
            s.land_lines(
                Source::Customer,
                &format!("c-{name}.json"),
                &[&customer(who, serial, 1, Some(1))],
            )
            .await;
            s.land_lines(
                Source::Accelerometer,
                &format!("a-{name}.json"),
                &[&reading(&format!("{} ", who.trim().to_lowercase()), at)],
            )
            .await;
            s.land_lines(
                Source::StepTrainer,
                &format!("s-{name}.json"),
                &[&step(serial, at)],
            )
            .await;
            s.run(ConsentPolicy::AnyTime).await;
        }
    };
    land("ann", " Ann@X.com", "S", 100).await;
    // The second run is incremental: it writes new files for Bob alone.
    land("bob", "Bob@X.com", "T", 200).await;
    assert_eq!(s.count("machine_learning_curated").await, 2);

    let root = PathBuf::from(s.location());
    for (table, column) in [
        ("landing/customer_landing", "_customer"),
        ("landing/accelerometer_landing", "_customer"),
        ("trusted/customer_trusted", "email"),
        ("trusted/accelerometer_trusted", "user"),
        ("curated/customers_curated", "email"),
    ] {
        let files = data_files(&root.join(table));
        assert!(files.len() >= 2, "{table} has a file from each run");
        for file in files {
            let values = column_values(&file, column);
            assert!(!values.is_empty(), "{}", file.display());
            for value in values {
                assert!(
                    bloom_may_hold(&file, column, &value),
                    "{}: {value}",
                    file.display()
                );
            }
            assert!(
                !bloom_may_hold(&file, column, "nobody@x.com"),
                "{}: a Bloom filter this small answers no for others",
                file.display()
            );
        }
    }
}

/// A run that touches more customers than a query names one by one restricts its inputs
/// by a join with the affected keys instead, and still gives what a full rebuild gives.
#[tokio::test(flavor = "multi_thread")]
async fn an_incremental_run_over_very_many_customers_equals_a_full_rebuild() {
    let s = Scratch::new().await;
    s.land_lines(
        Source::Customer,
        "c-1.json",
        &[&customer("ann@x.com", "S", 1, Some(1))],
    )
    .await;
    s.land_lines(
        Source::Accelerometer,
        "a-1.json",
        &[&reading("ann@x.com", 100)],
    )
    .await;
    s.land_lines(Source::StepTrainer, "s-1.json", &[&step("S", 100)])
        .await;
    s.run(ConsentPolicy::AnyTime).await;

    // More new customers than an `IN` list names (10,000), and Ann again.
    let many = 10_001;
    let people: Vec<String> = (0..many).map(|i| format!("p{i}@x.com")).collect();
    let customers: Vec<String> = people
        .iter()
        .enumerate()
        .map(|(i, who)| customer(who, &format!("T{}", i % 7), 2, (i % 2 == 0).then_some(1)))
        .chain([customer("ann@x.com", "S", 3, None)])
        .collect();
    let readings: Vec<String> = people
        .iter()
        .enumerate()
        .map(|(i, who)| reading(who, 200 + i as i64))
        .collect();
    let steps: Vec<String> = (0..many)
        .map(|i| step(&format!("T{}", i % 7), 200 + i as i64))
        .collect();
    fn lines(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    s.land_lines(Source::Customer, "c-2.json", &lines(&customers))
        .await;
    s.land_lines(Source::Accelerometer, "a-2.json", &lines(&readings))
        .await;
    s.land_lines(Source::StepTrainer, "s-2.json", &lines(&steps))
        .await;
    let report = s.run(ConsentPolicy::AnyTime).await;
    assert!(
        report
            .models
            .iter()
            .all(|m| matches!(m.change, stedi::transform::Change::Updated { .. })),
        "the second run updates every table in place"
    );
    let incremental = model_rows(&s).await;
    assert_eq!(
        incremental[0].len(),
        (many as usize).div_ceil(2),
        "consenting customers"
    );

    stedi::pipeline::run(
        &s.lakehouse,
        BuildOptions {
            consent: None,
            full: true,
        },
        &stedi::progress::Progress::hidden(),
    )
    .await
    .unwrap();
    assert_eq!(incremental, model_rows(&s).await);
}
