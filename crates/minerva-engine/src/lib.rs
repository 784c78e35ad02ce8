//! # minerva-engine: from a request to a stream of text
//!
//! The engine holds the served models by id and does, once for every backend, what sits
//! between a wire request and a backend: rendering the chat template and tokenizing (on
//! blocking threads, never on the async workers), checking the prompt against the context
//! window before anything is decoded, and turning the backend's token bytes into text that is
//! cut at stop strings and never splits a character ([`CompletionStream`]).
//!
//! It depends on `minerva-core` only: no HTTP, no wire formats, no backend crate.

mod alias;
mod backends;
mod capabilities;
mod chat;
mod choices;
#[cfg(test)]
mod digest_tests;
mod embed;
mod infill;
pub mod manager;
pub mod media;
mod stream;

pub use chat::{ChatEvent, ChatReply, ChatStream, TextSource, ToolCall};
pub use minerva_chat::{
    check_strict, parse_tool_choice, parse_tools, template_thinks, ChatParser, ReplyParser,
    ToolChoice, ToolDef, ToolError, ToolFormat, ToolRequest,
};

pub use alias::aliases;
pub use backends::{backend_for_format, backend_of, check_backend, Backends, POLICY};
pub use capabilities::capabilities;
pub use choices::{choice_seed, merged_usage, MAX_CHOICES};
pub use embed::{normalize, EmbedInput, EmbedJob, Embeddings};
pub use infill::{Infill, InfillFile, InfillLayout};
pub use manager::{KeepAlive, Lease, LoadOptions, LoadedModel, ManagerConfig, ModelState};
pub use stream::{CompletionStream, TextEvent};

use manager::Manager;

use minerva_core::{
    CoreError, GenerateRequest, GrammarSpec, Library, LibraryModel, LogprobRequest, Model,
    ModelInfo, OutputFormat, ReasoningSpec, Result, SamplingParams, TokenId,
};
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
        /// Extra template variables (`enable_thinking`, `reasoning_effort`, a request's
        /// `chat_template_kwargs`); empty for none.
        kwargs: serde_json::Map<String, serde_json::Value>,
    },
    /// Fill-in-the-middle: a prefix and a suffix around the cursor, laid out with the
    /// vocabulary's FIM tokens ([`Infill`]).
    Infill(Infill),
    /// Ollama's `context`: the token ids of an earlier prompt and its reply
    /// ([`CompletionStream::context`]), continued by `then`, prepared as it would be alone but
    /// without a BOS of its own. The earlier tokens are a prefix of the new prompt, so the
    /// prompt cache reuses them.
    Continue {
        context: Vec<TokenId>,
        then: Box<Prompt>,
    },
}

/// What a chat request asks of the reply's reasoning block, for a model whose template
/// thinks ([`minerva_chat::template_thinks`]); no effect on other models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReasoningRequest {
    /// Report the block apart from the answer ([`ChatEvent::Reasoning`]); `false` leaves it
    /// in the text as generated, tags included (llama-server's `reasoning_format: none`).
    pub split: bool,
    /// Most tokens the block may take before it is closed (see
    /// [`minerva_core::ReasoningSpec::budget`]); `None`: no limit.
    pub budget: Option<u32>,
}

impl Default for ReasoningRequest {
    fn default() -> Self {
        ReasoningRequest {
            split: true,
            budget: None,
        }
    }
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
    /// How long the model stays loaded after this request (`None`: the server's default).
    pub keep_alive: Option<KeepAlive>,
    /// The tools a chat request offers and how they may be used. With `tool_choice: none` the
    /// template is not shown the tools; the reply is parsed for calls only when tools are
    /// active ([`CompletionStream::reply_parser`]).
    pub tools: ToolRequest,
    /// The reasoning block (chat prompts only).
    pub reasoning: ReasoningRequest,
    /// The images of a chat or text prompt, in order: each stands in the prompt's text (a
    /// chat message's content) as [`minerva_core::media_marker`]. A text prompt without
    /// markers gets them before its text. Only for models with `vision` in their info.
    pub images: Vec<minerva_core::Image>,
}

/// llama.cpp's default media marker (`mtmd_default_marker()`), which places an image in a
/// raw text prompt.
pub const LLAMA_MEDIA_MARKER: &str = "<__media__>";

