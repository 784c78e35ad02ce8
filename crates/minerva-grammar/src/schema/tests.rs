use super::*;
use crate::matcher::accepts;
use serde_json::json;

fn grammar(schema: Value) -> String {
    schema_to_gbnf(&schema).unwrap_or_else(|e| panic!("{schema}: {e}"))
}

fn ok(schema: &Value, text: &str) -> bool {
    let g = schema_to_gbnf(schema).unwrap_or_else(|e| panic!("{schema}: {e}"));
    accepts(&g, "root", text)
}

fn error(schema: Value) -> String {
    match schema_to_gbnf(&schema) {
        Err(e) => e.to_string(),
        Ok(g) => panic!("{schema} compiled:\n{g}"),
    }
}

#[test]
fn primitives() {
    let s = json!({"type": "boolean"});
    assert!(ok(&s, "true") && ok(&s, "false") && !ok(&s, "null"));
    let s = json!({"type": "null"});
    assert!(ok(&s, "null") && !ok(&s, "0"));
    let s = json!({"type": ["string", "null"]});
    assert!(ok(&s, "\"x\"") && ok(&s, "null") && !ok(&s, "1"));
    let s = json!({"type": "number"});
    for t in ["0", "-1.5", "3e10", "12.25E-3"] {
        assert!(ok(&s, t), "{t}");
    }
    assert!(!ok(&s, "01") && !ok(&s, "1.") && !ok(&s, "-"));
    let s = json!({"type": "integer"});
    assert!(ok(&s, "-42") && !ok(&s, "4.2") && !ok(&s, "-0x"));
    let s = json!({});
    assert!(ok(&s, r#"{"a": [1, {"b": null}]}"#) && ok(&s, "\"s\""));
    assert!(ok(&json!(true), "[]"));
}

#[test]
fn strings_and_lengths() {
    let s = json!({"type": "string", "minLength": 2, "maxLength": 3});
    assert!(ok(&s, r#""ab""#) && ok(&s, r#""a\nb""#) && ok(&s, r#""é\"x""#));
    assert!(!ok(&s, r#""a""#) && !ok(&s, r#""abcd""#));
    // No raw controls, no surrogate escapes.
    let s = json!({"type": "string"});
    assert!(!ok(&s, "\"a\nb\"") && !ok(&s, r#""\ud83d""#) && ok(&s, r#""\u00e9""#));
    let s = json!({"type": "string", "maxLength": 5000});
    grammar(s);
    assert!(error(json!({"type": "string", "minLength": 5000})).contains("too large"));
}

#[test]
fn integer_ranges_are_exact() {
    let cases: &[(Value, i64, i64)] = &[
        (
            json!({"type": "integer", "minimum": 0, "maximum": 100}),
            0,
            100,
        ),
        (
            json!({"type": "integer", "minimum": 7, "maximum": 1234}),
            7,
            1234,
        ),
        (
            json!({"type": "integer", "minimum": -50, "maximum": 19}),
            -50,
            19,
        ),
        (
            json!({"type": "integer", "minimum": -999, "maximum": -90}),
            -999,
            -90,
        ),
        (
            json!({"type": "integer", "exclusiveMinimum": 1, "exclusiveMaximum": 10}),
            2,
            9,
        ),
        (
            json!({"type": "integer", "minimum": 1.5, "maximum": 20.5}),
            2,
            20,
        ),
        (
            json!({"type": "integer", "minimum": 18, "maximum": 65}),
            18,
            65,
        ),
    ];
    for (s, lo, hi) in cases {
        let g = grammar(s.clone());
        for n in lo - 120..=hi + 120 {
            assert_eq!(
                accepts(&g, "root", &n.to_string()),
                (*lo..=*hi).contains(&n),
                "{s} {n}"
            );
        }
        assert!(!accepts(&g, "root", "-0") && !accepts(&g, "root", "007"));
    }
    let s = json!({"type": "integer", "minimum": 995});
    for n in [995, 999, 1000, 123456789] {
        assert!(ok(&s, &n.to_string()), "{n}");
    }
    assert!(!ok(&s, "994") && !ok(&s, "-1000"));
    let s = json!({"type": "integer", "maximum": -3});
    assert!(ok(&s, "-3") && ok(&s, "-10000") && !ok(&s, "-2") && !ok(&s, "0"));
    assert!(error(json!({"type": "integer", "minimum": 5, "maximum": 4})).contains("minimum"));
}

#[test]
fn number_ranges() {
    let s = json!({"type": "number", "minimum": 0, "maximum": 10});
    for t in ["0", "0.5", "9.999", "10"] {
        assert!(ok(&s, t), "{t}");
    }
    for t in ["-0.5", "10.5", "11", "-1", "1e3"] {
        assert!(!ok(&s, t), "{t}");
    }
    let s = json!({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1});
    assert!(ok(&s, "0.5") && ok(&s, "0.001") && !ok(&s, "0") && !ok(&s, "0.0") && !ok(&s, "1"));
    let s = json!({"type": "number", "minimum": -5, "exclusiveMaximum": -2});
    assert!(ok(&s, "-5") && ok(&s, "-4.5") && ok(&s, "-2.5") && !ok(&s, "-2") && !ok(&s, "-5.5"));
    let s = json!({"type": "number", "exclusiveMinimum": -1});
    assert!(ok(&s, "-0.5") && ok(&s, "7.25") && !ok(&s, "-1") && !ok(&s, "-1.5"));
    let e = error(json!({"type": "number", "minimum": 0.5}));
    assert!(e.contains("minimum") && e.contains("fractional"), "{e}");
}

#[test]
fn objects_keep_order_and_required() {
    let s = json!({
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "string"}, "c": {"type": "boolean"}},
        "required": ["b"],
        "additionalProperties": false
    });
    assert!(ok(&s, r#"{"b": "x"}"#));
    assert!(ok(&s, r#"{"a": 1, "b": "x", "c": true}"#));
    assert!(ok(&s, "{\n  \"a\": 1,\n  \"b\": \"x\"\n}"));
    assert!(!ok(&s, r#"{"a": 1}"#), "b is required");
    assert!(!ok(&s, r#"{"b": "x", "a": 1}"#), "schema order");
    assert!(!ok(&s, r#"{"b": "x", "d": 1}"#), "undeclared");
    let opt = json!({"properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}});
    assert!(ok(&opt, "{}") && ok(&opt, r#"{"b": 2}"#) && ok(&opt, r#"{"a": 1, "b": 2}"#));
    assert!(!ok(&opt, r#"{,"b": 2}"#) && !ok(&opt, r#"{"a": 1,}"#));
    let map = json!({"type": "object", "additionalProperties": {"type": "integer"}});
    assert!(ok(&map, r#"{"x": 1, "y": 2}"#) && !ok(&map, r#"{"x": "1"}"#));
    assert!(ok(
        &json!({"type": "object", "additionalProperties": false}),
        "{}"
    ));
    // Whitespace is bounded.
    let long_ws = format!("{{{}\"b\": \"x\"}}", " ".repeat(30));
    assert!(!ok(&s, &long_ws));
}

#[test]
fn arrays() {
    let s = json!({"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 3});
    assert!(ok(&s, "[1, 2]") && ok(&s, "[1,2,3]") && !ok(&s, "[1]") && !ok(&s, "[1,2,3,4]"));
    let s = json!({"type": "array", "items": {"type": "string"}});
    assert!(ok(&s, "[]") && ok(&s, r#"["a", "b"]"#) && !ok(&s, "[1]"));
    let s = json!({"type": "array", "items": {"type": "integer"}, "maxItems": 1});
    assert!(ok(&s, "[]") && ok(&s, "[5]") && !ok(&s, "[5, 6]"));
    let s = json!({"prefixItems": [{"type": "string"}, {"type": "integer"}], "items": false});
    assert!(ok(&s, r#"["a", 1]"#) && !ok(&s, r#"["a", 1, 2]"#) && !ok(&s, "[1, 1]"));
    let s =
        json!({"prefixItems": [{"type": "string"}], "items": {"type": "integer"}, "maxItems": 3});
    assert!(ok(&s, r#"["a"]"#) && ok(&s, r#"["a", 1, 2]"#) && !ok(&s, r#"["a", 1, 2, 3]"#));
    assert!(error(json!({"type": "array", "minItems": 2000})).contains("too large"));
}

#[test]
fn enums_consts_and_unions() {
    let s = json!({"enum": ["red", "green", 3, null, {"a": [1]}]});
    for t in [r#""red""#, r#""green""#, "3", "null", r#"{"a":[1]}"#] {
        assert!(ok(&s, t), "{t}");
    }
    assert!(!ok(&s, r#""blue""#));
    let s = json!({"type": "string", "enum": ["a", 1]});
    assert!(ok(&s, r#""a""#) && !ok(&s, "1"));
    assert!(ok(&json!({"const": "x\"y"}), r#""x\"y""#));
    let s = json!({"anyOf": [{"type": "integer"}, {"type": "string", "maxLength": 1}]});
    assert!(ok(&s, "5") && ok(&s, r#""a""#) && !ok(&s, r#""ab""#));
    let s = json!({"oneOf": [{"const": 1}, {"const": 2}], "description": "d"});
    assert!(ok(&s, "2"));
    let e = error(json!({"type": "object", "anyOf": [{"required": ["a"]}]}));
    assert!(e.contains("'type'") && e.contains("anyOf"), "{e}");
    assert!(error(json!({"enum": (0..1001).collect::<Vec<_>>()})).contains("too large"));
}

#[test]
fn all_of_merges_objects() {
    let s = json!({
        "$defs": {"named": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}},
        "allOf": [{"$ref": "#/$defs/named"}, {"properties": {"age": {"type": "integer"}}, "required": ["age"]}]
    });
    assert!(ok(&s, r#"{"name": "a", "age": 3}"#) && !ok(&s, r#"{"name": "a"}"#));
    let e = error(json!({"allOf": [{"type": "string"}]}));
    assert!(e.contains("'type'") || e.contains("allOf"), "{e}");
    let e = error(json!({"allOf": [{"minItems": 1}]}));
    assert!(e.contains("minItems"), "{e}");
    let e = error(json!({"allOf": [{"properties": {}}], "additionalProperties": false}));
    assert!(e.contains("additionalProperties"), "{e}");
}

#[test]
fn refs_and_recursion() {
    let tree = json!({
        "$ref": "#/$defs/node",
        "$defs": {"node": {
            "type": "object",
            "properties": {"v": {"type": "integer"}, "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
            "required": ["v"]
        }}
    });
    assert!(ok(
        &tree,
        r#"{"v": 1, "kids": [{"v": 2}, {"v": 3, "kids": []}]}"#
    ));
    assert!(!ok(&tree, r#"{"v": 1, "kids": [{}]}"#));
    let root_rec = json!({"type": "object", "properties": {"next": {"anyOf": [{"$ref": "#"}, {"type": "null"}]}}, "required": ["next"]});
    assert!(ok(&root_rec, r#"{"next": {"next": null}}"#));
    let legacy = json!({"definitions": {"x": {"type": "integer"}}, "properties": {"a": {"$ref": "#/definitions/x"}}});
    assert!(ok(&legacy, r#"{"a": 1}"#));
    assert!(error(json!({"$ref": "#/$defs/missing"})).contains("does not resolve"));
    assert!(error(json!({"$ref": "http://x/y"})).contains("$ref"));
    // A cycle of references without progress is left recursion.
    let cycle = json!({"$ref": "#/$defs/a", "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}});
    assert!(schema_to_gbnf(&cycle).is_err());
}

#[test]
fn patterns() {
    let s = json!({"type": "string", "pattern": "^[A-Z]{2}-\\d{3}$"});
    assert!(ok(&s, r#""AB-123""#) && !ok(&s, r#""ab-123""#) && !ok(&s, r#""AB-12""#));
    let s = json!({"type": "string", "pattern": "^(cat|dog)s?\\.(?:x|y)+$"});
    assert!(ok(&s, r#""dogs.xyx""#) && !ok(&s, r#""cow.x""#));
    let s = json!({"type": "string", "pattern": "^a\"b\\\\c\\t[\"\\s]$"});
    assert!(ok(&s, r#""a\"b\\c\t\"""#) && ok(&s, r#""a\"b\\c\t ""#) && ok(&s, r#""a\"b\\c\t\n""#));
    let s = json!({"type": "string", "pattern": "^[^a-c]\\w+.$"});
    assert!(ok(&s, r#""d_1x""#) && !ok(&s, r#""a_1x""#) && !ok(&s, r#""\"_1x""#));
    let s = json!({"type": "string", "pattern": "\\D\\S"});
    assert!(ok(&s, r#""ab""#) && !ok(&s, r#""1b""#));
    for (p, feature) in [
        ("(?=a)", "(?"),
        ("a\\1", "\\1"),
        ("\\bword", "\\b"),
        ("a^b", "anchor"),
        ("a{2000}", "above"),
        ("a++", "possessive"),
    ] {
        let e = error(json!({"type": "string", "pattern": p}));
        assert!(e.contains("pattern") && e.contains(feature), "{p}: {e}");
    }
}

#[test]
fn formats() {
    let s = json!({"type": "string", "format": "date"});
    assert!(ok(&s, r#""2024-01-31""#) && ok(&s, r#""1999-11-30""#));
    assert!(!ok(&s, r#""2024-02-30""#) && !ok(&s, r#""2024-04-31""#) && !ok(&s, r#""0999-01-01""#));
    let s = json!({"type": "string", "format": "date-time"});
    assert!(ok(&s, r#""2024-01-31T23:59:59Z""#) && ok(&s, r#""2024-01-31T00:00:00.123+02:00""#));
    assert!(!ok(&s, r#""2024-01-31T24:00:00Z""#) && !ok(&s, r#""2024-01-31T10:00:00""#));
    let s = json!({"type": "string", "format": "time"});
    assert!(ok(&s, r#""12:30:00Z""#));
    let s = json!({"type": "string", "format": "uuid"});
    assert!(ok(&s, r#""123e4567-e89b-12d3-a456-426614174000""#) && !ok(&s, r#""123""#));
    let s = json!({"type": "string", "format": "ipv4"});
    assert!(ok(&s, r#""192.168.0.255""#) && !ok(&s, r#""256.1.1.1""#) && !ok(&s, r#""01.1.1.1""#));
    assert!(ok(&json!({"format": "email"}), r#""a.b@example.com""#));
    let e = error(json!({"type": "string", "format": "hostname"}));
    assert!(e.contains("format") && e.contains("hostname"), "{e}");
}

#[test]
fn unsupported_keywords_name_keyword_and_path() {
    let e = error(
        json!({"type": "object", "properties": {"x": {"type": "object", "patternProperties": {}}}}),
    );
    assert_eq!(
        e,
        "unsupported keyword 'patternProperties' at /properties/x"
    );
    let e = error(json!({"type": "array", "uniqueItems": true}));
    assert_eq!(e, "unsupported keyword 'uniqueItems' at the schema root");
    let e =
        error(json!({"type": "array", "items": {"anyOf": [{"type": "integer", "multipleOf": 2}]}}));
    assert_eq!(e, "unsupported keyword 'multipleOf' at /items/anyOf/0");
    let e = error(json!({"properties": {"a/b": {"not": {}}}}));
    assert_eq!(e, "unsupported keyword 'not' at /properties/a~1b");
    // Annotations are accepted.
    grammar(
        json!({"title": "t", "description": "d", "$schema": "x", "$id": "y", "$comment": "c",
        "default": 1, "examples": [1], "deprecated": false, "readOnly": true, "writeOnly": false, "type": "integer"}),
    );
}

#[test]
fn limits_are_errors() {
    let mut deep = json!({"type": "integer"});
    for _ in 0..100 {
        deep = json!({"type": "array", "items": deep});
    }
    assert!(error(deep).contains("deeper"));
    let props: serde_json::Map<String, Value> = (0..600)
        .map(|i| (format!("p{i}"), json!({"type": "integer"})))
        .collect();
    assert!(error(json!({"properties": props})).contains("too large"));
    // Large but within limits: fine, and fast.
    let props: serde_json::Map<String, Value> = (0..400)
        .map(|i| {
            (
                format!("p{i}"),
                json!({"type": "string", "enum": ["a", "b", format!("c{i}")]}),
            )
        })
        .collect();
    let started = std::time::Instant::now();
    grammar(json!({"properties": props, "required": ["p1", "p399"]}));
    assert!(started.elapsed().as_secs() < 2);
}

#[test]
fn builder_combines_schemas_and_rules() {
    let mut b = GrammarBuilder::new();
    let weather = b
        .add_schema(
            "get_weather",
            &json!({"properties": {"city": {"type": "string"}}, "required": ["city"]}),
        )
        .unwrap();
    let time = b
        .add_schema("get_time", &json!({"type": "object"}))
        .unwrap();
    let any = b.any_value();
    let obj = b.any_object();
    assert!(weather.starts_with("get-weather"));
    b.add_rule(
        "root",
        &format!("\"<call>\" ( {weather} | {time} ) \"</call>\" | \"[\" {any} \"]\" | {obj}"),
    );
    let g = b.build("root").unwrap();
    assert!(accepts(&g, "root", r#"<call>{"city": "Paris"}</call>"#));
    assert!(accepts(&g, "root", "[1]"));
    assert_eq!(gbnf_literal("a\"\\\n\u{1}"), "\"a\\\"\\\\\\n\\x01\"");
    let mut b = GrammarBuilder::new();
    b.add_rule("root", "missing");
    assert!(matches!(
        b.build("root"),
        Err(GrammarError::Gbnf(GbnfError::UndefinedRule(_)))
    ));
}

/// Writes random outputs of the grammars of the schemas in `MINERVA_SCHEMA_SAMPLES` (a JSON
/// list) to `<that file>.out` as `[schema index, text]` lines, for a check with Python's
/// jsonschema: `cargo test -p minerva-grammar -- --ignored dump_samples`.
#[test]
#[ignore]
fn dump_samples() {
    let path = std::env::var("MINERVA_SCHEMA_SAMPLES").unwrap();
    let schemas: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut out = String::new();
    for (i, schema) in schemas.iter().enumerate() {
        let g = grammar(schema.clone());
        for text in crate::matcher::samples(&g, "root", 200, 0x9E37_79B9 + i as u64) {
            assert!(accepts(&g, "root", &text), "{text}");
            out.push_str(&json!([i, text]).to_string());
            out.push('\n');
        }
    }
    std::fs::write(format!("{path}.out"), out).unwrap();
}
