//! Shutting down without leaving clients hanging: once a shutdown is asked for (SIGTERM,
//! Ctrl-C), the server stops accepting connections, answers requests that still arrive with a
//! 503 (`code: "shutting_down"`), and lets the streams in flight go on; when the drain timeout
//! passes, each stream still open ends with a last error event — SSE `data: {"error": ...}`,
//! NDJSON `{"error": "..."}` — and its generation is cancelled (the stream's body is dropped),
//! so the process can exit.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use futures::StreamExt;
use std::time::Duration;
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Serving,
    /// Shutdown asked: no new requests; streams go on.
    Draining,
    /// The drain timeout passed: streams end now.
    Over,
}

/// Where the server is in its life (shared by every request).
#[derive(Clone)]
pub struct Lifecycle {
    phase: watch::Sender<Phase>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            phase: watch::Sender::new(Phase::Serving),
        }
    }
}

impl Lifecycle {
    /// Starts draining now, and ends the streams still open after `timeout`.
    pub fn drain(&self, timeout: Duration) {
        self.phase.send_if_modified(|p| {
            let changed = *p == Phase::Serving;
            if changed {
                *p = Phase::Draining;
            }
            changed
        });
        let phase = self.phase.clone();
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            tracing::info!(
                timeout_s = timeout.as_secs_f64(),
                "drain timeout: ending the streams still open"
            );
            phase.send_replace(Phase::Over);
        });
    }

    fn draining(&self) -> bool {
        *self.phase.borrow() != Phase::Serving
    }

    async fn over(&self) {
        let mut rx = self.phase.subscribe();
        let _ = rx.wait_for(|p| *p == Phase::Over).await;
    }
}

/// Refuses requests once draining, and makes streamed answers (SSE, NDJSON) end with an error
/// event when the drain is over.
pub(crate) async fn guard(
    State(lifecycle): State<Lifecycle>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_string();
    if lifecycle.draining() {
        return refusal(&path);
    }
    let response = next.run(request).await;
    let kind = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let last: &'static str = if kind.starts_with("text/event-stream")
        && path.starts_with("/v1/messages")
    {
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"the server is shutting down: this stream was ended\"}}\n\n"
    } else if kind.starts_with("text/event-stream") {
        "data: {\"error\":{\"message\":\"the server is shutting down: this stream was ended\",\"type\":\"server_error\",\"param\":null,\"code\":\"shutting_down\"}}\n\n"
    } else if kind.starts_with("application/x-ndjson") {
        "{\"error\":\"the server is shutting down: this stream was ended\"}\n"
    } else {
        return response;
    };
    let (parts, body) = response.into_parts();
    let mut data = body.into_data_stream();
    let stream = async_stream::stream! {
        let over = lifecycle.over();
        tokio::pin!(over);
        loop {
            tokio::select! {
                biased;
                () = &mut over => {
                    yield Ok::<Bytes, axum::Error>(Bytes::from_static(last.as_bytes()));
                    break;
                }
                chunk = data.next() => match chunk {
                    Some(chunk) => yield chunk,
                    None => break,
                },
            }
        }
    };
    Response::from_parts(parts, Body::from_stream(stream))
}

fn refusal(path: &str) -> Response {
    let error = crate::ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        message: "the server is shutting down".into(),
        kind: "server_error",
        param: None,
        code: Some("shutting_down"),
    };
    crate::error::for_path(path, error)
}
