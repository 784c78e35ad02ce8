//! The blocking HTTP client: requests that follow redirects by hand, so the hub's headers on
//! the redirect itself (`X-Linked-Etag`, `X-Linked-Size`) are seen.

use crate::{Result, StoreError};
use std::time::Duration;

/// Most redirects followed.
const MAX_REDIRECTS: usize = 10;

/// An HTTP client that does not follow redirects itself.
pub(crate) fn agent() -> ureq::Agent {
    builder().build()
}

/// An HTTP client like [`agent`] that connects only to public addresses
/// ([`crate::guard::resolve_public`]), for the first request and every redirect.
pub(crate) fn guarded_agent() -> ureq::Agent {
    builder().resolver(crate::guard::resolve_public).build()
}

fn builder() -> ureq::AgentBuilder {
    ureq::AgentBuilder::new()
        .redirects(0)
        .timeout_connect(Duration::from_secs(30))
        .timeout_read(Duration::from_secs(60))
        .user_agent(concat!("minerva/", env!("CARGO_PKG_VERSION")))
}

/// What a request learnt on its way: the final response and the file facts any hop announced.
pub(crate) struct Reply {
    pub response: ureq::Response,
    /// A 64-hex sha256 from `X-Linked-Etag` (any hop) or `ETag`.
    pub sha256: Option<String>,
    /// `X-Linked-Size` (any hop).
    pub linked_size: Option<u64>,
}

/// Why a request failed: worth retrying (the network) or not (the server said no).
pub(crate) enum Failure {
    Network(String),
    /// The server answered with this error status.
    Status(u16, StoreError),
    Fatal(StoreError),
}

/// Sends `method url` (with `Range: bytes=<from>-` when `from` is given), following redirects.
pub(crate) fn request(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    from: Option<u64>,
) -> std::result::Result<Reply, Failure> {
    let mut url = url.to_string();
    let mut sha256 = None;
    let mut linked_size = None;
    for _ in 0..=MAX_REDIRECTS {
        let mut req = agent.request(method, &url);
        if let Some(from) = from {
            req = req.set("Range", &format!("bytes={from}-"));
        }
        let response = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(code, r)) => {
                return Err(Failure::Status(code, status_error(code, &url, r)))
            }
            Err(ureq::Error::Transport(t)) => {
                let said = t.to_string();
                // The guarded resolver's refusal is an answer, not a failure to retry.
                if said.contains(crate::guard::REFUSED) {
                    let host = t.url().and_then(|u| u.host_str().map(str::to_string));
                    return Err(Failure::Fatal(StoreError::Invalid(format!(
                        "cannot pull {url}: {} {}; {}",
                        host.unwrap_or_default(),
                        crate::guard::REFUSED,
                        crate::guard::HINT
                    ))));
                }
                return Err(Failure::Network(said));
            }
        };
        if sha256.is_none() {
            sha256 = response.header("x-linked-etag").and_then(etag_sha256);
        }
        if linked_size.is_none() {
            linked_size = response
                .header("x-linked-size")
                .and_then(|s| s.trim().parse().ok());
        }
        if (300..400).contains(&response.status()) {
            let Some(location) = response.header("location") else {
                return Err(Failure::Fatal(StoreError::Http(format!(
                    "{url}: redirect without a Location"
                ))));
            };
            url = join(&url, location);
            continue;
        }
        if sha256.is_none() {
            sha256 = response.header("etag").and_then(etag_sha256);
        }
        return Ok(Reply {
            response,
            sha256,
            linked_size,
        });
    }
    Err(Failure::Fatal(StoreError::Http(format!(
        "{url}: more than {MAX_REDIRECTS} redirects"
    ))))
}

fn status_error(code: u16, url: &str, response: ureq::Response) -> StoreError {
    let body: String = response
        .into_string()
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect();
    match code {
        404 => StoreError::NotFound(format!("{url} (404 from the server)")),
        401 | 403 => StoreError::Http(format!(
            "{url}: access denied ({code}); the repository may be gated or private"
        )),
        _ => StoreError::Http(format!("{url}: HTTP {code} {}", body.trim())),
    }
}

