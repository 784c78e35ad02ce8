//! Anthropic's Messages API (`POST /v1/messages`, `POST /v1/messages/count_tokens`) as a
//! translation: content blocks become the chat messages templates read, tools and
//! `tool_choice` become the same [`ToolRequest`] the OpenAI route builds, `thinking` the same
//! reasoning request, `output_config.format` the same structured output; the reply comes back
//! from the same [`minerva_engine::ChatStream`] as blocks (`thinking`, `text`, `tool_use`).

mod convert;
pub mod messages;

use crate::error::AnthropicError;
use crate::extract::AnthropicJson;
use axum::extract::State;
use axum::Json;
use minerva_anthropic::{CountTokensRequest, TokenCount};
use minerva_engine::{Engine, Prompt};

/// `POST /v1/messages/count_tokens`: the prompt's tokens, counted as a generation reads them
/// (equal to its `usage.input_tokens`).
#[utoipa::path(post, path = "/v1/messages/count_tokens", tag = "anthropic",
    request_body = CountTokensRequest,
    responses((status = 200, description = "The prompt's tokens, counted as a generation reads them", body = TokenCount)))]
pub async fn count_tokens(
    State(engine): State<Engine>,
    AnthropicJson(req): AnthropicJson<CountTokensRequest>,
) -> Result<Json<TokenCount>, AnthropicError> {
    engine.model(Some(&req.model)).await?;
    let mut images = crate::routes::images::Images::new(None);
    let messages = convert::messages(req.system.as_ref(), &req.messages, &mut images)?;
    if !images.raw.is_empty() {
        return Err(AnthropicError::bad_request(
            "counting the tokens of image blocks is not supported yet: send the request to /v1/messages and read usage.input_tokens",
        ));
    }
    let tools = convert::tools(req.tools.as_ref(), req.tool_choice.as_ref())?;
    let thinking = convert::thinking(req.thinking.as_ref())?;
    let active = tools.request.active();
    let prompt = Prompt::Chat {
        messages,
        tools: tools.openai.filter(|_| active),
        kwargs: thinking.kwargs,
    };
    let input_tokens = engine.count_prompt(&req.model, prompt).await?;
    Ok(Json(TokenCount { input_tokens }))
}
