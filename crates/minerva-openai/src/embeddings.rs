//! `POST /v1/embeddings` (OpenAI) and llama-server's `POST /infill`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `input` of an embeddings request: a string, a list of strings, token ids, or a list of
/// token-id lists (OpenAI's four shapes, those of a completion's `prompt`).
pub type EmbeddingInput = crate::PromptField;

/// `POST /v1/embeddings`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct EmbeddingRequest {
    pub model: String,
    pub input: EmbeddingInput,
    /// `"float"` (the default) or `"base64"` (little-endian f32 bytes, base64-encoded).
    pub encoding_format: Option<String>,
    /// The vector length asked for.
    pub dimensions: Option<i64>,
    /// Who is asking (not read: it cannot change the result).
    pub user: Option<Value>,
}

/// One vector: a float list, or its bytes in base64 (`encoding_format: "base64"`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum EmbeddingVector {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EmbeddingData {
    /// Always `"embedding"`.
    pub object: &'static str,
    pub index: usize,
    pub embedding: EmbeddingVector,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EmbeddingUsage {
    pub prompt_tokens: usize,
    pub total_tokens: usize,
}

/// The response of `POST /v1/embeddings`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EmbeddingResponse {
    /// Always `"list"`.
    pub object: &'static str,
    pub data: Vec<EmbeddingData>,
    pub model: String,
    pub usage: EmbeddingUsage,
}

/// One other file of llama-server's `/infill` `input_extra`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(expecting = "an object {\"filename\": string, \"text\": string}")]
pub struct InfillChunk {
    pub text: String,
    pub filename: Option<String>,
}

/// llama-server's `POST /infill`: the code before and after the cursor, other files as
/// context, `n_predict`, and llama-server's sampling fields ([`SamplingFields`]: `temperature`,
/// `top_k`, `stop`, `stream`, `cache_prompt`, ...).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct InfillRequest {
    /// Minerva's: which model (the first served when absent, as llama-server serves one).
    pub model: Option<String>,
    pub input_prefix: String,
    pub input_suffix: String,
    #[serde(default)]
    pub input_extra: Vec<InfillChunk>,
    /// Text the middle starts with, after the prefix.
    #[serde(default)]
    pub prompt: String,
    /// Most tokens to generate; -1 (the default) until the end of generation or the context.
    pub n_predict: Option<i64>,
    /// Parsed from the same object by [`SamplingFields`] (not `flatten`, which loses field paths in errors).
    #[serde(skip)]
    pub sampling: crate::SamplingFields,
}

/// llama-server's `timings` object (milliseconds).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InfillTimings {
    pub cache_n: usize,
    pub prompt_n: usize,
    pub prompt_ms: f64,
    pub predicted_n: usize,
    pub predicted_ms: f64,
}

/// One object of `/infill`'s answer (the whole answer, or one streamed piece): llama-server's
/// native completion shape.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InfillResponse {
    pub content: String,
    pub stop: bool,
    pub model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_predicted: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_evaluated: Option<usize>,
    /// `"eos"`, `"limit"` or `"word"` (a stop string) on the last object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopping_word: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timings: Option<InfillTimings>,
}
