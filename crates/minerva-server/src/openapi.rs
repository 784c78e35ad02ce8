//! The OpenAPI 3.1 description of Minerva's HTTP API, served at `GET /openapi.json`.
//!
//! Built by utoipa from the handlers' `#[utoipa::path]` attributes and the wire types'
//! `ToSchema` derives; utoipa-axum registers each handler under the path its attribute
//! documents, so the description and the router cannot drift apart. [`finish`] adds what the
//! attributes do not say: every operation's error answer in its API's own shape (as the
//! `default` response), the sampling fields that completion requests read from the same object,
//! and the optional API key schemes.

use crate::error::Dialect;
use serde_json::{json, Value};
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::schema::{AllOfBuilder, Schema};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};

/// The parts of the description that no handler carries.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Minerva",
        description = "A local LLM inference server: OpenAI's Chat Completions, Completions, \
            Embeddings and Responses APIs, Anthropic's Messages API, Ollama's API and \
            llama-server's extras. Errors answer in each API's own shape.",
        license(name = "MIT OR Apache-2.0"),
    ),
    // `GET /v1/models/{*model}` is routed by hand (a model name may hold `/`).
    paths(crate::routes::models::one),
    components(schemas(
        minerva_openai::SamplingFields,
        minerva_openai::ErrorBody,
        minerva_ollama::ErrorBody,
        minerva_anthropic::ErrorBody,
    )),
    tags(
        (name = "openai", description = "OpenAI-compatible routes"),
        (name = "anthropic", description = "Anthropic's Messages API"),
        (name = "ollama", description = "Ollama-compatible routes"),
        (name = "llama-server", description = "llama-server's extra routes"),
        (name = "server", description = "Health and metrics"),
    )
)]
pub(crate) struct Base;

/// Request types whose sampling fields ([`minerva_openai::SamplingFields`]) are read from the
/// same JSON object (the Rust type holds them apart, so the derive does not list them).
const WITH_SAMPLING: [&str; 3] = [
    "ChatCompletionRequest",
    "CompletionRequest",
    "InfillRequest",
];

/// The description of the routes the router built, completed, as JSON text.
pub(crate) fn render(mut doc: OpenApi) -> String {
    finish(&mut doc);
    let mut value = serde_json::to_value(&doc).unwrap_or(Value::Null);
    if let Some(schemas) = value
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        let required: std::collections::HashMap<String, Value> = schemas
            .iter()
            .filter_map(|(name, s)| Some((name.clone(), s.get("required")?.clone())))
            .collect();
        for schema in schemas.values_mut() {
            flattened_options(schema, &required);
        }
    }
    if let Some(paths) = value.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            streams(path, item);
        }
    }
    value.to_string()
}

/// A flattened `Option<T>` (serde's `flatten`) adds all of `T`'s fields or none, where utoipa
/// says "`null` or `T`" (never true of an object's part): each such `allOf` item becomes "`T`,
/// or none of `T`'s required fields" (Ollama's stream lines carry the done fields only on the
/// last one).
fn flattened_options(schema: &mut Value, required: &std::collections::HashMap<String, Value>) {
    let Some(items) = schema.get_mut("allOf").and_then(Value::as_array_mut) else {
        return;
    };
    for item in items.iter_mut() {
        let Some([a, b]) = item
            .get("oneOf")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
        else {
            continue;
        };
        let Some(reference) = [a, b]
            .into_iter()
            .find_map(|v| v.get("$ref").and_then(Value::as_str))
        else {
            continue;
        };
        if !([a, b].iter().any(|v| v.get("type") == Some(&json!("null")))) {
            continue;
        }
        let name = reference.trim_start_matches("#/components/schemas/");
        let Some(fields) = required.get(name).and_then(Value::as_array) else {
            continue;
        };
        let absent: Vec<Value> = fields.iter().map(|f| json!({"required": [f]})).collect();
        *item = json!({"anyOf": [{"$ref": reference}, {"not": {"anyOf": absent}}]});
    }
}

