//! Raw landed files rewritten without the lines of an erased person.
//!
//! A file is read twice, in large blocks of whole lines: once to find the person's lines
//! (nothing is written when there are none), once to write the file again without them
//! (see [`crate::forgotten::rewrite`], which keeps every other byte as it was).

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::Int64Type;
use object_store::{ObjectMeta, ObjectStore};

use super::scan::Needle;
use crate::error::Result;
use crate::feed::Source;
use crate::forgotten::receipt::RawRewrite;
use crate::forgotten::rewrite::{Blocks, lines, remove_lines};
use crate::ingest::decode::Decoder;
use crate::lakehouse::Lakehouse;

/// A step-trainer reading, as attributed: (serialNumber, sensorReadingTime).
pub type Reading = (String, i64);

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forgotten::rewrite::keep_lines;

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
