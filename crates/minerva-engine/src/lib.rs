//! # minerva-engine: from a request to a stream of text
//!
//! The engine holds the served models by id and does, once for every backend, what sits
//! between a wire request and a backend: rendering the chat template and tokenizing (on
//! blocking threads, never on the async workers), checking the prompt against the context
//! window before anything is decoded, and turning the backend's token bytes into text that is
//! cut at stop strings and never splits a character ([`CompletionStream`]).
//!
//! It depends on `minerva-core` only: no HTTP, no wire formats, no backend crate.

mod stream;

pub use stream::{CompletionStream, TextEvent};

use minerva_core::{
    CoreError, GenerateRequest, LogprobRequest, Model, ModelInfo, Result, SamplingParams, TokenId,
};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What to complete.
#[derive(Debug, Clone)]
pub enum Prompt {
    /// Raw text; special tokens written in it are parsed, BOS is added as the model asks.
    Text(String),
    /// Token ids, used as they are.
    Tokens(Vec<TokenId>),
    /// A conversation rendered with the model's chat template.
    Chat {
        messages: Vec<serde_json::Value>,
        tools: Option<serde_json::Value>,
    },
}

/// A completion request, free of any wire format.
#[derive(Debug, Clone)]
pub struct CompletionJob {
    pub model: String,
    pub prompt: Prompt,
    pub sampling: SamplingParams,
    pub max_tokens: Option<u32>,
    pub stop: Vec<String>,
    pub logprobs: Option<LogprobRequest>,
    /// Reuse cached prompt KV (see [`GenerateRequest::cache_prompt`]).
    pub cache_prompt: bool,
}

/// The served models.
#[derive(Clone, Default)]
pub struct Engine {
    models: Arc<BTreeMap<String, Arc<dyn Model>>>,
}

impl Engine {
    pub fn new(models: impl IntoIterator<Item = Arc<dyn Model>>) -> Self {
        let models = models
            .into_iter()
            .map(|m| (m.info().id.clone(), m))
            .collect();
        Engine {
            models: Arc::new(models),
        }
    }

    /// Every served model.
    pub fn list(&self) -> Vec<ModelInfo> {
        self.models.values().map(|m| m.info().clone()).collect()
    }

    /// What each model's sequences are doing, by model id.
    pub fn statuses(&self) -> Vec<(String, minerva_core::ModelStatus)> {
        self.models
            .iter()
            .map(|(id, m)| (id.clone(), m.status()))
            .collect()
    }

    /// The model with this id, or `ModelNotFound`. `None` picks the only (or first) model.
    pub fn model(&self, id: Option<&str>) -> Result<Arc<dyn Model>> {
        match id {
            Some(id) => self
                .models
                .get(id)
                .cloned()
                .ok_or_else(|| CoreError::ModelNotFound(id.to_string())),
            None => self
                .models
                .values()
                .next()
                .cloned()
                .ok_or_else(|| CoreError::ModelNotFound(String::new())),
        }
    }

    /// Tokenizes on a blocking thread.
    pub async fn tokenize(
        &self,
        model: Option<&str>,
        text: String,
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<TokenId>> {
        let m = self.model(model)?;
        blocking(move || m.tokenize(&text, add_special, parse_special)).await
    }

    /// The bytes of each token (special tokens rendered as their text).
    pub async fn token_pieces(
        &self,
        model: Option<&str>,
        tokens: Vec<TokenId>,
    ) -> Result<Vec<Vec<u8>>> {
        let m = self.model(model)?;
        blocking(move || tokens.iter().map(|&t| m.token_bytes(t, true)).collect()).await
    }

    /// Renders a conversation with the model's template.
    pub async fn render_chat(
        &self,
        model: Option<&str>,
        messages: Vec<serde_json::Value>,
        tools: Option<serde_json::Value>,
    ) -> Result<String> {
        let m = self.model(model)?;
        blocking(move || m.render_chat(&messages, tools.as_ref(), true)).await
    }

    /// Prepares the prompt and starts generating.
    pub async fn complete(&self, job: CompletionJob) -> Result<CompletionStream> {
        let model = self.model(Some(&job.model))?;
        let m = Arc::clone(&model);
        let prompt = job.prompt;
        let tokens = blocking(move || prepare_prompt(m.as_ref(), prompt)).await?;
        // `generate` refuses an empty prompt, ids outside the vocabulary and a prompt that does
        // not fit the window, before anything is decoded.
        let prompt_tokens = tokens.len();
        let inner = model.generate(GenerateRequest {
            prompt: tokens,
            sampling: job.sampling,
            max_tokens: job.max_tokens,
            logprobs: job.logprobs,
            cache_prompt: job.cache_prompt,
        })?;
        Ok(CompletionStream::new(inner, job.stop, prompt_tokens))
    }
}

fn prepare_prompt(model: &dyn Model, prompt: Prompt) -> Result<Vec<TokenId>> {
    match prompt {
        // Token ids are checked against the vocabulary by `Model::generate`.
        Prompt::Tokens(tokens) => Ok(tokens),
        Prompt::Text(text) => model.tokenize(&text, true, true),
        Prompt::Chat { messages, tools } => {
            let text = model.render_chat(&messages, tools.as_ref(), true)?;
            // Templates that write the BOS token themselves must not get a second one.
            let bos = model.tokenize("", true, false)?;
            let with_bos = model.tokenize(&text, false, true)?;
            if !bos.is_empty() && !with_bos.starts_with(&bos) {
                let mut tokens = bos;
                tokens.extend(with_bos);
                Ok(tokens)
            } else {
                Ok(with_bos)
            }
        }
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| CoreError::Backend(format!("worker task failed: {e}")))?
}
