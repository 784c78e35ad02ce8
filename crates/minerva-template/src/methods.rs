//! Python methods on strings, dicts and lists (`content.strip()`, `message.get('x', '')`).
//!
//! minijinja-contrib's pycompat callback covers most of them; this module adds or corrects the
//! ones chat templates use that it lacks: `dict.get(key, default)`, `str.format`, `str.rsplit`,
//! `str.partition`, `str.rpartition`, `str.removeprefix`, `str.removesuffix`, `str.index`,
//! `str.rindex`, `str.zfill`, `str.join` (Python `str()` of the items is refused like Python
//! does for non-strings) and `list.index`. Methods that mutate (`list.append`, `dict.update`, ...)
//! stay unknown: transformers' `ImmutableSandboxedEnvironment` refuses them too.

use minijinja::value::{from_args, Kwargs, Rest, Value, ValueKind};
use minijinja::{Error, ErrorKind, State};

use crate::pyfmt::{check_built, py_repr, py_str};
use crate::pyobj::{item_tuples, PyTuple};

/// Python's `str.isspace()`: Unicode whitespace plus the ASCII separators U+001C..U+001F.
pub(crate) fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// The unknown-method callback installed on the environment.
pub(crate) fn call_method(
    state: &mut State,
    value: &Value,
    method: &str,
    args: &[Value],
) -> Result<Value, Error> {
    let handled = match value.kind() {
        ValueKind::String => string_method(value.as_str().unwrap_or_default(), method, args)?,
        ValueKind::Map => map_method(value, method, args)?,
        ValueKind::Seq => seq_method(value, method, args)?,
        _ => None,
    };
    match handled {
        Some(v) => Ok(v),
        None => minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args),
    }
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

fn string_method(s: &str, method: &str, args: &[Value]) -> Result<Option<Value>, Error> {
    let rv = match method {
        "format" => {
            let (args, kwargs): (Rest<Value>, Kwargs) = from_args(args)?;
            Value::from(format(s, &args, &kwargs)?)
        }
        "rsplit" => {
            let (sep, maxsplit): (Option<Value>, Option<i64>) = from_args(args)?;
            let sep = sep.filter(|v| !v.is_none());
            Value::from(rsplit(s, sep.as_ref().and_then(|v| v.as_str()), maxsplit)?)
        }
        "partition" | "rpartition" => {
            let (sep,): (&str,) = from_args(args)?;
            if sep.is_empty() {
                return Err(invalid("empty separator"));
            }
            let found = if method == "partition" {
                s.find(sep)
            } else {
                s.rfind(sep)
            };
            let parts = match found {
                Some(i) => [&s[..i], sep, &s[i + sep.len()..]],
                None if method == "partition" => [s, "", ""],
                None => ["", "", s],
            };
            Value::from_object(PyTuple(parts.iter().map(|p| Value::from(*p)).collect()))
        }
        "strip" | "lstrip" | "rstrip" => {
            // Python strips `str.isspace()` characters, which include U+001C..U+001F.
            let (chars,): (Option<&str>,) = from_args(args)?;
            let set: Vec<char> = chars.map(|c| c.chars().collect()).unwrap_or_default();
            let strip = |c: char| match chars {
                Some(_) => set.contains(&c),
                None => is_py_space(c),
            };
            Value::from(match method {
                "strip" => s.trim_matches(strip),
                "lstrip" => s.trim_start_matches(strip),
                _ => s.trim_end_matches(strip),
            })
        }
        "removeprefix" => {
            let (prefix,): (&str,) = from_args(args)?;
            Value::from(s.strip_prefix(prefix).unwrap_or(s))
        }
        "removesuffix" => {
            let (suffix,): (&str,) = from_args(args)?;
            Value::from(s.strip_suffix(suffix).unwrap_or(s))
        }
        "index" | "rindex" => {
            let (sub,): (&str,) = from_args(args)?;
            let found = if method == "index" {
                s.find(sub)
            } else {
                s.rfind(sub)
            };
            match found {
                Some(i) => Value::from(s[..i].chars().count()),
                None => return Err(invalid("substring not found")),
            }
        }
        "find" | "rfind" => {
            // pycompat returns byte offsets; Python counts characters.
            let (sub,): (&str,) = from_args(args)?;
            let found = if method == "find" {
                s.find(sub)
            } else {
                s.rfind(sub)
            };
            Value::from(found.map_or(-1, |i| s[..i].chars().count() as i64))
        }
        "center" | "ljust" | "rjust" => {
            let (width, fill): (usize, Option<&str>) = from_args(args)?;
            let mut fills = fill.unwrap_or(" ").chars();
            let (Some(fill), None) = (fills.next(), fills.next()) else {
                return Err(invalid(
                    "The fill character must be exactly one character long",
                ));
            };
            let pad = width.saturating_sub(s.chars().count());
            check_built(s.len() + pad * fill.len_utf8())?;
            let padding: String = std::iter::repeat_n(fill, pad).collect();
            Value::from(match method {
                "center" => crate::filters::py_center(s, width, fill)?,
                "ljust" => format!("{s}{padding}"),
                _ => format!("{padding}{s}"),
            })
        }
        "zfill" => {
            let (width,): (usize,) = from_args(args)?;
            let len = s.chars().count();
            if len >= width {
                Value::from(s)
            } else {
                let (sign, rest) = match s.chars().next() {
                    Some(c @ ('+' | '-')) => (Some(c), &s[1..]),
                    _ => (None, s),
                };
                check_built(s.len() + (width - len))?;
                let mut out = String::new();
                out.extend(sign);
                out.extend(std::iter::repeat_n('0', width - len));
                out.push_str(rest);
                Value::from(out)
            }
        }
        "join" => {
            let (items,): (&Value,) = from_args(args)?;
            let mut out = String::new();
            for (i, item) in items.try_iter()?.enumerate() {
                let Some(text) = item.as_str() else {
                    return Err(invalid(format!(
                        "sequence item {i}: expected str instance, {} found",
                        item.kind()
                    )));
                };
                if i > 0 {
                    out.push_str(s);
                }
                out.push_str(text);
                check_built(out.len())?;
            }
            Value::from(out)
        }
        _ => return Ok(None),
    };
    Ok(Some(rv))
}

