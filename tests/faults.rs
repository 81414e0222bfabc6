//! Bad input never aborts a run: on a generated set with faults of every kind, counts
//! add up, quarantine holds the right reasons, and no reading reaches a trusted or
//! curated table unless its customer's latest record consents.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step should fail the test

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use common::{Scratch, source_files};
use stedi::feed::Source;
use stedi::feed::customer_key;
use stedi::generate::{GenerateOptions, generate};
use stedi::models::ConsentPolicy;

/// Consenting customers by the contract, computed straight from the raw customer lines:
/// the latest record (by lastUpdateDate) of each trimmed, lower-cased e-mail decides.
fn consenting(lines: &[String]) -> BTreeSet<String> {
    let mut latest: HashMap<String, (i64, bool)> = HashMap::new();
    for line in lines {
        let Ok(serde_json::Value::Object(r)) = serde_json::from_str::<serde_json::Value>(line)
        else {
            continue;
        };
        let Some(email) = r.get("email").and_then(|e| e.as_str()) else {
            continue;
        };
        let Some(updated) = r.get("lastUpdateDate").and_then(|d| d.as_i64()) else {
            continue;
        };
        let consent = r
            .get("shareWithResearchAsOfDate")
            .and_then(|d| d.as_i64())
            .is_some_and(|d| d != 0);
        let key = email.trim().to_lowercase();
        if latest.get(&key).is_none_or(|(u, _)| updated > *u) {
            latest.insert(key, (updated, consent));
        }
    }
    latest
        .into_iter()
        .filter(|(_, (_, c))| *c)
        .map(|(e, _)| e)
        .collect()
}

