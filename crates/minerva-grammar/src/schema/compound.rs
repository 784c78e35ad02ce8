//! Objects (`properties`, `required`, `additionalProperties`, `allOf` merging) and arrays
//! (`items`, `prefixItems`, `minItems`, `maxItems`); the rules are in the module doc of
//! [`schema`](super).

use super::{
    constraints, count, gbnf_literal, invalid, seg, unsupported, Compiler, SchemaError,
    MAX_PROPERTIES, MAX_SCHEMA_DEPTH,
};
use crate::gbnf::MAX_REPETITION;
use serde_json::{Map, Value};

impl<'a> Compiler<'a, '_> {
    pub(super) fn all_of(
        &mut self,
        map: &'a Map<String, Value>,
        path: &str,
    ) -> Result<String, SchemaError> {
        let list = map
            .get("allOf")
            .and_then(Value::as_array)
            .filter(|l| !l.is_empty())
            .ok_or_else(|| invalid("allOf", path, "must be a non-empty array"))?;
        if map.contains_key("additionalProperties") {
            return Err(unsupported(
                "additionalProperties",
                path,
                "'additionalProperties' beside 'allOf' applies to the sibling 'properties' only; it is not supported",
            ));
        }
        let mut branches: Vec<(&'a Map<String, Value>, String)> = vec![(map, path.to_string())];
        for (i, branch) in list.iter().enumerate() {
            let mut branch_path = format!("{path}/allOf/{i}");
            let mut schema = branch;
            // Follow `$ref`s (bounded: a cycle of references is refused).
            let mut hops = 0;
            while let Some(r) = schema.get("$ref") {
                self.only_beside_value(schema, "$ref", &branch_path)?;
                let pointer = r
                    .as_str()
                    .and_then(|r| r.strip_prefix('#'))
                    .ok_or_else(|| {
                        unsupported(
                            "$ref",
                            &branch_path,
                            "only references inside the schema ('#...')",
                        )
                    })?;
                schema = self.root.pointer(pointer).ok_or_else(|| {
                    invalid(
                        "$ref",
                        &branch_path,
                        format!("'#{pointer}' does not resolve"),
                    )
                })?;
                branch_path = pointer.to_string();
                hops += 1;
                if hops > MAX_SCHEMA_DEPTH {
                    return Err(invalid("$ref", &branch_path, "references form a cycle"));
                }
            }
            let m = schema.as_object().ok_or_else(|| {
                unsupported("allOf", &branch_path, "only object schemas are merged")
            })?;
            branches.push((m, branch_path));
        }
        let mut props: Vec<(&'a str, &'a Value, String)> = Vec::new();
        let mut required: Vec<&'a str> = Vec::new();
        for (m, p) in &branches {
            for key in constraints(m) {
                match key.as_str() {
                    "allOf" if std::ptr::eq(*m, map) => {}
                    "type" if m.get("type").and_then(Value::as_str) == Some("object") => {}
                    "properties" => {
                        let obj = m["properties"]
                            .as_object()
                            .ok_or_else(|| invalid("properties", p, "must be an object"))?;
                        for (name, schema) in obj {
                            if let Some(existing) = props.iter().find(|(n, _, _)| *n == name.as_str()) {
                                if existing.1 != schema {
                                    return Err(unsupported(
                                        "allOf",
                                        p,
                                        format!("property '{name}' is declared differently in several branches"),
                                    ));
                                }
                                continue;
                            }
                            props.push((name, schema, format!("{p}/properties/{}", seg(name))));
                        }
                    }
                    "required" => required.extend(required_list(m, p)?),
                    other => {
                        return Err(unsupported(
                            other,
                            p,
                            format!("'{other}' inside 'allOf' is not supported (only object schemas with type, properties and required are merged)"),
                        ))
                    }
                }
            }
        }
        self.object_rule(&props, &required, None, path)
    }

    fn only_beside_value(
        &self,
        schema: &Value,
        keyword: &str,
        path: &str,
    ) -> Result<(), SchemaError> {
        match schema.as_object() {
            Some(m) => self.only_beside(keyword, m, &[], path),
            None => Ok(()),
        }
    }

    pub(super) fn object(
        &mut self,
        map: &'a Map<String, Value>,
        path: &str,
    ) -> Result<String, SchemaError> {
        let mut props: Vec<(&'a str, &'a Value, String)> = Vec::new();
        if let Some(p) = map.get("properties") {
            let obj = p
                .as_object()
                .ok_or_else(|| invalid("properties", path, "must be an object"))?;
            for (name, schema) in obj {
                props.push((name, schema, format!("{path}/properties/{}", seg(name))));
            }
        }
        let required = required_list(map, path)?;
        self.object_rule(&props, &required, map.get("additionalProperties"), path)
    }

    /// Declared properties in order (required ones always present); see the module doc for
    /// what happens to undeclared ones.
    fn object_rule(
        &mut self,
        props: &[(&'a str, &'a Value, String)],
        required: &[&'a str],
        additional: Option<&'a Value>,
        path: &str,
    ) -> Result<String, SchemaError> {
        if props.len() > MAX_PROPERTIES {
            return Err(SchemaError::Limit {
                path: path.to_string(),
                detail: format!("{} properties (at most {MAX_PROPERTIES})", props.len()),
            });
        }
        let ws = self.b.primitive("ws");
        if props.is_empty() && required.is_empty() {
            return match additional {
                None | Some(Value::Bool(true)) => Ok(self.b.any_object()),
                Some(Value::Bool(false)) => self.rule(path, format!("\"{{\" {ws} \"}}\"")),
                Some(schema) => {
                    let value = self.visit(schema, &format!("{path}/additionalProperties"))?;
                    let key = self.b.primitive("json-string");
                    let kv = format!("{key} {ws} \":\" {ws} {value} {ws}");
                    self.rule(
                        path,
                        format!("\"{{\" {ws} ( {kv} ( \",\" {ws} {kv} )* )? \"}}\""),
                    )
                }
            };
        }
        if let Some(a) = additional {
            if !a.is_boolean() && !a.is_object() {
                return Err(invalid(
                    "additionalProperties",
                    path,
                    "must be a boolean or a schema",
                ));
            }
        }
        // Required names without a declared schema take any value, after the declared ones.
        let mut all: Vec<(&str, Option<&'a Value>, String)> = props
            .iter()
            .map(|(n, s, p)| (*n, Some(*s), p.clone()))
            .collect();
        for name in required {
            if !all.iter().any(|(n, _, _)| n == name) {
                all.push((name, None, format!("{path}/required")));
            }
        }
        let mut kvs: Vec<(String, bool)> = Vec::new();
        for (name, schema, p) in &all {
            let value = match schema {
                Some(s) => self.visit(s, p)?,
                None => self.b.any_value(),
            };
            let key = gbnf_literal(&Value::String(name.to_string()).to_string());
            kvs.push((
                format!("{key} {ws} \":\" {ws} {value} {ws}"),
                required.contains(name),
            ));
        }
        // tail[i]: properties i.. after at least one was written; head[i]: before any was.
        let mut tail: Option<String> = None;
        let mut head: Option<String> = None;
        for (i, (kv, req)) in kvs.iter().enumerate().rev() {
            let after = tail.as_ref().map(|t| format!(" {t}")).unwrap_or_default();
            let first = format!("{kv}{after}");
            let head_rhs = match (&head, *req) {
                (_, true) => first,
                (None, false) => format!("( {first} )?"),
                (Some(h), false) => format!("{first} | {h}"),
            };
            head = Some(self.rule(&format!("{path}/h{i}"), head_rhs)?);
            if i > 0 {
                let item = format!("\",\" {ws} {kv}");
                let tail_rhs = if *req {
                    format!("{item}{after}")
                } else {
                    format!("( {item} )?{after}")
                };
                tail = Some(self.rule(&format!("{path}/t{i}"), tail_rhs)?);
            }
        }
        let head = head.unwrap_or_default();
        self.rule(path, format!("\"{{\" {ws} {head} \"}}\""))
    }

    pub(super) fn array(
        &mut self,
        map: &'a Map<String, Value>,
        path: &str,
    ) -> Result<String, SchemaError> {
        let min = count(map, "minItems", path)?.unwrap_or(0);
        let max = count(map, "maxItems", path)?;
        if max.is_some_and(|m| m < min) {
            return Err(invalid("maxItems", path, "is below minItems"));
        }
        let ws = self.b.primitive("ws");
        let mut prefix: Vec<String> = Vec::new();
        if let Some(list) = map.get("prefixItems") {
            let list = list
                .as_array()
                .ok_or_else(|| invalid("prefixItems", path, "must be an array"))?;
            for (i, s) in list.iter().enumerate() {
                prefix.push(self.visit(s, &format!("{path}/prefixItems/{i}"))?);
            }
        }
        let k = prefix.len() as u64;
        if max.is_some_and(|m| m < k) {
            return Err(unsupported(
                "maxItems",
                path,
                "'maxItems' below the number of 'prefixItems' is not supported",
            ));
        }
        let items = match map.get("items") {
            Some(Value::Bool(false)) => None,
            Some(Value::Array(_)) => {
                return Err(unsupported(
                    "items",
                    path,
                    "an array of schemas (use 'prefixItems')",
                ))
            }
            Some(s) => Some(self.visit(s, &format!("{path}/items"))?),
            None if prefix.is_empty() => Some(self.b.any_value()),
            None => None,
        };
        let extra_min = min.saturating_sub(k);
        let extra_max = match (&items, max) {
            (None, _) => Some(extra_min),
            (Some(_), Some(m)) => Some(m - k),
            (Some(_), None) => None,
        };
        if extra_min > 0 && items.is_none() && map.get("items") == Some(&Value::Bool(false)) {
            return Err(invalid(
                "minItems",
                path,
                "is above the number of 'prefixItems' while 'items' is false",
            ));
        }
        let item_rule = items.unwrap_or_else(|| self.b.any_value());
        if extra_min > u64::from(MAX_REPETITION) {
            return Err(SchemaError::Limit {
                path: format!("{path}/minItems"),
                detail: format!("{min} items (at most {MAX_REPETITION})"),
            });
        }
        let extra_max = extra_max.map(|m| m.min(u64::from(MAX_REPETITION)));
        // The elements: the prefix items, then `extra_min..=extra_max` items, comma-separated.
        let mut elems: Vec<String> = prefix.iter().map(|p| format!("{p} {ws}")).collect();
        let sep = format!("\",\" {ws}");
        let item = format!("{item_rule} {ws}");
        let body = if extra_max == Some(0) {
            elems.join(&format!(" {sep} "))
        } else {
            let rep = |lo: u64, hi: Option<u64>| match hi {
                Some(h) if h == lo => format!("{{{lo}}}"),
                Some(h) => format!("{{{lo},{h}}}"),
                None => format!("{{{lo},}}"),
            };
            if elems.is_empty() {
                // item ( "," item ){extra_min-1, extra_max-1}, optional when extra_min is 0.
                let more = format!(
                    "( {sep} {item} ){}",
                    rep(extra_min.saturating_sub(1), extra_max.map(|m| m - 1))
                );
                let list = format!("{item} {more}");
                if extra_min == 0 {
                    format!("( {list} )?")
                } else {
                    list
                }
            } else {
                elems.push(format!("( {sep} {item} ){}", rep(extra_min, extra_max)));
                let last = elems.pop().unwrap_or_default();
                format!("{} {last}", elems.join(&format!(" {sep} ")))
            }
        };
        self.rule(path, format!("\"[\" {ws} {body} \"]\""))
    }
}

/// `required`: a list of property names.
fn required_list<'a>(map: &'a Map<String, Value>, path: &str) -> Result<Vec<&'a str>, SchemaError> {
    match map.get("required") {
        None => Ok(Vec::new()),
        Some(Value::Array(list)) => list
            .iter()
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| invalid("required", path, "must list property names"))
            })
            .collect(),
        Some(_) => Err(invalid(
            "required",
            path,
            "must be an array of property names",
        )),
    }
}