fn map_method(value: &Value, method: &str, args: &[Value]) -> Result<Option<Value>, Error> {
    match method {
        "items" => {
            let () = from_args(args)?;
            Ok(Some(Value::from(item_tuples(value))))
        }
        "get" => {
            let (key, default): (&Value, Option<Value>) = from_args(args)?;
            let found = value
                .as_object()
                .and_then(|o| o.get_value(key))
                .filter(|v| !v.is_undefined());
            Ok(Some(
                found.unwrap_or_else(|| default.unwrap_or(Value::from(()))),
            ))
        }
        _ => Ok(None),
    }
}

fn seq_method(value: &Value, method: &str, args: &[Value]) -> Result<Option<Value>, Error> {
    match method {
        "index" => {
            let (needle,): (&Value,) = from_args(args)?;
            for (i, item) in value.try_iter()?.enumerate() {
                if &item == needle {
                    return Ok(Some(Value::from(i)));
                }
            }
            Err(invalid("value is not in list"))
        }
        _ => Ok(None),
    }
}

/// Python's `str.rsplit(sep=None, maxsplit=-1)`.
fn rsplit(s: &str, sep: Option<&str>, maxsplit: Option<i64>) -> Result<Vec<Value>, Error> {
    let limit = maxsplit.filter(|n| *n >= 0).map(|n| n as usize);
    let mut parts: Vec<&str> = match sep {
        Some("") => return Err(invalid("empty separator")),
        Some(sep) => match limit {
            Some(n) => s.rsplitn(n + 1, sep).collect(),
            None => s.rsplit(sep).collect(),
        },
        None => {
            let mut parts = Vec::new();
            let mut rest = s.trim_end();
            while !rest.is_empty() {
                if limit.is_some_and(|n| parts.len() == n) {
                    parts.push(rest);
                    break;
                }
                match rest.rfind(char::is_whitespace) {
                    Some(i) => {
                        let ws_len = rest[i..].chars().next().map_or(1, char::len_utf8);
                        parts.push(&rest[i + ws_len..]);
                        rest = rest[..i].trim_end();
                    }
                    None => {
                        parts.push(rest);
                        rest = "";
                    }
                }
            }
            parts
        }
    };
    parts.reverse();
    Ok(parts.into_iter().map(Value::from).collect())
}

/// Python's `str.format` for replacement fields without a format spec: `{}`, `{0}`, `{name}`,
/// `{0!r}`, `{0!s}`, and the `{{`/`}}` escapes.
fn format(template: &str, args: &[Value], kwargs: &Kwargs) -> Result<String, Error> {
    let mut out = String::new();
    let mut auto_index = 0usize;
    let mut chars = template.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        match c {
            '{' if chars.peek().map(|p| p.1) == Some('{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek().map(|p| p.1) == Some('}') => {
                chars.next();
                out.push('}');
            }
            '}' => return Err(invalid("Single '}' encountered in format string")),
            '{' => {
                let mut field = String::new();
                loop {
                    match chars.next() {
                        Some((_, '}')) => break,
                        Some((_, ch)) => field.push(ch),
                        None => return Err(invalid("Single '{' encountered in format string")),
                    }
                }
                let (name, conversion) = match field.split_once('!') {
                    Some((n, conv)) => (n.to_string(), Some(conv.to_string())),
                    None => (field, None),
                };
                if name.contains(':') || conversion.as_deref().is_some_and(|c| c.contains(':')) {
                    return Err(invalid("format specs in str.format are not supported"));
                }
                let value = if name.is_empty() {
                    let v = args.get(auto_index).cloned();
                    auto_index += 1;
                    v
                } else if let Ok(i) = name.parse::<usize>() {
                    args.get(i).cloned()
                } else {
                    kwargs.get::<Option<Value>>(&name)?
                };
                let Some(value) = value else {
                    return Err(invalid(format!("Replacement index {name} out of range")));
                };
                match conversion.as_deref() {
                    None | Some("s") => py_str(&value, &mut out)?,
                    Some("r") => py_repr(&value, &mut out, 0)?,
                    Some(other) => {
                        return Err(invalid(format!("Unknown conversion specifier {other}")))
                    }
                }
                check_built(out.len())?;
            }
            c => out.push(c),
        }
    }
    kwargs.assert_all_used()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(v: Vec<Value>) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn rsplit_like_python() {
        assert_eq!(
            strs(rsplit("a,b,c", Some(","), Some(1)).unwrap()),
            ["a,b", "c"]
        );
        assert_eq!(
            strs(rsplit(" a  b c ", None, None).unwrap()),
            ["a", "b", "c"]
        );
        assert_eq!(
            strs(rsplit(" a  b c ", None, Some(1)).unwrap()),
            [" a  b", "c"]
        );
        assert!(rsplit("", None, None).unwrap().is_empty());
    }
}
