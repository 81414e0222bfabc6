//! `stedi forget`: a person leaves every zone, old versions cannot bring them back, all
//! storage is searched to prove it, and their records landed later are refused.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step should fail the test

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use common::{Scratch, land_all, sample, stedi};
use stedi::erase::{self, Needle};
use stedi::feed::Source;
use stedi::feed::customer_key;
use stedi::land::Landed;
use stedi::models::ConsentPolicy;
use stedi::progress::Progress;

/// Every landed raw file of the lakehouse: path within the lakehouse → bytes.
fn raw_files(s: &Scratch) -> BTreeMap<String, Vec<u8>> {
    let root = PathBuf::from(s.location());
    let mut files = BTreeMap::new();
    for source in Source::ALL {
        let dir = root.join("landing").join(source.name());
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            files.insert(
                format!("landing/{}/{name}", source.name()),
                std::fs::read(entry.path()).unwrap(),
            );
        }
    }
    files
}

/// Every file under `dir`, recursively.
fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(all_files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Splits bytes into lines that keep their terminator, as landed.
fn lines_of(bytes: &[u8]) -> Vec<&[u8]> {
    bytes.split_inclusive(|b| *b == b'\n').collect()
}

/// Whether a raw line belongs to the person, decided here from the contract rather than
/// with the code under test: their e-mail in `email`/`user`, or one of their readings.
fn is_theirs(source: Source, line: &[u8], email: &str, readings: &HashSet<(String, i64)>) -> bool {
    let Ok(serde_json::Value::Object(r)) = serde_json::from_slice::<serde_json::Value>(line) else {
        return String::from_utf8_lossy(line).to_lowercase().contains(email);
    };
    let text = |k: &str| {
        r.get(k)
            .and_then(|v| v.as_str())
            .map(|v| v.trim().to_lowercase())
    };
    match source {
        Source::Customer => text("email").as_deref() == Some(email),
        Source::Accelerometer => text("user").as_deref() == Some(email),
        Source::StepTrainer => match (
            r.get("serialNumber").and_then(|v| v.as_str()),
            r.get("sensorReadingTime").and_then(|v| v.as_i64()),
        ) {
            (Some(s), Some(t)) => readings.contains(&(s.to_string(), t)),
            _ => false,
        },
    }
}

fn source_of(path: &str) -> Source {
    Source::from_name(path.split('/').nth(1).unwrap()).unwrap()
}

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

#[tokio::test(flavor = "multi_thread")]
async fn forgetting_a_customer_removes_them_from_every_zone_and_proves_it() {
    let Some(root) = sample() else {
        return;
    };
    let s = Scratch::new().await;
    land_all(&s, &root).await;
    s.run(ConsentPolicy::AnyTime).await;

    // A consenting customer with attributed step-trainer readings (the one with most).
    let email = s
        .rows(
            "SELECT lower(trim(c.email)) FROM customers_curated c JOIN step_trainer_trusted t \
             ON t.customer_key = c.customer_key GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1",
        )
        .await
        .remove(0);
    let secret = s.lakehouse.customer_key_secret().await.unwrap();
    let key = customer_key(&secret, &email);
    let readings: HashSet<(String, i64)> = s
        .rows(&format!(
            "SELECT serialNumber, sensorReadingTime FROM step_trainer_trusted WHERE customer_key = '{key}'"
        ))
        .await
        .into_iter()
        .map(|r| {
            let (serial, time) = r.split_once('|').unwrap();
            (serial.to_string(), time.parse().unwrap())
        })
        .collect();
    assert!(!readings.is_empty());
    let in_list = readings
        .iter()
        .map(|(s, t)| format!("'{s}|{t}'"))
        .collect::<Vec<_>>()
        .join(", ");

    // Their rows in every table, counted before anything changes.
    let theirs = [
        format!("SELECT count(*) FROM customer_landing WHERE lower(trim(email)) = '{email}'"),
        format!("SELECT count(*) FROM accelerometer_landing WHERE lower(trim(user)) = '{email}'"),
        format!(
            "SELECT count(*) FROM step_trainer_landing WHERE concat(serialNumber, '|', CAST(sensorReadingTime AS VARCHAR)) IN ({in_list})"
        ),
        format!("SELECT count(*) FROM quarantine WHERE lower(raw) LIKE '%{email}%'"),
        format!("SELECT count(*) FROM customer_trusted WHERE lower(trim(email)) = '{email}'"),
        format!("SELECT count(*) FROM accelerometer_trusted WHERE lower(trim(user)) = '{email}'"),
        format!("SELECT count(*) FROM customers_curated WHERE customer_key = '{key}'"),
        format!("SELECT count(*) FROM step_trainer_trusted WHERE customer_key = '{key}'"),
        format!("SELECT count(*) FROM machine_learning_curated WHERE customer_key = '{key}'"),
    ];
    let mut before = Vec::new();
    for (table, sql) in TABLES.iter().zip(&theirs) {
        let (total, mine) = (s.count(table).await, s.scalar(sql).await as u64);
        before.push((total, mine));
    }
    assert!(
        before[1].1 > 0 && before[2].1 > 0 && before[4].1 == 1,
        "{before:?}"
    );
    let raw_before = raw_files(&s);
    let landing_version = stedi::delta::version(
        &s.lakehouse
            .load_table(&stedi::lakehouse::layout::TableId::new(
                stedi::lakehouse::layout::Zone::Landing,
                "customer_landing",
            ))
            .await
            .unwrap()
            .unwrap(),
    );

    // Forget them, with the address written as a person would type it.
    let typed = format!("  {}  ", email.to_uppercase());
    let receipt = erase::forget(&s.lakehouse, &typed, &Progress::hidden())
        .await
        .unwrap();

    // Every table lost exactly their rows.
    for ((table, (total, mine)), sql) in TABLES.iter().zip(&before).zip(&theirs) {
        assert_eq!(s.count(table).await, total - mine, "{table}");
        assert_eq!(s.scalar(sql).await, 0, "{table}");
        let change = receipt.tables.iter().find(|t| t.table == *table).unwrap();
        assert_eq!(change.rows_removed, *mine as i64, "{table} in the receipt");
    }

    // Raw files: their lines are gone, every other byte is unchanged, untouched files
    // were not rewritten.
    let raw_after = raw_files(&s);
    assert_eq!(
        raw_before.keys().collect::<Vec<_>>(),
        raw_after.keys().collect::<Vec<_>>()
    );
    let mut removed_lines = 0;
    for (path, old) in &raw_before {
        let source = source_of(path);
        let kept: Vec<u8> = lines_of(old)
            .into_iter()
            .filter(|l| !is_theirs(source, l, &email, &readings))
            .flatten()
            .copied()
            .collect();
        removed_lines += lines_of(old).len() - lines_of(&kept).len();
        assert!(
            raw_after[path] == kept,
            "{path} is not the original without their lines"
        );
        let in_receipt = receipt.raw_files.iter().find(|f| &f.path == path);
        match in_receipt {
            Some(f) => {
                assert_ne!(&kept, old, "{path}");
                assert_eq!(
                    f.lines_removed as usize,
                    lines_of(old).len() - lines_of(&kept).len()
                );
            }
            None => assert_eq!(&kept, old, "{path} held their lines but was not rewritten"),
        }
    }
    assert_eq!(
        removed_lines as u64,
        before[0].1 + before[1].1 + before[2].1,
        "raw lines removed = landing rows removed"
    );
    // The raw files still add up to the landing tables.
    for (i, source) in Source::ALL.iter().enumerate() {
        let lines: usize = raw_after
            .iter()
            .filter(|(p, _)| source_of(p) == *source)
            .map(|(_, b)| {
                lines_of(b)
                    .iter()
                    .filter(|l| !l.trim_ascii().is_empty())
                    .count()
            })
            .sum();
        assert_eq!(lines as u64, s.count(TABLES[i]).await, "{source}");
    }

    // The proof: the scan found nothing, and an independent search agrees.
    let scan = receipt.scan.clone().unwrap();
    assert!(receipt.verified(), "{:?}", scan.matches);
    let files = all_files(Path::new(&s.location()));
    // Every file was searched; the writer lease's entries may have changed since (the
    // erasure gave its lease back after the search).
    let leases = files
        .iter()
        .filter(|f| f.to_string_lossy().contains("/_stedi/lease/"))
        .count();
    assert!(
        (files.len() - leases..=files.len()).contains(&(scan.objects as usize)),
        "{} objects searched, {} files, {leases} of them lease entries",
        scan.objects,
        files.len()
    );
    assert!(scan.parquet_files > 0);
    let needle = Needle::new(&email);
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        assert!(
            !needle.is_in(&bytes),
            "{} holds the address",
            file.display()
        );
        if file.extension().is_some_and(|e| e == "parquet") {
            let found = stedi::erase::scan::scan_parquet("f", bytes.into(), &needle);
            assert!(found.is_empty(), "{}: {found:?}", file.display());
        }
    }

    // The receipt is stored, equals what was returned, and holds no address.
    let stored_path = Path::new(&s.location()).join(receipt.path());
    let stored = std::fs::read_to_string(&stored_path).unwrap();
    assert!(!stored.to_lowercase().contains(&email), "{stored}");
    let parsed: erase::Receipt = serde_json::from_str(&stored).unwrap();
    assert_eq!(parsed, receipt);
    assert_eq!(parsed.tombstone.as_deref(), Some("added"));
    assert_eq!(parsed.address_hash.as_ref().unwrap().len(), 64);

    // Time travel cannot bring them back: the old version's files are gone.
    let url = s
        .lakehouse
        .table_url(&stedi::lakehouse::layout::TableId::new(
            stedi::lakehouse::layout::Zone::Landing,
            "customer_landing",
        ));
    let old = deltalake::open_table_with_version(url, landing_version as u64).await;
    if let Ok(old) = old {
        let uris: Vec<String> = old.get_file_uris().unwrap().collect();
        let missing = uris
            .iter()
            .filter(|u| !Path::new(u.trim_start_matches("file://")).exists())
            .count();
        assert!(
            missing > 0,
            "every file of the old version still exists: {uris:?}"
        );
        let ctx = datafusion::prelude::SessionContext::new();
        let read = async {
            ctx.register_table("old", old.table_provider().await?)?;
            // Not count(*): that is answered from the log's statistics without reading files.
            ctx.sql("SELECT email FROM old").await?.collect().await?;
            Ok::<_, Box<dyn std::error::Error>>(())
        };
        assert!(read.await.is_err(), "the old version can still be read");
    }

    // Their records landed again later are refused at ingest, with nothing of them kept.
    let customer_line = raw_before
        .iter()
        .filter(|(p, _)| source_of(p) == Source::Customer)
        .flat_map(|(_, b)| lines_of(b))
        .find(|l| is_theirs(Source::Customer, l, &email, &readings))
        .map(|l| String::from_utf8_lossy(l).trim_end().to_string())
        .unwrap();
    let reading = format!(
        r#"{{"user":"{}","timestamp":1,"x":1,"y":2,"z":3}}"#,
        email.to_uppercase()
    );
    let landing_rows = s.count("customer_landing").await;
    s.land_lines(
        Source::Customer,
        "customer-again.json",
        &[&customer_line, r#"{"email":"new@x.com"}"#],
    )
    .await;
    s.land_lines(
        Source::Accelerometer,
        "accelerometer-again.json",
        &[&reading],
    )
    .await;
    s.run(ConsentPolicy::AnyTime).await;
    assert_eq!(s.count("customer_landing").await, landing_rows + 1);
    let refused = s
        .rows("SELECT source, file, line, reason, raw FROM quarantine WHERE reason = 'erased' ORDER BY source")
        .await;
    assert_eq!(
        refused,
        [
            "accelerometer|landing/accelerometer/accelerometer-again.json|1|erased|",
            "customer|landing/customer/customer-again.json|1|erased|",
        ]
    );
    for sql in &theirs[4..] {
        assert_eq!(s.scalar(sql).await, 0, "{sql}");
    }
    // The refused lines left the raw files too.
    let again =
        std::fs::read(Path::new(&s.location()).join("landing/customer/customer-again.json"))
            .unwrap();
    assert_eq!(again, b"{\"email\":\"new@x.com\"}\n");
    for file in all_files(Path::new(&s.location())) {
        assert!(
            !needle.is_in(&std::fs::read(&file).unwrap()),
            "{}",
            file.display()
        );
    }

    // Landing an original file again is recognized, not refused; another file under
    // that name is refused with the reason.
    let original = raw_before
        .keys()
        .find(|p| {
            receipt.raw_files.iter().any(|f| &f.path == *p) && source_of(p) == Source::Customer
        })
        .unwrap();
    let name = Path::new(original).file_name().unwrap();
    let copy = s.dir.path().join("again").join(name);
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::write(&copy, &raw_before[original]).unwrap();
    let landed = stedi::land::land(&s.lakehouse, Source::Customer, std::slice::from_ref(&copy))
        .await
        .unwrap();
    assert!(
        matches!(landed[0], Landed::AlreadyLandedBeforeErasure { .. }),
        "{landed:?}"
    );
    std::fs::write(&copy, b"{\"email\":\"someone@else.com\"}\n").unwrap();
    let err = stedi::land::land(&s.lakehouse, Source::Customer, &[copy])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("rewritten by an erasure"), "{err}");
    assert!(err.hint().unwrap().contains("stedi forget"));
    assert_eq!(raw_files(&s)[original], raw_after[original]);
}

