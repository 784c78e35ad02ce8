//! The minijinja environment, configured the way transformers configures jinja2 for chat
//! templates: `ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)`, its
//! `tojson` override, the `raise_exception` and `strftime_now` globals, and the filters and
//! tests whose minijinja versions print or decide differently from jinja2.

use std::fmt;

use minijinja::value::{Value, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, UndefinedBehavior};

use crate::pyfmt::py_str;
use crate::strftime::DateTime;
use crate::{filters, methods, Limits};

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
pub(crate) fn environment(limits: &Limits) -> Result<Environment<'static>, Error> {
    let mut env = Environment::new();
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(false)
            .build()?,
    );
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

    env.add_filter("tojson", filters::tojson);
    env.add_filter("string", filters::string);
    env.add_filter("join", filters::join);
    env.add_filter("indent", filters::indent);
    env.add_filter("length", filters::length);
    env.add_filter("count", filters::length);
    env.add_filter("upper", |v: &Value| {
        filters::text(v).map(|s| s.to_uppercase())
    });
    env.add_filter("lower", |v: &Value| {
        filters::text(v).map(|s| s.to_lowercase())
    });
    env.add_filter("capitalize", |v: &Value| {
        filters::text(v).map(|s| filters::capitalize(&s))
    });
    env.add_filter("title", |v: &Value| {
        filters::text(v).map(|s| filters::title(&s))
    });
    env.add_filter("trim", filters::trim);
    env.add_filter("replace", filters::replace);
    env.add_filter("attr", filters::attr);
    env.add_filter("dictsort", filters::dictsort);
    env.add_filter("int", filters::int);
    env.add_filter("float", filters::float);
    env.add_filter("wordcount", filters::wordcount);
    env.add_filter("center", filters::center);
    env.add_filter("truncate", filters::truncate);
    // jinja2's `pprint` is `pformat`, which is `repr` for anything shorter than a line.
    env.add_filter("pprint", |v: &Value| -> Result<String, Error> {
        let mut out = String::new();
        crate::pyfmt::py_repr(v, &mut out, 0)?;
        Ok(out)
    });
    env.add_filter("items", filters::items);
    env.add_test("sequence", is_sequence);
    env.add_test("iterable", is_iterable);
    env.add_test("number", |v: &Value| {
        matches!(v.kind(), ValueKind::Number | ValueKind::Bool)
    });
    Ok(env)
}

/// transformers' `raise_exception(message)`: fails the render with `str(message)`.
fn raise_exception(msg: &Value) -> Result<Value, Error> {
    let mut text = String::new();
    py_str(msg, &mut text)?;
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
        // Every item lies between `start` and `stop`, so it fits an i64; the arithmetic is done
        // in i128 because `step * i` alone may not.
        (0..len).map(move |i| {
            let item = i128::from(start) + i128::from(step) * i as i128;
            Value::from(i64::try_from(item).unwrap_or(start))
        })
    }))
}
/// jinja2's `iterable` test: `iter(value)` succeeds, so strings, lists, dicts and undefined
/// values, but not `None` or numbers.
fn is_iterable(value: &Value) -> bool {
    match value.kind() {
        ValueKind::None | ValueKind::Bool | ValueKind::Number => false,
        ValueKind::Undefined => true,
        _ => value.try_iter().is_ok(),
    }
}
/// jinja2's `sequence` test: anything with `len()` and `__getitem__`, so strings, lists, dicts
/// and (as jinja2's `Undefined` has both) undefined values.
fn is_sequence(value: &Value) -> bool {
    matches!(
        value.kind(),
        ValueKind::String | ValueKind::Seq | ValueKind::Map | ValueKind::Undefined
    )
}