/// Rewrites the streamed answers of `item` (whose schemas name one event's or line's object)
/// into what they carry: an SSE event is an object whose `data` is JSON text of that object or
/// of an error in the path's shape (OpenAI's streams end with `data: [DONE]`); an NDJSON line
/// is that object or an error line.
fn streams(path: &str, item: &mut Value) {
    let dialect = Dialect::of(path);
    let error = json!({"$ref": format!("#/components/schemas/{}", error_schema(dialect).0)});
    let Some(methods) = item.as_object_mut() else {
        return;
    };
    for operation in methods.values_mut() {
        let Some(content) = operation
            .pointer_mut("/responses/200/content")
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        if let Some(schema) = content
            .get_mut("text/event-stream")
            .and_then(|m| m.get_mut("schema"))
        {
            let payload = json!({
                "contentMediaType": "application/json",
                "contentSchema": {"anyOf": [schema.clone(), error.clone()]},
            });
            let data = if dialect == Dialect::OpenAi {
                json!({"type": "string", "if": {"const": "[DONE]"}, "else": payload})
            } else {
                let mut data = payload;
                data["type"] = json!("string");
                data
            };
            *schema = json!({
                "type": "object",
                "description": "One server-sent event: `data` is the JSON text of one object",
                "required": ["data"],
                "properties": {"event": {"type": "string"}, "id": {"type": "string"}, "data": data},
            });
        }
        if let Some(schema) = content
            .get_mut("application/x-ndjson")
            .and_then(|m| m.get_mut("schema"))
        {
            *schema = json!({
                "description": "One line of the stream: one object, or the error that ended it",
                "anyOf": [schema.clone(), error.clone()],
            });
        }
    }
}

fn error_schema(dialect: Dialect) -> (&'static str, &'static str) {
    match dialect {
        Dialect::OpenAi => (
            "ErrorBody",
            "An error: `{\"error\": {\"message\", \"type\", \"param\", \"code\"}}`",
        ),
        Dialect::Ollama => ("ollama.ErrorBody", "An error: `{\"error\": \"message\"}`"),
        Dialect::Anthropic => (
            "anthropic.ErrorBody",
            "An error: `{\"type\": \"error\", \"error\": {\"type\", \"message\"}}`",
        ),
    }
}

/// Completes the description the router built: error answers, sampling fields, security.
fn finish(doc: &mut OpenApi) {
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    for (path, item) in doc.paths.paths.iter_mut() {
        let dialect = Dialect::of(path);
        for operation in operations(item) {
            add_error(operation, dialect);
        }
    }
    let components = doc.components.get_or_insert_with(Default::default);
    for name in WITH_SAMPLING {
        if let Some(own) = components.schemas.remove(name) {
            let joined = AllOfBuilder::new()
                .item(own)
                .item(Ref::from_schema_name("SamplingFields"))
                .build();
            components
                .schemas
                .insert(name.to_string(), RefOr::T(Schema::AllOf(joined)));
        }
    }
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    components.add_security_scheme(
        "api_key",
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("x-api-key"))),
    );
    // Keys are asked for only when the server was started with some (`--api-key`).
    doc.security = Some(vec![
        SecurityRequirement::default(),
        SecurityRequirement::new("bearer", Vec::<String>::new()),
        SecurityRequirement::new("api_key", Vec::<String>::new()),
    ]);
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.options.as_mut(),
        item.head.as_mut(),
        item.patch.as_mut(),
        item.trace.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// Every status an operation answers besides its documented successes is an error in its
/// dialect's shape (`application/json`).
fn add_error(operation: &mut Operation, dialect: Dialect) {
    let (schema, description) = error_schema(dialect);
    let response = ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(schema)))
                .build(),
        )
        .build();
    operation
        .responses
        .responses
        .insert("default".to_string(), RefOr::T(response));
}
