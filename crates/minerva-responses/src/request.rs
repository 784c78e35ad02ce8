use serde::Deserialize;
use serde_json::Value;

/// `POST /v1/responses`. Fields kept as JSON values are checked and translated by the server,
/// which names the offending path in its errors; fields not listed here are ignored (`include`,
/// `truncation`, `service_tier`, `user`, `safety_identifier`, `prompt_cache_key`, ...).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[schema(as = responses::ResponsesRequest)]
pub struct ResponsesRequest {
    #[serde(default)]
    pub model: String,
    /// A string (one user message) or a list of input items: messages (`role` `user`,
    /// `assistant`, `system`, `developer`; content a string or `input_text`/`output_text`
    /// parts), `function_call`, `function_call_output`, `reasoning`.
    pub input: Option<Value>,
    /// A system message put before the input.
    pub instructions: Option<String>,
    /// Most tokens of the reply, reasoning included.
    pub max_output_tokens: Option<i64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    /// `[{"type": "function", "name", "description", "parameters", "strict"}]`.
    pub tools: Option<Value>,
    /// `"auto"`, `"none"`, `"required"` or `{"type": "function", "name"}`.
    pub tool_choice: Option<Value>,
    pub parallel_tool_calls: Option<bool>,
    /// `{"format": {"type": "text" | "json_object" | "json_schema", "name", "schema", "strict"}}`.
    pub text: Option<Value>,
    /// `{"effort": "none" | "minimal" | "low" | "medium" | "high", "summary": ...}`.
    pub reasoning: Option<Value>,
    #[serde(default)]
    pub stream: Option<bool>,
    /// Whether to keep the response for `previous_response_id` (OpenAI's default: true).
    pub store: Option<bool>,
    pub previous_response_id: Option<String>,
    pub metadata: Option<Value>,
    /// Every other field. The server passes on the sampling fields chat completions take
    /// beyond OpenAI's Responses API (`seed`, `top_k`, `min_p`, `stop`, `cache_prompt`, ...).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}
