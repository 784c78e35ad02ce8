//! What guards a server on someone's machine: which browser origins may call it (CORS),
//! which `Host` names it answers while bound to loopback (DNS rebinding), and which API keys it
//! asks for. [`protect`] wraps the whole app (the UI's routes included) in these layers.
//!
//! Order, outermost first: CORS (answers every preflight, and adds its headers to every answer
//! for an allowed origin, refusals included, so a browser client can read them), the origin
//! check (a request from a page of another origin is refused, not only kept from being read:
//! a form post or a `text/plain` fetch needs no preflight), the `Host` check, then the key
//! check.

mod cors;
mod host;
mod keys;

pub use cors::{origin_allowed, DEFAULT_ORIGINS};
pub use host::host_allowed;
pub use keys::{Keys, Scope, ADMIN_ROUTES};

use axum::Router;
use std::sync::Arc;

/// How the server guards itself.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// Browser origins allowed besides [`DEFAULT_ORIGINS`]: exact origins
    /// (`https://chat.example.com`) or patterns where `*` stands for any text (`*` alone: every
    /// origin).
    pub cors_origins: Vec<String>,
    /// The API keys and admin keys.
    pub keys: Keys,
    /// Host names (or addresses) answered besides the loopback ones while bound to loopback.
    pub allowed_hosts: Vec<String>,
    /// The server listens on loopback addresses only: requests must name a loopback host.
    pub loopback: bool,
}

/// The `Server` header of every answer (`Minerva/VERSION`), as llama-server sends
/// `Server: llama.cpp`: how a client (the desktop app) tells a Minerva server holding the port
/// from another program, without a key.
pub const SERVER_HEADER: &str = concat!("Minerva/", env!("CARGO_PKG_VERSION"));

/// `app` behind CORS, the `Host` check (when [`Trust::loopback`]) and the key check; every
/// answer, refusals included, carries [`SERVER_HEADER`].
pub fn protect(app: Router, trust: Trust) -> Router {
    let keys = Arc::new(trust.keys);
    let mut app = app.layer(axum::middleware::from_fn_with_state(keys, keys::check));
    if trust.loopback {
        let hosts = Arc::new(trust.allowed_hosts);
        app = app.layer(axum::middleware::from_fn_with_state(hosts, host::check));
    }
    let origins = Arc::new(trust.cors_origins.clone());
    app.layer(axum::middleware::from_fn_with_state(origins, cors::check))
        .layer(cors::layer(trust.cors_origins))
        .layer(
            tower_http::set_header::SetResponseHeaderLayer::if_not_present(
                axum::http::header::SERVER,
                axum::http::HeaderValue::from_static(SERVER_HEADER),
            ),
        )
}

/// The error answer for a refused request, in the shape of the API its path belongs to:
/// Ollama's `{"error": "..."}` under `/api/`, OpenAI's elsewhere.
fn refusal(
    path: &str,
    status: axum::http::StatusCode,
    message: String,
    code: &'static str,
) -> axum::response::Response {
    let error = crate::ApiError {
        status,
        message,
        kind: "invalid_request_error",
        param: None,
        code: Some(code),
    };
    crate::error::for_path(path, error)
}
