//! Images in a prompt: decoded pixels, and where they sit among the prompt's tokens.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// An image decoded to 8-bit RGB pixels: row-major, `width * height * 3` bytes, the
/// orientation its metadata asks for already applied. Cloning shares the pixels.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    pub width: u32,
    pub height: u32,
    /// The pixels (base64 in a serialized form, for the worker protocol).
    #[serde(with = "pixels")]
    pub rgb: Arc<[u8]>,
    /// sha256 (hex) of the image as the client sent it (its encoded bytes). Two requests with
    /// the same image share its KV in the prompt cache.
    pub digest: String,
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Image")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

/// An image placed in a prompt: it goes before the prompt token at index `at` (`at` equal
/// to the prompt's length: after its last token). The backend lays it out as its projector
/// wants (begin and end tokens around the image's own, llama.cpp's `mtmd_tokenize`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptImage {
    pub at: usize,
    pub image: Image,
}

/// What a model's projector does with images, for listings (`/api/show`, `/v1/models`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VisionInfo {
    /// The projector file (llama.cpp's `mmproj`), which also holds the vision encoder.
    pub projector: std::path::PathBuf,
    /// Its size in bytes.
    pub projector_bytes: u64,
    /// The projector type (GGUF `clip.projector_type`, e.g. `"qwen2vl_merger"`), when the file
    /// names it.
    pub projector_type: Option<String>,
}

/// The text that stands for one image in a rendered prompt until it is tokenized. As
/// llama-server's (`get_media_marker()` in `tools/server/server-common.cpp`), it is
/// `<__media_…__>` with a random part chosen once per process, so that no client's text can
/// pass for an image.
pub fn media_marker() -> &'static str {
    use std::hash::{BuildHasher, Hasher};
    static MARKER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    MARKER.get_or_init(|| {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        format!("<__media_{:016x}__>", hasher.finish())
    })
}

mod pixels {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};
    use std::sync::Arc;

    pub fn serialize<S: Serializer>(bytes: &Arc<[u8]>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<[u8]>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map(Arc::from)
            .map_err(serde::de::Error::custom)
    }
}
