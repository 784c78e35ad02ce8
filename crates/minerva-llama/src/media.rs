//! Images in a prompt: their chunks from llama.cpp's multimodal library (`libmtmd`), and the
//! prompt's layout of tokens and positions around them.
//!
//! Each image is tokenized on its own (`mtmd_tokenize` of one media marker), which gives what
//! the projector wants at that place: begin text, the image's embedding tokens, end text (for
//! Qwen2-VL `<|vision_start|>`, the image, `<|vision_end|>`). The text around images is
//! tokenized by the engine as for any prompt; `mtmd_tokenize` of the whole prompt would give
//! the same tokens, since it too tokenizes each text part apart.
//!
//! The prompt is kept as one token per KV cell, so the prompt cache's prefix matching works
//! unchanged: an image's embedding tokens are stood for by ids derived from the image's
//! digest (negative, never a vocabulary id), so the same image at the same place matches and
//! another image does not. A cached prefix may only end at the edge of an image's piece.
//! Positions (RoPE) differ from token indices after an image when the model uses M-RoPE: an
//! image of `nx × ny` embedding tokens advances the position by `max(nx, ny)`; [`Layout`]
//! converts.

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::mtmd::{
    MtmdBitmap, MtmdContext, MtmdContextParams, MtmdInputChunkType, MtmdInputChunks, MtmdInputText,
};
use llama_cpp_2::token::LlamaToken;
use minerva_core::{CoreError, PromptImage, Result, VisionInfo};
use std::ffi::CString;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

/// A model's projector: the libmtmd context that encodes images. Tokenizing is safe from any
/// thread; encoding runs on the context thread, one image at a time.
pub struct Vision {
    ctx: Mutex<MtmdContext>,
    pub info: VisionInfo,
}

impl Vision {
    /// Loads the projector file for `model`.
    pub fn load(path: &Path, model: &LlamaModel, threads: i32) -> Result<Arc<Self>> {
        let fail = |why: String| CoreError::Load(format!("{}: {why}", path.display()));
        crate::model::check_gguf_magic(path)?;
        let meta = Meta::read(path)
            .ok_or_else(|| fail("not a readable GGUF file (truncated or damaged?)".into()))?;
        match meta.text("general.architecture").as_deref() {
            Some(PROJECTOR_ARCHITECTURE) => {}
            other => {
                return Err(fail(format!(
                    "not a multimodal projector (general.architecture is {}, a projector's is '{PROJECTOR_ARCHITECTURE}'): give the model's mmproj file",
                    other.map_or("missing".to_string(), |a| format!("'{a}'"))
                )))
            }
        }
        let width = meta
            .number("clip.vision.projection_dim")
            .and_then(|w| i32::try_from(w).ok());
        if let Some(width) = width.filter(|&w| w != model.n_embd()) {
            return Err(fail(format!(
                "the projector makes {width}-wide embeddings and the model takes {}-wide ones: it is another model's projector",
                model.n_embd()
            )));
        }
        let path_text = path
            .to_str()
            .ok_or_else(|| fail("the path is not UTF-8".into()))?;
        let params = MtmdContextParams {
            use_gpu: false,
            print_timings: false,
            n_threads: threads,
            media_marker: CString::new(llama_cpp_2::mtmd::mtmd_default_marker())
                .map_err(|e| fail(e.to_string()))?,
            image_min_tokens: -1,
            image_max_tokens: -1,
        };
        let ctx = MtmdContext::init_from_file(path_text, model, &params).map_err(|e| {
            fail(format!(
                "cannot load the projector ({e}); is it the mmproj file made for this model?"
            ))
        })?;
        if !ctx.support_vision() {
            return Err(fail("the projector has no vision encoder".into()));
        }
        let projector_bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        Ok(Arc::new(Vision {
            ctx: Mutex::new(ctx),
            info: VisionInfo {
                projector: path.to_path_buf(),
                projector_bytes,
                projector_type: meta.text("clip.projector_type"),
            },
        }))
    }

    /// The chunks of one image at its place in a prompt.
    fn tokenize(&self, image: &PromptImage) -> Result<MtmdInputChunks> {
        let pixels = &image.image;
        let bitmap = MtmdBitmap::from_image_data(pixels.width, pixels.height, &pixels.rgb)
            .map_err(|e| CoreError::invalid(format!("cannot use the image: {e}"), None))?;
        let text = MtmdInputText {
            text: llama_cpp_2::mtmd::mtmd_default_marker().to_string(),
            add_special: false,
            parse_special: true,
        };
        let ctx = self.ctx.lock().unwrap_or_else(PoisonError::into_inner);
        ctx.tokenize(text, &[&bitmap]).map_err(|e| {
            CoreError::invalid(format!("the projector cannot read the image: {e}"), None)
        })
    }

    /// Encodes `piece`'s image and decodes the piece into sequence `seq` from position `pos`;
    /// the position after it. `logits_last`: logits for the piece's last token.
    pub fn eval(
        &self,
        piece: &Piece,
        ctx: &mut LlamaContext<'_>,
        pos: usize,
        seq: i32,
        n_batch: i32,
        logits_last: bool,
    ) -> Result<usize> {
        let mut mtmd = self.ctx.lock().unwrap_or_else(PoisonError::into_inner);
        let n_past = i32::try_from(pos).map_err(|e| CoreError::Backend(e.to_string()))?;
        let end = piece
            .chunks
            .eval_chunks(&mut mtmd, ctx, n_past, seq, n_batch, logits_last)
            .map_err(|e| CoreError::Backend(format!("cannot encode an image: {e}")))?;
        usize::try_from(end).map_err(|e| CoreError::Backend(e.to_string()))
    }
}

