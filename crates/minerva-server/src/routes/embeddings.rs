//! `POST /v1/embeddings` (OpenAI): unit-length vectors, as floats or base64.

use crate::extract::JsonBody;
use crate::ApiError;
use axum::extract::State;
use axum::Json;
use base64::Engine as _;
use minerva_core::CoreError;
use minerva_engine::{EmbedInput, EmbedJob, Engine};
use minerva_openai::{
    EmbeddingData, EmbeddingInput, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage,
    EmbeddingVector,
};

#[utoipa::path(post, path = "/v1/embeddings", tag = "openai",
    request_body = EmbeddingRequest,
    responses((status = 200, description = "One embedding per input", body = EmbeddingResponse)))]
pub async fn handle(
    State(engine): State<Engine>,
    JsonBody(req): JsonBody<EmbeddingRequest>,
) -> Result<Json<EmbeddingResponse>, ApiError> {
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                format!("'encoding_format' must be 'float' or 'base64', got '{other}'"),
                Some("encoding_format"),
            ))
        }
    };
    let dimensions = match req.dimensions {
        None => None,
        Some(d) if d > 0 => Some(d as usize),
        Some(d) => {
            return Err(ApiError::bad_request(
                format!("'dimensions' must be at least 1, got {d}"),
                Some("dimensions"),
            ))
        }
    };
    let inputs = inputs(req.input)?;
    let job = EmbedJob {
        model: req.model.clone(),
        inputs,
        truncate: false,
        normalize: true,
        dimensions,
        keep_alive: None,
    };
    let done = engine.embed(job).await.map_err(overflow_on_input)?;
    let data = done
        .vectors
        .into_iter()
        .enumerate()
        .map(|(index, v)| EmbeddingData {
            object: "embedding",
            index,
            embedding: if base64 {
                EmbeddingVector::Base64(encode_base64(&v))
            } else {
                EmbeddingVector::Float(v)
            },
        })
        .collect();
    Ok(Json(EmbeddingResponse {
        object: "list",
        data,
        model: req.model,
        usage: EmbeddingUsage {
            prompt_tokens: done.prompt_tokens,
            total_tokens: done.prompt_tokens,
        },
    }))
}

/// The inputs as the engine takes them; an empty list or an empty input is refused (as
/// OpenAI does), token ids outside `i32` too (the rest are checked against the vocabulary).
fn inputs(input: EmbeddingInput) -> Result<Vec<EmbedInput>, ApiError> {
    let empty = || ApiError::bad_request("'input' must not be empty", Some("input"));
    let tokens = |ids: Vec<i64>| -> Result<EmbedInput, ApiError> {
        if ids.is_empty() {
            return Err(empty());
        }
        ids.into_iter()
            .map(|t| {
                i32::try_from(t).map_err(|_| {
                    ApiError::bad_request(
                        format!("token id {t} is outside the vocabulary"),
                        Some("input"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(EmbedInput::Tokens)
    };
    let text = |s: String| {
        if s.is_empty() {
            Err(empty())
        } else {
            Ok(EmbedInput::Text(s))
        }
    };
    let list: Vec<EmbedInput> = match input {
        EmbeddingInput::Text(s) => vec![text(s)?],
        EmbeddingInput::Tokens(ids) => vec![tokens(ids)?],
        EmbeddingInput::Texts(v) => v.into_iter().map(text).collect::<Result<_, _>>()?,
        EmbeddingInput::TokenBatches(v) => v.into_iter().map(tokens).collect::<Result<_, _>>()?,
    };
    if list.is_empty() {
        return Err(empty());
    }
    Ok(list)
}

/// An input over the context names `input`, not `messages`.
pub(crate) fn overflow_on_input(e: CoreError) -> ApiError {
    match e {
        CoreError::ContextOverflow {
            prompt_tokens,
            n_ctx,
        } => ApiError::bad_request(
            format!(
                "an input has {prompt_tokens} tokens, more than the {n_ctx} the model embeds at once; shorten it"
            ),
            Some("input"),
        )
        .with_code("context_length_exceeded"),
        other => ApiError::from(other),
    }
}

/// The vector's little-endian `f32` bytes in standard base64, as OpenAI's `base64` encoding.
fn encode_base64(v: &[f32]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
