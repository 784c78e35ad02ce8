//! Embeddings: a context of their own, on a thread of its own, started on the first request.
//!
//! The context computes pooled embeddings (`llama_context_params.embeddings`, pooling as the
//! model's metadata says, else mean) and never holds KV between steps: each step packs the
//! next inputs of every waiting request, one sequence per input, into one `llama_decode` of at
//! most `window` tokens, reads each sequence's pooled vector and clears the cache. Inputs of
//! several requests thus share a step (batching across inputs and across requests), and a
//! request's inputs may span several steps. A request whose stream was dropped is skipped.
//!
//! The micro-batch is the whole window, so that every input is pooled from one micro-batch
//! (llama.cpp pools per micro-batch; non-causal models need all of an input's tokens at once).
//! Flash attention stays off, as in the reference runs: its kernel's arithmetic depends on how
//! many tokens a step holds, and an input's vector must not depend on what it was batched with.

use llama_cpp_2::context::params::{LlamaContextParams, LlamaPoolingType};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use minerva_core::{
    CoreError, EmbedRequest, FinishReason, FlashAttn, GenEvent, Pooling, Result, TokenId, Usage,
};
use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::mpsc::{sync_channel, Receiver, Sender};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc::UnboundedSender;

/// Most tokens of one embeddings input (the context and micro-batch size of the embedding
/// context): a longer model window is capped here. llama.cpp computes logits for every token
/// of an embeddings batch (`output_all`), so a step of `n` tokens holds `n × n_vocab` floats
/// of output, and without flash attention an `n × n × n_head` attention matrix.
pub const MAX_WINDOW: u32 = 2048;
/// Tokens one step packs from several inputs; a longer input takes a step of its own.
const STEP_TOKENS: usize = 128;
/// Sequences of the embedding context: inputs one step packs, plus the padding sequence.
const MAX_SEQS: u32 = 64;
/// The sequence that pads a step (see [`PAD_TO`]).
const PAD_SEQ: i32 = MAX_SEQS as i32 - 1;
/// Every step's token count is padded to a multiple of this, and to at least [`PAD_MIN`], with
/// filler tokens in a sequence of their own. ggml's CPU matrix products take a short batch
/// (under 8 rows) and the rows beyond a multiple of four through other kernels, with slightly
/// different arithmetic (a cosine of 0.99985 between the two for a short input): padded, every
/// row goes the same way, so an input's vector does not depend on what it was batched with.
const PAD_TO: usize = 4;
const PAD_MIN: usize = 8;

/// One embeddings request on its way to the embedding thread.
pub struct EmbedJob {
    pub request: EmbedRequest,
    pub events: UnboundedSender<Result<GenEvent>>,
}

/// How the embedding context is made.
pub struct EmbedConfig {
    pub window: u32,
    pub threads: i32,
    pub pooling: Pooling,
    pub model_id: String,
    /// The model's flash attention setting (`--flash-attn`), as llama-server uses one setting
    /// for generation and embeddings.
    pub flash_attn: FlashAttn,
}

/// The pooling a model's GGUF metadata asks for (`{arch}.pooling_type`: 1 mean, 2 cls,
/// 3 last), else mean, as llama-server's `--pooling mean`.
pub fn model_pooling(model: &LlamaModel) -> Pooling {
    let arch = model
        .meta_val_str("general.architecture")
        .unwrap_or_default();
    match model
        .meta_val_str(&format!("{arch}.pooling_type"))
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
    {
        Some(2) => Pooling::Cls,
        Some(3) => Pooling::Last,
        _ => Pooling::Mean,
    }
}

/// Memory the embedding context may hold at most: the KV of a whole window, the logits and
/// vectors of a whole window's outputs and its attention matrix (f32).
pub fn memory_bytes(model: &LlamaModel, window: usize, kv_per_token: u64) -> u64 {
    let w = window as u64;
    let n_vocab = u64::try_from(model.vocab().n_tokens()).unwrap_or(0);
    let n_embd = u64::try_from(model.n_embd()).unwrap_or(0);
    let n_head = u64::from(model.n_head());
    kv_per_token
        .saturating_mul(w)
        .saturating_add(w.saturating_mul(n_vocab + n_embd).saturating_mul(4))
        .saturating_add(w.saturating_mul(w).saturating_mul(n_head).saturating_mul(4))
}

/// Starts the embedding thread; returns once its context exists (or failed to be created).
pub fn spawn(
    backend: Arc<LlamaBackend>,
    model: Arc<LlamaModel>,
    config: EmbedConfig,
) -> Result<Sender<EmbedJob>> {
    let (jobs_tx, jobs_rx) = std::sync::mpsc::channel::<EmbedJob>();
    let (ready_tx, ready_rx) = sync_channel::<Result<()>>(1);
    std::thread::Builder::new()
        .name(format!("llama-embd-{}", config.model_id))
        .spawn(move || {
            let ctx = match new_context(&backend, &model, &config) {
                Ok(ctx) => {
                    let _ = ready_tx.send(Ok(()));
                    ctx
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            run(ctx, &config, &jobs_rx);
        })
        .map_err(|e| CoreError::Backend(format!("cannot start the embedding thread: {e}")))?;
    ready_rx
        .recv()
        .map_err(|_| CoreError::Backend("the embedding thread exited during start-up".into()))??;
    Ok(jobs_tx)
}

fn new_context<'m>(
    backend: &LlamaBackend,
    model: &'m LlamaModel,
    config: &EmbedConfig,
) -> Result<LlamaContext<'m>> {
    let pooling = match config.pooling {
        Pooling::Mean => LlamaPoolingType::Mean,
        Pooling::Cls => LlamaPoolingType::Cls,
        Pooling::Last => LlamaPoolingType::Last,
    };
    // Room for a whole input plus the padding, in whole blocks of 256 cells (llama.cpp pads
    // the KV cache to them; a micro-batch of another size fails its graph checks).
    let cells = (config.window + PAD_MIN as u32).next_multiple_of(256);
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(cells))
        .with_n_batch(cells)
        .with_n_ubatch(cells)
        .with_n_seq_max(MAX_SEQS)
        // Any sequence may use any cell: one step's inputs share the window.
        .with_kv_unified(true)
        .with_n_threads(config.threads)
        .with_n_threads_batch(config.threads)
        .with_embeddings(true)
        .with_pooling_type(pooling)
        .with_flash_attention_policy(crate::worker::flash_attn_type(config.flash_attn));
    model
        .new_context(backend, params)
        .map_err(|e| CoreError::Backend(format!("cannot create the embedding context: {e}")))
}

