//! Running a job and answering as Ollama does: NDJSON, one object a line, while streaming (its
//! default), or one object with the whole text. Chat and generate differ only in how an object
//! is shaped, which the caller passes in as a function of a [`Piece`].

use crate::error::OllamaError;
use crate::metrics::Metered;
use crate::AppState;
use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use minerva_core::{FinishReason, TokenId, TokenOut, Usage};
use minerva_engine::{ChatEvent, ChatStream, CompletionJob};
use minerva_ollama::{
    ndjson_line, DoneFields, Logprob, TokenLogprob, ToolCallFunction, ToolCallOut,
};
use serde::Serialize;
use std::convert::Infallible;
use std::time::{Duration, Instant};

/// What one response object carries: text, its log-probabilities when asked for, and on the
/// last object why the generation ended and what it cost.
pub(crate) struct Piece {
    pub text: String,
    /// Reasoning text, for a model that thinks (when it is shown).
    pub thinking: Option<String>,
    /// Complete tool calls (chat only): Ollama sends each call whole, in an object of its own.
    pub tool_calls: Vec<ToolCallOut>,
    pub logprobs: Option<Vec<Logprob>>,
    pub end: Option<DoneFields>,
    /// On the last object: the prompt's token ids and the reply's (Ollama's `context`).
    pub context: Vec<TokenId>,
}

/// When the request arrived, and how long finding the (already loaded) model took.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub started: Instant,
    pub load: Duration,
}

/// The answer to a request without a prompt, which in Ollama only loads the model: it is loaded.
pub(crate) fn loaded<T: Serialize>(make: impl Fn(Piece) -> T, timing: Timing) -> Response {
    empty_reply(make, timing, "load")
}

/// The answer to a request without a prompt and with `keep_alive` zero: the model is unloaded.
pub(crate) fn unloaded<T: Serialize>(make: impl Fn(Piece) -> T, timing: Timing) -> Response {
    empty_reply(make, timing, "unload")
}

fn empty_reply<T: Serialize>(
    make: impl Fn(Piece) -> T,
    timing: Timing,
    done_reason: &'static str,
) -> Response {
    let end = DoneFields {
        done_reason,
        total_duration: nanos(timing.started.elapsed()),
        load_duration: nanos(timing.load),
        prompt_eval_count: 0,
        prompt_eval_duration: 0,
        eval_count: 0,
        eval_duration: 0,
    };
    Json(make(Piece {
        text: String::new(),
        thinking: None,
        tool_calls: Vec::new(),
        logprobs: None,
        end: Some(end),
        context: Vec::new(),
    }))
    .into_response()
}

