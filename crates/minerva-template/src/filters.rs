//! jinja2's filters where minijinja's differ: they take Python's `str()` of their input, yield
//! tuples, accept jinja2's arguments, or do not exist in minijinja.

use minijinja::value::{Kwargs, Value, ValueKind};
use minijinja::{Error, ErrorKind};

use crate::methods::is_py_space;
use crate::pyfmt::{check_built, py_str, JsonOptions};
use crate::pyobj::{item_tuples, PyDict, PyTuple};

/// transformers' `tojson`: `json.dumps(x, ensure_ascii=False, indent=indent,
/// separators=separators, sort_keys=sort_keys)`.
pub(crate) fn tojson(
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
pub(crate) fn string(value: &Value) -> Result<Value, Error> {
    if value.kind() == ValueKind::String {
        return Ok(value.clone());
    }
    let mut out = String::new();
    py_str(value, &mut out)?;
    Ok(Value::from(out))
}

/// jinja2's `join(value, d='', attribute=None)`, joining Python `str()` of each item.
pub(crate) fn join(value: &Value, d: Option<&str>, kwargs: Kwargs) -> Result<String, Error> {
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
        check_built(out.len())?;
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
pub(crate) fn indent(value: &Value, width: Option<Value>, kwargs: Kwargs) -> Result<String, Error> {
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
    check_built(s.len() + (lines.len() + 1) * indention.len())?;
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

/// Python's `str(value)`, which jinja2's string filters apply to their input.
pub(crate) fn text(value: &Value) -> Result<String, Error> {
    let mut out = String::new();
    py_str(value, &mut out)?;
    Ok(out)
}

/// Python's `str.capitalize()`.
pub(crate) fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first
            .to_uppercase()
            .chain(chars.as_str().to_lowercase().chars())
            .collect(),
        None => String::new(),
    }
}

/// jinja2's `title`: upper-cases the first character of each word, where words are split at
/// whitespace, `-`, `(`, `{`, `[` and `<`, and lower-cases the rest.
pub(crate) fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut at_start = true;
    for c in s.chars() {
        let boundary = c.is_whitespace() || matches!(c, '-' | '(' | '{' | '[' | '<');
        if boundary {
            out.push(c);
            at_start = true;
        } else if at_start {
            out.extend(c.to_uppercase());
            at_start = false;
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// jinja2's `trim(value, chars=None)`: `str(value).strip(chars)`.
pub(crate) fn trim(value: &Value, chars: Option<&str>) -> Result<String, Error> {
    let s = text(value)?;
    Ok(match chars {
        Some(chars) => s.trim_matches(|c| chars.contains(c)).to_string(),
        None => s.trim_matches(is_py_space).to_string(),
    })
}

/// jinja2's `replace(s, old, new, count=None)` on `str()` of each argument.
pub(crate) fn replace(
    value: &Value,
    old: &Value,
    new: &Value,
    count: Option<i64>,
) -> Result<String, Error> {
    let (s, old, new) = (text(value)?, text(old)?, text(new)?);
    let matches = if old.is_empty() {
        s.chars().count() + 1
    } else {
        s.matches(old.as_str()).count()
    };
    let matches = match count {
        Some(n) if n >= 0 => matches.min(n as usize),
        _ => matches,
    };
    check_built(s.len() + matches.saturating_mul(new.len()))?;
    Ok(match count {
        Some(n) if n >= 0 => s.replacen(&old, &new, n as usize),
        _ => s.replace(&old, &new),
    })
}

/// jinja2's `dictsort`, whose items are `(key, value)` tuples.
pub(crate) fn dictsort(value: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    let sorted = minijinja::filters::dictsort(value, kwargs)?;
    let mut items = Vec::new();
    for pair in sorted.try_iter()? {
        items.push(Value::from_object(PyTuple(pair.try_iter()?.collect())));
    }
    Ok(Value::from(items))
}

/// jinja2's `items`: the `(key, value)` tuples of a mapping; nothing for undefined.
pub(crate) fn items(value: &Value) -> Result<Value, Error> {
    if value.is_undefined() {
        return Ok(Value::from(Vec::<Value>::new()));
    }
    if value.kind() != ValueKind::Map {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "Can only get item pairs from a mapping.",
        ));
    }
    Ok(Value::from(item_tuples(value)))
}

/// jinja2's `attr(obj, name)`: attribute lookup only, so a dict's keys are not found.
pub(crate) fn attr(value: &Value, name: &str) -> Result<Value, Error> {
    if value.downcast_object_ref::<PyDict>().is_some() || value.is_undefined() {
        return Ok(Value::UNDEFINED);
    }
    match value.kind() {
        ValueKind::Map | ValueKind::Plain => value.get_attr(name),
        _ => Ok(Value::UNDEFINED),
    }
}
/// jinja2's `int(value, default=0, base=10)`: Python's `int()`, falling back to
/// `int(float(value))` and then to `default`, so `'3.7'|int` is 3 and `'abc'|int` is 0.
pub(crate) fn int(value: &Value, default: Option<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let default = match default {
        Some(d) => d,
        None => kwargs
            .get::<Option<Value>>("default")?
            .unwrap_or(Value::from(0)),
    };
    let base: Option<u32> = kwargs.get("base")?;
    kwargs.assert_all_used()?;
    let from_float = |f: f64| {
        if f.is_finite() {
            Value::from(f.trunc() as i128)
        } else {
            default.clone()
        }
    };
    Ok(match value.kind() {
        ValueKind::Bool => Value::from(i64::from(value.is_true())),
        ValueKind::Number if value.is_integer() => value.clone(),
        ValueKind::Number => f64::try_from(value.clone()).map_or(default.clone(), from_float),
        ValueKind::String => {
            let s = value.as_str().unwrap_or_default().trim_matches(is_py_space);
            let radix = base.unwrap_or(10);
            let digits = match radix {
                16 => s.trim_start_matches("0x").trim_start_matches("0X"),
                8 => s.trim_start_matches("0o").trim_start_matches("0O"),
                2 => s.trim_start_matches("0b").trim_start_matches("0B"),
                _ => s,
            };
            match i128::from_str_radix(digits, radix) {
                Ok(i) => Value::from(i),
                Err(_) => parse_py_float(s).map_or(default.clone(), from_float),
            }
        }
        _ => default.clone(),
    })
}

/// jinja2's `float(value, default=0.0)`: Python's `float()`, or `default`.
pub(crate) fn float(value: &Value, default: Option<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let default = match default {
        Some(d) => d,
        None => kwargs
            .get::<Option<Value>>("default")?
            .unwrap_or(Value::from(0.0)),
    };
    kwargs.assert_all_used()?;
    Ok(match value.kind() {
        ValueKind::Bool => Value::from(if value.is_true() { 1.0 } else { 0.0 }),
        ValueKind::Number => f64::try_from(value.clone()).map_or(default, Value::from),
        ValueKind::String => {
            parse_py_float(value.as_str().unwrap_or_default()).map_or(default, Value::from)
        }
        _ => default,
    })
}

/// Python's `float(str)`: surrounding whitespace allowed, `inf`/`nan` spelled any case.
fn parse_py_float(s: &str) -> Option<f64> {
    let s = s.trim_matches(is_py_space);
    // Rust also accepts forms Python refuses ("1." and ".5" are fine in both; "e5" in neither).
    s.parse::<f64>().ok()
}

/// jinja2's `wordcount`: the number of `\w+` runs.
pub(crate) fn wordcount(value: &Value) -> Result<usize, Error> {
    let s = text(value)?;
    let mut count = 0;
    let mut in_word = false;
    for c in s.chars() {
        let word = c.is_alphanumeric() || c == '_';
        if word && !in_word {
            count += 1;
        }
        in_word = word;
    }
    Ok(count)
}

/// jinja2's `center(value, width=80)`: Python's `str.center`.
pub(crate) fn center(value: &Value, width: Option<usize>) -> Result<String, Error> {
    py_center(&text(value)?, width.unwrap_or(80), ' ')
}

/// Python's `str.center(width, fillchar)`, padding like CPython (the odd space goes left only
/// when both the margin and the width are odd).
pub(crate) fn py_center(s: &str, width: usize, fill: char) -> Result<String, Error> {
    let len = s.chars().count();
    if len >= width {
        return Ok(s.to_string());
    }
    check_built(s.len() + (width - len) * fill.len_utf8())?;
    let margin = width - len;
    let left = margin / 2 + (margin & width & 1);
    let mut out: String = std::iter::repeat_n(fill, left).collect();
    out.push_str(s);
    out.extend(std::iter::repeat_n(fill, margin - left));
    Ok(out)
}

/// jinja2's `truncate(s, length=255, killwords=False, end='...', leeway=0)` (transformers'
/// environment keeps jinja2's default leeway of 5).
pub(crate) fn truncate(
    value: &Value,
    length: Option<usize>,
    kwargs: Kwargs,
) -> Result<String, Error> {
    let length = match length {
        Some(l) => l,
        None => kwargs.get::<Option<usize>>("length")?.unwrap_or(255),
    };
    let killwords: Option<bool> = kwargs.get("killwords")?;
    let end: Option<String> = kwargs.get("end")?;
    let leeway: Option<usize> = kwargs.get("leeway")?;
    kwargs.assert_all_used()?;
    let s = text(value)?;
    let end = end.unwrap_or_else(|| "...".into());
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= length + leeway.unwrap_or(5) {
        return Ok(s);
    }
    let keep: String = chars[..length.saturating_sub(end.chars().count())]
        .iter()
        .collect();
    if killwords.unwrap_or(false) {
        return Ok(keep + &end);
    }
    let head = match keep.rfind(' ') {
        Some(i) => &keep[..i],
        None => &keep[..],
    };
    Ok(format!("{head}{end}"))
}

/// jinja2's `length`: `len()`, which is 0 for an undefined value.
pub(crate) fn length(value: &Value) -> Result<usize, Error> {
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
