//! `POST /v1/messages`: a reply as content blocks, whole or streamed as Anthropic's events
//! (`message_start`, `ping`, then per block `content_block_start`, `content_block_delta`s and
//! `content_block_stop`, then `message_delta` with the stop reason and `message_stop`).

use super::convert;
use crate::error::AnthropicError;
use crate::extract::AnthropicJson;
use crate::metrics::Metered;
use crate::routes::{new_id, params};

/// Anthropic's tool-use id for a call id of the reply parser (`call_…` → `toolu_…`).
fn tool_id(id: String) -> String {
    match id.strip_prefix("call_") {
        Some(rest) => format!("toolu_{rest}"),
        None => id,
    }
}
use crate::AppState;
use axum::extract::State;
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use axum::Json;
use minerva_anthropic::{
    Block, BlockDelta, Message, MessageDelta, MessagesRequest, StreamEvent, Usage, UsageDelta,
};
use minerva_core::FinishReason;
use minerva_engine::{ChatEvent, ChatStream, CompletionJob, Prompt};
use minerva_openai::{SamplingFields, StopField};
use std::convert::Infallible;

#[utoipa::path(post, path = "/v1/messages", tag = "anthropic",
    request_body = MessagesRequest,
    responses((status = 200, description = "The message; with `stream: true`, Anthropic's server-sent events", content(
        (minerva_anthropic::Message = "application/json"),
        (minerva_anthropic::StreamEvent = "text/event-stream")))))]
