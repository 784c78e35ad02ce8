//! `POST /api/pull`, `DELETE /api/delete` and `POST /api/copy`: the model library through
//! Ollama's API. A model served by path (`--model FILE`) can be copied (its file, and its
//! `--mmproj` projector, enter the library under the new name) but not deleted (a 400 that says why). A pull runs on a blocking thread and streams its status objects as NDJSON;
//! a client that goes away cancels it (the partial download stays, and the next pull resumes it).

use crate::error::OllamaError;
use crate::extract::OllamaJson;
use crate::ApiError;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use minerva_core::{CoreError, Library, PullProgress};
use minerva_engine::Engine;
use minerva_ollama::{ndjson_line, CopyRequest, DeleteRequest, ProgressResponse, PullRequest};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub(super) fn library(engine: &Engine) -> Result<Arc<dyn Library>, OllamaError> {
    engine
        .library()
        .ok_or_else(|| OllamaError::bad_request("this server has no model library"))
}

pub(super) fn either(model: String, name: String) -> Result<String, OllamaError> {
    let chosen = if model.is_empty() { name } else { model };
    if chosen.is_empty() {
        return Err(OllamaError::bad_request("model is required"));
    }
    Ok(chosen)
}

pub(super) fn progress(p: PullProgress) -> ProgressResponse {
    ProgressResponse {
        status: p.status,
        digest: p.digest,
        total: p.total,
        completed: p.completed,
    }
}

/// The last status of a pull that succeeded.
fn success() -> ProgressResponse {
    ProgressResponse {
        status: "success".into(),
        digest: None,
        total: None,
        completed: None,
    }
}

/// Sets the flag when dropped: the response stream is gone, so the pull stops.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[utoipa::path(post, path = "/api/pull", tag = "ollama",
    request_body = PullRequest,
    responses((status = 200, description = "Progress; streamed (the default) as one JSON object a line", content(
        (minerva_ollama::ProgressResponse = "application/json"),
        (minerva_ollama::ProgressResponse = "application/x-ndjson")))))]
pub async fn pull(
    State(engine): State<Engine>,
    OllamaJson(req): OllamaJson<PullRequest>,
) -> Result<Response, OllamaError> {
    let library = library(&engine)?;
    let source = either(req.model, req.name)?;
    let source_name = source.clone();
    let cancel = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<ProgressResponse>();
    let flag = Arc::clone(&cancel);
    let task = tokio::task::spawn_blocking(move || {
        library.pull(&source, None, &mut |p| drop(tx.send(progress(p))), &flag)
    });
    if req.stream.unwrap_or(true) {
        let guard = CancelOnDrop(cancel);
        // A pull that ends before any progress (a malformed name, an unknown source) answers
        // with its error's status, as Ollama's does, instead of a 200 stream of one error line.
        let Some(first) = rx.recv().await else {
            let model = task
                .await
                .map_err(|e| OllamaError::bad_request(format!("the pull task failed: {e}")))?
                .map_err(|e| pull_error(&source_name, e))?;
            tracing::info!(model = %model.name, "pulled");
            return Ok((
                [(header::CONTENT_TYPE, "application/x-ndjson")],
                ndjson_line(&success()),
            )
                .into_response());
        };
        let lines = async_stream::stream! {
            let _guard = guard;
            yield Ok::<Bytes, Infallible>(Bytes::from(ndjson_line(&first)));
            while let Some(p) = rx.recv().await {
                yield Ok::<Bytes, Infallible>(Bytes::from(ndjson_line(&p)));
            }
            let end = match task.await {
                Ok(Ok(model)) => {
                    tracing::info!(model = %model.name, "pulled");
                    None
                }
                Ok(Err(e)) => Some(pull_error(&source_name, e).body()),
                Err(e) => Some(OllamaError::bad_request(format!("the pull task failed: {e}")).body()),
            };
            if let Some(error) = end {
                yield Ok(Bytes::from(ndjson_line(&error)));
            }
        };
        return Ok((
            [(header::CONTENT_TYPE, "application/x-ndjson")],
            Body::from_stream(lines),
        )
            .into_response());
    }
    let _guard = CancelOnDrop(cancel);
    let result = task
        .await
        .map_err(|e| OllamaError::bad_request(format!("the pull task failed: {e}")))?;
    result.map_err(|e| pull_error(&source_name, e))?;
    Ok(Json(success()).into_response())
}

#[utoipa::path(delete, path = "/api/delete", tag = "ollama",
    request_body = DeleteRequest,
    responses((status = 200, description = "Deleted (empty body)")))]
pub async fn delete(
    State(engine): State<Engine>,
    OllamaJson(req): OllamaJson<DeleteRequest>,
) -> Result<Response, OllamaError> {
    let library = library(&engine)?;
    let name = either(req.model, req.name)?;
    if engine.served_by_path(&name).is_some() {
        return Err(OllamaError::bad_request(format!(
            "'{name}' was given on the command line (minerva serve --model) and is not in the library: restart the server without it to stop serving it"
        )));
    }
    let model = {
        let library = Arc::clone(&library);
        let name = name.clone();
        blocking(move || library.get(&name)).await?
    };
    // Out of memory first; a model still serving requests unloads when they end (its file
    // stays readable to it until then).
    engine.unload(&model.name).await?;
    blocking(move || library.remove(&model.name)).await?;
    tracing::info!(model = %name, "deleted");
    Ok(().into_response())
}

#[utoipa::path(post, path = "/api/copy", tag = "ollama",
    request_body = CopyRequest,
    responses((status = 200, description = "Copied (empty body)")))]
pub async fn copy(
    State(engine): State<Engine>,
    OllamaJson(req): OllamaJson<CopyRequest>,
) -> Result<Response, OllamaError> {
    let library = library(&engine)?;
    if req.source.is_empty() || req.destination.is_empty() {
        return Err(OllamaError::bad_request(
            "source and destination are required",
        ));
    }
    match engine.served_by_path(&req.source) {
        // A model served by path: its file (and its projector) enters the library under the
        // new name.
        Some(model) => {
            let name = req.destination.clone();
            let added =
                blocking(move || library.import(&model.path, model.projector.as_deref(), &name))
                    .await?;
            tracing::info!(source = %req.source, model = %added.name, "copied into the library");
        }
        None => blocking(move || library.copy(&req.source, &req.destination)).await?,
    }
    Ok(().into_response())
}

/// A failed pull of `source`, said as such: what was not found on the hub is a 404 that names
/// it (not Ollama's "try pulling it first"), a download that failed is a 502 (the hub or the
/// network failed, not a model).
fn pull_error(source: &str, e: CoreError) -> OllamaError {
    use axum::http::StatusCode;
    match e {
        CoreError::ModelNotFound(what) => OllamaError(ApiError::not_found(format!(
            "cannot pull {source}: not found: {what}"
        ))),
        CoreError::Backend(what) => {
            let mut error = ApiError::bad_request(format!("cannot pull {source}: {what}"), None);
            error.status = StatusCode::BAD_GATEWAY;
            error.kind = "server_error";
            OllamaError(error)
        }
        other => OllamaError::from(other),
    }
}

pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> minerva_core::Result<T> + Send + 'static,
) -> Result<T, OllamaError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| OllamaError::bad_request(format!("the task failed: {e}")))?
        .map_err(OllamaError::from)
}
