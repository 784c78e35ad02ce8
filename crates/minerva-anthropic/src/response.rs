use serde::Serialize;
use serde_json::Value;

/// A reply: `{"id", "type": "message", "role": "assistant", "model", "content",
/// "stop_reason", "stop_sequence", "usage"}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = anthropic::Message)]
pub struct Message {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub role: &'static str,
    pub model: String,
    pub content: Vec<Block>,
    /// `end_turn`, `max_tokens`, `stop_sequence` or `tool_use`; `null` in `message_start`.
    pub stop_reason: Option<&'static str>,
    pub stop_sequence: Option<String>,
    pub usage: Usage,
}

/// A content block of a reply.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = anthropic::Block)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    Text {
        text: String,
    },
    /// A tool call; `input` an object.
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    /// Reasoning; `signature` is empty (nothing is signed here).
    Thinking {
        thinking: String,
        signature: String,
    },
}

#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[schema(as = anthropic::Usage)]
pub struct Usage {
    pub input_tokens: usize,
    pub output_tokens: usize,
    /// Prompt tokens read from Minerva's prompt cache; `input_tokens` counts the others, as
    /// Anthropic's usage does.
    pub cache_read_input_tokens: usize,
    pub cache_creation_input_tokens: usize,
}

/// The change to a block in a `content_block_delta` event.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = anthropic::BlockDelta)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BlockDelta {
    TextDelta { text: String },
    InputJsonDelta { partial_json: String },
    ThinkingDelta { thinking: String },
    SignatureDelta { signature: String },
}

/// `message_delta`'s `delta`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = anthropic::MessageDelta)]
pub struct MessageDelta {
    pub stop_reason: &'static str,
    pub stop_sequence: Option<String>,
}

/// `message_delta`'s `usage`: the final counts (the prompt's are only known once it is read).
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[schema(as = anthropic::UsageDelta)]
pub struct UsageDelta {
    pub output_tokens: usize,
    pub input_tokens: usize,
    pub cache_read_input_tokens: usize,
}

/// One server-sent event of a streamed reply; the SSE event name is its `type`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = anthropic::StreamEvent)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    MessageStart {
        message: Message,
    },
    ContentBlockStart {
        index: usize,
        content_block: Block,
    },
    Ping,
    ContentBlockDelta {
        index: usize,
        delta: BlockDelta,
    },
    ContentBlockStop {
        index: usize,
    },
    MessageDelta {
        delta: MessageDelta,
        usage: UsageDelta,
    },
    MessageStop,
    Error {
        error: ErrorDetail,
    },
}

impl StreamEvent {
    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            StreamEvent::MessageStart { .. } => "message_start",
            StreamEvent::ContentBlockStart { .. } => "content_block_start",
            StreamEvent::Ping => "ping",
            StreamEvent::ContentBlockDelta { .. } => "content_block_delta",
            StreamEvent::ContentBlockStop { .. } => "content_block_stop",
            StreamEvent::MessageDelta { .. } => "message_delta",
            StreamEvent::MessageStop => "message_stop",
            StreamEvent::Error { .. } => "error",
        }
    }
}

/// `POST /v1/messages/count_tokens`' answer.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[schema(as = anthropic::TokenCount)]
pub struct TokenCount {
    pub input_tokens: usize,
}

/// `{"type": "error", "error": {"type", "message"}}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = anthropic::ErrorBody)]
pub struct ErrorBody {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub error: ErrorDetail,
}

/// `type` is one of Anthropic's: `invalid_request_error`, `authentication_error`,
/// `permission_error`, `not_found_error`, `request_too_large`, `rate_limit_error`,
/// `api_error`, `overloaded_error`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = anthropic::ErrorDetail)]
pub struct ErrorDetail {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_have_anthropics_shape() {
        let e = StreamEvent::ContentBlockDelta {
            index: 1,
            delta: BlockDelta::InputJsonDelta {
                partial_json: "{\"a".into(),
            },
        };
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"type": "content_block_delta", "index": 1,
                   "delta": {"type": "input_json_delta", "partial_json": "{\"a"}})
        );
        assert_eq!(e.name(), "content_block_delta");
        let block = Block::ToolUse {
            id: "toolu_1".into(),
            name: "f".into(),
            input: json!({}),
        };
        assert_eq!(
            serde_json::to_value(&block).unwrap(),
            json!({"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}})
        );
    }
}