/// A request being worked through.
struct Pending {
    job: EmbedJob,
    /// Index of its next input not yet put in a step.
    next: usize,
    /// Inputs whose vector was sent.
    done: usize,
    tokens: usize,
    started: Instant,
}

fn run(mut ctx: LlamaContext<'_>, config: &EmbedConfig, jobs: &Receiver<EmbedJob>) {
    let mut batch = LlamaBatch::new(config.window as usize + PAD_MIN, MAX_SEQS as i32);
    let mut pending: VecDeque<Pending> = VecDeque::new();
    loop {
        if pending.is_empty() {
            match jobs.recv() {
                Ok(job) => pending.push_back(Pending::new(job)),
                Err(_) => break,
            }
        }
        while let Ok(job) = jobs.try_recv() {
            pending.push_back(Pending::new(job));
        }
        pending.retain(|p| !p.job.events.is_closed());
        if pending.is_empty() {
            continue;
        }
        if let Err(e) = step(&mut ctx, &mut batch, &mut pending, config.window) {
            tracing::warn!(error = %e, "embedding step failed");
            // Every request in this step fails; the rest go on.
            for p in pending.iter_mut().filter(|p| p.done < p.next) {
                let _ = p.job.events.send(Err(CoreError::Backend(e.clone())));
                p.next = p.job.request.inputs.len();
                p.done = p.next;
            }
        }
        pending.retain(|p| p.done < p.job.request.inputs.len() && !p.job.events.is_closed());
    }
    tracing::debug!(model = %config.model_id, "embedding thread finished");
}

impl Pending {
    fn new(job: EmbedJob) -> Self {
        Pending {
            job,
            next: 0,
            done: 0,
            tokens: 0,
            started: Instant::now(),
        }
    }
}

/// Packs the next inputs into one decode, sends their vectors, and ends the requests whose
/// inputs are all done.
fn step(
    ctx: &mut LlamaContext<'_>,
    batch: &mut LlamaBatch,
    pending: &mut VecDeque<Pending>,
    window: u32,
) -> std::result::Result<(), String> {
    batch.clear();
    // (request position, input index) of each sequence in this step.
    let mut seqs: Vec<(usize, usize)> = Vec::new();
    let mut used = 0usize;
    'fill: for (p_idx, p) in pending.iter_mut().enumerate() {
        while p.next < p.job.request.inputs.len() {
            let input: &[TokenId] = &p.job.request.inputs[p.next];
            let budget = if seqs.is_empty() {
                window as usize
            } else {
                STEP_TOKENS
            };
            if seqs.len() as i32 == PAD_SEQ || used + input.len() > budget {
                break 'fill;
            }
            let seq = seqs.len() as i32;
            for (pos, &t) in input.iter().enumerate() {
                batch
                    .add(LlamaToken(t), pos as i32, &[seq], true)
                    .map_err(|e| format!("cannot fill the embedding batch: {e}"))?;
            }
            used += input.len();
            p.tokens += input.len();
            seqs.push((p_idx, p.next));
            p.next += 1;
        }
    }
    if seqs.is_empty() {
        // Only reachable with an input over the window, which the handle refuses.
        return Err("an embeddings input does not fit the embedding window".into());
    }
    let padded = used.max(PAD_MIN).next_multiple_of(PAD_TO);
    for pos in 0..padded - used {
        batch
            .add(LlamaToken(0), pos as i32, &[PAD_SEQ], true)
            .map_err(|e| format!("cannot pad the embedding batch: {e}"))?;
    }
    ctx.clear_kv_cache();
    ctx.decode(batch)
        .map_err(|e| format!("embedding decode failed: {e}"))?;
    for (seq, &(p_idx, input)) in seqs.iter().enumerate() {
        let vector = ctx
            .embeddings_seq_ith(seq as i32)
            .map_err(|e| format!("no pooled embedding for sequence {seq}: {e}"))?
            .to_vec();
        if vector.iter().any(|v| !v.is_finite()) {
            return Err(format!("the embedding of input {input} is not finite"));
        }
        if let Some(p) = pending.get_mut(p_idx) {
            let _ = p.job.events.send(Ok(GenEvent::Embedding {
                index: input,
                vector,
            }));
            p.done += 1;
        }
    }
    ctx.clear_kv_cache();
    for p in pending.iter() {
        if p.done == p.job.request.inputs.len() {
            let usage = Usage {
                prompt_tokens: p.tokens,
                completion_tokens: 0,
                cached_tokens: 0,
                prompt_ms: p.started.elapsed().as_secs_f64() * 1000.0,
                generation_ms: 0.0,
            };
            let _ = p.job.events.send(Ok(GenEvent::Done {
                reason: FinishReason::Stop,
                usage,
            }));
        }
    }
    Ok(())
}
