//! What the context thread decides each step: which waiting requests start, on which sequence
//! and from which cached prefix, and what goes into the next `llama_batch`.

use crate::cache::{common_prefix, HostCache};
use crate::cells::Cells;
use crate::media::{is_stand_in, Layout, Vision};
use crate::slot::{Slot, Step};
use crate::worker::{Job, Shared};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::{DecodeError, LlamaStateSeqFlags};
use minerva_core::{CoreError, KvStatus, Result, SlotStatus};
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Duration;

/// A copy or a restore must reuse at least this many more tokens than the destination's own KV
/// (a restore, or a copy on a model with a sliding window, moves the source's cells through
/// host memory: cheap, but not free).
const MIN_GAIN: usize = 4;
/// Most prompt tokens one step reads while other sequences are generating: a step's time is
/// mostly its prompt tokens, and every generating stream waits for the step (on two CPU cores a
/// 512-token chunk takes seconds, a 128-token one a fraction of that).
const PROMPT_TOKENS_WHILE_DECODING: usize = 128;
/// With shared cells (one KV stream, no sliding window), another sequence's prefix is taken over
/// a host-cache entry that matches up to this many tokens more: the few tokens more are
/// computed, where a restore would hold a second copy of the whole prefix.
const SHARE_OVER_RESTORE: usize = 64;
/// Before a free sequence's KV is cut back for a request sharing only its start, the whole of
/// it is saved to host memory if the part cut off is at least this long (or holds an image).
const MIN_SAVE_TAIL: usize = 64;
/// A free sequence's KV is overwritten in place for a new request only if the two share at
/// least this many tokens (or half the new prompt); else an empty sequence is taken first.
const MIN_IN_PLACE: usize = 64;

/// One sequence of the context: the request running on it, or the KV its last request left.
#[derive(Default)]
struct Seq {
    running: Option<Slot>,
    /// Tokens whose KV this free sequence still holds.
    kept: Vec<LlamaToken>,
    last_used: u64,
}

impl Seq {
    fn tokens(&self) -> &[LlamaToken] {
        self.running.as_ref().map_or(&self.kept, |s| &s.kv)
    }
}

pub struct Scheduler<'m> {
    model: &'m LlamaModel,
    seqs: Vec<Seq>,
    waiting: VecDeque<Job>,
    host: HostCache,
    /// Whether KV can be cut back to a prefix (not for recurrent or hybrid models).
    reuse: bool,
    /// Whether a prefix is shared by reference (`llama_memory_seq_cp`) rather than copied
    /// through host memory. Not with a sliding window: llama.cpp reuses a sliding-window cell
    /// only once a single sequence holds it, so shared prefixes would fill the (smaller)
    /// sliding-window cache.
    share: bool,
    /// The cells each sequence holds, shared ones counted once.
    cells: Cells,
    /// Sliding-window size of the model's SWA layers (0: none).
    n_swa: usize,
    n_ctx: usize,
    /// Cells of the KV cache all sequences share.
    kv_cells: usize,
    /// Whether idle sequences leave the KV cache when a new request starts (see
    /// [`Scheduler::clear_idle`]): where cells are shared, with host memory to keep them.
    clears_idle: bool,
    /// Whether `kv_cells` is smaller than `parallel` × `n_ctx`: the running sequences may not
    /// all fit, so admission and every step check for room.
    tight: bool,
    /// Most tokens one step decodes (decode tokens plus prompt chunks).
    step_tokens: usize,
    queue_timeout: Option<Duration>,
    tick: u64,
    shared: Arc<Shared>,
    /// The projector, for a model that reads images.
    vision: Option<Arc<Vision>>,
    /// Most tokens one `llama_decode` call takes (an image's embeddings go in calls this size).
    n_batch: usize,
}

pub struct SchedulerConfig {
    pub parallel: usize,
    pub n_ctx: usize,
    pub kv_cells: usize,
    /// Whether the sequences share one KV stream (else each has `n_ctx` cells of its own).
    pub unified: bool,
    pub step_tokens: usize,
    pub queue_timeout: Option<Duration>,
    pub cache_bytes: u64,
    pub shared: Arc<Shared>,
    pub vision: Option<Arc<Vision>>,
    pub n_batch: usize,
}

