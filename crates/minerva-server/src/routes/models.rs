//! `GET /v1/models` and `GET /v1/models/{id}`: the library and the models served by path, each
//! with its backend and state; facts of the loaded context when it is loaded.

use crate::ApiError;
use axum::extract::{Path, State};
use axum::Json;
use minerva_engine::{Engine, ModelEntry};
use minerva_openai::{ModelList, ModelObject};
use serde_json::{json, Map, Value};
use std::time::UNIX_EPOCH;

fn object(entry: &ModelEntry) -> ModelObject {
    let m = &entry.model;
    let mut meta = Map::new();
    meta.insert("format".into(), json!(m.format));
    meta.insert("size".into(), json!(m.size));
    meta.insert("digest".into(), json!(m.digest));
    meta.insert("architecture".into(), json!(m.architecture));
    meta.insert("n_params".into(), json!(m.n_params));
    meta.insert("quantization".into(), json!(m.quantization));
    meta.insert("n_ctx_train".into(), json!(m.context_length));
    meta.insert("in_library".into(), json!(entry.in_library));
    if let Some(original) = &entry.alias_of {
        meta.insert("alias_of".into(), json!(original));
    }
    let info = entry.loaded.as_ref().map(|l| l.model.info());
    meta.insert(
        "capabilities".into(),
        json!(minerva_engine::capabilities(m, info)),
    );
    if let Some(embedding) = info.and_then(|i| i.embedding) {
        meta.insert("embedding_dimensions".into(), json!(embedding.dimensions));
        meta.insert("pooling".into(), json!(embedding.pooling.as_str()));
    }
    if let Some(error) = &entry.error {
        meta.insert("error".into(), json!(error));
    }
    if let Some(loaded) = &entry.loaded {
        let info = loaded.model.info();
        meta.insert("n_ctx".into(), json!(info.n_ctx));
        meta.insert("n_vocab".into(), json!(info.n_vocab));
        meta.insert("default_chat_template".into(), json!(info.default_template));
        meta.insert("memory_bytes".into(), json!(loaded.memory_bytes));
        meta.insert("pid".into(), json!(loaded.model.process_id()));
        meta.insert("requests".into(), json!(loaded.in_flight));
        let expires = loaded
            .expires_at
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs());
        meta.insert("expires_at".into(), json!(expires));
    }
    ModelObject {
        id: m.name.clone(),
        object: "model",
        created: m
            .modified
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        owned_by: "minerva",
        backend: entry.backend(),
        state: entry.state.as_str(),
        meta: Value::Object(meta),
    }
}

#[utoipa::path(get, path = "/v1/models", tag = "openai",
    responses((status = 200, description = "Every model this server can serve", body = ModelList)))]
pub async fn list(State(engine): State<Engine>) -> Result<Json<ModelList>, ApiError> {
    let mut entries = engine.models().await?;
    // The most recently modified first, in the order of Ollama's /api/tags (as Ollama's
    // /v1/models).
    entries.sort_by_key(|e| std::cmp::Reverse(e.model.modified));
    Ok(Json(ModelList {
        object: "list",
        data: entries.iter().map(object).collect(),
    }))
}

#[utoipa::path(get, path = "/v1/models/{model}", tag = "openai",
    params(("model" = String, Path, description = "A model's name (it may contain `/`)")),
    responses((status = 200, description = "The model", body = ModelObject)))]
pub async fn one(
    State(engine): State<Engine>,
    Path(id): Path<String>,
) -> Result<Json<ModelObject>, ApiError> {
    let wanted = engine.resolve(Some(&id)).await?;
    let entry = engine
        .models()
        .await?
        .into_iter()
        .find(|e| e.model.name == wanted.name)
        .ok_or(minerva_core::CoreError::ModelNotFound(id))?;
    Ok(Json(object(&entry)))
}
