//! JSON Schema to GBNF: every string the grammar accepts is a JSON value that validates
//! against the schema (the grammar may accept fewer values than the schema; never more).
//!
//! Supported keywords (each enforced): `type` (one or a list of `null`, `boolean`, `integer`,
//! `number`, `string`, `array`, `object`), `properties`, `required`, `additionalProperties`,
//! `items`, `prefixItems`, `minItems`, `maxItems`, `enum`, `const`, `anyOf`, `oneOf`, `allOf`
//! (object schemas merged), `$ref` (`#`, `#/$defs/...`, `#/definitions/...`; recursion works),
//! `$defs`, `definitions`, `pattern` (see the `regex` module), `format` (`date`, `time`,
//! `date-time`, `uuid`, `email`, `ipv4`), `minLength`, `maxLength`, `minimum`, `maximum`,
//! `exclusiveMinimum`, `exclusiveMaximum`; annotations without effect: `title`,
//! `description`, `$schema`, `$id`, `$comment`, `default`, `examples`, `deprecated`,
//! `readOnly`, `writeOnly`. Any other keyword is a [`SchemaError`] naming it and where it is
//! (a JSON pointer into the schema), never ignored. Rules and choices:
//!
//! - Objects: declared properties in the schema's order, the `required` ones always present,
//!   the others optional. Properties that are not declared are never generated, whatever
//!   `additionalProperties` says (absent and `true` allow them, so the output still
//!   validates; this matches OpenAI's `strict` mode, where it must be `false`). An object
//!   schema without `properties` generates any object, or a map whose values follow
//!   `additionalProperties` when that is a schema (`false`: only `{}`).
//! - `oneOf` is generated as `anyOf`: a value matching several branches would fail `oneOf`,
//!   so keep its branches disjoint (different `const`s or required properties).
//! - `allOf` merges object schemas (`type: object`, `properties`, `required`); anything else
//!   inside it, or `additionalProperties` beside it (JSON Schema applies it to the sibling
//!   `properties` only), is refused.
//! - `enum`/`const` accept `type` beside them (values of other types are dropped).
//! - Integer bounds are exact (digit ranges); number bounds must be whole numbers (a number
//!   with a fractional bound is refused) and bounded numbers are written without exponent.
//! - `maxLength`/`maxItems` above [`MAX_REPETITION`](crate::gbnf::MAX_REPETITION) generate at
//!   most that many; a `minLength`/`minItems` above it is refused.
//! - Whitespace between tokens is bounded (one space, or a newline and up to 20 spaces/tabs).

mod compound;
mod numeric;
mod strings;

use crate::gbnf::{self, GbnfError};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Deepest nesting of schemas (objects in arrays in objects...) compiled.
pub const MAX_SCHEMA_DEPTH: usize = 64;
/// Most values in one `enum`.
pub const MAX_ENUM_VALUES: usize = 1000;
/// Most properties in one object schema.
pub const MAX_PROPERTIES: usize = 500;

const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "$schema",
    "$id",
    "$comment",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
];

const KEYWORDS: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "prefixItems",
    "minItems",
    "maxItems",
    "enum",
    "const",
    "anyOf",
    "oneOf",
    "allOf",
    "$ref",
    "$defs",
    "definitions",
    "pattern",
    "format",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
];

/// Why a schema cannot be compiled. `path` is a JSON pointer into the schema (`""`: its root).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// A keyword outside the supported list.
    #[error("unsupported keyword '{keyword}' at {}", at(path))]
    Unsupported { keyword: String, path: String },
    /// A supported keyword in a combination or with a value that is not supported.
    #[error("unsupported '{keyword}' at {}: {detail}", at(path))]
    UnsupportedValue {
        keyword: String,
        path: String,
        detail: String,
    },
    /// Not a valid schema (a wrong type for a keyword, a `$ref` that does not resolve...).
    #[error("invalid '{keyword}' at {}: {detail}", at(path))]
    Invalid {
        keyword: String,
        path: String,
        detail: String,
    },
    /// The schema would compile to a grammar over the limits.
    #[error("schema too large at {}: {detail}", at(path))]
    Limit { path: String, detail: String },
}

impl SchemaError {
    /// The keyword the error is about (`None` for limits).
    pub fn keyword(&self) -> Option<&str> {
        match self {
            SchemaError::Unsupported { keyword, .. }
            | SchemaError::UnsupportedValue { keyword, .. }
            | SchemaError::Invalid { keyword, .. } => Some(keyword),
            SchemaError::Limit { .. } => None,
        }
    }
}