/// The served models: the library's, loaded on demand by the [`manager`], and any handed over
/// already loaded.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    manager: Arc<Manager>,
    library: Option<Arc<dyn Library>>,
    /// Models served by path or handed over loaded, before the library's (same name wins).
    extra: Vec<LibraryModel>,
    /// Digests of `extra` models computed after start (by name), for those that had none.
    digests: std::sync::RwLock<std::collections::HashMap<String, String>>,
}

/// A model the engine can serve, and where it is in its life cycle.
#[derive(Clone)]
pub struct ModelEntry {
    pub model: LibraryModel,
    pub state: ModelState,
    /// Why the last load failed, when `state` is `Failed`.
    pub error: Option<String>,
    pub loaded: Option<LoadedModel>,
    /// True for the library's models; false for those served by path (`--model FILE`) or
    /// handed over loaded, which the library cannot delete.
    pub in_library: bool,
    /// The older name this one is an alias of (same files, see [`aliases`]).
    pub alias_of: Option<String>,
}

impl ModelEntry {
    /// The backend that serves (or would serve) the model.
    pub fn backend(&self) -> String {
        match &self.loaded {
            Some(l) => l.model.info().backend.clone(),
            None => backend_of(&self.model),
        }
    }
}

impl Default for Engine {
    fn default() -> Self {
        Engine::new(Vec::new())
    }
}

impl Engine {
    /// An engine serving models that are already loaded, for as long as it lives.
    pub fn new(models: impl IntoIterator<Item = Arc<dyn Model>>) -> Self {
        let manager = Manager::new(Backends::new(), ManagerConfig::default());
        let mut extra = Vec::new();
        for model in models {
            let described = describe(model.info());
            manager.insert_pinned(described.name.clone(), model);
            extra.push(described);
        }
        Engine {
            inner: Arc::new(Inner {
                manager,
                library: None,
                extra,
                digests: Default::default(),
            }),
        }
    }

    /// An engine that loads models on demand with `backends` (by model format; one
    /// `Arc<dyn Backend>` converts into a GGUF-only registry): the library's, and `extra` (models
    /// named on the command line by path), which come first and win over a library model of the
    /// same name.
    pub fn with_library(
        library: Option<Arc<dyn Library>>,
        backends: impl Into<Backends>,
        extra: Vec<LibraryModel>,
        config: ManagerConfig,
    ) -> Self {
        Engine {
            inner: Arc::new(Inner {
                manager: Manager::new(backends.into(), config),
                library,
                extra,
                digests: Default::default(),
            }),
        }
    }

    /// Every model that can be served and whether it is the library's: command-line models
    /// first (with their digests once known), then the library's.
    async fn described(&self) -> Result<Vec<(LibraryModel, bool)>> {
        let listed = match self.library() {
            Some(library) => blocking(move || library.list()).await?,
            None => Vec::new(),
        };
        let mut all: Vec<(LibraryModel, bool)> = self
            .inner
            .extra
            .iter()
            .map(|m| (self.with_digest(m), false))
            .collect();
        for model in listed {
            if !all.iter().any(|(m, _)| m.name == model.name) {
                all.push((model, true));
            }
        }
        Ok(all)
    }

    /// The model an alias stands for ([`aliases`]): names of the same files share one loaded
    /// model (one worker, one KV cache, one prompt cache), as Ollama's names of one digest do.
    /// Any other model is itself.
    async fn canonical(&self, model: LibraryModel) -> LibraryModel {
        if model.digest.is_empty() {
            return model;
        }
        let Ok(all) = self.described().await else {
            return model;
        };
        let models: Vec<LibraryModel> = all.into_iter().map(|(m, _)| m).collect();
        match aliases(&models).get(&model.name) {
            Some(original) => models
                .into_iter()
                .find(|m| &m.name == original)
                .unwrap_or(model),
            None => model,
        }
    }

    /// The model library, when the engine has one.
    pub fn library(&self) -> Option<Arc<dyn Library>> {
        self.inner.library.clone()
    }

    /// Every model that can be served, with its state: command-line models first, then the
    /// library's.
    pub async fn models(&self) -> Result<Vec<ModelEntry>> {
        let all = self.described().await?;
        let loaded = self.inner.manager.loaded();
        let models: Vec<LibraryModel> = all.iter().map(|(m, _)| m.clone()).collect();
        let mut alias_of = aliases(&models);
        Ok(all
            .into_iter()
            .map(|(model, in_library)| {
                let (state, error) = self.inner.manager.state(&model.name);
                let loaded = loaded
                    .iter()
                    .find(|(n, _)| *n == model.name)
                    .map(|(_, l)| l.clone());
                ModelEntry {
                    alias_of: alias_of.remove(&model.name),
                    model,
                    state,
                    error,
                    loaded,
                    in_library,
                }
            })
            .collect())
    }