/// Runs `job` and answers with objects that `make` shapes; the reasoning is left out unless
/// `show_thinking`.
pub(crate) async fn reply<T, F>(
    state: &AppState,
    job: CompletionJob,
    stream: bool,
    timing: Timing,
    show_thinking: bool,
    make: F,
) -> Result<Response, OllamaError>
where
    T: Serialize + Send + 'static,
    F: Fn(Piece) -> T + Send + 'static,
{
    let want_logprobs = job.logprobs.is_some();
    let completion = state.engine.complete(job).await?;
    let parser = completion.reply_parser();
    let mut events = ChatStream::new(
        Metered::new(completion, state.metrics.clone(), timing.started),
        parser,
    );

    if stream {
        // A request refused before its first token (a queue timeout) still gets an HTTP status.
        events.source_mut().started().await?;
        let lines = async_stream::stream! {
            let mut calls: Vec<(String, String, String)> = Vec::new();
            // Tokens of tool calls and reasoning, whose log-probabilities go with the next line
            // (Ollama gives every token's).
            let mut held: Vec<TokenOut> = Vec::new();
            while let Some(event) = events.next().await {
                let mut piece = Piece {
                    text: String::new(),
                    thinking: None,
                    tool_calls: Vec::new(),
                    logprobs: None,
                    end: None,
                    context: Vec::new(),
                };
                match event {
                    Ok(ChatEvent::Hidden { tokens }) => {
                        held.extend(tokens);
                        continue;
                    }
                    Ok(ChatEvent::Reasoning { text }) => {
                        if !show_thinking {
                            continue;
                        }
                        piece.thinking = Some(text);
                    }
                    Ok(ChatEvent::Content { text, tokens }) => {
                        piece.text = text;
                        held.extend(tokens);
                    }
                    Ok(ChatEvent::ToolCallStart { id, name, .. }) => {
                        calls.push((id, name, String::new()));
                        continue;
                    }
                    Ok(ChatEvent::ToolCallArgs { index, delta }) => {
                        if let Some(call) = calls.get_mut(index) {
                            call.2.push_str(&delta);
                        }
                        continue;
                    }
                    Ok(ChatEvent::ToolCallEnd { index }) => {
                        let Some((id, name, args)) = calls.get(index) else { continue };
                        piece.tool_calls = vec![tool_call(index, id, name, args)];
                    }
                    Ok(ChatEvent::Done { reason, usage }) => {
                        piece.end = Some(end_fields(reason, &usage, timing));
                        piece.context = events.source().context().to_vec();
                    }
                    Err(e) => {
                        yield Ok::<Bytes, Infallible>(Bytes::from(ndjson_line(&OllamaError::from(e).body())));
                        continue;
                    }
                }
                if want_logprobs && !held.is_empty() {
                    piece.logprobs = Some(logprobs(&std::mem::take(&mut held)));
                }
                yield Ok::<Bytes, Infallible>(Bytes::from(ndjson_line(&make(piece))));
            }
        };
        return Ok((
            [(header::CONTENT_TYPE, "application/x-ndjson")],
            Body::from_stream(lines),
        )
            .into_response());
    }

    let whole = events.collect().await?;
    let context = events.source().context().to_vec();
    let tool_calls = whole
        .tool_calls
        .iter()
        .enumerate()
        .map(|(i, c)| tool_call(i, &c.id, &c.name, &c.arguments))
        .collect();
    Ok(Json(make(Piece {
        logprobs: want_logprobs.then(|| logprobs(&whole.all_tokens)),
        end: Some(end_fields(
            whole.reason.unwrap_or(FinishReason::Stop),
            &whole.usage,
            timing,
        )),
        text: whole.content,
        thinking: Some(whole.reasoning).filter(|r| show_thinking && !r.is_empty()),
        tool_calls,
        context,
    }))
    .into_response())
}

/// A call in Ollama's shape: arguments as an object. Arguments that do not parse (a call cut
/// short by `num_predict`) become `{}`.
fn tool_call(index: usize, id: &str, name: &str, arguments: &str) -> ToolCallOut {
    let arguments = match serde_json::from_str::<serde_json::Value>(arguments) {
        Ok(v @ serde_json::Value::Object(_)) => v,
        _ => {
            tracing::debug!(name, arguments, "tool call arguments are not a JSON object");
            serde_json::Value::Object(serde_json::Map::new())
        }
    };
    ToolCallOut {
        id: id.to_string(),
        function: ToolCallFunction {
            index,
            name: name.to_string(),
            arguments,
        },
    }
}

fn end_fields(reason: FinishReason, usage: &Usage, timing: Timing) -> DoneFields {
    DoneFields {
        // Ollama ends a turn of tool calls with "stop".
        done_reason: match reason {
            FinishReason::ToolCalls => "stop",
            other => other.as_str(),
        },
        total_duration: nanos(timing.started.elapsed()),
        load_duration: nanos(timing.load),
        prompt_eval_count: usage.prompt_tokens,
        prompt_eval_duration: (usage.prompt_ms * 1e6) as u64,
        eval_count: usage.completion_tokens,
        eval_duration: (usage.generation_ms * 1e6) as u64,
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn logprobs(tokens: &[TokenOut]) -> Vec<Logprob> {
    let entry = |bytes: &[u8], logprob: f32| TokenLogprob {
        token: String::from_utf8_lossy(bytes).into_owned(),
        logprob,
        bytes: bytes.to_vec(),
    };
    tokens
        .iter()
        .map(|t| Logprob {
            token: entry(&t.bytes, t.logprob.unwrap_or(0.0)),
            top_logprobs: t
                .top_logprobs
                .iter()
                .map(|c| entry(&c.bytes, c.logprob))
                .collect(),
        })
        .collect()
}
