//! The contract's counts on the real public sample, for both consent policies.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step should fail the test

mod common;

use common::{Scratch, land_all, sample};
use stedi::models::ConsentPolicy;

/// (table, any-time, since-consent), from the product contract.
const EXPECTED: &[(&str, u64, u64)] = &[
    ("customer_landing", 956, 956),
    ("accelerometer_landing", 81_273, 81_273),
    ("step_trainer_landing", 28_680, 28_680),
    ("customer_trusted", 482, 482),
    ("accelerometer_trusted", 40_981, 32_025),
    ("customers_curated", 482, 464),
    ("step_trainer_trusted", 14_460, 11_297),
    ("machine_learning_curated", 40_981, 32_025),
];

async fn counts_for(policy: ConsentPolicy) -> Option<Scratch> {
    let root = sample()?;
    let scratch = Scratch::new().await;
    land_all(&scratch, &root).await;
    scratch.run(policy).await;
    Some(scratch)
}

#[tokio::test(flavor = "multi_thread")]
async fn any_time_policy_gives_the_contract_counts() {
    let Some(s) = counts_for(ConsentPolicy::AnyTime).await else {
        return;
    };
    for (table, expected, _) in EXPECTED {
        assert_eq!(s.count(table).await, *expected, "{table}");
    }
    assert_eq!(s.count("quarantine").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn since_consent_policy_gives_the_contract_counts() {
    let Some(s) = counts_for(ConsentPolicy::SinceConsent).await else {
        return;
    };
    for (table, _, expected) in EXPECTED {
        assert_eq!(s.count(table).await, *expected, "{table}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn machine_learning_curated_carries_no_identifying_column() {
    let Some(s) = counts_for(ConsentPolicy::AnyTime).await else {
        return;
    };
    let columns = s
        .rows("SELECT column_name FROM information_schema.columns WHERE table_name = 'machine_learning_curated'")
        .await;
    for forbidden in ["email", "user", "customerName", "phone", "birthDay"] {
        assert!(
            !columns.iter().any(|c| c.eq_ignore_ascii_case(forbidden)),
            "{forbidden} in {columns:?}"
        );
    }
    assert!(columns.contains(&"customer_key".to_string()), "{columns:?}");
    // The key is not the e-mail, nor a plain hash of it: no value equals a hashed address.
    let leaked = s
        .scalar(
            "SELECT count(*) FROM machine_learning_curated m JOIN customer_landing c \
             ON m.customer_key = c.email OR m.customer_key = sha256(lower(trim(c.email))) \
             OR m.customer_key = encode(sha256(lower(trim(c.email))), 'hex')",
        )
        .await;
    assert_eq!(leaked, 0);
    // One key per curated customer, and the same key for all of that customer's rows.
    let keys = s
        .scalar("SELECT count(DISTINCT customer_key) FROM machine_learning_curated")
        .await;
    assert_eq!(
        keys,
        s.scalar("SELECT count(DISTINCT customer_key) FROM step_trainer_trusted")
            .await
    );
}
