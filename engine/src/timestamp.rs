//! RFC 3339 timestamps, for time literals (SPEC "Additions (v0.2)": `AS OF
//! "2026-12-06T10:00:00Z"`). Pure arithmetic, no clock and no time zone database: a
//! timestamp carries its own offset.
//!
//! Accepted: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)`, `T`/`Z` in either case and a
//! space for `T` (RFC 3339 section 5.6 allows both). The fraction has 1 to 9 digits and is cut
//! to whole milliseconds toward the past (`.2509` is 250 ms): a time literal names the
//! millisecond it falls in. Leap seconds (`:60`) are refused: Tau's times are Unix
//! milliseconds, which have no leap seconds.

/// Unix milliseconds of an RFC 3339 timestamp, or why it is not one.
pub fn parse_rfc3339(s: &str) -> Result<i64, String> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Result<i64, String> {
        let digits = b
            .get(from..from + len)
            .filter(|d| d.iter().all(u8::is_ascii_digit))
            .ok_or_else(|| format!("expected {len} digits at character {from}"))?;
        Ok(digits
            .iter()
            .fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let sep = |at: usize, ok: &[u8]| -> Result<(), String> {
        match b.get(at) {
            Some(c) if ok.contains(c) => Ok(()),
            _ => Err(format!("expected {:?} at character {at}", ok[0] as char)),
        }
    };
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    sep(4, b"-")?;
    sep(7, b"-")?;
    sep(10, b"Tt ")?;
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    sep(13, b":")?;
    sep(16, b":")?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(format!("no such date {year:04}-{month:02}-{day:02}"));
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err(format!("no such time {hour:02}:{minute:02}:{second:02}"));
    }
    let mut at = 19;
    let mut ms = 0;
    if b.get(at) == Some(&b'.') {
        let digits = b[at + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if !(1..=9).contains(&digits) {
            return Err("expected 1 to 9 digits of fraction".into());
        }
        // Milliseconds: the first three digits, padded; the rest is cut off.
        let first3 = &b[at + 1..at + 1 + digits.min(3)];
        ms = first3
            .iter()
            .fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
        ms *= [100, 10, 1][first3.len() - 1];
        at += 1 + digits;
    }
    let offset_min = match b.get(at) {
        Some(b'Z' | b'z') if at + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if at + 6 == b.len() => {
            sep(at + 3, b":")?;
            let (oh, om) = (num(at + 1, 2)?, num(at + 4, 2)?);
            if oh > 23 || om > 59 {
                return Err(format!("no such offset {oh:02}:{om:02}"));
            }
            let m = oh * 60 + om;
            if *sign == b'-' {
                -m
            } else {
                m
            }
        }
        _ => return Err("expected Z or an offset like +01:00 at the end".into()),
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_min * 60;
    let out = secs * 1000 + ms;
    assert!(
        out.abs() < 1 << 50,
        "a 4-digit year is well inside i64 milliseconds"
    );
    Ok(out)
}

fn leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_examples_and_edges() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_rfc3339("2026-12-06T10:00:00Z"), Ok(1_796_551_200_000));
        // SPEC's second example: 09:00:00.250 UTC.
        assert_eq!(
            parse_rfc3339("2026-12-06T10:00:00.250+01:00"),
            Ok(1_796_551_200_000 - 3_600_000 + 250)
        );
        assert_eq!(parse_rfc3339("2026-12-06t10:00:00z"), Ok(1_796_551_200_000));
        assert_eq!(parse_rfc3339("2026-12-06 10:00:00Z"), Ok(1_796_551_200_000));
        assert_eq!(
            parse_rfc3339("2000-02-29T00:00:00.2509Z"),
            Ok(951_782_400_250)
        );
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59.999Z"), Ok(-1));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00-00:30"), Ok(1_800_000));
        for bad in [
            "",
            "2026-12-06",
            "2026-12-06T10:00:00",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-12-06T24:00:00Z",
            "2026-12-06T10:00:60Z",
            "2026-12-06T10:00:00.Z",
            "2026-12-06T10:00:00.1234567890Z",
            "2026-12-06T10:00:00+1:00",
            "2026-12-06T10:00:00+01:00x",
            "20261206T100000Z",
            "yesterday",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_day_of_four_centuries_is_one_day_after_the_last() {
        let mut prev = parse_rfc3339("1799-12-31T00:00:00Z").unwrap();
        for y in 1800..2200 {
            for m in 1..=12 {
                for d in 1..=days_in_month(y, m) {
                    let t = parse_rfc3339(&format!("{y:04}-{m:02}-{d:02}T00:00:00Z")).unwrap();
                    assert_eq!(t - prev, 86_400_000, "{y}-{m}-{d}");
                    prev = t;
                }
            }
        }
    }
}
