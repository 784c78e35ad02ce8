//! `POST /v1/completions` (OpenAI's legacy text completions).

use super::params::{self, wire_usage};
use super::{json_event, new_id, now_secs, sse, FINGERPRINT};
use crate::extract::JsonBody;
use crate::ApiError;
use axum::extract::State;
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use axum::Json;
use minerva_core::{LogprobRequest, TokenId, TokenOut};
use minerva_engine::{CompletionJob, Engine, Prompt, TextEvent};
use minerva_openai::{
    Completion, CompletionChoice, CompletionLogprobs, CompletionRequest, PromptField,
};
use serde_json::{Map, Value};

/// OpenAI's default `max_tokens` for text completions.
const DEFAULT_MAX_TOKENS: u32 = 16;

pub async fn handle(
    State(engine): State<Engine>,
    State(metrics): State<std::sync::Arc<crate::metrics::Metrics>>,
    JsonBody(req): JsonBody<CompletionRequest>,
) -> Result<Response, ApiError> {
    let started = std::time::Instant::now();
    let model = engine.model(Some(&req.model)).await?;
    if req.echo {
        return Err(
            ApiError::bad_request("'echo' is not supported", Some("echo"))
                .with_code("unsupported_parameter"),
        );
    }
    if req.suffix.is_some() {
        return Err(
            ApiError::bad_request("'suffix' is not supported", Some("suffix"))
                .with_code("unsupported_parameter"),
        );
    }
    let prompt = prompt(req.prompt)?;
    let mut sampling = params::sampling(&req.sampling, model.info().n_vocab)?;
    sampling.format = super::format::openai(None, &req.sampling).await?;
    let max_tokens =
        params::max_tokens(req.sampling.max_tokens, "max_tokens")?.unwrap_or(DEFAULT_MAX_TOKENS);
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
        stop: params::stops(&req.sampling)?,
        logprobs,
        cache_prompt: req.sampling.cache_prompt.unwrap_or(true),
        keep_alive: None,
    };
    let mut stream = crate::metrics::Metered::new(engine.complete(job).await?, metrics, started);
    let id = new_id("cmpl");
    let created = now_secs();
    let model_id = req.model;
    let response = move |text: String,
                         lp: Option<CompletionLogprobs>,
                         finish: Option<&'static str>,
                         usage: Option<minerva_openai::Usage>| Completion {
        id: id.clone(),
        object: "text_completion",
        created,
        model: model_id.clone(),
        choices: vec![CompletionChoice {
            text,
            index: 0,
            logprobs: lp,
            finish_reason: finish,
        }],
        usage,
        system_fingerprint: FINGERPRINT,
    };

    if req.sampling.stream {
        stream.started().await?;
        let include_usage = req
            .sampling
            .stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage);
        let events = async_stream::stream! {
            let mut offset = 0;
            while let Some(event) = stream.next().await {
                match event {
                    Ok(TextEvent::Delta { text, tokens }) => {
                        let lp = logprobs.map(|_| completion_logprobs(&tokens, &mut offset));
                        yield json_event(&response(text, lp, None, None));
                    }
                    Ok(TextEvent::Done { reason, usage }) => {
                        yield json_event(&response(String::new(), None, Some(reason.as_str()), None));
                        if include_usage {
                            let mut last = response(String::new(), None, None, Some(wire_usage(&usage)));
                            last.choices.clear();
                            yield json_event(&last);
                        }
                    }
                    Err(e) => yield json_event(&ApiError::from(e).body()),
                }
            }
            yield Ok::<Event, std::convert::Infallible>(Event::default().data("[DONE]"));
        };
        return Ok(sse(events));
    }

    let done = stream.collect().await?;
    let lp = logprobs.map(|_| completion_logprobs(&done.tokens, &mut 0));
    let usage = Some(wire_usage(&done.usage));
    let body = response(done.text, lp, Some(done.reason.as_str()), usage);
    Ok(Json(body).into_response())
}

fn prompt(field: PromptField) -> Result<Prompt, ApiError> {
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
