//! Images in a prompt: their chunks from llama.cpp's multimodal library (`libmtmd`), and the
//! prompt's layout of tokens and positions around them.
//!
//! Each image is tokenized (`mtmd_tokenize`) together with a little of the text around it: the
//! text before it from the last control token (`<|im_start|>user\n`, at most [`MAX_LEAD`]
//! tokens) and the text after it up to the next image or the prompt's end (at most
//! [`MAX_TAIL`] tokens). libmtmd gives `[lead + begin, image, end + tail]` (for Qwen2-VL the
//! begin and end text are `<|vision_start|>`, `<|vision_end|>`), which it evaluates in three
//! `llama_decode` calls, as llama-server does, instead of five with the text decoded apart.
//! libmtmd tokenizes each text part on its own, as the engine does, so the lead and tail give
//! the engine's tokens back when their text round-trips; that is checked, and an image whose
//! text does not is tokenized alone (`[begin, image, end]`).
//!
//! The prompt is kept as one token per KV cell, so the prompt cache's prefix matching works
//! unchanged: an image's embedding tokens are stood for by ids derived from the image's
//! digest (negative, never a vocabulary id), so the same image at the same place matches and
//! another image does not. A cached prefix may not end inside a piece's lead or image (it may
//! inside its tail: the rest is plain text). Positions (RoPE) differ from token indices after
//! an image when the model uses M-RoPE: an image of `nx × ny` embedding tokens advances the
//! position by `max(nx, ny)`; [`Layout`] converts.

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::mtmd::{
    MtmdBitmap, MtmdContext, MtmdContextParams, MtmdInputChunkType, MtmdInputChunks, MtmdInputText,
};
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::vocab::LlamaVocab;
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

    /// The chunks of one image at its place in a prompt, with the text `lead` before it and
    /// `tail` after it.
    fn tokenize(&self, image: &PromptImage, lead: &str, tail: &str) -> Result<MtmdInputChunks> {
        let pixels = &image.image;
        let bitmap = MtmdBitmap::from_image_data(pixels.width, pixels.height, &pixels.rgb)
            .map_err(|e| CoreError::invalid(format!("cannot use the image: {e}"), None))?;
        let text = MtmdInputText {
            text: format!("{lead}{}{tail}", llama_cpp_2::mtmd::mtmd_default_marker()),
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

/// Most text tokens before an image evaluated with it (see the module's note).
pub const MAX_LEAD: usize = 64;
/// Most text tokens after an image evaluated with it: the image's step stays bounded.
pub const MAX_TAIL: usize = 512;

/// One image's place in a prompt: its tokens `start..start + n_tokens` (lead, begin text,
/// the image's embedding tokens at `image..image + image_tokens`, end text, tail), which take
/// `n_tokens - image_tokens + image_pos` positions.
pub struct Piece {
    pub start: usize,
    pub n_tokens: usize,
    pub image: usize,
    pub image_tokens: usize,
    pub image_pos: usize,
    chunks: MtmdInputChunks,
}

impl Piece {
    /// The index after the image's embedding tokens.
    fn image_end(&self) -> usize {
        self.image + self.image_tokens
    }
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
        model: &LlamaModel,
        text: &[i32],
        images: &[PromptImage],
    ) -> Result<(Vec<LlamaToken>, Layout)> {
        let vocab = model.vocab();
        let mut tokens = Vec::with_capacity(text.len());
        let mut pieces = Vec::with_capacity(images.len());
        let mut next = 0;
        for (i, image) in images.iter().enumerate() {
            if image.at < next || image.at > text.len() {
                return Err(CoreError::invalid(
                    "images are out of order in the prompt",
                    None,
                ));
            }
            let lead = lead_start(&vocab, &text[next..image.at]).map_or(image.at, |k| next + k);
            let until = images.get(i + 1).map_or(text.len(), |n| n.at.max(image.at));
            let tail = until.min(image.at + MAX_TAIL);
            let (chunks, lead, tail) = match tokenize_with(
                vision,
                &vocab,
                image,
                &text[lead..image.at],
                &text[image.at..tail],
            )? {
                Some(chunks) => (chunks, lead, tail),
                None => (vision.tokenize(image, "", "")?, image.at, image.at),
            };
            tokens.extend(text[next..lead].iter().map(|&t| LlamaToken(t)));
            let start = tokens.len();
            let (mut at, mut image_tokens, mut image_pos) = (start, 0, 0);
            for k in 0..chunks.len() {
                let Some(chunk) = chunks.get(k) else { break };
                match chunk.chunk_type() {
                    MtmdInputChunkType::Text => {
                        tokens.extend_from_slice(chunk.text_tokens().unwrap_or_default());
                    }
                    _ => {
                        at = tokens.len();
                        image_tokens = chunk.n_tokens();
                        image_pos = usize::try_from(chunk.n_positions()).unwrap_or(0);
                        tokens.extend((0..image_tokens).map(|k| stand_in(&image.image.digest, k)));
                    }
                }
            }
            if image_tokens == 0 {
                return Err(CoreError::invalid("the image gave no tokens", None));
            }
            tracing::debug!(
                lead = at.saturating_sub(start),
                image_tokens,
                after = tokens.len() - at - image_tokens,
                chunks = chunks.len(),
                "image piece"
            );
            pieces.push(Piece {
                start,
                n_tokens: tokens.len() - start,
                image: at,
                image_tokens,
                image_pos,
                chunks,
            });
            next = tail;
        }
        tokens.extend(text[next..].iter().map(|&t| LlamaToken(t)));
        Ok((tokens, Layout { pieces }))
    }

    /// The position of the token at `index` (its KV cell's RoPE position).
    pub fn pos_of(&self, index: usize) -> usize {
        let mut pos = index;
        for piece in self.pieces.iter().take_while(|p| p.image_end() <= index) {
            pos = pos + piece.image_pos - piece.image_tokens;
        }
        pos
    }

    /// `n` moved back to the start of the piece whose lead or image it falls inside, if any: a
    /// cached prefix cannot end there (inside a tail it can: the rest is plain text).
    pub fn boundary(&self, n: usize) -> usize {
        self.pieces
            .iter()
            .find(|p| p.start < n && n < p.image_end())
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

/// Where the text before an image may start to be evaluated with it: at its last control
/// token (`<|im_start|>`, `<start_of_turn>`), at most [`MAX_LEAD`] tokens back.
fn lead_start(vocab: &LlamaVocab<'_>, before: &[i32]) -> Option<usize> {
    let from = before.len().saturating_sub(MAX_LEAD);
    before[from..]
        .iter()
        .rposition(|&t| vocab.is_control(LlamaToken(t)))
        .map(|k| from + k)
}

/// The image's chunks with `lead` and `tail` (text token ids) around it, when libmtmd gives
/// exactly those tokens back from their text (`None`: it does not; the caller tokenizes the
/// image alone).
fn tokenize_with(
    vision: &Vision,
    vocab: &LlamaVocab<'_>,
    image: &PromptImage,
    lead: &[i32],
    tail: &[i32],
) -> Result<Option<MtmdInputChunks>> {
    if lead.is_empty() && tail.is_empty() {
        return Ok(None);
    }
    let text = |ids: &[i32]| {
        let bytes: Vec<u8> = ids
            .iter()
            .flat_map(|&t| vocab.token_to_piece(LlamaToken(t), true, None))
            .collect();
        String::from_utf8(bytes).ok()
    };
    let (Some(lead_text), Some(tail_text)) = (text(lead), text(tail)) else {
        return Ok(None);
    };
    let chunks = vision.tokenize(image, &lead_text, &tail_text)?;
    let text_of = |k: usize| {
        chunks
            .get(k)
            .filter(|c| c.chunk_type() == MtmdInputChunkType::Text)
            .and_then(|c| {
                c.text_tokens()
                    .map(|t| t.iter().map(|t| t.0).collect::<Vec<i32>>())
            })
            .unwrap_or_default()
    };
    let first = text_of(0);
    let last = text_of(chunks.len().saturating_sub(1));
    let images = (0..chunks.len())
        .filter_map(|k| chunks.get(k))
        .filter(|c| c.chunk_type() != MtmdInputChunkType::Text)
        .count();
    let same = images == 1 && chunks.len() >= 2 && first.starts_with(lead) && last.ends_with(tail);
    if !same {
        tracing::debug!(
            lead = lead.len(),
            tail = tail.len(),
            "image text does not round-trip: the image is evaluated alone"
        );
    }
    Ok(same.then_some(chunks))
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
