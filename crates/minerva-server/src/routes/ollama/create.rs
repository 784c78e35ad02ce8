//! `HEAD` and `POST /api/blobs/{digest}` (a file uploaded under its sha256, verified as it
//! streams) and `POST /api/create` (a model from uploaded blobs, or from another model, with
//! its own system prompt, parameters and messages), as Ollama's API (docs/api.md). What
//! `create` cannot do yet — a template or licence of its own, LoRA adapters, re-quantizing —
//! is a 400 that names the field, and nothing is made.

use super::library::{blocking, either, library, progress};
use crate::error::OllamaError;
use crate::extract::OllamaJson;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use minerva_core::{ModelSettings, PullProgress};
use minerva_engine::Engine;
use minerva_ollama::{ndjson_line, CreateRequest, ProgressResponse};
use serde_json::Value;
use std::sync::Arc;

/// Whether a blob is there: 200, or 404 (no body either way).
#[utoipa::path(head, path = "/api/blobs/{digest}", tag = "ollama",
    params(("digest" = String, Path, description = "`sha256:<hex>`")),
    responses((status = 200, description = "The blob is in the library"),
              (status = 404, description = "It is not")))]
pub async fn blob_exists(
    State(engine): State<Engine>,
    Path(digest): Path<String>,
) -> Result<Response, OllamaError> {
    let library = library(&engine)?;
    let found = blocking(move || library.has_blob(&digest)).await?;
    Ok(if found {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    }
    .into_response())
}

/// Uploads a file under its digest: 201 when its sha256 is the one named, else a 400 and
/// nothing kept.
#[utoipa::path(post, path = "/api/blobs/{digest}", tag = "ollama",
    params(("digest" = String, Path, description = "`sha256:<hex>` of the body")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, description = "Kept")))]
pub async fn upload_blob(
    State(engine): State<Engine>,
    Path(digest): Path<String>,
    body: Body,
) -> Result<Response, OllamaError> {
    let library = library(&engine)?;
    let mut upload = {
        let digest = digest.clone();
        blocking(move || library.upload_blob(&digest)).await?
    };
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            OllamaError::bad_request(format!("the upload of {digest} broke off: {e}"))
        })?;
        // Dropped on an error: the partial file goes with it.
        upload = blocking(move || upload.write(&chunk).map(|()| upload)).await?;
    }
    let size = blocking(move || upload.finish()).await?;
    tracing::info!(%digest, size, "blob received");
    Ok(StatusCode::CREATED.into_response())
}

/// Makes a model: from uploaded blobs (`files`: one GGUF, and its projector for a vision
/// model) or as a new name for `from`.
#[utoipa::path(post, path = "/api/create", tag = "ollama",
    request_body = CreateRequest,
    responses((status = 200, description = "Progress; streamed (the default) as one JSON object a line", content(
        (minerva_ollama::ProgressResponse = "application/json"),
        (minerva_ollama::ProgressResponse = "application/x-ndjson")))))]
pub async fn create(
    State(engine): State<Engine>,
    OllamaJson(req): OllamaJson<CreateRequest>,
) -> Result<Response, OllamaError> {
    let library = library(&engine)?;
    let name = either(req.model.clone(), req.name.clone())?;
    refuse_unsupported(&req)?;
    let wanted = settings_of(&req)?;
    let files: Vec<(String, String)> = req.files.clone().unwrap_or_default().into_iter().collect();
    let mut lines = Vec::new();
    match (&req.from, files.is_empty()) {
        (Some(_), false) => {
            return Err(OllamaError::bad_request(
                "give either from (a model) or files (uploaded blobs), not both",
            ))
        }
        (None, true) => {
            return Err(OllamaError::bad_request(
                "from or files is required: the model to start from, or the blobs of a GGUF model",
            ))
        }
        (Some(from), true) => {
            let (from, to, library) = (from.clone(), name.clone(), Arc::clone(&library));
            match engine.served_by_path(&from) {
                Some(model) => {
                    blocking(move || library.import(&model.path, model.projector.as_deref(), &to))
                        .await?;
                }
                None => blocking(move || library.copy(&from, &to)).await?,
            }
            lines.push(status("using existing layers"));
        }
        (None, false) => {
            for (_, digest) in &files {
                lines.push(status(&format!("using existing layer {digest}")));
            }
            let (to, library) = (name.clone(), Arc::clone(&library));
            blocking(move || library.create_from_blobs(&to, &files)).await?;
        }
    }
    if let Some(wanted) = wanted {
        // On top of what the model it came from had: a new system prompt and messages
        // replace, parameters add (the new value wins).
        let to = name.clone();
        blocking(move || {
            let mut settings = library.get(&to)?.settings;
            if wanted.system.is_some() {
                settings.system = wanted.system;
            }
            if !wanted.messages.is_empty() {
                settings.messages = wanted.messages;
            }
            settings.parameters.extend(wanted.parameters);
            library.set_settings(&to, settings)
        })
        .await?;
    }
    lines.push(status("writing manifest"));
    lines.push(status("success"));
    tracing::info!(model = %name, "created");
    if req.stream.unwrap_or(true) {
        let body: Vec<u8> = lines.iter().flat_map(ndjson_line).collect();
        return Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response());
    }
    Ok(Json(status("success")).into_response())
}

fn status(text: &str) -> ProgressResponse {
    progress(PullProgress::status(text))
}

/// The model's own settings the request gives (`None`: none), checked.
fn settings_of(req: &CreateRequest) -> Result<Option<ModelSettings>, OllamaError> {
    let mut settings = ModelSettings {
        system: req.system.clone(),
        ..ModelSettings::default()
    };
    match &req.parameters {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            crate::routes::settings::check_parameters(map).map_err(OllamaError::bad_request)?;
            settings.parameters = map.clone();
        }
        Some(_) => return Err(OllamaError::bad_request("parameters: must be an object")),
    }
    for (i, m) in req.messages.iter().flatten().enumerate() {
        let role = m.get("role").and_then(Value::as_str);
        let content = m.get("content").and_then(Value::as_str);
        match (role, content) {
            (Some("system" | "user" | "assistant"), Some(content)) => {
                settings
                    .messages
                    .push(serde_json::json!({"role": role, "content": content}));
            }
            _ => {
                return Err(OllamaError::bad_request(format!(
                    "messages[{i}]: needs a role (system, user or assistant) and a string content"
                )))
            }
        }
    }
    Ok((!settings.is_empty()).then_some(settings))
}

/// The fields `create` does not take yet: a 400 naming the first one given.
fn refuse_unsupported(req: &CreateRequest) -> Result<(), OllamaError> {
    let given = |present: bool, field: &str, why: &str| {
        if present {
            Err(OllamaError::bad_request(format!("{field}: {why}")))
        } else {
            Ok(())
        }
    };
    given(
        req.adapters.as_ref().is_some_and(|a| !a.is_empty()),
        "adapters",
        "LoRA adapters are not supported",
    )?;
    given(
        req.quantize.as_ref().is_some_and(|q| !q.is_empty()),
        "quantize",
        "re-quantizing is not supported: quantize with llama.cpp's llama-quantize, then upload the result",
    )?;
    given(
        req.template.is_some(),
        "template",
        "a created model's own template is not supported yet: it uses its model's chat template",
    )?;
    given(
        req.license.as_ref().is_some_and(|l| !l.is_null()),
        "license",
        "a created model's own licence is not supported yet",
    )
}