    /// The loaded models, by name.
    pub fn loaded(&self) -> Vec<(String, LoadedModel)> {
        self.inner.manager.loaded()
    }

    /// The `keep_alive` of requests that give none (`serve --keep-alive`).
    pub fn default_keep_alive(&self) -> KeepAlive {
        self.inner.manager.default_keep_alive()
    }

    /// What each loaded model's sequences are doing, by model name.
    pub async fn statuses(&self) -> Vec<(String, minerva_core::ModelStatus)> {
        let loaded = self.loaded();
        tokio::task::spawn_blocking(move || {
            loaded
                .into_iter()
                .map(|(name, l)| (name, l.model.status()))
                .collect()
        })
        .await
        .unwrap_or_default()
    }

    /// `(model, variant)`: the llama.cpp CPU variant each loaded model runs on
    /// ([`minerva_core::ModelInfo::cpu_variant`]); models whose backend has none are left out.
    pub fn cpu_variants(&self) -> Vec<(String, String)> {
        self.loaded()
            .into_iter()
            .filter_map(|(name, l)| l.model.info().cpu_variant.clone().map(|v| (name, v)))
            .collect()
    }

    /// The library entry (or command-line model) that `name` names. `None` picks the first
    /// command-line model, else the only loaded one, else the library's first.
    pub async fn resolve(&self, name: Option<&str>) -> Result<LibraryModel> {
        let name = match name {
            Some(n) => n.to_string(),
            None => {
                if let Some(first) = self.inner.extra.first() {
                    return Ok(self.with_digest(first));
                }
                let loaded = self.loaded();
                match loaded.as_slice() {
                    [(only, _)] => only.clone(),
                    _ => {
                        let models = self.models().await?;
                        match models.into_iter().next() {
                            Some(first) => return Ok(first.model),
                            None => return Err(CoreError::ModelNotFound(String::new())),
                        }
                    }
                }
            }
        };
        if let Some(m) = self.find_extra(&name) {
            return Ok(self.with_digest(m));
        }
        match self.library() {
            Some(library) => {
                let asked = name.clone();
                blocking(move || library.get(&name))
                    .await
                    // Errors name the model as the client wrote it, not as the library spells it.
                    .map_err(|e| match e {
                        CoreError::ModelNotFound(_) => CoreError::ModelNotFound(asked),
                        other => other,
                    })
            }
            None => Err(CoreError::ModelNotFound(name)),
        }
    }

    /// Records the digest of the command-line model `name`, computed after start (a model
    /// served by path, hashed off the request path); listings show it from now on.
    pub fn set_digest(&self, name: &str, digest: String) {
        let mut digests = self
            .inner
            .digests
            .write()
            .unwrap_or_else(|e| e.into_inner());
        digests.insert(name.to_string(), digest);
    }

    /// A command-line model with the digest computed after start, when it had none.
    fn with_digest(&self, model: &LibraryModel) -> LibraryModel {
        let mut model = model.clone();
        if model.digest.is_empty() {
            let digests = self.inner.digests.read().unwrap_or_else(|e| e.into_inner());
            if let Some(d) = digests.get(&model.name) {
                model.digest = d.clone();
            }
        }
        model
    }

    /// The model served by path (`minerva serve --model FILE`) under `name`, if any, with its
    /// digest once it is known: outside the library, so the library can neither copy nor
    /// delete it by name.
    pub fn served_by_path(&self, name: &str) -> Option<LibraryModel> {
        self.find_extra(name).map(|m| self.with_digest(m))
    }

    /// A command-line model by name; `x:latest` also finds `x`, and `x` finds `x:latest` (a
    /// name that carries another tag has no alias).
    fn find_extra(&self, name: &str) -> Option<&LibraryModel> {
        let untagged = |n: &str| !n.rsplit('/').next().unwrap_or(n).contains(':');
        let extra = &self.inner.extra;
        extra.iter().find(|m| m.name == name).or_else(|| {
            let base = name.strip_suffix(":latest").unwrap_or(name);
            if !untagged(base) {
                return None;
            }
            extra
                .iter()
                .find(|m| m.name == base || m.name.strip_suffix(":latest") == Some(base))
        })
    }

    /// The model `name` names, loaded if it is not, held until the lease is dropped.
    pub async fn model(&self, name: Option<&str>) -> Result<Lease> {
        self.model_with(name, None).await
    }

