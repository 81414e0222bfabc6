//! Encoding a column of doubles that takes few distinct values.
//!
//! An accelerometer reports each axis in a handful of values: -1, 0 and 1 in the real
//! sample, tenths of g in a generated feed. Parquet's general encoder hashes every row
//! into its dictionary and feeds every key through its run-length encoder one at a time.
//! This encoder finds a value's key among the few it has seen by comparing bit patterns,
//! keeps the keys, and packs a page of them at once. It writes the same Parquet any reader
//! expects: a dictionary page and `RLE_DICTIONARY` data pages, or plain pages when the
//! values seldom repeat. Values are kept bit for bit (`-0.0` and every NaN included).

use std::collections::HashMap;

use arrow::array::{Array, Float64Array};
use bytes::Bytes;
use datafusion::parquet::basic::Encoding;
use datafusion::parquet::column::writer::ColumnCloseResult;
use datafusion::parquet::errors::Result;
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::file::statistics::Statistics;
use datafusion::parquet::schema::types::ColumnDescPtr;

use super::chunk::{
    ChunkWriter, PAGE_ROWS, bits, put_definition_levels, put_keys, split_into_pages,
};

/// Distinct values looked up by comparing with each in turn; beyond these, by hashing.
const LINEAR_LOOKUP: usize = 16;

/// Distinct values a row group's dictionary holds at most (a 512 KiB dictionary page);
/// a column with more is written plain.
pub(super) const MAX_DISTINCT: usize = 1 << 16;

/// One `Float64` column of the row group being written.
#[derive(Debug)]
pub struct FewValuesEncoder {
    descr: ColumnDescPtr,
    statistics: bool,
    /// Which rows hold a value: runs of (defined, rows).
    defined: Vec<(bool, u32)>,
    values: Values,
    rows: usize,
    nulls: usize,
}

/// The values of the rows that hold one, in order.
#[derive(Debug)]
enum Values {
    /// As keys into a dictionary of bit patterns.
    Keyed {
        dictionary: Vec<u64>,
        index_of: HashMap<u64, u32, ahash::RandomState>,
        keys: Vec<u32>,
    },
    /// As bit patterns, once there were too many distinct values for a dictionary.
    Plain(Vec<u64>),
}

impl FewValuesEncoder {
    /// An encoder for the column `descr`, with statistics unless `properties` turn them
    /// off for it.
    pub fn new(descr: ColumnDescPtr, properties: &WriterProperties) -> Self {
        let statistics = properties.statistics_enabled(descr.path()) != EnabledStatistics::None;
        FewValuesEncoder {
            descr,
            statistics,
            defined: Vec::new(),
            values: Values::Keyed {
                dictionary: Vec::new(),
                index_of: HashMap::default(),
                keys: Vec::new(),
            },
            rows: 0,
            nulls: 0,
        }
    }

    /// Takes the values of `array`, in order.
    pub fn write(&mut self, array: &Float64Array) {
        self.rows += array.len();
        match array.nulls().filter(|n| n.null_count() > 0) {
            None => {
                push_run(&mut self.defined, true, array.len() as u32);
                self.push(array.values());
            }
            Some(nulls) => {
                self.nulls += nulls.null_count();
                let mut at = 0;
                for (start, end) in nulls.valid_slices() {
                    push_run(&mut self.defined, false, (start - at) as u32);
                    push_run(&mut self.defined, true, (end - start) as u32);
                    self.push(&array.values()[start..end]);
                    at = end;
                }
                push_run(&mut self.defined, false, (array.len() - at) as u32);
            }
        }
    }

    fn push(&mut self, values: &[f64]) {
        let (dictionary, index_of, keys) = match &mut self.values {
            Values::Plain(plain) => {
                plain.extend(values.iter().map(|v| v.to_bits()));
                return;
            }
            Values::Keyed {
                dictionary,
                index_of,
                keys,
            } => (dictionary, index_of, keys),
        };
        keys.reserve(values.len());
        for (i, value) in values.iter().enumerate() {
            let bits = value.to_bits();
            let key = if dictionary.len() <= LINEAR_LOOKUP {
                // Compared with every value without a branch: a sensor's next value is
                // anyone's guess, so a search that stops early mostly mispredicts.
                let mut key = u32::MAX;
                for (k, &d) in dictionary.iter().enumerate() {
                    if d == bits {
                        key = k as u32;
                    }
                }
                if key == u32::MAX {
                    key = dictionary.len() as u32;
                    dictionary.push(bits);
                    if dictionary.len() > LINEAR_LOOKUP {
                        index_of.extend(dictionary.iter().enumerate().map(|(k, &d)| (d, k as u32)));
                    }
                }
                key
            } else {
                let next = dictionary.len() as u32;
                let key = *index_of.entry(bits).or_insert(next);
                if key == next {
                    dictionary.push(bits);
                }
                key
            };
            keys.push(key);
            if dictionary.len() > MAX_DISTINCT {
                // Too many to be worth a dictionary: from here on, the values themselves.
                let mut plain: Vec<u64> = keys.iter().map(|&k| dictionary[k as usize]).collect();
                plain.extend(values[i + 1..].iter().map(|v| v.to_bits()));
                self.values = Values::Plain(plain);
                return;
            }
        }
    }

