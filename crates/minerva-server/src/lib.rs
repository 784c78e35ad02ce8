//! # minerva-server: Minerva over HTTP
//!
//! [`router`] builds the axum `Router` for an [`Engine`]: the OpenAI-compatible API
//! (`/v1/chat/completions`, `/v1/completions`, `/v1/models`), the Ollama-compatible API
//! (`/api/chat`, `/api/generate`, `/api/tags`, `/api/show`, `/api/ps`, `/api/version`, `/`),
//! OpenAI's Responses API (`/v1/responses`), Anthropic's Messages API (`/v1/messages`),
//! llama-server's `/tokenize` and `/detokenize`, and `/health`. Wire formats live here and in
//! `minerva-openai` and `minerva-ollama` only; every error leaves through [`ApiError`], as an
//! OpenAI-shaped body, or an Ollama-shaped one on the Ollama routes ([`OllamaError`]).
//!
//! The server never links a backend: the binary loads models and hands over an `Engine`. Nor
//! does it know the web UI: the binary merges the UI's routes into [`router`]'s.

mod error;
mod extract;
mod lifecycle;
mod metrics;
mod openapi;
mod routes;
mod trace;
pub mod trust;

pub use error::{AnthropicError, ApiError, OllamaError};
pub use routes::ollama::keep_alive::parse_text as parse_keep_alive;
pub use routes::ollama::models::modelfile;
pub use routes::settings::{check_template, create_settings, SettingsError};
pub use trust::{protect, Keys, Scope, Trust, SERVER_HEADER};

use axum::extract::{DefaultBodyLimit, FromRef};
use axum::routing::get;
use axum::Router;
use minerva_engine::Engine;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Largest request body accepted (a long prompt as JSON fits many times over).
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    metrics: Arc<metrics::Metrics>,
    /// Where `/v1/responses` keeps responses (`None`: it keeps none).
    responses: Option<Arc<dyn ResponseStore>>,
    /// Whether and how image URLs in requests are fetched (`None`: only inline images).
    image_urls: Option<routes::images::ImageUrls>,
}

/// Where the Responses API keeps responses (`store: true`) for `previous_response_id` and
/// `GET`/`DELETE /v1/responses/{id}`. Methods block (run off the async threads); an error is
/// a message for the log.
pub trait ResponseStore: Send + Sync {
    /// Keeps `stored` under `id`, replacing any.
    fn put(&self, id: &str, stored: &StoredResponse) -> Result<(), String>;
    /// The response kept under `id`, if any.
    fn get(&self, id: &str) -> Result<Option<StoredResponse>, String>;
    /// Deletes the response kept under `id`; false when there was none.
    fn delete(&self, id: &str) -> Result<bool, String>;
}

/// A kept response: the response object as answered, and the conversation through it as chat
/// messages (earlier turns, the input, the reply; no instructions).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    pub body: serde_json::Value,
    pub messages: Vec<serde_json::Value>,
}

impl FromRef<AppState> for Engine {
    fn from_ref(state: &AppState) -> Engine {
        state.engine.clone()
    }
}

impl FromRef<AppState> for Option<routes::images::ImageUrls> {
    fn from_ref(state: &AppState) -> Option<routes::images::ImageUrls> {
        state.image_urls
    }
}

impl FromRef<AppState> for Arc<metrics::Metrics> {
    fn from_ref(state: &AppState) -> Arc<metrics::Metrics> {
        Arc::clone(&state.metrics)
    }
}

/// The routes, ready to serve; `/v1/responses` keeps no responses, image URLs are not fetched.
pub fn router(engine: Engine) -> Router {
    router_with(engine, Options::default())
}

/// What the routes may do beyond answering from the engine.
#[derive(Default, Clone)]
pub struct Options {
    /// Where `/v1/responses` keeps responses (`None`: it keeps none).
    pub responses: Option<Arc<dyn ResponseStore>>,
    /// Fetch `http(s)` image URLs that requests name (`None`, the default: only inline images;
    /// a URL is a 400).
    pub image_urls: Option<ImageUrls>,
}

pub use routes::images::ImageUrls;

/// The routes, with `options`.
pub fn router_with(engine: Engine, options: Options) -> Router {
    let state = AppState {
        engine,
        metrics: Arc::new(metrics::Metrics::default()),
        responses: options.responses,
        image_urls: options.image_urls,
    };
    use utoipa_axum::routes;
    let (routes, doc) = utoipa_axum::router::OpenApiRouter::with_openapi(
        <openapi::Base as utoipa::OpenApi>::openapi(),
    )
    .routes(routes!(routes::health))
    .route("/v1/health", get(routes::health))
    .routes(routes!(routes::models::list))
    .route("/v1/models/{*id}", get(routes::models::one))
    .routes(routes!(routes::chat::handle))
    .routes(routes!(routes::completions::handle))
    .routes(routes!(routes::embeddings::handle))
    .routes(routes!(routes::infill::handle))
    .routes(routes!(routes::responses::create))
    .routes(routes!(
        routes::responses::retrieve,
        routes::responses::delete
    ))
    .routes(routes!(routes::anthropic::messages::handle))
    .routes(routes!(routes::anthropic::count_tokens))
    .routes(routes!(routes::slots::list))
    .routes(routes!(metrics::render))
    .routes(routes!(routes::tokenize::tokenize))
    .routes(routes!(routes::tokenize::detokenize))
    // Ollama's API; `get` answers HEAD too (`HEAD /` is how clients probe for Ollama).
    .routes(routes!(routes::ollama::models::root))
    .routes(routes!(routes::ollama::models::version))
    .routes(routes!(routes::ollama::models::tags))
    .routes(routes!(routes::ollama::models::ps))
    .routes(routes!(routes::ollama::models::show))
    .routes(routes!(routes::ollama::library::pull))
    .routes(routes!(routes::ollama::library::delete))
    .routes(routes!(routes::ollama::library::copy))
    .routes(routes!(
        routes::ollama::create::blob_exists,
        routes::ollama::create::upload_blob
    ))
    .routes(routes!(routes::ollama::create::create))
    .routes(routes!(routes::ollama::chat::handle))
    .routes(routes!(routes::ollama::generate::handle))
    .routes(routes!(routes::ollama::embed::embed))
    .routes(routes!(routes::ollama::embed::embeddings))
    .split_for_parts();
    let doc: Arc<str> = openapi::render(doc).into();
    routes
        .route(
            "/openapi.json",
            get(move || {
                let doc = Arc::clone(&doc);
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        doc.to_string(),
                    )
                }
            }),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state.metrics),
            metrics::count_requests,
        ))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(error::json_charset))
        .layer(axum::middleware::from_fn(trace::request_span))
        .with_state(state)
}

/// Serves `app` ([`router`], perhaps with more routes merged in, such as the web UI's) until
/// `shutdown` completes, then drains: no new connections or requests (503), the streams in
/// flight go on for up to `drain_timeout`, then end with an error event (see
/// the `lifecycle` module). Returns once every connection is closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain_timeout: std::time::Duration,
) -> std::io::Result<()> {
    let lifecycle = lifecycle::Lifecycle::default();
    let app = app.layer(axum::middleware::from_fn_with_state(
        lifecycle.clone(),
        lifecycle::guard,
    ));
    let drain = async move {
        shutdown.await;
        tracing::info!(
            timeout_s = drain_timeout.as_secs_f64(),
            "shutting down: draining the requests in flight"
        );
        lifecycle.drain(drain_timeout);
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(drain)
        .await
}
