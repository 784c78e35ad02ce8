//! One sequence of the batch: a request from its prompt to its last token.

use crate::logprobs;
use crate::media::{is_stand_in, Layout, Vision};
use crate::reasoning::Reasoning;
use crate::sampler::Samplers;
use crate::worker::Job;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use llama_cpp_2::token::LlamaToken;
use minerva_core::{
    CoreError, FinishReason, GenEvent, ReasoningState, Result, SlotState, SlotStatus, TokenLogprob,
    TokenOut, Usage,
};
use std::time::Instant;

pub enum Step {
    Continue,
    /// The sequence is over; the event (if any) goes to the client once the slot is freed and
    /// published, so a client that sees the end also sees the slot idle.
    Finished(Option<GenEvent>),
}

pub struct Slot {
    pub seq: i32,
    pub job: Job,
    sampler: LlamaSampler,
    /// The output format's grammar, applied before `sampler` (to the answer only, when the
    /// reply has a reasoning block).
    grammar: Option<LlamaSampler>,
    /// The reply's reasoning block, when the model thinks.
    reasoning: Option<Reasoning>,
    /// One token per KV cell: text token ids, and stand-ins for images' embedding tokens.
    prompt: Vec<LlamaToken>,
    /// Where the prompt's images are, and their positions.
    layout: Layout,
    /// The tokens whose KV this sequence holds (cells 0..), as sent to the context.
    pub kv: Vec<LlamaToken>,
    /// Prompt tokens whose KV came from the prompt cache.
    cached: usize,
    /// Prompt tokens already sent to the context.
    prefilled: usize,
    /// The next token's position (the number of cells, except after an image of a model with
    /// M-RoPE).
    pos: usize,
    /// Sampled and sent, not yet decoded.
    pending: Option<LlamaToken>,
    /// Row of this sequence's logits in the current batch.
    logits_row: Option<i32>,
    pub generated: usize,
    limit: usize,
    started: Instant,
    prompt_ms: f64,
    generating_since: Option<Instant>,
}

impl Slot {
    /// A sequence for `job`, whose first `cached` prompt tokens are already in the KV cache,
    /// sampling with `sampler` (see [`crate::sampler::build`]). `cached` never ends inside an
    /// image ([`Layout::boundary`]).
    pub fn new(
        seq: i32,
        job: Job,
        (prompt, layout): (Vec<LlamaToken>, Layout),
        cached: usize,
        samplers: Samplers,
    ) -> Self {
        let Samplers {
            chain: mut sampler,
            grammar,
        } = samplers;
        // Penalties look back over the prompt too, as in llama-server.
        sampler.accept_many(prompt.iter().filter(|&&t| !is_stand_in(t)));
        let limit = job.request.max_tokens.map_or(usize::MAX, |m| m as usize);
        let reasoning = job.request.reasoning.as_ref().map(Reasoning::new);
        Slot {
            seq,
            job,
            sampler,
            grammar,
            reasoning,
            kv: prompt[..cached].to_vec(),
            pos: layout.pos_of(cached),
            prompt,
            layout,
            cached,
            prefilled: cached,
            pending: None,
            logits_row: None,
            generated: 0,
            limit,
            started: Instant::now(),
            prompt_ms: 0.0,
            generating_since: None,
        }
    }

    pub fn status(&self, id: usize) -> SlotStatus {
        SlotStatus {
            id,
            state: if self.generating_since.is_some() {
                SlotState::Generating
            } else {
                SlotState::Prompt
            },
            prompt_tokens: self.prompt.len(),
            prompt_processed: self.prefilled,
            generated: self.generated,
            cached_tokens: self.cached,
            kv_tokens: self.kv.len(),
        }
    }

    pub fn has_logits(&self) -> bool {
        self.logits_row.is_some()
    }

    /// Whether a sampled token waits to be decoded (it takes a cell in the next step).
    pub fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Adds the sampled token that has not been decoded yet.
    pub fn add_pending(&mut self, batch: &mut LlamaBatch<'_>) -> Result<()> {
        if let Some(token) = self.pending.take() {
            batch
                .add(token, self.pos as i32, &[self.seq], true)
                .map_err(|e| CoreError::Backend(e.to_string()))?;
            self.logits_row = Some(batch.n_tokens() - 1);
            self.pos += 1;
            self.kv.push(token);
        }
        Ok(())
    }

    /// Prompt tokens not yet sent to the context.
    pub fn prompt_left(&self) -> usize {
        self.prompt.len() - self.prefilled
    }

