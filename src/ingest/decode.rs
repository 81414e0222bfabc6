//! Newline-delimited JSON lines → typed Arrow rows, one line at a time.
//!
//! A line either becomes exactly one row or exactly one [`Rejected`] record with the
//! reason; nothing is dropped silently and nothing aborts. Unknown fields are ignored,
//! blank lines are skipped.

use std::fmt;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, ArrowPrimitiveType, Float64Builder, Int64Builder, PrimitiveBuilder, StringArray,
    StringBuilder,
};
use arrow::buffer::OffsetBuffer;
use arrow::record_batch::RecordBatch;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::scalar::Scalar;
use super::scan::scan_flat;
use crate::feed::{FieldSpec, Kind, MAX_FIELDS, Source};

/// Why a landed record was quarantined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The line is not valid JSON (or not UTF-8).
    MalformedJson,
    /// The line is valid JSON but not an object.
    NotAnObject,
    /// A known field holds a value of the wrong type.
    WrongType,
    /// A required field is absent, null or empty.
    MissingField,
    /// The record belongs to a person erased by `stedi forget` (a tombstone matched). Its
    /// content is withheld: `raw` and `detail` hold no personal data.
    Erased,
}

impl Reason {
    /// The stable code stored in the `reason` column of `quarantine`.
    pub fn code(self) -> &'static str {
        match self {
            Reason::MalformedJson => "malformed_json",
            Reason::NotAnObject => "not_an_object",
            Reason::WrongType => "wrong_type",
            Reason::MissingField => "missing_field",
            Reason::Erased => "erased",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A landed line that could not be typed.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// 1-based line number in its file.
    pub line: u64,
    /// Why.
    pub reason: Reason,
    /// A sentence naming the field and the offending value.
    pub detail: String,
    /// The line as landed (invalid UTF-8 replaced).
    pub raw: String,
}

/// Maps a key to the index of the feed field it names, without allocating.
struct KeySeed(&'static [FieldSpec]);

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().position(|f| f.name == v))
    }
}

/// Reads one JSON object into `values`, one slot per feed field.
struct RowVisitor<'v, 'de> {
    fields: &'static [FieldSpec],
    values: &'v mut [Scalar<'de>],
}

