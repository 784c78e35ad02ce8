//! OpenAI's Responses API: `POST /v1/responses`, whole or streamed as its semantic events
//! (`response.created`, `response.in_progress`, per item `response.output_item.added`, the
//! deltas of its text, reasoning or function-call arguments, their `.done`, then
//! `response.completed`, or `response.incomplete` when `max_output_tokens` cut the reply, or
//! `response.failed`). A translation: the request becomes a chat completion request
//! ([`convert`]) and runs as `/v1/chat/completions` does; the reply's chat events become output
//! items ([`output`]).
//!
//! Nothing is stored yet: `store` is answered `false`, `previous_response_id` is refused, and
//! `GET`/`DELETE /v1/responses/{id}` answer 404.

mod convert;
mod output;

use crate::extract::{JsonBody, ParseBody};
use crate::metrics::Metered;
use crate::routes::{new_id, now_secs};
use crate::{ApiError, AppState};
use axum::extract::{Path, State};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use minerva_core::FinishReason;
use minerva_engine::{ChatEvent, ChatStream};
use minerva_openai::ChatCompletionRequest;
use minerva_responses::{
    IncompleteDetails, InputTokensDetails, OutputTokensDetails, ResponseError, ResponsesRequest,
    StreamEvent, Usage,
};
use serde_json::{json, Value};
use std::convert::Infallible;

pub async fn create(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<ResponsesRequest>,
) -> Result<Response, ApiError> {
    let started = std::time::Instant::now();
    let chat = convert::chat_request(&req)?;
    let chat = ChatCompletionRequest::parse(chat)
        .map_err(|e| ApiError::bad_request(format!("{}: {}", e.path(), e.inner()), None))?;
    let job = crate::routes::chat::job(&state.engine, &chat).await?;
    let completion = state.engine.complete(job).await?;
    let parser = completion.reply_parser();
    let mut metered = Metered::new(completion, state.metrics.clone(), started);
    // A request refused before its first token (a queue timeout) still gets a status.
    metered.started().await?;
    let mut chat = ChatStream::new(metered, parser);
    let id = new_id("resp");
    let stem = id.trim_start_matches("resp-").to_string();
    let id = format!("resp_{stem}");
    let shell = Shell::of(&req, id, now_secs());
    let mut output = output::Output::new(&stem);

    if req.stream != Some(true) {
        let mut end = None;
        while let Some(event) = chat.next().await {
            match event? {
                ChatEvent::Done { reason, usage } => end = Some((reason, usage)),
                other => drop(output.push(other)),
            }
        }
        output.close();
        let (reason, usage) = end.unwrap_or((FinishReason::Stop, minerva_core::Usage::default()));
        return Ok(Json(shell.finished(output, reason, &usage)).into_response());
    }

    let body = async_stream::stream! {
        let mut sequence = 0u64;
        let mut send = move |e: StreamEvent| {
            let event = event(&e, sequence);
            sequence += 1;
            event
        };
        yield send(StreamEvent::Created { response: Box::new(shell.in_progress()) });
        yield send(StreamEvent::InProgress { response: Box::new(shell.in_progress()) });
        while let Some(item) = chat.next().await {
            match item {
                Ok(ChatEvent::Done { reason, usage }) => {
                    for e in output.close() {
                        yield send(e);
                    }
                    let response = Box::new(shell.finished(output, reason, &usage));
                    yield send(if reason == FinishReason::Length {
                        StreamEvent::Incomplete { response }
                    } else {
                        StreamEvent::Completed { response }
                    });
                    return;
                }
                Ok(other) => {
                    for e in output.push(other) {
                        yield send(e);
                    }
                }
                Err(e) => {
                    let error = ApiError::from(e);
                    let mut response = shell.in_progress();
                    response.status = "failed";
                    response.output = output.items;
                    response.error = Some(ResponseError {
                        code: error.code.unwrap_or("server_error").to_string(),
                        message: error.message,
                    });
                    yield send(StreamEvent::Failed { response: Box::new(response) });
                    return;
                }
            }
        }
    };
    Ok(Sse::new(body).into_response())
}

/// `GET` and `DELETE /v1/responses/{id}`: nothing is stored, so every id is unknown.
pub async fn not_stored(Path(id): Path<String>) -> ApiError {
    ApiError::not_found(format!(
        "No response with id '{id}' found: this server does not store responses yet"
    ))
}

/// An SSE event: `event: <type>`, the object with its `sequence_number` as data.
fn event(e: &StreamEvent, sequence: u64) -> Result<Event, Infallible> {
    let mut data = serde_json::to_value(e).unwrap_or_else(|_| json!({}));
    if let Value::Object(map) = &mut data {
        map.insert("sequence_number".into(), json!(sequence));
    }
    Ok(Event::default().event(e.name()).data(data.to_string()))
}

/// What a response says of its request, the same in every event.
struct Shell {
    response: minerva_responses::Response,
}

impl Shell {
    fn of(req: &ResponsesRequest, id: String, created_at: u64) -> Self {
        let tools = match &req.tools {
            Some(Value::Array(list)) => list.clone(),
            _ => Vec::new(),
        };
        let text = req
            .text
            .clone()
            .filter(|t| t.get("format").is_some_and(|f| !f.is_null()))
            .unwrap_or_else(|| json!({"format": {"type": "text"}}));
        let reasoning = req
            .reasoning
            .clone()
            .filter(Value::is_object)
            .unwrap_or_else(|| json!({"effort": null, "summary": null}));
        Shell {
            response: minerva_responses::Response {
                id,
                object: "response",
                created_at,
                status: "in_progress",
                model: req.model.clone(),
                output: Vec::new(),
                usage: None,
                incomplete_details: None,
                error: None,
                instructions: req.instructions.clone(),
                max_output_tokens: req.max_output_tokens,
                parallel_tool_calls: req.parallel_tool_calls.unwrap_or(true),
                previous_response_id: None,
                temperature: req.temperature,
                top_p: req.top_p,
                tool_choice: req.tool_choice.clone().unwrap_or_else(|| json!("auto")),
                tools,
                text,
                reasoning,
                // Nothing is kept (see the module's note).
                store: false,
                truncation: "disabled",
                metadata: req
                    .metadata
                    .clone()
                    .filter(Value::is_object)
                    .unwrap_or_else(|| json!({})),
            },
        }
    }

    fn in_progress(&self) -> minerva_responses::Response {
        self.response.clone()
    }

    fn finished(
        &self,
        output: output::Output,
        reason: FinishReason,
        usage: &minerva_core::Usage,
    ) -> minerva_responses::Response {
        let mut response = self.response.clone();
        response.status = if reason == FinishReason::Length {
            "incomplete"
        } else {
            "completed"
        };
        if reason == FinishReason::Length {
            response.incomplete_details = Some(IncompleteDetails {
                reason: "max_output_tokens",
            });
        }
        response.usage = Some(Usage {
            input_tokens: usage.prompt_tokens,
            input_tokens_details: InputTokensDetails {
                cached_tokens: usage.cached_tokens,
            },
            output_tokens: usage.completion_tokens,
            output_tokens_details: OutputTokensDetails {
                reasoning_tokens: output.reasoning_pieces.min(usage.completion_tokens),
            },
            total_tokens: usage.prompt_tokens + usage.completion_tokens,
        });
        response.output = output.items;
        response
    }
}
