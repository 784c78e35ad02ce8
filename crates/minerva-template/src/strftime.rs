//! `strftime_now(format)`: transformers passes `datetime.now().strftime(format)` to templates
//! (Llama 3.x prints today's date with it). Without a time-zone database this crate formats the
//! current time in UTC, which is what a server in a container usually reports as local time.

use std::time::{SystemTime, UNIX_EPOCH};

const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// A broken-down UTC time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DateTime {
    year: i64,
    /// 1..=12
    month: u32,
    /// 1..=31
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    /// 0 = Monday
    weekday: u32,
    /// 1..=366
    yday: u32,
    unix: i64,
}

/// The environment variable that pins `strftime_now`'s clock (Unix seconds, UTC).
pub const NOW_VAR: &str = "MINERVA_TEMPLATE_NOW";

impl DateTime {
    /// Now, in UTC; `MINERVA_TEMPLATE_NOW` (Unix seconds) pins it, so that renders of
    /// templates that print today's date are reproducible (the jinja2 parity fixtures were
    /// recorded with a pinned date).
    pub(crate) fn now() -> DateTime {
        let pinned = std::env::var(NOW_VAR)
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok());
        let secs = pinned.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
        });
        DateTime::from_unix(secs)
    }

    /// Seconds since the Unix epoch.
    pub(crate) fn unix(&self) -> i64 {
        self.unix
    }

    pub(crate) fn from_unix(secs: i64) -> DateTime {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400) as u32;
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        const CUMULATIVE: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
        let yday = CUMULATIVE[(month - 1) as usize] + day + u32::from(leap && month > 2);
        DateTime {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem / 60 % 60,
            second: rem % 60,
            // 1970-01-01 was a Thursday (3 counting from Monday = 0).
            weekday: (days + 3).rem_euclid(7) as u32,
            yday,
            unix: secs,
        }
    }

    /// Formats like glibc's `strftime` for the directives Python documents; `%-d` style
    /// (no padding) is accepted as on Linux, and unknown directives are copied through.
    pub(crate) fn format(&self, fmt: &str) -> String {
        let mut out = String::new();
        let mut chars = fmt.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            let no_pad = chars.peek() == Some(&'-');
            if no_pad {
                chars.next();
            }
            let Some(d) = chars.next() else {
                out.push('%');
                break;
            };
            let num = |out: &mut String, n: i64, width: usize| {
                if no_pad {
                    out.push_str(&n.to_string());
                } else {
                    out.push_str(&format!("{n:0width$}"));
                }
            };
            let hour12 = match self.hour % 12 {
                0 => 12,
                h => h,
            };
            match d {
                'a' => out.push_str(&DAYS[self.weekday as usize][..3]),
                'A' => out.push_str(DAYS[self.weekday as usize]),
                'b' | 'h' => out.push_str(&MONTHS[(self.month - 1) as usize][..3]),
                'B' => out.push_str(MONTHS[(self.month - 1) as usize]),
                'd' => num(&mut out, self.day.into(), 2),
                'e' => out.push_str(&format!("{:>2}", self.day)),
                'm' => num(&mut out, self.month.into(), 2),
                'y' => num(&mut out, self.year.rem_euclid(100), 2),
                'Y' => out.push_str(&self.year.to_string()),
                'H' => num(&mut out, self.hour.into(), 2),
                'I' => num(&mut out, hour12.into(), 2),
                'M' => num(&mut out, self.minute.into(), 2),
                'S' => num(&mut out, self.second.into(), 2),
                'j' => num(&mut out, self.yday.into(), 3),
                'p' => out.push_str(if self.hour < 12 { "AM" } else { "PM" }),
                'w' => out.push_str(&((self.weekday + 1) % 7).to_string()),
                'u' => out.push_str(&(self.weekday + 1).to_string()),
                'F' => out.push_str(&self.format("%Y-%m-%d")),
                'T' => out.push_str(&self.format("%H:%M:%S")),
                'D' => out.push_str(&self.format("%m/%d/%y")),
                'R' => out.push_str(&self.format("%H:%M")),
                'c' => out.push_str(&self.format("%a %b %e %H:%M:%S %Y")),
                'x' => out.push_str(&self.format("%m/%d/%y")),
                'X' => out.push_str(&self.format("%H:%M:%S")),
                // Python's naive `datetime.now()` has no zone: both print nothing.
                'z' | 'Z' => {}
                'n' => out.push('\n'),
                't' => out.push('\t'),
                '%' => out.push('%'),
                other => {
                    out.push('%');
                    if no_pad {
                        out.push('-');
                    }
                    out.push(other);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_python() {
        // python3 -c 'import datetime; print(datetime.datetime.utcfromtimestamp(1700000000)
        //   .strftime("%d %b %Y|%A %B %-d %j %I:%M:%S %p|%y %H %a %w %u %c"))'
        let t = DateTime::from_unix(1_700_000_000);
        assert_eq!(
            t.format("%d %b %Y|%A %B %-d %j %I:%M:%S %p|%y %H %a %w %u %c"),
            "14 Nov 2023|Tuesday November 14 318 10:13:20 PM|23 22 Tue 2 2 Tue Nov 14 22:13:20 2023"
        );
        let t = DateTime::from_unix(951_782_400); // 2000-02-29 00:00:00
        assert_eq!(t.format("%Y-%m-%d %j %H %I %p"), "2000-02-29 060 00 12 AM");
        let t = DateTime::from_unix(1_709_251_199); // 2024-02-29 23:59:59
        assert_eq!(t.format("%F %T %%"), "2024-02-29 23:59:59 %");
    }
}
