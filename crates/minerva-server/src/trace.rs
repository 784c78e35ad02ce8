//! A tracing span per request: method, path and a request id; status and latency at the end.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tracing::Instrument;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub async fn request_span(request: Request, next: Next) -> Response {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
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
        tracing::info!(
            status = response.status().as_u16(),
            ms = format!("{:.1}", started.elapsed().as_secs_f64() * 1e3),
            "response"
        );
        response
    }
    .instrument(span)
    .await
}
