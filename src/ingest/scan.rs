//! The fast path of the decoder: a flat JSON object whose strings need no unescaping,
//! which is what feeds are made of almost always.
//!
//! It either reads the line exactly as a JSON parser would, or gives up (returns
//! `None`) and leaves the line to the full parser, which also explains what is wrong.
//! It never accepts a line the full parser would reject.

use std::borrow::Cow;

use super::decode::Scalar;
use super::feed::FieldSpec;

/// Reads `line` into `values` (one slot per field of `fields`); `None` means "not a
/// simple line, ask the full parser".
pub(super) fn scan_flat<'a>(
    line: &'a [u8],
    fields: &[FieldSpec],
    values: &mut [Scalar<'a>],
) -> Option<()> {
    // One UTF-8 check for the whole line; every string below starts and ends at an
    // ASCII quote, so it is a valid `str` slice of it.
    let text = std::str::from_utf8(line).ok()?;
    let mut i = skip_ws(line, 0);
    if line.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(line, i + 1);
    if line.get(i) == Some(&b'}') {
        return end(line, i + 1);
    }
    loop {
        let (key, next) = string(text, i)?;
        i = skip_ws(line, next);
        if line.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(line, i + 1);
        let (value, next) = value(text, i)?;
        if let Some(slot) = fields.iter().position(|f| f.name == key) {
            values[slot] = value;
        }
        i = skip_ws(line, next);
        match line.get(i) {
            Some(b',') => i = skip_ws(line, i + 1),
            Some(b'}') => return end(line, i + 1),
            _ => return None,
        }
    }
}

fn end(line: &[u8], i: usize) -> Option<()> {
    (skip_ws(line, i) == line.len()).then_some(())
}

fn skip_ws(line: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = line.get(i) {
        i += 1;
    }
    i
}

/// A string without escapes or control characters starting at `line[i] == '"'`.
fn string(text: &str, i: usize) -> Option<(&str, usize)> {
    let line = text.as_bytes();
    if line.get(i) != Some(&b'"') {
        return None;
    }
    let start = i + 1;
    let len = memchr::memchr(b'"', &line[start..])?;
    let bytes = &line[start..start + len];
    if bytes.iter().any(|&b| b == b'\\' || b < 0x20) {
        return None;
    }
    // Bounded by ASCII quotes, the slice falls on character boundaries of `text`.
    Some((text.get(start..start + len)?, start + len + 1))
}

fn value(text: &str, i: usize) -> Option<(Scalar<'_>, usize)> {
    let line = text.as_bytes();
    match *line.get(i)? {
        b'"' => string(text, i).map(|(s, next)| (Scalar::Str(Cow::Borrowed(s)), next)),
        b'n' => literal(line, i, b"null", Scalar::Null),
        b't' => literal(line, i, b"true", Scalar::Bool(true)),
        b'f' => literal(line, i, b"false", Scalar::Bool(false)),
        b'-' | b'0'..=b'9' => number(text, i),
        _ => None,
    }
}

fn literal<'a>(
    line: &'a [u8],
    i: usize,
    word: &[u8],
    v: Scalar<'a>,
) -> Option<(Scalar<'a>, usize)> {
    line[i..].starts_with(word).then_some((v, i + word.len()))
}

/// A JSON number: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn number(text: &str, start: usize) -> Option<(Scalar<'_>, usize)> {
    let line = text.as_bytes();
    let digits = |mut i: usize| {
        let from = i;
        while line.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        (i > from).then_some(i)
    };
    let mut i = start;
    if line.get(i) == Some(&b'-') {
        i += 1;
    }
    let int_end = digits(i)?;
    if line[i] == b'0' && int_end > i + 1 {
        return None; // leading zero
    }
    i = int_end;
    let mut integral = true;
    if line.get(i) == Some(&b'.') {
        i = digits(i + 1)?;
        integral = false;
    }
    if let Some(b'e' | b'E') = line.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = line.get(i) {
            i += 1;
        }
        i = digits(i)?;
        integral = false;
    }
    let text = text.get(start..i)?;
    // Integers come out as the full parser gives them: unsigned unless negative. Past
    // 64 bits, the full parser decides.
    let scalar = if integral && line[start] == b'-' {
        Scalar::Int(text.parse::<i64>().ok()?)
    } else if integral {
        Scalar::UInt(text.parse::<u64>().ok()?)
    } else {
        Scalar::Float(text.parse::<f64>().ok()?)
    };
    Some((scalar, i))
}
