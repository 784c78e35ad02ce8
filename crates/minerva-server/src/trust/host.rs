//! DNS rebinding: while the server listens on loopback only, a request must name a loopback
//! host. A page on `evil.example` whose name is made to resolve to 127.0.0.1 reaches the
//! server with `Host: evil.example` and is refused (403), as llama-server and Ollama do not
//! (CVE-2024-28224).

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use std::net::IpAddr;
use std::sync::Arc;

/// Whether a `Host` header value (`name`, `name:port`, `[v6]:port`) names a loopback host:
/// `localhost` or a name under it (`app.localhost`), a loopback address, or one of `allowed`
/// (names compare without regard to case).
pub fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let name = strip_port(host).to_ascii_lowercase();
    let name = name.trim_end_matches('.');
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()) {
        return true;
    }
    allowed.iter().any(|a| {
        let a = a.to_ascii_lowercase();
        a == name || strip_port(&a) == name
    })
}

/// `host` without its `:port` (an IPv6 address keeps its brackets).
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.contains(':') => {
            name
        }
        _ => host,
    }
}

pub(super) async fn check(
    State(allowed): State<Arc<Vec<String>>>,
    request: Request,
    next: Next,
) -> Response {
    // HTTP/1.1 has a Host header; HTTP/2 the URI's authority. A request with neither (HTTP/1.0)
    // names no host a rebinding page could have used.
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| request.uri().authority().map(|a| a.to_string()));
    match host {
        Some(host) if !host_allowed(&host, &allowed) => {
            tracing::warn!(%host, path = %request.uri().path(), "refused a request for a host that is not loopback");
            super::refusal(
                request.uri().path(),
                StatusCode::FORBIDDEN,
                format!(
                    "this server listens on loopback and answers only requests for localhost; Host '{host}' is not allowed (add it with --allowed-host)"
                ),
                "host_not_allowed",
            )
        }
        _ => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_and_addresses() {
        for host in [
            "localhost",
            "localhost:11434",
            "LOCALHOST.",
            "app.localhost:3000",
            "127.0.0.1",
            "127.0.0.1:11434",
            "127.1.2.3:80",
            "[::1]:11434",
            "[::1]",
        ] {
            assert!(host_allowed(host, &[]), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:11434",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "10.0.0.2:11434",
            "[::2]:80",
            "",
        ] {
            assert!(!host_allowed(host, &[]), "{host}");
        }
    }

    #[test]
    fn listed_hosts() {
        let allowed = vec!["minerva.lan".to_string()];
        assert!(host_allowed("minerva.lan:11434", &allowed));
        assert!(host_allowed("Minerva.LAN", &allowed));
        assert!(!host_allowed("other.lan", &allowed));
    }
}
