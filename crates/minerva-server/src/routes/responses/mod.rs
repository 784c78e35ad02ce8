//! OpenAI's Responses API: `POST /v1/responses`, whole or streamed as its semantic events
//! (`response.created`, `response.in_progress`, per item `response.output_item.added`, the
//! deltas of its text, reasoning or function-call arguments, their `.done`, then
//! `response.completed`, or `response.incomplete` when `max_output_tokens` cut the reply, or
//! `response.failed`). A translation: the request becomes a chat completion request
//! ([`convert`]) and runs as `/v1/chat/completions` does; the reply's chat events become output
//! items ([`output`]).
//!
//! With a [`ResponseStore`](crate::ResponseStore) (the binary keeps responses in the
//! conversation database), a response is kept unless the request says `store: false`: its
//! object for `GET /v1/responses/{id}`, and the conversation through it, which a request naming
//! it as `previous_response_id` continues (its own `instructions` first, then the earlier turns,
//! then its input). Without one, `store` is answered `false` and `previous_response_id` refused.

mod convert;
mod output;

use crate::extract::{JsonBody, ParseBody};
use crate::metrics::Metered;
use crate::routes::now_secs;
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
use std::sync::Arc;

#[utoipa::path(post, path = "/v1/responses", tag = "openai",
    request_body = ResponsesRequest,
    responses((status = 200, description = "The response; with `stream: true`, OpenAI's semantic server-sent events", content(
        (minerva_responses::Response = "application/json"),
        (minerva_responses::StreamEvent = "text/event-stream")))))]
pub async fn create(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<ResponsesRequest>,
) -> Result<Response, ApiError> {
    let started = std::time::Instant::now();
    let history = match req
        .previous_response_id
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        Some(previous) => previous_turns(&state, previous).await?,
        None => Vec::new(),
    };
    let input = convert::input_messages(&req)?;
    let chat = convert::chat_request(&req, &history, &input)?;
    let chat = ChatCompletionRequest::parse(chat)
        .map_err(|e| ApiError::bad_request(format!("{}: {}", e.path(), e.inner()), None))?;
    let job = crate::routes::chat::job(&state.engine, &chat, state.image_urls).await?;
    let completion = state.engine.complete(job).await?;
    let parser = completion.reply_parser();
    let mut metered = Metered::new(completion, state.metrics.clone(), started);
    // A request refused before its first token (a queue timeout) still gets a status.
    metered.started().await?;
    let mut chat = ChatStream::new(metered, parser);
    let stem = uuid::Uuid::new_v4().simple().to_string();
    let id = format!("resp_{stem}");
    let keep = match (&state.responses, req.store) {
        (Some(store), None | Some(true)) => Some(Keep {
            store: Arc::clone(store),
            id: id.clone(),
            conversation: [history, input].concat(),
        }),
        _ => None,
    };
    let mut shell = Shell::of(&req, id, now_secs());
    shell.response.store = keep.is_some();
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
        let response = shell.finished(output, reason, &usage);
        if let Some(keep) = keep {
            keep.save(&response).await;
        }
        return Ok(Json(response).into_response());
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
                    if let Some(keep) = keep {
                        keep.save(&response).await;
                    }
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

/// `GET /v1/responses/{id}`: a kept response, as it was answered.
#[utoipa::path(get, path = "/v1/responses/{id}", tag = "openai",
    params(("id" = String, Path, description = "A kept response's id")),
    responses((status = 200, description = "The kept response, as it was answered", body = minerva_responses::Response)))]
pub async fn retrieve(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let store = state.responses.clone().ok_or_else(|| not_found(&id))?;
    let lookup = id.clone();
    match blocking(move || store.get(&lookup)).await? {
        Some(stored) => Ok(Json(stored.body)),
        None => Err(not_found(&id)),
    }
}

/// `DELETE /v1/responses/{id}`: `{"id", "object": "response", "deleted": true}`.
#[utoipa::path(delete, path = "/v1/responses/{id}", tag = "openai",
    params(("id" = String, Path, description = "A kept response's id")),
    responses((status = 200, description = "`{\"id\", \"object\": \"response\", \"deleted\": true}`", body = Object)))]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let store = state.responses.clone().ok_or_else(|| not_found(&id))?;
    let lookup = id.clone();
    if blocking(move || store.delete(&lookup)).await? {
        tracing::info!(%id, "stored response deleted");
        Ok(Json(
            json!({"id": id, "object": "response", "deleted": true}),
        ))
    } else {
        Err(not_found(&id))
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("No response found with id '{id}'."))
}

/// The conversation through a kept response, for a request that continues it.
async fn previous_turns(state: &AppState, id: &str) -> Result<Vec<Value>, ApiError> {
    let Some(store) = state.responses.clone() else {
        return Err(ApiError::bad_request(
            format!("previous_response_id '{id}': this server keeps no responses (--keep-responses-days 0); send the whole conversation in 'input'"),
            Some("previous_response_id"),
        ));
    };
    let lookup = id.to_string();
    match blocking(move || store.get(&lookup)).await? {
        Some(stored) => Ok(stored.messages),
        None => Err(ApiError::bad_request(
            format!("Previous response with id '{id}' not found."),
            Some("previous_response_id"),
        )
        .with_code("previous_response_not_found")),
    }
}

/// A store call on a blocking thread; its failure is a 500 whose details go to the log.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "response store");
            Err(ApiError::internal(
                "the response store failed; see the server's log",
            ))
        }
        Err(e) => {
            tracing::error!(error = %e, "response store task");
            Err(ApiError::internal(
                "the response store failed; see the server's log",
            ))
        }
    }
}

/// What keeping a response needs: where, under which id, and the conversation before the reply.
struct Keep {
    store: Arc<dyn crate::ResponseStore>,
    id: String,
    conversation: Vec<Value>,
}

impl Keep {
    /// Keeps `response` and the conversation through it; a failure is logged (the client still
    /// gets its answer).
    async fn save(self, response: &minerva_responses::Response) {
        let mut messages = self.conversation;
        messages.extend(convert::output_message(&response.output));
        let stored = crate::StoredResponse {
            body: serde_json::to_value(response).unwrap_or_else(|_| json!({})),
            messages,
        };
        let (store, id) = (self.store, self.id);
        if let Err(e) = blocking(move || store.put(&id, &stored)).await {
            tracing::warn!(error = %e.message, "the response was answered but not kept");
        }
    }
}

/// An SSE event: `event: <type>`, the object with its `sequence_number` as data (written in
/// one pass, without an intermediate JSON value: this runs once a token).
fn event(e: &StreamEvent, sequence: u64) -> Result<Event, Infallible> {
    #[derive(serde::Serialize)]
    struct Numbered<'a> {
        #[serde(flatten)]
        event: &'a StreamEvent,
        sequence_number: u64,
    }
    let data = serde_json::to_string(&Numbered {
        event: e,
        sequence_number: sequence,
    })
    .unwrap_or_else(|_| "{}".into());
    Ok(Event::default().event(e.name()).data(data))
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
