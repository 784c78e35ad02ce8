//! llama-server's `POST /tokenize` and `POST /detokenize`, same shapes and defaults.

use crate::extract::JsonBody;
use crate::ApiError;
use axum::extract::State;
use axum::Json;
use minerva_core::TokenId;
use minerva_engine::Engine;
use minerva_openai::{DetokenizeRequest, TokenizeRequest};
use serde_json::{json, Value};

#[utoipa::path(post, path = "/tokenize", tag = "llama-server",
    request_body = TokenizeRequest,
    responses((status = 200, description = "`{\"tokens\": [id, ...]}`, or `[{\"id\", \"piece\"}, ...]` with `with_pieces`", body = Object)))]
pub async fn tokenize(
    State(engine): State<Engine>,
    JsonBody(req): JsonBody<TokenizeRequest>,
) -> Result<Json<Value>, ApiError> {
    let model = req.model.as_deref();
    let tokens = engine
        .tokenize(model, req.content, req.add_special, req.parse_special)
        .await?;
    if !req.with_pieces {
        return Ok(Json(json!({ "tokens": tokens })));
    }
    let pieces = engine.token_pieces(model, tokens.clone()).await?;
    let items: Vec<Value> = tokens
        .iter()
        .zip(pieces)
        .map(|(id, bytes)| {
            // A piece that is not valid UTF-8 on its own (part of a character) is given as bytes.
            let piece = match String::from_utf8(bytes) {
                Ok(s) => Value::String(s),
                Err(e) => json!(e.into_bytes()),
            };
            json!({ "id": id, "piece": piece })
        })
        .collect();
    Ok(Json(json!({ "tokens": items })))
}

#[utoipa::path(post, path = "/detokenize", tag = "llama-server",
    request_body = DetokenizeRequest,
    responses((status = 200, description = "`{\"content\": text}`", body = Object)))]
pub async fn detokenize(
    State(engine): State<Engine>,
    JsonBody(req): JsonBody<DetokenizeRequest>,
) -> Result<Json<Value>, ApiError> {
    let tokens = req
        .tokens
        .iter()
        .map(|&id| {
            TokenId::try_from(id).map_err(|_| {
                ApiError::bad_request(
                    format!("token id {id} is outside the vocabulary"),
                    Some("tokens"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let pieces = engine.token_pieces(req.model.as_deref(), tokens).await?;
    let bytes: Vec<u8> = pieces.concat();
    Ok(Json(json!({ "content": String::from_utf8_lossy(&bytes) })))
}
