//! RFC 3339 timestamps as Unix milliseconds (SPEC v0.2 time literals), written from the
//! RFC's grammar: split the text at its fixed separators, count days year by year and
//! month by month (slow and obvious; the engine uses a closed-form day count).

const MONTH_DAYS: [i64; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

fn is_leap(y: i64) -> bool {
    y % 400 == 0 || (y % 4 == 0 && y % 100 != 0)
}

fn month_len(y: i64, m: usize) -> i64 {
    MONTH_DAYS[m - 1] + i64::from(m == 2 && is_leap(y))
}

fn digits(s: &str) -> Option<i64> {
    if s.is_empty() || !s.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `None` when `text` is not `full-date "T" full-time` of RFC 3339 (leap seconds refused).
pub fn rfc3339_ms(text: &str) -> Option<i64> {
    if !text.is_ascii() || text.len() < 20 {
        return None;
    }
    let (date, rest) = text.split_at(10);
    let sep = rest.chars().next()?;
    if !matches!(sep, 'T' | 't' | ' ') {
        return None;
    }
    let rest = &rest[1..];
    let (clock, zone) = rest.split_at(8);
    let d: Vec<&str> = date.split('-').collect();
    let c: Vec<&str> = clock.split(':').collect();
    if d.len() != 3 || c.len() != 3 || d[0].len() != 4 || d[1].len() != 2 || d[2].len() != 2 {
        return None;
    }
    if c.iter().any(|x| x.len() != 2) {
        return None;
    }
    let (y, mo, da) = (digits(d[0])?, digits(d[1])?, digits(d[2])?);
    let (h, mi, se) = (digits(c[0])?, digits(c[1])?, digits(c[2])?);
    if !(1..=12).contains(&mo) || da < 1 || da > month_len(y, mo as usize) {
        return None;
    }
    if h > 23 || mi > 59 || se > 59 {
        return None;
    }
    // Fraction, then the zone.
    let (frac, zone) = match zone.strip_prefix('.') {
        Some(z) => {
            let n = z.chars().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 || n > 9 {
                return None;
            }
            (&z[..n], &z[n..])
        }
        None => ("", zone),
    };
    let mut ms = 0;
    for (i, ch) in frac.chars().take(3).enumerate() {
        ms += i64::from(ch.to_digit(10)?) * [100, 10, 1][i];
    }
    let offset_min = if zone == "Z" || zone == "z" {
        0
    } else {
        let sign = match zone.chars().next()? {
            '+' => 1,
            '-' => -1,
            _ => return None,
        };
        let hm: Vec<&str> = zone[1..].split(':').collect();
        if hm.len() != 2 || hm[0].len() != 2 || hm[1].len() != 2 {
            return None;
        }
        let (oh, om) = (digits(hm[0])?, digits(hm[1])?);
        if oh > 23 || om > 59 {
            return None;
        }
        sign * (oh * 60 + om)
    };
    let mut days = 0i64;
    if y >= 1970 {
        for yy in 1970..y {
            days += if is_leap(yy) { 366 } else { 365 };
        }
    } else {
        for yy in y..1970 {
            days -= if is_leap(yy) { 366 } else { 365 };
        }
    }
    for m in 1..mo as usize {
        days += month_len(y, m);
    }
    days += da - 1;
    let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset_min * 60;
    Some(secs * 1000 + ms)
}
