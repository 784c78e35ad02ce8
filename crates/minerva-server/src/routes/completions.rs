//! `POST /v1/completions` (OpenAI's legacy text completions).

use super::params::{self, wire_usage};
use super::{choices, contract};
use super::{json_event, new_id, now_secs, sse, FINGERPRINT};
use crate::extract::JsonBody;
use crate::ApiError;
use axum::extract::State;
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use minerva_core::{LogprobRequest, TokenId, TokenOut};
use minerva_engine::{CompletionJob, Engine, Prompt, TextEvent};
use minerva_openai::{
    Completion, CompletionChoice, CompletionLogprobs, CompletionRequest, PromptField,
};
use serde_json::{Map, Value};

/// OpenAI's default `max_tokens` for text completions.
const DEFAULT_MAX_TOKENS: u32 = 16;

#[utoipa::path(post, path = "/v1/completions", tag = "openai",
    request_body = CompletionRequest,
    responses((status = 200, description = "The completion; with `stream: true`, server-sent events", content(
        (minerva_openai::Completion = "application/json"),
        (minerva_openai::Completion = "text/event-stream")))))]
pub async fn handle(
    State(engine): State<Engine>,
    State(metrics): State<std::sync::Arc<crate::metrics::Metrics>>,
    JsonBody(req): JsonBody<CompletionRequest>,
) -> Result<Response, ApiError> {
    let started = std::time::Instant::now();
    let model = engine.model(Some(&req.model)).await?;
    contract::refuse_completion_fields(&req)?;
    let n = params::choices(&req.sampling)?;
    let prompt = with_suffix(prompt(req.prompt)?, req.suffix.as_deref())?;
    // A created model's parameters, under the request's own.
    let settings = super::settings::of(&engine, &req.model).await;
    let mut fields = req.sampling.clone();
    super::settings::fill_fields(&settings, &mut fields);
    let mut sampling = params::sampling(&fields, model.info().n_vocab)?;
    sampling.format = super::format::openai(None, &fields).await?;
    let max_tokens =
        params::max_tokens(fields.max_tokens, "max_tokens")?.unwrap_or(DEFAULT_MAX_TOKENS);
    let logprobs = match req.logprobs {
        None => None,
        Some(n) if (0..=20).contains(&n) => Some(LogprobRequest { top: n as usize }),
        Some(n) => {
            return Err(ApiError::bad_request(
                format!("'logprobs' must be between 0 and 20, got {n}"),
                Some("logprobs"),
            ))
        }
    };
    let job = CompletionJob {
        model: req.model.clone(),
        prompt,
        sampling,
        max_tokens: Some(max_tokens),
        stop: params::stops(&fields)?,
        logprobs,
        cache_prompt: fields.cache_prompt.unwrap_or(true),
        tools: Default::default(),
        keep_alive: None,
        reasoning: Default::default(),
        images: Vec::new(),
    };
    let mut streams = choices::start(&engine, job, n, &metrics, started)
        .await
        .map_err(|e| e.renaming("messages", "prompt"))?;
    let id = new_id("cmpl");
    let created = now_secs();
    let model_id = req.model;
    let response =
        move |choices: Vec<CompletionChoice>, usage: Option<minerva_openai::Usage>| Completion {
            id: id.clone(),
            object: "text_completion",
            created,
            model: model_id.clone(),
            choices,
            usage,
            system_fingerprint: FINGERPRINT,
        };
    let choice = |index: usize,
                  text: String,
                  logprobs: Option<CompletionLogprobs>,
                  finish: Option<&'static str>| CompletionChoice {
        text,
        index: index as u32,
        logprobs,
        finish_reason: finish,
    };

    if req.sampling.stream {
        if let Some(first) = streams.first_mut() {
            first.started().await?;
        }
        let include_usage = req
            .sampling
            .stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage);
        let mut events = choices::merge(streams);
        let events = async_stream::stream! {
            let mut offsets = vec![0; n];
            let mut usages = vec![minerva_core::Usage::default(); n];
            while let Some((index, event)) = events.next().await {
                match event {
                    Ok(TextEvent::Delta { text, tokens }) => {
                        let lp = logprobs.map(|_| completion_logprobs(&tokens, &mut offsets[index]));
                        yield json_event(&response(vec![choice(index, text, lp, None)], None));
                    }
                    Ok(TextEvent::Done { reason, usage }) => {
                        usages[index] = usage;
                        let end = choice(index, String::new(), None, Some(reason.as_str()));
                        yield json_event(&response(vec![end], None));
                    }
                    Err(e) => yield json_event(&ApiError::from(e).body()),
                }
            }
            if include_usage {
                let usage = choices::usage(&usages);
                yield json_event(&response(Vec::new(), Some(wire_usage(&usage))));
            }
            yield Ok::<Event, std::convert::Infallible>(Event::default().data("[DONE]"));
        };
        return Ok(sse(events));
    }

    let done = choices::collect(streams).await?;
    let usage = choices::usage(done.iter().map(|d| &d.usage));
    let list = done
        .into_iter()
        .enumerate()
        .map(|(index, d)| {
            let lp = logprobs.map(|_| completion_logprobs(&d.tokens, &mut 0));
            choice(index, d.text, lp, Some(d.reason.as_str()))
        })
        .collect();
    Ok(Json(response(list, Some(wire_usage(&usage)))).into_response())
}

