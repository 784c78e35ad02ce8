//! Images for prompts: decoding what clients send into RGB pixels (with limits), and laying
//! them out among a rendered prompt's tokens.
//!
//! Decoding is Minerva's (the `image` crate: PNG, JPEG, WebP, GIF's first frame, EXIF
//! orientation applied), so every format behaves the same whatever the backend's own decoder
//! supports, and a corrupt image or an image bomb is a 400 here, before any backend sees it.

use minerva_core::{media_marker, CoreError, Image, Model, PromptImage, Result, TokenId};
use sha2::{Digest, Sha256};
use std::io::Cursor;
use std::sync::Arc;

/// Most bytes one image may take as sent (OpenAI's limit for one image is 20 MB).
pub const MAX_IMAGE_BYTES: usize = 20 << 20;
/// Most pixels one image may have (as many as 4096 × 4096).
pub const MAX_IMAGE_PIXELS: u64 = 1 << 24;
/// Most images one request may carry.
pub const MAX_IMAGES: usize = 16;
/// Most pixels all the images of one request may have together.
pub const MAX_REQUEST_PIXELS: u64 = 1 << 25;
/// The longest side an image may have, whatever its area.
pub const MAX_IMAGE_SIDE: u32 = 16384;

/// Decodes an image as sent (PNG, JPEG, WebP or GIF bytes) into RGB pixels. Errors (without a
/// `param`: the caller knows which field it was): `InvalidRequest` for an empty, oversized, corrupt,
/// zero-size or unsupported image, or one whose pixels exceed [`MAX_IMAGE_PIXELS`].
pub fn decode_image(bytes: &[u8]) -> Result<Image> {
    let invalid = |message: String| CoreError::invalid(message, None);
    if bytes.is_empty() {
        return Err(invalid("the image is empty".into()));
    }
    if bytes.len() > MAX_IMAGE_BYTES {
        return Err(invalid(format!(
            "the image is {} bytes; at most {MAX_IMAGE_BYTES} are accepted",
            bytes.len()
        )));
    }
    let mut reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| invalid(format!("cannot read the image: {e}")))?;
    match reader.format() {
        Some(
            image::ImageFormat::Png
            | image::ImageFormat::Jpeg
            | image::ImageFormat::WebP
            | image::ImageFormat::Gif,
        ) => {}
        Some(other) => {
            return Err(invalid(format!(
                "{other:?} images are not supported; send PNG, JPEG, WebP or GIF"
            )))
        }
        None => {
            return Err(invalid(
                "the data is not an image Minerva can read (PNG, JPEG, WebP or GIF)".into(),
            ))
        }
    }
    // Sides and area are checked below, from the header, with errors that give the limits.
    let mut limits = image::Limits::default();
    // The decoded RGBA buffer of the largest image allowed, and room for the decoder's own.
    limits.max_alloc = Some(MAX_IMAGE_PIXELS * 4 * 2);
    reader.limits(limits);
    let mut decoder = {
        use image::ImageDecoder as _;
        let decoder = reader
            .into_decoder()
            .map_err(|e| invalid(format!("cannot decode the image: {e}")))?;
        let (width, height) = decoder.dimensions();
        if width == 0 || height == 0 {
            return Err(invalid(format!("the image is {width}×{height} pixels")));
        }
        if width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE {
            return Err(invalid(format!(
                "the image is {width}×{height} pixels; a side may be at most {MAX_IMAGE_SIDE}"
            )));
        }
        if u64::from(width) * u64::from(height) > MAX_IMAGE_PIXELS {
            return Err(invalid(format!(
                "the image is {width}×{height} pixels; at most {MAX_IMAGE_PIXELS} pixels are accepted"
            )));
        }
        decoder
    };
    let orientation = {
        use image::ImageDecoder as _;
        decoder
            .orientation()
            .unwrap_or(image::metadata::Orientation::NoTransforms)
    };
    let mut decoded = image::DynamicImage::from_decoder(decoder)
        .map_err(|e| invalid(format!("cannot decode the image: {e}")))?;
    decoded.apply_orientation(orientation);
    let rgb = decoded.into_rgb8();
    let (width, height) = rgb.dimensions();
    Ok(Image {
        width,
        height,
        rgb: Arc::from(rgb.into_raw()),
        digest: hex::encode(Sha256::digest(bytes)),
    })
}

/// Checks a request's images against [`MAX_IMAGES`] and [`MAX_REQUEST_PIXELS`].
pub fn check_images(images: &[Image], param: &'static str) -> Result<()> {
    if images.len() > MAX_IMAGES {
        return Err(CoreError::invalid(
            format!(
                "{} images in one request; at most {MAX_IMAGES} are accepted",
                images.len()
            ),
            Some(param),
        ));
    }
    let pixels: u64 = images
        .iter()
        .map(|i| u64::from(i.width) * u64::from(i.height))
        .sum();
    if pixels > MAX_REQUEST_PIXELS {
        return Err(CoreError::invalid(
            format!(
                "the request's images have {pixels} pixels together; at most {MAX_REQUEST_PIXELS} are accepted"
            ),
            Some(param),
        ));
    }
    Ok(())
}

/// Tokenizes `text`, in which each image stands as [`media_marker`], and places `images` (in
/// order) where their markers were. Each stretch of text is tokenized on its own, special
/// tokens parsed, no BOS: what `mtmd_tokenize` does with the same text (llama.cpp's
/// `tools/mtmd/mtmd.cpp`). Errors: `InvalidRequest` when the markers and the images do not
/// pair up.
pub fn tokenize_with_images(
    model: &dyn Model,
    text: &str,
    images: Vec<Image>,
) -> Result<(Vec<TokenId>, Vec<PromptImage>)> {
    let parts: Vec<&str> = text.split(media_marker()).collect();
    if parts.len() != images.len() + 1 {
        // The marker is random: only a template that drops or repeats message content gets here.
        return Err(CoreError::invalid(
            format!(
                "the rendered prompt places {} images where {} were sent (does the chat template drop message content?)",
                parts.len() - 1,
                images.len()
            ),
            None,
        ));
    }
    let mut tokens = Vec::new();
    let mut placed = Vec::with_capacity(images.len());
    let mut images = images.into_iter();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            if let Some(image) = images.next() {
                placed.push(PromptImage {
                    at: tokens.len(),
                    image,
                });
            }
        }
        if !part.is_empty() {
            tokens.extend(model.tokenize(part, false, true)?);
        }
    }
    Ok((tokens, placed))
}
