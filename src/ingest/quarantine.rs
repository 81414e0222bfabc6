//! The `quarantine` table: every landed record that could not be typed, with where it
//! came from and why, so that nothing landed is ever lost silently.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use super::decode::Rejected;
use crate::feed::Source;

/// Schema of `quarantine`.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("source", DataType::Utf8, false),
        Field::new("file", DataType::Utf8, false),
        Field::new("line", DataType::Int64, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("detail", DataType::Utf8, false),
        Field::new("raw", DataType::Utf8, false),
    ]))
}

/// Rejected lines of one source, gathered while its files are decoded.
#[derive(Debug, Default)]
pub struct Quarantined {
    rows: Vec<(String, Rejected)>,
}

impl Quarantined {
    /// Records a rejected line of `file`.
    pub fn push(&mut self, file: &str, rejected: Rejected) {
        self.rows.push((file.to_string(), rejected));
    }

    /// Adds what another worker gathered.
    pub fn extend(&mut self, other: Quarantined) {
        self.rows.extend(other.rows);
    }

    /// Number of rejected lines.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether nothing was rejected.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Counts per reason code, for the run summary.
    pub fn reasons(&self) -> std::collections::BTreeMap<&'static str, u64> {
        let mut counts = std::collections::BTreeMap::new();
        for (_, r) in &self.rows {
            *counts.entry(r.reason.code()).or_insert(0) += 1;
        }
        counts
    }

    /// The lines refused because they belong to an erased person, per file: they are
    /// removed from the raw landed files once the batch is published.
    pub fn erased_lines(
        &self,
    ) -> std::collections::BTreeMap<String, std::collections::BTreeSet<u64>> {
        let mut lines = std::collections::BTreeMap::<_, std::collections::BTreeSet<u64>>::new();
        for (file, r) in &self.rows {
            if r.reason == super::decode::Reason::Erased {
                lines.entry(file.clone()).or_default().insert(r.line);
            }
        }
        lines
    }

    /// The rows as a `quarantine` batch, ordered by file and line.
    pub fn into_batch(mut self, source: Source) -> RecordBatch {
        self.rows
            .sort_by(|(fa, a), (fb, b)| fa.cmp(fb).then(a.line.cmp(&b.line)));
        let n = self.rows.len();
        let text = |f: &dyn Fn(&(String, Rejected)) -> String| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(self.rows.iter().map(f)))
        };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
                source.name(),
                n,
            ))),
            text(&|(file, _)| file.clone()),
            Arc::new(Int64Array::from_iter_values(
                self.rows.iter().map(|(_, r)| r.line as i64),
            )),
            text(&|(_, r)| r.reason.code().to_string()),
            text(&|(_, r)| r.detail.clone()),
            text(&|(_, r)| r.raw.clone()),
        ];
        RecordBatch::try_new(schema(), columns)
            .unwrap_or_else(|e| unreachable!("quarantine batch does not match its schema: {e}"))
    }
}
