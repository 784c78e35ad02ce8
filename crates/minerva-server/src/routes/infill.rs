//! llama-server's `POST /infill`: fill-in-the-middle with its repository-level layout (see
//! [`minerva_engine::InfillLayout::Repository`]), answered in llama-server's native completion
//! shape (`content`, `stop`, `tokens_predicted`, `timings`; streamed as SSE `data:` objects).

use super::{choices, json_event, params, sse};
use crate::extract::JsonBody;
use crate::ApiError;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use minerva_core::{FinishReason, Usage};
use minerva_engine::{CompletionJob, Engine, Infill, InfillFile, InfillLayout, Prompt, TextEvent};
use minerva_openai::{InfillRequest, InfillResponse, InfillTimings};

#[utoipa::path(post, path = "/infill", tag = "llama-server",
    request_body = InfillRequest,
    responses((status = 200, description = "llama-server's fill-in-the-middle answer; with `stream: true`, server-sent events", content(
        (minerva_openai::InfillResponse = "application/json"),
        (minerva_openai::InfillResponse = "text/event-stream")))))]
pub async fn handle(
    State(engine): State<Engine>,
    State(metrics): State<std::sync::Arc<crate::metrics::Metrics>>,
    JsonBody(req): JsonBody<InfillRequest>,
) -> Result<Response, ApiError> {
    let started = std::time::Instant::now();
    let name = engine.resolve(req.model.as_deref()).await?.name;
    let model = engine.model(Some(&name)).await?;
    let fields = &req.sampling;
    let sampling = params::sampling(fields, model.info().n_vocab)?;
    let max_tokens = match req.n_predict {
        None => None,
        Some(n) if n < 0 => None,
        Some(n) => Some(u32::try_from(n).map_err(|_| {
            ApiError::bad_request(format!("'n_predict' is too large: {n}"), Some("n_predict"))
        })?),
    };
    let infill = Infill {
        prefix: req.input_prefix,
        suffix: req.input_suffix,
        extra: req
            .input_extra
            .into_iter()
            .map(|c| InfillFile {
                filename: c.filename,
                text: c.text,
            })
            .collect(),
        prompt: req.prompt,
        layout: InfillLayout::Repository,
    };
    let job = CompletionJob {
        model: name.clone(),
        prompt: Prompt::Infill(infill),
        sampling,
        max_tokens,
        stop: params::stops(fields)?,
        logprobs: None,
        cache_prompt: fields.cache_prompt.unwrap_or(true),
        tools: Default::default(),
        keep_alive: None,
        reasoning: Default::default(),
        images: Vec::new(),
    };
    drop(model);
    let mut streams = choices::start(&engine, job, 1, &metrics, started)
        .await
        .map_err(|e| {
            e.renaming("messages", "input_prefix")
                .renaming("suffix", "input_suffix")
        })?;
    let Some(mut stream) = streams.pop() else {
        return Err(ApiError::from(minerva_core::CoreError::Backend(
            "no generation was started".into(),
        )));
    };
    if fields.stream {
        stream.started().await?;
        let events = async_stream::stream! {
            while let Some(event) = stream.next().await {
                match event {
                    Ok(TextEvent::Delta { text, .. }) => {
                        yield json_event(&piece(&name, text));
                    }
                    Ok(TextEvent::Done { reason, usage }) => {
                        let stop_word = stream.stop_sequence().map(str::to_string);
                        yield json_event(&last(&name, String::new(), reason, usage, stop_word));
                    }
                    Err(e) => yield json_event(&ApiError::from(e).body()),
                }
            }
        };
        return Ok(sse(events));
    }
    let mut text = String::new();
    let mut end = None;
    while let Some(event) = stream.next().await {
        match event? {
            TextEvent::Delta { text: t, .. } => text.push_str(&t),
            TextEvent::Done { reason, usage } => {
                end = Some((reason, usage));
                break;
            }
        }
    }
    let Some((reason, usage)) = end else {
        return Err(ApiError::from(minerva_core::CoreError::Backend(
            "the generation ended without a result".into(),
        )));
    };
    let stop_word = stream.stop_sequence().map(str::to_string);
    Ok(Json(last(&name, text, reason, usage, stop_word)).into_response())
}

fn piece(model: &str, content: String) -> InfillResponse {
    InfillResponse {
        content,
        stop: false,
        model: model.to_string(),
        tokens_predicted: None,
        tokens_evaluated: None,
        stop_type: None,
        stopping_word: None,
        timings: None,
    }
}

/// The last object: llama-server's `stop_type` is `word` for a stop string, `eos` for an
/// end-of-generation token, `limit` for `n_predict` or the context's end.
fn last(
    model: &str,
    content: String,
    reason: FinishReason,
    usage: Usage,
    stop_word: Option<String>,
) -> InfillResponse {
    let stop_type = match (reason, &stop_word) {
        (FinishReason::Length, _) => "limit",
        (_, Some(_)) => "word",
        _ => "eos",
    };
    InfillResponse {
        content,
        stop: true,
        model: model.to_string(),
        tokens_predicted: Some(usage.completion_tokens),
        tokens_evaluated: Some(usage.prompt_tokens),
        stop_type: Some(stop_type),
        stopping_word: Some(stop_word.unwrap_or_default()),
        timings: Some(InfillTimings {
            cache_n: usage.cached_tokens,
            prompt_n: usage.prompt_tokens.saturating_sub(usage.cached_tokens),
            prompt_ms: usage.prompt_ms,
            predicted_n: usage.completion_tokens,
            predicted_ms: usage.generation_ms,
        }),
    }
}
