//! The three raw feeds: their names, their fields and the typed schema of their landing
//! tables; and who a customer is: the [`customer_id`] an address names, and the
//! pseudonymous [`customer_key`] that stands for it in curated tables.
//!
//! This is the one declaration of what a valid record is and of how customers are
//! compared; the decoder, the landing tables, the models and the erasure all read it.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A source feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Source {
    /// Customer records, with research consent dates.
    Customer,
    /// Phone accelerometer readings.
    Accelerometer,
    /// Step-trainer distance readings.
    StepTrainer,
}

/// What a field holds, which decides how its JSON value is checked and stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A JSON string.
    Text,
    /// Epoch milliseconds: a JSON integer (an integral float is accepted).
    EpochMs,
    /// An integer measurement.
    Integer,
    /// A JSON number, stored as a double.
    Real,
}

/// A field of a feed.
#[derive(Debug, Clone, Copy)]
pub struct FieldSpec {
    /// Name as written in the feed (case-sensitive).
    pub name: &'static str,
    /// How the value is checked and stored.
    pub kind: Kind,
    /// Whether a record without it (or with `null`) is quarantined.
    pub required: bool,
}

const fn field(name: &'static str, kind: Kind, required: bool) -> FieldSpec {
    FieldSpec {
        name,
        kind,
        required,
    }
}

const CUSTOMER: &[FieldSpec] = &[
    field("customerName", Kind::Text, false),
    field("email", Kind::Text, true),
    field("phone", Kind::Text, false),
    field("birthDay", Kind::Text, false),
    field("serialNumber", Kind::Text, false),
    field("registrationDate", Kind::EpochMs, false),
    field("lastUpdateDate", Kind::EpochMs, false),
    field("shareWithResearchAsOfDate", Kind::EpochMs, false),
    field("shareWithPublicAsOfDate", Kind::EpochMs, false),
    field("shareWithFriendsAsOfDate", Kind::EpochMs, false),
];

const ACCELEROMETER: &[FieldSpec] = &[
    field("user", Kind::Text, true),
    field("timestamp", Kind::EpochMs, true),
    field("x", Kind::Real, true),
    field("y", Kind::Real, true),
    field("z", Kind::Real, true),
];

const STEP_TRAINER: &[FieldSpec] = &[
    field("sensorReadingTime", Kind::EpochMs, true),
    field("serialNumber", Kind::Text, true),
    field("distanceFromObject", Kind::Integer, true),
];

/// The most fields a feed may declare; the decoder keeps one line's values on the stack.
pub const MAX_FIELDS: usize = 10;

// Checked when compiling, so a feed that grows past the decoder cannot ship.
const _: () = assert!(
    CUSTOMER.len() <= MAX_FIELDS
        && ACCELEROMETER.len() <= MAX_FIELDS
        && STEP_TRAINER.len() <= MAX_FIELDS
);

/// Lineage columns every landing table carries: which landed file and line a row came from.
pub const FILE_COLUMN: &str = "_file";
/// See [`FILE_COLUMN`].
pub const LINE_COLUMN: &str = "_line";
/// Column of the feeds that name a person: the customer the record belongs to, the
/// [`customer_id`] of its person field. Stored at ingest so that a customer's records are
/// found by one column (which has a Bloom filter in every data file) instead of by
/// normalizing every address of the table.
pub const CUSTOMER_COLUMN: &str = "_customer";

/// The customer an e-mail address names: the address without leading and trailing
/// whitespace (spaces, tabs, line breaks), lower-cased. Two records are of the same
/// customer when these are equal.
///
/// This is the one normalization of addresses: the models (`customer_id()` in SQL),
/// ingestion (`_customer`), tombstones and `stedi forget` all compare addresses by it, so
/// an address that one of them treats as a person's is that person's for all of them.
pub fn customer_id(email: &str) -> std::borrow::Cow<'_, str> {
    if is_customer_id(email) {
        std::borrow::Cow::Borrowed(email)
    } else {
        std::borrow::Cow::Owned(email.trim_ascii().to_lowercase())
    }
}

