//! Encoding a text column one run at a time.
//!
//! The text columns of stedi's tables repeat in long runs: a landing file's readings all
//! carry its name, one customer's readings come together, a curated row repeats its
//! customer's key for every reading. Parquet's general encoder pays for every row
//! anyway: a hash and a probe of its dictionary, a Bloom filter hash, two comparisons for
//! the statistics. This encoder compares each value with the one before it and does that
//! work once per run instead, and once per distinct value for the Bloom filter and the
//! statistics. It writes the same Parquet any reader expects: a dictionary page and
//! `RLE_DICTIONARY` data pages, or plain pages when the values seldom repeat.
//!
//! Whether they seldom repeat shows early: a column of names or addresses has about as
//! many distinct values as rows from its first rows on. Such a column stops looking its
//! values up (each would be a new entry in an ever larger map) and is written plain.

use std::collections::HashMap;
use std::ops::Range;

use arrow::array::{Array, StringArray};
use bytes::Bytes;
use datafusion::parquet::basic::Encoding;
use datafusion::parquet::bloom_filter::Sbbf;
use datafusion::parquet::column::writer::ColumnCloseResult;
use datafusion::parquet::data_type::ByteArray;
use datafusion::parquet::errors::Result;
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::file::statistics::Statistics;
use datafusion::parquet::schema::types::ColumnDescPtr;

use super::chunk::{
    ChunkWriter, PAGE_ROWS, bits, put_definition_levels, put_rle_run, split_into_pages,
};

/// The key a run of nulls has.
const NULL: u32 = u32::MAX;

/// Every this many distinct values, a column checks whether a dictionary still pays: it
/// stops looking values up once they are more than half of its rows so far.
const DICTIONARY_CHECK: usize = 1024;

/// One text column of the row group being written.
#[derive(Debug)]
pub struct TextRunsEncoder {
    descr: ColumnDescPtr,
    statistics: bool,
    bloom_fpp: Option<f64>,
    /// The distinct values, one after another, and where each lies; once the column
    /// is `plain`, the value of every run from then on, repeated or not.
    text: Vec<u8>,
    distinct: Vec<Range<usize>>,
    index_of: HashMap<Box<[u8]>, u32, ahash::RandomState>,
    /// Whether the values proved too varied for a dictionary (see [`DICTIONARY_CHECK`]).
    plain: bool,
    /// The column as runs: (key into `distinct` or [`NULL`], rows).
    runs: Vec<(u32, u32)>,
    rows: usize,
    nulls: usize,
}

impl TextRunsEncoder {
    /// An encoder for the column `descr`, with statistics unless `properties` turn them
    /// off for it, and a Bloom filter of false-positive rate `bloom_fpp` if given.
    pub fn new(
        descr: ColumnDescPtr,
        properties: &WriterProperties,
        bloom_fpp: Option<f64>,
    ) -> Self {
        let statistics = properties.statistics_enabled(descr.path()) != EnabledStatistics::None;
        TextRunsEncoder {
            descr,
            statistics,
            bloom_fpp,
            text: Vec::new(),
            distinct: Vec::new(),
            index_of: HashMap::default(),
            plain: false,
            runs: Vec::new(),
            rows: 0,
            nulls: 0,
        }
    }

    /// Takes the values of `array`, in order.
    pub fn write(&mut self, array: &StringArray) {
        let offsets = array.value_offsets();
        let data = array.value_data();
        let nulls = array.nulls().filter(|n| n.null_count() > 0);
        // The run the previous array ended with goes on in this one.
        let (mut key, mut length) = self.runs.pop().unwrap_or((NULL, 0));
        let carried: Vec<u8> = match key {
            NULL => Vec::new(),
            k => self.text[self.distinct[k as usize].clone()].to_vec(),
        };
        let mut last: &[u8] = &carried;
        for i in 0..array.len() {
            if nulls.is_some_and(|n| n.is_null(i)) {
                self.nulls += 1;
                if key == NULL && length > 0 {
                    length += 1;
                    continue;
                }
                if length > 0 {
                    self.runs.push((key, length));
                }
                (key, length) = (NULL, 1);
                continue;
            }
            let value = &data[offsets[i] as usize..offsets[i + 1] as usize];
            if key != NULL && length > 0 && value == last {
                length += 1;
                continue;
            }
            if length > 0 {
                self.runs.push((key, length));
            }
            key = if self.plain {
                append(&mut self.text, &mut self.distinct, value)
            } else {
                let key = intern(
                    &mut self.index_of,
                    &mut self.text,
                    &mut self.distinct,
                    value,
                );
                let distinct = self.distinct.len();
                let new = key as usize + 1 == distinct;
                let defined = self.rows + i + 1 - self.nulls;
                if new && distinct.is_multiple_of(DICTIONARY_CHECK) && distinct * 2 > defined {
                    self.plain = true;
                    self.index_of = HashMap::default();
                }
                key
            };
            length = 1;
            last = value;
        }
        if length > 0 {
            self.runs.push((key, length));
        }
        self.rows += array.len();
    }