#[tokio::test(flavor = "multi_thread")]
async fn quarantined_lines_with_the_address_go_and_an_unknown_address_is_still_tombstoned() {
    let s = Scratch::new().await;
    s.land_lines(
        Source::Customer,
        "c.json",
        &[
            r#"{"email":"ann@x.com","serialNumber":"S","lastUpdateDate":1,"shareWithResearchAsOfDate":1}"#,
            r#"{"email":"Bob@X.com", broken"#,
            r#"{"email":"bob@x.com","lastUpdateDate":"yesterday"}"#,
            r#"{"email":" BOB@x.com","serialNumber":"S","lastUpdateDate":2,"shareWithResearchAsOfDate":1}"#,
        ],
    )
    .await;
    s.land_lines(
        Source::Accelerometer,
        "a.json",
        &[
            r#"{"user":"ann@x.com","timestamp":100,"x":1.0,"y":0.5,"z":-1.0}"#,
            r#"{"user":"bob@x.com","timestamp":100,"x":"fast","y":0.5,"z":-1.0}"#,
            r#"{"user":"bob@x.com","timestamp":300,"x":1,"y":0.5,"z":-1.0}"#,
        ],
    )
    .await;
    s.land_lines(
        Source::StepTrainer,
        "s.json",
        &[
            r#"{"sensorReadingTime":100,"serialNumber":"S","distanceFromObject":10}"#,
            r#"{"sensorReadingTime":300,"serialNumber":"S","distanceFromObject":20}"#,
        ],
    )
    .await;
    s.run(ConsentPolicy::AnyTime).await;
    assert_eq!(s.count("quarantine").await, 3);
    assert_eq!(s.count("step_trainer_trusted").await, 2);

    let receipt = erase::forget(&s.lakehouse, "bob@x.com", &Progress::hidden())
        .await
        .unwrap();
    assert!(receipt.verified(), "{:?}", receipt.scan);
    // The erasure rebuilt and vacuumed the tables; the next run sees them up to date.
    let report = s.run(ConsentPolicy::AnyTime).await;
    assert!(
        report.models.iter().all(|m| !m.written()),
        "{:?}",
        report.models
    );
    assert_eq!(s.count("quarantine").await, 0);
    assert_eq!(s.count("customer_landing").await, 1);
    assert_eq!(s.count("accelerometer_landing").await, 1);
    // Bob's reading at 300 goes; Ann's at 100 stays.
    assert_eq!(
        s.rows("SELECT sensorReadingTime FROM step_trainer_landing")
            .await,
        ["100"]
    );
    let c =
        std::fs::read_to_string(Path::new(&s.location()).join("landing/customer/c.json")).unwrap();
    assert_eq!(
        c,
        "{\"email\":\"ann@x.com\",\"serialNumber\":\"S\",\"lastUpdateDate\":1,\"shareWithResearchAsOfDate\":1}\n"
    );

    // Nobody of that name: nothing removed, still proven, still tombstoned.
    let nobody = erase::forget(&s.lakehouse, "Nobody@Nowhere.org", &Progress::hidden())
        .await
        .unwrap();
    assert!(!nobody.removed_anything() && nobody.verified());
    assert!(nobody.raw_files.is_empty());
    assert_eq!(nobody.tombstone.as_deref(), Some("added"));
    let again = erase::forget(&s.lakehouse, "nobody@nowhere.org", &Progress::hidden())
        .await
        .unwrap();
    assert_eq!(again.tombstone.as_deref(), Some("already present"));
    s.land_lines(
        Source::Accelerometer,
        "late.json",
        &[r#"{"user":"nobody@nowhere.org","timestamp":1,"x":1,"y":1,"z":1}"#],
    )
    .await;
    s.run(ConsentPolicy::AnyTime).await;
    assert_eq!(
        s.rows("SELECT reason, raw, detail FROM quarantine").await,
        ["erased||withheld: the record belongs to a person erased by `stedi forget`"]
    );
    // A run after an erasure with nothing new rebuilds nothing.
    let report = s.run(ConsentPolicy::AnyTime).await;
    assert!(
        report.models.iter().all(|m| !m.written()),
        "{:?}",
        report.models
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_command_prints_the_receipt_and_mistakes_get_one_error_and_a_hint() {
    let s = Scratch::new().await;
    s.land_lines(Source::Customer, "c.json", &[r#"{"email":"ann@x.com"}"#])
        .await;
    let out = stedi(&s.location(), &["forget", "--email", "Ann@X.com"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let receipt: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(receipt["raw_files"][0]["lines_removed"], 1);
    assert_eq!(receipt["scan"]["matches"], serde_json::json!([]));
    assert!(
        !String::from_utf8_lossy(&out.stdout)
            .to_lowercase()
            .contains("ann@x.com")
    );
    assert!(stderr.contains("found nowhere"), "{stderr}");

    // A copy the erasure cannot know about: the scan finds it and the command fails.
    let copy = Path::new(&s.location()).join("exports/mailing-list.txt");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::write(&copy, "Bob@Y.com\nANN@x.com\n").unwrap();
    let out = stedi(&s.location(), &["forget", "--email", "ann@x.com"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with(
            "error: the erased address is still found in 1 place(s): exports/mailing-list.txt"
        ),
        "{err}"
    );
    assert!(
        err.contains("hint: ") && err.contains("_stedi/erasures/"),
        "{err}"
    );
    let receipt: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        receipt["scan"]["matches"],
        serde_json::json!(["exports/mailing-list.txt"])
    );
    assert_eq!(receipt["tombstone"], "already present");

    for (args, expected) in [
        (
            vec!["forget", "--email", "not-an-address"],
            "cannot forget this address",
        ),
        (vec!["forget", "--email", "  "], "the address is empty"),
    ] {
        let out = stedi(&s.location(), &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.starts_with("error: ") && err.contains(expected),
            "{err}"
        );
        assert!(err.contains("hint: ") && !err.contains("panicked"), "{err}");
    }
    let nowhere = s.dir.path().join("nowhere");
    let out = stedi(nowhere.to_str().unwrap(), &["forget", "--email", "a@b.com"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("error: no lakehouse") && err.contains("hint: "),
        "{err}"
    );
}

/// An address that ends another person's (`Lee@test.com` and `Ann.Lee@test.com`) is
/// erased alone and proven gone, with the other person's data untouched; a near miss
/// (`angie.abram@test` for `angie.abram@test.com`) finds and removes nothing; and an
/// erasure that finds nobody vacuums no table, so time travel keeps every version.
#[tokio::test(flavor = "multi_thread")]
async fn an_address_inside_another_is_erased_alone_and_a_miss_keeps_every_version() {
    use common::{customer, reading, step};
    let s = Scratch::new().await;
    let people = [
        ("Lee@test.com", "S-1"),
        ("Ann.Lee@test.com", "S-2"),
        ("angie.abram@test.com", "S-3"),
    ];
    let customers: Vec<String> = people
        .iter()
        .map(|(email, serial)| customer(email, serial, 10, Some(1)))
        .chain([r#"{"email":"Ann.Lee@test.com", broken"#.to_string()])
        .collect();
    let phones: Vec<String> = people
        .iter()
        .flat_map(|(email, _)| [reading(email, 100), reading(email, 200)])
        .collect();
    let steps: Vec<String> = people
        .iter()
        .flat_map(|(_, serial)| [step(serial, 100), step(serial, 200)])
        .collect();
    fn lines(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    s.land_lines(Source::Customer, "c.json", &lines(&customers))
        .await;
    s.land_lines(Source::Accelerometer, "a.json", &lines(&phones))
        .await;
    s.land_lines(Source::StepTrainer, "s.json", &lines(&steps))
        .await;
    s.run(ConsentPolicy::AnyTime).await;
    s.land_lines(
        Source::Customer,
        "c2.json",
        &[&customer("new@test.com", "S-4", 10, Some(1))],
    )
    .await;
    s.run(ConsentPolicy::AnyTime).await;
    assert_eq!(s.count("machine_learning_curated").await, 6);
    // Read as `stedi sql` reads it, with time travel.
    let as_of = |sql: &'static str| {
        let lakehouse = s.lakehouse.clone();
        async move {
            let ctx = stedi::serve::query::context_for(&lakehouse, sql)
                .await
                .unwrap();
            common::rows_of(&ctx.sql(sql).await.unwrap().collect().await.unwrap())
        }
    };
    let first_customers = as_of(r#"SELECT email FROM "customer_landing@1" ORDER BY 1"#).await;
    assert_eq!(first_customers.len(), 3);

    // A near miss and an address of nobody: nothing removed, nothing vacuumed, proven,
    // and the earlier versions of every table still read.
    for miss in ["Angie.Abram@test", "nobody@test.com"] {
        let receipt = erase::forget(&s.lakehouse, miss, &Progress::hidden())
            .await
            .unwrap();
        assert!(receipt.verified(), "{miss}: {:?}", receipt.scan);
        assert!(!receipt.removed_anything(), "{miss}: {receipt:?}");
        assert!(
            receipt
                .tables
                .iter()
                .all(|t| !t.vacuumed && t.files_vacuumed == 0),
            "{miss}: {:?}",
            receipt.tables
        );
    }
    assert_eq!(
        as_of(r#"SELECT email FROM "customer_landing@1" ORDER BY 1"#).await,
        first_customers
    );
    assert_eq!(s.count("machine_learning_curated").await, 6);

    // Lee, through the command: it finishes (exit 0) and proves it.
    let out = stedi(&s.location(), &["forget", "--email", "Lee@test.com"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let receipt: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(receipt["scan"]["matches"], serde_json::json!([]));
    assert!(err.contains("vacuumed customer_landing"), "{err}");
    // Only Lee's lines left the raw files; Ann Lee's stayed, her malformed line too.
    let c =
        std::fs::read_to_string(Path::new(&s.location()).join("landing/customer/c.json")).unwrap();
    assert!(!c.contains("\"Lee@test.com\""), "{c}");
    assert_eq!(c.matches("Ann.Lee@test.com").count(), 2, "{c}");
    assert_eq!(
        s.rows("SELECT lower(email) FROM customer_landing ORDER BY 1")
            .await,
        ["angie.abram@test.com", "ann.lee@test.com", "new@test.com"]
    );
    assert_eq!(s.count("quarantine").await, 1);
    assert_eq!(
        s.scalar("SELECT count(*) FROM accelerometer_landing WHERE user = 'Ann.Lee@test.com'")
            .await,
        2
    );
    assert_eq!(s.count("machine_learning_curated").await, 4);
    // Tables that held Lee were vacuumed; a table that never did keeps its versions.
    let tables = receipt["tables"].as_array().unwrap();
    let vacuumed = |name: &str| {
        tables.iter().find(|t| t["table"] == name).unwrap()["vacuumed"]
            .as_bool()
            .unwrap()
    };
    assert!(vacuumed("customer_landing") && vacuumed("machine_learning_curated"));
    assert!(!vacuumed("quarantine"));
    // A second time: harmless, still proven.
    let out = stedi(&s.location(), &["forget", "--email", "lee@TEST.com"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One normalization of addresses: a record whose address is padded with a tab (or a
/// line break) is the same person's to the models, to `stedi forget` and to the
/// tombstone that refuses their records landed later.
#[tokio::test(flavor = "multi_thread")]
async fn an_address_padded_with_a_tab_is_the_same_person_everywhere() {
    use common::{customer, reading};
    let s = Scratch::new().await;
    let padded = customer("\tAnn@X.com", "S-1", 10, Some(1));
    s.land_lines(
        Source::Customer,
        "c.json",
        &[&padded, &customer("bob@x.com", "S-2", 10, Some(1))],
    )
    .await;
    s.land_lines(
        Source::Accelerometer,
        "a.json",
        &[&reading("ann@x.com\r\n", 100), &reading("bob@x.com", 100)],
    )
    .await;
    s.land_lines(Source::StepTrainer, "s.json", &[]).await;
    s.run(ConsentPolicy::AnyTime).await;
    // The models see one customer Ann, whose phone reading is hers.
    assert_eq!(s.count("customers_curated").await, 2);
    assert_eq!(s.count("accelerometer_trusted").await, 2);

    let receipt = erase::forget(&s.lakehouse, "ann@x.com", &Progress::hidden())
        .await
        .unwrap();
    assert!(receipt.verified(), "{:?}", receipt.scan);
    assert_eq!(receipt.lines_removed(), 2);
    assert_eq!(s.count("customer_landing").await, 1);
    assert_eq!(s.count("accelerometer_landing").await, 1);

    // Landed again with other padding: refused at ingest as erased.
    s.land_lines(
        Source::Customer,
        "c2.json",
        &[&customer(" ANN@x.com\t", "S-1", 20, Some(1))],
    )
    .await;
    s.land_lines(
        Source::Accelerometer,
        "a2.json",
        &[&reading("\tann@X.COM", 200)],
    )
    .await;
    s.run(ConsentPolicy::AnyTime).await;
    assert_eq!(
        s.rows("SELECT source, reason FROM quarantine ORDER BY source")
            .await,
        ["accelerometer|erased", "customer|erased"]
    );
    assert_eq!(s.count("customers_curated").await, 1);
}