    /// Writes the column chunk taken to a buffer of its own, and returns it with what a
    /// row group needs to splice it in.
    pub fn finish(self) -> Result<(Bytes, ColumnCloseResult)> {
        let FewValuesEncoder {
            descr,
            statistics: with_statistics,
            defined,
            values,
            rows,
            nulls,
        } = self;
        let nullable = descr.max_def_level() > 0;
        let mut chunk = ChunkWriter::new();
        let mut bounds = Bounds::default();
        let mut next = 0;
        match values {
            Values::Keyed {
                dictionary, keys, ..
            } if !dictionary.is_empty() && dictionary.len() * 2 <= rows - nulls => {
                let mut plain = Vec::with_capacity(8 * dictionary.len());
                for &bits in &dictionary {
                    plain.extend_from_slice(&bits.to_le_bytes());
                    bounds.add(f64::from_bits(bits));
                }
                chunk.dictionary_page(&plain, dictionary.len())?;
                let bit_width = bits(dictionary.len() as u64 - 1);
                for page in split_into_pages(&defined, PAGE_ROWS) {
                    let mut buf = Vec::new();
                    let held = page_start(&mut buf, &page, nullable);
                    buf.push(bit_width);
                    put_keys(&mut buf, &keys[next..next + held], bit_width);
                    next += held;
                    chunk.data_page(&buf, page_rows(&page), Encoding::RLE_DICTIONARY)?;
                }
            }
            values => {
                let bits: Vec<u64> = match values {
                    Values::Keyed {
                        dictionary, keys, ..
                    } => keys.iter().map(|&k| dictionary[k as usize]).collect(),
                    Values::Plain(plain) => plain,
                };
                for page in split_into_pages(&defined, PAGE_ROWS) {
                    let mut buf = Vec::new();
                    let held = page_start(&mut buf, &page, nullable);
                    for &value in &bits[next..next + held] {
                        buf.extend_from_slice(&value.to_le_bytes());
                        bounds.add(f64::from_bits(value));
                    }
                    next += held;
                    chunk.data_page(&buf, page_rows(&page), Encoding::PLAIN)?;
                }
            }
        }
        let statistics = with_statistics
            .then(|| Statistics::double(bounds.min, bounds.max, None, Some(nulls as u64), false));
        chunk.finish(descr, rows, statistics, None)
    }
}

/// Adds `n` rows to runs of (defined, rows).
fn push_run(runs: &mut Vec<(bool, u32)>, defined: bool, n: u32) {
    if n == 0 {
        return;
    }
    match runs.last_mut() {
        Some((d, rows)) if *d == defined => *rows += n,
        _ => runs.push((defined, n)),
    }
}

fn page_rows(page: &[(bool, u32)]) -> u32 {
    page.iter().map(|(_, n)| n).sum()
}

/// Starts a data page with its definition levels (if the column has them) and returns how
/// many of its rows hold a value.
fn page_start(buf: &mut Vec<u8>, page: &[(bool, u32)], nullable: bool) -> usize {
    if nullable {
        put_definition_levels(buf, page.iter().copied());
    }
    page.iter()
        .filter(|(defined, _)| *defined)
        .map(|(_, n)| *n as usize)
        .sum()
}

/// The least and greatest value, as Parquet compares doubles: NaN takes no part, and a
/// zero bound is written as `-0.0` when least and `+0.0` when greatest, so that a reader
/// never skips a zero of the other sign.
#[derive(Default)]
struct Bounds {
    min: Option<f64>,
    max: Option<f64>,
}

impl Bounds {
    fn add(&mut self, value: f64) {
        if value.is_nan() {
            return;
        }
        let low = if value == 0.0 { -0.0 } else { value };
        let high = if value == 0.0 { 0.0 } else { value };
        if self.min.is_none_or(|m| low < m) {
            self.min = Some(low);
        }
        if self.max.is_none_or(|m| high > m) {
            self.max = Some(high);
        }
    }
}
