//! Python dicts and tuples as template values.
//!
//! In jinja2 `d.items()` finds the dict method even when the dict has an `"items"` key (JSON
//! schemas of array parameters do), because attribute lookup comes before item lookup. A plain
//! minijinja map looks the key up first and then fails with "object is not callable". The
//! request's JSON (messages, tools, extra kwargs) is therefore converted into [`PyDict`]s, which
//! answer the Python dict methods before their keys. [`PyTuple`] is what `dict.items()` and
//! `str.partition()` return, so that printing them shows `('a', 1)` as Python does.

use std::sync::Arc;

use minijinja::value::{Enumerator, Object, ObjectRepr, Value};
use minijinja::{Error, ErrorKind, State};

/// The dict methods that take precedence over keys of the same name.
const DICT_METHODS: &[&str] = &["items", "keys", "values", "get"];

/// A JSON object: a minijinja map with Python's method-before-key lookup.
#[derive(Debug)]
pub(crate) struct PyDict {
    /// A minijinja map value holding the entries in insertion order.
    map: Value,
}

impl Object for PyDict {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.map.as_object()?.get_value(key)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        match self.map.try_iter() {
            Ok(keys) => Enumerator::Values(keys.collect()),
            Err(_) => Enumerator::Empty,
        }
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        self.map.len()
    }

    fn call_method(
        self: &Arc<Self>,
        state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        if DICT_METHODS.contains(&method) {
            return crate::methods::call_method(state, &self.map, method, args);
        }
        match self.get_value(&Value::from(method)) {
            Some(value) => value.call(state, args),
            None => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }
}

/// A Python tuple: a sequence that prints with parentheses.
#[derive(Debug)]
pub(crate) struct PyTuple(pub(crate) Vec<Value>);

impl Object for PyTuple {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.0.get(key.as_usize()?).cloned()
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Seq(self.0.len())
    }
}

/// A mapping's entries as `(key, value)` tuples, as Python's `dict.items()` yields them.
pub(crate) fn item_tuples(map: &Value) -> Vec<Value> {
    map.as_object()
        .and_then(|o| o.try_iter_pairs())
        .map(|pairs| {
            pairs
                .map(|(k, v)| Value::from_object(PyTuple(vec![k, v])))
                .collect()
        })
        .unwrap_or_default()
}

/// Converts request JSON into template values, objects becoming [`PyDict`]s.
pub(crate) fn from_json(value: &serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::from(()),
        serde_json::Value::Bool(b) => Value::from(*b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::String(s) => Value::from(s.as_str()),
        serde_json::Value::Array(items) => {
            Value::from(items.iter().map(from_json).collect::<Vec<_>>())
        }
        serde_json::Value::Object(map) => Value::from_object(PyDict {
            map: Value::from_pairs(
                map.iter()
                    .map(|(k, v)| (Value::from(k.as_str()), from_json(v))),
            ),
        }),
    }
}
