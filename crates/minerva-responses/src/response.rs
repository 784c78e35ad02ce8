use serde::Serialize;
use serde_json::Value;

/// A response object (`"object": "response"`), whole or as the streaming events carry it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = responses::Response)]
pub struct Response {
    /// `resp_…`.
    pub id: String,
    pub object: &'static str,
    /// Unix seconds.
    pub created_at: u64,
    /// `in_progress`, `completed`, `incomplete` or `failed`.
    pub status: &'static str,
    pub model: String,
    pub output: Vec<OutputItem>,
    pub usage: Option<Usage>,
    pub incomplete_details: Option<IncompleteDetails>,
    pub error: Option<ResponseError>,
    pub instructions: Option<String>,
    pub max_output_tokens: Option<i64>,
    pub parallel_tool_calls: bool,
    pub previous_response_id: Option<String>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub tool_choice: Value,
    pub tools: Vec<Value>,
    pub text: Value,
    pub reasoning: Value,
    pub store: bool,
    pub truncation: &'static str,
    pub metadata: Value,
}

/// One item of `output`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = responses::OutputItem)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputItem {
    /// The assistant's text.
    Message {
        /// `msg_…`.
        id: String,
        status: &'static str,
        role: &'static str,
        content: Vec<ContentPart>,
    },
    /// A call of one of the request's function tools.
    FunctionCall {
        /// `fc_…`.
        id: String,
        /// `call_…`: what the `function_call_output` item answering it names.
        call_id: String,
        name: String,
        /// The arguments as JSON text.
        arguments: String,
        status: &'static str,
    },
    /// A reasoning model's reasoning, as text (`reasoning_text` content).
    Reasoning {
        /// `rs_…`.
        id: String,
        summary: Vec<Value>,
        content: Vec<ReasoningContent>,
        status: &'static str,
    },
}

/// A part of a message item's content.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = responses::ContentPart)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    OutputText {
        text: String,
        annotations: Vec<Value>,
        logprobs: Vec<Value>,
    },
}

/// A part of a reasoning item's content.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = responses::ReasoningContent)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReasoningContent {
    ReasoningText { text: String },
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = responses::Usage)]
pub struct Usage {
    pub input_tokens: usize,
    pub input_tokens_details: InputTokensDetails,
    pub output_tokens: usize,
    pub output_tokens_details: OutputTokensDetails,
    pub total_tokens: usize,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = responses::InputTokensDetails)]
pub struct InputTokensDetails {
    /// Prompt tokens taken from the prompt cache.
    pub cached_tokens: usize,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = responses::OutputTokensDetails)]
pub struct OutputTokensDetails {
    pub reasoning_tokens: usize,
}

/// Why a response is `incomplete`: `max_output_tokens`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = responses::IncompleteDetails)]
pub struct IncompleteDetails {
    pub reason: &'static str,
}

/// Why a response `failed`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = responses::ResponseError)]
pub struct ResponseError {
    pub code: String,
    pub message: String,
}
