//! RFC 3339 timestamps (`2026-12-01T10:00:00Z`, `2026-12-01T12:00:00.5+02:00`) read into
//! milliseconds since the Unix epoch. Written here rather than taken from a crate: the grammar
//! is one line of RFC 3339 §5.6, the filter reads one timestamp per rollout at configure time,
//! and a date crate (`time`, `chrono`) would add tens of kilobytes to the wasm module.

/// Milliseconds since 1970-01-01T00:00:00Z, or why the text is not an RFC 3339 date-time.
/// A leap second (`:60`) is read as the last millisecond of its minute.
pub fn parse_rfc3339(text: &str) -> Result<i64, String> {
    let invalid = || {
        format!(
            "expected an RFC 3339 time such as \"2026-12-01T10:00:00Z\" or \
             \"2026-12-01T12:00:00+02:00\", got \"{text}\""
        )
    };
    let bytes = text.as_bytes();
    if bytes.len() < 20 {
        return Err(invalid());
    }
    let number = |from: usize, len: usize| -> Option<i64> {
        let digits = bytes.get(from..from + len)?;
        digits.iter().try_fold(0i64, |n, &b| {
            b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0'))
        })
    };
    let separators_ok = bytes[4] == b'-'
        && bytes[7] == b'-'
        && matches!(bytes[10], b'T' | b't' | b' ')
        && bytes[13] == b':'
        && bytes[16] == b':';
    if !separators_ok {
        return Err(invalid());
    }
    let fields = (|| {
        Some((
            number(0, 4)?,
            number(5, 2)?,
            number(8, 2)?,
            number(11, 2)?,
            number(14, 2)?,
            number(17, 2)?,
        ))
    })();
    let Some((year, month, day, hour, minute, second)) = fields else {
        return Err(invalid());
    };
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(invalid());
    }
    // Optional fraction, then `Z` or `±HH:MM`.
    let mut at = 19;
    let mut millis = 0i64;
    if bytes.get(at) == Some(&b'.') {
        at += 1;
        let digits = bytes[at..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits == 0 {
            return Err(invalid());
        }
        for (i, &b) in bytes[at..at + digits].iter().take(3).enumerate() {
            millis += i64::from(b - b'0') * [100, 10, 1][i];
        }
        at += digits;
    }
    let offset_minutes = match &bytes[at..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (Some(hours), Some(minutes)) = (number(at + 1, 2), number(at + 4, 2)) else {
                return Err(invalid());
            };
            if hours > 23 || minutes > 59 {
                return Err(invalid());
            }
            let offset = hours * 60 + minutes;
            if *sign == b'-' {
                -offset
            } else {
                offset
            }
        }
        _ => return Err(invalid()),
    };
    let (second, millis) = if second == 60 {
        (59, 999)
    } else {
        (second, millis)
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Ok(seconds * 1000 + millis)
}

/// Milliseconds since the epoch written as RFC 3339 in UTC (`2026-12-01T10:00:00Z`, with
/// `.mmm` when the milliseconds are not 0): the inverse of [`parse_rfc3339`] up to the offset.
pub fn format_rfc3339(ms: i64) -> String {
    let (days, ms_of_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (year, month, day) = civil_from_days(days);
    let time = format!(
        "{:02}:{:02}:{:02}",
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60
    );
    match ms_of_day % 1000 {
        0 => format!("{year:04}-{month:02}-{day:02}T{time}Z"),
        millis => format!("{year:04}-{month:02}-{day:02}T{time}.{millis:03}Z"),
    }
}

/// The proleptic Gregorian date of a day since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times_read_as_epoch_milliseconds() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_rfc3339("2000-03-01T00:00:00Z"), Ok(951_868_800_000));
        assert_eq!(parse_rfc3339("2026-12-01T10:00:00Z"), Ok(1_796_119_200_000));
        assert_eq!(
            parse_rfc3339("2024-02-29T23:59:59.5z"),
            Ok(1_709_251_199_500)
        );
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59Z"), Ok(-1000));
    }

    #[test]
    fn offsets_are_subtracted() {
        let utc = parse_rfc3339("2026-12-01T10:00:00Z");
        assert_eq!(parse_rfc3339("2026-12-01T12:00:00+02:00"), utc);
        assert_eq!(parse_rfc3339("2026-12-01T04:30:00-05:30"), utc);
        assert_eq!(parse_rfc3339("2026-12-01t10:00:00.000000001+00:00"), utc);
    }

    #[test]
    fn leap_second_is_the_end_of_its_minute() {
        assert_eq!(
            parse_rfc3339("2016-12-31T23:59:60Z"),
            Ok(parse_rfc3339("2016-12-31T23:59:59.999Z").unwrap())
        );
    }

    #[test]
    fn formatting_reads_back() {
        for text in [
            "1970-01-01T00:00:00Z",
            "2026-12-01T10:00:00Z",
            "2024-02-29T23:59:59.500Z",
            "1969-12-31T23:59:59Z",
            "2000-03-01T00:00:00.001Z",
            "9999-12-31T23:59:59.999Z",
        ] {
            assert_eq!(format_rfc3339(parse_rfc3339(text).unwrap()), text);
        }
        for ms in (-62_000_000_000_000i64..250_000_000_000_000).step_by(7_777_777_777_777) {
            assert_eq!(parse_rfc3339(&format_rfc3339(ms)), Ok(ms), "{ms}");
        }
    }

    #[test]
    fn malformed_times_are_refused() {
        for text in [
            "",
            "2026-12-01",
            "2026-12-01T10:00:00",
            "2026-12-01T10:00Z",
            "2026-13-01T10:00:00Z",
            "2026-02-29T10:00:00Z",
            "2026-12-01T24:00:00Z",
            "2026-12-01T10:00:00+2:00",
            "2026-12-01T10:00:00.Z",
            "2026-12-01T10:00:00Zjunk",
            "2026/12/01T10:00:00Z",
            "１２３４-12-01T10:00:00Z",
            "tomorrow at noon, please",
        ] {
            assert!(parse_rfc3339(text).is_err(), "{text:?} accepted");
        }
    }
}
