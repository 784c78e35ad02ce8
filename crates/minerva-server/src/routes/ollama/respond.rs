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
use minerva_core::{FinishReason, TokenOut, Usage};
use minerva_engine::{CompletionJob, TextEvent};
use minerva_ollama::{ndjson_line, DoneFields, Logprob, TokenLogprob};
use serde::Serialize;
use std::convert::Infallible;
use std::time::{Duration, Instant};

/// What one response object carries: text, its log-probabilities when asked for, and on the
/// last object why the generation ended and what it cost.
pub(crate) struct Piece {
    pub text: String,
    pub logprobs: Option<Vec<Logprob>>,
    pub end: Option<DoneFields>,
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
        logprobs: None,
        end: Some(end),
    }))
    .into_response()
}

/// Runs `job` and answers with objects that `make` shapes.
pub(crate) async fn reply<T, F>(
    state: &AppState,
    job: CompletionJob,
    stream: bool,
    timing: Timing,
    make: F,
) -> Result<Response, OllamaError>
where
    T: Serialize + Send + 'static,
    F: Fn(Piece) -> T + Send + 'static,
{
    let want_logprobs = job.logprobs.is_some();
    let completion = state.engine.complete(job).await?;
    let mut events = Metered::new(completion, state.metrics.clone(), timing.started);

    if stream {
        // A request refused before its first token (a queue timeout) still gets an HTTP status.
        events.started().await?;
        let lines = async_stream::stream! {
            while let Some(event) = events.next().await {
                let line = match event {
                    Ok(TextEvent::Delta { text, tokens }) => ndjson_line(&make(Piece {
                        text,
                        logprobs: want_logprobs.then(|| logprobs(&tokens)),
                        end: None,
                    })),
                    Ok(TextEvent::Done { reason, usage }) => ndjson_line(&make(Piece {
                        text: String::new(),
                        logprobs: None,
                        end: Some(end_fields(reason, &usage, timing)),
                    })),
                    Err(e) => ndjson_line(&OllamaError::from(e).body()),
                };
                yield Ok::<Bytes, Infallible>(Bytes::from(line));
            }
        };
        return Ok((
            [(header::CONTENT_TYPE, "application/x-ndjson")],
            Body::from_stream(lines),
        )
            .into_response());
    }

    let whole = events.collect().await?;
    Ok(Json(make(Piece {
        logprobs: want_logprobs.then(|| logprobs(&whole.tokens)),
        end: Some(end_fields(whole.reason, &whole.usage, timing)),
        text: whole.text,
    }))
    .into_response())
}

fn end_fields(reason: FinishReason, usage: &Usage, timing: Timing) -> DoneFields {
    DoneFields {
        done_reason: reason.as_str(),
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
