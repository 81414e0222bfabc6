//! The table contract on small hand-written feeds: each test lands a few records and
//! shows what the trusted and curated tables make of them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step should fail the test

mod common;

use common::{Scratch, customer, reading, step};
use stedi::feed::Source;
use stedi::models::ConsentPolicy;

async fn land(s: &Scratch, source: Source, name: &str, lines: Vec<String>) {
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    s.land_lines(source, name, &lines).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reused_serial_attributes_readings_by_same_instant_phone_evidence() {
    let s = Scratch::new().await;
    // Ann owns trainer S. Bob has no trainer yet but was given the same serial S.
    // Cy owns trainer T and happens to record at Ann's instant 100.
    land(
        &s,
        Source::Customer,
        "c.json",
        vec![
            customer("ann@x.com", "S", 1, Some(1)),
            customer("bob@x.com", "S", 1, Some(1)),
            customer("cy@x.com", "T", 1, Some(1)),
        ],
    )
    .await;
    land(
        &s,
        Source::Accelerometer,
        "a.json",
        vec![
            reading("ann@x.com", 100),
            reading("ann@x.com", 100),
            reading("ann@x.com", 200),
            reading("bob@x.com", 300),
            reading("cy@x.com", 100),
        ],
    )
    .await;
    land(
        &s,
        Source::StepTrainer,
        "s.json",
        vec![step("S", 100), step("S", 200), step("T", 999)],
    )
    .await;
    s.run(ConsentPolicy::AnyTime).await;

    // Both S readings belong to Ann: Bob's phone never recorded at 100 or 200.
    let owners = s
        .rows(
            "SELECT s.sensorReadingTime, c.email FROM step_trainer_trusted s \
         JOIN customers_curated c ON c.customer_key = s.customer_key ORDER BY 1",
        )
        .await;
    assert_eq!(owners, ["100|ann@x.com", "200|ann@x.com"]);
    // Ann's reading at 100 pairs with her two phone readings only, never with Cy's.
    assert_eq!(s.count("machine_learning_curated").await, 3);
    let keys = s
        .scalar("SELECT count(DISTINCT customer_key) FROM machine_learning_curated")
        .await;
    assert_eq!(keys, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reading_claimed_by_two_customers_is_attributed_to_neither() {
    let s = Scratch::new().await;
    land(
        &s,
        Source::Customer,
        "c.json",
        vec![
            customer("ann@x.com", "S", 1, Some(1)),
            customer("bob@x.com", "S", 1, Some(1)),
        ],
    )
    .await;
    land(
        &s,
        Source::Accelerometer,
        "a.json",
        vec![
            reading("ann@x.com", 100),
            reading("bob@x.com", 100),
            reading("ann@x.com", 200),
        ],
    )
    .await;
    land(
        &s,
        Source::StepTrainer,
        "s.json",
        vec![step("S", 100), step("S", 200)],
    )
    .await;
    s.run(ConsentPolicy::AnyTime).await;
    assert_eq!(
        s.rows("SELECT sensorReadingTime FROM step_trainer_trusted")
            .await,
        ["200"]
    );
    assert_eq!(s.count("machine_learning_curated").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_latest_record_decides_consent_and_emails_match_trimmed_and_case_insensitively() {
    let s = Scratch::new().await;
    land(
        &s,
        Source::Customer,
        "c1.json",
        vec![
            customer("Ann@X.com", "S", 10, Some(5)),
            customer("bob@x.com", "T", 10, None),
        ],
    )
    .await;
    // Later records: Ann revokes (no consent date), Bob grants; written with other casing.
    land(
        &s,
        Source::Customer,
        "c2.json",
        vec![
            customer("  ANN@x.com ", "S", 20, None),
            customer("BOB@X.COM", "T", 20, Some(20)),
        ],
    )
    .await;
    land(
        &s,
        Source::Accelerometer,
        "a.json",
        vec![
            reading("ann@x.com", 100),
            reading(" Bob@x.com", 100),
            reading("bob@x.com  ", 110),
        ],
    )
    .await;
    land(
        &s,
        Source::StepTrainer,
        "s.json",
        vec![step("S", 100), step("T", 100)],
    )
    .await;
    s.run(ConsentPolicy::AnyTime).await;
    assert_eq!(
        s.rows("SELECT email FROM customer_trusted").await,
        ["BOB@X.COM"]
    );
    assert_eq!(s.count("accelerometer_trusted").await, 2);
    assert_eq!(
        s.rows("SELECT serialNumber FROM step_trainer_trusted")
            .await,
        ["T"]
    );
    assert_eq!(s.count("machine_learning_curated").await, 1);
}

/// A customer record without lastUpdateDate.
fn undated(email: &str, serial: &str, consent: Option<i64>) -> String {
    let mut record: serde_json::Value = serde_json::from_str(&customer(email, serial, 0, consent))
        .expect("a customer record is JSON");
    record
        .as_object_mut()
        .expect("a customer record is an object")
        .remove("lastUpdateDate");
    record.to_string()
}

/// Records of a customer with the same lastUpdateDate are told apart by landing order:
/// the one landed last (later file, then later line) decides. A record without
/// lastUpdateDate is older than any with one, wherever it was landed.
#[tokio::test(flavor = "multi_thread")]
async fn ties_go_to_the_record_landed_last_and_undated_records_are_the_oldest() {
    let s = Scratch::new().await;
    land(
        &s,
        Source::Customer,
        "c1.json",
        vec![
            customer("eve@x.com", "E", 30, Some(1)),
            customer("fay@x.com", "F", 30, None),
            customer("fay@x.com", "F", 30, Some(1)),
            undated("gus@x.com", "G", Some(1)),
            customer("gus@x.com", "G", 5, None),
            customer("hal@x.com", "H", 5, Some(1)),
        ],
    )
    .await;
    land(
        &s,
        Source::Customer,
        "c2.json",
        vec![
            customer("eve@x.com", "E", 30, None),
            undated("hal@x.com", "H", None),
        ],
    )
    .await;
    s.run(ConsentPolicy::AnyTime).await;
    // Eve's tie goes to c2.json (no consent), Fay's to her second line (consent); Gus's
    // and Hal's dated records decide over their undated ones.
    assert_eq!(
        s.rows("SELECT email FROM customer_trusted ORDER BY email")
            .await,
        ["fay@x.com", "hal@x.com"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn since_consent_keeps_only_readings_at_or_after_the_consent_date() {
    let s = Scratch::new().await;
    land(
        &s,
        Source::Customer,
        "c.json",
        vec![
            customer("ann@x.com", "S", 1, Some(150)),
            customer("cy@x.com", "T", 1, Some(500)),
        ],
    )
    .await;
    land(
        &s,
        Source::Accelerometer,
        "a.json",
        vec![
            reading("ann@x.com", 100),
            reading("ann@x.com", 150),
            reading("ann@x.com", 200),
            reading("cy@x.com", 100),
        ],
    )
    .await;
    land(
        &s,
        Source::StepTrainer,
        "s.json",
        vec![step("S", 100), step("S", 150), step("S", 200)],
    )
    .await;
    s.run(ConsentPolicy::SinceConsent).await;
    assert_eq!(
        s.rows("SELECT timestamp FROM accelerometer_trusted ORDER BY 1")
            .await,
        ["150", "200"]
    );
    // Cy consented but has no reading since: not curated.
    assert_eq!(
        s.rows("SELECT email FROM customers_curated").await,
        ["ann@x.com"]
    );
    assert_eq!(s.count("step_trainer_trusted").await, 2);
    // Switching the policy rebuilds the tables.
    s.run(ConsentPolicy::AnyTime).await;
    assert_eq!(s.count("accelerometer_trusted").await, 4);
    assert_eq!(s.count("step_trainer_trusted").await, 3);
}
