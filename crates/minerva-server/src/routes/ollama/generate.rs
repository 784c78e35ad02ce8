//! `POST /api/generate`: a prompt rendered as one user message (after `system`, when given)
//! with the model's chat template (or the request's own `template`), as Ollama does, or sent
//! as it is with `raw: true`. The last
//! object carries `context`, the token ids of the prompt and the reply; a request that sends
//! it back continues after them (its own prompt rendered as it would be alone, as Ollama does).

use super::respond::{self, Piece};
use crate::error::OllamaError;
use crate::extract::OllamaJson;
use crate::AppState;
use axum::extract::State;
use axum::response::Response;
use axum::Extension;
use minerva_core::TokenId;
use minerva_engine::Prompt;
use minerva_ollama::{timestamp, GenerateRequest, GenerateResponse};
use serde_json::json;
use std::time::SystemTime;

#[utoipa::path(post, path = "/api/generate", tag = "ollama",
    request_body = GenerateRequest,
    responses((status = 200, description = "The reply; streamed (the default) as one JSON object a line", content(
        (minerva_ollama::GenerateResponse = "application/json"),
        (minerva_ollama::GenerateResponse = "application/x-ndjson")))))]
pub async fn handle(
    State(state): State<AppState>,
    scope: Option<Extension<crate::Scope>>,
    OllamaJson(req): OllamaJson<GenerateRequest>,
) -> Result<Response, OllamaError> {
    if req.model.is_empty() {
        return Err(OllamaError::bad_request("model is required"));
    }
    if req.prompt.as_deref().unwrap_or("").is_empty() {
        if let Some(done) = super::unload_request(
            &state.engine,
            &req.model,
            req.keep_alive.as_ref(),
            scope.as_ref().map(|Extension(s)| *s),
        )
        .await?
        {
            return Ok(respond::unloaded(make_generate(req.model.clone()), done));
        }
    }
    let started = super::start(
        &state.engine,
        &req.model,
        req.keep_alive.as_ref(),
        req.format.as_ref(),
        req.think.as_ref(),
        scope.as_ref().map(|Extension(s)| *s),
    )
    .await?;
    let (model, timing, thinking) = (started.model, started.timing, started.thinking);
    let raw_images = super::images(req.images.as_ref(), "images")?;
    let given = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.is_empty());
    if given(&req.suffix) && req.raw {
        return Err(OllamaError::bad_request(
            "raw mode does not support suffix: send the fill-in-the-middle prompt as the raw prompt, or leave raw off",
        ));
    }
    let context = context_ids(req.context.as_deref(), model.info().n_vocab)?;
    let system = req.system.filter(|s| !s.is_empty());
    let template = req.template.filter(|t| !t.is_empty());
    if req.raw && (system.is_some() || !context.is_empty() || template.is_some()) {
        return Err(OllamaError::bad_request(
            "raw mode does not support template, system, or context",
        ));
    }
    // A created model's parameters, system prompt and messages, under the request's own.
    let settings = crate::routes::settings::of(&state.engine, &req.model).await;
    let options = crate::routes::settings::ollama_options(&settings, req.options.as_ref());
    let generation = super::options::generation(options.as_ref(), model.info())?;
    let logprobs = super::logprob_request(req.logprobs, req.top_logprobs)?;

    let make = make_generate(req.model);
    let text = req.prompt.unwrap_or_default();
    let suffix = req.suffix.filter(|s| !s.is_empty());
    if text.is_empty() && suffix.is_none() {
        return Ok(respond::loaded(make, timing));
    }
    let images = crate::routes::images::decode(raw_images, model.info()).await?;
    let prompt = if let Some(suffix) = suffix {
        // The request's or the model's own Go template, when it reads `.Suffix` (Ollama's FIM
        // templates); else the model's fill-in-the-middle tokens, prefix-suffix-middle, no
        // system prompt.
        let own = template.clone().or_else(|| settings.template.clone());
        match infill_by_template(own, &text, &suffix).await? {
            Some(rendered) => Prompt::Text(rendered),
            None => Prompt::Infill(minerva_engine::Infill {
                prefix: text,
                suffix,
                extra: Vec::new(),
                prompt: String::new(),
                layout: minerva_engine::InfillLayout::Plain,
            }),
        }
    } else if req.raw {
        Prompt::Text(text)
    } else {
        let mut messages = Vec::new();
        if let Some(system) = system {
            messages.push(json!({"role": "system", "content": system}));
        }
        let content = super::place_images(&text, images.len());
        messages.push(json!({"role": "user", "content": content}));
        settings.apply_to_messages(&mut messages);
        match template {
            // This request's own template (Ollama's Go syntax, or Jinja), rendered here; the
            // prompt is then sent as it is.
            Some(template) => Prompt::Text(render_own(template, messages, thinking.kwargs).await?),
            None => Prompt::Chat {
                messages,
                tools: None,
                kwargs: thinking.kwargs,
            },
        }
    };
    let prompt = if context.is_empty() {
        prompt
    } else {
        // As Ollama: the earlier prompt and reply, then this prompt rendered on its own.
        Prompt::Continue {
            context,
            then: Box::new(prompt),
        }
    };
    let mut job = generation.job(model.info(), prompt, logprobs);
    job.keep_alive = started.keep_alive;
    job.sampling.format = started.format;
    job.reasoning = thinking.request;
    job.images = images;
    let stream = req.stream.unwrap_or(true);
    respond::reply(&state, job, stream, timing, started.show_thinking, make).await
}

