//! The thread that owns a model's `LlamaContext` and runs its generations, batched.
//!
//! Continuous batching: up to `parallel` sequences share one context and its one KV cache
//! (llama.cpp's unified KV: a pool of `kv_cells` cells, by default `parallel` × `n_ctx`, where
//! a prefix several sequences share is held once; one request may use at most `n_ctx` of them,
//! so by default the running sequences always fit, and in a smaller pool the scheduler makes
//! room: see `scheduler`). Every step builds one `llama_batch`:
//! first the next token of each decoding sequence, then prompt tokens of sequences still reading
//! their prompt, up to one micro-batch in all, so a long prompt is read in chunks between the
//! decode steps of the others instead of freezing them. A new request takes a free slot at the
//! next step. Before every step the loop checks each request's event channel: a client that went
//! away has its sequence stopped at once (a waiting request leaves the queue); the others are
//! untouched. A sequence's KV outlives its request as prompt cache (see `cache`).

use crate::media::{Layout, Vision};
use crate::scheduler::{Scheduler, SchedulerConfig};
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use minerva_core::{
    CacheStatus, CoreError, FlashAttn, GenEvent, GenerateRequest, KvStatus, ModelStatus, Result,
    SlotStatus,
};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

/// Tokens per `llama_decode` call at most (llama-server's default batch size).
const N_BATCH: u32 = 2048;
/// Tokens per compute micro-batch (llama-server's default); also the most tokens one step
/// takes, so a prompt is read in chunks of this size between decode steps.
const N_UBATCH: u32 = 512;

pub struct Job {
    pub request: GenerateRequest,
    /// The prompt as one token per KV cell (`request.prompt` with its images laid out).
    pub prompt: Vec<LlamaToken>,
    pub layout: Layout,
    pub events: UnboundedSender<Result<GenEvent>>,
    pub enqueued: Instant,
}

/// What the context thread is doing, shared with the model handle.
#[derive(Default)]
pub struct Shared {
    pub slots: Mutex<Vec<SlotStatus>>,
    /// Requests sent and not yet started on a sequence.
    pub queued: AtomicUsize,
    /// Sequences running a request.
    pub running: AtomicUsize,
    pub cache: Mutex<CacheStatus>,
    /// The KV pool's cells, filled in by the scheduler (a shared prefix counts once).
    pub kv: Mutex<KvStatus>,
}

impl Shared {
    pub fn status(&self) -> ModelStatus {
        ModelStatus {
            slots: self.slots.lock().map(|s| s.clone()).unwrap_or_default(),
            queued: self.queued.load(Ordering::Relaxed),
            cache: self.cache.lock().map(|c| *c).unwrap_or_default(),
            kv: self.kv.lock().map(|c| *c).unwrap_or_default(),
        }
    }
}

pub struct WorkerConfig {
    /// Context window of one sequence (one request).
    pub n_ctx: u32,
    /// Sequences decoded together.
    pub parallel: u32,
    /// Cells of the KV cache (at least `n_ctx`): the pool the sequences share, or with
    /// `kv_unified` off, `parallel` streams of `n_ctx` cells together.
    pub kv_cells: u32,
    /// One KV stream for all sequences (llama.cpp's unified KV cache).
    pub kv_unified: bool,
    pub flash_attn: FlashAttn,
    pub threads: i32,
    /// Longest a request waits for a free sequence (`None`: no limit).
    pub queue_timeout: Option<Duration>,
    /// Host memory for the prompt cache.
    pub cache_bytes: u64,
    pub model_id: String,
    pub shared: Arc<Shared>,
    /// The projector, for a model that reads images.
    pub vision: Option<Arc<Vision>>,
}

