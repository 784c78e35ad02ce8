//! Ollama's timestamps: RFC 3339 in UTC (`created_at`, `modified_at`, `expires_at`).

use std::time::{SystemTime, UNIX_EPOCH};

/// `time` as RFC 3339 in UTC with microseconds, e.g. `2023-11-14T22:13:20.000000Z`. Times
/// before 1970 read as the epoch; times past the year 9999 (RFC 3339 has four digits for the
/// year) as its last microsecond.
pub fn timestamp(time: SystemTime) -> String {
    const LAST: u64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (secs, micros) = if since.as_secs() > LAST {
        (LAST, 999_999)
    } else {
        (since.as_secs(), since.subsec_micros())
    };
    let (year, month, day) = civil_from_days(secs / 86_400);
    let of_day = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60,
    )
}

/// The proleptic Gregorian date of `days` since 1970-01-01, in constant time (Howard
/// Hinnant's `civil_from_days`, for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Reads a UTC RFC 3339 time as [`timestamp`] writes it (`YYYY-MM-DDTHH:MM:SS[.frac]Z`);
/// `None` for anything else.
pub fn parse_timestamp(text: &str) -> Option<SystemTime> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<u64>().ok());
    let (year, month, day) = (d.next()??, d.next()??, d.next()??);
    let (clock, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut c = clock.split(':').map(|p| p.parse::<u64>().ok());
    let (hour, minute, second) = (c.next()??, c.next()??, c.next()??);
    if !(1970..=9999).contains(&year) || !(1..=12).contains(&month) || day == 0 || day > 31 {
        return None;
    }
    let february = if days_in_year(year) == 366 { 29 } else { 28 };
    let lengths = [31, february, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let days = (1970..year).map(days_in_year).sum::<u64>()
        + lengths[..(month - 1) as usize].iter().sum::<u64>()
        + day
        - 1;
    let digits: String = frac.chars().take(9).collect();
    let nanos = format!("{digits:0<9}").parse::<u32>().ok()?;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second;
    UNIX_EPOCH.checked_add(std::time::Duration::new(secs, nanos))
}

fn days_in_year(year: u64) -> u64 {
    if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) {
        366
    } else {
        365
    }
}

#[cfg(test)]
mod parse_tests {
    use super::*;

    #[test]
    fn timestamps_read_back() {
        for secs in [0u64, 1_700_000_000, 4_102_444_800, 951_782_400] {
            let t = UNIX_EPOCH + std::time::Duration::from_micros(secs * 1_000_000 + 123_456);
            assert_eq!(parse_timestamp(&timestamp(t)), Some(t));
        }
        assert_eq!(
            parse_timestamp("2023-11-14T22:13:20Z"),
            Some(UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000))
        );
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(parse_timestamp("2023-13-14T22:13:20Z"), None);
    }
}

#[cfg(test)]
mod tests {
    use super::timestamp;
    use std::time::{Duration, UNIX_EPOCH};

    fn at(secs: u64, micros: u64) -> String {
        timestamp(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros))
    }

    #[test]
    fn formats_like_rfc3339() {
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(951_782_400, 0), "2000-02-29T00:00:00.000000Z");
        assert_eq!(at(951_868_799, 5), "2000-02-29T23:59:59.000005Z");
        assert_eq!(at(1_700_000_000, 123_456), "2023-11-14T22:13:20.123456Z");
        assert_eq!(at(4_102_444_800, 0), "2100-01-01T00:00:00.000000Z");
        assert_eq!(at(1_709_251_199, 0), "2024-02-29T23:59:59.000000Z");
        assert_eq!(at(253_402_300_799, 0), "9999-12-31T23:59:59.000000Z");
        // Far past the four-digit years, in constant time.
        assert_eq!(
            at(9_000_000_000_000_000_000, 0),
            "9999-12-31T23:59:59.999999Z"
        );
        assert_eq!(at(253_402_300_800, 0), "9999-12-31T23:59:59.999999Z");
    }

    #[test]
    fn every_day_of_a_leap_cycle_matches_a_day_count() {
        // Walk 400 years day by day against the calendar's month lengths.
        let (mut y, mut m, mut d) = (1970u64, 1u64, 1u64);
        for days in 0..146_097u64 {
            assert_eq!(super::civil_from_days(days), (y, m, d), "day {days}");
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ][(m - 1) as usize];
            d += 1;
            if d > len {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }
}
