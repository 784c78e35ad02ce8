//! The UI's HTTP routes.
//!
//! Pages and assets:
//! - `GET /` with `Accept: text/html` (a browser): the UI. Any other `GET /` or `HEAD /` goes to
//!   the server's own `/` (Ollama clients expect `Ollama is running` there).
//! - `GET /ui/`, `GET /ui/{file}`: the UI and its assets.
//!
//! The conversation API, version 1 (JSON; errors are `{"error": {"message", "code"}}`):
//! - `GET /ui/api/v1/conversations[?q=text]`: `{"conversations": [summary...]}`, most recently
//!   updated first; `q` keeps those whose title or messages contain the text.
//! - `POST /ui/api/v1/conversations` with `{title?, model?, system?, settings?, messages?}`:
//!   201 and the conversation.
//! - `GET /ui/api/v1/conversations/{id}`: the conversation with its `messages`.
//! - `PATCH /ui/api/v1/conversations/{id}` with any of the fields above: the conversation;
//!   `messages`, when given, replaces all of them.
//! - `DELETE /ui/api/v1/conversations/{id}`: 204.
//!
//! A summary is `{id, title, model, system, settings, created_ms, updated_ms}`; a message is
//! `{role: "system"|"user"|"assistant", content, stats?}`, `content` being text or OpenAI
//! content parts (text, and images as `data:image/` URIs; see [`crate::Content`]). A body may
//! be up to [`MAX_BODY_BYTES`] (the UI sends a conversation's images with it); a larger one is
//! a 413, `payload_too_large`.
//!
//! What the models view needs beyond the server's own APIs:
//! - `GET /ui/api/v1/server`: [`ServerFacts`] as JSON, `{memory_budget_bytes, catalog: [{name,
//!   size_bytes, default}]}` (`memory_budget_bytes` is null without a budget).

use crate::assets;
use crate::store::{Changes, Conversation, Store, Summary};
use crate::Error;
use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;

/// The page may load only what the binary serves: nothing from the network.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
                   connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// The largest body the conversation API takes: a conversation is saved whole, images
/// included (base64 data URIs, a third larger than the files). Twice the 32 MiB a chat request
/// may carry, so any conversation the chat API can still answer can be saved with its reply.
pub const MAX_BODY_BYTES: usize = 64 << 20;

/// What the server tells the models view about itself (`GET /ui/api/v1/server`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServerFacts {
    /// Memory the loaded models may take together, in bytes (`None`: no limit).
    pub memory_budget_bytes: Option<u64>,
    /// The models the server can fetch by name (`/api/pull` with the name).
    pub catalog: Vec<Offer>,
}

/// A model the server can fetch by name.
#[derive(Debug, Clone, Serialize)]
pub struct Offer {
    /// The name to pull, and the name it is stored under (`qwen2.5-coder:0.5b`).
    pub name: String,
    /// Size of the download, in bytes.
    pub size_bytes: u64,
    /// The model `minerva serve` fetches into an empty library.
    pub default: bool,
}

/// `app` with the UI added (see the module's note).
pub fn attach(app: Router, store: Arc<Store>, facts: ServerFacts) -> Router {
    let facts = Arc::new(facts);
    let api = Router::new()
        .route("/ui/api/v1/conversations", get(list).post(create))
        .route(
            "/ui/api/v1/conversations/{id}",
            get(one).patch(update).delete(remove),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(store)
        .route(
            "/ui/api/v1/server",
            get(move || {
                let facts = Arc::clone(&facts);
                async move { Json(facts.as_ref().clone()) }
            }),
        );
    let pages = Router::new()
        .route("/ui", get(index))
        .route("/ui/", get(index))
        .route("/ui/{*path}", get(asset));
    app.merge(api)
        .merge(pages)
        .layer(axum::middleware::from_fn(page_at_root))
}

/// Answers a browser's `GET /` with the UI; everything else goes on.
async fn page_at_root(request: Request, next: Next) -> Response {
    let wants_html = request
        .headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/html"));
    if request.uri().path() == "/" && request.method() == Method::GET && wants_html {
        return index().await;
    }
    next.run(request).await
}

async fn index() -> Response {
    let mut response = (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        assets::index(),
    )
        .into_response();
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    response
}

async fn asset(Path(path): Path<String>) -> Response {
    if path.starts_with("api/") {
        return ApiError::NotFound.into_response();
    }
    match assets::file(&path) {
        Some(bytes) => (
            [
                (header::CONTENT_TYPE, assets::content_type(&path)),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            Body::from(bytes),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    q: Option<String>,
}

async fn list(
    State(store): State<Arc<Store>>,
    Query(query): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let conversations: Vec<Summary> = blocking(move || store.list(query.q.as_deref())).await?;
    Ok(Json(json!({ "conversations": conversations })))
}

async fn create(
    State(store): State<Arc<Store>>,
    body: Result<Json<Changes>, JsonRejection>,
) -> Result<(StatusCode, Json<Conversation>), ApiError> {
    let Json(changes) = body?;
    let conversation = blocking(move || store.create(changes)).await?;
    tracing::info!(id = %conversation.summary.id, "conversation created");
    Ok((StatusCode::CREATED, Json(conversation)))
}

async fn one(
    State(store): State<Arc<Store>>,
    Path(id): Path<String>,
) -> Result<Json<Conversation>, ApiError> {
    blocking(move || store.get(&id))
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound)
}

async fn update(
    State(store): State<Arc<Store>>,
    Path(id): Path<String>,
    body: Result<Json<Changes>, JsonRejection>,
) -> Result<Json<Conversation>, ApiError> {
    let Json(changes) = body?;
    blocking(move || store.update(&id, changes))
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound)
}

async fn remove(
    State(store): State<Arc<Store>>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let log_id = id.clone();
    if blocking(move || store.delete(&id)).await? {
        tracing::info!(id = %log_id, "conversation deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}

/// Runs a store call on tokio's blocking threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> crate::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(ApiError::from),
        Err(e) => {
            tracing::error!(error = %e, "conversation store task failed");
            Err(ApiError::Internal)
        }
    }
}

/// Every error of the conversation API, as a status and a JSON body that never carries
/// internal details.
#[derive(Debug)]
enum ApiError {
    NotFound,
    BadRequest(String),
    TooLarge,
    Internal,
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        match e {
            Error::Invalid(message) => ApiError::BadRequest(message),
            Error::NotFound => ApiError::NotFound,
            other => {
                tracing::error!(error = %other, "conversation store");
                ApiError::Internal
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> ApiError {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::TooLarge;
        }
        ApiError::BadRequest(e.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            ApiError::NotFound => (
                StatusCode::NOT_FOUND,
                "not_found",
                "no such conversation".to_string(),
            ),
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, "invalid_request", m),
            ApiError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!(
                    "the conversation is larger than {} MiB, the most one request may carry; \
                     remove images from it or start a new chat",
                    MAX_BODY_BYTES >> 20
                ),
            ),
            ApiError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "the conversation store failed; see the server's log".to_string(),
            ),
        };
        (
            status,
            Json(json!({ "error": { "message": message, "code": code } })),
        )
            .into_response()
    }
}

#[cfg(test)]
#[path = "routes_tests.rs"]
mod tests;
