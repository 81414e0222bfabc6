//! The proof of an erasure: every object of the lakehouse is searched for the address.
//!
//! Object names and raw bytes are searched case-insensitively; bytes cover raw landed files, Delta logs
//! (JSON), secrets, receipts and the plain-text parts of Parquet files (footer
//! statistics). Parquet compresses its pages, so the string columns of every Parquet file
//! (data files and log checkpoints) are also decoded and each value is searched.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::DataType;
use bytes::Bytes;
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::basic::Type as PhysicalType;
use futures::TryStreamExt;
use memchr::memmem;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::error::Result;
pub use crate::forgotten::receipt::ScanResult;

/// Bytes read at a time from an object that is not Parquet.
const READ_CHUNK: u64 = 16 * 1024 * 1024;

/// A text searched for case-insensitively: an e-mail address, normalized as
/// [`customer_id`](crate::feed::customer_id) normalizes it.
///
/// The address is found only as a whole: an occurrence counts when the bytes on both
/// sides cannot continue an address. `lee@test.com` is not found inside
/// `ann.lee@test.com`, nor `ann@test` inside `ann@test.com`: each is another person's
/// address, and an erasure that "found" itself there could never finish (and would point
/// at someone else's data). A dot followed by something that cannot continue an address
/// ends a sentence, not an address (`write to ann@x.com.`), and a JSON escape (`\t`, `\n`,
/// `\u0009`) ends what comes before it.
#[derive(Debug, Clone)]
pub struct Needle {
    lower: String,
    ascii: bool,
}

/// Whether a byte can be part of an e-mail address: letters, digits, the RFC 5322
/// `atext` symbols, the dot and the `@`, and any byte of a non-ASCII character.
fn address_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b >= 0x80 || b"!#$%&'*+-/=?^_`{|}~.@".contains(&b)
}

/// Whether the bytes before `at` cannot continue an address into `hay[at..]`; at the
/// start of `hay`, `edge` says whether that is the start of the whole text.
fn starts_here(hay: &[u8], at: usize, edge: bool) -> bool {
    match &hay[..at] {
        [] => edge,
        // A JSON escape such as `\t` or `\u0009` decodes to a character outside addresses.
        [
            ..,
            b'\\',
            b't' | b'n' | b'r' | b'f' | b'b' | b'/' | b'"' | b'\\',
        ] => true,
        [.., b'\\', b'u', a, b, c, d] if [a, b, c, d].iter().all(|x| x.is_ascii_hexdigit()) => true,
        // A dot continues an address only when an address character comes before it.
        [.., x, b'.'] => !address_byte(*x),
        [b'.'] => edge,
        [.., x] => !address_byte(*x),
    }
}

/// Whether the bytes from `end` on cannot continue an address that ends there; at the
/// end of `hay`, `edge` says whether that is the end of the whole text.
fn ends_here(hay: &[u8], end: usize, edge: bool) -> bool {
    match &hay[end..] {
        [] => edge,
        [b'.', x, ..] => !address_byte(*x),
        [b'.'] => edge,
        [x, ..] => !address_byte(*x),
    }
}

impl Needle {
    /// A needle for `text`, which is trimmed and lower-cased here.
    pub fn new(text: &str) -> Self {
        let lower = crate::feed::customer_id(text).into_owned();
        Needle {
            ascii: lower.is_ascii(),
            lower,
        }
    }

    /// The normalized text.
    pub fn text(&self) -> &str {
        &self.lower
    }

    /// Whether `hay` holds the address as a whole (see [`Needle`]), ignoring case.
    pub fn is_in(&self, hay: &[u8]) -> bool {
        self.is_in_part(hay, true, true)
    }

    /// [`Needle::is_in`] for a part of a longer text: `first` and `last` say whether it
    /// begins and ends where the text does. An occurrence cut by an edge that is not the
    /// text's is not counted: the caller's overlapping parts see it whole.
    pub fn is_in_part(&self, hay: &[u8], first: bool, last: bool) -> bool {
        if self.lower.is_empty() || hay.len() < self.lower.len() {
            return false;
        }
        if self.ascii {
            self.whole_in(&hay.to_ascii_lowercase(), first, last)
        } else {
            let lowered = String::from_utf8_lossy(hay).to_lowercase();
            self.whole_in(lowered.as_bytes(), first, last)
        }
    }

