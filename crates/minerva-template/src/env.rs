//! The minijinja environment, configured the way transformers configures jinja2 for chat
//! templates: `ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)`, its
//! `tojson` override, the `raise_exception` and `strftime_now` globals, and the filters and
//! tests whose minijinja versions print or decide differently from jinja2.

use std::fmt;

use minijinja::value::{Kwargs, Value, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, UndefinedBehavior};

use crate::pyfmt::{py_str, JsonOptions};
use crate::strftime::DateTime;
use crate::{methods, Limits};

/// jinja2's sandbox refuses `range()` results longer than this (`MAX_RANGE`).
const MAX_RANGE: usize = 100_000;

/// Why a render stopped, attached to the minijinja error as its source so that
/// `TemplateError` can tell a template's own `raise_exception` and a tripped limit apart from
/// ordinary render errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stop {
    Raised(String),
    Limit(String),
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stop::Raised(msg) | Stop::Limit(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for Stop {}

/// The `Stop` attached to `err` or to any error in its source chain.
pub(crate) fn find_stop(err: &Error) -> Option<&Stop> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(stop) = e.downcast_ref::<Stop>() {
            return Some(stop);
        }
        cur = e.source();
    }
    None
}

pub(crate) fn limit_error(msg: impl Into<String>) -> Error {
    let msg = msg.into();
    Error::new(ErrorKind::InvalidOperation, msg.clone()).with_source(Stop::Limit(msg))
}

/// A configured environment without templates.
pub(crate) fn environment(limits: &Limits) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(false);
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_debug(false);
    env.set_fuel(Some(limits.fuel));
    env.set_recursion_limit(limits.max_recursion);
    env.set_unknown_method_callback(methods::call_method);
    env.set_formatter(|out, _state, value| {
        let mut text = String::new();
        py_str(value, &mut text)?;
        out.write_str(&text).map_err(Error::from)
    });

    env.add_function("raise_exception", raise_exception);
    env.add_function("strftime_now", |fmt: &str| DateTime::now().format(fmt));
    env.add_function("range", range);

    env.add_filter("tojson", tojson);
    env.add_filter("string", string);
    env.add_filter("join", join);
    env.add_filter("indent", indent);
    env.add_filter("length", length);
    env.add_filter("count", length);
    env.add_test("sequence", is_sequence);
    env
}

fn raise_exception(msg: Option<Value>) -> Result<Value, Error> {
    let mut text = String::new();
    if let Some(msg) = msg {
        py_str(&msg, &mut text)?;
    }
    Err(Error::new(ErrorKind::InvalidOperation, text.clone()).with_source(Stop::Raised(text)))
}

/// jinja2's sandboxed `range`: like Python's, refusing more than `MAX_RANGE` items.
fn range(lower: i64, upper: Option<i64>, step: Option<i64>) -> Result<Value, Error> {
    let (start, stop) = match upper {
        Some(upper) => (lower, upper),
        None => (0, lower),
    };
    let step = step.unwrap_or(1);
    if step == 0 {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "range() arg 3 must not be zero",
        ));
    }
    let span = if step > 0 {
        i128::from(stop) - i128::from(start)
    } else {
        i128::from(start) - i128::from(stop)
    };
    let step_abs = i128::from(step).abs();
    let len = if span <= 0 {
        0
    } else {
        (span + step_abs - 1) / step_abs
    };
    if len > MAX_RANGE as i128 {
        return Err(limit_error(format!(
            "range of {len} items is larger than the sandbox allows ({MAX_RANGE})"
        )));
    }
    let len = len as usize;
    Ok(Value::make_iterable(move || {
        (0..len).map(move |i| Value::from(start + step * i as i64))
    }))
}

/// transformers' `tojson`: `json.dumps(x, ensure_ascii=False, indent=indent,
/// separators=separators, sort_keys=sort_keys)`.
fn tojson(
    value: &Value,
    ensure_ascii: Option<Value>,
    indent: Option<Value>,
    separators: Option<Value>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let pick = |positional: Option<Value>, name: &str| -> Result<Option<Value>, Error> {
        match positional {
            Some(v) => Ok(Some(v)),
            None => kwargs.get::<Option<Value>>(name),
        }
    };
    let ensure_ascii = pick(ensure_ascii, "ensure_ascii")?.is_some_and(|v| v.is_true());
    let indent = match pick(indent, "indent")? {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) => Some(match v.kind() {
            ValueKind::String => v.as_str().unwrap_or_default().to_string(),
            _ => {
                let n = i64::try_from(v.clone())?;
                " ".repeat(usize::try_from(n).unwrap_or(0).min(1024))
            }
        }),
    };
    let mut opts = JsonOptions {
        ensure_ascii,
        indent,
        sort_keys: kwargs
            .get::<Option<Value>>("sort_keys")?
            .is_some_and(|v| v.is_true()),
        ..JsonOptions::default()
    };
    if opts.indent.is_some() {
        opts.item_separator = ",".into();
    }
    match pick(separators, "separators")? {
        Some(v) if !v.is_none() => {
            let parts: Vec<Value> = v.try_iter()?.collect();
            match parts.as_slice() {
                [item, key] if item.as_str().is_some() && key.as_str().is_some() => {
                    opts.item_separator = item.as_str().unwrap_or_default().into();
                    opts.key_separator = key.as_str().unwrap_or_default().into();
                }
                _ => {
                    return Err(Error::new(
                        ErrorKind::InvalidOperation,
                        "separators must be a pair of strings",
                    ))
                }
            }
        }
        _ => {}
    }
    kwargs.assert_all_used()?;
    Ok(Value::from(opts.dumps(value)?))
}