fn at(path: &str) -> String {
    if path.is_empty() {
        "the schema root".to_string()
    } else {
        path.to_string()
    }
}

/// Why [`GrammarBuilder::build`] or [`schema_to_gbnf`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrammarError {
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// The assembled grammar is not valid GBNF or is over the limits of [`gbnf`].
    #[error(transparent)]
    Gbnf(#[from] GbnfError),
}

/// The GBNF grammar (root rule `root`) of the JSON values that validate against `schema`.
///
/// Errors: [`GrammarError::Schema`] for a keyword or value outside the supported subset (see
/// the module doc) or over the limits; [`GrammarError::Gbnf`] if the grammar is over the
/// limits of [`gbnf`].
pub fn schema_to_gbnf(schema: &Value) -> Result<String, GrammarError> {
    let mut builder = GrammarBuilder::new();
    let rule = builder.add_schema("", schema)?;
    builder.add_rule("root", &rule);
    builder.build("root")
}

/// A GBNF string literal that matches exactly `s` (escapes for `"`, `\`, controls).
pub fn gbnf_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\x7F' => out.push_str(&format!("\\x{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Names of the shared rules for JSON primitives, and their right-hand sides.
const PRIMITIVES: &[(&str, &str)] = &[
    ("ws", r#"| " " | "\n" [ \t]{0,20}"#),
    (
        "json-value",
        "json-object | json-array | json-string | json-number | \"true\" | \"false\" | \"null\"",
    ),
    (
        "json-object",
        r#""{" ws ( json-string ws ":" ws json-value ws ( "," ws json-string ws ":" ws json-value ws )* )? "}""#,
    ),
    (
        "json-array",
        r#""[" ws ( json-value ws ( "," ws json-value ws )* )? "]""#,
    ),
    ("json-string", r#""\"" json-char* "\"""#),
    (
        "json-char",
        r#"[^"\\\x7F\x00-\x1F] | "\\" ( ["\\/bfnrt] | "u" ( [0-9a-cA-Ce-fE-F] [0-9a-fA-F]{3} | [dD] [0-7] [0-9a-fA-F]{2} ) )"#,
    ),
    (
        "json-number",
        r#""-"? ( "0" | [1-9] [0-9]{0,15} ) ( "." [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,2} )?"#,
    ),
    ("json-integer", r#""-"? ( "0" | [1-9] [0-9]{0,15} )"#),
    ("json-boolean", r#""true" | "false""#),
    ("json-null", r#""null""#),
];

/// Assembles one GBNF grammar from JSON schemas and hand-written rules. Rule names are
/// `[a-zA-Z0-9-]` (llama.cpp's); identical right-hand sides share one rule.
#[derive(Debug, Default)]
pub struct GrammarBuilder {
    rules: Vec<(String, String)>,
    index: HashMap<String, usize>,
    by_rhs: HashMap<String, String>,
    bytes: usize,
}

impl GrammarBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the rules for values matching `schema` (its `$defs`/`$ref` resolved within
    /// `schema`) and returns the rule name to reference. `prefix` keeps the rule names of
    /// several schemas apart (it is reduced to `[a-zA-Z0-9-]`).
    ///
    /// Errors: [`SchemaError`] naming the keyword and its JSON pointer path.
    pub fn add_schema(&mut self, prefix: &str, schema: &Value) -> Result<String, SchemaError> {
        let mut prefix = sanitize(prefix);
        if prefix.is_empty() {
            prefix = "schema".into();
        }
        let mut c = Compiler {
            b: self,
            root: schema,
            prefix,
            refs: HashMap::new(),
            depth: 0,
        };
        c.visit(schema, "")
    }

    /// Adds (or replaces) a rule with the caller's own GBNF right-hand side. Checked in
    /// [`build`](Self::build).
    pub fn add_rule(&mut self, name: &str, rhs: &str) {
        self.bytes += name.len() + rhs.len() + 6;
        match self.index.get(name) {
            Some(&i) => self.rules[i].1 = rhs.to_string(),
            None => {
                self.index.insert(name.to_string(), self.rules.len());
                self.rules.push((name.to_string(), rhs.to_string()));
            }
        }
    }

    /// Rule name for any JSON value (whitespace between tokens bounded).
    pub fn any_value(&mut self) -> String {
        self.primitive("json-value")
    }

    /// Rule name for any JSON object.
    pub fn any_object(&mut self) -> String {
        self.primitive("json-object")
    }

    /// The whole grammar text, validated with [`gbnf::validate`] against `root`.
    ///
    /// Errors: [`GrammarError::Gbnf`] if it is not valid (a rule added by
    /// [`add_rule`](Self::add_rule) that is wrong, a missing root) or over the limits.
    pub fn build(self, root: &str) -> Result<String, GrammarError> {
        if self.bytes > gbnf::MAX_GRAMMAR_BYTES {
            return Err(GbnfError::Limit {
                what: format!("about {} bytes of grammar text", self.bytes),
                limit: gbnf::MAX_GRAMMAR_BYTES as u64,
            }
            .into());
        }
        let mut text = String::with_capacity(self.bytes);
        for (name, rhs) in &self.rules {
            text.push_str(name);
            text.push_str(" ::= ");
            text.push_str(rhs);
            text.push('\n');
        }
        gbnf::validate(&text, root)?;
        Ok(text)
    }

    /// Adds the named primitive and those it uses; returns its name.
    fn primitive(&mut self, name: &str) -> String {
        if !self.index.contains_key(name) {
            if let Some((_, rhs)) = PRIMITIVES.iter().find(|(n, _)| *n == name) {
                self.add_rule(name, rhs);
                for word in rhs.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
                    if word != name && PRIMITIVES.iter().any(|(n, _)| *n == word) {
                        self.primitive(word);
                    }
                }
            }
        }
        name.to_string()
    }

    /// A rule with `rhs` (an existing one when the same `rhs` was added before).
    fn rule(&mut self, hint: &str, rhs: String, path: &str) -> Result<String, SchemaError> {
        if let Some(name) = self.by_rhs.get(&rhs) {
            return Ok(name.clone());
        }
        let name = self.reserve(hint, path)?;
        self.by_rhs.insert(rhs.clone(), name.clone());
        self.define(&name, rhs);
        Ok(name)
    }

    /// A fresh rule name from `hint`, defined later with [`define`](Self::define).
    fn reserve(&mut self, hint: &str, path: &str) -> Result<String, SchemaError> {
        if self.rules.len() >= gbnf::MAX_RULES || self.bytes > gbnf::MAX_GRAMMAR_BYTES {
            return Err(SchemaError::Limit {
                path: path.to_string(),
                detail: format!(
                    "more than {} rules or {} bytes of grammar",
                    gbnf::MAX_RULES,
                    gbnf::MAX_GRAMMAR_BYTES
                ),
            });
        }
        let base = sanitize(hint);
        let taken = |n: &str| self.index.contains_key(n) || PRIMITIVES.iter().any(|(p, _)| *p == n);
        let mut name = base.clone();
        let mut n = 2;
        while taken(&name) || name == "root" {
            name = format!("{base}-{n}");
            n += 1;
        }
        self.add_rule(&name, "");
        Ok(name)
    }

    fn define(&mut self, name: &str, rhs: String) {
        self.add_rule(name, &rhs);
    }
}

/// `[a-zA-Z0-9-]` only (other characters become `-`), at most 40 characters.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(40)
        .collect()
}

/// A JSON pointer segment (`~` and `/` escaped).
fn seg(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

pub(crate) struct Compiler<'a, 'b> {
    b: &'b mut GrammarBuilder,
    root: &'a Value,
    prefix: String,
    /// `$ref` target pointer to its rule.
    refs: HashMap<String, String>,
    depth: usize,
}

pub(crate) fn invalid(keyword: &str, path: &str, detail: impl Into<String>) -> SchemaError {
    SchemaError::Invalid {
        keyword: keyword.to_string(),
        path: path.to_string(),
        detail: detail.into(),
    }
}

pub(crate) fn unsupported(keyword: &str, path: &str, detail: impl Into<String>) -> SchemaError {
    SchemaError::UnsupportedValue {
        keyword: keyword.to_string(),
        path: path.to_string(),
        detail: detail.into(),
    }
}

/// Keywords of `map` other than annotations and definitions.
fn constraints(map: &Map<String, Value>) -> impl Iterator<Item = &String> {
    map.keys().filter(|k| {
        !ANNOTATIONS.contains(&k.as_str()) && k.as_str() != "$defs" && k.as_str() != "definitions"
    })
}

impl<'a> Compiler<'a, '_> {
    fn hint(&self, path: &str) -> String {
        match path.rsplit('/').next() {
            Some(last) if !path.is_empty() => format!("{}-{}", self.prefix, last),
            _ => self.prefix.clone(),
        }
    }

    fn rule(&mut self, path: &str, rhs: String) -> Result<String, SchemaError> {
        let hint = self.hint(path);
        self.b.rule(&hint, rhs, path)
    }

    /// The rule for values matching `schema`, found at `path`.
    fn visit(&mut self, schema: &'a Value, path: &str) -> Result<String, SchemaError> {
        if self.depth >= MAX_SCHEMA_DEPTH {
            return Err(SchemaError::Limit {
                path: path.to_string(),
                detail: format!("nested deeper than {MAX_SCHEMA_DEPTH}"),
            });
        }
        self.depth += 1;
        let out = self.visit_inner(schema, path);
        self.depth -= 1;
        out
    }

    fn visit_inner(&mut self, schema: &'a Value, path: &str) -> Result<String, SchemaError> {
        let map = match schema {
            Value::Bool(true) => return Ok(self.b.any_value()),
            Value::Bool(false) => {
                return Err(invalid("false", path, "the schema false matches nothing"))
            }
            Value::Object(map) => map,
            _ => {
                return Err(invalid(
                    "schema",
                    path,
                    "a schema must be an object or a boolean",
                ))
            }
        };
        for key in map.keys() {
            if !KEYWORDS.contains(&key.as_str()) && !ANNOTATIONS.contains(&key.as_str()) {
                return Err(SchemaError::Unsupported {
                    keyword: key.clone(),
                    path: path.to_string(),
                });
            }
        }
        for key in ["$defs", "definitions"] {
            if map.get(key).is_some_and(|d| !d.is_object()) {
                return Err(invalid(key, path, "must be an object"));
            }
        }
        if let Some(target) = map.get("$ref") {
            self.only_beside("$ref", map, &[], path)?;
            return self.reference(target, path);
        }
        if map.contains_key("allOf") {
            return self.all_of(map, path);
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(branches) = map.get(key) {
                self.only_beside(key, map, &[], path)?;
                let list = branches
                    .as_array()
                    .filter(|l| !l.is_empty())
                    .ok_or_else(|| invalid(key, path, "must be a non-empty array"))?;
                let mut alts = Vec::new();
                for (i, branch) in list.iter().enumerate() {
                    alts.push(self.visit(branch, &format!("{path}/{key}/{i}"))?);
                }
                return self.rule(path, alts.join(" | "));
            }
        }
        if map.contains_key("enum") || map.contains_key("const") {
            return self.enumeration(map, path);
        }
        let types = self.types(map, path)?;
        let mut alts = Vec::new();
        for t in types {
            let rule = match t {
                "null" => self.b.primitive("json-null"),
                "boolean" => self.b.primitive("json-boolean"),
                "integer" => self.integer(map, path)?,
                "number" => self.number(map, path)?,
                "string" => self.string(map, path)?,
                "array" => self.array(map, path)?,
                "object" => self.object(map, path)?,
                _ => self.b.any_value(),
            };
            alts.push(rule);
        }
        if alts.len() == 1 {
            Ok(alts.remove(0))
        } else {
            self.rule(path, alts.join(" | "))
        }
    }

    /// Refuses constraints beside `keyword` other than `allowed`.
    fn only_beside(
        &self,
        keyword: &str,
        map: &Map<String, Value>,
        allowed: &[&str],
        path: &str,
    ) -> Result<(), SchemaError> {
        match constraints(map).find(|k| k.as_str() != keyword && !allowed.contains(&k.as_str())) {
            Some(other) => Err(unsupported(
                other,
                path,
                format!("'{other}' beside '{keyword}' is not supported"),
            )),
            None => Ok(()),
        }
    }

    /// The listed types, or those the constraints imply when `type` is absent (any value
    /// when there are none).
    fn types(
        &self,
        map: &Map<String, Value>,
        path: &str,
    ) -> Result<Vec<&'static str>, SchemaError> {
        const ALL: [&str; 7] = [
            "null", "boolean", "integer", "number", "string", "array", "object",
        ];
        let known = |s: &str, p: &str| {
            ALL.iter()
                .find(|t| **t == s)
                .copied()
                .ok_or_else(|| invalid("type", p, format!("unknown type '{s}'")))
        };
        match map.get("type") {
            Some(Value::String(s)) => Ok(vec![known(s, path)?]),
            Some(Value::Array(list)) if !list.is_empty() => {
                let mut out = Vec::new();
                for t in list {
                    let t = known(t.as_str().unwrap_or(""), path)?;
                    if !out.contains(&t) {
                        out.push(t);
                    }
                }
                // `integer` is contained in `number`.
                if out.contains(&"number") {
                    out.retain(|t| *t != "integer");
                }
                Ok(out)
            }
            Some(_) => Err(invalid(
                "type",
                path,
                "must be a type name or a non-empty list of them",
            )),
            None => {
                let has = |keys: &[&str]| keys.iter().any(|k| map.contains_key(*k));
                Ok(
                    if has(&["properties", "required", "additionalProperties"]) {
                        vec!["object"]
                    } else if has(&["items", "prefixItems", "minItems", "maxItems"]) {
                        vec!["array"]
                    } else if has(&["pattern", "format", "minLength", "maxLength"]) {
                        vec!["string"]
                    } else if has(&["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"]) {
                        vec!["number"]
                    } else {
                        vec!["any"]
                    },
                )
            }
        }
    }

    fn reference(&mut self, target: &Value, path: &str) -> Result<String, SchemaError> {
        let Some(r) = target.as_str() else {
            return Err(invalid("$ref", path, "must be a string"));
        };
        let Some(pointer) = r.strip_prefix('#') else {
            return Err(unsupported(
                "$ref",
                path,
                format!("'{r}': only references inside the schema ('#...') are supported"),
            ));
        };
        if let Some(rule) = self.refs.get(pointer) {
            return Ok(rule.clone());
        }
        let root = self.root;
        let Some(schema) = root.pointer(pointer) else {
            return Err(invalid("$ref", path, format!("'{r}' does not resolve")));
        };
        let hint = self.hint(pointer);
        let name = self.b.reserve(&hint, path)?;
        self.refs.insert(pointer.to_string(), name.clone());
        let body = self.visit(schema, pointer)?;
        self.b.define(&name, body);
        Ok(name)
    }

    fn enumeration(
        &mut self,
        map: &'a Map<String, Value>,
        path: &str,
    ) -> Result<String, SchemaError> {
        let (keyword, values): (&str, Vec<&Value>) = match (map.get("const"), map.get("enum")) {
            (Some(_), Some(_)) => {
                return Err(unsupported(
                    "const",
                    path,
                    "'const' beside 'enum' is not supported",
                ))
            }
            (Some(c), None) => ("const", vec![c]),
            (None, Some(Value::Array(list))) if !list.is_empty() => ("enum", list.iter().collect()),
            _ => return Err(invalid("enum", path, "must be a non-empty array")),
        };
        self.only_beside(keyword, map, &["type"], path)?;
        if values.len() > MAX_ENUM_VALUES {
            return Err(SchemaError::Limit {
                path: format!("{path}/enum"),
                detail: format!("{} values (at most {MAX_ENUM_VALUES})", values.len()),
            });
        }
        let types = match map.get("type") {
            Some(_) => Some(self.types(map, path)?),
            None => None,
        };
        let fits = |v: &Value| {
            let Some(types) = &types else { return true };
            types.iter().any(|t| match *t {
                "null" => v.is_null(),
                "boolean" => v.is_boolean(),
                "integer" => v.is_i64() || v.is_u64(),
                "number" => v.is_number(),
                "string" => v.is_string(),
                "array" => v.is_array(),
                "object" => v.is_object(),
                _ => false,
            })
        };
        let mut alts: Vec<String> = Vec::new();
        for v in values.into_iter().filter(|v| fits(v)) {
            let lit = gbnf_literal(&v.to_string());
            if !alts.contains(&lit) {
                alts.push(lit);
            }
        }
        if alts.is_empty() {
            return Err(invalid(keyword, path, "no value is of the given 'type'"));
        }
        self.rule(path, alts.join(" | "))
    }
}

/// A non-negative integer keyword (`minItems`...).
pub(crate) fn count(
    map: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<u64>, SchemaError> {
    match map.get(key) {
        None => Ok(None),
        Some(v) => match v.as_u64().or_else(|| {
            v.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 1e15)
                .map(|f| f as u64)
        }) {
            Some(n) => Ok(Some(n)),
            None => Err(invalid(key, path, "must be a non-negative integer")),
        },
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
