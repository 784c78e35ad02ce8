use crate::{
    CoreError, EmbedRequest, EmbeddingInfo, FimTokens, GenerateRequest, GenerationStream, Result,
    TokenId, VisionInfo,
};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

/// What to load and how.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelSpec {
    /// The id clients use to name the model.
    pub id: String,
    pub path: PathBuf,
    /// The context window one request may use, in tokens (`None`: a backend default).
    pub ctx_size: Option<u32>,
    /// Compute threads (`None`: a backend default).
    pub threads: Option<u32>,
    /// Requests decoded together, each with its own `ctx_size` window (`None`: 1).
    pub parallel: Option<u32>,
    /// KV cache cells the sequences share, at least `ctx_size` (`None`: `parallel` ×
    /// `ctx_size`, so the running sequences always fit). Fewer take less memory; the cells a
    /// shared prefix saves are then room for other sequences.
    #[serde(default)]
    pub kv_size: Option<u32>,
    /// Whether all sequences share one KV cache (llama.cpp's unified KV; `None`: they do).
    /// With `Some(false)` each sequence has a KV stream of its own, `ctx_size` cells: a
    /// prefix is copied rather than shared, and `kv_size` must be unset.
    #[serde(default)]
    pub kv_unified: Option<bool>,
    /// Flash attention (`None`: auto, as llama-server and the reference runs that parity is
    /// proven against).
    #[serde(default)]
    pub flash_attn: Option<FlashAttn>,
    /// Requests that may wait for a free sequence; beyond them a request is refused as busy
    /// (`None`: a backend default).
    pub queue: Option<u32>,
    /// A Jinja chat template overriding the model's own.
    pub chat_template: Option<String>,
    /// Longest a request may wait for a free sequence before it is refused (`None`: a backend
    /// default; zero: no limit).
    pub queue_timeout: Option<std::time::Duration>,
    /// Bytes of host memory for prompt KV kept after it leaves the context (`None`: a backend
    /// default; zero: only what the context itself holds).
    pub cache_bytes: Option<u64>,
    /// The file's sha256 (hex) when the loader already knows it (a verified download), so that
    /// listings can show it without hashing the file.
    pub sha256: Option<String>,
    /// The multimodal projector (llama.cpp's `mmproj` GGUF) that lets the model read images.
    #[serde(default)]
    pub projector: Option<PathBuf>,
}

/// Flash attention, as llama.cpp's `--flash-attn` (`llama_flash_attn_type`).
///
/// It changes the arithmetic of attention, so greedy outputs may differ from those with it
/// off where two tokens nearly tie. On a CPU with one KV cache for all sequences, a token
/// skips the cells of other sequences (ggml's kernel passes over keys masked out), where
/// attention without it computes over every cell in use and masks afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlashAttn {
    Off,
    On,
    /// llama.cpp decides: on where the backend supports it (the CPU does). llama-server's
    /// default, and ours.
    #[default]
    Auto,
}

/// Facts about a loaded model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelInfo {
    pub id: String,
    pub backend: String,
    pub path: PathBuf,
    /// Context window one request may use.
    pub n_ctx: usize,
    /// Context length the model was trained with.
    pub n_ctx_train: usize,
    pub n_vocab: usize,
    /// Whether tokenizing a prompt with `add_special` adds a BOS token.
    pub add_bos: bool,
    /// The Jinja source of the chat template in use.
    pub chat_template: String,
    /// True when `chat_template` is Minerva's default (the model has none and no override was given).
    pub default_template: bool,
    /// What the model file says about itself, for model listings.
    pub file: ModelFile,
    /// Whether and how the model computes embeddings ([`Model::embed`]); `None`: it cannot.
    #[serde(default)]
    pub embedding: Option<EmbeddingInfo>,
    /// The vocabulary's fill-in-the-middle tokens (all `None` for a backend that cannot tell).
    #[serde(default)]
    pub fim: FimTokens,
    /// Whether and how the model reads images (`None`: text only).
    #[serde(default)]
    pub vision: Option<VisionInfo>,
    /// The llama.cpp CPU backend variant the model runs on (`zen4`, `haswell`, …, or `built-in`;
    /// see minerva-llama's `kernels` module); `None` for a backend without such variants.
    #[serde(default)]
    pub cpu_variant: Option<String>,
}

/// Facts about a model's file: size, hash, architecture, parameters, quantization, metadata.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ModelFile {
    /// The file format, e.g. `"gguf"`.
    pub format: String,
    /// Size of the file in bytes.
    pub size: u64,
    /// Last modification time of the file.
    pub modified: Option<SystemTime>,
    /// sha256 of the file (hex), when known without hashing it (see [`ModelSpec::sha256`]).
    pub sha256: Option<String>,
    /// The architecture, e.g. `"qwen2"` (GGUF `general.architecture`).
    pub architecture: Option<String>,
    /// Number of parameters.
    pub n_params: u64,
    /// Quantization in llama.cpp's naming, e.g. `"Q4_K_M"` or `"F16"`.
    pub quantization: Option<String>,
    /// The file's scalar metadata as key and text value (GGUF key/value pairs; arrays such as the
    /// vocabulary are left out).
    pub metadata: Vec<(String, String)>,
}

/// What one sequence of a model is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SlotState {
    #[default]
    Idle,
    /// Reading its prompt.
    Prompt,
    /// Generating tokens.
    Generating,
}

