use crate::{CoreError, TokenId};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FinishReason {
    /// End of generation token, or a stop string matched.
    Stop,
    /// `max_tokens` reached, or the context window is full.
    Length,
    /// The reply ended after calling tools (set by the engine's reply parser; backends never
    /// send it).
    ToolCalls,
}

impl FinishReason {
    /// The name OpenAI and Ollama use.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
        }
    }
}

/// A log-probability of one candidate token (natural log, from the raw logits).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenLogprob {
    pub id: TokenId,
    pub bytes: Vec<u8>,
    #[serde(with = "crate::nonfinite::single")]
    pub logprob: f32,
}

/// One generated token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenOut {
    pub id: TokenId,
    /// The token's text as raw bytes: may be part of a multi-byte character.
    pub bytes: Vec<u8>,
    /// Present when the request asked for log-probabilities.
    #[serde(default, with = "crate::nonfinite::optional")]
    pub logprob: Option<f32>,
    /// The most likely alternatives, most likely first.
    pub top_logprobs: Vec<TokenLogprob>,
}

/// Token counts and timings of one generation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    /// Prompt tokens that were taken from a cache instead of being computed.
    pub cached_tokens: usize,
    pub prompt_ms: f64,
    pub generation_ms: f64,
}

/// What a backend sends for a generation, in order: tokens, then exactly one `Done`
/// (or an error). An embeddings request ([`Model::embed`](crate::Model::embed)) sends one
/// `Embedding` per input instead of tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum GenEvent {
    Token(TokenOut),
    /// The pooled, unnormalised vector of input `index` of an [`EmbedRequest`](crate::EmbedRequest).
    Embedding {
        index: usize,
        vector: Vec<f32>,
    },
    Done {
        reason: FinishReason,
        usage: Usage,
    },
}

/// The receiving end of a generation. Dropping it cancels the generation.
pub type GenerationStream = mpsc::UnboundedReceiver<Result<GenEvent, CoreError>>;