impl<'m> Scheduler<'m> {
    pub fn new(model: &'m LlamaModel, config: SchedulerConfig) -> Self {
        let reuse = !model.is_recurrent() && !model.is_hybrid();
        let n_swa = sliding_window(model);
        let share = reuse && n_swa == 0 && config.unified;
        Scheduler {
            model,
            share,
            cells: Cells::new(config.parallel),
            seqs: (0..config.parallel).map(|_| Seq::default()).collect(),
            waiting: VecDeque::new(),
            host: HostCache::new(if reuse { config.cache_bytes } else { 0 }),
            reuse,
            n_swa,
            n_ctx: config.n_ctx,
            kv_cells: config.kv_cells,
            tight: config.kv_cells < config.parallel.saturating_mul(config.n_ctx),
            clears_idle: share && config.cache_bytes > 0,
            step_tokens: config.step_tokens,
            queue_timeout: config.queue_timeout,
            tick: 0,
            shared: config.shared,
            vision: config.vision,
            n_batch: config.n_batch,
        }
    }

    /// Brings the cell ledger up to every sequence's length (sequences only grow between the
    /// scheduler's own cuts, copies and frees, which it records as it makes them).
    fn sync_cells(&mut self) {
        for (i, seq) in self.seqs.iter().enumerate() {
            self.cells.set_len(i, seq.tokens().len());
        }
    }

    /// Publishes what every sequence is doing.
    pub fn publish(&mut self) {
        self.sync_cells();
        let running = self.seqs.iter().filter(|s| s.running.is_some()).count();
        self.shared.running.store(running, Ordering::Relaxed);
        if let Ok(mut out) = self.shared.slots.lock() {
            out.clear();
            out.extend(
                self.seqs
                    .iter()
                    .enumerate()
                    .map(|(id, s)| match &s.running {
                        Some(slot) => slot.status(id),
                        None => SlotStatus {
                            id,
                            kv_tokens: s.kept.len(),
                            ..SlotStatus::default()
                        },
                    }),
            );
        }
        if let Ok(mut cache) = self.shared.cache.lock() {
            *cache = self.host.status();
        }
        if let Ok(mut kv) = self.shared.kv.lock() {
            *kv = KvStatus {
                cells: self.kv_cells,
                cells_used: self.cells.used(),
                cells_unshared: self.seqs.iter().map(|s| s.tokens().len()).sum(),
            };
        }
    }

    /// Takes new requests, ends waiting ones whose client left or whose time ran out, and
    /// starts waiting ones on free sequences. Blocks while nothing runs or waits. False when
    /// the model is gone (its queue closed) and nothing is left to run.
    pub fn admit(&mut self, jobs: &Receiver<Job>, ctx: &mut LlamaContext<'_>) -> bool {
        let idle = self.seqs.iter().all(|s| s.running.is_none());
        if idle && self.waiting.is_empty() {
            match jobs.recv() {
                Ok(job) => self.waiting.push_back(job),
                Err(_) => return false,
            }
        }
        // Empty or disconnected: run what is already here.
        while let Ok(job) = jobs.try_recv() {
            self.waiting.push_back(job);
        }
        self.expire_waiting();
        let mut started = false;
        while self.seqs.iter().any(|s| s.running.is_none()) {
            let need = match self.waiting.front() {
                Some(job) => job.prompt.len() + 1,
                None => break,
            };
            if !self.make_room(need, ctx) {
                break;
            }
            let Some(job) = self.waiting.pop_front() else {
                break;
            };
            self.shared.queued.fetch_sub(1, Ordering::Relaxed);
            self.start(job, ctx);
            started = true;
        }
        if started && self.clears_idle {
            self.clear_idle(ctx);
        }
        true
    }

