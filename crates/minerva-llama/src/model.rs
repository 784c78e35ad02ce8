//! A loaded GGUF model: vocabulary and template on the caller's side, the context on its own thread.

use crate::embed::{self, EmbedConfig, EmbedJob};
use crate::media::{Layout, Vision};
use crate::worker::{self, Job, Shared, WorkerConfig};
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use minerva_core::{
    CoreError, EmbedRequest, EmbeddingInfo, FimTokens, FlashAttn, GenerateRequest,
    GenerationStream, Model, ModelInfo, ModelSpec, ModelStatus, Result, TokenId,
};
use minerva_template::{ChatTemplate, RenderOptions, DEFAULT_TEMPLATE};
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Default context window when none is asked for (llama-server's default is the training
/// length, which for 32k-context models costs far more KV memory than a laptop wants).
const DEFAULT_CTX: u32 = 4096;
/// Requests that may wait for a free sequence.
const QUEUE_DEPTH: usize = 64;
/// Longest a request waits for a free sequence by default.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(600);
/// Host memory for the prompt cache by default.
const CACHE_BYTES: u64 = 2 << 30;
/// The default `parallel` keeps the context's KV cells (parallel × ctx) within this many.
const DEFAULT_KV_CELLS: u32 = 16384;
/// Most sequences by default.
const DEFAULT_PARALLEL: u32 = 4;

/// A GGUF model loaded through llama.cpp.
pub struct LlamaModelHandle {
    info: ModelInfo,
    /// The projector (declared before `model`, which it refers to, so it is dropped first).
    vision: Option<Arc<Vision>>,
    model: Arc<LlamaModel>,
    template: ChatTemplate,
    jobs: Sender<Job>,
    parallel: usize,
    /// Requests that may wait when every sequence is busy.
    queue_depth: usize,
    shared: Arc<Shared>,
    /// End-of-generation tokens, banned for `ignore_eos`.
    eog: Vec<TokenId>,
    /// Bytes the KV cache of all sequences takes.
    kv_bytes: u64,
    /// Bytes of KV one token takes.
    kv_per_token: u64,
    /// Kept to start the embedding context on the first embeddings request.
    backend: Arc<LlamaBackend>,
    threads: i32,
    /// Flash attention, for the embedding context too.
    flash_attn: FlashAttn,
    /// The embedding thread, once started.
    embedder: Mutex<Option<std::sync::mpsc::Sender<EmbedJob>>>,
}

impl LlamaModelHandle {
    pub(crate) fn load(
        backend: Arc<LlamaBackend>,
        cpu_variant: &str,
        spec: &ModelSpec,
    ) -> Result<Self> {
        check_gguf_magic(&spec.path)?;
        let arch =
            crate::media::Meta::read(&spec.path).and_then(|m| m.text("general.architecture"));
        if arch.as_deref() == Some(crate::media::PROJECTOR_ARCHITECTURE) {
            return Err(CoreError::Load(format!(
                "{}: a multimodal projector (an mmproj file), not a model: give it with --mmproj beside its model",
                spec.path.display()
            )));
        }
        let params = LlamaModelParams::default();
        let model = LlamaModel::load_from_file(&backend, &spec.path, &params)
            .map_err(|e| CoreError::Load(format!("{}: {e}", spec.path.display())))?;
        let model = Arc::new(model);

        let n_ctx_train = model.n_ctx_train() as usize;
        let n_ctx = spec.ctx_size.unwrap_or(DEFAULT_CTX).max(16);
        let threads = spec
            .threads
            .map_or_else(default_threads, |t| t.max(1) as i32);
        let vocab = model.vocab();
        let n_vocab = usize::try_from(vocab.n_tokens()).unwrap_or(0);
        let add_bos = vocab.should_add_bos();

        let own_template = model.meta_val_str("tokenizer.chat_template").ok();
        let (source, default_template) = match (&spec.chat_template, own_template) {
            (Some(over), _) => (over.clone(), false),
            (None, Some(own)) => (own, false),
            (None, None) => (DEFAULT_TEMPLATE.to_string(), true),
        };
        let bos = special_text(&model, vocab.bos());
        let eos = special_text(&model, vocab.eos());
        let template = ChatTemplate::new(&source, &bos, &eos)
            .map_err(|e| CoreError::Template(e.to_string()))?;

        let eog = (0..vocab.n_tokens())
            .filter(|&t| vocab.is_eog(LlamaToken(t)))
            .collect();
        let parallel = spec
            .parallel
            .unwrap_or_else(|| default_parallel(n_ctx))
            .max(1);
        let vision = spec
            .projector
            .as_deref()
            .map(|path| Vision::load(path, &model, threads))
            .transpose()?;
        let kv_unified = spec.kv_unified.unwrap_or(true);
        let kv_cells = match spec.kv_size {
            None => n_ctx.saturating_mul(parallel),
            Some(_) if !kv_unified => {
                return Err(CoreError::Load(
                    "--kv-size sizes the KV cache the sequences share; without one (--no-kv-unified) each has --ctx-size cells".into(),
                ))
            }
            Some(cells) if cells > n_ctx.saturating_mul(parallel) => {
                return Err(CoreError::Load(format!(
                    "--kv-size {cells} is larger than --parallel {parallel} × --ctx-size {n_ctx}: the running requests never use more than {}",
                    n_ctx.saturating_mul(parallel)
                )))
            }
            Some(cells) if cells >= n_ctx => cells,
            Some(cells) => {
                return Err(CoreError::Load(format!(
                    "--kv-size {cells} is smaller than the context window of one request ({n_ctx} tokens)"
                )))
            }
        };
        let kv_per_token = kv_bytes_per_token(&model);
        let kv_bytes = kv_per_token.saturating_mul(u64::from(kv_cells));
        let shared = Arc::new(Shared::default());
        let jobs = worker::spawn(
            Arc::clone(&backend),
            Arc::clone(&model),
            WorkerConfig {
                n_ctx,
                parallel,
                kv_cells,
                kv_unified,
                flash_attn: spec.flash_attn.unwrap_or_default(),
                threads,
                queue_timeout: match spec.queue_timeout.unwrap_or(QUEUE_TIMEOUT) {
                    t if t.is_zero() => None,
                    t => Some(t),
                },
                cache_bytes: spec.cache_bytes.unwrap_or(CACHE_BYTES),
                model_id: spec.id.clone(),
                shared: Arc::clone(&shared),
                vision: vision.clone(),
            },
        )?;

        tracing::info!(
            model = %spec.id,
            path = %spec.path.display(),
            n_ctx,
            n_ctx_train,
            threads,
            parallel,
            kv_cells,
            kv_unified,
            flash_attn = ?spec.flash_attn.unwrap_or_default(),
            params = model.n_params(),
            projector = vision.as_ref().map(|v| v.info.projector.display().to_string()),
            cpu_variant,
            "model loaded"
        );
        Ok(LlamaModelHandle {
            info: ModelInfo {
                id: spec.id.clone(),
                backend: "llama.cpp".to_string(),
                path: spec.path.clone(),
                n_ctx: n_ctx as usize,
                n_ctx_train,
                n_vocab,
                add_bos,
                chat_template: source,
                default_template,
                file: crate::meta::model_file(&model, spec),
                embedding: Some(EmbeddingInfo {
                    dimensions: usize::try_from(model.n_embd_out()).unwrap_or(0),
                    pooling: embed::model_pooling(&model),
                    n_ctx: n_ctx.min(embed::MAX_WINDOW) as usize,
                }),
                fim: fim_tokens(&model),
                vision: vision.as_ref().map(|v| v.info.clone()),
                cpu_variant: Some(cpu_variant.to_string()),
            },
            vision,
            model,
            template,
            jobs,
            parallel: parallel as usize,
            queue_depth: spec.queue.map_or(QUEUE_DEPTH, |q| q as usize),
            shared,
            eog,
            kv_bytes,
            kv_per_token,
            backend,
            threads,
            flash_attn: spec.flash_attn.unwrap_or_default(),
            embedder: Mutex::new(None),
        })
    }

    /// The embedding thread, started on first use.
    fn embedder(&self, info: &EmbeddingInfo) -> Result<std::sync::mpsc::Sender<EmbedJob>> {
        let mut embedder = self.embedder.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tx) = embedder.as_ref() {
            return Ok(tx.clone());
        }
        let tx = embed::spawn(
            Arc::clone(&self.backend),
            Arc::clone(&self.model),
            EmbedConfig {
                window: info.n_ctx as u32,
                threads: self.threads,
                pooling: info.pooling,
                model_id: self.info.id.clone(),
                flash_attn: self.flash_attn,
            },
        )?;
        tracing::info!(
            model = %self.info.id,
            window = info.n_ctx,
            pooling = info.pooling.as_str(),
            "embedding context created"
        );
        *embedder = Some(tx.clone());
        Ok(tx)
    }

    /// Refuses token ids outside the vocabulary, naming `param`.
    fn check_vocab(&self, tokens: &[TokenId], param: &'static str) -> Result<()> {
        match tokens
            .iter()
            .find(|&&t| t < 0 || t as usize >= self.info.n_vocab)
        {
            Some(bad) => Err(CoreError::invalid(
                format!(
                    "token id {bad} is outside the vocabulary (0..{})",
                    self.info.n_vocab
                ),
                Some(param),
            )),
            None => Ok(()),
        }
    }

    fn embedder_started(&self) -> bool {
        self.embedder
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }
}

