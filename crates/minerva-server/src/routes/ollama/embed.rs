//! Ollama's `POST /api/embed` (batched, unit-length vectors, `truncate`) and its older
//! `POST /api/embeddings` (one prompt, the vector as the model gives it).

use super::keep_alive;
use crate::error::OllamaError;
use crate::extract::OllamaJson;
use axum::extract::State;
use axum::Extension;
use axum::Json;
use minerva_engine::{EmbedInput, EmbedJob, Engine};
use minerva_ollama::{EmbedRequest, EmbedResponse, EmbeddingResponse, EmbeddingsRequest};
use std::time::Instant;

#[utoipa::path(post, path = "/api/embed", tag = "ollama",
    request_body = EmbedRequest,
    responses((status = 200, description = "One embedding per input", body = EmbedResponse)))]
pub async fn embed(
    State(engine): State<Engine>,
    scope: Option<Extension<crate::Scope>>,
    OllamaJson(req): OllamaJson<EmbedRequest>,
) -> Result<Json<EmbedResponse>, OllamaError> {
    let started = Instant::now();
    let keep_alive = keep_alive::parse_for(
        req.keep_alive.as_ref(),
        scope.map(|Extension(s)| s),
        engine.default_keep_alive(),
    )?;
    let dimensions = match req.dimensions {
        None => None,
        Some(d) if d > 0 => Some(d as usize),
        Some(d) => {
            return Err(OllamaError::bad_request(format!(
                "dimensions must be at least 1, got {d}"
            )))
        }
    };
    let texts = match req.input {
        None => Vec::new(),
        Some(minerva_ollama::EmbedInput::One(s)) if s.is_empty() => Vec::new(),
        Some(minerva_ollama::EmbedInput::One(s)) => vec![s],
        Some(minerva_ollama::EmbedInput::Many(v)) => v,
    };
    // No input loads the model and answers no vectors, as Ollama does.
    let lease = super::model(&engine, &req.model, keep_alive).await?;
    let load = started.elapsed();
    // Checked as on generate (types, ranges; unknown ones logged), though none changes a vector.
    super::options::generation(req.options.as_ref(), lease.info())?;
    let name = lease.name().to_string();
    drop(lease);
    if texts.is_empty() {
        return Ok(Json(EmbedResponse {
            model: req.model,
            embeddings: Vec::new(),
            total_duration: nanos(started.elapsed()),
            load_duration: nanos(load),
            prompt_eval_count: 0,
        }));
    }
    if texts.iter().any(String::is_empty) {
        return Err(OllamaError::bad_request(
            "input must not contain empty strings",
        ));
    }
    let job = EmbedJob {
        model: name,
        inputs: texts.into_iter().map(EmbedInput::Text).collect(),
        truncate: req.truncate.unwrap_or(true),
        normalize: true,
        dimensions,
        keep_alive,
    };
    let done = engine.embed(job).await.map_err(overflow)?;
    Ok(Json(EmbedResponse {
        model: req.model,
        embeddings: done.vectors,
        total_duration: nanos(started.elapsed()),
        load_duration: nanos(load),
        prompt_eval_count: done.prompt_tokens,
    }))
}

#[utoipa::path(post, path = "/api/embeddings", tag = "ollama",
    request_body = EmbeddingsRequest,
    responses((status = 200, description = "The embedding of `prompt` (Ollama's older route)", body = EmbeddingResponse)))]
pub async fn embeddings(
    State(engine): State<Engine>,
    scope: Option<Extension<crate::Scope>>,
    OllamaJson(req): OllamaJson<EmbeddingsRequest>,
) -> Result<Json<EmbeddingResponse>, OllamaError> {
    let keep_alive = keep_alive::parse_for(
        req.keep_alive.as_ref(),
        scope.map(|Extension(s)| s),
        engine.default_keep_alive(),
    )?;
    let lease = super::model(&engine, &req.model, keep_alive).await?;
    super::options::generation(req.options.as_ref(), lease.info())?;
    let name = lease.name().to_string();
    drop(lease);
    // An empty prompt loads the model and answers an empty vector, as Ollama does.
    if req.prompt.is_empty() {
        return Ok(Json(EmbeddingResponse {
            embedding: Vec::new(),
        }));
    }
    let job = EmbedJob {
        model: name,
        inputs: vec![EmbedInput::Text(req.prompt)],
        truncate: true,
        normalize: false,
        dimensions: None,
        keep_alive,
    };
    let mut done = engine.embed(job).await.map_err(overflow)?;
    Ok(Json(EmbeddingResponse {
        embedding: done.vectors.pop().unwrap_or_default(),
    }))
}

/// Ollama's message for an input over the context when `truncate` is false.
fn overflow(e: minerva_core::CoreError) -> OllamaError {
    match e {
        minerva_core::CoreError::ContextOverflow { .. } => {
            OllamaError::bad_request("input exceeds maximum context length")
        }
        other => OllamaError::from(other),
    }
}

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