    /// Saves every idle sequence's KV to host memory and frees its cells, once the new
    /// requests have taken what they reuse from them (as llama-server's `--cache-idle-slots`
    /// does with a unified KV cache). In one KV stream every token attends over all cells in
    /// use, so cells kept for a conversation that may never come back would slow every running
    /// one; a prefix a running sequence shares stays, and a conversation that does come back
    /// is restored from host memory, a copy, not a computation. Not without host memory for
    /// the cache (`--cache-ram 0`, as llama-server): the KV would be lost. Nor for a model with
    /// a sliding window: only its few full-attention layers attend over every cell, and a saved
    /// sliding-window state cannot be cut back more than a few tokens (its older cells are
    /// gone), so a conversation restored from host memory would serve only its exact prefix.
    fn clear_idle(&mut self, ctx: &mut LlamaContext<'_>) {
        let mut freed = 0;
        for i in 0..self.seqs.len() {
            if self.seqs[i].running.is_none() && !self.seqs[i].kept.is_empty() {
                tracing::debug!(seq = i, "idle sequence saved to host memory and cleared");
                freed += self.seqs[i].kept.len();
                self.evict(i, ctx);
            }
        }
        let holders: Vec<usize> = (0..self.seqs.len())
            .filter(|&i| !self.seqs[i].tokens().is_empty())
            .collect();
        if let [only] = holders[..] {
            if freed > self.seqs[only].tokens().len() {
                self.relocate(only, ctx);
            }
        }
    }

    /// Moves the cells of running sequence `seq`, the only one holding any, to the start of
    /// the KV cache (through host memory, `llama_state_seq_get/set_data`). Each token attends
    /// over every cell up to the highest one in use (llama.cpp's `n_kv`), so a reused prefix
    /// left high in the pool by sequences now cleared would make every step pay for the empty
    /// cells below it. If the cells cannot be put back, the request ends with an error rather
    /// than run on a KV cache that lacks its prefix.
    fn relocate(&mut self, seq: usize, ctx: &mut LlamaContext<'_>) {
        let moved = ctx
            .state_seq_get(seq as i32, LlamaStateSeqFlags::empty())
            .and_then(|state| {
                self.free(ctx, seq);
                ctx.state_seq_set(&state, seq as i32)
            });
        match moved {
            Ok(()) => {
                tracing::debug!(seq, "KV cells moved to the start of the cache");
                self.cells.set_len(seq, self.seqs[seq].tokens().len());
            }
            Err(e) => {
                tracing::warn!(seq, error = %e, "cannot move a sequence's KV cells");
                self.free(ctx, seq);
                if let Some(slot) = self.seqs[seq].running.take() {
                    let _ = slot.job.events.send(Err(CoreError::Backend(format!(
                        "cannot move the request's KV cells: {e}"
                    ))));
                }
            }
        }
    }

    /// In a tight pool, whether a request needing `need` cells may start: the free cells, less
    /// what the running prompts will still take, must hold it, after idle sequences give up
    /// theirs (least recently used first). False: it waits. With nothing running it always
    /// starts (the pool holds at least one window).
    fn make_room(&mut self, need: usize, ctx: &mut LlamaContext<'_>) -> bool {
        if !self.tight {
            return true;
        }
        loop {
            self.sync_cells();
            let committed: usize = self
                .seqs
                .iter()
                .filter_map(|s| s.running.as_ref())
                .map(Slot::prompt_left)
                .sum();
            let free = self.kv_cells.saturating_sub(self.cells.used());
            if free >= need + committed {
                return true;
            }
            if !self.evict_idle(ctx) {
                return self.seqs.iter().all(|s| s.running.is_none());
            }
        }
    }

    /// In a tight pool, the free cells for this step's tokens, `decoding` of them the pending
    /// tokens of generating sequences: idle sequences give up theirs, and if the running ones
    /// still do not fit, the most recently started fail (503: the KV cache is full), until
    /// they do.
    fn room_for_step(&mut self, ctx: &mut LlamaContext<'_>) -> usize {
        loop {
            self.sync_cells();
            let free = self.kv_cells.saturating_sub(self.cells.used());
            let decoding = self
                .seqs
                .iter()
                .filter_map(|s| s.running.as_ref())
                .filter(|s| s.has_pending())
                .count();
            let reading = self
                .seqs
                .iter()
                .filter_map(|s| s.running.as_ref())
                .any(|s| s.prompt_left() > 0 && !s.at_image());
            // Room for every pending token, and one prompt token if nothing decodes (else no
            // step would make progress).
            if free >= decoding.max(usize::from(reading)) {
                return free;
            }
            if self.evict_idle(ctx) {
                continue;
            }
            let youngest = (0..self.seqs.len())
                .filter(|&i| self.seqs[i].running.is_some())
                .max_by_key(|&i| self.seqs[i].last_used);
            let Some(i) = youngest else {
                return free;
            };
            tracing::warn!(
                seq = i,
                cells = self.kv_cells,
                "KV cache full: ending a request"
            );
            self.seqs[i].kept.clear();
            self.free(ctx, i);
            if let Some(slot) = self.seqs[i].running.take() {
                let _ = slot.job.events.send(Err(CoreError::Unavailable(format!(
                    "the KV cache is full: its {} cells (--kv-size) are held by the running requests; retry shortly",
                    self.kv_cells
                ))));
            }
            self.publish();
        }
    }

