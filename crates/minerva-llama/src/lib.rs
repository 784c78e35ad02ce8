//! # minerva-llama: GGUF models through llama.cpp
//!
//! Implements [`minerva_core::Backend`] on the `llama-cpp-2` crate (version pinned in the
//! workspace). Each loaded model gets one dedicated thread that owns its `LlamaContext`
//! (which is not `Send`-safe to share): requests reach it over a bounded channel, tokens leave
//! on a channel per request, and a closed channel stops the generation at the next token.
//! Tokenization only reads the vocabulary and runs on the caller's thread.
//!
//! This crate must not depend on HTTP or on any wire format.

mod cache;
mod cells;
mod embed;
mod grammar;
pub mod kernels;
mod logprobs;
mod media;
mod meta;
mod model;
mod reasoning;
mod sampler;
mod scheduler;
mod slot;
mod worker;

pub use model::LlamaModelHandle;

use llama_cpp_2::llama_backend::LlamaBackend;
use minerva_core::{Backend, CoreError, Model, ModelSpec, Result};
use std::sync::{Arc, OnceLock};

/// Process-wide llama.cpp initialisation (llama.cpp allows it once): the CPU kernels
/// ([`kernels::load`]) and the backend, with the name of the CPU variant in use.
static LLAMA: OnceLock<std::result::Result<(Arc<LlamaBackend>, String), String>> = OnceLock::new();

fn llama_backend() -> Result<(Arc<LlamaBackend>, String)> {
    LLAMA
        .get_or_init(|| {
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            let kernels = kernels::load().map_err(|e| e.to_string())?;
            LlamaBackend::init()
                .map(|backend| (Arc::new(backend), kernels.variant))
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(CoreError::Load)
}

/// The llama.cpp backend: loads GGUF files.
#[derive(Debug, Default)]
pub struct LlamaCppBackend;

impl LlamaCppBackend {
    pub fn new() -> Self {
        LlamaCppBackend
    }
}

impl Backend for LlamaCppBackend {
    fn name(&self) -> &'static str {
        "llama.cpp"
    }

    fn load(&self, spec: &ModelSpec) -> Result<Arc<dyn Model>> {
        let (backend, cpu_variant) = llama_backend()?;
        let model = LlamaModelHandle::load(backend, &cpu_variant, spec)?;
        Ok(Arc::new(model))
    }
}
