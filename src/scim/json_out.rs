//! JSON written straight into a response buffer, for what responses are made of: short strings
//! with nothing to escape, and timestamps.
//!
//! `serde_json` escapes a string byte by byte through a lookup table, and chrono formats a
//! timestamp through its general formatter: together 7–13 % of the instructions of a
//! `GET /Users/{id}` and of a list page (callgrind, `bench/RESULTS.md`). The output is the same
//! bytes (unit tests compare the two, timestamps over random instants).

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
use serde_json::Value;

/// Whether `s` is written in JSON as it is: serde_json escapes `"`, `\` and the control
/// characters, and nothing else.
pub fn is_plain(s: &str) -> bool {
    // A fold without an early exit, which the compiler checks 16 bytes at a time.
    !s.bytes()
        .fold(false, |special, b| special | (b < 0x20) | (b == b'"') | (b == b'\\'))
}

/// Appends `s` as a JSON string, escaped exactly as `serde_json` escapes it.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    if !is_plain(s) {
        let _ = serde_json::to_writer(out, s);
        return;
    }
    out.reserve(s.len() + 2);
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

/// Appends `value` as `serde_json::to_writer` would write it, its strings by [`write_str`].
/// The recursion is bounded: parsed documents are at most 128 levels deep (`serde_json`'s limit).
pub fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(members) => {
            out.push(b'{');
            for (i, (key, item)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, key);
                out.push(b':');
                write_value(out, item);
            }
            out.push(b'}');
        }
        // Numbers, booleans and null: short, and serde_json's number formatting is the reference.
        scalar => {
            let _ = serde_json::to_writer(out, scalar);
        }
    }
}

/// Appends `t` as a JSON string in SCIM's `dateTime` form, `t.to_rfc3339_opts(Millis, true)`:
/// `2026-12-08T01:37:00.123Z`.
pub fn write_datetime(out: &mut Vec<u8>, t: &DateTime<Utc>) {
    out.push(b'"');
    push_datetime(out, t);
    out.push(b'"');
}

/// `t` as [`write_datetime`] writes it, without the quotes.
pub fn format_datetime(t: &DateTime<Utc>) -> String {
    let mut out = Vec::with_capacity(24);
    push_datetime(&mut out, t);
    String::from_utf8(out).unwrap_or_else(|_| t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

fn push_datetime(out: &mut Vec<u8>, t: &DateTime<Utc>) {
    let (year, nanos) = (t.year(), t.nanosecond());
    // Years of other than four digits take a sign in RFC 3339's extended form, and a leap
    // second shows as :60; chrono knows both.
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        out.extend_from_slice(t.to_rfc3339_opts(SecondsFormat::Millis, true).as_bytes());
        return;
    }
    // Each field with its width and the character after it: `2026-12-08T01:37:00.123Z`.
    let fields = [
        (year.unsigned_abs(), 4, b'-'),
        (t.month(), 2, b'-'),
        (t.day(), 2, b'T'),
        (t.hour(), 2, b':'),
        (t.minute(), 2, b':'),
        (t.second(), 2, b'.'),
        (nanos / 1_000_000, 3, b'Z'),
    ];
    for (mut n, width, after) in fields {
        let mut buf = [b'0'; 4];
        for slot in buf[..width].iter_mut().rev() {
            *slot = b'0' + (n % 10) as u8;
            n /= 10;
        }
        out.extend_from_slice(&buf[..width]);
        out.push(after);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;
    use serde_json::json;

    fn written(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        for s in [
            "",
            "plain",
            "a\"quote",
            "back\\slash",
            "tab\there",
            "nul\u{0}",
            "é ✓ /slash",
            "\u{7f}",
        ] {
            assert_eq!(written(|o| write_str(o, s)), serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn values_are_written_as_serde_json_writes_them() {
        let v = json!({"a": [1, 2.5, -3, true, null, "x\"y"], "b": {"c": {}, "d": []}, "e\n": 1e300});
        assert_eq!(written(|o| write_value(o, &v)), serde_json::to_string(&v).unwrap());
    }

    #[test]
    fn far_years_and_leap_seconds_are_written_as_chrono_writes_them() {
        let far = Utc.with_ymd_and_hms(12345, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(format_datetime(&far), far.to_rfc3339_opts(SecondsFormat::Millis, true));
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_milli_opt(23, 59, 59, 1_500)
            .unwrap()
            .and_utc();
        assert_eq!(
            format_datetime(&leap),
            leap.to_rfc3339_opts(SecondsFormat::Millis, true)
        );
        assert_eq!(
            written(|o| write_datetime(o, &leap)),
            format!("\"{}\"", format_datetime(&leap))
        );
    }

    proptest! {
        #[test]
        fn timestamps_are_written_as_chrono_writes_them(secs in -62_135_596_800i64..253_402_300_799, nanos in 0u32..1_000_000_000) {
            let t = Utc.timestamp_opt(secs, nanos).unwrap();
            prop_assert_eq!(format_datetime(&t), t.to_rfc3339_opts(SecondsFormat::Millis, true));
        }
    }
}
