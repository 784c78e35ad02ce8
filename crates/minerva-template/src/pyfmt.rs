//! Python's textual forms of values: `str()`, `repr()`, and `json.dumps`.
//!
//! jinja2 prints values with Python's `str()` (`None`, `True`, `['a', 1]`), and transformers'
//! `tojson` is `json.dumps(x, ensure_ascii=False, indent=indent, separators=separators,
//! sort_keys=sort_keys)`. minijinja prints `none`, `true` and `["a", 1]` and its own `tojson`
//! uses compact separators and HTML-escapes `<`, so both are re-implemented here to be byte
//! identical to Python.

use std::fmt::Write as _;

use minijinja::value::{Value, ValueKind};
use minijinja::{Error, ErrorKind};

use crate::pyobj::PyTuple;

/// Deepest nesting that [`py_str`], [`py_repr`] and [`JsonOptions::dumps`] walk before they
/// give up; templates can build nested values in a loop, and these walkers recurse.
const MAX_DEPTH: usize = 256;

/// Largest string this crate's own filters and methods build. minijinja charges fuel for what
/// they return, but they must not allocate unbounded memory before returning:
/// `'x'|center(10**12)`, `', '.join(...)` with a huge separator, deep `tojson(indent=1000)`.
pub(crate) const MAX_BUILT_BYTES: usize = 64 << 20;

/// Fails once a string being built would pass [`MAX_BUILT_BYTES`].
pub(crate) fn check_built(len: usize) -> Result<(), Error> {
    if len > MAX_BUILT_BYTES {
        Err(crate::env::limit_error(format!(
            "a filter or method would build a string of more than {MAX_BUILT_BYTES} bytes"
        )))
    } else {
        Ok(())
    }
}

fn too_deep() -> Error {
    crate::env::limit_error(format!("value nested deeper than {MAX_DEPTH} levels"))
}

/// Python's `str(value)`, as jinja2 prints `{{ value }}`.
pub(crate) fn py_str(value: &Value, out: &mut String) -> Result<(), Error> {
    match value.kind() {
        ValueKind::Undefined => Ok(()),
        ValueKind::String => {
            out.push_str(value.as_str().unwrap_or_default());
            Ok(())
        }
        _ => py_repr(value, out, 0),
    }
}

/// Python's `repr(value)` for the values a chat template handles.
pub(crate) fn py_repr(value: &Value, out: &mut String, depth: usize) -> Result<(), Error> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    match value.kind() {
        ValueKind::Undefined => {}
        ValueKind::None => out.push_str("None"),
        ValueKind::Bool => out.push_str(if value.is_true() { "True" } else { "False" }),
        ValueKind::Number => push_number(value, out, FloatStyle::Repr),
        ValueKind::String => repr_str(value.as_str().unwrap_or_default(), out),
        ValueKind::Seq if value.downcast_object_ref::<PyTuple>().is_some() => {
            let items: Vec<Value> = value.try_iter()?.collect();
            out.push('(');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                py_repr(item, out, depth + 1)?;
                check_built(out.len())?;
            }
            if items.len() == 1 {
                out.push(',');
            }
            out.push(')');
        }
        ValueKind::Seq => {
            out.push('[');
            for (i, item) in value.try_iter()?.enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                py_repr(&item, out, depth + 1)?;
                check_built(out.len())?;
            }
            out.push(']');
        }
        ValueKind::Map
            if value
                .as_object()
                .is_some_and(|o| o.try_iter_pairs().is_some()) =>
        {
            out.push('{');
            for (i, (k, v)) in pairs(value).into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                py_repr(&k, out, depth + 1)?;
                out.push_str(": ");
                py_repr(&v, out, depth + 1)?;
                check_built(out.len())?;
            }
            out.push('}');
        }
        _ => {
            let _ = write!(out, "{value}");
        }
    }
    Ok(())
}

fn pairs(value: &Value) -> Vec<(Value, Value)> {
    value
        .as_object()
        .and_then(|o| o.try_iter_pairs())
        .map(|it| it.collect())
        .unwrap_or_default()
}

/// `repr()` of a Python string: single quotes unless the text holds `'` and no `"`.
fn repr_str(s: &str, out: &mut String) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || (0x7f..0xa0).contains(&(c as u32)) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FloatStyle {
    /// `repr(float)`: `inf`, `nan`.
    Repr,
    /// `json.dumps(float)`: `Infinity`, `NaN`.
    Json,
}

fn push_number(value: &Value, out: &mut String, style: FloatStyle) {
    if value.is_integer() {
        let _ = write!(out, "{value}");
        return;
    }
    match f64::try_from(value.clone()) {
        Ok(f) => push_float(f, out, style),
        Err(_) => {
            let _ = write!(out, "{value}");
        }
    }
}