    /// [`Needle::is_in`] for bytes already passed through `to_ascii_lowercase`.
    pub fn is_in_lowered(&self, lowered: &[u8]) -> bool {
        if self.ascii {
            self.whole_in(lowered, true, true)
        } else {
            self.is_in(lowered)
        }
    }

    /// Whether `hay` contains the needle's bytes anywhere, ignoring case, also inside a
    /// longer address: a first test, true whenever [`Needle::is_in`] is.
    pub fn may_be_in(&self, hay: &[u8]) -> bool {
        hay.len() >= self.lower.len() && self.may_be_in_lowered(&hay.to_ascii_lowercase())
    }

    /// Whether `lowered` contains the needle's bytes anywhere, also inside a longer
    /// address: a cheap first test, true whenever [`Needle::is_in_lowered`] is.
    pub fn may_be_in_lowered(&self, lowered: &[u8]) -> bool {
        // Non-ASCII letters may change length when lower-cased: no cheap test for them.
        !self.ascii || memmem::find(lowered, self.lower.as_bytes()).is_some()
    }

    fn whole_in(&self, lowered: &[u8], first: bool, last: bool) -> bool {
        let needle = self.lower.as_bytes();
        memmem::find_iter(lowered, needle).any(|at| {
            starts_here(lowered, at, first) && ends_here(lowered, at + needle.len(), last)
        })
    }

    /// Whether the string `value` names the needle's customer: its
    /// [`customer_id`](crate::feed::customer_id) is the needle.
    pub fn is_exactly(&self, value: &str) -> bool {
        crate::feed::customer_id(value) == self.lower
    }
}

/// Searches every object under the lakehouse root for the needle.
pub async fn scan_storage(store: &Arc<dyn ObjectStore>, needle: &Needle) -> Result<ScanResult> {
    let mut objects: Vec<object_store::ObjectMeta> = store.list(None).try_collect().await?;
    objects.sort_by(|a, b| a.location.cmp(&b.location));
    let mut result = ScanResult::default();
    for meta in objects {
        result.objects += 1;
        result.bytes += meta.size;
        let path = meta.location.to_string();
        // A name is stored too (and copied into lineage columns).
        if needle.is_in(path.as_bytes()) {
            result.matches.push(format!("{path} (its name)"));
        }
        if path.ends_with(".parquet") {
            let bytes = store.get(&meta.location).await?.bytes().await?;
            result.parquet_files += 1;
            result.matches.extend(scan_parquet(&path, bytes, needle));
        } else if scan_stream(store, &meta, needle).await? {
            result.matches.push(path);
        }
    }
    Ok(result)
}

/// Searches an object's bytes chunk by chunk (chunks overlap by the needle's length, so
/// a match across two chunks is found).
async fn scan_stream(
    store: &Arc<dyn ObjectStore>,
    meta: &object_store::ObjectMeta,
    needle: &Needle,
) -> Result<bool> {
    let overlap = needle.text().len() as u64 * 4;
    let mut offset = 0u64;
    while offset < meta.size {
        let start = offset.saturating_sub(overlap);
        let end = (offset + READ_CHUNK).min(meta.size);
        let chunk = store.get_range(&meta.location, start..end).await?;
        if needle.is_in_part(&chunk, start == 0, end == meta.size) {
            return Ok(true);
        }
        offset = end;
    }
    Ok(false)
}

/// Searches one Parquet file: its bytes as stored, then every value of its string and
/// binary columns, nested ones included. Returns where the needle was found; a file that
/// cannot be decoded is reported too, since it cannot be shown to be free of the needle.
pub fn scan_parquet(path: &str, bytes: Bytes, needle: &Needle) -> Vec<String> {
    let mut found = Vec::new();
    if needle.is_in(&bytes) {
        found.push(format!("{path} (stored bytes)"));
    }
    let decoded = (|| -> std::result::Result<(), String> {
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| e.to_string())?;
        let schema = builder.parquet_schema();
        let leaves: Vec<usize> = schema
            .columns()
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                matches!(
                    c.physical_type(),
                    PhysicalType::BYTE_ARRAY | PhysicalType::FIXED_LEN_BYTE_ARRAY
                )
            })
            .map(|(i, _)| i)
            .collect();
        if leaves.is_empty() {
            return Ok(());
        }
        let mask = ProjectionMask::leaves(schema, leaves);
        let reader = builder
            .with_projection(mask)
            .build()
            .map_err(|e| e.to_string())?;
        for batch in reader {
            let batch = batch.map_err(|e| e.to_string())?;
            for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
                if array_contains(column, needle) {
                    let place = format!("{path} (column {})", field.name());
                    if !found.contains(&place) {
                        found.push(place);
                    }
                }
            }
        }
        Ok(())
    })();
    if let Err(e) = decoded {
        found.push(format!("{path} (cannot be decoded: {e})"));
    }
    found
}

