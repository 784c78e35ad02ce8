//! `HEAD` and `POST /api/blobs/{digest}` (a file uploaded under its sha256, verified as it
//! streams) and `POST /api/create` (a model from uploaded blobs, or from another model, with
//! its own system prompt, template, parameters, messages and licence), as Ollama's API
//! (docs/api.md), in JSON fields or as a Modelfile's text. What `create` cannot do — LoRA
//! adapters, re-quantizing — is a 400 that names the field, and nothing is made.

use super::library::{blocking, either, library, progress};
use crate::error::OllamaError;
use crate::extract::OllamaJson;
use crate::routes::settings::create_settings;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use minerva_core::PullProgress;
use minerva_engine::Engine;
use minerva_ollama::{
    from_kind, ndjson_line, read_modelfile, CreateRequest, FromKind, ModelfileRequest,
    ProgressResponse,
};
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
/// model) or as a new name for `from`, with its own settings; or from a Modelfile's text
/// (`modelfile`, Ollama's older form), whose errors name their line.
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
    let (req, lines_of) = with_modelfile(req)?;
    // A field's error names the Modelfile's line when the field came from the Modelfile.
    let at = |field: &str, message: String| match lines_of
        .as_ref()
        .filter(|(_, taken)| taken.contains(&field))
        .and_then(|(m, _)| m.line_of(field))
    {
        Some(line) => OllamaError::bad_request(format!("Modelfile line {line}: {message}")),
        None => OllamaError::bad_request(format!("{field}: {message}")),
    };
    if let Some(from) = req.from.as_deref() {
        check_from(from)?;
    }
    refuse_unsupported(&req).map_err(|(field, why)| at(field, why.into()))?;
    let wanted = create_settings(&req).map_err(|e| at(e.field, e.message))?;
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
                None => {
                    let copied = blocking(move || library.copy(&from, &to)).await;
                    // A Modelfile's FROM that names no model is the Modelfile's error.
                    match (copied, lines_of.as_ref().and_then(|(m, _)| m.from.first())) {
                        (Err(e), Some((line, from))) if e.0.status == StatusCode::NOT_FOUND => {
                            return Err(OllamaError::bad_request(format!(
                                "Modelfile line {line}: FROM {from}: no such model"
                            )))
                        }
                        (copied, _) => copied?,
                    };
                }
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
        let to = name.clone();
        blocking(move || {
            let settings = library.get(&to)?.settings.merged(wanted);
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

/// `from` names a model: a path or a digest there gets a 400 that says what to send instead.
fn check_from(from: &str) -> Result<(), OllamaError> {
    match from_kind(from) {
        FromKind::Name => Ok(()),
        FromKind::Blob(digest) => Err(OllamaError::bad_request(format!(
            "from names a model; for an uploaded blob, send files: {{\"model.gguf\": \"{digest}\"}} (or FROM @{digest} in a Modelfile)"
        ))),
        FromKind::Path => Err(OllamaError::bad_request(format!(
            "from names a model, not a file ({from}): upload the file (POST /api/blobs/sha256:<hex>) and send files, or run `minerva create NAME -f Modelfile` on the machine that has it"
        ))),
    }
}

/// Create fields a Modelfile gave, with the Modelfile's lines for errors.
type FromModelfile = (ModelfileRequest, Vec<&'static str>);

/// The request with what its Modelfile says in the fields the JSON leaves out, the Modelfile's
/// lines and which fields it gave. Over HTTP, `FROM` names a model or an uploaded blob
/// (`@sha256:<hex>`); a file path is for `minerva create` on the machine that has the file.
fn with_modelfile(
    mut req: CreateRequest,
) -> Result<(CreateRequest, Option<FromModelfile>), OllamaError> {
    let Some(text) = req.modelfile.take() else {
        return Ok((req, None));
    };
    let m = read_modelfile(&text).map_err(|e| OllamaError::bad_request(e.to_string()))?;
    let mut names = Vec::new();
    let mut blobs = std::collections::BTreeMap::new();
    for (line, from) in &m.from {
        match from_kind(from) {
            FromKind::Blob(digest) => {
                blobs.insert(format!("from-line-{line}"), digest);
            }
            FromKind::Path => {
                return Err(OllamaError::bad_request(format!(
                    "Modelfile line {line}: FROM {from}: a file is read by `minerva create` on the machine that has it; over the API, upload it (POST /api/blobs/sha256:<hex>) and write FROM @sha256:<hex>"
                )))
            }
            FromKind::Name => names.push((*line, from.clone())),
        }
    }
    if let Some((line, _)) = names.get(1) {
        return Err(OllamaError::bad_request(format!(
            "Modelfile line {line}: only one FROM may name a model"
        )));
    }
    let mut taken = Vec::new();
    if req.from.is_none() && req.files.is_none() {
        req.from = names.pop().map(|(_, n)| n);
        req.files = Some(blobs).filter(|b| !b.is_empty());
    }
    taken.extend(m.fill(&mut req));
    Ok((req, Some((m, taken))))
}

/// The fields `create` does not take: the field and why, for the first one given.
fn refuse_unsupported(req: &CreateRequest) -> Result<(), (&'static str, &'static str)> {
    if req.adapters.as_ref().is_some_and(|a| !a.is_empty()) {
        return Err(("adapters", "LoRA adapters are not supported"));
    }
    if req.quantize.as_ref().is_some_and(|q| !q.is_empty()) {
        return Err((
            "quantize",
            "re-quantizing is not supported: quantize with llama.cpp's llama-quantize, then upload the result",
        ));
    }
    Ok(())
}
