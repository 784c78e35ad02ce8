//! A request's output-format fields turned into an [`OutputFormat`]: structured output.
//!
//! - OpenAI `response_format`: `{"type": "text"}`; `{"type": "json_object"}` (one JSON
//!   object), with llama-server's optional `schema`; `{"type": "json_schema", "json_schema":
//!   {"name", "schema", "strict"}}` (without `schema`: one JSON object).
//! - llama-server's top-level `json_schema` (a schema) and `grammar` (GBNF text, root rule
//!   `root`) on `/v1/chat/completions` and `/v1/completions`.
//! - Ollama `format`: `"json"` or a schema object, on `/api/chat` and `/api/generate`.
//!
//! At most one constraint per request (two are a 400). Schemas are compiled to GBNF and
//! grammars validated here, before a worker sees them: an invalid grammar can abort llama.cpp
//! and every request on that model. Both run on a blocking thread (bounded by the limits of
//! `minerva_grammar`, milliseconds at most). A keyword outside the supported list is a 400
//! naming it and where it is in the schema; `strict` is accepted (the generated output never
//! has undeclared properties, which is what strict mode promises).

use crate::error::OllamaError;
use crate::ApiError;
use minerva_core::{GrammarSpec, OutputFormat};
use minerva_openai::SamplingFields;
use serde_json::Value;

/// What a request asks for, before compiling.
enum Constraint {
    JsonObject,
    /// A JSON schema and the request parameter it came in.
    Schema(Value, &'static str),
    Grammar(String),
}

/// The output format of an OpenAI-style request: `response_format` (chat only) and
/// llama-server's `json_schema` and `grammar`.
///
/// Errors: a 400 with `param` naming the field (`response_format`, `json_schema`, `grammar`)
/// and a message naming the schema keyword or grammar problem.
pub(crate) async fn openai(
    response_format: Option<&Value>,
    fields: &SamplingFields,
) -> Result<Option<OutputFormat>, ApiError> {
    let mut found: Vec<(&'static str, Constraint)> = Vec::new();
    if let Some(c) = response_format.and_then(|f| from_response_format(f).transpose()) {
        found.push(("response_format", c?));
    }
    if let Some(schema) = fields.json_schema.as_ref().filter(|v| !v.is_null()) {
        found.push((
            "json_schema",
            Constraint::Schema(schema.clone(), "json_schema"),
        ));
    }
    match fields.grammar.as_ref() {
        None | Some(Value::Null) => {}
        Some(Value::String(g)) if g.is_empty() => {}
        Some(Value::String(g)) => found.push(("grammar", Constraint::Grammar(g.clone()))),
        Some(_) => {
            return Err(ApiError::bad_request(
                "'grammar' must be a string (a GBNF grammar)",
                Some("grammar"),
            ))
        }
    }
    if found.len() > 1 {
        let names: Vec<&str> = found.iter().map(|(n, _)| *n).collect();
        return Err(ApiError::bad_request(
            format!(
                "only one of response_format (json_object/json_schema), json_schema and grammar may constrain the output; this request has {}",
                names.join(" and ")
            ),
            Some(names[1]),
        )
        .with_code("conflicting_output_formats"));
    }
    match found.pop() {
        None => Ok(None),
        Some((_, c)) => compile(c).await.map(Some),
    }
}

/// The output format of an Ollama request's `format`: `"json"` or a JSON schema.
///
/// Errors: `{"error": ...}` naming the schema keyword.
pub(crate) async fn ollama(format: Option<&Value>) -> Result<Option<OutputFormat>, OllamaError> {
    let constraint = match format {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.is_empty() => return Ok(None),
        Some(Value::String(s)) if s == "json" => Constraint::JsonObject,
        Some(schema @ Value::Object(_)) => Constraint::Schema(schema.clone(), "format"),
        Some(_) => {
            return Err(OllamaError::bad_request(
                "'format' must be \"json\" or a JSON schema object",
            ))
        }
    };
    Ok(Some(compile(constraint).await?))
}

/// `response_format`'s constraint (`None` for `text`).
fn from_response_format(format: &Value) -> Result<Option<Constraint>, ApiError> {
    let bad = |message: &str| {
        Err(ApiError::bad_request(message, Some("response_format"))
            .with_code("invalid_response_format"))
    };
    if format.is_null() {
        return Ok(None);
    }
    let schema = |v: Option<&Value>| match v {
        None | Some(Value::Null) => Constraint::JsonObject,
        Some(s) => Constraint::Schema(s.clone(), "response_format"),
    };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(schema(format.get("schema")))),
        Some("json_schema") => {
            let Some(spec) = format.get("json_schema").and_then(Value::as_object) else {
                return bad("response_format of type json_schema needs a 'json_schema' object");
            };
            if spec.get("name").is_some_and(|n| !n.is_string()) {
                return bad("response_format.json_schema.name must be a string");
            }
            if spec
                .get("strict")
                .is_some_and(|s| !s.is_boolean() && !s.is_null())
            {
                return bad("response_format.json_schema.strict must be a boolean");
            }
            Ok(Some(schema(spec.get("schema"))))
        }
        _ => bad("response_format.type must be 'text', 'json_object' or 'json_schema'"),
    }
}

