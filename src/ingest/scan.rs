//! The fast path of the decoder: a flat JSON object whose strings need no unescaping,
//! which is what feeds are made of almost always.
//!
//! It either reads the line exactly as a JSON parser would, or gives up (returns
//! `None`) and leaves the line to the full parser, which also explains what is wrong.
//! It never accepts a line the full parser would reject.
//!
//! It is written for speed, because every landed byte passes through it: one pass over
//! the line, keys compared as bytes against the field expected next (feeds write their
//! fields in the same order on every line), UTF-8 checked in strings only, and numbers
//! read while they are scanned.

use std::borrow::Cow;

use super::scalar::Scalar;
use crate::feed::FieldSpec;

/// Reads `line` into `values` (one slot per field of `fields`); `None` means "not a
/// simple line, ask the full parser".
pub(super) fn scan_flat<'a>(
    line: &'a [u8],
    fields: &[FieldSpec],
    values: &mut [Scalar<'a>],
) -> Option<()> {
    let mut i = skip_ws(line, 0);
    if line.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(line, i + 1);
    if line.get(i) == Some(&b'}') {
        return end(line, i + 1);
    }
    // The field the next key most likely names: the one after the last key found.
    let mut expected = 0;
    loop {
        // The key: most often the expected field's name, compared in place with no
        // search for its end; else any string, looked up among the fields.
        let (slot, next) = match expected_key(line, i, fields.get(expected)) {
            Some(next) => (Some(expected), next),
            None => {
                let (key, next) = string(line, i)?;
                if !key.is_ascii() {
                    text(key)?;
                }
                (
                    fields.iter().position(|f| same(f.name.as_bytes(), key)),
                    next,
                )
            }
        };
        i = skip_ws(line, next);
        if line.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(line, i + 1);
        let (value, next) = value(line, i)?;
        if let Some(slot) = slot {
            values[slot] = value;
            expected = slot + 1;
        }
        i = skip_ws(line, next);
        match line.get(i) {
            Some(b',') => i = skip_ws(line, i + 1),
            Some(b'}') => return end(line, i + 1),
            _ => return None,
        }
    }
}

/// Where the key at `line[i]` ends, when it is exactly `field`'s name: a quote, the
/// name's bytes (which hold no quote or escape) and a quote.
#[inline]
fn expected_key(line: &[u8], i: usize, field: Option<&FieldSpec>) -> Option<usize> {
    let name = field?.name.as_bytes();
    let close = i + 1 + name.len();
    (line.get(i) == Some(&b'"')
        && line.get(close) == Some(&b'"')
        && same(&line[i + 1..close], name))
    .then_some(close + 1)
}

/// Byte equality of a key and a field name, compared in place: names are a few bytes
/// long, shorter than the call to `memcmp` that `==` on slices makes.
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut differ = 0u8;
    for (x, y) in a.iter().zip(b) {
        differ |= x ^ y;
    }
    differ == 0
}

fn end(line: &[u8], i: usize) -> Option<()> {
    (skip_ws(line, i) == line.len()).then_some(())
}

#[inline]
fn skip_ws(line: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = line.get(i) {
        i += 1;
    }
    i
}

/// The bytes of a string without escapes or control characters starting at
/// `line[i] == '"'`, and where it ends.
#[inline]
fn string(line: &[u8], i: usize) -> Option<(&[u8], usize)> {
    if line.get(i) != Some(&b'"') {
        return None;
    }
    let start = i + 1;
    let close = closing_quote(line, start)?;
    Some((&line[start..close], close + 1))
}

/// The index of the first quote at or after `from`, or `None` when a backslash or a
/// control character comes first (or nothing does).
///
/// Eight bytes are tested at a time: a quote, a backslash or a byte below 0x20 sets its
/// high bit in `hits`. The lowest bit set is always a true hit (a false one can only
/// arise above a true one, from a borrow), so it is the first stop.
#[inline]
fn closing_quote(line: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_bytes = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let mut j = from;
    while let Some(chunk) = line.get(j..).and_then(<[u8]>::first_chunk::<8>) {
        let v = u64::from_le_bytes(*chunk);
        let hits = zero_bytes(v ^ (ONES * u64::from(b'"')))
            | zero_bytes(v ^ (ONES * u64::from(b'\\')))
            | (v.wrapping_sub(ONES * 0x20) & !v & HIGH);
        if hits != 0 {
            let k = j + (hits.trailing_zeros() / 8) as usize;
            return (line[k] == b'"').then_some(k);
        }
        j += 8;
    }
    loop {
        match *line.get(j)? {
            b'"' => return Some(j),
            b'\\' | 0..0x20 => return None,
            _ => j += 1,
        }
    }
}

