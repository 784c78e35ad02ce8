//! Images in requests: what each API sends (OpenAI `image_url` data URIs, Ollama's base64
//! `images`, and `http(s)` URLs when the server fetches them), turned into bytes and then, off
//! the async workers, into decoded pixels.

use crate::ApiError;
use base64::Engine as _;
use minerva_core::Image;
use std::io::Read;
use std::time::Duration;

/// How image URLs are fetched when the server is started to fetch them (`--image-urls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageUrls {
    /// Most bytes one image may have (larger: a 400).
    pub max_bytes: usize,
    /// Longest the whole fetch of one image may take.
    pub timeout: Duration,
}

impl Default for ImageUrls {
    /// 20 MB ([`minerva_engine::media::MAX_IMAGE_BYTES`]) and 10 seconds.
    fn default() -> Self {
        ImageUrls {
            max_bytes: minerva_engine::media::MAX_IMAGE_BYTES,
            timeout: Duration::from_secs(10),
        }
    }
}

/// An image as a request sent it, before decoding, and the request field it came from.
pub struct RawImage {
    pub source: Source,
    pub param: String,
}

/// A request's images as its messages are read, in order, and whether URLs may be fetched.
pub struct Images {
    pub raw: Vec<RawImage>,
    pub urls: Option<ImageUrls>,
}

impl Images {
    /// No images yet; `urls` as the server was started.
    pub fn new(urls: Option<ImageUrls>) -> Self {
        Images {
            raw: Vec::new(),
            urls,
        }
    }
}

/// Where an image's bytes are.
pub enum Source {
    Bytes(Vec<u8>),
    /// An `http(s)` URL, fetched by [`decode`].
    Url(String, ImageUrls),
    /// A URL this server does not fetch: the error [`decode`] answers, once it knows the model
    /// can read images at all.
    Refused(String),
}

/// The image of an OpenAI `image_url.url`: a `data:image/…;base64,…` URI, or an `http(s)` URL
/// when `urls` allows fetching (off by default: a server fetching whatever a request names is
/// a hazard, and llama-server too fetches only when asked to); never a file path.
pub fn from_url(url: &str, param: &str, urls: Option<ImageUrls>) -> Result<RawImage, ApiError> {
    let bad = |message: String| {
        ApiError::bad_request(message, None)
            .with_param(param)
            .with_code("invalid_image")
    };
    if url.starts_with("http://") || url.starts_with("https://") {
        return match urls {
            Some(urls) => Ok(RawImage {
                source: Source::Url(url.to_string(), urls),
                param: param.to_string(),
            }),
            None => Ok(RawImage {
                source: Source::Refused(
                    "image URLs are not fetched by this server (start it with --image-urls to allow that); send the image inline as a data URI (data:image/png;base64,...)".to_string(),
                ),
                param: param.to_string(),
            }),
        };
    }
    let Some(rest) = url.strip_prefix("data:") else {
        return Err(bad(format!(
            "{param} must be a data URI (data:image/png;base64,...)"
        )));
    };
    let Some((meta, data)) = rest.split_once(',') else {
        return Err(bad(format!(
            "{param}: the data URI has no ',' before its data"
        )));
    };
    if !meta.starts_with("image/") {
        return Err(bad(format!(
            "{param}: the data URI's type must be image/..., not '{meta}'"
        )));
    }
    if !meta.ends_with(";base64") {
        return Err(bad(format!(
            "{param}: the data URI must be base64 (…;base64,…)"
        )));
    }
    from_base64(data, param)
}

/// The bytes of a base64 image (Ollama's `images`, Anthropic's `source.data`). Whitespace and
/// missing padding are allowed.
pub fn from_base64(data: &str, param: &str) -> Result<RawImage, ApiError> {
    let cleaned: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let cleaned = cleaned.trim_end_matches('=');
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(cleaned)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cleaned))
        .map_err(|e| {
            ApiError::bad_request(format!("{param} is not valid base64: {e}"), None)
                .with_param(param)
                .with_code("invalid_image")
        })?;
    Ok(RawImage {
        source: Source::Bytes(bytes),
        param: param.to_string(),
    })
}

/// The bytes at `url`: a 200 answer of at most `urls.max_bytes`, within `urls.timeout`.
fn fetch(url: &str, urls: ImageUrls) -> Result<Vec<u8>, String> {
    let agent = ureq::AgentBuilder::new()
        .timeout(urls.timeout)
        .redirects(3)
        .build();
    let response = agent.get(url).call().map_err(|e| match e {
        ureq::Error::Status(code, _) => format!("fetching {url} answered HTTP {code}"),
        other => format!("cannot fetch {url}: {other}"),
    })?;
    let announced = response
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok());
    if announced.is_some_and(|n| n > urls.max_bytes) {
        return Err(format!(
            "{url} is {} bytes; at most {} are accepted",
            announced.unwrap_or_default(),
            urls.max_bytes
        ));
    }
    let mut bytes = Vec::new();
    response
        .into_reader()
        .take(urls.max_bytes as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot fetch {url}: {e}"))?;
    if bytes.len() > urls.max_bytes {
        return Err(format!(
            "{url} is over {} bytes; at most that many are accepted",
            urls.max_bytes
        ));
    }
    Ok(bytes)
}

/// Decodes the images for `model` on a blocking thread (a large JPEG takes tens of
/// milliseconds). A model without vision is a 400 first, whatever the images; then an image
/// that cannot be fetched or decoded is a 400 naming its field.
pub async fn decode(
    raw: Vec<RawImage>,
    model: &minerva_core::ModelInfo,
) -> Result<Vec<Image>, ApiError> {
    if raw.is_empty() {
        return Ok(Vec::new());
    }
    if model.vision.is_none() {
        return Err(ApiError::bad_request(
            format!(
                "model '{}' cannot read images (it has no vision projector); use a vision model",
                model.id
            ),
            None,
        )
        .with_param(raw.first().map_or("messages", |r| r.param.as_str()))
        .with_code("model_cannot_read_images"));
    }
    if raw.len() > minerva_engine::media::MAX_IMAGES {
        return Err(ApiError::bad_request(
            format!(
                "{} images in one request; at most {} are accepted",
                raw.len(),
                minerva_engine::media::MAX_IMAGES
            ),
            None,
        )
        .with_param(
            raw.get(minerva_engine::media::MAX_IMAGES)
                .map_or("messages", |r| r.param.as_str()),
        )
        .with_code("too_many_images"));
    }
    tokio::task::spawn_blocking(move || {
        raw.into_iter()
            .map(|r| {
                let bad = |message: String| {
                    ApiError::bad_request(format!("{}: {message}", r.param), None)
                        .with_param(&r.param)
                        .with_code("invalid_image")
                };
                let bytes = match r.source {
                    Source::Bytes(bytes) => bytes,
                    Source::Url(ref url, urls) => fetch(url, urls).map_err(bad)?,
                    Source::Refused(ref why) => return Err(bad(why.clone())),
                };
                minerva_engine::media::decode_image(&bytes).map_err(|e| {
                    bad(match e {
                        minerva_core::CoreError::InvalidRequest { message, .. } => message,
                        other => other.to_string(),
                    })
                })
            })
            .collect()
    })
    .await
    .map_err(|e| ApiError::internal(format!("image decoding failed: {e}")))?
}
