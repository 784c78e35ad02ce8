//! Ollama's API (`/api/chat`, `/api/generate`, `/api/tags`, `/api/show`, `/api/ps`,
//! `/api/version`, `/`) over the same engine as the OpenAI routes. Errors leave as
//! `{"error": "..."}` through [`OllamaError`]; wire types live in `minerva-ollama`.
//!
//! One model is served per process: a request must name it by its id, or by its id with
//! Ollama's default tag (`ID:latest`) when the id has no tag of its own.

pub mod chat;
pub mod generate;
pub mod models;

mod options;
mod respond;

use crate::error::OllamaError;
use minerva_core::{LogprobRequest, Model};
use minerva_engine::Engine;
use respond::Timing;
use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;

/// What every generation request starts with: the model it names (and how long finding it
/// took), and refusing `format` and `think`, which are not supported yet.
pub(crate) fn start(
    engine: &Engine,
    name: &str,
    format: Option<&Value>,
    think: Option<&Value>,
) -> Result<(Arc<dyn Model>, Timing), OllamaError> {
    let started = Instant::now();
    let model = model(engine, name)?;
    let timing = Timing {
        started,
        load: started.elapsed(),
    };
    refuse_format(format)?;
    refuse_think(think, name)?;
    Ok((model, timing))
}

/// The served model that `name` names.
pub(crate) fn model(engine: &Engine, name: &str) -> Result<Arc<dyn Model>, OllamaError> {
    if name.is_empty() {
        return Err(OllamaError::bad_request("model is required"));
    }
    if let Ok(model) = engine.model(Some(name)) {
        return Ok(model);
    }
    // `x:latest` is Ollama's spelling of `x`; an id that carries its own tag has no alias.
    match name.strip_suffix(":latest") {
        Some(base) if !base.contains(':') => engine
            .model(Some(base))
            .map_err(|_| OllamaError::model_not_found(name)),
        _ => Err(OllamaError::model_not_found(name)),
    }
}

/// Structured output is not built yet: `format` other than empty is refused, never ignored.
fn refuse_format(format: Option<&Value>) -> Result<(), OllamaError> {
    match format {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) if s.is_empty() => Ok(()),
        Some(_) => Err(OllamaError::bad_request(
            "'format' (structured output: \"json\" or a JSON schema) is not supported yet",
        )),
    }
}

/// The served models do not think: `think` may only be absent or false, as Ollama answers for
/// a model without the thinking capability.
fn refuse_think(think: Option<&Value>, name: &str) -> Result<(), OllamaError> {
    match think {
        None | Some(Value::Null) | Some(Value::Bool(false)) => Ok(()),
        Some(_) => Err(OllamaError::bad_request(format!(
            "\"{name}\" does not support thinking"
        ))),
    }
}

/// Images are refused: no vision model is served yet.
pub(crate) fn refuse_images(images: Option<&Value>) -> Result<(), OllamaError> {
    match images {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(list)) if list.is_empty() => Ok(()),
        Some(_) => Err(OllamaError::bad_request(
            "images are not supported: this model has no vision capability",
        )),
    }
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
