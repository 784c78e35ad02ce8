//! `string` with `minLength`, `maxLength`, `pattern` or `format`.
//!
//! Lengths count JSON string characters, one per code point (escapes of UTF-16 surrogates are
//! never generated, so an escape is always one code point). Formats generate a subset of what
//! their RFCs allow, chosen so that Python's `jsonschema` `FormatChecker` accepts every value:
//! `date` (years 1000-9999, February up to the 28th), `time` and `date-time` (RFC 3339, with
//! `Z` or an offset), `uuid` (lowercase), `email` (`local@domain.tld`, ASCII), `ipv4`.

use super::numeric::uint_range;
use super::{count, invalid, unsupported, Compiler, SchemaError};
use crate::gbnf::MAX_REPETITION;
use serde_json::{Map, Value};

const DAY28: &str = r#"( "0" [1-9] | "1" [0-9] | "2" [0-8] )"#;
const DAY30: &str = r#"( "0" [1-9] | [12] [0-9] | "30" )"#;
const DAY31: &str = r#"( "0" [1-9] | [12] [0-9] | "3" [01] )"#;
const HOUR: &str = r#"( [01] [0-9] | "2" [0-3] )"#;

fn date() -> String {
    format!(
        r#"[1-9] [0-9]{{3}} "-" ( ( "0" [13578] | "1" [02] ) "-" {DAY31} | ( "0" [469] | "11" ) "-" {DAY30} | "02-" {DAY28} )"#
    )
}

fn time() -> String {
    format!(
        r#"{HOUR} ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{{1,6}} )? ( "Z" | [+-] {HOUR} ":" [0-5] [0-9] )"#
    )
}

/// GBNF for the contents (without quotes) of a string in `format`, or `None` if unsupported.
fn format_rule(format: &str) -> Option<String> {
    Some(match format {
        "date" => date(),
        "time" => time(),
        "date-time" => format!("{} \"T\" {}", date(), time()),
        "uuid" => r#"[0-9a-f]{8} "-" [0-9a-f]{4} "-" [0-9a-f]{4} "-" [0-9a-f]{4} "-" [0-9a-f]{12}"#.to_string(),
        "email" => r#"[a-zA-Z0-9._+-]{1,32} "@" [a-zA-Z0-9]{1,32} ( "." [a-zA-Z0-9]{1,16} )? "." [a-zA-Z]{2,6}"#.to_string(),
        "ipv4" => {
            let octet = uint_range(0, Some(255));
            format!("{octet} \".\" {octet} \".\" {octet} \".\" {octet}")
        }
        _ => return None,
    })
}

impl Compiler<'_, '_> {
    pub(super) fn string(
        &mut self,
        map: &Map<String, Value>,
        path: &str,
    ) -> Result<String, SchemaError> {
        let min = count(map, "minLength", path)?;
        let max = count(map, "maxLength", path)?;
        let has_length = min.is_some() || max.is_some();
        let quote = r#""\"""#;
        if let Some(f) = map.get("format") {
            let f = f
                .as_str()
                .ok_or_else(|| invalid("format", path, "must be a string"))?;
            for other in ["pattern", "minLength", "maxLength"] {
                if map.contains_key(other) {
                    return Err(unsupported(
                        other,
                        path,
                        format!("'{other}' beside 'format' is not supported"),
                    ));
                }
            }
            let body = format_rule(f).ok_or_else(|| {
                unsupported(
                    "format",
                    path,
                    format!("'{f}' (supported: date, time, date-time, uuid, email, ipv4)"),
                )
            })?;
            return self.rule(path, format!("{quote} {body} {quote}"));
        }
        if let Some(p) = map.get("pattern") {
            let p = p
                .as_str()
                .ok_or_else(|| invalid("pattern", path, "must be a string"))?;
            if has_length {
                let other = if min.is_some() {
                    "minLength"
                } else {
                    "maxLength"
                };
                return Err(unsupported(
                    other,
                    path,
                    format!("'{other}' beside 'pattern' is not supported"),
                ));
            }
            let body = crate::regex::to_gbnf(p).map_err(|feature| {
                unsupported("pattern", path, format!("{feature} in the pattern {p:?}"))
            })?;
            return self.rule(path, format!("{quote} {body} {quote}"));
        }
        if !has_length {
            return Ok(self.b.primitive("json-string"));
        }
        let min = min.unwrap_or(0);
        if min > u64::from(MAX_REPETITION) {
            return Err(SchemaError::Limit {
                path: format!("{path}/minLength"),
                detail: format!("{min} characters (at most {MAX_REPETITION})"),
            });
        }
        if max.is_some_and(|m| m < min) {
            return Err(invalid("maxLength", path, "is below minLength"));
        }
        let max = max.map(|m| m.min(u64::from(MAX_REPETITION)));
        let ch = self.b.primitive("json-char");
        let rep = match max {
            Some(m) if m == min => format!("{{{min}}}"),
            Some(m) => format!("{{{min},{m}}}"),
            None => format!("{{{min},}}"),
        };
        self.rule(path, format!("{quote} {ch}{rep} {quote}"))
    }
}
