//! Raw landed files rewritten without the lines of an erased person, every other byte
//! unchanged: line endings (LF or CRLF), blank lines, a missing final newline, invalid
//! UTF-8, all of it.
//!
//! A file is read twice, in large blocks of whole lines: once to find the lines to
//! remove (nothing is written when there are none), once to write the file again without
//! them. The new content replaces the old in one put, so a reader sees the old file or the
//! new one, never half of it.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::Int64Type;
use futures::TryStreamExt;
use hmac::{Hmac, Mac};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use sha2::Sha256;
use tokio::io::AsyncReadExt;

use super::receipt::RawRewrite;
use super::scan::Needle;
use crate::error::{Result, StediError};
use crate::ingest::decode::Decoder;
use crate::ingest::feed::Source;
use crate::lakehouse::{Lakehouse, layout};

/// Bytes read at a time.
const READ_CHUNK: u64 = 16 * 1024 * 1024;

/// Output above this size is uploaded in parts.
const PART_SIZE: usize = 8 * 1024 * 1024;

/// A step-trainer reading, as attributed: (serialNumber, sensorReadingTime).
pub type Reading = (String, i64);

/// Reads an object in blocks of whole lines (the last block may end without a newline).
struct Blocks<'a> {
    store: &'a Arc<dyn ObjectStore>,
    meta: &'a ObjectMeta,
    offset: u64,
    carry: Vec<u8>,
}

impl<'a> Blocks<'a> {
    fn new(store: &'a Arc<dyn ObjectStore>, meta: &'a ObjectMeta) -> Self {
        Blocks {
            store,
            meta,
            offset: 0,
            carry: Vec::new(),
        }
    }

    async fn next(&mut self) -> Result<Option<Vec<u8>>> {
        loop {
            if self.offset >= self.meta.size {
                if self.carry.is_empty() {
                    return Ok(None);
                }
                return Ok(Some(std::mem::take(&mut self.carry)));
            }
            let end = (self.offset + READ_CHUNK).min(self.meta.size);
            let chunk = self
                .store
                .get_range(&self.meta.location, self.offset..end)
                .await?;
            self.offset = end;
            match memchr::memrchr(b'\n', &chunk) {
                None => self.carry.extend_from_slice(&chunk),
                Some(last) => {
                    let mut block = std::mem::take(&mut self.carry);
                    block.extend_from_slice(&chunk[..=last]);
                    self.carry.extend_from_slice(&chunk[last + 1..]);
                    return Ok(Some(block));
                }
            }
        }
    }
}

/// The lines of `bytes`, each with its terminator (`\n`, or none for a last line that has
/// none). Numbered from 1 as ingestion numbers them.
pub fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
        let (line, tail) = rest.split_at(end);
        rest = tail;
        Some(line)
    })
}