/// Python's `float.__repr__`: the shortest digits that round-trip, in positional notation when
/// the decimal exponent is in `-4..16` and in scientific notation (`1e-05`, `1.5e+16`) otherwise.
fn push_float(f: f64, out: &mut String, style: FloatStyle) {
    if f.is_nan() {
        out.push_str(if style == FloatStyle::Json {
            "NaN"
        } else {
            "nan"
        });
        return;
    }
    if f.is_infinite() {
        let word = if style == FloatStyle::Json {
            "Infinity"
        } else {
            "inf"
        };
        if f < 0.0 {
            out.push('-');
        }
        out.push_str(word);
        return;
    }
    // Rust's `{:e}` yields the same shortest round-trip digits as Python, e.g. `-1.2345e-7`.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (neg, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if neg {
        out.push('-');
    }
    if (-4..16).contains(&exp) {
        if exp < 0 {
            out.push_str("0.");
            for _ in 0..(-exp - 1) {
                out.push('0');
            }
            out.push_str(&digits);
        } else {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                for _ in digits.len()..int_len {
                    out.push('0');
                }
                out.push_str(".0");
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
}

/// The arguments of Python's `json.dumps` that transformers' `tojson` passes through.
pub(crate) struct JsonOptions {
    pub ensure_ascii: bool,
    /// `None` for single-line output; otherwise the text repeated per nesting level.
    pub indent: Option<String>,
    pub item_separator: String,
    pub key_separator: String,
    pub sort_keys: bool,
}

impl Default for JsonOptions {
    fn default() -> Self {
        JsonOptions {
            ensure_ascii: false,
            indent: None,
            item_separator: ", ".into(),
            key_separator: ": ".into(),
            sort_keys: false,
        }
    }
}

impl JsonOptions {
    /// `json.dumps(value, ...)` with these options.
    pub(crate) fn dumps(&self, value: &Value) -> Result<String, Error> {
        let mut out = String::new();
        self.write(value, &mut out, 0)?;
        Ok(out)
    }

    fn newline(&self, out: &mut String, level: usize) {
        if let Some(indent) = &self.indent {
            out.push('\n');
            for _ in 0..level {
                out.push_str(indent);
            }
        }
    }

    fn write(&self, value: &Value, out: &mut String, level: usize) -> Result<(), Error> {
        if level > MAX_DEPTH {
            return Err(too_deep());
        }
        match value.kind() {
            ValueKind::None => out.push_str("null"),
            ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
            ValueKind::Number => push_number(value, out, FloatStyle::Json),
            ValueKind::String => self.write_str(value.as_str().unwrap_or_default(), out),
            ValueKind::Seq | ValueKind::Iterable => {
                let items: Vec<Value> = value.try_iter()?.collect();
                if items.is_empty() {
                    out.push_str("[]");
                    return Ok(());
                }
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(&self.item_separator);
                    }
                    self.newline(out, level + 1);
                    self.write(item, out, level + 1)?;
                    check_built(out.len())?;
                }
                self.newline(out, level);
                out.push(']');
            }
            ValueKind::Map
                if value
                    .as_object()
                    .is_some_and(|o| o.try_iter_pairs().is_some()) =>
            {
                let mut items = Vec::new();
                for (k, v) in pairs(value) {
                    items.push((json_key(&k)?, v));
                }
                if self.sort_keys {
                    items.sort_by(|a, b| a.0.cmp(&b.0));
                }
                if items.is_empty() {
                    out.push_str("{}");
                    return Ok(());
                }
                out.push('{');
                for (i, (k, v)) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(&self.item_separator);
                    }
                    self.newline(out, level + 1);
                    self.write_str(k, out);
                    out.push_str(&self.key_separator);
                    self.write(v, out, level + 1)?;
                    check_built(out.len())?;
                }
                self.newline(out, level);
                out.push('}');
            }
            kind => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!("Object of type {kind} is not JSON serializable"),
                ))
            }
        }
        Ok(())
    }

    fn write_str(&self, s: &str, out: &mut String) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 || (self.ensure_ascii && (c as u32) > 0x7e) => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        let _ = write!(out, "\\u{unit:04x}");
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }
}

/// A dictionary key as `json.dumps` writes it: strings as they are, numbers, booleans and
/// `None` converted to text, anything else refused.
fn json_key(key: &Value) -> Result<String, Error> {
    let mut out = String::new();
    match key.kind() {
        ValueKind::String => out.push_str(key.as_str().unwrap_or_default()),
        ValueKind::Number => push_number(key, &mut out, FloatStyle::Json),
        ValueKind::Bool => out.push_str(if key.is_true() { "true" } else { "false" }),
        ValueKind::None => out.push_str("null"),
        kind => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("keys must be str, int, float, bool or None, not {kind}"),
            ))
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float(f: f64) -> String {
        let mut s = String::new();
        push_float(f, &mut s, FloatStyle::Repr);
        s
    }

    #[test]
    fn floats_match_python_repr() {
        assert_eq!(float(1.0), "1.0");
        assert_eq!(float(-0.0), "-0.0");
        assert_eq!(float(0.1), "0.1");
        assert_eq!(float(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(float(1e-5), "1e-05");
        assert_eq!(float(0.0001), "0.0001");
        assert_eq!(float(1.5e16), "1.5e+16");
        assert_eq!(float(1e15), "1000000000000000.0");
        assert_eq!(float(123456.789), "123456.789");
        assert_eq!(float(2.5e-300), "2.5e-300");
        assert_eq!(float(f64::INFINITY), "inf");
    }

    #[test]
    fn repr_matches_python() {
        let v = crate::pyobj::from_json(&serde_json::json!(
            {"a": [1, 2.0, null, true, "it's", "q\"'", "\n"]}
        ));
        let mut s = String::new();
        py_str(&v, &mut s).unwrap();
        assert_eq!(s, r#"{'a': [1, 2.0, None, True, "it's", 'q"\'', '\n']}"#);
    }

    #[test]
    fn json_matches_python() {
        let v = crate::pyobj::from_json(&serde_json::json!({"b": [1, {}], "a": "é<\u{1}"}));
        let opts = JsonOptions::default();
        assert_eq!(
            opts.dumps(&v).unwrap(),
            "{\"b\": [1, {}], \"a\": \"é<\\u0001\"}"
        );
        let opts = JsonOptions {
            ensure_ascii: true,
            indent: Some("  ".into()),
            item_separator: ",".into(),
            sort_keys: true,
            ..JsonOptions::default()
        };
        assert_eq!(
            opts.dumps(&v).unwrap(),
            "{\n  \"a\": \"\\u00e9<\\u0001\",\n  \"b\": [\n    1,\n    {}\n  ]\n}"
        );
    }
}
