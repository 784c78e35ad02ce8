//! Ollama's API (`/api/chat`, `/api/generate`, `/api/tags`, `/api/show`, `/api/ps`,
//! `/api/version`, `/`) over the same engine as the OpenAI routes. Errors leave as
//! `{"error": "..."}` through [`OllamaError`]; wire types live in `minerva-ollama`.
//!
//! A request names a model of the library (a name without a tag means `:latest`) or one
//! served by path; the engine loads it on demand.

pub mod chat;
pub mod create;
pub mod embed;
pub mod generate;
pub mod library;
pub mod models;

pub mod keep_alive;
pub(crate) mod options;
mod respond;

use super::reasoning::Thinking;
use crate::error::OllamaError;
use minerva_core::{LogprobRequest, OutputFormat};
use minerva_engine::{Engine, KeepAlive, Lease};
use respond::Timing;
use serde_json::Value;
use std::time::Instant;

/// What every generation request starts with.
pub(crate) struct Started {
    /// The model it names, loaded if it was not.
    pub model: Lease,
    pub keep_alive: Option<KeepAlive>,
    /// When it arrived and how long loading took.
    pub timing: Timing,
    /// The output format of `format`.
    pub format: Option<OutputFormat>,
    /// What `think` asks of the reasoning block.
    pub thinking: Thinking,
    /// Whether the reasoning is shown (`thinking` in the reply).
    pub show_thinking: bool,
}

/// Starts a generation request: `format` and `keep_alive` are checked before the model is
/// loaded, `think` against the loaded model's template (asking a model that does not think to
/// think is refused, as Ollama does).
pub(crate) async fn start(
    engine: &Engine,
    name: &str,
    keep_alive: Option<&Value>,
    format: Option<&Value>,
    think: Option<&Value>,
    scope: Option<crate::Scope>,
) -> Result<Started, OllamaError> {
    let started = Instant::now();
    let format = super::format::ollama(format).await?;
    let keep_alive = keep_alive::parse_for(keep_alive, scope, engine.default_keep_alive())?;
    let model = model(engine, name, keep_alive).await?;
    let thinks = minerva_engine::template_thinks(&model.info().chat_template);
    let (thinking, show_thinking) =
        super::reasoning::ollama(think, thinks, name).map_err(OllamaError::bad_request)?;
    let timing = Timing {
        started,
        load: started.elapsed(),
    };
    Ok(Started {
        model,
        keep_alive,
        timing,
        format,
        thinking,
        show_thinking,
    })
}

/// The model that `name` names, loaded if it is not.
pub(crate) async fn model(
    engine: &Engine,
    name: &str,
    keep_alive: Option<KeepAlive>,
) -> Result<Lease, OllamaError> {
    if name.is_empty() {
        return Err(OllamaError::bad_request("model is required"));
    }
    Ok(engine.model_with(Some(name), keep_alive).await?)
}

/// A request without a prompt and with `keep_alive` zero unloads the model, as in Ollama (it is
/// not loaded first); `Some` with the time taken when that is what this request asks. Unloading
/// changes the server for every client: with admin keys set it needs one (`scope`, set by
/// [`crate::protect`]; absent when the router runs unprotected).
pub(crate) async fn unload_request(
    engine: &Engine,
    name: &str,
    keep_alive: Option<&Value>,
    scope: Option<crate::Scope>,
) -> Result<Option<Timing>, OllamaError> {
    let started = Instant::now();
    if keep_alive::parse(keep_alive)? != Some(KeepAlive::For(std::time::Duration::ZERO)) {
        return Ok(None);
    }
    if name.is_empty() {
        return Err(OllamaError::bad_request("model is required"));
    }
    if scope == Some(crate::Scope::Client) {
        return Err(OllamaError(crate::ApiError {
            status: axum::http::StatusCode::FORBIDDEN,
            message: "unloading a model changes the server: it needs an admin key".into(),
            kind: "invalid_request_error",
            param: None,
            code: Some("admin_key_required"),
        }));
    }
    engine.unload(name).await?;
    Ok(Some(Timing {
        started,
        load: std::time::Duration::ZERO,
    }))
}

/// Ollama's `tools` (the OpenAI shape), checked; the model decides whether to call.
pub(crate) fn tool_request(
    tools: Option<&Value>,
) -> Result<minerva_engine::ToolRequest, OllamaError> {
    minerva_engine::ToolRequest::parse(tools, None, None)
        .map_err(|e| OllamaError::bad_request(e.message))
}

/// Ollama's `images`: a list of base64-encoded images (`param` names the field in errors).
pub(crate) fn images(
    images: Option<&Value>,
    param: &str,
) -> Result<Vec<crate::routes::images::RawImage>, OllamaError> {
    match images {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .map(|(i, image)| match image {
                Value::String(data) => {
                    crate::routes::images::from_base64(data, &format!("{param}[{i}]"))
                        .map_err(OllamaError::from)
                }
                _ => Err(OllamaError::bad_request(format!(
                    "{param}[{i}] must be a base64-encoded image"
                ))),
            })
            .collect(),
        Some(_) => Err(OllamaError::bad_request(format!(
            "{param} must be a list of base64-encoded images"
        ))),
    }
}

/// A message's content with its images placed as Ollama places them (`server/prompt.go`):
/// each replaces an `[img]` in the text, or, where there is none left, goes before the text.
pub(crate) fn place_images(content: &str, count: usize) -> String {
    let marker = minerva_core::media_marker();
    let mut text = content.to_string();
    let mut prefix = String::new();
    for _ in 0..count {
        match text.find("[img]") {
            Some(at) => text.replace_range(at..at + "[img]".len(), marker),
            None => prefix.push_str(marker),
        }
    }
    prefix + &text
}

/// `logprobs` and `top_logprobs` (0 to 20, only with `logprobs`).
pub(crate) fn logprob_request(
    logprobs: bool,
    top: Option<i64>,
) -> Result<Option<LogprobRequest>, OllamaError> {
    let top = match top {
        None => 0,
        Some(t) if (0..=20).contains(&t) => t as usize,
        Some(_) => {
            return Err(OllamaError::bad_request(
                "top_logprobs must be between 0 and 20",
            ))
        }
    };
    Ok(logprobs.then_some(LogprobRequest { top }))
}