/// One sequence (slot) of a loaded model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SlotStatus {
    pub id: usize,
    pub state: SlotState,
    pub prompt_tokens: usize,
    pub prompt_processed: usize,
    pub generated: usize,
    /// Prompt tokens of the current request taken from the prompt cache.
    pub cached_tokens: usize,
    /// Tokens whose KV this sequence holds (an idle one keeps its last request's as cache).
    pub kv_tokens: usize,
}

/// The prompt cache kept in host memory, beside what the context's sequences hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheStatus {
    pub entries: usize,
    pub tokens: usize,
    pub bytes: u64,
    pub budget_bytes: u64,
}

/// The KV cache a model's sequences share (llama.cpp's unified KV cache): a pool of cells, one
/// per token position of one or more sequences. A prefix shared by several sequences is held
/// once. Zero for a backend that does not report it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvStatus {
    /// Cells in the pool (`parallel` × the context window of one request).
    pub cells: usize,
    /// Cells held by at least one sequence, running or kept as prompt cache.
    pub cells_used: usize,
    /// Cells the sequences would hold if none were shared (the sum of their lengths).
    pub cells_unshared: usize,
}

/// What a loaded model is doing now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelStatus {
    pub slots: Vec<SlotStatus>,
    /// Requests waiting for a free slot.
    pub queued: usize,
    pub cache: CacheStatus,
    #[serde(default)]
    pub kv: KvStatus,
}

/// A loaded model. Implementations are shared across request tasks (`Send + Sync`);
/// anything that is not (a llama.cpp context) lives on a thread the model owns.
///
/// Tokenization and rendering are synchronous and may take milliseconds on long inputs:
/// callers on an async runtime run them on a blocking thread.
pub trait Model: Send + Sync {
    fn info(&self) -> &ModelInfo;

    /// Token ids of `text` with the model's own tokenizer. `add_special` adds BOS/EOS as the
    /// model's metadata asks; `parse_special` turns special tokens written as text into their ids.
    fn tokenize(&self, text: &str, add_special: bool, parse_special: bool) -> Result<Vec<TokenId>>;

    /// The raw bytes of one token. `special` renders control tokens as their text.
    fn token_bytes(&self, token: TokenId, special: bool) -> Result<Vec<u8>>;

    /// The raw bytes of each of `tokens`, in order: one call for what would otherwise be one per
    /// token (one round trip for a model in a worker process).
    fn token_bytes_many(&self, tokens: &[TokenId], special: bool) -> Result<Vec<Vec<u8>>> {
        tokens
            .iter()
            .map(|&t| self.token_bytes(t, special))
            .collect()
    }

    /// Renders a conversation (OpenAI-style message objects) with the model's chat template.
    /// `kwargs` are extra template variables (transformers' `apply_chat_template(**kwargs)`:
    /// `enable_thinking`, ...; empty for none).
    fn render_chat(
        &self,
        messages: &[serde_json::Value],
        tools: Option<&serde_json::Value>,
        kwargs: &serde_json::Map<String, serde_json::Value>,
        add_generation_prompt: bool,
    ) -> Result<String>;

    /// Whether [`SamplingParams::format`](crate::SamplingParams::format) grammars are enforced
    /// while sampling. A backend that cannot refuses requests with one; the engine then leaves
    /// tool calls unconstrained (parsed only) and refuses `tool_choice` values that need one.
    fn supports_grammar(&self) -> bool {
        true
    }

    /// Its sequences and queue, for monitoring (and for tests that check nothing leaked).
    fn status(&self) -> ModelStatus {
        ModelStatus::default()
    }

    /// Starts a generation. Refuses, before decoding anything, an empty prompt, token ids
    /// outside the vocabulary (`InvalidRequest`) and a prompt that leaves no room in the
    /// context window (`ContextOverflow`). Events arrive on the returned stream as the backend produces them;
    /// dropping the stream stops the generation at the next token.
    fn generate(&self, request: GenerateRequest) -> Result<GenerationStream>;

    /// Computes one pooled embedding per input ([`EmbedRequest`]): `Embedding` events, then
    /// `Done`. Refuses an empty request, an empty input or token ids outside the vocabulary
    /// (`InvalidRequest`) and an input over [`EmbeddingInfo::n_ctx`] (`ContextOverflow`).
    /// Dropping the stream abandons the request. The default refuses: the model does not embed.
    fn embed(&self, request: EmbedRequest) -> Result<GenerationStream> {
        let _ = request;
        Err(CoreError::Unsupported(format!(
            "model '{}' ({} backend) does not compute embeddings",
            self.info().id,
            self.info().backend
        )))
    }

    /// Memory the loaded model holds (weights, KV cache, compute buffers), in bytes, for the
    /// model manager's budget and for listings. The default is the model file's size.
    fn memory_bytes(&self) -> u64 {
        self.info().file.size
    }

    /// The operating-system process that runs the model, when it is not this one (an
    /// out-of-process worker).
    fn process_id(&self) -> Option<u32> {
        None
    }

    /// Why the model can no longer serve (its worker process died, ...); `None` while it can.
    /// A failed model is dropped by its owner and loaded again on the next request.
    fn failure(&self) -> Option<String> {
        None
    }
}

/// A family of models that one engine can run (llama.cpp for GGUF, MLX for HF directories, ...).
pub trait Backend: Send + Sync {
    fn name(&self) -> &'static str;
    fn load(&self, spec: &ModelSpec) -> Result<Arc<dyn Model>>;
}
