//! CORS: which web pages may call the server from a browser.
//!
//! By default the local ones, as Ollama allows (`envconfig.AllowedOrigins`): `http` and `https`
//! pages on `localhost`, `127.0.0.1`, `[::1]` and `0.0.0.0` at any port; the desktop app
//! (Tauri: `tauri://localhost`, `http(s)://tauri.localhost`); and browser extensions and editor
//! webviews (`chrome-extension://`, `moz-extension://`, `safari-web-extension://`,
//! `vscode-webview://`, `app://`). Other origins get no CORS headers, so a browser keeps their
//! pages from reading the answers. Preflights (`OPTIONS` with `Access-Control-Request-Method`)
//! are answered on every route.

use axum::http::{HeaderValue, Method};
use std::sync::Arc;
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

/// The origins allowed whatever the options say (`*` stands for any text).
pub const DEFAULT_ORIGINS: [&str; 18] = [
    "http://localhost",
    "http://localhost:*",
    "https://localhost",
    "https://localhost:*",
    "http://127.0.0.1",
    "http://127.0.0.1:*",
    "https://127.0.0.1",
    "https://127.0.0.1:*",
    "http://[::1]",
    "http://[::1]:*",
    "http://0.0.0.0:*",
    "tauri://localhost",
    "http://tauri.localhost",
    "https://tauri.localhost",
    "chrome-extension://*",
    "moz-extension://*",
    "safari-web-extension://*",
    "vscode-webview://*",
];

/// Whether `origin` (an `Origin` header's value) matches the defaults or one of `extra`.
/// Scheme and host compare without regard to case.
pub fn origin_allowed(origin: &str, extra: &[String]) -> bool {
    let origin = origin.to_ascii_lowercase();
    DEFAULT_ORIGINS
        .iter()
        .copied()
        .chain(extra.iter().map(String::as_str))
        .chain(["app://*"])
        .any(|pattern| matches(&pattern.to_ascii_lowercase(), &origin))
}

/// A pattern ending in `:*` takes any port (digits only); otherwise [`glob`].
fn matches(pattern: &str, origin: &str) -> bool {
    match pattern.strip_suffix(":*") {
        Some(prefix) => origin
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix(':'))
            .is_some_and(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())),
        None => glob(pattern, origin),
    }
}

/// `pattern` with `*` matching any text (none included) against all of `text`.
fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return false;
    };
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// Refuses (403, `origin_not_allowed`) a request whose `Origin` is neither allowed nor the
/// server's own (its scheme-less authority equal to the `Host` the request names, as the chat
/// UI's own requests are when the server is reached by another name). Browsers send `Origin`
/// on every cross-origin request, including the "simple" ones they send without a preflight;
/// a request without one (curl, SDKs) is not a browser's and goes on.
pub(super) async fn check(
    axum::extract::State(extra): axum::extract::State<Arc<Vec<String>>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let origin = request
        .headers()
        .get(axum::http::header::ORIGIN)
        .map(|o| o.to_str().unwrap_or("?").to_string());
    let Some(origin) = origin else {
        return next.run(request).await;
    };
    let host = request
        .headers()
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let own = origin
        .split_once("://")
        .is_some_and(|(_, authority)| !host.is_empty() && authority.eq_ignore_ascii_case(host));
    if own || origin_allowed(&origin, &extra) {
        return next.run(request).await;
    }
    tracing::warn!(%origin, path = %request.uri().path(), "refused a request from a page of another origin");
    super::refusal(
        request.uri().path(),
        axum::http::StatusCode::FORBIDDEN,
        format!(
            "requests from pages on {origin} are not allowed (add the origin with --cors-origin)"
        ),
        "origin_not_allowed",
    )
}

pub(super) fn layer(extra: Vec<String>) -> CorsLayer {
    let extra = Arc::new(extra);
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(
            move |origin: &HeaderValue, _parts| {
                origin.to_str().is_ok_and(|o| origin_allowed(o, &extra))
            },
        ))
        .allow_methods([
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers(AllowHeaders::mirror_request())
        .max_age(std::time::Duration::from_secs(24 * 3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_pages_and_extensions_by_default() {
        for origin in [
            "http://localhost:3000",
            "http://localhost",
            "HTTP://LocalHost:8080",
            "http://127.0.0.1:5173",
            "http://[::1]:3000",
            "tauri://localhost",
            "https://tauri.localhost",
            "chrome-extension://abcdefghijklmnop",
            "moz-extension://0f3c1b2a-aaaa",
        ] {
            assert!(origin_allowed(origin, &[]), "{origin}");
        }
        for origin in [
            "https://evil.example",
            "http://localhost.evil.example",
            "http://127.0.0.1.nip.io:3000",
            "http://localhost:3000.evil.example",
            "null",
            "",
        ] {
            assert!(!origin_allowed(origin, &[]), "{origin}");
        }
    }

    #[test]
    fn options_add_origins() {
        let extra = vec![
            "https://chat.example.com".to_string(),
            "https://*.corp.example".into(),
        ];
        assert!(origin_allowed("https://chat.example.com", &extra));
        assert!(origin_allowed("https://a.corp.example", &extra));
        assert!(!origin_allowed("https://chat.example.com.evil", &extra));
        assert!(origin_allowed("https://anything", &["*".to_string()]));
    }

    #[test]
    fn globs() {
        assert!(glob("a*c", "abc"));
        assert!(glob("a*", "a"));
        assert!(!glob("a*c", "abcd"));
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "a-b-b-c"));
        assert!(!glob("abc", "abcd"));
    }
}
