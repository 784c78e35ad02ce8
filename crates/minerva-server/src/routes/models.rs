//! `GET /v1/models` and `GET /v1/models/{id}`.

use super::now_secs;
use crate::ApiError;
use axum::extract::{Path, State};
use axum::Json;
use minerva_core::ModelInfo;
use minerva_engine::Engine;
use minerva_openai::{ModelList, ModelObject};
use serde_json::json;

fn object(info: &ModelInfo) -> ModelObject {
    ModelObject {
        id: info.id.clone(),
        object: "model",
        created: now_secs(),
        owned_by: "minerva",
        meta: json!({
            "backend": info.backend,
            "n_ctx": info.n_ctx,
            "n_ctx_train": info.n_ctx_train,
            "n_vocab": info.n_vocab,
            "default_chat_template": info.default_template,
        }),
    }
}

pub async fn list(State(engine): State<Engine>) -> Json<ModelList> {
    Json(ModelList {
        object: "list",
        data: engine.list().iter().map(object).collect(),
    })
}

pub async fn one(
    State(engine): State<Engine>,
    Path(id): Path<String>,
) -> Result<Json<ModelObject>, ApiError> {
    let model = engine.model(Some(&id))?;
    Ok(Json(object(model.info())))
}