impl<'de> Visitor<'de> for RowVisitor<'_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key_seed(KeySeed(self.fields))? {
            match key {
                // A repeated key: the last value wins, as in most JSON readers.
                Some(i) => self.values[i] = map.next_value()?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

enum Column {
    Text(StringBuilder),
    Int(Int64Builder),
    Real(Float64Builder),
}

impl Column {
    /// Appends a value that [`check`] accepted for this column's field.
    #[inline]
    fn append(&mut self, value: &Scalar<'_>) {
        match (self, value) {
            (Column::Text(b), Scalar::Str(s)) => b.append_value(s),
            (Column::Int(b), Scalar::Int(i)) => b.append_value(*i),
            // Checked to fit.
            (Column::Int(b), Scalar::UInt(u)) => b.append_value(*u as i64),
            // Checked to be integral and in range.
            (Column::Int(b), Scalar::Float(f)) => b.append_value(*f as i64),
            (Column::Real(b), Scalar::Int(i)) => b.append_value(*i as f64),
            (Column::Real(b), Scalar::UInt(u)) => b.append_value(*u as f64),
            (Column::Real(b), Scalar::Float(f)) => b.append_value(*f),
            (Column::Text(b), _) => b.append_null(),
            (Column::Int(b), _) => b.append_null(),
            (Column::Real(b), _) => b.append_null(),
        }
    }
}

/// Decodes the lines of one landed file into landing-table batches.
pub struct Decoder {
    source: Source,
    file: String,
    columns: Vec<Column>,
    lines: Int64Builder,
    rows: usize,
    /// Index of the feed's person field, if it has one.
    person: Option<usize>,
    /// The customer each row names (feeds with a person field).
    customer: Option<StringBuilder>,
    /// The last address read, and its customer: readings come in runs of one person's,
    /// so most rows reuse it instead of normalizing their address again.
    last_person: (String, String),
}

impl Decoder {
    /// A decoder for lines of `file` (its path within the lakehouse, kept as lineage).
    pub fn new(source: Source, file: impl Into<String>) -> Self {
        let columns = source
            .fields()
            .iter()
            .map(|f| match f.kind {
                Kind::Text => Column::Text(StringBuilder::new()),
                Kind::EpochMs | Kind::Integer => Column::Int(Int64Builder::new()),
                Kind::Real => Column::Real(Float64Builder::new()),
            })
            .collect();
        let person = source
            .person_field()
            .and_then(|name| source.fields().iter().position(|f| f.name == name));
        Decoder {
            source,
            file: file.into(),
            columns,
            lines: Int64Builder::new(),
            rows: 0,
            person,
            customer: person.map(|_| StringBuilder::new()),
            last_person: (String::new(), String::new()),
        }
    }

    /// Rows decoded since the last [`Decoder::finish`].
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether no row is waiting.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Decodes one line (without its newline). Blank lines return `Ok(false)`, a decoded
    /// row `Ok(true)`, a bad record its [`Rejected`].
    pub fn decode_line(&mut self, line: &[u8], line_no: u64) -> Result<bool, Rejected> {
        self.decode_line_refusing(line, line_no, &mut |_| false)
    }

    /// [`Decoder::decode_line`], refusing a record whose person field (see
    /// [`Source::person_field`]) `erased` says belongs to an erased person: such a record
    /// is rejected as [`Reason::Erased`] with its content withheld, whatever else is wrong
    /// with it, so that no trace of the person is stored.
    pub fn decode_line_refusing(
        &mut self,
        line: &[u8],
        line_no: u64,
        erased: &mut dyn FnMut(&str) -> bool,
    ) -> Result<bool, Rejected> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(false);
        }
        let fields = self.source.fields();
        let mut slots: [Scalar<'_>; MAX_FIELDS] = std::array::from_fn(|_| Scalar::Absent);
        let values = &mut slots[..fields.len()];
        let reject = |reason: Reason, detail: String| Rejected {
            line: line_no,
            reason,
            detail,
            raw: String::from_utf8_lossy(line).into_owned(),
        };
        if scan_flat(line, fields, values).is_none() {
            values.iter_mut().for_each(|v| *v = Scalar::Absent);
            parse_full(line, fields, values).map_err(|e| {
                if e.is_data() {
                    reject(Reason::NotAnObject, format!("expected a JSON object: {e}"))
                } else {
                    reject(Reason::MalformedJson, format!("malformed JSON: {e}"))
                }
            })?;
        }
        if let Some(person) = self.person
            && let Scalar::Str(who) = &values[person]
            && erased(who)
        {
            return Err(Rejected {
                line: line_no,
                reason: Reason::Erased,
                detail: "withheld: the record belongs to a person erased by `stedi forget`".into(),
                raw: String::new(),
            });
        }
        // Every field is checked before any is appended, so that a rejected line leaves
        // no partial row.
        for (spec, value) in fields.iter().zip(values.iter()) {
            if let Err((reason, detail)) = check(spec, value) {
                return Err(reject(reason, detail));
            }
        }
        if let (Some(customers), Some(person)) = (self.customer.as_mut(), self.person) {
            match &values[person] {
                Scalar::Str(who) => {
                    let (address, customer) = &mut self.last_person;
                    if address != who {
                        address.clear();
                        address.push_str(who);
                        customer.clear();
                        customer.push_str(&crate::feed::customer_id(who));
                    }
                    customers.append_value(customer.as_str());
                }
                // Unreachable: the person field is required, checked above.
                _ => customers.append_value(""),
            }
        }
        for (column, value) in self.columns.iter_mut().zip(values.iter()) {
            column.append(value);
        }
        self.lines.append_value(line_no as i64);
        self.rows += 1;
        Ok(true)
    }

    /// Hands out the decoded rows as one batch and starts afresh.
    pub fn finish(&mut self) -> RecordBatch {
        // Each builder starts the next batch with room for one like this one, instead of
        // growing (and copying) its buffers again from nothing.
        let rows = self.rows;
        fn text(b: &mut StringBuilder, rows: usize) -> ArrayRef {
            let bytes = b.values_slice().len();
            Arc::new(std::mem::replace(b, StringBuilder::with_capacity(rows, bytes)).finish())
        }
        fn numbers<T: ArrowPrimitiveType>(b: &mut PrimitiveBuilder<T>, rows: usize) -> ArrayRef {
            Arc::new(std::mem::replace(b, PrimitiveBuilder::with_capacity(rows)).finish())
        }
        let mut arrays: Vec<ArrayRef> = self
            .columns
            .iter_mut()
            .map(|c| match c {
                Column::Text(b) => text(b, rows),
                Column::Int(b) => numbers(b, rows),
                Column::Real(b) => numbers(b, rows),
            })
            .collect();
        if let Some(customers) = self.customer.as_mut() {
            arrays.push(text(customers, rows));
        }
        // Every row's file is this decoder's: its column is made in one go.
        arrays.push(Arc::new(StringArray::new(
            OffsetBuffer::from_lengths(std::iter::repeat_n(self.file.len(), rows)),
            self.file.as_bytes().repeat(rows).into(),
            None,
        )));
        arrays.push(numbers(&mut self.lines, rows));
        self.rows = 0;
        // The arrays are built from the schema's own field list, so they always match it.
        RecordBatch::try_new(self.source.landing_schema(), arrays)
            .unwrap_or_else(|e| unreachable!("landing batch does not match its schema: {e}"))
    }
}

