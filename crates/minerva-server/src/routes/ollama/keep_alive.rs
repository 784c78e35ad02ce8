//! Ollama's `keep_alive`: a Go duration string (`"5m"`, `"1h30m"`, `"0"`), or a number of
//! seconds; negative keeps the model loaded forever, zero unloads it after the request.

use crate::error::OllamaError;
use minerva_engine::KeepAlive;
use serde_json::Value;
use std::time::Duration;

/// `None` when the request leaves `keep_alive` out (the server's default applies).
pub(crate) fn parse(value: Option<&Value>) -> Result<Option<KeepAlive>, OllamaError> {
    let bad = |v: &Value| {
        OllamaError::bad_request(format!(
            "invalid keep_alive {v}: expected a duration such as \"5m\" or a number of seconds"
        ))
    };
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Number(n)) => {
            let secs = n.as_f64().ok_or_else(|| bad(v))?;
            Ok(Some(from_seconds(secs).ok_or_else(|| bad(v))?))
        }
        Some(v @ Value::String(s)) => {
            if let Ok(secs) = s.trim().parse::<f64>() {
                return Ok(Some(from_seconds(secs).ok_or_else(|| bad(v))?));
            }
            Ok(Some(go_duration(s.trim()).ok_or_else(|| bad(v))?))
        }
        Some(v) => Err(bad(v)),
    }
}

/// [`parse`] for a request made with a plain key while admin keys are set (`scope`
/// [`crate::Scope::Client`]): a `keep_alive` shorter than the server's default (`default`) is
/// left out, so such a key can keep a model loaded longer but never unload it sooner (`"1ns"`
/// would unload it right after the request, which needs an admin key, as `0` does).
pub(crate) fn parse_for(
    value: Option<&Value>,
    scope: Option<crate::Scope>,
    default: KeepAlive,
) -> Result<Option<KeepAlive>, OllamaError> {
    let asked = parse(value)?;
    let shorter = match (asked, default) {
        (Some(KeepAlive::For(a)), KeepAlive::For(d)) => a < d,
        (Some(KeepAlive::For(_)), KeepAlive::Forever) => true,
        _ => false,
    };
    if shorter && scope == Some(crate::Scope::Client) {
        tracing::info!(
            asked = ?asked,
            "keep_alive shorter than the server's default ignored: the request has no admin key"
        );
        return Ok(None);
    }
    Ok(asked)
}

fn from_seconds(secs: f64) -> Option<KeepAlive> {
    if !secs.is_finite() {
        return None;
    }
    if secs < 0.0 {
        return Some(KeepAlive::Forever);
    }
    Duration::try_from_secs_f64(secs).ok().map(KeepAlive::For)
}

/// A `keep_alive` written as text (a flag or an environment variable): a Go duration or a
/// number of seconds.
pub fn parse_text(text: &str) -> Option<KeepAlive> {
    parse(Some(&Value::String(text.to_string()))).ok().flatten()
}

/// Go's `time.ParseDuration`: an optional sign, then numbers each with a unit (`ns`, `us`, `µs`,
/// `ms`, `s`, `m`, `h`).
fn go_duration(text: &str) -> Option<KeepAlive> {
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * scale;
    }
    if negative && total > 0.0 {
        return Some(KeepAlive::Forever);
    }
    from_seconds(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secs(s: u64) -> Option<KeepAlive> {
        Some(KeepAlive::For(Duration::from_secs(s)))
    }

    #[test]
    fn durations_parse_as_ollama_reads_them() {
        assert_eq!(parse(Some(&json!("5m"))).ok().flatten(), secs(300));
        assert_eq!(parse(Some(&json!("1h30m"))).ok().flatten(), secs(5400));
        assert_eq!(parse(Some(&json!("0"))).ok().flatten(), secs(0));
        assert_eq!(parse(Some(&json!(0))).ok().flatten(), secs(0));
        assert_eq!(parse(Some(&json!(120))).ok().flatten(), secs(120));
        assert_eq!(
            parse(Some(&json!("1.5s"))).ok().flatten(),
            Some(KeepAlive::For(Duration::from_millis(1500)))
        );
        assert_eq!(
            parse(Some(&json!(-1))).ok().flatten(),
            Some(KeepAlive::Forever)
        );
        assert_eq!(
            parse(Some(&json!("-1m"))).ok().flatten(),
            Some(KeepAlive::Forever)
        );
        assert_eq!(
            parse(Some(&json!("-1"))).ok().flatten(),
            Some(KeepAlive::Forever)
        );
        assert_eq!(parse(None).ok().flatten(), None);
    }

    #[test]
    fn nonsense_is_refused() {
        for bad in [
            json!("5 minutes"),
            json!("m"),
            json!(""),
            json!(true),
            json!([1]),
        ] {
            assert!(parse(Some(&bad)).is_err(), "{bad}");
        }
    }
}