/// The vocabulary's fill-in-the-middle tokens (`LLAMA_TOKEN_NULL`, -1, where absent).
fn fim_tokens(model: &LlamaModel) -> FimTokens {
    let vocab = model.vocab();
    let present = |t: LlamaToken| (t.0 >= 0).then_some(t.0);
    FimTokens {
        pre: present(vocab.fim_pre()),
        suf: present(vocab.fim_suf()),
        mid: present(vocab.fim_mid()),
        pad: present(vocab.fim_pad()),
        rep: present(vocab.fim_rep()),
        sep: present(vocab.fim_sep()),
    }
}

/// Bytes of K and V one token takes in the cache (f16, every layer).
fn kv_bytes_per_token(model: &LlamaModel) -> u64 {
    let arch = model
        .meta_val_str("general.architecture")
        .unwrap_or_default();
    let meta = |key: &str| {
        model
            .meta_val_str(&format!("{arch}.attention.{key}"))
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
    };
    let head = u64::from(model.n_head().max(1));
    let fallback = u64::try_from(model.n_embd()).unwrap_or(0) / head;
    let k = meta("key_length").unwrap_or(fallback);
    let v = meta("value_length").unwrap_or(fallback);
    u64::from(model.n_layer()) * u64::from(model.n_head_kv()) * (k + v) * 2
}

