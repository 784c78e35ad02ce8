//! # minerva-server: Minerva over HTTP
//!
//! [`router`] builds the axum `Router` for an [`Engine`]: the OpenAI-compatible API
//! (`/v1/chat/completions`, `/v1/completions`, `/v1/models`), llama-server's `/tokenize` and
//! `/detokenize`, and `/health`. Wire formats live here and in `minerva-openai` only; every
//! error leaves as an OpenAI-shaped body through [`ApiError`].
//!
//! The server never links a backend: the binary loads models and hands over an `Engine`.

mod error;
mod extract;
mod routes;
mod trace;

pub use error::ApiError;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use minerva_engine::Engine;
use std::future::Future;
use tokio::net::TcpListener;

/// Largest request body accepted (a long prompt as JSON fits many times over).
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// The routes, ready to serve.
pub fn router(engine: Engine) -> Router {
    Router::new()
        .route("/health", get(routes::health))
        .route("/v1/health", get(routes::health))
        .route("/v1/models", get(routes::models::list))
        .route("/v1/models/{*id}", get(routes::models::one))
        .route("/v1/chat/completions", post(routes::chat::handle))
        .route("/v1/completions", post(routes::completions::handle))
        .route("/slots", get(routes::slots::list))
        .route("/tokenize", post(routes::tokenize::tokenize))
        .route("/detokenize", post(routes::tokenize::detokenize))
        .fallback(routes::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(trace::request_span))
        .with_state(engine)
}

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    engine: Engine,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(engine))
        .with_graceful_shutdown(shutdown)
        .await
}