/// The full JSON parser: any valid JSON, and a precise error for anything else.
fn parse_full<'a>(
    line: &'a [u8],
    fields: &'static [FieldSpec],
    values: &mut [Scalar<'a>],
) -> Result<(), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(line);
    de.deserialize_map(RowVisitor { fields, values })?;
    de.end()
}

/// Checks one field's value against its spec; [`Column::append`] then stores it.
fn check(spec: &FieldSpec, value: &Scalar<'_>) -> Result<(), (Reason, String)> {
    let name = spec.name;
    let wrong = |expected: &str| {
        (
            Reason::WrongType,
            format!(
                "field `{name}`: expected {expected}, found {}",
                value.describe()
            ),
        )
    };
    match value {
        Scalar::Absent if spec.required => {
            return Err((
                Reason::MissingField,
                format!("missing required field `{name}`"),
            ));
        }
        Scalar::Null if spec.required => {
            return Err((
                Reason::MissingField,
                format!("required field `{name}` is null"),
            ));
        }
        Scalar::Absent | Scalar::Null => return Ok(()),
        _ => {}
    }
    match spec.kind {
        Kind::Text => match value {
            Scalar::Str(s) if spec.required && s.trim().is_empty() => Err((
                Reason::MissingField,
                format!("required field `{name}` is empty"),
            )),
            Scalar::Str(_) => Ok(()),
            _ => Err(wrong("a string")),
        },
        Kind::EpochMs | Kind::Integer => {
            let expected = if spec.kind == Kind::EpochMs {
                "an integer (epoch milliseconds)"
            } else {
                "an integer"
            };
            match *value {
                Scalar::Int(_) => Ok(()),
                Scalar::UInt(u) => i64::try_from(u).map(|_| ()).map_err(|_| wrong(expected)),
                Scalar::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(()),
                _ => Err(wrong(expected)),
            }
        }
        Kind::Real => match *value {
            Scalar::Int(_) | Scalar::UInt(_) | Scalar::Float(_) => Ok(()),
            _ => Err(wrong("a number")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Float64Type, Int64Type};

    fn one(source: Source, line: &str) -> Result<RecordBatch, Rejected> {
        let mut d = Decoder::new(source, "landing/test/f.json");
        d.decode_line(line.as_bytes(), 7)?;
        Ok(d.finish())
    }

    #[test]
    fn a_line_of_the_required_fields_is_accepted_and_one_without_them_all_is_not() {
        for source in Source::ALL {
            // The shortest line of each feed: its required fields with one-letter values.
            let fields: Vec<String> = source
                .fields()
                .iter()
                .filter(|f| f.required)
                .map(|f| match f.kind {
                    crate::feed::Kind::Text => format!("\"{}\":\"a\"", f.name),
                    _ => format!("\"{}\":1", f.name),
                })
                .collect();
            let line = format!("{{{}}}", fields.join(","));
            assert!(one(source, &line).is_ok(), "{source}: {line}");
            let without_one = format!("{{{}}}", fields[1..].join(","));
            assert!(
                one(source, &without_one).is_err(),
                "{source}: {without_one}"
            );
        }
    }

    #[test]
    fn a_valid_reading_becomes_one_typed_row_with_lineage() {
        let batch = one(
            Source::Accelerometer,
            r#"{"user":"A@b.com","timestamp":1655564444103,"x":1.0,"y":-1,"z":0.5,"extra":[1]}"#,
        )
        .unwrap();
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(batch.column(0).as_string::<i32>().value(0), "A@b.com");
        assert_eq!(
            batch.column(1).as_primitive::<Int64Type>().value(0),
            1655564444103
        );
        assert_eq!(batch.column(3).as_primitive::<Float64Type>().value(0), -1.0);
        let column = |name: &str| batch.column_by_name(name).unwrap();
        // The customer the reading names: its address trimmed and lower-cased.
        assert_eq!(column("_customer").as_string::<i32>().value(0), "a@b.com");
        assert_eq!(
            column("_file").as_string::<i32>().value(0),
            "landing/test/f.json"
        );
        assert_eq!(column("_line").as_primitive::<Int64Type>().value(0), 7);
    }

    /// Readings come in runs of one person's; each row still names its own customer, and
    /// every row of every batch its file.
    #[test]
    fn each_row_names_its_customer_and_file_in_runs_and_across_batches() {
        let mut d = Decoder::new(Source::Accelerometer, "landing/accelerometer/f.json");
        let line = |user: &str| format!(r#"{{"user":"{user}","timestamp":1,"x":1,"y":1,"z":1}}"#);
        let users = [
            "Ann@X.com",
            "Ann@X.com",
            "bob@x.com",
            "Ann@X.com",
            " ANN@x.com",
            "ÉVE@x",
        ];
        let mut customers = Vec::new();
        let mut files = Vec::new();
        for (i, batch) in [&users[..4], &users[4..]].into_iter().enumerate() {
            for (n, user) in batch.iter().enumerate() {
                assert!(
                    d.decode_line(line(user).as_bytes(), (i * 10 + n) as u64)
                        .unwrap()
                );
            }
            let rows = d.finish();
            let column = |name: &str| {
                rows.column_by_name(name)
                    .unwrap()
                    .as_string::<i32>()
                    .clone()
            };
            customers.extend(column("_customer").iter().map(|c| c.unwrap().to_string()));
            files.extend(column("_file").iter().map(|f| f.unwrap().to_string()));
        }
        let expected: Vec<String> = users
            .iter()
            .map(|u| crate::feed::customer_id(u).into_owned())
            .collect();
        assert_eq!(customers, expected);
        assert_eq!(expected[..2], ["ann@x.com", "ann@x.com"]);
        assert_eq!(files, vec!["landing/accelerometer/f.json"; users.len()]);
    }

    #[test]
    fn step_trainer_readings_name_no_customer() {
        let batch = one(
            Source::StepTrainer,
            r#"{"sensorReadingTime":1,"serialNumber":"s-1","distanceFromObject":2}"#,
        )
        .unwrap();
        assert!(batch.column_by_name("_customer").is_none());
        assert_eq!(batch.num_columns(), 5);
    }

    #[test]
    fn absent_optional_fields_are_null() {
        let batch = one(Source::Customer, r#"{"email":"a@b.com"}"#).unwrap();
        assert!(batch.column(0).is_null(0));
        assert!(batch.column(7).is_null(0));
    }

    #[test]
    fn each_fault_is_rejected_with_its_reason() {
        let cases = [
            (
                Source::Accelerometer,
                r#"{"user":"a","timestamp":1,"x":1"#,
                Reason::MalformedJson,
            ),
            (Source::Accelerometer, r#"[1,2,3]"#, Reason::NotAnObject),
            (
                Source::Accelerometer,
                r#""just a string""#,
                Reason::NotAnObject,
            ),
            (
                Source::Accelerometer,
                r#"{"user":"a","timestamp":1,"x":"abc","y":1,"z":1}"#,
                Reason::WrongType,
            ),
            (
                Source::Customer,
                r#"{"email":"a@b","lastUpdateDate":"yesterday"}"#,
                Reason::WrongType,
            ),
            (Source::Customer, r#"{"email":null}"#, Reason::MissingField),
            (Source::Customer, r#"{"email":"   "}"#, Reason::MissingField),
            (
                Source::Customer,
                r#"{"customerName":"x"}"#,
                Reason::MissingField,
            ),
            (
                Source::StepTrainer,
                r#"{"sensorReadingTime":1,"serialNumber":"s","distanceFromObject":1.5}"#,
                Reason::WrongType,
            ),
            (
                Source::StepTrainer,
                r#"{"sensorReadingTime":1,"serialNumber":"s"}"#,
                Reason::MissingField,
            ),
            (
                Source::StepTrainer,
                r#"{"sensorReadingTime":1,"serialNumber":"s","distanceFromObject":1} trailing"#,
                Reason::MalformedJson,
            ),
        ];
        for (source, line, reason) in cases {
            let err = one(source, line).expect_err(line);
            assert_eq!(err.reason, reason, "{line}: {}", err.detail);
            assert_eq!(err.raw, line);
            assert_eq!(err.line, 7);
        }
    }

    #[test]
    fn the_detail_names_the_field_and_the_value() {
        let err = one(
            Source::Customer,
            r#"{"email":"a@b","lastUpdateDate":"yesterday"}"#,
        )
        .unwrap_err();
        assert!(err.detail.contains("`lastUpdateDate`"), "{}", err.detail);
        assert!(err.detail.contains("\"yesterday\""), "{}", err.detail);
    }

    #[test]
    fn blank_lines_are_skipped_and_carriage_returns_ignored() {
        let mut d = Decoder::new(Source::StepTrainer, "f");
        assert_eq!(d.decode_line(b"   ", 1), Ok(false));
        let line = b"{\"sensorReadingTime\":1,\"serialNumber\":\"s\",\"distanceFromObject\":2}\r";
        assert_eq!(d.decode_line(line, 2), Ok(true));
        assert_eq!(d.len(), 1);
    }

    /// The fast path reads exactly what the full parser reads, or defers to it.
    #[test]
    fn the_fast_path_agrees_with_the_full_parser() {
        let lines = [
            r#"{"user":"A@b.com","timestamp":1655564444103,"x":1.0,"y":-1,"z":0.5}"#,
            r#" { "user" : "a" , "timestamp" : 0 , "x" : -0.0 , "y" : 1e3, "z": 2E-2 } "#,
            r#"{"user":"é é","timestamp":1,"x":1,"y":1,"z":1}"#,
            r#"{"user":"a\"b","timestamp":1,"x":1,"y":1,"z":1}"#,
            r#"{"user":"a","timestamp":01,"x":1,"y":1,"z":1}"#,
            r#"{"user":"a","timestamp":1.,"x":1,"y":1,"z":1}"#,
            r#"{"user":"a","timestamp":99999999999999999999,"x":1,"y":1,"z":1}"#,
            r#"{"user":"a","timestamp":1,"x":1,"y":1,"z":1,"nested":{"a":[1,{"b":2}]}}"#,
            r#"{"user":"a","user":"b","timestamp":1,"x":null,"y":true,"z":1}"#,
            r#"{"user":"a","timestamp":1,"x":1,"y":1,"z":1}}"#,
            r#"{"user":"a","timestamp":1,"x":1,"y":1,"z":1,}"#,
            r#"{"user":"a" "timestamp":1}"#,
            "{}",
            "{\"user\":\"tab\there\",\"timestamp\":1,\"x\":1,\"y\":1,\"z\":1}",
            r#"{"use":"a","userx":"b","timestamp":1,"x":1,"y":1,"z":1}"#,
            r#"{"us\u0065r":"a","timestamp":1,"x":1,"y":1,"z":1}"#,
            r#"{"user":"0123456\"89","timestamp":1,"x":1,"y":1,"z":1}"#,
            r#"{"user":"01234567\u0041bcdef","timestamp":1,"x":1,"y":1,"z":1}"#,
            r#"{"user":"a.much.longer.address+1@example.com","timestamp":1,"x":1,"y":1,"z":1}"#,
            r#"{"timestamp":1,"user":"order changed","z":1,"y":1,"x":1}"#,
            r#"{"user""timestamp":1}"#,
            r#"{"user"#,
        ];
        let fields = Source::Accelerometer.fields();
        for line in lines {
            let mut fast: Vec<Scalar<'_>> = (0..fields.len()).map(|_| Scalar::Absent).collect();
            let mut full: Vec<Scalar<'_>> = (0..fields.len()).map(|_| Scalar::Absent).collect();
            let full_ok = parse_full(line.as_bytes(), fields, &mut full).is_ok();
            if scan_flat(line.as_bytes(), fields, &mut fast).is_some() {
                assert!(full_ok, "fast path accepted what JSON rejects: {line}");
                assert_eq!(fast, full, "{line}");
            }
        }
        // The common shape does take the fast path.
        let mut v: Vec<Scalar<'_>> = (0..fields.len()).map(|_| Scalar::Absent).collect();
        assert!(scan_flat(lines[0].as_bytes(), fields, &mut v).is_some());
    }

    #[test]
    fn a_record_of_an_erased_person_is_refused_with_its_content_withheld() {
        let mut d = Decoder::new(Source::Accelerometer, "f");
        let mut erased = |who: &str| who.trim().eq_ignore_ascii_case("gone@x.com");
        let gone = br#"{"user":" Gone@X.com","timestamp":1,"x":1,"y":2,"z":1}"#;
        let err = d.decode_line_refusing(gone, 3, &mut erased).unwrap_err();
        assert_eq!(
            (err.reason, err.line, err.raw.as_str()),
            (Reason::Erased, 3, "")
        );
        assert!(!err.detail.to_lowercase().contains("gone@x.com"));
        // Refused before its type is checked, so a bad value does not leak it either.
        let bad = br#"{"user":"gone@x.com","timestamp":"soon","x":1,"y":2,"z":1}"#;
        let err = d.decode_line_refusing(bad, 4, &mut erased).unwrap_err();
        assert_eq!(err.reason, Reason::Erased);
        let kept = br#"{"user":"kept@x.com","timestamp":1,"x":1,"y":2,"z":1}"#;
        assert_eq!(d.decode_line_refusing(kept, 5, &mut erased), Ok(true));
        assert_eq!(d.finish().num_rows(), 1);
    }

    #[test]
    fn a_rejected_line_leaves_no_partial_row() {
        let mut d = Decoder::new(Source::Accelerometer, "f");
        assert!(
            d.decode_line(br#"{"user":"a","timestamp":1,"x":1,"y":"no","z":1}"#, 1)
                .is_err()
        );
        assert!(
            d.decode_line(br#"{"user":"a","timestamp":1,"x":1,"y":2,"z":1}"#, 2)
                .is_ok()
        );
        let batch = d.finish();
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(batch.column(2).len(), 1);
    }
}
