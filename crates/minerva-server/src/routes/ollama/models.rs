//! `GET /api/tags`, `POST /api/show`, `GET /api/ps`, `GET /api/version` and `GET /`: the
//! served model as Ollama lists it, and the answers clients use to detect an Ollama server.

use crate::error::OllamaError;
use crate::extract::OllamaJson;
use axum::extract::State;
use axum::Json;
use minerva_core::ModelInfo;
use minerva_engine::Engine;
use minerva_ollama::{
    parameter_size, timestamp, ListResponse, ListedModel, ModelDetails, ProcessResponse,
    RunningModel, ShowRequest, ShowResponse, VersionResponse,
};
use serde_json::{Map, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The Ollama version `/api/version` reports: the Ollama release whose API shapes these routes
/// follow, so that clients which check the version before using a feature accept the server.
pub const OLLAMA_VERSION: &str = "0.12.0";

/// What Ollama answers on `/`; some clients check for this exact text.
pub async fn root() -> &'static str {
    "Ollama is running"
}

pub async fn version() -> Json<VersionResponse> {
    Json(VersionResponse {
        version: OLLAMA_VERSION,
    })
}

pub async fn tags(State(engine): State<Engine>) -> Json<ListResponse> {
    let models = engine
        .list()
        .iter()
        .map(|info| ListedModel {
            name: info.id.clone(),
            model: info.id.clone(),
            modified_at: modified_at(info),
            size: info.file.size,
            digest: digest(info),
            details: details(info),
        })
        .collect();
    Json(ListResponse { models })
}

/// The loaded models: every served model, loaded for as long as the server runs.
pub async fn ps(State(engine): State<Engine>) -> Json<ProcessResponse> {
    // Ollama's "forever" (`keep_alive: -1`) is the longest `time.Duration`.
    let forever = SystemTime::now()
        .checked_add(Duration::from_nanos(i64::MAX as u64))
        .unwrap_or_else(SystemTime::now);
    let models = engine
        .list()
        .iter()
        .map(|info| RunningModel {
            name: info.id.clone(),
            model: info.id.clone(),
            size: info.file.size,
            digest: digest(info),
            details: details(info),
            expires_at: timestamp(forever),
            size_vram: 0,
            context_length: info.n_ctx,
        })
        .collect();
    Json(ProcessResponse { models })
}

pub async fn show(
    State(engine): State<Engine>,
    OllamaJson(req): OllamaJson<ShowRequest>,
) -> Result<Json<ShowResponse>, OllamaError> {
    let name = if req.model.is_empty() {
        req.name
    } else {
        req.model
    };
    let model = super::model(&engine, &name)?;
    let info = model.info();
    Ok(Json(ShowResponse {
        license: metadata(info, "general.license").map(str::to_string),
        // The one model parameter fixed at load; the sampling defaults are Ollama's own.
        parameters: format!("{:<30} {}", "num_ctx", info.n_ctx),
        template: info.chat_template.clone(),
        details: details(info),
        model_info: model_info(info),
        capabilities: vec!["completion"],
        modified_at: modified_at(info),
    }))
}

fn details(info: &ModelInfo) -> ModelDetails {
    let family = info.file.architecture.clone().unwrap_or_default();
    ModelDetails {
        parent_model: String::new(),
        format: info.file.format.to_string(),
        families: if family.is_empty() {
            Vec::new()
        } else {
            vec![family.clone()]
        },
        family,
        parameter_size: parameter_size(info.file.n_params),
        quantization_level: info.file.quantization.clone().unwrap_or_default(),
    }
}

/// The file's sha256 when the loader knew it (a verified download), else empty: hashing a
/// multi-gigabyte file to list it is not worth it.
fn digest(info: &ModelInfo) -> String {
    info.file.sha256.clone().unwrap_or_default()
}

fn modified_at(info: &ModelInfo) -> String {
    timestamp(info.file.modified.unwrap_or(UNIX_EPOCH))
}

fn metadata<'a>(info: &'a ModelInfo, key: &str) -> Option<&'a str> {
    info.file
        .metadata
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The file's metadata with values typed again (llama.cpp hands them over as text): integers,
/// then floats, then booleans, else strings. The chat template is left out (it is `template`).
fn model_info(info: &ModelInfo) -> Map<String, Value> {
    let mut map: Map<String, Value> = info
        .file
        .metadata
        .iter()
        .filter(|(key, _)| key != "tokenizer.chat_template")
        .map(|(key, text)| (key.clone(), typed(text)))
        .collect();
    map.entry("general.parameter_count")
        .or_insert_with(|| Value::from(info.file.n_params));
    map
}

fn typed(text: &str) -> Value {
    if let Ok(i) = text.parse::<i64>() {
        return Value::from(i);
    }
    if let Some(f) = text
        .parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .and_then(serde_json::Number::from_f64)
    {
        return Value::Number(f);
    }
    match text {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => Value::String(text.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::typed;
    use serde_json::json;

    #[test]
    fn metadata_values_are_typed_again() {
        assert_eq!(typed("32768"), json!(32768));
        assert_eq!(typed("0.000001"), json!(0.000001));
        assert_eq!(typed("true"), json!(true));
        assert_eq!(typed("qwen2"), json!("qwen2"));
        assert_eq!(typed("NaN"), json!("NaN"));
    }
}
