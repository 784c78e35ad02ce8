//! The thread that owns a model's `LlamaContext` and runs its generations, batched.
//!
//! Continuous batching: up to `parallel` sequences share one context (one KV stream each, so a
//! sequence sees exactly the window one request may use). Every step builds one `llama_batch`:
//! first the next token of each decoding sequence, then prompt tokens of sequences still reading
//! their prompt, up to one micro-batch in all, so a long prompt is read in chunks between the
//! decode steps of the others instead of freezing them. A new request takes a free slot at the
//! next step. Before every step the loop checks each request's event channel: a client that went
//! away has its sequence and KV cells freed at once; the others are untouched.

use crate::slot::{Slot, Step};
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use minerva_core::{CoreError, GenEvent, GenerateRequest, ModelStatus, Result, SlotStatus};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::sync::Mutex;
use tokio::sync::mpsc::UnboundedSender;

/// Tokens per `llama_decode` call at most (llama-server's default batch size).
const N_BATCH: u32 = 2048;
/// Tokens per compute micro-batch (llama-server's default); also the most tokens one step
/// takes, so a prompt is read in chunks of this size between decode steps.
const N_UBATCH: u32 = 512;

pub struct Job {
    pub request: GenerateRequest,
    pub events: UnboundedSender<Result<GenEvent>>,
}

/// What the context thread is doing, shared with the model handle.
#[derive(Default)]
pub struct Shared {
    pub slots: Mutex<Vec<SlotStatus>>,
    /// Requests sent and not yet taken by the context thread.
    pub queued: AtomicUsize,
}

impl Shared {
    pub fn status(&self) -> ModelStatus {
        ModelStatus {
            slots: self.slots.lock().map(|s| s.clone()).unwrap_or_default(),
            queued: self.queued.load(Ordering::Relaxed),
        }
    }
}

pub struct WorkerConfig {
    /// Context window of one sequence (one request).
    pub n_ctx: u32,
    /// Sequences decoded together.
    pub parallel: u32,
    pub threads: i32,
    pub queue_depth: usize,
    pub model_id: String,
    pub shared: Arc<Shared>,
}

/// Starts the context thread; returns once the context exists (or failed to be created).
pub fn spawn(
    backend: Arc<LlamaBackend>,
    model: Arc<LlamaModel>,
    config: WorkerConfig,
) -> Result<SyncSender<Job>> {
    let (jobs_tx, jobs_rx) = sync_channel::<Job>(config.queue_depth);
    let (ready_tx, ready_rx) = sync_channel::<Result<()>>(1);
    std::thread::Builder::new()
        .name(format!("llama-ctx-{}", config.model_id))
        .spawn(move || run(&backend, &model, &config, &jobs_rx, &ready_tx))
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
        .with_n_ctx(NonZeroU32::new(config.n_ctx * parallel))
        .with_n_batch(n_batch)
        .with_n_ubatch(n_ubatch)
        .with_n_seq_max(parallel)
        // One KV stream per sequence, each of n_ctx cells: a request sees its own window.
        .with_kv_unified(false)
        .with_n_threads(config.threads)
        .with_n_threads_batch(config.threads)
        // Off, as in the reference runs our parity fixtures come from; on a CPU it changes
        // little in speed, and it changes the arithmetic (so greedy outputs) when toggled.
        .with_flash_attention_policy(llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_DISABLED)
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

    let mut sched = Scheduler {
        model,
        slots: (0..parallel).map(|_| None).collect(),
        n_ctx: config.n_ctx as usize,
        step_tokens: n_ubatch as usize,
        shared: Arc::clone(&config.shared),
    };
    loop {
        sched.publish();
        if !sched.admit(jobs, &mut ctx) {
            break;
        }
        sched.drop_cancelled(&mut ctx);
        if let Err(e) = sched.step(&mut ctx, &mut batch) {
            tracing::warn!(error = %e, "decode step failed");
        }
    }
    tracing::debug!(model = %config.model_id, "context thread finished");
}