    /// [`Engine::model`], with the `keep_alive` to apply after this use.
    pub async fn model_with(
        &self,
        name: Option<&str>,
        keep_alive: Option<KeepAlive>,
    ) -> Result<Lease> {
        let described = self.resolve(name).await?;
        let described = self.canonical(described).await;
        self.inner.manager.acquire(&described, keep_alive).await
    }

    /// Unloads the model now if it is idle (once its requests end if not).
    pub async fn unload(&self, name: &str) -> Result<()> {
        let described = self.resolve(Some(name)).await?;
        let described = self.canonical(described).await;
        self.inner.manager.unload(&described.name).await;
        Ok(())
    }

    /// Tokenizes on a blocking thread.
    pub async fn tokenize(
        &self,
        model: Option<&str>,
        text: String,
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<TokenId>> {
        let m = Arc::clone(self.model(model).await?.model());
        blocking(move || m.tokenize(&text, add_special, parse_special)).await
    }

    /// The bytes of each token (special tokens rendered as their text).
    pub async fn token_pieces(
        &self,
        model: Option<&str>,
        tokens: Vec<TokenId>,
    ) -> Result<Vec<Vec<u8>>> {
        let m = Arc::clone(self.model(model).await?.model());
        blocking(move || m.token_bytes_many(&tokens, true)).await
    }

    /// Renders a conversation with the model's template (`kwargs`: extra template variables).
    pub async fn render_chat(
        &self,
        model: Option<&str>,
        messages: Vec<serde_json::Value>,
        tools: Option<serde_json::Value>,
        kwargs: serde_json::Map<String, serde_json::Value>,
    ) -> Result<String> {
        let m = Arc::clone(self.model(model).await?.model());
        blocking(move || render_continuing(m.as_ref(), &messages, tools.as_ref(), &kwargs)).await
    }

    /// How many tokens `prompt` takes for `model`, counted exactly as a generation would
    /// read it (template, BOS); `tools` as in [`CompletionJob::tools`].
    pub async fn count_prompt(&self, model: &str, prompt: Prompt) -> Result<usize> {
        let m = Arc::clone(self.model(Some(model)).await?.model());
        let prepared =
            blocking(move || prepare_prompt(m.as_ref(), prompt, None, Vec::new())).await?;
        Ok(prepared.tokens.len())
    }

    /// Prepares the prompt and starts generating.
    pub async fn complete(&self, job: CompletionJob) -> Result<CompletionStream> {
        let (lease, prompt) = self.prepare(&job).await?;
        start(lease, prompt, &job, job.sampling.seed).await
    }

    /// Resolves and leases the model, and renders and tokenizes the prompt (on a blocking
    /// thread).
    async fn prepare(&self, job: &CompletionJob) -> Result<(Lease, Prepared)> {
        let lease = self.model_with(Some(&job.model), job.keep_alive).await?;
        let m = Arc::clone(lease.model());
        let mut prompt = job.prompt.clone();
        // `tool_choice: none`: the model is not shown the tools.
        if !job.tools.active() {
            if let Prompt::Chat { tools, .. } = &mut prompt {
                *tools = None;
            }
        }
        let budget = job.reasoning.budget;
        let images = job.images.clone();
        if !images.is_empty() && m.info().vision.is_none() {
            return Err(CoreError::invalid(
                format!(
                    "model '{}' cannot read images (it has no vision projector); use a vision model",
                    m.info().id
                ),
                Some("messages"),
            ));
        }
        media::check_images(&images, "messages")?;
        let prepared = blocking(move || prepare_prompt(m.as_ref(), prompt, budget, images)).await?;
        Ok((lease, prepared))
    }
}

/// A prompt ready to generate from.
#[derive(Debug, Clone)]
struct Prepared {
    tokens: Vec<TokenId>,
    /// Images among `tokens`.
    images: Vec<minerva_core::PromptImage>,
    /// The reply's reasoning block, for a chat prompt to a model that thinks.
    reasoning: Option<ReasoningSpec>,
}

/// Starts one generation of `tokens` with `job`'s parameters and `seed`.
async fn start(
    lease: Lease,
    prepared: Prepared,
    job: &CompletionJob,
    seed: Option<u32>,
) -> Result<CompletionStream> {
    let Prepared {
        tokens,
        images,
        reasoning,
    } = prepared;
    let model = Arc::clone(lease.model());
    let format = ToolFormat::detect(&model.info().chat_template);
    let names = if job.tools.active() {
        job.tools.names()
    } else {
        Vec::new()
    };
    let mut sampling = SamplingParams {
        seed,
        ..job.sampling.clone()
    };
    if let Some(grammar) = tool_grammar(model.as_ref(), format, &job.tools, &sampling)? {
        sampling.format = Some(grammar);
    }
    // `generate` refuses an empty prompt, ids outside the vocabulary and a prompt that does
    // not fit the window, before anything is decoded.
    let prompt_tokens = tokens.len();
    let prompt_ids = tokens.clone();
    let request = GenerateRequest {
        prompt: tokens,
        sampling,
        max_tokens: lease.max_tokens(job.max_tokens),
        logprobs: job.logprobs,
        cache_prompt: job.cache_prompt,
        reasoning: reasoning.clone(),
        images,
    };
    // A model in a worker process answers `generate` after a round trip: off the async
    // workers.
    let inner = blocking(move || model.generate(request)).await?;
    Ok(
        CompletionStream::new(inner, job.stop.clone(), prompt_tokens)
            .with_prompt_ids(prompt_ids)
            .holding(lease)
            .with_tools(format, names)
            .with_reasoning(reasoning.filter(|_| job.reasoning.split)),
    )
}

/// The output format a request's tools ask for, if any: the tool-call grammar for
/// `tool_choice` `required` or a named function (replacing a `response_format`), or, for
/// `auto`, a lazy one that starts when the model writes its format's opener — only where the
/// opener is a single token of the model's vocabulary (a trigger token), since the grammar
/// must accept whatever follows the trigger in the same token, and only when no
/// `response_format` was asked for.
fn tool_grammar(
    model: &dyn Model,
    format: ToolFormat,
    tools: &ToolRequest,
    sampling: &SamplingParams,
) -> Result<Option<OutputFormat>> {
    let invalid = |e: ToolError| CoreError::invalid(e.message, Some("tools"));
    let Some(grammar) = minerva_chat::tool_grammar(format, tools).map_err(invalid)? else {
        return Ok(None);
    };
    let Some(opener) = grammar.trigger else {
        if !model.supports_grammar() {
            return Err(CoreError::invalid(
                format!(
                    "the {} backend cannot constrain sampling, which tool_choice 'required' or a named function needs; use 'auto'",
                    model.info().backend
                ),
                Some("tool_choice"),
            ));
        }
        return Ok(Some(OutputFormat::Grammar(GrammarSpec::eager(
            grammar.gbnf,
        ))));
    };
    if sampling.format.is_some() || !model.supports_grammar() {
        return Ok(None);
    }
    let trigger = model.tokenize(opener, false, true)?;
    let [token] = trigger.as_slice() else {
        tracing::debug!(
            opener,
            "the tool-call opener is not one token: calls are parsed, not constrained"
        );
        return Ok(None);
    };
    Ok(Some(OutputFormat::Grammar(GrammarSpec {
        gbnf: grammar.gbnf,
        trigger_patterns: Vec::new(),
        trigger_tokens: vec![*token],
    })))
}

/// Renders (chat) and tokenizes a prompt, placing `images` where their markers are (see
/// [`CompletionJob::images`]). A chat prompt to a model that thinks gets its reasoning block's
/// spec: open from the start when the rendered prompt opened it.
fn prepare_prompt(
    model: &dyn Model,
    prompt: Prompt,
    budget: Option<u32>,
    images: Vec<minerva_core::Image>,
) -> Result<Prepared> {
    let plain = |tokens| Prepared {
        tokens,
        images: Vec::new(),
        reasoning: None,
    };
    let no_images = |images: &[minerva_core::Image], what: &str| {
        if images.is_empty() {
            Ok(())
        } else {
            Err(CoreError::invalid(
                format!("images cannot go with {what}"),
                Some("images"),
            ))
        }
    };
    match prompt {
        // Token ids are checked against the vocabulary by `Model::generate`.
        Prompt::Tokens(tokens) => {
            no_images(&images, "a prompt of token ids")?;
            Ok(plain(tokens))
        }
        Prompt::Text(text) if images.is_empty() => Ok(plain(model.tokenize(&text, true, true)?)),
        Prompt::Text(text) => {
            // llama.cpp's default marker places an image in a raw prompt, as llama-server's
            // `/completion` with `multimodal_data`; without one the images go first.
            let marker = minerva_core::media_marker();
            let text = text.replace(LLAMA_MEDIA_MARKER, marker);
            let text = if text.contains(marker) {
                text
            } else {
                marker.repeat(images.len()) + &text
            };
            let (tokens, images) = media::tokenize_with_images(model, &text, images)?;
            Ok(with_bos(model, tokens, images, None)?)
        }
        Prompt::Infill(infill) => {
            no_images(&images, "fill-in-the-middle")?;
            Ok(plain(infill::infill_tokens(model, &infill)?))
        }
        Prompt::Continue { context, then } => {
            let mut prepared = prepare_prompt(model, *then, budget, images)?;
            let bos = model.tokenize("", true, false)?;
            let skip = if !bos.is_empty() && prepared.tokens.starts_with(&bos) {
                bos.len()
            } else {
                0
            };
            let mut tokens = context;
            let shift = tokens.len();
            tokens.extend_from_slice(&prepared.tokens[skip..]);
            prepared.tokens = tokens;
            for image in &mut prepared.images {
                image.at = (image.at + shift).saturating_sub(skip);
            }
            Ok(prepared)
        }
        Prompt::Chat {
            messages,
            tools,
            kwargs,
        } => {
            let text = render_continuing(model, &messages, tools.as_ref(), &kwargs)?;
            let reasoning = minerva_chat::template_thinks(&model.info().chat_template).then(|| {
                let mut spec = ReasoningSpec::think(false, budget);
                spec.inside = minerva_chat::prompt_opens_block(&text, &spec);
                spec
            });
            let (tokens, images) = if images.is_empty() {
                (model.tokenize(&text, false, true)?, Vec::new())
            } else {
                media::tokenize_with_images(model, &text, images)?
            };
            with_bos(model, tokens, images, reasoning)
        }
    }
}

/// `tokens` with the model's BOS token first when it adds one and the text did not start
/// with it (templates that write the BOS token themselves must not get a second one).
fn with_bos(
    model: &dyn Model,
    tokens: Vec<TokenId>,
    mut images: Vec<minerva_core::PromptImage>,
    reasoning: Option<ReasoningSpec>,
) -> Result<Prepared> {
    let bos = model.tokenize("", true, false)?;
    let image_first = images.first().is_some_and(|i| i.at == 0);
    if bos.is_empty() || (tokens.starts_with(&bos) && !image_first) {
        return Ok(Prepared {
            tokens,
            images,
            reasoning,
        });
    }
    for image in &mut images {
        image.at += bos.len();
    }
    let mut with = bos;
    with.extend(tokens);
    Ok(Prepared {
        tokens: with,
        images,
        reasoning,
    })
}

/// The chat prompt of `messages`. A last message from the assistant with text is continued
/// (assistant prefill, as llama-server's default and Anthropic's API): the messages before it
/// rendered with the generation prompt, then its text as it is, so the reply goes on from it.
fn render_continuing(
    model: &dyn Model,
    messages: &[serde_json::Value],
    tools: Option<&serde_json::Value>,
    kwargs: &serde_json::Map<String, serde_json::Value>,
) -> Result<String> {
    if let Some((last, before)) = messages.split_last() {
        let prefill = (last["role"] == "assistant")
            .then(|| last["content"].as_str())
            .flatten()
            .filter(|text| !text.is_empty());
        if let Some(prefill) = prefill {
            let mut text = model.render_chat(before, tools, kwargs, true)?;
            text.push_str(prefill);
            return Ok(text);
        }
    }
    model.render_chat(messages, tools, kwargs, true)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| CoreError::Backend(format!("worker task failed: {e}")))?
}

/// A library entry for a model handed over loaded or named by path.
pub fn describe(info: &ModelInfo) -> LibraryModel {
    let meta = |key: &str| {
        info.file
            .metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    LibraryModel {
        name: info.id.clone(),
        source: info.path.display().to_string(),
        digest: info.file.sha256.clone().unwrap_or_default(),
        size: info.file.size,
        modified: info.file.modified.unwrap_or(std::time::UNIX_EPOCH),
        format: info.file.format.clone(),
        architecture: info.file.architecture.clone(),
        n_params: Some(info.file.n_params).filter(|&n| n > 0),
        quantization: info.file.quantization.clone(),
        context_length: Some(info.n_ctx_train as u64),
        chat_template: Some(info.chat_template.clone()).filter(|_| !info.default_template),
        license: meta("general.license"),
        kv_bytes_per_token: None,
        fill_in_middle: info.fim.missing().is_empty(),
        backend: Some(info.backend.clone()),
        path: info.path.clone(),
        projector: info.vision.as_ref().map(|v| v.projector.clone()),
        settings: Default::default(),
    }
}