/// Computes the pseudonymous key of an e-mail address: HMAC-SHA-256 of its
/// [`customer_id`] under the lakehouse secret, as 64 hex digits.
pub fn customer_key(secret: &[u8], email: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(customer_id(email).as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Whether an address is already in its [`customer_id`] form (the common case, checked
/// without allocating).
pub fn is_customer_id(email: &str) -> bool {
    let bytes = email.as_bytes();
    !bytes.first().is_some_and(u8::is_ascii_whitespace)
        && !bytes.last().is_some_and(u8::is_ascii_whitespace)
        && bytes
            .iter()
            .all(|b| b.is_ascii() && !b.is_ascii_uppercase())
}

impl Source {
    /// Every source, in the order they are ingested.
    pub const ALL: [Source; 3] = [Source::Customer, Source::Accelerometer, Source::StepTrainer];

    /// The feed's name, as in `landing/<name>/` and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Source::Customer => "customer",
            Source::Accelerometer => "accelerometer",
            Source::StepTrainer => "step_trainer",
        }
    }

    /// The typed landing table of this feed.
    pub fn landing_table(self) -> &'static str {
        match self {
            Source::Customer => "customer_landing",
            Source::Accelerometer => "accelerometer_landing",
            Source::StepTrainer => "step_trainer_landing",
        }
    }

    /// The field that names the person a record belongs to (their e-mail address), if the
    /// feed has one: what an erasure matches, and what a tombstone refuses at ingest.
    /// Step-trainer readings name no one; they belong to whoever they are attributed to.
    pub fn person_field(self) -> Option<&'static str> {
        match self {
            Source::Customer => Some("email"),
            Source::Accelerometer => Some("user"),
            Source::StepTrainer => None,
        }
    }

    /// The feed's fields.
    pub fn fields(self) -> &'static [FieldSpec] {
        match self {
            Source::Customer => CUSTOMER,
            Source::Accelerometer => ACCELEROMETER,
            Source::StepTrainer => STEP_TRAINER,
        }
    }

    /// Parses a source name as written in a landing folder.
    pub fn from_name(name: &str) -> Option<Source> {
        Source::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The schema of the landing table: the feed's fields, typed, then the customer
    /// (feeds that name a person) and lineage.
    pub fn landing_schema(self) -> SchemaRef {
        let mut fields: Vec<Field> = self
            .fields()
            .iter()
            .map(|f| {
                let data_type = match f.kind {
                    Kind::Text => DataType::Utf8,
                    Kind::EpochMs | Kind::Integer => DataType::Int64,
                    Kind::Real => DataType::Float64,
                };
                Field::new(f.name, data_type, !f.required)
            })
            .collect();
        if self.person_field().is_some() {
            // The person field is required, so every row names a customer.
            fields.push(Field::new(CUSTOMER_COLUMN, DataType::Utf8, false));
        }
        fields.push(Field::new(FILE_COLUMN, DataType::Utf8, false));
        fields.push(Field::new(LINE_COLUMN, DataType::Int64, false));
        Arc::new(Schema::new(fields))
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_customer_is_an_address_without_padding_in_lower_case() {
        assert_eq!(customer_id(" Ann.Lee@Test.COM  "), "ann.lee@test.com");
        assert_eq!(customer_id("ann@x.com"), "ann@x.com");
        assert_eq!(customer_id("\tann@x.com\r\n"), "ann@x.com");
        assert_eq!(customer_id("ann @x.com"), "ann @x.com", "inner spaces stay");
        assert_eq!(customer_id("ÉLODIE@X.COM"), "élodie@x.com");
    }

    #[test]
    fn the_key_ignores_case_and_padding_but_not_the_secret() {
        let k = customer_key(b"secret", "Ann.Lee@Test.com");
        assert_eq!(k, customer_key(b"secret", "  ann.lee@test.com "));
        assert_eq!(k.len(), 64);
        assert_ne!(k, customer_key(b"other", "ann.lee@test.com"));
    }

    #[test]
    fn the_key_is_not_a_plain_hash_of_the_address() {
        use sha2::Digest;
        let plain = hex::encode(Sha256::digest(b"ann.lee@test.com"));
        assert_ne!(customer_key(b"secret", "ann.lee@test.com"), plain);
    }
}