struct Scheduler<'m> {
    model: &'m LlamaModel,
    slots: Vec<Option<Slot>>,
    n_ctx: usize,
    /// Most tokens one step decodes (decode tokens plus prompt chunks).
    step_tokens: usize,
    shared: Arc<Shared>,
}

impl Scheduler<'_> {
    /// Publishes what every slot is doing.
    fn publish(&self) {
        if let Ok(mut out) = self.shared.slots.lock() {
            out.clear();
            out.extend(self.slots.iter().enumerate().map(|(id, s)| match s {
                Some(slot) => slot.status(id),
                None => SlotStatus {
                    id,
                    ..SlotStatus::default()
                },
            }));
        }
    }

    /// Moves waiting requests into free slots. Blocks while nothing runs. False when the
    /// model is gone (its queue closed) and nothing is left to run.
    fn admit(&mut self, jobs: &Receiver<Job>, ctx: &mut LlamaContext<'_>) -> bool {
        loop {
            let Some(free) = self.slots.iter().position(Option::is_none) else {
                return true;
            };
            let idle = self.slots.iter().all(Option::is_none);
            let job = if idle {
                match jobs.recv() {
                    Ok(job) => job,
                    Err(_) => return false,
                }
            } else {
                match jobs.try_recv() {
                    Ok(job) => job,
                    // Empty, or the model is gone: run what is already admitted.
                    Err(_) => return true,
                }
            };
            self.shared.queued.fetch_sub(1, Ordering::Relaxed);
            if job.events.is_closed() {
                continue;
            }
            let seq = free as i32;
            free_seq(ctx, seq);
            self.slots[free] = Some(Slot::new(seq, job, self.model));
        }
    }

    fn drop_cancelled(&mut self, ctx: &mut LlamaContext<'_>) {
        for entry in &mut self.slots {
            if entry.as_ref().is_some_and(|s| s.job.events.is_closed()) {
                if let Some(slot) = entry.take() {
                    tracing::debug!(seq = slot.seq, generated = slot.generated, "cancelled");
                    free_seq(ctx, slot.seq);
                }
            }
        }
    }

    /// One `llama_decode`: the pending token of every decoding sequence, then prompt chunks.
    fn step(&mut self, ctx: &mut LlamaContext<'_>, batch: &mut LlamaBatch<'_>) -> Result<()> {
        batch.clear();
        for slot in self.slots.iter_mut().flatten() {
            slot.add_pending(batch)?;
        }
        for slot in self.slots.iter_mut().flatten() {
            let budget = self.step_tokens.saturating_sub(batch.n_tokens() as usize);
            if budget == 0 {
                break;
            }
            slot.add_prompt_chunk(batch, budget)?;
        }
        if batch.n_tokens() == 0 {
            return Ok(());
        }
        if let Err(e) = ctx.decode(batch) {
            // A failed decode leaves the batch's sequences in an unknown state: end them all.
            let message = format!("decode failed: {e}");
            for entry in &mut self.slots {
                if let Some(slot) = entry.take() {
                    let _ = slot
                        .job
                        .events
                        .send(Err(CoreError::Backend(message.clone())));
                    free_seq(ctx, slot.seq);
                }
            }
            return Err(CoreError::Backend(message));
        }
        let mut endings = Vec::new();
        for entry in &mut self.slots {
            let Some(slot) = entry.as_mut() else { continue };
            if !slot.has_logits() {
                continue;
            }
            if let Step::Finished(event) = slot.sample(ctx, self.model, self.n_ctx) {
                if let Some(slot) = entry.take() {
                    free_seq(ctx, slot.seq);
                    if let Some(event) = event {
                        endings.push((slot.job.events, event));
                    }
                }
            }
        }
        if !endings.is_empty() {
            self.publish();
            for (events, event) in endings {
                let _ = events.send(Ok(event));
            }
        }
        Ok(())
    }
}

/// Frees every KV cell of a sequence.
fn free_seq(ctx: &mut LlamaContext<'_>, seq: i32) {
    if let Ok(seq) = u32::try_from(seq) {
        if let Err(e) = ctx.clear_kv_cache_seq(Some(seq), None, None) {
            tracing::warn!(seq, error = %e, "cannot free a sequence's KV cells");
        }
    }
}
