//! `POST /api/chat`: a conversation rendered with the model's chat template.

use super::respond::{self, Piece};
use crate::error::OllamaError;
use crate::extract::OllamaJson;
use crate::routes::params;
use crate::AppState;
use axum::extract::State;
use axum::response::Response;
use axum::Extension;
use minerva_engine::Prompt;
use minerva_ollama::{timestamp, ChatRequest, ChatResponse, MessageOut};
use serde_json::{Map, Value};
use std::time::SystemTime;

/// The roles Ollama documents.
const ROLES: [&str; 4] = ["system", "user", "assistant", "tool"];

#[utoipa::path(post, path = "/api/chat", tag = "ollama",
    request_body = ChatRequest,
    responses((status = 200, description = "The reply; streamed (the default) as one JSON object a line", content(
        (minerva_ollama::ChatResponse = "application/json"),
        (minerva_ollama::ChatResponse = "application/x-ndjson")))))]
pub async fn handle(
    State(state): State<AppState>,
    scope: Option<Extension<crate::Scope>>,
    OllamaJson(req): OllamaJson<ChatRequest>,
) -> Result<Response, OllamaError> {
    if req.model.is_empty() {
        return Err(OllamaError::bad_request("model is required"));
    }
    if req.messages.is_empty() {
        if let Some(done) = super::unload_request(
            &state.engine,
            &req.model,
            req.keep_alive.as_ref(),
            scope.as_ref().map(|Extension(s)| *s),
        )
        .await?
        {
            return Ok(respond::unloaded(make_chat(req.model.clone()), done));
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
    // Rendered by the template as the OpenAI route does, and the reply parsed for calls
    // (Ollama has no `tool_choice`: the model decides). Ollama treats `[]` as none.
    let tools = params::tools(req.tools.as_ref())?
        .filter(|t| t.as_array().is_some_and(|list| !list.is_empty()));
    let tool_request = super::tool_request(tools.as_ref())?;
    let (model, timing, thinking) = (started.model, started.timing, started.thinking);
    // A created model's parameters and messages, under the request's own.
    let settings = crate::routes::settings::of(&state.engine, &req.model).await;
    let options = crate::routes::settings::ollama_options(&settings, req.options.as_ref());
    let generation = super::options::generation(options.as_ref(), model.info())?;
    let logprobs = super::logprob_request(req.logprobs, req.top_logprobs)?;
    let mut raw_images = Vec::new();
    let mut messages = req
        .messages
        .iter()
        .enumerate()
        .map(|(i, m)| message(i, m, &mut raw_images))
        .collect::<Result<Vec<_>, _>>()?;
    if !messages.is_empty() {
        settings.apply_to_messages(&mut messages);
    }
    let images = crate::routes::images::decode(raw_images, model.info()).await?;

    let make = make_chat(req.model);
    if messages.is_empty() {
        return Ok(respond::loaded(make, timing));
    }
    let prompt = Prompt::Chat {
        messages,
        tools,
        kwargs: thinking.kwargs,
    };
    let mut job = generation.job(model.info(), prompt, logprobs);
    job.keep_alive = started.keep_alive;
    job.reasoning = thinking.request;
    job.tools = tool_request;
    job.sampling.format = started.format;
    job.images = images;
    let stream = req.stream.unwrap_or(true);
    respond::reply(&state, job, stream, timing, started.show_thinking, make).await
}

/// Shapes `/api/chat`'s objects for the model `name`.
fn make_chat(name: String) -> impl Fn(Piece) -> ChatResponse + Send + 'static {
    move |p: Piece| ChatResponse {
        model: name.clone(),
        created_at: timestamp(SystemTime::now()),
        message: MessageOut {
            role: "assistant",
            content: p.text,
            thinking: p.thinking,
            tool_calls: p.tool_calls,
        },
        done: p.end.is_some(),
        logprobs: p.logprobs,
        end: p.end,
    }
}

/// Checks one message and puts it in the shape chat templates expect: a lower-case role (as
/// Ollama reads it), `content` a string (empty when absent). `tool_calls` arguments are
/// already objects in Ollama's shape, `thinking` is also given as `reasoning_content` (the
/// name chat templates read), and other fields (`tool_name`) pass through.
fn message(
    i: usize,
    message: &Value,
    images: &mut Vec<crate::routes::images::RawImage>,
) -> Result<Value, OllamaError> {
    let bad = |what: String| OllamaError::bad_request(format!("messages[{i}]{what}"));
    let obj = message
        .as_object()
        .ok_or_else(|| bad(" must be an object".into()))?;
    let role = obj
        .get("role")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(".role must be a string".into()))?
        .to_lowercase();
    if !ROLES.contains(&role.as_str()) {
        return Err(bad(format!(
            ".role '{role}' is not one of {}",
            ROLES.join(", ")
        )));
    }
    let content = match obj.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(bad(".content must be a string".into())),
    };
    let own = super::images(obj.get("images"), &format!("messages[{i}].images"))?;
    let content = super::place_images(&content, own.len());
    images.extend(own);
    let mut out: Map<String, Value> = obj.clone();
    out.remove("images");
    if let Some(calls) = out.get_mut("tool_calls").filter(|c| !c.is_null()) {
        crate::routes::history::normalize(calls, &format!("messages[{i}]"), true)
            .map_err(|e| OllamaError::bad_request(e.message))?;
    }
    out.insert("role".into(), Value::String(role));
    out.insert("content".into(), Value::String(content));
    if let Some(thinking) = obj.get("thinking").filter(|t| t.is_string()) {
        out.entry("reasoning_content")
            .or_insert_with(|| thinking.clone());
    }
    Ok(Value::Object(out))
}
