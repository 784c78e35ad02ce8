//! Images in requests: what each API sends (OpenAI `image_url` data URIs, Ollama's base64
//! `images`), turned into bytes and then, off the async workers, into decoded pixels.

use crate::ApiError;
use base64::Engine as _;
use minerva_core::Image;

/// An image as a request sent it, before decoding, and the request field it came from.
pub struct RawImage {
    pub bytes: Vec<u8>,
    pub param: String,
}

/// The bytes of an OpenAI `image_url.url`: a `data:image/…;base64,…` URI. Image URLs on the
/// network are not fetched (a server fetching what a request names is a hazard; llama-server
/// fetches them only when asked to), and never a file path.
pub fn from_url(url: &str, param: &str) -> Result<RawImage, ApiError> {
    let bad = |message: String| ApiError::bad_request(message, None).with_param(param);
    if url.starts_with("http://") || url.starts_with("https://") {
        return Err(bad(format!(
            "{param}: image URLs are not fetched; send the image inline as a data URI (data:image/png;base64,...)"
        )));
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
        })?;
    Ok(RawImage {
        bytes,
        param: param.to_string(),
    })
}

/// Decodes the images on a blocking thread (a large JPEG takes tens of milliseconds). An
/// image that cannot be decoded is a 400 naming its field.
pub async fn decode(raw: Vec<RawImage>) -> Result<Vec<Image>, ApiError> {
    if raw.is_empty() {
        return Ok(Vec::new());
    }
    if raw.len() > minerva_engine::media::MAX_IMAGES {
        return Err(ApiError::bad_request(
            format!(
                "{} images in one request; at most {} are accepted",
                raw.len(),
                minerva_engine::media::MAX_IMAGES
            ),
            None,
        ));
    }
    tokio::task::spawn_blocking(move || {
        raw.iter()
            .map(|r| {
                minerva_engine::media::decode_image(&r.bytes).map_err(|e| {
                    let message = match e {
                        minerva_core::CoreError::InvalidRequest { message, .. } => message,
                        other => other.to_string(),
                    };
                    ApiError::bad_request(format!("{}: {message}", r.param), None)
                        .with_param(&r.param)
                        .with_code("invalid_image")
                })
            })
            .collect()
    })
    .await
    .map_err(|e| ApiError::internal(format!("image decoding failed: {e}")))?
}
