//! A tracing span per request: method, path and a request id; status and latency at the end.
//! Successful reads that clients poll (the model list, health, `/api/ps`, the UI's pages) are
//! logged at debug level, so that a UI left open does not bury the server's log.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tracing::Instrument;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Paths that clients read over and over.
fn polled(path: &str) -> bool {
    matches!(
        path,
        "/" | "/health"
            | "/v1/health"
            | "/v1/models"
            | "/api/tags"
            | "/api/ps"
            | "/api/version"
            | "/slots"
            | "/metrics"
    ) || path.starts_with("/ui/")
}

pub async fn request_span(request: Request, next: Next) -> Response {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let quiet = request.method() == axum::http::Method::GET && polled(request.uri().path());
    let span = tracing::info_span!(
        "request",
        id,
        method = %request.method(),
        path = %request.uri().path()
    );
    let started = Instant::now();
    async move {
        let response = next.run(request).await;
        // For a stream this is the time to the response head; the body follows.
        let status = response.status().as_u16();
        let ms = format!("{:.1}", started.elapsed().as_secs_f64() * 1e3);
        if quiet && response.status().is_success() {
            tracing::debug!(status, ms, "response");
        } else {
            tracing::info!(status, ms, "response");
        }
        response
    }
    .instrument(span)
    .await
}