/// Whether any string or binary value inside `array` (at any depth) contains the needle.
pub fn array_contains(array: &ArrayRef, needle: &Needle) -> bool {
    // Search a whole column's value buffer at once for the needle's bytes; only a hit is
    // checked value by value (two neighbouring values could together spell the needle,
    // and a value's neighbour could hide that it is the address as a whole).
    fn values<'a>(n: usize, value: impl Fn(usize) -> &'a [u8], needle: &Needle) -> bool {
        (0..n).any(|i| needle.is_in(value(i)))
    }
    match array.data_type() {
        DataType::Utf8 => {
            let a = array.as_string::<i32>();
            needle.may_be_in(a.value_data()) && values(a.len(), |i| a.value(i).as_bytes(), needle)
        }
        DataType::LargeUtf8 => {
            let a = array.as_string::<i64>();
            needle.may_be_in(a.value_data()) && values(a.len(), |i| a.value(i).as_bytes(), needle)
        }
        DataType::Binary => {
            let a = array.as_binary::<i32>();
            needle.may_be_in(a.value_data()) && values(a.len(), |i| a.value(i), needle)
        }
        DataType::LargeBinary => {
            let a = array.as_binary::<i64>();
            needle.may_be_in(a.value_data()) && values(a.len(), |i| a.value(i), needle)
        }
        DataType::FixedSizeBinary(_) => {
            let a = array.as_fixed_size_binary();
            values(a.len(), |i| a.value(i), needle)
        }
        DataType::Utf8View | DataType::BinaryView => {
            let target = if matches!(array.data_type(), DataType::Utf8View) {
                DataType::LargeUtf8
            } else {
                DataType::LargeBinary
            };
            arrow::compute::cast(array, &target).is_ok_and(|a| array_contains(&a, needle))
        }
        DataType::Dictionary(_, _) => array_contains(array.as_any_dictionary().values(), needle),
        DataType::Struct(_) => array
            .as_struct()
            .columns()
            .iter()
            .any(|c| array_contains(c, needle)),
        DataType::List(_) => array_contains(array.as_list::<i32>().values(), needle),
        DataType::LargeList(_) => array_contains(array.as_list::<i64>().values(), needle),
        DataType::FixedSizeList(_, _) => {
            array_contains(array.as_fixed_size_list().values(), needle)
        }
        DataType::Map(_, _) => {
            let entries: ArrayRef = Arc::new(array.as_map().entries().clone());
            array_contains(&entries, needle)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};
    use arrow::record_batch::RecordBatch;
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::basic::Compression;
    use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};

    #[test]
    fn the_needle_is_found_whatever_its_case() {
        let needle = Needle::new("  Ann.Lee@Test.COM ");
        assert_eq!(needle.text(), "ann.lee@test.com");
        assert!(needle.is_in(b"{\"email\":\"ANN.LEE@test.com\"}"));
        assert!(needle.is_in(b"xx ann.lee@test.com, yy"));
        assert!(needle.is_in(b"write to ann.lee@test.com."));
        assert!(!needle.is_in(b"ann.lee@test.co"));
        assert!(!needle.is_in(b""));
        assert!(needle.is_exactly(" Ann.Lee@test.com\t"));
        assert!(!needle.is_exactly("xann.lee@test.com"));
        let accents = Needle::new("ÉLODIE@test.com");
        assert!(accents.is_in("mail: élodie@TEST.com".as_bytes()));
        assert!(accents.is_exactly("Élodie@test.com"));
    }

    /// An address is found only as a whole: never as the end of a longer address, nor
    /// as the start of one (a near miss), whatever surrounds it.
    #[test]
    fn an_address_is_found_as_a_whole_never_inside_another() {
        let lee = Needle::new("Lee@test.com");
        for hay in [
            &b"{\"email\":\"Lee@test.com\"}"[..],
            b"{\"email\":\" LEE@test.com \"}",
            b"lee@test.com",
            b"mailto:lee@test.com>",
            b"<lee@test.com>",
            b"\"\\tlee@test.com\"",
            b"\"\\u0009lee@test.com\"",
            b"lee@test.com.",
            b"(lee@test.com), or",
            b"ann.lee@test.com lee@test.com",
        ] {
            assert!(lee.is_in(hay), "{}", String::from_utf8_lossy(hay));
        }
        for hay in [
            &b"{\"email\":\"Ann.Lee@test.com\"}"[..],
            b"ann.lee@test.com",
            b"x-lee@test.com",
            b"lee@test.com.au",
            b"lee@test.commerce",
            b"a+lee@test.com",
        ] {
            assert!(!lee.is_in(hay), "{}", String::from_utf8_lossy(hay));
        }
        let near = Needle::new("Angie.Abram@test");
        assert!(!near.is_in(b"{\"user\":\"angie.abram@test.com\"}"));
        assert!(near.is_in(b"{\"user\":\"angie.abram@test\"}"));
        // A text read in overlapping parts: an occurrence cut by a part's edge is left to
        // the neighbouring part, which sees it whole.
        assert!(!lee.is_in_part(b"xx lee@test.com", true, false));
        assert!(!lee.is_in_part(b"lee@test.com yy", false, true));
        assert!(lee.is_in_part(b"x lee@test.com y", false, false));
    }

    #[test]
    fn a_column_value_is_found_whole_beside_neighbours_that_touch_it() {
        let lee = Needle::new("lee@test.com");
        let values: ArrayRef = Arc::new(StringArray::from(vec!["ann.", "Lee@test.com"]));
        assert!(array_contains(&values, &lee));
        let values: ArrayRef = Arc::new(StringArray::from(vec!["ann.lee@test.com", "x"]));
        assert!(!array_contains(&values, &lee));
    }

    fn parquet_with(emails: &[&str], compression: Compression) -> Bytes {
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, false),
            Field::new("email", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(0..emails.len() as i64)),
                Arc::new(StringArray::from_iter_values(emails.iter().copied())),
            ],
        )
        .unwrap();
        // No statistics: the address is only inside compressed pages.
        let props = WriterProperties::builder()
            .set_compression(compression)
            .set_statistics_enabled(EnabledStatistics::None)
            .build();
        let mut out = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut out, schema, Some(props)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        Bytes::from(out)
    }

    #[test]
    fn an_address_inside_a_compressed_parquet_page_is_found() {
        // Dictionary-encoded and compressed: the column must be decoded to be searched.
        let mut emails = vec!["someone@else.com"; 2000];
        emails.extend(["Hidden.Person@Test.com"; 2000]);
        let bytes = parquet_with(&emails, Compression::SNAPPY);
        let needle = Needle::new("hidden.person@test.com");
        let found = scan_parquet("t/part-0.parquet", bytes, &needle);
        assert!(
            found.contains(&"t/part-0.parquet (column email)".to_string()),
            "{found:?}"
        );
        let clean = parquet_with(&["someone@else.com"; 100], Compression::SNAPPY);
        assert_eq!(
            scan_parquet("t/part-1.parquet", clean, &needle),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_value_split_across_neighbours_is_not_a_match() {
        let bytes = parquet_with(&["hidden.per", "son@test.com"], Compression::UNCOMPRESSED);
        let needle = Needle::new("hidden.person@test.com");
        assert_eq!(
            scan_parquet("t/p.parquet", bytes, &needle),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_file_that_is_not_parquet_cannot_be_proven_clean() {
        let needle = Needle::new("a@b.com");
        let found = scan_parquet("t/bad.parquet", Bytes::from_static(b"PAR1junk"), &needle);
        assert_eq!(found.len(), 1);
        assert!(found[0].contains("cannot be decoded"), "{found:?}");
    }
}
