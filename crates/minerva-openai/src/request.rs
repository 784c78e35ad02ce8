use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// `stop`: one string or a list of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StopField {
    One(String),
    Many(Vec<String>),
}

impl StopField {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            StopField::One(s) => vec![s],
            StopField::Many(v) => v,
        }
    }
}

/// Sampling fields shared by chat and text completions (OpenAI's, plus llama-server's
/// `top_k`, `min_p`, `repeat_penalty`, `ignore_eos` and `cache_prompt` extensions).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SamplingFields {
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<i32>,
    pub min_p: Option<f32>,
    pub repeat_penalty: Option<f32>,
    pub repeat_last_n: Option<i32>,
    pub presence_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
    pub seed: Option<i64>,
    /// Token id (as a string key, as OpenAI sends it) to a bias in [-100, 100].
    pub logit_bias: Option<BTreeMap<String, f32>>,
    pub stop: Option<StopField>,
    pub max_tokens: Option<i64>,
    pub n: Option<i64>,
    #[serde(default)]
    pub stream: bool,
    pub stream_options: Option<StreamOptions>,
    /// llama-server's: never end at an end-of-generation token (benchmarks).
    pub ignore_eos: Option<bool>,
    /// llama-server's: reuse cached prompt KV (default true); `false` computes the whole prompt.
    pub cache_prompt: Option<bool>,
    /// llama-server's: a JSON schema the output must validate against (kept as JSON: checked
    /// and compiled by the server).
    pub json_schema: Option<Value>,
    /// llama-server's: a GBNF grammar (root rule `root`) the output must match (kept as JSON:
    /// a non-string is the server's 400).
    pub grammar: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

/// `POST /v1/chat/completions`.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatCompletionRequest {
    pub model: String,
    /// Kept as JSON: validated by the server, handed to the chat template as they are.
    pub messages: Vec<Value>,
    /// Parsed from the same object by [`SamplingFields`] (not `flatten`, which loses field paths in errors).
    #[serde(skip)]
    pub sampling: SamplingFields,
    pub max_completion_tokens: Option<i64>,
    #[serde(default)]
    pub logprobs: bool,
    pub top_logprobs: Option<i64>,
    pub tools: Option<Value>,
    pub response_format: Option<Value>,
}

/// `prompt` of a text completion: a string, token ids, or a batch of one of either.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum PromptField {
    Text(String),
    Tokens(Vec<i64>),
    Texts(Vec<String>),
    TokenBatches(Vec<Vec<i64>>),
}

/// `POST /v1/completions`.
#[derive(Debug, Clone, Deserialize)]
pub struct CompletionRequest {
    pub model: String,
    pub prompt: PromptField,
    /// Parsed from the same object by [`SamplingFields`] (not `flatten`, which loses field paths in errors).
    #[serde(skip)]
    pub sampling: SamplingFields,
    /// Number of alternatives per token to report (0 reports the chosen token only).
    pub logprobs: Option<i64>,
    #[serde(default)]
    pub echo: bool,
    pub suffix: Option<String>,
}

/// llama-server's `POST /tokenize`.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenizeRequest {
    pub content: String,
    #[serde(default)]
    pub add_special: bool,
    #[serde(default = "yes")]
    pub parse_special: bool,
    #[serde(default)]
    pub with_pieces: bool,
    pub model: Option<String>,
}

/// llama-server's `POST /detokenize`.
#[derive(Debug, Clone, Deserialize)]
pub struct DetokenizeRequest {
    pub tokens: Vec<i64>,
    pub model: Option<String>,
}

fn yes() -> bool {
    true
}