/// The architecture of llama.cpp's multimodal projectors (`mmproj` files).
pub const PROJECTOR_ARCHITECTURE: &str = "clip";

/// A GGUF file's metadata (its header only, through llama.cpp's `gguf` reader).
pub struct Meta(llama_cpp_2::gguf::GgufContext);

impl Meta {
    /// `None` when the file is not a readable GGUF.
    pub fn read(path: &Path) -> Option<Meta> {
        llama_cpp_2::gguf::GgufContext::from_file(path).map(Meta)
    }

    /// A string value (`None` when absent or of another type: gguf aborts on a type mismatch,
    /// so the type is checked first).
    pub fn text(&self, key: &str) -> Option<String> {
        let idx = self.0.find_key(key);
        (idx >= 0 && self.0.kv_type(idx) == llama_cpp_sys_2::GGUF_TYPE_STRING)
            .then(|| self.0.val_str(idx).map(str::to_string))
            .flatten()
    }

    /// An unsigned or signed 32- or 64-bit integer value.
    pub fn number(&self, key: &str) -> Option<i64> {
        let idx = self.0.find_key(key);
        if idx < 0 {
            return None;
        }
        match self.0.kv_type(idx) {
            llama_cpp_sys_2::GGUF_TYPE_UINT32 => Some(i64::from(self.0.val_u32(idx))),
            llama_cpp_sys_2::GGUF_TYPE_INT32 => Some(i64::from(self.0.val_i32(idx))),
            llama_cpp_sys_2::GGUF_TYPE_UINT64 => i64::try_from(self.0.val_u64(idx)).ok(),
            _ => None,
        }
    }
}

/// One image's place in a prompt: its tokens `start..start + n_tokens` (begin and end text
/// included), which take `n_pos` positions.
pub struct Piece {
    pub start: usize,
    pub n_tokens: usize,
    pub n_pos: usize,
    chunks: MtmdInputChunks,
}

/// Where a prompt's images are.
#[derive(Default)]
pub struct Layout {
    /// In prompt order, not overlapping.
    pub pieces: Vec<Piece>,
}

impl Layout {
    /// Lays out `images` among `text` (text token ids): the prompt as one token per KV cell,
    /// and where the images are.
    pub fn build(
        vision: &Vision,
        text: &[i32],
        images: &[PromptImage],
    ) -> Result<(Vec<LlamaToken>, Layout)> {
        let mut tokens = Vec::with_capacity(text.len());
        let mut pieces = Vec::with_capacity(images.len());
        let mut next = 0;
        for image in images {
            if image.at < next || image.at > text.len() {
                return Err(CoreError::invalid(
                    "images are out of order in the prompt",
                    None,
                ));
            }
            tokens.extend(text[next..image.at].iter().map(|&t| LlamaToken(t)));
            next = image.at;
            let chunks = vision.tokenize(image)?;
            let start = tokens.len();
            let mut n_pos = 0usize;
            for i in 0..chunks.len() {
                let Some(chunk) = chunks.get(i) else { break };
                n_pos += usize::try_from(chunk.n_positions()).unwrap_or(0);
                match chunk.chunk_type() {
                    MtmdInputChunkType::Text => {
                        tokens.extend_from_slice(chunk.text_tokens().unwrap_or_default());
                    }
                    _ => {
                        let n = chunk.n_tokens();
                        tokens.extend((0..n).map(|k| stand_in(&image.image.digest, k)));
                    }
                }
            }
            let n_tokens = tokens.len() - start;
            if n_tokens == 0 {
                return Err(CoreError::invalid("the image gave no tokens", None));
            }
            pieces.push(Piece {
                start,
                n_tokens,
                n_pos,
                chunks,
            });
        }
        tokens.extend(text[next..].iter().map(|&t| LlamaToken(t)));
        Ok((tokens, Layout { pieces }))
    }

    /// The position of the token at `index` (its KV cell's RoPE position).
    pub fn pos_of(&self, index: usize) -> usize {
        let mut pos = index;
        for piece in self
            .pieces
            .iter()
            .take_while(|p| p.start + p.n_tokens <= index)
        {
            pos = pos + piece.n_pos - piece.n_tokens;
        }
        pos
    }

    /// `n` moved back to the start of the image piece it falls inside, if any: a cached prefix
    /// cannot end inside an image.
    pub fn boundary(&self, n: usize) -> usize {
        self.pieces
            .iter()
            .find(|p| p.start < n && n < p.start + p.n_tokens)
            .map_or(n, |p| p.start)
    }

    /// The piece starting at token `index`.
    pub fn piece_at(&self, index: usize) -> Option<&Piece> {
        self.pieces.iter().find(|p| p.start == index)
    }

    /// The start of the first piece at or after `index` (`None`: no image from there on).
    pub fn next_start(&self, index: usize) -> Option<usize> {
        self.pieces
            .iter()
            .map(|p| p.start)
            .find(|&start| start >= index)
    }
}

/// The id standing for an image's `k`-th embedding token: negative (never a vocabulary id,
/// never llama.cpp's `LLAMA_TOKEN_NULL`), from the image's digest.
fn stand_in(digest: &str, k: usize) -> LlamaToken {
    let seed = u32::from_str_radix(digest.get(..8).unwrap_or("0"), 16).unwrap_or(0);
    let mixed = seed.wrapping_add((k as u32).wrapping_mul(0x9E37_79B1)) & 0x3FFF_FFFF;
    LlamaToken(-2 - mixed as i32)
}

/// True for the ids [`Layout::build`] gives image tokens.
pub fn is_stand_in(token: LlamaToken) -> bool {
    token.0 < -1
}