/// Starts the context thread; returns once the context exists (or failed to be created).
/// The queue's bound is the caller's to keep (see `Shared::queued`).
pub fn spawn(
    backend: Arc<LlamaBackend>,
    model: Arc<LlamaModel>,
    config: WorkerConfig,
) -> Result<Sender<Job>> {
    let (jobs_tx, jobs_rx) = channel::<Job>();
    let (ready_tx, ready_rx) = sync_channel::<Result<()>>(1);
    std::thread::Builder::new()
        .name(format!("llama-ctx-{}", config.model_id))
        .spawn(move || {
            run(&backend, &model, &config, &jobs_rx, &ready_tx);
            // The projector refers to the model: it goes first.
            drop(config);
            drop(model);
        })
        .map_err(|e| CoreError::Load(format!("cannot start the context thread: {e}")))?;
    ready_rx
        .recv()
        .map_err(|_| CoreError::Load("the context thread exited during start-up".into()))??;
    Ok(jobs_tx)
}

fn run(
    backend: &LlamaBackend,
    model: &LlamaModel,
    config: &WorkerConfig,
    jobs: &Receiver<Job>,
    ready: &SyncSender<Result<()>>,
) {
    let parallel = config.parallel.max(1);
    let n_batch = N_BATCH.min(config.n_ctx);
    let n_ubatch = N_UBATCH.min(n_batch);
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(config.kv_cells.max(config.n_ctx)))
        .with_n_batch(n_batch)
        .with_n_ubatch(n_ubatch)
        .with_n_seq_max(parallel)
        // One KV stream for all sequences: a shared prefix is held once (`llama_memory_seq_cp`
        // adds a sequence to cells, nothing is copied), and a step's tokens go in one
        // micro-batch whatever their sequences (`split_simple`). As llama-server's
        // `--kv-unified-per-slot`: the pool is `kv_cells` (by default `parallel` × `n_ctx`), a
        // request's window `n_ctx`. Off, llama.cpp gives each sequence `kv_cells / parallel`.
        .with_kv_unified(config.kv_unified)
        .with_n_threads(config.threads)
        .with_n_threads_batch(config.threads)
        // Auto by default, as llama-server and the reference runs our parity fixtures come
        // from: toggling it changes the arithmetic (so greedy outputs in near-ties).
        .with_flash_attention_policy(flash_attn_type(config.flash_attn))
        // As llama-server: sliding-window layers keep only their window, not the whole context.
        .with_swa_full(false);
    let mut ctx = match model.new_context(backend, params) {
        Ok(ctx) => ctx,
        Err(e) => {
            let _ = ready.send(Err(CoreError::Load(format!(
                "cannot create a context: {e}"
            ))));
            return;
        }
    };
    let mut batch = LlamaBatch::new(n_ubatch as usize, 1);
    let _ = ready.send(Ok(()));

    let mut sched = Scheduler::new(
        model,
        SchedulerConfig {
            parallel: parallel as usize,
            n_ctx: config.n_ctx as usize,
            // llama.cpp pads the context to a multiple of 256 cells.
            kv_cells: ctx.n_ctx() as usize,
            unified: config.kv_unified,
            step_tokens: n_ubatch as usize,
            queue_timeout: config.queue_timeout,
            cache_bytes: config.cache_bytes,
            shared: Arc::clone(&config.shared),
            vision: config.vision.clone(),
            n_batch: n_batch as usize,
        },
    );
    loop {
        sched.publish();
        if !sched.admit(jobs, &mut ctx) {
            break;
        }
        sched.drop_cancelled();
        if let Err(e) = sched.step(&mut ctx, &mut batch) {
            tracing::warn!(error = %e, "decode step failed");
        }
    }
    tracing::debug!(model = %config.model_id, "context thread finished");
}

/// llama.cpp's `llama_flash_attn_type` for a [`FlashAttn`] setting.
pub(crate) fn flash_attn_type(setting: FlashAttn) -> llama_cpp_sys_2::llama_flash_attn_type {
    match setting {
        FlashAttn::Off => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_DISABLED,
        FlashAttn::On => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_ENABLED,
        FlashAttn::Auto => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_AUTO,
    }
}