/// The sha256 in an ETag value, when it is one (quotes and a weak `W/` prefix stripped).
fn etag_sha256(value: &str) -> Option<String> {
    let v = value.trim();
    let v = v.strip_prefix("W/").unwrap_or(v).trim_matches('"');
    crate::name::is_sha256_hex(v).then(|| v.to_ascii_lowercase())
}

/// Resolves a `Location` against the URL that sent it.
fn join(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.to_string();
    }
    let (scheme, rest) = base.split_once("://").unwrap_or(("http", base));
    if let Some(net) = location.strip_prefix("//") {
        return format!("{scheme}://{net}");
    }
    let host = rest.split('/').next().unwrap_or(rest);
    if location.starts_with('/') {
        return format!("{scheme}://{host}{location}");
    }
    let path = rest.split(['?', '#']).next().unwrap_or(rest);
    let dir = path.rsplit_once('/').map_or(host, |(d, _)| d);
    format!("{scheme}://{dir}/{location}")
}

/// A GET of a small JSON document (the hub's API), following redirects.
pub(crate) fn get_json(agent: &ureq::Agent, url: &str) -> Result<serde_json::Value> {
    let reply = match request(agent, "GET", url, None) {
        Ok(r) => r,
        Err(Failure::Network(e)) => return Err(network_error(url, e)),
        Err(Failure::Fatal(e) | Failure::Status(_, e)) => return Err(e),
    };
    let text = reply
        .response
        .into_string()
        .map_err(|e| StoreError::Http(format!("{url}: {e}")))?;
    serde_json::from_str(&text).map_err(|e| StoreError::Http(format!("{url}: not JSON: {e}")))
}

/// A network failure of a request to `url`, naming the URL once (ureq's own message may
/// already start with it).
pub(crate) fn network_error(url: &str, e: impl std::fmt::Display) -> StoreError {
    let said = e.to_string();
    if said.starts_with(url) {
        StoreError::Http(said)
    } else {
        StoreError::Http(format!("{url}: {said}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guarded_client_refuses_private_hosts_without_retrying() {
        for url in [
            "http://127.0.0.1:9/x.gguf",
            "http://localhost:9/x",
            "http://[::1]:9/",
        ] {
            match request(&guarded_agent(), "GET", url, None) {
                Err(Failure::Fatal(StoreError::Invalid(said))) => {
                    assert!(said.contains("is not a public address"), "{said}");
                    assert!(said.contains("--pull-private-urls"), "{said}");
                }
                Err(Failure::Network(e)) => panic!("{url}: a network failure: {e}"),
                _ => panic!("{url}: not refused"),
            }
        }
        // The plain client tries (and finds nothing listening).
        assert!(matches!(
            request(&agent(), "GET", "http://127.0.0.1:9/x.gguf", None),
            Err(Failure::Network(_))
        ));
    }

    #[test]
    fn redirects_resolve() {
        assert_eq!(join("http://h:1/a/b?x", "/cdn/1"), "http://h:1/cdn/1");
        assert_eq!(join("https://h/a/b", "c"), "https://h/a/c");
        assert_eq!(
            join("https://h/a/b", "//cdn.example/x"),
            "https://cdn.example/x"
        );
        assert_eq!(join("https://h/a", "http://o/x"), "http://o/x");
    }

    #[test]
    fn etags() {
        let hex = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818";
        assert_eq!(etag_sha256(&format!("\"{hex}\"")).as_deref(), Some(hex));
        assert_eq!(
            etag_sha256(&format!("W/\"{}\"", hex.to_uppercase())).as_deref(),
            Some(hex)
        );
        assert_eq!(etag_sha256("\"abc\""), None);
        assert_eq!(
            etag_sha256("\"0123456789012345678901234567890123456789\""),
            None
        );
    }
}