    /// Whether the prompt's next tokens are an image's (read by [`Slot::eval_image`], not in
    /// a batch).
    pub fn at_image(&self) -> bool {
        self.layout.piece_at(self.prefilled).is_some()
    }

    /// Encodes the image the prompt has reached and decodes its piece (the text evaluated with
    /// it too) into the sequence, in `llama_decode` calls of its own (`n_batch` tokens at most
    /// each). A piece that ends the prompt leaves the logits of its last token as the
    /// context's last output ([`Slot::has_logits`]): sample before the next decode.
    pub fn eval_image(
        &mut self,
        vision: &Vision,
        ctx: &mut LlamaContext<'_>,
        n_batch: i32,
    ) -> Result<()> {
        let Some(piece) = self.layout.piece_at(self.prefilled) else {
            return Ok(());
        };
        let end = piece.start + piece.n_tokens;
        let last = end == self.prompt.len();
        self.pos = vision.eval(piece, ctx, self.pos, self.seq, n_batch, last)?;
        self.kv.extend_from_slice(&self.prompt[self.prefilled..end]);
        self.prefilled = end;
        if last {
            self.logits_row = Some(-1);
        }
        Ok(())
    }

    /// Adds up to `budget` prompt tokens, stopping before the next image; logits only for the
    /// prompt's last token.
    pub fn add_prompt_chunk(&mut self, batch: &mut LlamaBatch<'_>, budget: usize) -> Result<()> {
        let until = self
            .layout
            .next_start(self.prefilled)
            .unwrap_or(self.prompt.len());
        let rest = &self.prompt[self.prefilled..until];
        let take = rest.len().min(budget);
        for (i, &token) in rest[..take].iter().enumerate() {
            let last = self.prefilled + i + 1 == self.prompt.len();
            batch
                .add(token, (self.pos + i) as i32, &[self.seq], last)
                .map_err(|e| CoreError::Backend(e.to_string()))?;
            if last {
                self.logits_row = Some(batch.n_tokens() - 1);
            }
        }
        self.kv.extend_from_slice(&rest[..take]);
        self.prefilled += take;
        self.pos += take;
        Ok(())
    }