/// Compiles or validates on a blocking thread.
async fn compile(constraint: Constraint) -> Result<OutputFormat, ApiError> {
    let grammar = match constraint {
        Constraint::JsonObject => return Ok(OutputFormat::JsonObject),
        Constraint::Schema(schema, param) => {
            let compiled = blocking(move || minerva_grammar::schema_to_gbnf(&schema)).await?;
            compiled.map_err(|e| {
                ApiError::bad_request(
                    format!("invalid or unsupported JSON schema in '{param}': {e}"),
                    Some(param),
                )
                .with_code("invalid_json_schema")
            })?
        }
        Constraint::Grammar(text) => {
            let checked =
                blocking(move || minerva_grammar::validate(&text, "root").map(|()| text)).await?;
            checked.map_err(|e| {
                ApiError::bad_request(format!("invalid 'grammar': {e}"), Some("grammar"))
                    .with_code("invalid_grammar")
            })?
        }
    };
    tracing::debug!(bytes = grammar.len(), "output grammar");
    Ok(OutputFormat::Grammar(GrammarSpec::eager(grammar)))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        tracing::error!(error = %e, "grammar compilation failed");
        ApiError {
            status: axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            message: "the output format could not be compiled".into(),
            kind: "server_error",
            param: None,
            code: None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(json_schema: Option<Value>, grammar: Option<Value>) -> SamplingFields {
        SamplingFields {
            json_schema,
            grammar,
            ..SamplingFields::default()
        }
    }

    #[tokio::test]
    async fn each_field_gives_a_format() {
        let none = fields(None, None);
        assert_eq!(
            openai(Some(&json!({"type": "text"})), &none).await.unwrap(),
            None
        );
        assert_eq!(
            openai(Some(&json!({"type": "json_object"})), &none)
                .await
                .unwrap(),
            Some(OutputFormat::JsonObject)
        );
        let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}}});
        for (rf, f) in [
            (
                Some(
                    json!({"type": "json_schema", "json_schema": {"name": "x", "schema": schema, "strict": true}}),
                ),
                fields(None, None),
            ),
            (
                Some(json!({"type": "json_object", "schema": schema})),
                fields(None, None),
            ),
            (None, fields(Some(schema.clone()), None)),
            (None, fields(None, Some(json!("root ::= \"{}\"")))),
        ] {
            let got = openai(rf.as_ref(), &f).await.unwrap();
            assert!(
                matches!(got, Some(OutputFormat::Grammar(ref g)) if !g.is_lazy()),
                "{got:?}"
            );
        }
        assert_eq!(
            ollama(Some(&json!("json"))).await.unwrap(),
            Some(OutputFormat::JsonObject)
        );
        assert!(matches!(
            ollama(Some(&schema)).await.unwrap(),
            Some(OutputFormat::Grammar(_))
        ));
    }

    #[tokio::test]
    async fn errors_name_the_param_and_keyword() {
        let bad = json!({"type": "object", "properties": {"x": {"type": "string", "patternProperties": {}}}});
        let rf = json!({"type": "json_schema", "json_schema": {"name": "x", "schema": bad}});
        let e = openai(Some(&rf), &fields(None, None)).await.unwrap_err();
        assert_eq!(e.param.as_deref(), Some("response_format"));
        assert!(
            e.message.contains("'patternProperties' at /properties/x"),
            "{}",
            e.message
        );
        let e = openai(None, &fields(Some(bad), None)).await.unwrap_err();
        assert_eq!(e.param.as_deref(), Some("json_schema"));
        let e = openai(None, &fields(None, Some(json!("root ::= undefined-rule"))))
            .await
            .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("grammar"));
        assert!(e.message.contains("undefined-rule"), "{}", e.message);
        let e = openai(
            Some(&json!({"type": "json_object"})),
            &fields(None, Some(json!("root ::= \"a\""))),
        )
        .await
        .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("grammar"));
        let e = openai(Some(&json!({"type": "yaml"})), &fields(None, None))
            .await
            .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("response_format"));
        let e = ollama(Some(&json!({"type": "array", "uniqueItems": true})))
            .await
            .unwrap_err();
        assert!(e.0.message.contains("uniqueItems"), "{}", e.0.message);
        assert!(ollama(Some(&json!(3))).await.is_err());
    }
}