/// A line without its terminator, as the decoder sees it (`\n` and a `\r` before it removed).
fn content(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Decides which raw lines of a source belong to an erased person, the same way the
/// landing tables and quarantine are cleaned, so that the counts still add up:
///
/// - a line that ingestion types into a row matches when its person field (`email`,
///   `user`), trimmed and lower-cased, is the address; a step-trainer line when its
///   (serialNumber, sensorReadingTime) is a reading attributed to the person;
/// - a line that ingestion quarantines (not JSON, not an object, a bad value) matches when
///   it contains the address, ignoring case;
/// - blank lines never match.
pub struct LineMatcher {
    source: Source,
    needle: Needle,
    readings: Arc<HashSet<Reading>>,
    /// Lower-cased serial numbers of the attributed readings, to skip blocks quickly.
    serials: Vec<String>,
}

impl LineMatcher {
    /// A matcher for lines of `source`.
    pub fn new(source: Source, needle: Needle, readings: Arc<HashSet<Reading>>) -> Self {
        let serials: BTreeSet<String> = if source == Source::StepTrainer {
            readings.iter().map(|(s, _)| s.to_lowercase()).collect()
        } else {
            BTreeSet::new()
        };
        LineMatcher {
            source,
            needle,
            readings,
            serials: serials.into_iter().collect(),
        }
    }

    /// Whether any line of `bytes` may match: cheap, and false for almost every block.
    fn may_match(&self, bytes: &[u8]) -> bool {
        let lowered = bytes.to_ascii_lowercase();
        self.needle.may_be_in_lowered(&lowered)
            // An escaped character can hide the address from a plain search.
            || memchr::memchr(b'\\', bytes).is_some()
            || self
                .serials
                .iter()
                .any(|s| memchr::memmem::find(&lowered, s.as_bytes()).is_some())
    }

    /// Whether one line (with or without its terminator) belongs to the person.
    pub fn matches(&self, line: &[u8]) -> bool {
        let line = content(line);
        if line.iter().all(u8::is_ascii_whitespace) || !self.may_match(line) {
            return false;
        }
        let mut decoder = Decoder::new(self.source, "");
        match decoder.decode_line(line, 1) {
            Ok(true) => {
                let row = decoder.finish();
                let text = |name: &str| {
                    row.column_by_name(name)
                        .map(|c| c.as_string::<i32>())
                        .filter(|c| !c.is_empty() && c.is_valid(0))
                        .map(|c| c.value(0).to_string())
                };
                match self.source.person_field() {
                    Some(field) => text(field).is_some_and(|who| self.needle.is_exactly(&who)),
                    None => {
                        let time = row
                            .column_by_name("sensorReadingTime")
                            .map(|c| c.as_primitive::<Int64Type>())
                            .filter(|c| !c.is_empty() && c.is_valid(0))
                            .map(|c| c.value(0));
                        match (text("serialNumber"), time) {
                            (Some(serial), Some(time)) => self.readings.contains(&(serial, time)),
                            _ => false,
                        }
                    }
                }
            }
            Ok(false) => false,
            Err(_) => self.needle.is_in(line),
        }
    }

    /// Adds to `found` the numbers of the lines of `bytes` that match, numbering from
    /// `first`; returns how many lines `bytes` holds.
    pub fn matching_lines(&self, bytes: &[u8], first: u64, found: &mut BTreeSet<u64>) -> u64 {
        let mut n = 0;
        let block_may_match = self.may_match(bytes);
        for line in lines(bytes) {
            if block_may_match && self.matches(line) {
                found.insert(first + n);
            }
            n += 1;
        }
        n
    }
}

/// Appends the lines of `bytes` (numbered from `first`) that are not in `remove` to `out`,
/// byte for byte; returns how many lines `bytes` holds.
pub fn keep_lines(bytes: &[u8], first: u64, remove: &BTreeSet<u64>, out: &mut Vec<u8>) -> u64 {
    let mut n = 0;
    for line in lines(bytes) {
        if !remove.contains(&(first + n)) {
            out.extend_from_slice(line);
        }
        n += 1;
    }
    n
}

/// The numbers of the lines of a landed file that `matcher` matches.
pub async fn find_lines(
    store: &Arc<dyn ObjectStore>,
    meta: &ObjectMeta,
    matcher: &LineMatcher,
) -> Result<BTreeSet<u64>> {
    let mut found = BTreeSet::new();
    let mut blocks = Blocks::new(store, meta);
    let mut next_line = 1;
    while let Some(block) = blocks.next().await? {
        next_line += matcher.matching_lines(&block, next_line, &mut found);
    }
    Ok(found)
}

/// A keyed digest (HMAC-SHA-256 under the tombstone secret) of file contents: it tells
/// whether a file is one seen before without being a plain hash that anyone could check
/// a guess against.
fn digest(secret: &[u8]) -> Hmac<Sha256> {
    <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
}

/// Rewrites a landed file without the lines numbered in `remove`. Returns what was done;
/// the digests are keyed with `secret` (see [`landed_before_erasure`]).
pub async fn remove_lines(
    lakehouse: &Lakehouse,
    meta: &ObjectMeta,
    remove: &BTreeSet<u64>,
    secret: &[u8],
) -> Result<RawRewrite> {
    let store = lakehouse.store();
    let unwritable = |e: object_store::Error| StediError::Unwritable {
        path: format!("{}{}", lakehouse.url(), meta.location),
        reason: e.to_string(),
    };
    let (mut before, mut after) = (digest(secret), digest(secret));
    let mut out = Vec::new();
    let mut upload: Option<WriteMultipart> = None;
    let mut written = 0u64;
    let mut blocks = Blocks::new(store, meta);
    let mut next_line = 1;
    while let Some(block) = blocks.next().await? {
        before.update(&block);
        let start = out.len();
        next_line += keep_lines(&block, next_line, remove, &mut out);
        after.update(&out[start..]);
        if out.len() >= PART_SIZE {
            if upload.is_none() {
                let parts = store
                    .put_multipart(&meta.location)
                    .await
                    .map_err(unwritable)?;
                upload = Some(WriteMultipart::new_with_chunk_size(parts, PART_SIZE));
            }
            if let Some(writer) = upload.as_mut() {
                writer.wait_for_capacity(4).await.map_err(unwritable)?;
                writer.write(&out);
            }
            written += out.len() as u64;
            out.clear();
        }
    }
    written += out.len() as u64;
    match upload {
        // Small files (and files left empty) are replaced in one put.
        None => {
            store
                .put(&meta.location, PutPayload::from(out))
                .await
                .map_err(unwritable)?;
        }
        Some(mut writer) => {
            writer.write(&out);
            writer.finish().await.map_err(unwritable)?;
        }
    }
    Ok(RawRewrite {
        path: meta.location.to_string(),
        lines_removed: remove.len() as u64,
        bytes_before: meta.size,
        bytes_after: written,
        digest_before: hex::encode(before.finalize().into_bytes()),
        digest_after: hex::encode(after.finalize().into_bytes()),
    })
}

/// Rewrites every landed raw file that holds a line of the person (see [`LineMatcher`]).
pub async fn erase_landed(
    lakehouse: &Lakehouse,
    needle: &Needle,
    readings: &Arc<HashSet<Reading>>,
    secret: &[u8],
) -> Result<Vec<RawRewrite>> {
    let mut rewritten = Vec::new();
    for source in Source::ALL {
        let matcher = LineMatcher::new(source, needle.clone(), readings.clone());
        for meta in lakehouse.landed_files(source).await? {
            let found = find_lines(lakehouse.store(), &meta, &matcher).await?;
            if !found.is_empty() {
                rewritten.push(remove_lines(lakehouse, &meta, &found, secret).await?);
            }
        }
    }
    Ok(rewritten)
}

/// Whether the local `file` is what the landed file at `dest` held before an erasure
/// rewrote it: `None` when no erasure ever rewrote `dest`, `Some(same)` otherwise.
///
/// `stedi land` asks this when a file name is already landed with other content, so that
/// landing an original file again (a sync that re-lands a folder) is recognized as
/// already landed rather than refused, and its erased lines stay out.
pub async fn landed_before_erasure(
    lakehouse: &Lakehouse,
    dest: &Path,
    file: &std::path::Path,
) -> Result<Option<bool>> {
    let wanted = dest.to_string();
    let store = lakehouse.store();
    let records: Vec<ObjectMeta> = match store
        .list(Some(&layout::erasures_folder()))
        .try_collect()
        .await
    {
        Ok(records) => records,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut digests = Vec::new();
    for record in records {
        let bytes = store.get(&record.location).await?.bytes().await?;
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            continue;
        };
        let files = value.get("raw_files").and_then(|f| f.as_array());
        for entry in files.into_iter().flatten() {
            if entry.get("path").and_then(|p| p.as_str()) == Some(wanted.as_str())
                && let Some(d) = entry.get("digest_before").and_then(|d| d.as_str())
            {
                digests.push(d.to_string());
            }
        }
    }
    if digests.is_empty() {
        return Ok(None);
    }
    let Some(secret) = super::tombstone::read_secret(lakehouse).await? else {
        return Ok(Some(false));
    };
    let read_err = |e| StediError::ReadInput {
        path: file.to_path_buf(),
        source: e,
    };
    let mut input = tokio::fs::File::open(file).await.map_err(read_err)?;
    let mut mac = digest(&secret);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = input.read(&mut buf).await.map_err(read_err)?;
        if n == 0 {
            break;
        }
        mac.update(&buf[..n]);
    }
    let local = hex::encode(mac.finalize().into_bytes());
    Ok(Some(digests.contains(&local)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer_matcher(address: &str) -> LineMatcher {
        LineMatcher::new(
            Source::Customer,
            Needle::new(address),
            Arc::new(HashSet::new()),
        )
    }

    /// Runs a matcher over `bytes` and returns the file without the matching lines.
    fn rewrite(matcher: &LineMatcher, bytes: &[u8]) -> (Vec<u8>, BTreeSet<u64>) {
        let mut found = BTreeSet::new();
        let n = matcher.matching_lines(bytes, 1, &mut found);
        assert_eq!(n as usize, lines(bytes).count());
        let mut out = Vec::new();
        keep_lines(bytes, 1, &found, &mut out);
        (out, found)
    }

    #[test]
    fn crlf_line_endings_and_other_lines_are_kept_byte_for_byte() {
        let bytes = b"{\"email\":\"keep@x.com\"}\r\n{\"email\":\" Gone@X.com \"}\r\n\r\n{\"email\":\"also@x.com\"}\r\n";
        let (out, found) = rewrite(&customer_matcher("gone@x.com"), bytes);
        assert_eq!(found, BTreeSet::from([2]));
        assert_eq!(
            out,
            b"{\"email\":\"keep@x.com\"}\r\n\r\n{\"email\":\"also@x.com\"}\r\n"
        );
    }

    #[test]
    fn a_missing_final_newline_stays_missing() {
        let m = customer_matcher("gone@x.com");
        let (out, _) = rewrite(
            &m,
            b"{\"email\":\"gone@x.com\"}\n{\"email\":\"keep@x.com\"}",
        );
        assert_eq!(out, b"{\"email\":\"keep@x.com\"}");
        // The unterminated last line is removed; the line before keeps its newline.
        let (out, found) = rewrite(
            &m,
            b"{\"email\":\"keep@x.com\"}\n{\"email\":\"GONE@x.com\"}",
        );
        assert_eq!(found, BTreeSet::from([2]));
        assert_eq!(out, b"{\"email\":\"keep@x.com\"}\n");
    }

    #[test]
    fn malformed_lines_match_when_they_contain_the_address() {
        let bytes = b"{\"email\":\"gone@x.com\", \n[\"GONE@X.COM\"]\n{\"email\":\"keep@x.com\",\n\xff\xfe gone@x.com\n{\"email\":\"gone@x.com\",\"lastUpdateDate\":\"soon\"}\n";
        let (out, found) = rewrite(&customer_matcher("gone@x.com"), bytes);
        assert_eq!(found, BTreeSet::from([1, 2, 4, 5]));
        assert_eq!(out, b"{\"email\":\"keep@x.com\",\n");
    }

    #[test]
    fn valid_records_match_by_their_person_field_only() {
        let bytes = b"{\"email\":\"other@x.com\",\"customerName\":\"gone@x.com\"}\n{\"email\":\"gone@x.com.au\"}\n{\"email\":\"gone\\u0040x.com\"}\n";
        let (_, found) = rewrite(&customer_matcher("gone@x.com"), bytes);
        // An escaped `@` is still the address once decoded.
        assert_eq!(found, BTreeSet::from([3]));
        let accel = LineMatcher::new(
            Source::Accelerometer,
            Needle::new("gone@x.com"),
            Arc::new(HashSet::new()),
        );
        let (_, found) = rewrite(
            &accel,
            b"{\"user\":\"Gone@x.com\",\"timestamp\":1,\"x\":1,\"y\":1,\"z\":1}\n{\"user\":\"keep@x.com\",\"timestamp\":1,\"x\":1,\"y\":1,\"z\":1}\n",
        );
        assert_eq!(found, BTreeSet::from([1]));
    }

    #[test]
    fn step_trainer_lines_match_by_attributed_reading() {
        let readings = Arc::new(HashSet::from([("S-1".to_string(), 100)]));
        let m = LineMatcher::new(Source::StepTrainer, Needle::new("gone@x.com"), readings);
        let bytes = b"{\"sensorReadingTime\":100,\"serialNumber\":\"S-1\",\"distanceFromObject\":3}\n{\"sensorReadingTime\":101,\"serialNumber\":\"S-1\",\"distanceFromObject\":3}\n{\"sensorReadingTime\":100,\"serialNumber\":\"S-2\",\"distanceFromObject\":3}\n";
        let (_, found) = rewrite(&m, bytes);
        assert_eq!(found, BTreeSet::from([1]));
    }

    #[test]
    fn nothing_matches_in_a_file_without_the_person() {
        let bytes = b"{\"email\":\"keep@x.com\"}\nnot json at all\n";
        let (out, found) = rewrite(&customer_matcher("gone@x.com"), bytes);
        assert!(found.is_empty());
        assert_eq!(out, bytes);
    }
}