/// jinja2's `string`: Python's `str()`.
fn string(value: &Value) -> Result<Value, Error> {
    if value.kind() == ValueKind::String {
        return Ok(value.clone());
    }
    let mut out = String::new();
    py_str(value, &mut out)?;
    Ok(Value::from(out))
}

/// jinja2's `join(value, d='', attribute=None)`, joining Python `str()` of each item.
fn join(value: &Value, d: Option<&str>, kwargs: Kwargs) -> Result<String, Error> {
    let attribute: Option<&str> = kwargs.get("attribute")?;
    kwargs.assert_all_used()?;
    if value.is_undefined() || value.is_none() {
        return Ok(String::new());
    }
    let mut out = String::new();
    for (i, item) in value.try_iter()?.enumerate() {
        if i > 0 {
            out.push_str(d.unwrap_or_default());
        }
        let item = match attribute {
            Some(attr) => attribute_path(&item, attr)?,
            None => item,
        };
        py_str(&item, &mut out)?;
    }
    Ok(out)
}

/// jinja2's attribute getter: a dotted path whose integer parts index sequences.
fn attribute_path(item: &Value, path: &str) -> Result<Value, Error> {
    let mut cur = item.clone();
    for part in path.split('.') {
        cur = match part.parse::<i64>() {
            Ok(i) => cur.get_item(&Value::from(i))?,
            Err(_) => cur.get_attr(part)?,
        };
    }
    Ok(cur)
}

/// jinja2's `indent(s, width=4, first=False, blank=False)`, including its quirk of appending a
/// newline before `splitlines()` so that a trailing newline survives.
fn indent(value: &Value, width: Option<Value>, kwargs: Kwargs) -> Result<String, Error> {
    let width = match width {
        Some(w) => Some(w),
        None => kwargs.get::<Option<Value>>("width")?,
    };
    let first: Option<bool> = kwargs.get("first")?;
    let blank: Option<bool> = kwargs.get("blank")?;
    kwargs.assert_all_used()?;
    let indention = match width {
        None => "    ".to_string(),
        Some(w) if w.kind() == ValueKind::String => w.as_str().unwrap_or_default().to_string(),
        Some(w) => " ".repeat(usize::try_from(w)?.min(1024)),
    };
    let mut s = String::new();
    py_str(value, &mut s)?;
    s.push('\n');
    let lines = splitlines(&s);
    let mut rv = String::new();
    if blank.unwrap_or(false) {
        let sep = format!("\n{indention}");
        rv = lines.join(&sep);
    } else if let Some((head, rest)) = lines.split_first() {
        rv.push_str(head);
        for line in rest {
            rv.push('\n');
            if !line.is_empty() {
                rv.push_str(&indention);
            }
            rv.push_str(line);
        }
    }
    if first.unwrap_or(false) {
        rv.insert_str(0, &indention);
    }
    Ok(rv)
}

/// Python's `str.splitlines()` without `keepends`.
fn splitlines(s: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut iter = s.char_indices().peekable();
    while let Some((i, c)) = iter.next() {
        let is_break = matches!(
            c,
            '\n' | '\r'
                | '\u{b}'
                | '\u{c}'
                | '\u{1c}'
                | '\u{1d}'
                | '\u{1e}'
                | '\u{85}'
                | '\u{2028}'
                | '\u{2029}'
        );
        if !is_break {
            continue;
        }
        lines.push(&s[start..i]);
        let mut end = i + c.len_utf8();
        if c == '\r' && iter.peek().map(|p| p.1) == Some('\n') {
            iter.next();
            end += 1;
        }
        start = end;
    }
    if start < s.len() {
        lines.push(&s[start..]);
    }
    lines
}

/// jinja2's `length`: `len()`, which is 0 for an undefined value.
fn length(value: &Value) -> Result<usize, Error> {
    if value.is_undefined() {
        return Ok(0);
    }
    value.len().ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("object of type {} has no len()", value.kind()),
        )
    })
}

/// jinja2's `sequence` test: anything with `len()` and `__getitem__`, so strings, lists, dicts
/// and (as jinja2's `Undefined` has both) undefined values.
fn is_sequence(value: &Value) -> bool {
    matches!(
        value.kind(),
        ValueKind::String | ValueKind::Seq | ValueKind::Map | ValueKind::Undefined
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitlines_like_python() {
        assert_eq!(splitlines("a\nb\r\nc\rd\n"), ["a", "b", "c", "d"]);
        assert_eq!(splitlines("a\n\n"), ["a", ""]);
        assert!(splitlines("").is_empty());
    }
}
