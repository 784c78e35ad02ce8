//! The thread that owns a model's `LlamaContext` and runs generations one after another.
//!
//! Requests arrive on a bounded channel; each carries its own event channel. The loop checks
//! that channel before every decode step, so a client that goes away stops its generation at
//! the next token. (Continuous batching of several sequences replaces this loop in the
//! serving engine; the contract with the rest of Minerva stays the same.)

use crate::{logprobs, sampler};
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use minerva_core::{
    CoreError, FinishReason, GenEvent, GenerateRequest, Result, TokenLogprob, TokenOut, Usage,
};
use std::num::NonZeroU32;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc::UnboundedSender;

/// Tokens decoded per `llama_decode` call while reading a prompt (llama-server's default).
const N_BATCH: u32 = 2048;
/// Tokens per compute micro-batch (llama-server's default).
const N_UBATCH: u32 = 512;

pub struct Job {
    pub request: GenerateRequest,
    pub events: UnboundedSender<Result<GenEvent>>,
}

pub struct WorkerConfig {
    pub n_ctx: u32,
    pub threads: i32,
    pub queue_depth: usize,
    pub model_id: String,
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
    let n_batch = N_BATCH.min(config.n_ctx);
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(config.n_ctx))
        .with_n_batch(n_batch)
        .with_n_ubatch(N_UBATCH.min(n_batch))
        .with_n_seq_max(1)
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
    let mut batch = LlamaBatch::new(n_batch as usize, 1);
    let _ = ready.send(Ok(()));

    while let Ok(job) = jobs.recv() {
        if job.events.is_closed() {
            continue;
        }
        let span = tracing::debug_span!("generate", model = %config.model_id, prompt_tokens = job.request.prompt.len());
        let _enter = span.enter();
        let outcome = generate(model, &mut ctx, &mut batch, n_batch as usize, &job);
        if let Err(e) = outcome {
            tracing::warn!(error = %e, "generation failed");
            let _ = job.events.send(Err(e));
        }
    }
    tracing::debug!(model = %config.model_id, "context thread finished");
}

fn generate(
    model: &LlamaModel,
    ctx: &mut LlamaContext<'_>,
    batch: &mut LlamaBatch<'_>,
    n_batch: usize,
    job: &Job,
) -> Result<()> {
    let req = &job.request;
    let n_ctx = ctx.n_ctx() as usize;
    let vocab = model.vocab();
    ctx.clear_kv_cache();

    let started = Instant::now();
    let prompt: Vec<LlamaToken> = req.prompt.iter().map(|&t| LlamaToken(t)).collect();
    let mut pos = 0usize;
    for chunk in prompt.chunks(n_batch) {
        if job.events.is_closed() {
            tracing::debug!("cancelled during prompt processing");
            return Ok(());
        }
        batch.clear();
        for (i, &token) in chunk.iter().enumerate() {
            let is_last = pos + i + 1 == prompt.len();
            batch
                .add(token, (pos + i) as i32, &[0], is_last)
                .map_err(|e| CoreError::Backend(e.to_string()))?;
        }
        ctx.decode(batch)
            .map_err(|e| CoreError::Backend(format!("decode failed: {e}")))?;
        pos += chunk.len();
    }
    let prompt_ms = started.elapsed().as_secs_f64() * 1e3;

    let mut sampler = sampler::build(&req.sampling, vocab.n_tokens());
    sampler.accept_many(prompt.iter());
    let gen_started = Instant::now();
    let mut logits_index = batch.n_tokens() - 1;
    let mut generated = 0usize;
    let limit = req.max_tokens.map_or(usize::MAX, |m| m as usize);
    let finish = |generated: usize, reason: FinishReason| {
        let usage = Usage {
            prompt_tokens: prompt.len(),
            completion_tokens: generated,
            cached_tokens: 0,
            prompt_ms,
            generation_ms: gen_started.elapsed().as_secs_f64() * 1e3,
        };
        tracing::info!(
            prompt_tokens = usage.prompt_tokens,
            prompt_tps = format!(
                "{:.1}",
                usage.prompt_tokens as f64 * 1e3 / usage.prompt_ms.max(1e-9)
            ),
            generated,
            generation_tps = format!(
                "{:.2}",
                generated as f64 * 1e3 / usage.generation_ms.max(1e-9)
            ),
            reason = reason.as_str(),
            "generation finished"
        );
        GenEvent::Done { reason, usage }
    };

    loop {
        if job.events.is_closed() {
            tracing::debug!(generated, "cancelled");
            return Ok(());
        }
        let token = sampler.sample(ctx, logits_index);
        if vocab.is_eog(token) {
            let _ = job.events.send(Ok(finish(generated, FinishReason::Stop)));
            return Ok(());
        }
        let (logprob, top_logprobs) = match req.logprobs {
            Some(lp) => {
                let (chosen, top) =
                    logprobs::from_logits(ctx.get_logits_ith(logits_index), token.0, lp.top);
                let top = top
                    .into_iter()
                    .map(|(id, logprob)| TokenLogprob {
                        id,
                        bytes: vocab.token_to_piece(LlamaToken(id), false, None),
                        logprob,
                    })
                    .collect();
                (Some(chosen), top)
            }
            None => (None, Vec::new()),
        };
        let out = TokenOut {
            id: token.0,
            bytes: vocab.token_to_piece(token, false, None),
            logprob,
            top_logprobs,
        };
        generated += 1;
        if job.events.send(Ok(GenEvent::Token(out))).is_err() {
            tracing::debug!(generated, "cancelled");
            return Ok(());
        }
        // The token just sampled sits at `pos`: stop when prompt plus reply fill the window.
        if generated >= limit || pos + 1 >= n_ctx {
            let _ = job.events.send(Ok(finish(generated, FinishReason::Length)));
            return Ok(());
        }
        batch.clear();
        batch
            .add(token, pos as i32, &[0], true)
            .map_err(|e| CoreError::Backend(e.to_string()))?;
        ctx.decode(batch)
            .map_err(|e| CoreError::Backend(format!("decode failed: {e}")))?;
        pos += 1;
        logits_index = 0;
    }
}