fn lines_of(files: &[std::path::PathBuf]) -> Vec<String> {
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_are_quarantined_with_reasons_and_consent_is_respected() {
    let s = Scratch::new().await;
    let root = s.dir.path().join("generated");
    generate(
        &root,
        &GenerateOptions {
            customers: 400,
            seed: 3,
        },
        &|_| {},
    )
    .unwrap();
    common::land_all(&s, &root).await;

    // A consenting customer revokes in a later record written with another casing.
    let generated_customers = lines_of(&source_files(&root, Source::Customer));
    let revoker = consenting(&generated_customers).into_iter().next().unwrap();
    let revocation = format!(
        r#"{{"customerName":"R","email":"  {}  ","lastUpdateDate":9999999999999,"serialNumber":"x"}}"#,
        revoker.to_uppercase()
    );
    let customer_faults = [
        r#"{"customerName":"No Mail","lastUpdateDate":1}"#, // 1 missing email
        r#"{"email":null,"lastUpdateDate":1}"#,             // 2 null email
        "",                                                 // 3 blank: skipped
        r#"{"email":"late@x.com","lastUpdateDate":"yesterday"}"#, // 4 wrong type
        r#"{"email":"broken@x.com", "#,                     // 5 malformed
        r#"["not","an","object"]"#,                         // 6 not an object
        &revocation,                                        // 7 valid
        r#"{"email":"new@x.com","lastUpdateDate":5,"shareWithResearchAsOfDate":5,"favouriteColour":"teal"}"#, // 8 valid, extra field
    ];
    s.land_lines(Source::Customer, "customer-faults.json", &customer_faults)
        .await;
    s.land_lines(
        Source::Accelerometer,
        "accelerometer-faults.json",
        &[
            r#"{"user":"a@x.com","timestamp":1,"x":"abc","y":0,"z":0}"#, // 1 wrong type
            r#"{"user":"a@x.com","x":1,"y":0,"z":0}"#,                   // 2 missing timestamp
            r#"{"user":null,"timestamp":1,"x":1,"y":0,"z":0}"#,          // 3 null user
            "42",                                                        // 4 not an object
            "   ",                                                       // 5 blank
            r#"{"user":"a@x.com","timestamp":1,"x":1,"y":0,"z":0"#,      // 6 malformed
        ],
    )
    .await;
    s.land_lines(
        Source::StepTrainer,
        "step_trainer-faults.json",
        &[
            r#"{"sensorReadingTime":1,"serialNumber":"s","distanceFromObject":"far"}"#, // 1 wrong type
            r#"{"sensorReadingTime":1,"distanceFromObject":3}"#, // 2 missing serial
            r#"{"sensorReadingTime":1,"serialNumber":"s","distanceFromObject":3}"#, // 3 valid
        ],
    )
    .await;

    s.run(ConsentPolicy::AnyTime).await;

    // Every non-blank landed line is in its landing table or in quarantine.
    for source in Source::ALL {
        let landed_dir = Path::new(&s.location()).join("landing").join(source.name());
        let mut files: Vec<_> = std::fs::read_dir(&landed_dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        let non_blank = lines_of(&files)
            .iter()
            .filter(|l| !l.trim().is_empty())
            .count() as u64;
        let quarantined = s
            .scalar(&format!(
                "SELECT count(*) FROM quarantine WHERE source = '{}'",
                source.name()
            ))
            .await as u64;
        assert_eq!(
            s.count(source.landing_table()).await + quarantined,
            non_blank,
            "{source}"
        );
    }
    let reasons = s
        .rows("SELECT source, line, reason FROM quarantine ORDER BY source, line")
        .await;
    assert_eq!(
        reasons,
        [
            "accelerometer|1|wrong_type",
            "accelerometer|2|missing_field",
            "accelerometer|3|missing_field",
            "accelerometer|4|not_an_object",
            "accelerometer|6|malformed_json",
            "customer|1|missing_field",
            "customer|2|missing_field",
            "customer|4|wrong_type",
            "customer|5|malformed_json",
            "customer|6|not_an_object",
            "step_trainer|1|wrong_type",
            "step_trainer|2|missing_field",
        ]
    );
    let raw = s
        .rows("SELECT raw FROM quarantine WHERE source = 'customer' AND line = 4")
        .await;
    assert_eq!(raw, [customer_faults[3]]);

    // Consent: only customers whose latest record consents, however their e-mail is written.
    let mut all_customers = generated_customers.clone();
    all_customers.extend(customer_faults.iter().map(|l| l.to_string()));
    let allowed = consenting(&all_customers);
    assert!(!allowed.contains(&revoker));
    let trusted: BTreeSet<String> = s
        .rows("SELECT lower(trim(email)) FROM customer_trusted")
        .await
        .into_iter()
        .collect();
    assert_eq!(trusted, allowed);
    let readers: BTreeSet<String> = s
        .rows("SELECT DISTINCT lower(trim(user)) FROM accelerometer_trusted")
        .await
        .into_iter()
        .collect();
    assert!(readers.is_subset(&allowed));
    assert!(!readers.contains(&revoker));

    let secret = s.lakehouse.customer_key_secret().await.unwrap();
    let allowed_keys: BTreeSet<String> = allowed.iter().map(|e| customer_key(&secret, e)).collect();
    for table in ["step_trainer_trusted", "machine_learning_curated"] {
        let keys: BTreeSet<String> = s
            .rows(&format!("SELECT DISTINCT customer_key FROM {table}"))
            .await
            .into_iter()
            .collect();
        assert!(!keys.is_empty(), "{table} is empty");
        assert!(
            keys.is_subset(&allowed_keys),
            "{table} holds a reading of a customer who did not consent"
        );
        assert!(!keys.contains(&customer_key(&secret, &revoker)));
    }
    // Every attributed reading has its customer's serial and a same-instant phone reading.
    let unsupported = s.scalar(
        "SELECT count(*) FROM step_trainer_trusted s JOIN customers_curated c ON c.customer_key = s.customer_key \
         WHERE c.serialNumber <> s.serialNumber OR NOT EXISTS (SELECT 1 FROM accelerometer_trusted a \
         WHERE lower(trim(a.user)) = lower(trim(c.email)) AND a.timestamp = s.sensorReadingTime)").await;
    assert_eq!(unsupported, 0);
    // The generated set shares serial numbers between customers: attribution had work to do.
    let shared = s.scalar(
        "SELECT count(*) FROM (SELECT serialNumber FROM customer_trusted GROUP BY serialNumber HAVING count(*) > 1)").await;
    assert!(shared > 0);
}
