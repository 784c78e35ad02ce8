//! Every request field that the official `openai` client documents as nullable
//! (`Optional[...]` in `types/chat/completion_create_params.py` and
//! `types/completion_create_params.py`, openai 3.57.0) accepts JSON `null`, meaning absent.

use crate::{ChatCompletionRequest, CompletionRequest, SamplingFields};
use serde_json::{json, Value};

/// The nullable fields of both create params that sampling reads.
const SAMPLING_NULLABLE: [&str; 13] = [
    "frequency_penalty",
    "logit_bias",
    "max_tokens",
    "n",
    "presence_penalty",
    "seed",
    "stop",
    "stream",
    "stream_options",
    "temperature",
    "top_p",
    // llama-server's extensions, nullable alike.
    "top_k",
    "min_p",
];

const CHAT_NULLABLE: [&str; 18] = [
    "audio",
    "logprobs",
    "max_completion_tokens",
    "metadata",
    "modalities",
    "moderation",
    "prediction",
    "prompt_cache_key",
    "prompt_cache_retention",
    "reasoning_effort",
    "safety_identifier",
    "service_tier",
    "store",
    "top_logprobs",
    "verbosity",
    "web_search_options",
    "tools",
    "response_format",
];

const COMPLETION_NULLABLE: [&str; 5] = ["prompt", "best_of", "echo", "logprobs", "suffix"];

fn with_nulls(base: Value, fields: &[&str]) -> Value {
    let mut body = base;
    for field in fields {
        body[*field] = Value::Null;
    }
    body
}

#[test]
fn chat_fields_accept_null() {
    let base = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    let body = with_nulls(with_nulls(base, &SAMPLING_NULLABLE), &CHAT_NULLABLE);
    let req: ChatCompletionRequest = serde_json::from_value(body.clone()).unwrap();
    let sampling: SamplingFields = serde_json::from_value(body).unwrap();
    assert!(!req.logprobs);
    assert!(req.top_logprobs.is_none() && req.audio.is_none() && req.modalities.is_none());
    assert!(!sampling.stream);
    assert!(sampling.n.is_none() && sampling.stop.is_none() && sampling.seed.is_none());
}

#[test]
fn completion_fields_accept_null() {
    let base = json!({"model": "m"});
    let body = with_nulls(with_nulls(base, &SAMPLING_NULLABLE), &COMPLETION_NULLABLE);
    let req: CompletionRequest = serde_json::from_value(body.clone()).unwrap();
    let sampling: SamplingFields = serde_json::from_value(body).unwrap();
    assert!(req.prompt.is_none() && !req.echo && req.suffix.is_none() && req.best_of.is_none());
    assert!(req.logprobs.is_none());
    assert!(!sampling.stream && sampling.max_tokens.is_none());
}

#[test]
fn stream_options_fields_accept_null() {
    let body = json!({"stream": true, "stream_options": {"include_usage": null, "include_obfuscation": null}});
    let sampling: SamplingFields = serde_json::from_value(body).unwrap();
    assert!(sampling.stream);
    assert!(!sampling.stream_options.unwrap().include_usage);
}

#[test]
fn non_null_values_still_parse() {
    let body = json!({
        "model": "m", "messages": [], "logprobs": true, "modalities": ["text"],
        "verbosity": "medium", "audio": {"voice": "alloy", "format": "mp3"}
    });
    let req: ChatCompletionRequest = serde_json::from_value(body).unwrap();
    assert!(req.logprobs);
    assert_eq!(req.modalities.as_deref(), Some(&["text".to_string()][..]));
    assert!(req.audio.is_some());
    let req: CompletionRequest =
        serde_json::from_value(json!({"model": "m", "prompt": "x", "echo": false, "best_of": 1}))
            .unwrap();
    assert!(!req.echo);
    assert_eq!(req.best_of, Some(1));
}

#[test]
fn wrong_types_are_still_errors() {
    let body = json!({"model": "m", "messages": [], "logprobs": "yes"});
    assert!(serde_json::from_value::<ChatCompletionRequest>(body).is_err());
    assert!(serde_json::from_value::<SamplingFields>(json!({"stream": 1})).is_err());
}