    /// Writes the column chunk taken to a buffer of its own, and returns it with what a
    /// row group needs to splice it in.
    pub fn finish(self) -> Result<(Bytes, ColumnCloseResult)> {
        let TextRunsEncoder {
            descr,
            statistics,
            bloom_fpp,
            text,
            distinct,
            plain,
            runs,
            rows,
            nulls,
            ..
        } = self;

        let values = |k: u32| &text[distinct[k as usize].clone()];
        let dictionary = !plain && !distinct.is_empty() && distinct.len() * 2 <= rows - nulls;
        let bit_width = bits(distinct.len().saturating_sub(1) as u64);
        let nullable = descr.max_def_level() > 0;

        let mut chunk = ChunkWriter::new();
        if dictionary {
            let mut page = Vec::with_capacity(text.len() + 4 * distinct.len());
            for k in 0..distinct.len() as u32 {
                put_plain(&mut page, values(k));
            }
            chunk.dictionary_page(&page, distinct.len())?;
        }
        for page_runs in split_into_pages(&runs, PAGE_ROWS) {
            let page_rows: u32 = page_runs.iter().map(|(_, n)| n).sum();
            let mut buf = Vec::new();
            if nullable {
                put_definition_levels(&mut buf, page_runs.iter().map(|&(k, n)| (k != NULL, n)));
            }
            let defined = page_runs.iter().filter(|(k, _)| *k != NULL);
            if dictionary {
                buf.push(bit_width);
                for &(k, n) in defined {
                    put_rle_run(&mut buf, n, u64::from(k), bit_width);
                }
                chunk.data_page(&buf, page_rows, Encoding::RLE_DICTIONARY)?;
            } else {
                for &(k, n) in defined {
                    for _ in 0..n {
                        put_plain(&mut buf, values(k));
                    }
                }
                chunk.data_page(&buf, page_rows, Encoding::PLAIN)?;
            }
        }

        let statistics = statistics.then(|| {
            let min = (0..distinct.len() as u32).map(values).min();
            let max = (0..distinct.len() as u32).map(values).max();
            let as_value = |v: &[u8]| ByteArray::from(v.to_vec());
            Statistics::new(
                min.map(as_value),
                max.map(as_value),
                None,
                Some(nulls as u64),
                false,
            )
        });
        let bloom_filter = match bloom_fpp {
            Some(fpp) => {
                let mut filter = Sbbf::new_with_ndv_fpp(distinct.len().max(1) as u64, fpp)?;
                for k in 0..distinct.len() as u32 {
                    filter.insert(values(k));
                }
                Some(filter)
            }
            None => None,
        };
        chunk.finish(descr, rows, statistics, bloom_filter)
    }
}

/// The key of `value` in the dictionary, adding it when it is new.
fn intern(
    index_of: &mut HashMap<Box<[u8]>, u32, ahash::RandomState>,
    text: &mut Vec<u8>,
    distinct: &mut Vec<Range<usize>>,
    value: &[u8],
) -> u32 {
    if let Some(&k) = index_of.get(value) {
        return k;
    }
    let k = append(text, distinct, value);
    index_of.insert(value.into(), k);
    k
}

/// Adds `value` as a value of its own and returns its key.
fn append(text: &mut Vec<u8>, distinct: &mut Vec<Range<usize>>, value: &[u8]) -> u32 {
    let k = distinct.len() as u32;
    let start = text.len();
    text.extend_from_slice(value);
    distinct.push(start..text.len());
    k
}

/// A value as Parquet's plain encoding of byte arrays writes it: its length, then it.
fn put_plain(out: &mut Vec<u8>, value: &[u8]) {
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(value);
}