/// A string's bytes as `str`, if they are UTF-8 (which the full parser requires).
/// Feeds' strings are nearly always ASCII, which is checked inline, a word at a time.
#[inline]
fn text(bytes: &[u8]) -> Option<&str> {
    if bytes.is_ascii() {
        // SAFETY: ASCII is UTF-8.
        return Some(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    std::str::from_utf8(bytes).ok()
}

fn value(line: &[u8], i: usize) -> Option<(Scalar<'_>, usize)> {
    match *line.get(i)? {
        b'"' => {
            let (bytes, next) = string(line, i)?;
            Some((Scalar::Str(Cow::Borrowed(text(bytes)?)), next))
        }
        b'n' => literal(line, i, b"null", Scalar::Null),
        b't' => literal(line, i, b"true", Scalar::Bool(true)),
        b'f' => literal(line, i, b"false", Scalar::Bool(false)),
        b'-' | b'0'..=b'9' => number(line, i),
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

/// Exact powers of ten as doubles (10^22 is the largest that is exact).
const POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// A JSON number: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, read in the same pass
/// that finds its end.
///
/// Integers come out as the full parser gives them: unsigned unless negative; past 64
/// bits the full parser decides. A decimal of at most 15 significant digits whose
/// exponent is small is computed exactly as the correctly rounded product or quotient
/// of two exact doubles (Clinger's fast path); any other goes to the standard parser.
fn number(line: &[u8], start: usize) -> Option<(Scalar<'_>, usize)> {
    let mut i = start;
    let negative = line.get(i) == Some(&b'-');
    if negative {
        i += 1;
    }
    let mut mantissa: u64 = 0;
    let int_start = i;
    let int_digits = digits(line, &mut i, &mut mantissa);
    if int_digits == 0 || (line[int_start] == b'0' && int_digits > 1) {
        return None; // no digits, or a leading zero
    }
    let mut fraction_digits = 0;
    if line.get(i) == Some(&b'.') {
        i += 1;
        fraction_digits = digits(line, &mut i, &mut mantissa);
        if fraction_digits == 0 {
            return None;
        }
    }
    let mut exponent: i64 = 0;
    let mut has_exponent = false;
    if let Some(b'e' | b'E') = line.get(i) {
        has_exponent = true;
        i += 1;
        let negative_exponent = match line.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let from = i;
        while let Some(&d @ b'0'..=b'9') = line.get(i) {
            exponent = (exponent * 10 + i64::from(d - b'0')).min(1_000_000);
            i += 1;
        }
        if i == from {
            return None;
        }
        if negative_exponent {
            exponent = -exponent;
        }
    }
    let digits = int_digits + fraction_digits;
    if fraction_digits == 0 && !has_exponent {
        // At most 19 digits always fit in 64 bits.
        let scalar = if digits > 19 {
            return None;
        } else if negative {
            Scalar::Int(0i64.checked_sub_unsigned(mantissa)?)
        } else {
            Scalar::UInt(mantissa)
        };
        return Some((scalar, i));
    }
    let power = exponent - fraction_digits as i64;
    let value = if digits <= 15 && (-22..=22).contains(&power) {
        // Both operands are exact, so one IEEE operation rounds the exact value correctly.
        let m = mantissa as f64;
        if power < 0 {
            m / POWERS_OF_TEN[(-power) as usize]
        } else {
            m * POWERS_OF_TEN[power as usize]
        }
    } else {
        let digits = std::str::from_utf8(&line[int_start..i]).ok()?;
        digits.parse::<f64>().ok()?
    };
    // JSON parsers refuse a number too large for a double; so does this one.
    if value.is_infinite() {
        return None;
    }
    Some((Scalar::Float(if negative { -value } else { value }), i))
}

/// Reads the digits at `line[*i..]` on into `mantissa` (wrapping: too many digits are
/// refused by the caller), moving `i` past them; returns how many there were.
///
/// Eight digits are read at a time while there are eight: an instant in epoch
/// milliseconds has thirteen.
#[inline]
fn digits(line: &[u8], i: &mut usize, mantissa: &mut u64) -> usize {
    let from = *i;
    while let Some(chunk) = line.get(*i..).and_then(<[u8]>::first_chunk::<8>) {
        let v = u64::from_le_bytes(*chunk);
        let Some(value) = eight_digits(v) else { break };
        *mantissa = mantissa.wrapping_mul(100_000_000).wrapping_add(value);
        *i += 8;
    }
    while let Some(&d @ b'0'..=b'9') = line.get(*i) {
        *mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
        *i += 1;
    }
    *i - from
}

/// The number eight ASCII digits (in memory order, loaded little-endian) spell, or `None`
/// when a byte is not a digit.
#[inline]
fn eight_digits(v: u64) -> Option<u64> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    // A digit is 0x30..=0x39: its high nibble is 3, and adding 6 leaves it 3.
    let all_digits = (v & (ONES * 0xF0)) == ONES * 0x30
        && (v.wrapping_add(ONES * 0x06) & (ONES * 0xF0)) == ONES * 0x30;
    if !all_digits {
        return None;
    }
    // Pairs, then fours, then all eight: each step multiplies the more significant half
    // (which sits in the lower bytes) by its power of ten and adds the other.
    let v = v & (ONES * 0x0F);
    let v = (v.wrapping_mul(1 + (10 << 8))) >> 8 & 0x00FF_00FF_00FF_00FF;
    let v = (v.wrapping_mul(1 + (100 << 16))) >> 16 & 0x0000_FFFF_0000_FFFF;
    Some((v.wrapping_mul(1 + (10_000 << 32))) >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Option<Scalar<'_>> {
        number(text.as_bytes(), 0).map(|(v, end)| {
            assert_eq!(end, text.len(), "{text}");
            v
        })
    }

    /// Numbers read in one pass equal what the standard library parses, bit for bit.
    #[test]
    fn numbers_are_read_exactly_as_the_standard_parser_reads_them() {
        let mut cases: Vec<String> = [
            "0",
            "-0",
            "1",
            "-1",
            "0.0",
            "-0.0",
            "1.0",
            "-1.0",
            "0.962",
            "-0.227",
            "1e3",
            "2E-2",
            "1.5e+10",
            "123456789012345",
            "0.1",
            "0.30000000000000004",
            "9007199254740993.0",
            "1e22",
            "1e23",
            "1e-22",
            "1e-23",
            "123456789.123456789",
            "18446744073709551615",
            "9223372036854775807",
            "-9223372036854775808",
            "1655564444103",
            "4.9e-324",
            "1.7976931348623157e308",
            "1e400",
            "1e-400",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // And a deterministic spread of decimals like the feeds', with 1 to 17 digits.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let digits = 1 + (state % 17) as usize;
            let whole = format!("{:017}", state % 100_000_000_000_000_000);
            let point = (state >> 40) as usize % (digits + 1);
            let (int, frac) = whole[17 - digits..].split_at(point);
            let int = int.trim_start_matches('0');
            let int = if int.is_empty() { "0" } else { int };
            let sign = if state & 1 == 1 { "-" } else { "" };
            cases.push(if frac.is_empty() {
                format!("{sign}{int}.5e{}", (state >> 20) % 40)
            } else {
                format!("{sign}{int}.{frac}")
            });
        }
        for case in &cases {
            let expected: f64 = case.parse().unwrap();
            match read(case) {
                Some(Scalar::Float(v)) => {
                    assert_eq!(v.to_bits(), expected.to_bits(), "{case}: {v} != {expected}")
                }
                Some(Scalar::Int(v)) => assert_eq!(Ok(v), case.parse::<i64>(), "{case}"),
                Some(Scalar::UInt(v)) => assert_eq!(Ok(v), case.parse::<u64>(), "{case}"),
                Some(other) => panic!("{case}: {other:?}"),
                None => assert!(
                    case.len() > 19 || expected.is_infinite(),
                    "{case} was left to the full parser"
                ),
            }
        }
    }

    #[test]
    fn lines_with_invalid_utf8_in_any_string_are_left_to_the_full_parser() {
        let fields = crate::feed::Source::StepTrainer.fields();
        let scan = |line: &[u8]| {
            let mut values: Vec<Scalar<'_>> = (0..fields.len()).map(|_| Scalar::Absent).collect();
            scan_flat(line, fields, &mut values).is_some()
        };
        // `%` stands for the bytes put in its place.
        let line = |template: &str, bytes: &[u8]| -> Vec<u8> {
            let (before, after) = template.split_once('%').unwrap();
            [before.as_bytes(), bytes, after.as_bytes()].concat()
        };
        let reading = r#"{"sensorReadingTime":1,"serialNumber":"s%","distanceFromObject":2}"#;
        assert!(scan(&line(reading, b"")));
        assert!(!scan(&line(reading, &[0xff])));
        let unknown_key =
            r#"{"sensorReadingTime":1,"serialNumber":"s","distanceFromObject":2,"%":1}"#;
        assert!(scan(&line(unknown_key, b"k")));
        assert!(!scan(&line(unknown_key, &[0xc3])));
        let unknown_value =
            r#"{"sensorReadingTime":1,"serialNumber":"s","distanceFromObject":2,"a":"%"}"#;
        assert!(scan(&line(unknown_value, "é".as_bytes())));
        assert!(!scan(&line(unknown_value, &[0xe2, 0x82])));
    }

    /// The eight-at-a-time search stops where a byte-by-byte one does, whatever the
    /// stop and wherever it falls in a group of eight, and whatever bytes surround it.
    #[test]
    fn the_end_of_a_string_is_found_as_a_byte_by_byte_search_finds_it() {
        let one_by_one = |line: &[u8], from: usize| -> Option<usize> {
            let k = from
                + line[from..]
                    .iter()
                    .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
            (line[k] == b'"').then_some(k)
        };
        let stops = [b'"', b'\\', 0x00, 0x1f];
        let others = [b'a', b' ', 0x21, 0x5b, 0x7f, 0x80, 0xc3, 0xff];
        for len in 0..40 {
            for from in 0..3.min(len + 1) {
                for &fill in &others {
                    let mut line = vec![fill; len];
                    assert_eq!(closing_quote(&line, from), one_by_one(&line, from));
                    for at in from..len {
                        for &stop in &stops {
                            line[at] = stop;
                            // And a second stop after the first, of another kind.
                            for &later in &stops {
                                let mut twice = line.clone();
                                if at + 1 < len {
                                    twice[(at + 1 + len) / 2] = later;
                                }
                                assert_eq!(
                                    closing_quote(&twice, from),
                                    one_by_one(&twice, from),
                                    "{twice:?} from {from}"
                                );
                            }
                            line[at] = fill;
                        }
                    }
                }
            }
        }
    }

    /// Eight digits at a time read what one at a time reads, and any byte that is not a
    /// digit, wherever it is, stops them.
    #[test]
    fn eight_digits_at_once_are_read_as_one_at_a_time() {
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let text = format!("{:08}", state % 100_000_000);
            let v = u64::from_le_bytes(*text.as_bytes().first_chunk::<8>().unwrap());
            assert_eq!(eight_digits(v), Some(state % 100_000_000), "{text}");
            for (n, stop) in [b'/', b':', b'.', b'e', b'-', 0x00, 0xb0, 0x3f]
                .into_iter()
                .enumerate()
            {
                let mut bytes = *text.as_bytes().first_chunk::<8>().unwrap();
                bytes[(state >> (3 * n)) as usize % 8] = stop;
                assert_eq!(eight_digits(u64::from_le_bytes(bytes)), None, "{bytes:?}");
            }
        }
    }

    #[test]
    fn malformed_numbers_are_left_to_the_full_parser() {
        for bad in ["-", "01", "1.", ".5", "1e", "1e+", "-a", "00.1"] {
            assert_eq!(
                number(bad.as_bytes(), 0).filter(|&(_, end)| end == bad.len()),
                None,
                "{bad}"
            );
        }
    }
}
