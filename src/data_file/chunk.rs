//! Writing one column chunk page by page, for the encoders that do their own encoding
//! ([`super::text_runs`], [`super::few_values`]): Snappy pages, the offset index that
//! lets a reader find a page, and the metadata a row group splices the chunk in with.

use bytes::Bytes;
use datafusion::parquet::basic::{Compression, Encoding, EncodingMask};
use datafusion::parquet::bloom_filter::Sbbf;
use datafusion::parquet::column::page::{CompressedPage, Page, PageWriteSpec, PageWriter};
use datafusion::parquet::column::writer::ColumnCloseResult;
use datafusion::parquet::errors::{ParquetError, Result};
use datafusion::parquet::file::metadata::{ColumnChunkMetaData, OffsetIndexBuilder};
use datafusion::parquet::file::statistics::Statistics;
use datafusion::parquet::file::writer::{SerializedPageWriter, TrackedWrite};
use datafusion::parquet::schema::types::ColumnDescPtr;

/// Rows a data page holds at most, as Parquet's own writer does by default: a reader
/// that needs a few rows decodes one page, not a row group.
pub const PAGE_ROWS: usize = 20_000;

/// A column chunk being written to a buffer of its own.
pub struct ChunkWriter {
    sink: TrackedWrite<Vec<u8>>,
    snappy: snap::raw::Encoder,
    encodings: EncodingMask,
    compressed: i64,
    uncompressed: i64,
    dictionary_offset: Option<i64>,
    data_offset: Option<i64>,
    offset_index: OffsetIndexBuilder,
}

impl ChunkWriter {
    /// An empty chunk.
    pub fn new() -> Self {
        ChunkWriter {
            sink: TrackedWrite::new(Vec::new()),
            snappy: snap::raw::Encoder::new(),
            encodings: EncodingMask::new_from_encodings([Encoding::RLE].iter()),
            compressed: 0,
            uncompressed: 0,
            dictionary_offset: None,
            data_offset: None,
            offset_index: OffsetIndexBuilder::new(),
        }
    }

    /// Writes the dictionary page: `num_values` values, plain encoded in `plain`. It must
    /// come before every data page.
    pub fn dictionary_page(&mut self, plain: &[u8], num_values: usize) -> Result<()> {
        let page = Page::DictionaryPage {
            buf: self.compress(plain)?,
            num_values: num_values as u32,
            encoding: Encoding::PLAIN,
            is_sorted: false,
        };
        let spec = self.write(CompressedPage::new(page, plain.len()))?;
        self.dictionary_offset = Some(spec.offset as i64);
        self.encodings.insert(Encoding::PLAIN);
        self.encodings.insert(Encoding::RLE_DICTIONARY);
        Ok(())
    }

    /// Writes a data page of `rows` rows: definition levels (if any), then values in
    /// `encoding`, all in `buf`.
    pub fn data_page(&mut self, buf: &[u8], rows: u32, encoding: Encoding) -> Result<()> {
        let page = Page::DataPage {
            buf: self.compress(buf)?,
            num_values: rows,
            encoding,
            def_level_encoding: Encoding::RLE,
            rep_level_encoding: Encoding::RLE,
            statistics: None,
        };
        let spec = self.write(CompressedPage::new(page, buf.len()))?;
        self.data_offset.get_or_insert(spec.offset as i64);
        self.encodings.insert(encoding);
        self.offset_index
            .append_offset_and_size(spec.offset as i64, spec.compressed_size as i32);
        self.offset_index.append_row_count(i64::from(rows));
        Ok(())
    }

    /// The chunk's bytes, with what a row group needs to splice them in: its metadata
    /// (with `statistics` if given), its Bloom filter and its offset index.
    pub fn finish(
        self,
        descr: ColumnDescPtr,
        rows: usize,
        statistics: Option<Statistics>,
        bloom_filter: Option<Sbbf>,
    ) -> Result<(Bytes, ColumnCloseResult)> {
        let buffer = Bytes::from(self.sink.into_inner()?);
        let mut metadata = ColumnChunkMetaData::builder(descr)
            .set_compression(Compression::SNAPPY)
            .set_encodings_mask(self.encodings)
            .set_num_values(rows as i64)
            .set_total_compressed_size(self.compressed)
            .set_total_uncompressed_size(self.uncompressed)
            .set_data_page_offset(self.data_offset.unwrap_or(0))
            .set_dictionary_page_offset(self.dictionary_offset);
        if let Some(statistics) = statistics {
            metadata = metadata.set_statistics(statistics);
        }
        let close = ColumnCloseResult {
            bytes_written: buffer.len() as u64,
            rows_written: rows as u64,
            metadata: metadata.build()?,
            bloom_filter,
            column_index: None,
            offset_index: Some(self.offset_index.build()),
        };
        Ok((buffer, close))
    }