impl Model for LlamaModelHandle {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The weights, the KV cache of every sequence, the prompt cache's host memory and, once
    /// started, the embedding context's KV.
    fn memory_bytes(&self) -> u64 {
        let projector = self.vision.as_ref().map_or(0, |v| v.info.projector_bytes);
        let embed_kv = match (&self.info.embedding, self.embedder_started()) {
            (Some(info), true) => embed::memory_bytes(&self.model, info.n_ctx, self.kv_per_token),
            _ => 0,
        };
        self.model
            .size()
            .saturating_add(self.kv_bytes)
            .saturating_add(embed_kv)
            .saturating_add(self.shared.status().cache.bytes)
            .saturating_add(projector)
    }

    fn embed(&self, request: EmbedRequest) -> Result<GenerationStream> {
        let Some(info) = self.info.embedding else {
            return Err(CoreError::Unsupported(format!(
                "model '{}' does not compute embeddings",
                self.info.id
            )));
        };
        if request.inputs.is_empty() {
            return Err(CoreError::invalid("no inputs to embed", Some("input")));
        }
        for input in &request.inputs {
            if input.is_empty() {
                return Err(CoreError::invalid(
                    "an input to embed is empty",
                    Some("input"),
                ));
            }
            self.check_vocab(input, "input")?;
            if input.len() > info.n_ctx {
                return Err(CoreError::ContextOverflow {
                    prompt_tokens: input.len(),
                    n_ctx: info.n_ctx,
                });
            }
        }
        let jobs = self.embedder(&info)?;
        let (events, stream) = mpsc::unbounded_channel();
        jobs.send(EmbedJob { request, events })
            .map_err(|_| CoreError::Backend("the model's embedding thread has stopped".into()))?;
        Ok(stream)
    }

    fn status(&self) -> ModelStatus {
        self.shared.status()
    }

    fn tokenize(&self, text: &str, add_special: bool, parse_special: bool) -> Result<Vec<TokenId>> {
        let tokens = self
            .model
            .vocab()
            .tokenize(text.as_bytes(), add_special, parse_special);
        Ok(tokens.into_iter().map(|t| t.0).collect())
    }

    fn token_bytes(&self, token: TokenId, special: bool) -> Result<Vec<u8>> {
        if token < 0 || token as usize >= self.info.n_vocab {
            return Err(CoreError::invalid(
                format!(
                    "token id {token} is outside the vocabulary (0..{})",
                    self.info.n_vocab
                ),
                Some("tokens"),
            ));
        }
        Ok(self
            .model
            .vocab()
            .token_to_piece(LlamaToken(token), special, None))
    }

