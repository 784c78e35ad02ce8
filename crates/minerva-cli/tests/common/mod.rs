//! Helpers for the worker tests: model paths, specs, and draining a generation.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use minerva_core::{
    CoreError, FinishReason, GenEvent, GenerateRequest, GenerationStream, ModelSpec,
    SamplingParams, TokenId,
};
use minerva_worker::ProcessBackend;
use std::path::PathBuf;

/// A model file named by an environment variable; CI sets it, and a missing model is a failure.
pub fn model(var: &str) -> PathBuf {
    let path = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("set {var} to the model file (scripts/test.sh does)"));
    assert!(path.is_file(), "{var}={} is not a file", path.display());
    path
}

pub fn qwen() -> PathBuf {
    model("MINERVA_QWEN_GGUF")
}

pub fn spec(path: PathBuf) -> ModelSpec {
    ModelSpec {
        id: "test".into(),
        path,
        ctx_size: Some(1024),
        threads: Some(2),
        parallel: Some(2),
        kv_size: None,
        kv_unified: None,
        flash_attn: None,
        queue: Some(8),
        chat_template: None,
        queue_timeout: None,
        cache_bytes: Some(0),
        sha256: None,
        projector: None,
    }
}

/// The worker backend, running this package's `minerva` binary.
pub fn workers() -> ProcessBackend {
    ProcessBackend::new(env!("CARGO_BIN_EXE_minerva"))
}

pub fn greedy(prompt: Vec<TokenId>, max_tokens: u32, ignore_eos: bool) -> GenerateRequest {
    GenerateRequest {
        prompt,
        sampling: SamplingParams {
            temperature: 0.0,
            ignore_eos,
            ..SamplingParams::default()
        },
        max_tokens: Some(max_tokens),
        logprobs: None,
        cache_prompt: false,
        reasoning: None,
        images: Vec::new(),
    }
}

/// What a generation produced until its stream ended.
#[derive(Debug, Default)]
pub struct Outcome {
    pub tokens: Vec<TokenId>,
    pub finish: Option<FinishReason>,
    pub error: Option<CoreError>,
}

pub fn drain(mut stream: GenerationStream) -> Outcome {
    let mut out = Outcome::default();
    while let Some(item) = stream.blocking_recv() {
        match item {
            Ok(GenEvent::Token(t)) => out.tokens.push(t.id),
            Ok(GenEvent::Done { reason, .. }) => out.finish = Some(reason),
            Ok(GenEvent::Embedding { .. }) => panic!("an embedding in a generation"),
            Err(e) => out.error = Some(e),
        }
    }
    out
}