    fn expire_waiting(&mut self) {
        let timeout = self.queue_timeout;
        let shared = &self.shared;
        self.waiting.retain(|job| {
            if job.events.is_closed() {
                shared.queued.fetch_sub(1, Ordering::Relaxed);
                tracing::debug!("a waiting request was cancelled");
                return false;
            }
            let waited = job.enqueued.elapsed();
            if timeout.is_some_and(|t| waited > t) {
                shared.queued.fetch_sub(1, Ordering::Relaxed);
                let _ = job.events.send(Err(CoreError::QueueTimeout {
                    waited_secs: waited.as_secs_f64(),
                }));
                tracing::warn!(waited_ms = waited.as_millis() as u64, "queue timeout");
                return false;
            }
            true
        });
    }

    /// Starts `job` on a free sequence, reusing the longest cached prefix of its prompt.
    fn start(&mut self, mut job: Job, ctx: &mut LlamaContext<'_>) {
        let sampler = match crate::sampler::build(&job.request.sampling, self.model) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot start a request");
                let _ = job.events.send(Err(e));
                return;
            }
        };
        let prompt = std::mem::take(&mut job.prompt);
        let layout = std::mem::take(&mut job.layout);
        let (dst, cached) = if job.request.cache_prompt && self.reuse {
            self.place_cached(&prompt, &layout, ctx)
        } else {
            let dst = self.free_for(&vec![0; self.seqs.len()], 0);
            self.evict(dst, ctx);
            (dst, 0)
        };
        self.cells.set_len(dst, cached);
        self.tick += 1;
        let seq = &mut self.seqs[dst];
        seq.last_used = self.tick;
        seq.kept.clear();
        tracing::debug!(
            seq = dst,
            prompt_tokens = prompt.len(),
            cached_tokens = cached,
            "sequence started"
        );
        seq.running = Some(Slot::new(
            dst as i32,
            job,
            (prompt, layout),
            cached,
            sampler,
        ));
    }

    /// Picks the sequence for `prompt` and fills its KV with the longest cached prefix it can
    /// get: its own kept KV, a copy of another sequence's (free or still running), or a
    /// host-cache entry.
    ///
    /// The destination is the free sequence [`Scheduler::free_for`] picks; a free sequence's KV
    /// that would be overwritten is saved to host memory first. A copy shares the source's
    /// cells (see [`Scheduler::copy`]).
    fn place_cached(
        &mut self,
        prompt: &[LlamaToken],
        layout: &Layout,
        ctx: &mut LlamaContext<'_>,
    ) -> (usize, usize) {
        // At least one prompt token is always computed: its logits start the reply. A prefix
        // never ends inside an image.
        let usable = prompt.len().saturating_sub(1);
        let reusable = |n: usize| layout.boundary(n.min(usable));
        self.sync_cells();
        let shared: Vec<usize> = self
            .seqs
            .iter()
            .map(|s| reusable(common_prefix(s.tokens(), prompt)))
            .collect();
        let dst = self.free_for(&shared, prompt.len());
        let (src, src_n) = (0..self.seqs.len())
            .filter(|&i| i != dst)
            .max_by_key(|&i| {
                (
                    shared[i],
                    self.seqs[i].running.is_none(),
                    self.seqs[i].last_used,
                )
            })
            .map_or((dst, 0), |i| (i, shared[i]));
        let host_n = self.host.best(prompt).map_or(0, |(_, n)| reusable(n));
        let own_n = shared[dst];

        if own_n > 0 && own_n + MIN_GAIN > src_n.max(host_n) {
            // A tail with an image is worth saving whatever its length: encoding it again costs
            // more than its tokens.
            let tail = &self.seqs[dst].kept[own_n..];
            if tail.len() >= MIN_SAVE_TAIL || tail.iter().any(|&t| is_stand_in(t)) {
                let tokens = self.seqs[dst].kept.clone();
                self.host.save(ctx, dst as i32, tokens, self.tick);
            }
            return (dst, self.cut(dst, own_n, layout.pos_of(own_n), ctx));
        }
        self.evict(dst, ctx);
        // Saving `dst`'s KV may have dropped the host cache's oldest entries, which moves the
        // others (`swap_remove`): the index found above may now name another prompt's KV.
        let (host, host_n) = self
            .host
            .best(prompt)
            .map_or((0, 0), |(i, n)| (i, reusable(n)));
        // A shared prefix costs no memory, a restore a copy of all its cells: in one KV stream
        // a running sequence's prefix is taken unless host memory holds a good deal more.
        let prefer_src = src_n >= host_n || (self.share && src_n + SHARE_OVER_RESTORE > host_n);
        if src_n > 0 && prefer_src {
            if self.copy(ctx, src, dst, src_n, layout.pos_of(src_n)) {
                tracing::debug!(
                    src,
                    dst,
                    tokens = src_n,
                    "prompt cache: copied another sequence's prefix"
                );
                return (dst, self.cut(dst, src_n, layout.pos_of(src_n), ctx));
            }
            return (dst, 0);
        }
        if host_n > 0 {
            if self.host.restore(ctx, host, dst as i32, self.tick) {
                tracing::debug!(
                    dst,
                    tokens = host_n,
                    "prompt cache: restored from host memory"
                );
                return (dst, self.cut(dst, host_n, layout.pos_of(host_n), ctx));
            }
            self.free(ctx, dst);
        }
        (dst, 0)
    }

    /// Gives empty sequence `dst` the first `n` cells of sequence `src` (those before position
    /// `pos`): shared by reference (`llama_memory_seq_cp` in one KV stream adds `dst` to the
    /// cells), or for a model with a sliding window copied through host memory
    /// (`llama_state_seq_get/set_data`), then cut back. False (and `dst` empty) on failure.
    fn copy(
        &mut self,
        ctx: &mut LlamaContext<'_>,
        src: usize,
        dst: usize,
        n: usize,
        pos: usize,
    ) -> bool {
        let copied = if self.share {
            u32::try_from(pos)
                .map_err(|e| e.to_string())
                .and_then(|p1| {
                    ctx.copy_kv_cache_seq(src as i32, dst as i32, Some(0), Some(p1))
                        .map_err(|e| e.to_string())
                })
                .map(|()| {
                    let src_len = self.seqs[src].tokens().len();
                    self.cells.share(src, src_len, dst, n);
                })
        } else {
            ctx.state_seq_get(src as i32, LlamaStateSeqFlags::empty())
                .and_then(|state| ctx.state_seq_set(&state, dst as i32))
                .map_err(|e| e.to_string())
        };
        if let Err(e) = &copied {
            tracing::warn!(src, dst, error = %e, "cannot copy a sequence's KV");
            self.free(ctx, dst);
        }
        copied.is_ok()
    }

    /// Frees every KV cell of sequence `seq` (cells another sequence shares stay).
    fn free(&mut self, ctx: &mut LlamaContext<'_>, seq: usize) {
        self.cells.clear(seq);
        free_seq(ctx, seq as i32);
    }

    /// Cuts sequence `dst`'s KV back to its first `n` tokens, which end before position
    /// `pos` ([`Layout::pos_of`]); the prefix length it keeps (0 when the cut is impossible,
    /// e.g. a sliding window already dropped needed cells).
    fn cut(&mut self, dst: usize, n: usize, pos: usize, ctx: &mut LlamaContext<'_>) -> usize {
        let seq = dst as i32;
        let removed = u32::try_from(pos).is_ok_and(|p0| {
            matches!(
                ctx.clear_kv_cache_seq(Some(dst as u32), Some(p0), None),
                Ok(true)
            )
        });
        // Every position the prompt's tail attends to must still have its cells: all of them,
        // or with a sliding window, the last n_swa.
        let pos_min = ctx.kv_cache_seq_pos_min(seq);
        let pos_max = ctx.kv_cache_seq_pos_max(seq);
        let oldest_needed = if self.n_swa == 0 {
            0
        } else {
            pos.saturating_sub(self.n_swa)
        };
        // After an image of an M-RoPE model the last cell's position is the image's first,
        // not `pos - 1`: such a prefix is computed again (pieces end with text for the
        // projectors llama.cpp knows, so this is rare).
        let complete = pos_min >= 0
            && pos_min as usize <= oldest_needed
            && usize::try_from(pos_max + 1).is_ok_and(|end| end == pos);
        if removed && complete {
            return n;
        }
        tracing::debug!(
            seq,
            n,
            pos_min,
            pos_max,
            "prompt cache: prefix not reusable; computing it again"
        );
        self.free(ctx, dst);
        0
    }

    /// Empties free sequence `dst`, saving its KV to host memory first.
    fn evict(&mut self, dst: usize, ctx: &mut LlamaContext<'_>) {
        let tokens = std::mem::take(&mut self.seqs[dst].kept);
        if self.reuse && !tokens.is_empty() {
            self.host.save(ctx, dst as i32, tokens, self.tick);
        }
        self.free(ctx, dst);
    }

    /// Evicts the least recently used free sequence that holds KV (saved to host memory
    /// first); false when there is none.
    fn evict_idle(&mut self, ctx: &mut LlamaContext<'_>) -> bool {
        let lru = (0..self.seqs.len())
            .filter(|&i| self.seqs[i].running.is_none() && !self.seqs[i].kept.is_empty())
            .min_by_key(|&i| self.seqs[i].last_used);
        match lru {
            Some(i) => {
                tracing::debug!(seq = i, "KV cache full: evicting an idle sequence");
                self.evict(i, ctx);
                true
            }
            None => false,
        }
    }

    /// The free sequence a new request of `prompt_len` tokens takes, given the prefix of its
    /// prompt each sequence holds (`shared`): the one holding the longest, if it is at least
    /// `MIN_IN_PLACE` tokens or half the prompt (reused in place: a repeated request then runs
    /// on the same cells, so a seeded sample repeats exactly), else an empty one, else the
    /// least recently used, so a free sequence's KV is overwritten only when every free
    /// sequence holds some (with `--cache-ram 0` it is lost, not saved). A shorter match (the
    /// BOS token of an unrelated prompt) is not worth a kept conversation. In one KV stream the
    /// sequence ids do not change how a step is split into micro-batches.
    fn free_for(&self, shared: &[usize], prompt_len: usize) -> usize {
        (0..self.seqs.len())
            .filter(|&i| self.seqs[i].running.is_none())
            .max_by_key(|&i| {
                (
                    Some(shared[i]).filter(|&n| n >= MIN_IN_PLACE.min(prompt_len.div_ceil(2))),
                    self.seqs[i].kept.is_empty(),
                    std::cmp::Reverse(self.seqs[i].last_used),
                    std::cmp::Reverse(i),
                )
            })
            .unwrap_or(0)
    }

    /// Ends sequences whose client went away; their KV stays as cache.
    pub fn drop_cancelled(&mut self) {
        for seq in &mut self.seqs {
            if seq
                .running
                .as_ref()
                .is_some_and(|s| s.job.events.is_closed())
            {
                if let Some(slot) = seq.running.take() {
                    tracing::debug!(seq = slot.seq, generated = slot.generated, "cancelled");
                    seq.kept = slot.kv;
                }
            }
        }
    }

    /// One `llama_decode`: the pending token of every decoding sequence, then prompt chunks,
    /// shortest remaining prompt first: a short chat arriving beside a long document gets its
    /// first token after one step instead of waiting for the document's chunks.
    pub fn step(&mut self, ctx: &mut LlamaContext<'_>, batch: &mut LlamaBatch<'_>) -> Result<()> {
        self.image_step(ctx);
        let room = if self.tight {
            self.room_for_step(ctx)
        } else {
            usize::MAX
        };
        batch.clear();
        for slot in self.seqs.iter_mut().filter_map(|s| s.running.as_mut()) {
            slot.add_pending(batch)?;
        }
        let limit = if batch.n_tokens() > 0 {
            self.step_tokens
                .min(batch.n_tokens() as usize + PROMPT_TOKENS_WHILE_DECODING)
        } else {
            self.step_tokens
        }
        .min(room);
        let mut reading: Vec<&mut Slot> = self
            .seqs
            .iter_mut()
            .filter_map(|s| s.running.as_mut())
            .filter(|s| s.prompt_left() > 0 && !s.at_image())
            .collect();
        reading.sort_by_key(|s| s.prompt_left());
        for slot in reading {
            let budget = limit.saturating_sub(batch.n_tokens() as usize);
            if budget == 0 {
                break;
            }
            slot.add_prompt_chunk(batch, budget)?;
        }
        if batch.n_tokens() == 0 {
            return Ok(());
        }
        // No room in the KV cache: llama.cpp changed nothing (the batch is placed before it is
        // computed); idle sequences give theirs up, least recently used first.
        let mut decoded = ctx.decode(batch);
        while matches!(decoded, Err(DecodeError::NoKvCacheSlot)) && self.evict_idle(ctx) {
            decoded = ctx.decode(batch);
        }
        if let Err(e) = decoded {
            // A failed decode leaves the batch's sequences in an unknown state: end them all
            // and drop everything the context holds.
            let message = format!("decode failed: {e}");
            for seq in &mut self.seqs {
                seq.kept.clear();
                if let Some(slot) = seq.running.take() {
                    let _ = slot
                        .job
                        .events
                        .send(Err(CoreError::Backend(message.clone())));
                }
            }
            ctx.clear_kv_cache();
            self.cells = Cells::new(self.seqs.len());
            return Err(CoreError::Backend(message));
        }
        let mut endings = Vec::new();
        for seq in &mut self.seqs {
            let Some(slot) = seq.running.as_mut() else {
                continue;
            };
            if !slot.has_logits() {
                continue;
            }
            if let Step::Finished(event) = slot.sample(ctx, self.model, self.n_ctx) {
                if let Some(slot) = seq.running.take() {
                    seq.kept = slot.kv;
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

impl Scheduler<'_> {
    /// Encodes one image, in a `llama_decode` of its own: of the sequences whose prompt has
    /// reached an image, the one with the least prompt left (as prompt chunks are ordered).
    /// The step's batch then goes on as usual, so the other sequences keep decoding between
    /// images. A sequence whose image fails ends with the error; its KV is dropped.
    fn image_step(&mut self, ctx: &mut LlamaContext<'_>) {
        let Some(vision) = self.vision.clone() else {
            return;
        };
        let next = self
            .seqs
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.running.as_ref().map(|slot| (i, slot)))
            .filter(|(_, slot)| slot.at_image())
            .min_by_key(|(_, slot)| slot.prompt_left())
            .map(|(i, _)| i);
        let Some(i) = next else {
            return;
        };
        let n_batch = i32::try_from(self.n_batch).unwrap_or(i32::MAX);
        let failed = match self.seqs[i].running.as_mut() {
            Some(slot) => slot.eval_image(&vision, ctx, n_batch).err(),
            None => None,
        };
        if let Some(e) = failed {
            tracing::warn!(seq = i, error = %e, "image failed");
            self.seqs[i].kept.clear();
            self.free(ctx, i);
            if let Some(slot) = self.seqs[i].running.take() {
                let _ = slot.job.events.send(Err(e));
            }
            self.publish();
            return;
        }
        // A piece that ended the prompt: its first token is sampled now, before the step's
        // decode replaces the logits.
        let seq = &mut self.seqs[i];
        let Some(slot) = seq.running.as_mut().filter(|s| s.has_logits()) else {
            return;
        };
        let Step::Finished(event) = slot.sample(ctx, self.model, self.n_ctx) else {
            return;
        };
        if let Some(slot) = seq.running.take() {
            seq.kept = slot.kv;
            self.publish();
            if let Some(event) = event {
                let _ = slot.job.events.send(Ok(event));
            }
        }
    }
}

/// The sliding-window size of a model with SWA layers, from its GGUF metadata (0: none).
fn sliding_window(model: &LlamaModel) -> usize {
    let Ok(arch) = model.meta_val_str("general.architecture") else {
        return 0;
    };
    model
        .meta_val_str(&format!("{arch}.attention.sliding_window"))
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Frees every KV cell of a sequence.
fn free_seq(ctx: &mut LlamaContext<'_>, seq: i32) {
    if let Ok(seq) = u32::try_from(seq) {
        if let Err(e) = ctx.clear_kv_cache_seq(Some(seq), None, None) {
            tracing::warn!(seq, error = %e, "cannot free a sequence's KV cells");
        }
    }
}
