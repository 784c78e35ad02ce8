//! `GET /api/tags`, `POST /api/show`, `GET /api/ps`, `GET /api/version` and `GET /`: the
//! served model as Ollama lists it, and the answers clients use to detect an Ollama server.

use crate::error::OllamaError;
use crate::extract::OllamaJson;
use axum::extract::State;
use axum::Json;
use minerva_core::{LibraryModel, ModelInfo};
use minerva_engine::{Engine, ModelState};
use minerva_ollama::{
    parameter_lines, parameter_size, timestamp, ListResponse, ListedModel, ModelDetails,
    ModelfileText, ProcessResponse, RunningModel, ShowRequest, ShowResponse, VersionResponse,
};
use serde_json::{Map, Value};
use std::time::{Duration, SystemTime};

/// The Ollama version `/api/version` reports: the Ollama release whose API shapes these routes
/// follow, so that clients which check the version before using a feature accept the server.
pub const OLLAMA_VERSION: &str = "0.12.0";

/// What Ollama answers on `/`; some clients check for this exact text.
#[utoipa::path(get, path = "/", tag = "ollama",
    responses((status = 200, description = "`Ollama is running`", body = String, content_type = "text/plain")))]
pub async fn root() -> &'static str {
    "Ollama is running"
}

#[utoipa::path(get, path = "/api/version", tag = "ollama",
    responses((status = 200, description = "The Ollama version whose API these routes follow", body = VersionResponse)))]
pub async fn version() -> Json<VersionResponse> {
    Json(VersionResponse {
        version: OLLAMA_VERSION,
    })
}

/// The models, most recently modified first (as Ollama lists them).
#[utoipa::path(get, path = "/api/tags", tag = "ollama",
    responses((status = 200, description = "The models, most recently modified first", body = ListResponse)))]
pub async fn tags(State(engine): State<Engine>) -> Result<Json<ListResponse>, OllamaError> {
    let mut entries = engine.models().await?;
    entries.sort_by_key(|e| std::cmp::Reverse(e.model.modified));
    let models = entries
        .iter()
        .map(|entry| {
            let m = &entry.model;
            ListedModel {
                name: m.name.clone(),
                model: m.name.clone(),
                modified_at: timestamp(m.modified),
                size: m.size,
                digest: m.digest.clone(),
                details: details(m),
                capabilities: minerva_engine::capabilities(
                    m,
                    entry.loaded.as_ref().map(|l| l.model.info()),
                ),
            }
        })
        .collect();
    Ok(Json(ListResponse { models }))
}

/// The models in memory (and those loading or unloading), with when each unloads if idle.
#[utoipa::path(get, path = "/api/ps", tag = "ollama",
    responses((status = 200, description = "The loaded models", body = ProcessResponse)))]
pub async fn ps(State(engine): State<Engine>) -> Result<Json<ProcessResponse>, OllamaError> {
    // Ollama's "forever" (`keep_alive: -1`) is the longest `time.Duration`.
    let forever = SystemTime::now()
        .checked_add(Duration::from_nanos(i64::MAX as u64))
        .unwrap_or_else(SystemTime::now);
    let models = engine
        .models()
        .await?
        .iter()
        .filter(|e| e.state != ModelState::Unloaded && e.state != ModelState::Failed)
        .map(|entry| {
            let m = &entry.model;
            let loaded = entry.loaded.as_ref();
            let busy = loaded.is_some_and(|l| l.in_flight > 0);
            let expires = match loaded.and_then(|l| l.expires_at) {
                Some(t) => t,
                // Busy models and models kept forever have no deadline yet.
                None if busy => SystemTime::now(),
                None => forever,
            };
            RunningModel {
                name: m.name.clone(),
                model: m.name.clone(),
                size: loaded.map_or(0, |l| l.memory_bytes),
                digest: m.digest.clone(),
                details: details(m),
                expires_at: timestamp(expires),
                size_vram: 0,
                context_length: loaded.map_or(0, |l| l.model.info().n_ctx),
                backend: entry.backend(),
                state: entry.state.as_str(),
                pid: loaded.and_then(|l| l.model.process_id()),
                cpu_variant: loaded.and_then(|l| l.model.info().cpu_variant.clone()),
            }
        })
        .collect();
    Ok(Json(ProcessResponse { models }))
}

/// A model's facts from its manifest; the loaded model's metadata when it is loaded (`show`
/// never loads a model).
#[utoipa::path(post, path = "/api/show", tag = "ollama",
    request_body = ShowRequest,
    responses((status = 200, description = "A model's details", body = ShowResponse)))]
