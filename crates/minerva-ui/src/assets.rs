//! The embedded front end: the files of `ui/dist` as they were at compile time, or the
//! fallback page when the UI was not built.

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// Served at `/` when the UI was not built.
pub const NOT_BUILT: &str = include_str!("not_built.html");

/// The embedded file at `path` (relative to `ui/dist`).
pub fn file(path: &str) -> Option<&'static [u8]> {
    FILES.iter().find(|(p, _)| *p == path).map(|(_, b)| *b)
}

/// The page served at `/`.
pub fn index() -> &'static [u8] {
    file("index.html").unwrap_or(NOT_BUILT.as_bytes())
}

/// The Content-Type of a file, by its extension.
pub fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json" | "map") => "application/json",
        Some("woff2") => "font/woff2",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}
