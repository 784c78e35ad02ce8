use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::collections::BTreeMap;

/// Reads a field that OpenAI documents as nullable: JSON `null` means the same as leaving the
/// field out (the type's default).
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

/// `stop`: one string or a list of them.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum StopField {
    One(String),
    Many(Vec<String>),
}

impl StopField {
    /// The stop strings as a list.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            StopField::One(s) => vec![s],
            StopField::Many(v) => v,
        }
    }
}

/// Sampling fields shared by chat and text completions (OpenAI's, plus llama-server's
/// `top_k`, `min_p`, `repeat_penalty`, `ignore_eos` and `cache_prompt` extensions).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
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
    #[serde(default, deserialize_with = "nullable")]
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

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct StreamOptions {
    #[serde(default, deserialize_with = "nullable")]
    pub include_usage: bool,
}

/// `POST /v1/chat/completions`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct ChatCompletionRequest {
    pub model: String,
    /// Kept as JSON: validated by the server, handed to the chat template as they are.
    pub messages: Vec<Value>,
    /// Parsed from the same object by [`SamplingFields`] (not `flatten`, which loses field paths in errors).
    #[serde(skip)]
    pub sampling: SamplingFields,
    pub max_completion_tokens: Option<i64>,
    #[serde(default, deserialize_with = "nullable")]
    pub logprobs: bool,
    pub top_logprobs: Option<i64>,
    pub tools: Option<Value>,
    /// `"auto"`, `"none"`, `"required"` or `{"type": "function", "function": {"name"}}`.
    pub tool_choice: Option<Value>,
    /// More than one call per turn (default true).
    pub parallel_tool_calls: Option<bool>,
    pub response_format: Option<Value>,
    /// OpenAI's `none`, `minimal`, `low`, `medium`, `high` (`xhigh`): a reasoning budget for
    /// models that think (kept as JSON: checked by the server).
    pub reasoning_effort: Option<Value>,
    /// llama-server's: `auto`/`deepseek` (reasoning in `reasoning_content`) or `none` (left in
    /// `content` as generated).
    pub reasoning_format: Option<Value>,
    /// Minerva's (llama-server's `--reasoning-budget` per request): most tokens the reasoning
    /// block may take; -1 for no limit.
    pub reasoning_budget: Option<Value>,
    /// llama-server's and vLLM's: extra variables for the chat template (`enable_thinking`).
    pub chat_template_kwargs: Option<Value>,
    // Fields that would change the reply and that Minerva cannot honour: the server refuses
    // each when it is present and not `null`, naming it. Fields that cannot change the reply
    // (`user`, `store`, `metadata`, `service_tier`, ...) are not read.
    /// Audio output.
    pub audio: Option<Value>,
    /// Output modalities; `["text"]` is what Minerva does.
    pub modalities: Option<Vec<String>>,
    /// The hosted web search tool.
    pub web_search_options: Option<Value>,
    /// Legacy function calling (use `tools`).
    pub functions: Option<Value>,
    /// Legacy function calling (use `tool_choice`).
    pub function_call: Option<Value>,
    /// Moderation of the input and output by a moderation model.
    pub moderation: Option<Value>,
    /// How verbose the reply should be; `medium`, the default, is what a model does anyway.
    pub verbosity: Option<String>,
}

/// `prompt` of a text completion: a string, token ids, or a batch of one of either.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(
    untagged,
    expecting = "a string, an array of strings, an array of token ids (integers) or an array of arrays of token ids"
)]
pub enum PromptField {
    Text(String),
    Tokens(Vec<i64>),
    Texts(Vec<String>),
    TokenBatches(Vec<Vec<i64>>),
}

/// `POST /v1/completions`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct CompletionRequest {
    pub model: String,
    /// `None` when absent or `null`: an empty prompt (a new document).
    pub prompt: Option<PromptField>,
    /// Parsed from the same object by [`SamplingFields`] (not `flatten`, which loses field paths in errors).
    #[serde(skip)]
    pub sampling: SamplingFields,
    /// Number of alternatives per token to report (0 reports the chosen token only).
    pub logprobs: Option<i64>,
    #[serde(default, deserialize_with = "nullable")]
    pub echo: bool,
    pub suffix: Option<String>,
    /// Candidates generated per choice, the best returned; only 1 is supported.
    pub best_of: Option<i64>,
}

/// llama-server's `POST /tokenize`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct DetokenizeRequest {
    pub tokens: Vec<i64>,
    pub model: Option<String>,
}

fn yes() -> bool {
    true
}