pub async fn show(
    State(engine): State<Engine>,
    OllamaJson(req): OllamaJson<ShowRequest>,
) -> Result<Json<ShowResponse>, OllamaError> {
    let name = if req.model.is_empty() {
        req.name
    } else {
        req.model
    };
    if name.is_empty() {
        return Err(OllamaError::bad_request("model is required"));
    }
    let m = engine.resolve(Some(&name)).await?;
    let loaded = engine
        .loaded()
        .into_iter()
        .find(|(n, _)| *n == m.name)
        .map(|(_, l)| l.model);
    let (template, model_info, parameters) = match &loaded {
        Some(model) => {
            let info = model.info();
            (
                info.chat_template.clone(),
                model_info(info),
                // The one model parameter fixed at load (unless the model's own settings
                // list it); the sampling defaults are Ollama's own.
                if m.settings.parameters.contains_key("num_ctx") {
                    String::new()
                } else {
                    format!("{:<30} {}", "num_ctx", info.n_ctx)
                },
            )
        }
        None => (
            m.settings
                .template
                .clone()
                .or_else(|| m.chat_template.clone())
                .unwrap_or_default(),
            manifest_info(&m),
            String::new(),
        ),
    };
    let capabilities = minerva_engine::capabilities(&m, loaded.as_ref().map(|l| l.info()));
    let projector_info = projector_info(&m, loaded.as_ref().map(|l| l.info()));
    let own = parameter_lines(&m.settings.parameters).join("\n");
    let parameters = [parameters, own]
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    Ok(Json(ShowResponse {
        license: if m.settings.license.is_empty() {
            m.license.clone()
        } else {
            Some(m.settings.license.join("\n"))
        },
        modelfile: modelfile(&m, engine.served_by_path(&m.name).is_some()),
        parameters,
        template,
        system: m.settings.system.clone(),
        messages: Some(m.settings.messages.clone()).filter(|v| !v.is_empty()),
        details: details(&m),
        model_info,
        projector_info,
        capabilities,
        modified_at: timestamp(m.modified),
    }))
}

/// The model as a Modelfile, as `ollama show --modelfile` prints one: `FROM` the model (its
/// name for a library model, so that creating from this text gives the same model; its file
/// for one given with `--model`), then its own settings.
pub fn modelfile(m: &LibraryModel, served_by_path: bool) -> String {
    let path = m.path.display().to_string();
    let from = if served_by_path { &path } else { &m.name };
    ModelfileText {
        from,
        comments: vec![
            "Modelfile generated by \"minerva show\"".into(),
            format!("The model's file: {path}"),
        ],
        template: m.settings.template.as_deref(),
        system: m.settings.system.as_deref(),
        parameters: Some(&m.settings.parameters),
        messages: &m.settings.messages,
        license: &m.settings.license,
    }
    .render()
}

/// `projector_info` of a vision model: what the loaded projector says, else where the
/// library keeps it.
fn projector_info(m: &LibraryModel, loaded: Option<&ModelInfo>) -> Option<Map<String, Value>> {
    let vision = loaded.and_then(|info| info.vision.clone());
    let path = vision
        .as_ref()
        .map(|v| v.projector.clone())
        .or_else(|| m.projector.clone())?;
    let mut map = Map::new();
    if let Some(kind) = vision.as_ref().and_then(|v| v.projector_type.clone()) {
        map.insert("clip.projector_type".into(), Value::from(kind));
    }
    let size = match &vision {
        Some(v) => Some(v.projector_bytes),
        None => std::fs::metadata(&path).ok().map(|meta| meta.len()),
    };
    map.insert(
        "minerva.projector.path".into(),
        Value::from(path.display().to_string()),
    );
    if let Some(size) = size {
        map.insert("minerva.projector.size".into(), Value::from(size));
    }
    Some(map)
}

fn details(m: &LibraryModel) -> ModelDetails {
    let family = m.architecture.clone().unwrap_or_default();
    ModelDetails {
        parent_model: String::new(),
        format: m.format.clone(),
        families: if family.is_empty() {
            Vec::new()
        } else {
            vec![family.clone()]
        },
        family,
        parameter_size: m.n_params.map(parameter_size).unwrap_or_default(),
        quantization_level: m.quantization.clone().unwrap_or_default(),
    }
}

/// `model_info` of a model that is not loaded: what its manifest knows.
fn manifest_info(m: &LibraryModel) -> Map<String, Value> {
    let mut map = Map::new();
    if let Some(arch) = &m.architecture {
        map.insert("general.architecture".into(), Value::from(arch.clone()));
        if let Some(ctx) = m.context_length {
            map.insert(format!("{arch}.context_length"), Value::from(ctx));
        }
    }
    if let Some(n) = m.n_params {
        map.insert("general.parameter_count".into(), Value::from(n));
    }
    map
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