    fn compress(&mut self, buf: &[u8]) -> Result<Bytes> {
        self.snappy
            .compress_vec(buf)
            .map(Bytes::from)
            .map_err(|e| ParquetError::External(Box::new(e)))
    }

    /// Writes a page and returns where it lies in the chunk.
    fn write(&mut self, page: CompressedPage) -> Result<PageWriteSpec> {
        let spec = SerializedPageWriter::new(&mut self.sink).write_page(page)?;
        self.compressed += spec.compressed_size as i64;
        self.uncompressed += spec.uncompressed_size as i64;
        Ok(spec)
    }
}

/// Cuts runs of (value, rows) into pages of at most `rows` rows, splitting a run that
/// crosses a page's end.
pub fn split_into_pages<K: Copy>(runs: &[(K, u32)], rows: usize) -> Vec<Vec<(K, u32)>> {
    let mut pages = Vec::new();
    let mut page = Vec::new();
    let mut room = rows as u32;
    for &(k, mut n) in runs {
        while n > 0 {
            let take = n.min(room);
            page.push((k, take));
            n -= take;
            room -= take;
            if room == 0 {
                pages.push(std::mem::take(&mut page));
                room = rows as u32;
            }
        }
    }
    if !page.is_empty() {
        pages.push(page);
    }
    pages
}

/// Bits needed for values up to `max`.
pub fn bits(max: u64) -> u8 {
    (64 - max.leading_zeros()) as u8
}

/// Definition levels of a page, as runs of (defined, rows), in the RLE / bit-packing
/// hybrid with their length in front, as a data page (v1) holds them.
pub fn put_definition_levels(out: &mut Vec<u8>, runs: impl Iterator<Item = (bool, u32)>) {
    let mut levels = Vec::new();
    for (defined, n) in runs {
        put_rle_run(&mut levels, n, u64::from(defined), 1);
    }
    out.extend_from_slice(&(levels.len() as u32).to_le_bytes());
    out.extend_from_slice(&levels);
}

/// One run of the RLE / bit-packing hybrid: `n` times `value`, `bit_width` bits wide.
pub fn put_rle_run(out: &mut Vec<u8>, n: u32, value: u64, bit_width: u8) {
    put_varint(out, u64::from(n) << 1);
    let bytes = usize::from(bit_width).div_ceil(8);
    out.extend_from_slice(&value.to_le_bytes()[..bytes]);
}

/// Groups a bit-packed run holds at most: a one-byte header, as Parquet's Java writer
/// keeps it, so that every reader takes it.
const MAX_PACKED_GROUPS: usize = 63;

/// Dictionary keys in the RLE / bit-packing hybrid, `bit_width` bits wide. Keys are taken
/// eight at a time: a group of one key repeated, with the groups of that key after it, is
/// a run; other groups are bit-packed.
pub fn put_keys(out: &mut Vec<u8>, keys: &[u32], bit_width: u8) {
    let mut packed_from = 0;
    let mut at = 0;
    while at + 8 <= keys.len() {
        let key = keys[at];
        let mut end = at;
        while end + 8 <= keys.len() && keys[end..end + 8].iter().all(|&k| k == key) {
            end += 8;
        }
        if end == at {
            at += 8;
            continue;
        }
        while end < keys.len() && keys[end] == key {
            end += 1;
        }
        put_bit_packed(out, &keys[packed_from..at], bit_width);
        put_rle_run(out, (end - at) as u32, u64::from(key), bit_width);
        // What follows a run starts its groups afresh.
        (packed_from, at) = (end, end);
    }
    put_bit_packed(out, &keys[packed_from..], bit_width);
}

/// Keys bit-packed, least significant bit first; the last group is padded with zeros
/// (a reader knows from the page how many values there are).
fn put_bit_packed(out: &mut Vec<u8>, keys: &[u32], bit_width: u8) {
    let width = usize::from(bit_width);
    for run in keys.chunks(MAX_PACKED_GROUPS * 8) {
        put_varint(out, ((run.len().div_ceil(8) as u64) << 1) | 1);
        for group in run.chunks(8) {
            if width <= 8 {
                // A group of eight keys of up to eight bits fits one 64-bit word.
                let word = group
                    .iter()
                    .enumerate()
                    .fold(0u64, |w, (i, &k)| w | (u64::from(k) << (i * width)));
                out.extend_from_slice(&word.to_le_bytes()[..width]);
            } else {
                let (mut acc, mut filled) = (0u64, 0);
                for i in 0..8 {
                    acc |= u64::from(group.get(i).copied().unwrap_or(0)) << filled;
                    filled += width;
                    while filled >= 8 {
                        out.push(acc as u8);
                        acc >>= 8;
                        filled -= 8;
                    }
                }
            }
        }
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}
