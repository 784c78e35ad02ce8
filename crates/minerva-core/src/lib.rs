//! # minerva-core: the contract between Minerva's front end and its backends
//!
//! Everything that runs a model (llama.cpp today; MLX, a native safetensors engine and an
//! out-of-process worker later) implements two small traits:
//!
//! * [`Backend`] turns a [`ModelSpec`] (a path plus load options) into a loaded [`Model`].
//! * [`Model`] tokenizes and detokenizes with the model's own vocabulary, renders a chat
//!   with the model's template, and generates: [`Model::generate`] takes already-tokenized
//!   input and returns a [`GenerationStream`] of [`GenEvent`]s. Dropping the stream cancels
//!   the generation at the next token; the backend notices through the closed channel.
//!
//! Backends emit raw token bytes. Turning bytes into text (holding back an incomplete UTF-8
//! character) and cutting at stop strings is done once for all backends by [`text::TextAssembler`],
//! so every backend streams, stops and reports `finish_reason` the same way.
//!
//! This crate knows nothing of HTTP, wire formats or any ML library: it must not depend on
//! axum, llama.cpp, Python or a tokenizer implementation.

mod backend;
mod embed;
mod error;
mod event;
pub mod gguf;
pub mod hf;
pub mod library;
mod media;
mod nonfinite;
mod reasoning;
mod request;
pub mod text;

pub use backend::{
    Backend, CacheStatus, FlashAttn, KvStatus, Model, ModelFile, ModelInfo, ModelSpec, ModelStatus,
    SlotState, SlotStatus,
};
pub use embed::{fim_token_kind, EmbedRequest, EmbeddingInfo, FimTokens, Pooling};
pub use error::{CoreError, Result};
pub use event::{FinishReason, GenEvent, GenerationStream, TokenLogprob, TokenOut, Usage};
pub use library::{BlobUpload, Library, LibraryModel, ModelSettings, PullProgress};
pub use media::{media_marker, Image, PromptImage, VisionInfo};
pub use reasoning::{ReasoningPiece, ReasoningSpec, ReasoningSplitter, ReasoningState};
pub use request::{GenerateRequest, GrammarSpec, LogprobRequest, OutputFormat, SamplingParams};

/// A token id in a model's vocabulary.
pub type TokenId = i32;