/// A completion with a non-empty `suffix` fills in the middle: the prompt is the text before
/// the cursor, laid out as Ollama's templates do (`<PRE> prompt <SUF> suffix <MID>`).
fn with_suffix(prompt: Prompt, suffix: Option<&str>) -> Result<Prompt, ApiError> {
    let Some(suffix) = suffix.filter(|s| !s.is_empty()) else {
        return Ok(prompt);
    };
    let Prompt::Text(prefix) = prompt else {
        return Err(ApiError::bad_request(
            "with 'suffix', 'prompt' must be text (the code before the cursor), not token ids",
            Some("prompt"),
        ));
    };
    Ok(Prompt::Infill(minerva_engine::Infill {
        prefix,
        suffix: suffix.to_string(),
        extra: Vec::new(),
        prompt: String::new(),
        layout: minerva_engine::InfillLayout::Plain,
    }))
}

/// The prompt; absent or `null` is an empty one (a new document: the model's BOS token alone,
/// refused as empty by a model without one).
fn prompt(field: Option<PromptField>) -> Result<Prompt, ApiError> {
    let Some(field) = field else {
        return Ok(Prompt::Text(String::new()));
    };
    let one_only = || {
        ApiError::bad_request(
            "batched prompts are not supported; send one prompt",
            Some("prompt"),
        )
        .with_code("unsupported_value")
    };
    match field {
        PromptField::Text(s) => Ok(Prompt::Text(s)),
        PromptField::Texts(mut v) => {
            if v.len() != 1 {
                return Err(one_only());
            }
            Ok(Prompt::Text(v.remove(0)))
        }
        PromptField::Tokens(ids) => token_prompt(ids),
        PromptField::TokenBatches(mut v) => {
            if v.len() != 1 {
                return Err(one_only());
            }
            token_prompt(v.remove(0))
        }
    }
}

fn token_prompt(ids: Vec<i64>) -> Result<Prompt, ApiError> {
    if ids.is_empty() {
        return Err(ApiError::bad_request("the prompt is empty", Some("prompt")));
    }
    let tokens = ids
        .into_iter()
        .map(|id| {
            TokenId::try_from(id).map_err(|_| {
                ApiError::bad_request(
                    format!("token id {id} is outside the vocabulary"),
                    Some("prompt"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Prompt::Tokens(tokens))
}

fn completion_logprobs(tokens: &[TokenOut], offset: &mut usize) -> CompletionLogprobs {
    let mut lp = CompletionLogprobs::default();
    for t in tokens {
        let text = String::from_utf8_lossy(&t.bytes).into_owned();
        lp.text_offset.push(*offset);
        *offset += text.len();
        lp.tokens.push(text);
        lp.token_logprobs.push(t.logprob.unwrap_or(0.0));
        let mut top = Map::new();
        for c in &t.top_logprobs {
            top.insert(
                String::from_utf8_lossy(&c.bytes).into_owned(),
                Value::from(f64::from(c.logprob)),
            );
        }
        lp.top_logprobs.push(top);
    }
    lp
}