pub async fn handle(
    State(state): State<AppState>,
    AnthropicJson(req): AnthropicJson<MessagesRequest>,
) -> Result<Response, AnthropicError> {
    let started = std::time::Instant::now();
    let model = state.engine.model(Some(&req.model)).await?;
    let max_tokens = match req.max_tokens {
        None => return Err(AnthropicError::bad_request("max_tokens: Field required")),
        Some(n) if n < 1 => {
            return Err(AnthropicError::bad_request(
                "max_tokens: must be at least 1",
            ))
        }
        Some(n) => n,
    };
    let mut images = crate::routes::images::Images::new(state.image_urls);
    let mut messages = convert::messages(req.system.as_ref(), &req.messages, &mut images)?;
    // A created model's system prompt, messages and parameters, under the request's own.
    let settings = crate::routes::settings::of(&state.engine, &req.model).await;
    settings.apply_to_messages(&mut messages);
    let images = crate::routes::images::decode(images.raw, model.info()).await?;
    let tools = convert::tools(req.tools.as_ref(), req.tool_choice.as_ref())?;
    let thinking = convert::thinking(req.thinking.as_ref())?;
    let mut fields = SamplingFields {
        temperature: req.temperature,
        top_p: req.top_p,
        top_k: req.top_k,
        stop: req.stop_sequences.clone().map(StopField::Many),
        max_tokens: Some(max_tokens),
        ..SamplingFields::default()
    };
    crate::routes::settings::fill_fields(&settings, &mut fields);
    let mut sampling = params::sampling(&fields, model.info().n_vocab)?;
    sampling.format = output_format(req.output_config.as_ref()).await?;
    let job = CompletionJob {
        model: req.model.clone(),
        prompt: Prompt::Chat {
            messages,
            tools: tools.openai,
            kwargs: thinking.kwargs,
        },
        sampling,
        max_tokens: params::max_tokens(Some(max_tokens), "max_tokens")?,
        stop: params::stops(&fields)?,
        logprobs: None,
        cache_prompt: req.cache_prompt.unwrap_or(true),
        keep_alive: None,
        tools: tools.request,
        reasoning: thinking.request,
        images,
    };
    let completion = state.engine.complete(job).await?;
    let parser = completion.reply_parser();
    let mut metered = Metered::new(completion, state.metrics.clone(), started);
    // A request refused before its first token (a queue timeout) still gets a status.
    metered.started().await?;
    let mut chat = ChatStream::new(metered, parser);
    let id = format!("msg_{}", new_id("x").trim_start_matches("x-"));
    let model_id = req.model;

    if req.stream != Some(true) {
        let mut blocks = Blocks::default();
        let mut end = None;
        while let Some(event) = chat.next().await {
            match event? {
                ChatEvent::Done { reason, usage } => end = Some((reason, usage)),
                other => blocks.add(other),
            }
        }
        let (reason, usage) = end.unwrap_or((FinishReason::Stop, minerva_core::Usage::default()));
        let stop_sequence = chat.source().stop_sequence().map(str::to_string);
        let message = Message {
            id,
            kind: "message",
            role: "assistant",
            model: model_id,
            content: blocks.finish(),
            stop_reason: Some(stop_reason(reason, stop_sequence.is_some())),
            stop_sequence,
            usage: usage_of(&usage),
        };
        return Ok(Json(message).into_response());
    }

    let start = Message {
        id,
        kind: "message",
        role: "assistant",
        model: model_id,
        content: Vec::new(),
        stop_reason: None,
        stop_sequence: None,
        usage: Usage {
            input_tokens: chat.source().prompt_tokens(),
            output_tokens: 0,
            cache_read_input_tokens: 0,
            cache_creation_input_tokens: 0,
        },
    };
    let body = async_stream::stream! {
        yield event(&StreamEvent::MessageStart { message: start });
        yield event(&StreamEvent::Ping);
        let mut open: Option<(usize, Kind)> = None;
        let mut next_index = 0usize;
        while let Some(item) = chat.next().await {
            let item = match item {
                Ok(item) => item,
                Err(e) => {
                    let error = AnthropicError::from(e).detail();
                    yield event(&StreamEvent::Error { error });
                    return;
                }
            };
            let (kind, delta) = match item {
                ChatEvent::Reasoning { text } => (Kind::Thinking, Some(BlockDelta::ThinkingDelta { thinking: text })),
                ChatEvent::Content { text, .. } => (Kind::Text, Some(BlockDelta::TextDelta { text })),
                ChatEvent::ToolCallStart { id, name, .. } => {
                    let id = tool_id(id);
                    if let Some((index, _)) = open.take() {
                        yield event(&StreamEvent::ContentBlockStop { index });
                    }
                    let block = Block::ToolUse { id, name, input: serde_json::json!({}) };
                    yield event(&StreamEvent::ContentBlockStart { index: next_index, content_block: block });
                    open = Some((next_index, Kind::Tool));
                    next_index += 1;
                    continue;
                }
                ChatEvent::ToolCallArgs { delta, .. } => (Kind::Tool, Some(BlockDelta::InputJsonDelta { partial_json: delta })),
                ChatEvent::Hidden { .. } => continue,
                ChatEvent::ToolCallEnd { .. } => {
                    if let Some((index, _)) = open.take() {
                        yield event(&StreamEvent::ContentBlockStop { index });
                    }
                    continue;
                }
                ChatEvent::Done { reason, usage } => {
                    if let Some((index, _)) = open.take() {
                        yield event(&StreamEvent::ContentBlockStop { index });
                    }
                    let stop_sequence = chat.source().stop_sequence().map(str::to_string);
                    let delta = MessageDelta {
                        stop_reason: stop_reason(reason, stop_sequence.is_some()),
                        stop_sequence,
                    };
                    let usage = UsageDelta {
                        output_tokens: usage.completion_tokens,
                        input_tokens: usage.prompt_tokens.saturating_sub(usage.cached_tokens),
                        cache_read_input_tokens: usage.cached_tokens,
                    };
                    yield event(&StreamEvent::MessageDelta { delta, usage });
                    yield event(&StreamEvent::MessageStop);
                    return;
                }
            };
            // A block of another kind closes the one open and starts its own.
            if open.is_some_and(|(_, k)| k != kind) {
                if let Some((index, _)) = open.take() {
                    yield event(&StreamEvent::ContentBlockStop { index });
                }
            }
            if open.is_none() {
                let block = match kind {
                    Kind::Thinking => Block::Thinking { thinking: String::new(), signature: String::new() },
                    _ => Block::Text { text: String::new() },
                };
                yield event(&StreamEvent::ContentBlockStart { index: next_index, content_block: block });
                open = Some((next_index, kind));
                next_index += 1;
            }
            if let (Some((index, _)), Some(delta)) = (open, delta) {
                yield event(&StreamEvent::ContentBlockDelta { index, delta });
            }
        }
    };
    Ok(axum::response::sse::Sse::new(body).into_response())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Thinking,
    Tool,
}

