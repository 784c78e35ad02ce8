//! `GET /slots`: what every sequence of every model is doing (llama-server has the same
//! endpoint), for debugging and for tests that check nothing leaked. An idle slot may still
//! hold KV (`n_kv_tokens`): its last request's, kept as prompt cache; `prompt_cache` is what is
//! kept in host memory, against its budget; `kv_cache` is the KV cell pool the sequences share
//! (`cells_used` counts a cell several sequences share once, `cells_unshared` sums every
//! sequence's `n_kv_tokens`).

use axum::extract::State;
use axum::Json;
use minerva_core::SlotState;
use minerva_engine::Engine;
use serde_json::{json, Value};

#[utoipa::path(get, path = "/slots", tag = "llama-server",
    responses((status = 200, description = "Every sequence of every loaded model, as llama-server's `/slots`", body = Object)))]
pub async fn list(State(engine): State<Engine>) -> Json<Value> {
    let mut slots = Vec::new();
    let mut queued = serde_json::Map::new();
    let mut cache = serde_json::Map::new();
    let mut kv = serde_json::Map::new();
    for (model, status) in engine.statuses().await {
        kv.insert(
            model.clone(),
            json!({
                "cells": status.kv.cells,
                "cells_used": status.kv.cells_used,
                "cells_unshared": status.kv.cells_unshared,
            }),
        );
        queued.insert(model.clone(), json!(status.queued));
        let c = status.cache;
        cache.insert(
            model.clone(),
            json!({
                "entries": c.entries,
                "tokens": c.tokens,
                "bytes": c.bytes,
                "budget_bytes": c.budget_bytes,
            }),
        );
        for s in status.slots {
            let state = match s.state {
                SlotState::Idle => "idle",
                SlotState::Prompt => "prompt",
                SlotState::Generating => "generating",
            };
            slots.push(json!({
                "id": s.id,
                "model": model,
                "state": state,
                "is_processing": s.state != SlotState::Idle,
                "n_prompt_tokens": s.prompt_tokens,
                "n_prompt_tokens_processed": s.prompt_processed,
                "n_decoded": s.generated,
                "n_cached_tokens": s.cached_tokens,
                "n_kv_tokens": s.kv_tokens,
            }));
        }
    }
    Json(json!({ "slots": slots, "queued": queued, "prompt_cache": cache, "kv_cache": kv }))
}
