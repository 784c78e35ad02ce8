use serde::Deserialize;
use serde_json::Value;

/// `POST /v1/messages`. Content, tools and options are kept as JSON: the server checks them
/// and names the field of every problem.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[schema(as = anthropic::MessagesRequest)]
pub struct MessagesRequest {
    pub model: String,
    /// `[{"role": "user"|"assistant", "content": string | [blocks]}]`.
    pub messages: Vec<Value>,
    /// A string, or text blocks.
    pub system: Option<Value>,
    /// Required by Anthropic; its absence is the server's 400 (read as optional so that the
    /// error names the field).
    #[schema(required = true, value_type = i64)]
    pub max_tokens: Option<i64>,
    pub stop_sequences: Option<Vec<String>>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<i32>,
    #[serde(default)]
    pub stream: Option<bool>,
    /// `[{"name", "description", "input_schema"}]`.
    pub tools: Option<Value>,
    /// `{"type": "auto"|"any"|"tool"|"none", "name"?, "disable_parallel_tool_use"?}`.
    pub tool_choice: Option<Value>,
    /// `{"type": "enabled", "budget_tokens": N}` or `{"type": "disabled"}`.
    pub thinking: Option<Value>,
    /// `{"format": {"type": "json_schema", "schema": {...}}}`: structured output.
    pub output_config: Option<Value>,
    /// llama-server's (and Minerva's OpenAI routes'): reuse cached prompt KV (default true).
    pub cache_prompt: Option<bool>,
    /// Accepted without effect: they cannot change the reply.
    pub metadata: Option<Value>,
    pub service_tier: Option<Value>,
}

/// `POST /v1/messages/count_tokens`: what the prompt of a Messages request would count.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[schema(as = anthropic::CountTokensRequest)]
pub struct CountTokensRequest {
    pub model: String,
    pub messages: Vec<Value>,
    pub system: Option<Value>,
    pub tools: Option<Value>,
    pub tool_choice: Option<Value>,
    pub thinking: Option<Value>,
}