    /// Samples from this sequence's logits in the batch just decoded and sends the token.
    pub fn sample(&mut self, ctx: &LlamaContext<'_>, model: &LlamaModel, n_ctx: usize) -> Step {
        let Some(row) = self.logits_row.take() else {
            return Step::Continue;
        };
        let gen_started = *self.generating_since.get_or_insert_with(|| {
            self.prompt_ms = self.started.elapsed().as_secs_f64() * 1e3;
            Instant::now()
        });
        let vocab = model.vocab();
        let Some(token) = self.pick(ctx, row, model) else {
            let _ = self.job.events.send(Err(CoreError::Backend(
                "the output format allows no token here".into(),
            )));
            return Step::Finished(None);
        };
        if vocab.is_eog(token) {
            return self.finish(FinishReason::Stop, gen_started);
        }
        let (logprob, top_logprobs) = match self.job.request.logprobs {
            Some(lp) => {
                let (chosen, top) = logprobs::from_logits(ctx.get_logits_ith(row), token.0, lp.top);
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
        if let Some(reasoning) = self.reasoning.as_mut() {
            reasoning.push(&out.bytes);
        }
        self.generated += 1;
        if self.job.events.send(Ok(GenEvent::Token(out))).is_err() {
            tracing::debug!(seq = self.seq, generated = self.generated, "cancelled");
            return Step::Finished(None);
        }
        // The token just sampled takes the next cell: stop when prompt plus reply fill the
        // window.
        if self.generated >= self.limit || self.kv.len() + 1 >= n_ctx {
            return self.finish(FinishReason::Length, gen_started);
        }
        self.pending = Some(token);
        Step::Continue
    }

    /// The next token: the reasoning budget's forced closing text, a free pick inside a
    /// reasoning block or without a grammar, or a pick the grammar allows.
    fn pick(&mut self, ctx: &LlamaContext<'_>, row: i32, model: &LlamaModel) -> Option<LlamaToken> {
        let state = self.reasoning.as_ref().map(Reasoning::state);
        if let Some(token) = self.reasoning.as_mut().and_then(|r| r.forced_next(model)) {
            self.sampler.accept(token);
            return Some(token);
        }
        if self.grammar.is_none() {
            return Some(self.sampler.sample(ctx, row));
        }
        if state == Some(ReasoningState::Reasoning) {
            // Free inside the block. But a reply that would end there, with a grammar still to
            // come, would never meet it (no call for `tool_choice: required`, no JSON for a
            // schema): the block is closed instead, and the answer follows under the grammar.
            let mut candidates = ctx.token_data_array_ith(row);
            self.sampler.apply(&mut candidates);
            let mut token = candidates.selected_token()?;
            if model.vocab().is_eog(token) && self.grammar_required() {
                if let Some(reasoning) = self.reasoning.as_mut() {
                    reasoning.close(model);
                    token = reasoning.forced_next(model).unwrap_or(token);
                }
            }
            self.sampler.accept(token);
            return Some(token);
        }
        // As llama.cpp's `common_sampler_sample`: the chain picks without the grammar and the
        // grammar checks that one token, which is nearly always allowed once a call or object
        // has begun; only a rejected pick pays for masking the whole vocabulary. Then the
        // grammar masks what it does not allow, the chain picks among the rest. A pick with a
        // logit of -inf is one nothing allows (the grammar is complete and `ignore_eos` bans
        // the end): accepting it would abort llama.cpp, so the request ends with an error.
        let mut candidates = ctx.token_data_array_ith(row);
        self.sampler.apply(&mut candidates);
        let first = candidates
            .selected_token()
            .filter(|_| selected_logit(&candidates) > f32::NEG_INFINITY);
        // A reply that may still open a reasoning block: whitespace and the opening tag pass
        // the grammar by (it starts with the answer).
        if let (Some(token), Some(reasoning), Some(ReasoningState::Undecided)) =
            (first, self.reasoning.as_ref(), state)
        {
            let vocab = model.vocab();
            if !vocab.is_eog(token) && reasoning.opens(&vocab.token_to_piece(token, false, None)) {
                self.sampler.accept(token);
                return Some(token);
            }
        }
        let grammar = self.grammar.as_mut()?;
        let fast = first.filter(|&token| {
            let mut single =
                LlamaTokenDataArray::new(vec![LlamaTokenData::new(token, 0.0, 0.0)], false);
            grammar.apply(&mut single);
            single
                .data
                .first()
                .is_some_and(|d| d.logit() > f32::NEG_INFINITY)
        });
        let token = match fast {
            Some(token) => token,
            None => {
                let mut candidates = ctx.token_data_array_ith(row);
                grammar.apply(&mut candidates);
                self.sampler.apply(&mut candidates);
                candidates
                    .selected_token()
                    .filter(|_| selected_logit(&candidates) > f32::NEG_INFINITY)?
            }
        };
        grammar.accept(token);
        self.sampler.accept(token);
        Some(token)
    }

    /// Whether the output format must be met before the reply may end: an eager grammar (a
    /// lazy one, `tool_choice: auto`, may never start).
    fn grammar_required(&self) -> bool {
        match &self.job.request.sampling.format {
            Some(minerva_core::OutputFormat::Grammar(spec)) => !spec.is_lazy(),
            Some(minerva_core::OutputFormat::JsonObject) => true,
            None => false,
        }
    }

    fn finish(&self, reason: FinishReason, gen_started: Instant) -> Step {
        let usage = Usage {
            prompt_tokens: self.prompt.len(),
            completion_tokens: self.generated,
            cached_tokens: self.cached,
            prompt_ms: self.prompt_ms,
            generation_ms: gen_started.elapsed().as_secs_f64() * 1e3,
        };
        tracing::info!(
            seq = self.seq,
            prompt_tokens = usage.prompt_tokens,
            cached_tokens = usage.cached_tokens,
            prompt_tps = format!(
                "{:.1}",
                (usage.prompt_tokens - usage.cached_tokens) as f64 * 1e3
                    / usage.prompt_ms.max(1e-9)
            ),
            generated = self.generated,
            generation_tps = format!(
                "{:.2}",
                self.generated as f64 * 1e3 / usage.generation_ms.max(1e-9)
            ),
            reason = reason.as_str(),
            "generation finished"
        );
        Step::Finished(Some(GenEvent::Done { reason, usage }))
    }
}

/// The logit of the token a sampler chain selected (`-inf` when none is).
fn selected_logit(candidates: &LlamaTokenDataArray) -> f32 {
    candidates
        .selected
        .and_then(|i| candidates.data.get(i))
        .map_or(f32::NEG_INFINITY, |d| d.logit())
}