/// The prompt a request's own `template` makes of `messages`: compiled and rendered off the
/// async threads, within the template sandbox's bounds; any failure is a 400.
async fn render_own(
    template: String,
    messages: Vec<serde_json::Value>,
    kwargs: serde_json::Map<String, serde_json::Value>,
) -> Result<String, OllamaError> {
    let prompt = messages
        .last()
        .and_then(|m| m.get("content"))
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_string();
    let rendered = with_template(template, move |t| {
        t.render(
            &messages,
            &minerva_template::RenderOptions {
                add_generation_prompt: true,
                tools: None,
                extra: Some(&kwargs),
            },
        )
    })
    .await?;
    // A template that leaves the prompt out (`{{ Prompt }}`, Jinja's undefined `Prompt`)
    // would send the model nothing of the request.
    if !rendered.contains(prompt.trim()) {
        return Err(OllamaError::bad_request(
            "template: the rendered prompt does not contain the request's prompt",
        ));
    }
    Ok(rendered)
}

/// The fill-in-the-middle prompt an Ollama Go template that reads `.Suffix` makes of `prefix`
/// and `suffix` (`None`: no such template).
async fn infill_by_template(
    template: Option<String>,
    prefix: &str,
    suffix: &str,
) -> Result<Option<String>, OllamaError> {
    let Some(template) = template.filter(|t| minerva_template::is_go_template(t)) else {
        return Ok(None);
    };
    let (prefix, suffix) = (prefix.to_string(), suffix.to_string());
    with_template(template, move |t| {
        t.render_infill(&prefix, &suffix).transpose()
    })
    .await
}

/// Compiles `template` and runs `f` on it, off the async threads (within the template
/// sandbox's bounds); any failure is a 400.
async fn with_template<T: Send + 'static>(
    template: String,
    f: impl FnOnce(&minerva_template::ChatTemplate) -> minerva_template::Result<T> + Send + 'static,
) -> Result<T, OllamaError> {
    tokio::task::spawn_blocking(move || f(&minerva_template::ChatTemplate::new(&template, "", "")?))
        .await
        .map_err(|e| OllamaError::bad_request(format!("the template task failed: {e}")))?
        .map_err(|e| OllamaError::bad_request(format!("template: {e}")))
}

/// Shapes `/api/generate`'s objects for the model `name`.
fn make_generate(name: String) -> impl Fn(Piece) -> GenerateResponse + Send + 'static {
    move |p: Piece| GenerateResponse {
        model: name.clone(),
        created_at: timestamp(SystemTime::now()),
        response: p.text,
        thinking: p.thinking,
        done: p.end.is_some(),
        logprobs: p.logprobs,
        context: p.end.is_some().then_some(p.context),
        end: p.end,
    }
}

/// A request's `context` as token ids, each checked against the vocabulary.
fn context_ids(context: Option<&[i64]>, n_vocab: usize) -> Result<Vec<TokenId>, OllamaError> {
    context
        .unwrap_or_default()
        .iter()
        .map(|&id| {
            TokenId::try_from(id)
                .ok()
                .filter(|&t| t >= 0 && (t as usize) < n_vocab)
                .ok_or_else(|| {
                    OllamaError::bad_request(format!(
                        "context holds {id}, which is not a token id of this model (0 to {})",
                        n_vocab.saturating_sub(1)
                    ))
                })
        })
        .collect()
}
