//! `integer` and `number` with `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`.
//!
//! Integer ranges are exact: the grammar spells the decimal digits of every integer in range
//! and no other (split by digit count, then by leading digit). Numbers accept integer-valued
//! bounds only: `v` in `[lo, hi]` is an integer part in `[lo, hi - 1]` with any fraction, or
//! `hi` itself; an exclusive lower bound `lo` adds `lo` with a fraction that is not zero.

use super::{invalid, unsupported, Compiler, SchemaError};
use serde_json::{Map, Value};

/// Bounds further from zero than this are refused (JSON numbers above it lose precision in
/// many parsers).
const MAX_BOUND: f64 = 1e15;
/// Most digits of an integer without an upper bound.
const MAX_DIGITS: u32 = 16;
const FRACTION: &str = r#"( "." [0-9]{1,15} )?"#;

/// One bound: value and whether it is exclusive.
type Bound = (i64, bool);

impl Compiler<'_, '_> {
    pub(super) fn integer(
        &mut self,
        map: &Map<String, Value>,
        path: &str,
    ) -> Result<String, SchemaError> {
        let (lo, hi) = bounds(map, path, true)?;
        if lo.is_none() && hi.is_none() {
            return Ok(self.b.primitive("json-integer"));
        }
        // Integer bounds are inclusive after rounding inwards.
        let lo = lo.map(|(v, excl)| v + i64::from(excl));
        let hi = hi.map(|(v, excl)| v - i64::from(excl));
        if let (Some(l), Some(h)) = (lo, hi) {
            if l > h {
                return Err(invalid("minimum", path, "no integer is within the bounds"));
            }
        }
        let mut alts = Vec::new();
        if hi.is_none_or(|h| h >= 0) {
            let from = lo.map_or(0, |l| l.max(0)) as u64;
            alts.push(uint_range(from, hi.map(|h| h as u64)));
        }
        if lo.is_none_or(|l| l < 0) {
            let from = hi.map_or(1, |h| if h >= 0 { 1 } else { h.unsigned_abs() });
            alts.push(format!(
                "\"-\" {}",
                uint_range(from, lo.map(i64::unsigned_abs))
            ));
        }
        self.rule(path, alts.join(" | "))
    }

    pub(super) fn number(
        &mut self,
        map: &Map<String, Value>,
        path: &str,
    ) -> Result<String, SchemaError> {
        let (lo, hi) = bounds(map, path, false)?;
        if lo.is_none() && hi.is_none() {
            return Ok(self.b.primitive("json-number"));
        }
        if let (Some((l, le)), Some((h, he))) = (lo, hi) {
            if l > h || (l == h && (le || he)) {
                return Err(invalid("minimum", path, "no number is within the bounds"));
            }
        }
        let mut alts = Vec::new();
        // v >= 0
        if hi.is_none_or(|(h, excl)| h > 0 || (h == 0 && !excl)) {
            let from = match lo {
                Some((l, excl)) if l >= 0 => (l as u64, excl),
                _ => (0, false),
            };
            let to = hi.map(|(h, excl)| (h as u64, excl));
            if let Some(m) = magnitude(from, to) {
                alts.push(m);
            }
        }
        // v < 0, written as "-" and its magnitude
        if lo.is_none_or(|(l, _)| l < 0) {
            let from = match hi {
                Some((h, excl)) if h < 0 => (h.unsigned_abs(), excl),
                _ => (0, true),
            };
            let to = lo.map(|(l, excl)| (l.unsigned_abs(), excl));
            if let Some(m) = magnitude(from, to) {
                alts.push(format!("\"-\" ( {m} )"));
            }
        }
        if alts.is_empty() {
            return Err(invalid("minimum", path, "no number is within the bounds"));
        }
        self.rule(path, alts.join(" | "))
    }
}