fn event(e: &StreamEvent) -> Result<Event, Infallible> {
    Ok(Event::default()
        .event(e.name())
        .data(serde_json::to_string(e).unwrap_or_else(|_| "{}".into())))
}

/// Anthropic's stop reason for how the reply ended.
fn stop_reason(reason: FinishReason, stop_sequence: bool) -> &'static str {
    match reason {
        FinishReason::Length => "max_tokens",
        FinishReason::ToolCalls => "tool_use",
        FinishReason::Stop if stop_sequence => "stop_sequence",
        FinishReason::Stop => "end_turn",
    }
}

/// Anthropic counts the prompt tokens read from a cache apart from `input_tokens`.
fn usage_of(u: &minerva_core::Usage) -> Usage {
    Usage {
        input_tokens: u.prompt_tokens.saturating_sub(u.cached_tokens),
        output_tokens: u.completion_tokens,
        cache_read_input_tokens: u.cached_tokens,
        cache_creation_input_tokens: 0,
    }
}

/// The content blocks of a whole reply, in the order they were written.
#[derive(Default)]
struct Blocks {
    blocks: Vec<Block>,
    /// Tool-call arguments as generated, by block position.
    arguments: Vec<(usize, String)>,
}

impl Blocks {
    fn add(&mut self, event: ChatEvent) {
        match event {
            ChatEvent::Reasoning { text } => match self.blocks.last_mut() {
                Some(Block::Thinking { thinking, .. }) => thinking.push_str(&text),
                _ => self.blocks.push(Block::Thinking {
                    thinking: text,
                    signature: String::new(),
                }),
            },
            ChatEvent::Content { text, .. } => match self.blocks.last_mut() {
                Some(Block::Text { text: t }) => t.push_str(&text),
                _ => self.blocks.push(Block::Text { text }),
            },
            ChatEvent::ToolCallStart { id, name, .. } => {
                self.arguments.push((self.blocks.len(), String::new()));
                self.blocks.push(Block::ToolUse {
                    id: tool_id(id),
                    name,
                    input: serde_json::json!({}),
                });
            }
            ChatEvent::ToolCallArgs { delta, .. } => {
                if let Some((_, args)) = self.arguments.last_mut() {
                    args.push_str(&delta);
                }
            }
            ChatEvent::ToolCallEnd { .. } | ChatEvent::Done { .. } | ChatEvent::Hidden { .. } => {}
        }
    }

    /// The blocks, each call's `input` the object its arguments parse to (`{}` when they do
    /// not: a call cut by `max_tokens`).
    fn finish(mut self) -> Vec<Block> {
        for (at, args) in self.arguments {
            if let Some(Block::ToolUse { input, .. }) = self.blocks.get_mut(at) {
                if let Ok(v @ serde_json::Value::Object(_)) = serde_json::from_str(&args) {
                    *input = v;
                }
            }
        }
        self.blocks
    }
}

/// `output_config.format`: `{"type": "json_schema", "schema": {...}}`, compiled like OpenAI's
/// `response_format`.
async fn output_format(
    config: Option<&serde_json::Value>,
) -> Result<Option<minerva_core::OutputFormat>, AnthropicError> {
    let Some(format) = config
        .and_then(|c| c.get("format"))
        .filter(|f| !f.is_null())
    else {
        return Ok(None);
    };
    if format.get("type").and_then(|t| t.as_str()) != Some("json_schema") {
        return Err(AnthropicError::bad_request(
            "output_config.format.type: must be 'json_schema'",
        ));
    }
    let Some(schema) = format.get("schema").filter(|s| !s.is_null()).cloned() else {
        return Err(AnthropicError::bad_request(
            "output_config.format.schema: Field required",
        ));
    };
    let response_format = serde_json::json!({
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema}
    });
    let compiled =
        crate::routes::format::openai(Some(&response_format), &SamplingFields::default())
            .await
            .map_err(|mut e| {
                e.message = format!("output_config.format.schema: {}", e.message);
                AnthropicError(e)
            })?;
    Ok(compiled)
}
