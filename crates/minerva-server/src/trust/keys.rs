//! API keys. With keys set, every request but `/health` and the UI's pages needs one, as
//! `Authorization: Bearer KEY` (OpenAI and Ollama clients) or `x-api-key: KEY` (Anthropic
//! clients); keys are compared in constant time. An admin key is also needed, when admin keys
//! are set, for what changes the library or the server ([`ADMIN_ROUTES`], and unloading a model
//! with a request that has no prompt and `keep_alive: 0`, checked by that route through
//! [`Scope`]).

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Routes that change the library: they need an admin key when admin keys are set.
pub const ADMIN_ROUTES: [&str; 5] = [
    "/api/pull",
    "/api/delete",
    "/api/copy",
    "/api/create",
    "/api/push",
];

/// Uploading blobs (`/api/blobs/{digest}`) fills the library's disk: it needs an admin key
/// too.
pub const BLOB_ROUTES: &str = "/api/blobs/";

/// The keys a server asks for.
#[derive(Clone, Default)]
pub struct Keys {
    /// Any of these opens the API. Empty: no key is needed.
    pub api: Vec<String>,
    /// Any of these opens the API and the admin routes. Empty: whoever may use the API may
    /// change the library too.
    pub admin: Vec<String>,
}

impl std::fmt::Debug for Keys {
    // Never log a key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("api", &self.api.len())
            .field("admin", &self.admin.len())
            .finish()
    }
}

/// What a request may do, as its key says; handlers read it from the request's extensions
/// (absent: the router runs without [`super::protect`], as in tests, and everything is
/// allowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Use the API.
    Client,
    /// Use the API and change the library and the server.
    Admin,
}

impl Keys {
    /// True when some key is set.
    pub fn enabled(&self) -> bool {
        !self.api.is_empty() || !self.admin.is_empty()
    }

    /// The scope `presented` earns; `None` when a key is needed and it is not one.
    pub fn scope(&self, presented: Option<&str>) -> Option<Scope> {
        let matches = |keys: &[String]| {
            presented.is_some_and(|p| {
                // Every key is compared, so the time taken does not say which matched.
                keys.iter().fold(false, |hit, k| {
                    hit | bool::from(k.as_bytes().ct_eq(p.as_bytes()))
                })
            })
        };
        if matches(&self.admin) {
            return Some(Scope::Admin);
        }
        let client = self.api.is_empty() || matches(&self.api);
        match (client, self.admin.is_empty()) {
            (false, _) => None,
            (true, true) => Some(Scope::Admin),
            (true, false) => Some(Scope::Client),
        }
    }
}

/// The key a request presents: `Authorization: Bearer KEY`, else `x-api-key: KEY`.
fn presented(request: &Request) -> Option<&str> {
    let headers = request.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    bearer.or_else(|| {
        headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    })
}

/// Paths anyone may fetch: the health check, the API's description, and the UI's page and
/// assets (not its API).
fn open(method: &Method, path: &str) -> bool {
    let read = method == Method::GET || method == Method::HEAD;
    path == "/health"
        || path == "/v1/health"
        || (read && path == "/openapi.json")
        || (read && (path == "/" || path == "/ui" || path == "/ui/"))
        || (read && path.starts_with("/ui/") && !path.starts_with("/ui/api/"))
}

pub(super) async fn check(
    State(keys): State<Arc<Keys>>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_string();
    let scope = keys.scope(presented(&request));
    let scope = match scope {
        Some(scope) => scope,
        None if open(request.method(), &path) => Scope::Client,
        None => {
            let message = if presented(&request).is_some() {
                "the API key is not valid"
            } else {
                "this server needs an API key: send it as 'Authorization: Bearer KEY' (or 'x-api-key: KEY')"
            };
            let mut refusal = super::refusal(
                &path,
                StatusCode::UNAUTHORIZED,
                message.into(),
                "invalid_api_key",
            );
            // RFC 9110 §15.5.2: a 401 names the scheme it wants.
            refusal.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
            return refusal;
        }
    };
    if scope != Scope::Admin
        && (ADMIN_ROUTES.contains(&path.as_str()) || path.starts_with(BLOB_ROUTES))
    {
        return super::refusal(
            &path,
            StatusCode::FORBIDDEN,
            "this changes the library: it needs an admin key".into(),
            "admin_key_required",
        );
    }
    request.extensions_mut().insert(scope);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(api: &[&str], admin: &[&str]) -> Keys {
        Keys {
            api: api.iter().map(|s| s.to_string()).collect(),
            admin: admin.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn scopes() {
        let none = keys(&[], &[]);
        assert_eq!(none.scope(None), Some(Scope::Admin));
        assert_eq!(none.scope(Some("whatever")), Some(Scope::Admin));
        let api = keys(&["k1"], &[]);
        assert_eq!(api.scope(None), None);
        assert_eq!(api.scope(Some("k2")), None);
        assert_eq!(api.scope(Some("k1")), Some(Scope::Admin));
        let both = keys(&["k1"], &["root"]);
        assert_eq!(both.scope(Some("k1")), Some(Scope::Client));
        assert_eq!(both.scope(Some("root")), Some(Scope::Admin));
        assert_eq!(both.scope(None), None);
        let admin_only = keys(&[], &["root"]);
        assert_eq!(admin_only.scope(None), Some(Scope::Client));
        assert_eq!(admin_only.scope(Some("root")), Some(Scope::Admin));
        assert_eq!(admin_only.scope(Some("nope")), Some(Scope::Client));
    }

    #[test]
    fn open_paths() {
        assert!(open(&Method::GET, "/health"));
        assert!(open(&Method::GET, "/openapi.json"));
        assert!(!open(&Method::POST, "/openapi.json"));
        assert!(open(&Method::GET, "/"));
        assert!(open(&Method::GET, "/ui/app.js"));
        assert!(!open(&Method::GET, "/ui/api/v1/conversations"));
        assert!(!open(&Method::POST, "/"));
        assert!(!open(&Method::GET, "/v1/models"));
    }

    #[test]
    fn keys_never_print() {
        assert!(!format!("{:?}", keys(&["secret"], &["root"])).contains("secret"));
    }
}