/// The tighter of `minimum`/`exclusiveMinimum` and of `maximum`/`exclusiveMaximum`. For
/// integers a fractional bound is rounded inwards (exact); for numbers it is refused.
fn bounds(
    map: &Map<String, Value>,
    path: &str,
    integer: bool,
) -> Result<(Option<Bound>, Option<Bound>), SchemaError> {
    let read = |key: &str| -> Result<Option<f64>, SchemaError> {
        match map.get(key) {
            None => Ok(None),
            Some(v) => {
                let f = v
                    .as_f64()
                    .ok_or_else(|| invalid(key, path, "must be a number"))?;
                if f.abs() > MAX_BOUND {
                    return Err(SchemaError::Limit {
                        path: format!("{path}/{key}"),
                        detail: format!("bounds beyond ±{MAX_BOUND:e} are not supported"),
                    });
                }
                if !integer && f.fract() != 0.0 {
                    return Err(unsupported(
                        key,
                        path,
                        format!("{f}: fractional bounds on numbers are not supported (only whole numbers)"),
                    ));
                }
                Ok(Some(f))
            }
        }
    };
    // For integers: ceil/floor the bound and keep exclusivity only when it was whole.
    let lower = |v: f64, excl: bool| -> Bound {
        if integer && v.fract() != 0.0 {
            (v.ceil() as i64, false)
        } else {
            (v as i64, excl)
        }
    };
    let upper = |v: f64, excl: bool| -> Bound {
        if integer && v.fract() != 0.0 {
            (v.floor() as i64, false)
        } else {
            (v as i64, excl)
        }
    };
    let tighter_lo = |a: Option<Bound>, b: Option<Bound>| match (a, b) {
        (Some(x), Some(y)) => Some(if x.0 > y.0 || (x.0 == y.0 && x.1) {
            x
        } else {
            y
        }),
        (x, y) => x.or(y),
    };
    let tighter_hi = |a: Option<Bound>, b: Option<Bound>| match (a, b) {
        (Some(x), Some(y)) => Some(if x.0 < y.0 || (x.0 == y.0 && x.1) {
            x
        } else {
            y
        }),
        (x, y) => x.or(y),
    };
    let lo = tighter_lo(
        read("minimum")?.map(|v| lower(v, false)),
        read("exclusiveMinimum")?.map(|v| lower(v, true)),
    );
    let hi = tighter_hi(
        read("maximum")?.map(|v| upper(v, false)),
        read("exclusiveMaximum")?.map(|v| upper(v, true)),
    );
    Ok((lo, hi))
}

/// Unsigned decimals (no exponent) with a value in `from..to`, each bound `(value,
/// exclusive)`; `None` when there are none.
fn magnitude(from: (u64, bool), to: Option<(u64, bool)>) -> Option<String> {
    let (lo, lo_excl) = from;
    let start = lo + u64::from(lo_excl);
    let mut alts = Vec::new();
    match to {
        None => alts.push(format!("{} {FRACTION}", uint_range(start, None))),
        Some((h, _)) if h > start => {
            alts.push(format!("{} {FRACTION}", uint_range(start, Some(h - 1))))
        }
        Some(_) => {}
    }
    if let Some((h, false)) = to {
        if h >= start {
            alts.push(format!("\"{h}\""));
        }
    }
    if lo_excl && to.is_none_or(|(h, _)| h > lo) {
        alts.push(format!("\"{lo}.\" [0-9]{{0,14}} [1-9]"));
    }
    (!alts.is_empty()).then(|| alts.join(" | "))
}

/// GBNF (one parenthesised expression) for the canonical decimals (no leading zeros) of the
/// integers in `lo..=hi` (`hi` `None`: no upper bound, up to [`MAX_DIGITS`] digits).
pub(crate) fn uint_range(lo: u64, hi: Option<u64>) -> String {
    let digits = |n: u64| n.checked_ilog10().unwrap_or(0) + 1;
    let lo_digits = digits(lo);
    let last = hi.map_or(lo_digits, digits);
    let mut alts = Vec::new();
    for d in lo_digits..=last {
        let a = if d == lo_digits { lo } else { 10u64.pow(d - 1) };
        let b = match hi {
            Some(h) if d == last => h,
            _ => 10u64.pow(d) - 1,
        };
        if a <= b {
            alts.push(fixed(&a.to_string(), &b.to_string()));
        }
    }
    if hi.is_none() && lo_digits < MAX_DIGITS {
        alts.push(format!("[1-9] [0-9]{{{},{}}}", lo_digits, MAX_DIGITS - 1));
    }
    format!("( {} )", alts.join(" | "))
}

/// Same-length digit strings `a <= b`: every digit string between them.
fn fixed(a: &str, b: &str) -> String {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let n = a.len();
    if n == 0 {
        return "\"\"".to_string();
    }
    if a == b {
        return format!("\"{}\"", String::from_utf8_lossy(a));
    }
    let (x, y) = (a[0] - b'0', b[0] - b'0');
    let rest = |s: &[u8]| String::from_utf8_lossy(&s[1..]).into_owned();
    let any = |k: usize| {
        if k == 0 {
            String::new()
        } else {
            format!(" [0-9]{{{k}}}")
        }
    };
    if x == y {
        return format!("\"{x}\" {}", fixed(&rest(a), &rest(b)));
    }
    if a[1..].iter().all(|c| *c == b'0') && b[1..].iter().all(|c| *c == b'9') {
        return format!("[{x}-{y}]{}", any(n - 1));
    }
    let mut alts = Vec::new();
    if n > 1 {
        alts.push(format!("\"{x}\" {}", fixed(&rest(a), &"9".repeat(n - 1))));
    } else {
        alts.push(format!("\"{x}\""));
    }
    if x + 1 < y {
        alts.push(format!("[{}-{}]{}", x + 1, y - 1, any(n - 1)));
    }
    if n > 1 {
        alts.push(format!("\"{y}\" {}", fixed(&"0".repeat(n - 1), &rest(b))));
    } else {
        alts.push(format!("\"{y}\""));
    }
    format!("( {} )", alts.join(" | "))
}