    fn render_chat(
        &self,
        messages: &[serde_json::Value],
        tools: Option<&serde_json::Value>,
        kwargs: &serde_json::Map<String, serde_json::Value>,
        add_generation_prompt: bool,
    ) -> Result<String> {
        let opts = RenderOptions {
            add_generation_prompt,
            tools,
            extra: Some(kwargs).filter(|k| !k.is_empty()),
        };
        self.template
            .render(messages, &opts)
            .map_err(|e| CoreError::Template(e.to_string()))
    }

    fn generate(&self, mut request: GenerateRequest) -> Result<GenerationStream> {
        self.check_vocab(&request.prompt, "prompt")?;
        if request.prompt.is_empty() && request.images.is_empty() {
            return Err(CoreError::invalid("the prompt is empty", Some("prompt")));
        }
        if request
            .images
            .last()
            .is_some_and(|image| image.at >= request.prompt.len())
        {
            return Err(CoreError::invalid(
                "the prompt ends with an image: some text must follow it",
                Some("prompt"),
            ));
        }
        let (prompt, layout) = match (&self.vision, request.images.is_empty()) {
            (_, true) => (
                request.prompt.iter().map(|&t| LlamaToken(t)).collect(),
                Layout::default(),
            ),
            (Some(vision), false) => {
                Layout::build(vision, &self.model, &request.prompt, &request.images)?
            }
            (None, false) => {
                return Err(CoreError::invalid(
                    format!(
                        "model '{}' cannot read images: it was loaded without a projector (mmproj)",
                        self.info.id
                    ),
                    Some("messages"),
                ))
            }
        };
        // The pixels are in the chunks now.
        request.images = Vec::new();
        if prompt.len() >= self.info.n_ctx {
            return Err(CoreError::ContextOverflow {
                prompt_tokens: prompt.len(),
                n_ctx: self.info.n_ctx,
            });
        }
        if request.sampling.ignore_eos {
            let bans = self.eog.iter().map(|&t| (t, f32::NEG_INFINITY));
            request.sampling.logit_bias.extend(bans);
        }
        // Counted before sending so the context thread's decrement never goes below zero.
        // Room: the queue, plus the sequences free now (a request sent to one waits only
        // until the context thread's next step).
        let free = self
            .parallel
            .saturating_sub(self.shared.running.load(Ordering::Relaxed));
        let depth = self.queue_depth + free;
        self.shared
            .queued
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| {
                (q < depth).then_some(q + 1)
            })
            .map_err(|_| CoreError::Busy)?;
        let (events, stream) = mpsc::unbounded_channel();
        let job = Job {
            request,
            prompt,
            layout,
            events,
            enqueued: Instant::now(),
        };
        self.jobs.send(job).map_err(|_| {
            self.shared.queued.fetch_sub(1, Ordering::Relaxed);
            CoreError::Backend("the model's context thread has stopped".into())
        })?;
        Ok(stream)
    }
}

/// Sequences run together when none is asked for: as many as fit `DEFAULT_KV_CELLS` cells of
/// context at `n_ctx` each, at most `DEFAULT_PARALLEL`, at least 1 (4 at the default 4096).
fn default_parallel(n_ctx: u32) -> u32 {
    (DEFAULT_KV_CELLS / n_ctx.max(1)).clamp(1, DEFAULT_PARALLEL)
}

fn special_text(model: &LlamaModel, token: LlamaToken) -> String {
    if token.0 < 0 {
        return String::new();
    }
    String::from_utf8_lossy(&model.vocab().token_to_piece(token, true, None)).into_owned()
}

fn default_threads() -> i32 {
    std::thread::available_parallelism().map_or(4, |n| n.get() as i32)
}

/// Refuses anything that is not a GGUF file before llama.cpp sees it.
pub(crate) fn check_gguf_magic(path: &std::path::Path) -> Result<()> {
    use std::io::Read;
    let mut magic = [0u8; 4];
    let mut file = std::fs::File::open(path)
        .map_err(|e| CoreError::Load(format!("{}: {e}", path.display())))?;
    file.read_exact(&mut magic)
        .map_err(|_| CoreError::Load(format!("{}: file too short to be GGUF", path.display())))?;
    if &magic != b"GGUF" {
        return Err(CoreError::Load(format!(
            "{}: not a GGUF file (magic {:?})",
            path.display(),
            String::from_utf8_lossy(&magic)
        )));
    }
    Ok(())
}
