//! Route handlers, one file per endpoint family.

pub mod anthropic;
pub mod chat;
pub mod completions;
pub mod embeddings;
mod format;
mod history;
pub mod images;
pub mod infill;
pub mod models;
pub mod ollama;
pub mod responses;
pub mod slots;
pub mod tokenize;

pub mod choices;
mod contract;
mod params;
mod reasoning;
pub(crate) mod settings;

use crate::ApiError;
use axum::http::Uri;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::Stream;
use serde_json::{json, Value};
use std::convert::Infallible;

#[utoipa::path(get, path = "/health", tag = "server",
    responses((status = 200, description = "The server is up: `{\"status\": \"ok\"}`", body = Object)))]
pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// An unknown route: Ollama's error shape under `/api/`, OpenAI's elsewhere.
pub async fn not_found(uri: Uri) -> Response {
    let error = ApiError::not_found(format!("no route for {}", uri.path()));
    crate::error::for_path(uri.path(), error)
}

/// A known route asked with another method: 405, in the path's API shape.
pub async fn method_not_allowed(method: axum::http::Method, uri: Uri) -> Response {
    let error = ApiError {
        status: axum::http::StatusCode::METHOD_NOT_ALLOWED,
        message: format!("{method} is not allowed on {}", uri.path()),
        kind: "invalid_request_error",
        param: None,
        code: Some("method_not_allowed"),
    };
    crate::error::for_path(uri.path(), error)
}

/// `system_fingerprint` of every response.
pub(crate) const FINGERPRINT: &str = concat!("minerva-", env!("CARGO_PKG_VERSION"));

/// Seconds since the Unix epoch, for `created`.
pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(crate) fn new_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// A server-sent-events response (one `data:` line per event).
pub(crate) fn sse(
    events: impl Stream<Item = Result<Event, Infallible>> + Send + 'static,
) -> Response {
    Sse::new(events).into_response()
}

/// One SSE event carrying a JSON object.
pub(crate) fn json_event(value: &impl serde::Serialize) -> Result<Event, Infallible> {
    Ok(Event::default().data(serde_json::to_string(value).unwrap_or_else(|_| "{}".into())))
}
