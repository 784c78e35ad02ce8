//! The prompt cache: KV that outlives the request that computed it.
//!
//! Two tiers, both owned by the context thread:
//!
//! * **In the context.** A sequence that finishes (or is cancelled) keeps its KV cells; its
//!   tokens are remembered beside it. A running sequence's KV counts too. A new request reuses
//!   the longest prefix it shares with any of them: in place when that sequence is free, or by
//!   sharing the other sequence's cells (`llama_memory_seq_cp`: all sequences live in one KV
//!   stream, so the prefix is held once; see `cells`) and dropping the tail beyond the prefix.
//!   A running sequence can be the source: a request sharing a long system prompt with one
//!   still generating does not compute it again, nor store it twice.
//! * **In host memory** ([`HostCache`]). When a free sequence's KV is about to be overwritten
//!   by an unrelated request, or when another request starts (idle sequences leave the one KV
//!   stream, where every token attends over all cells in use: see `Scheduler::clear_idle`), it
//!   is saved (`llama_state_seq_get_data`) into an LRU store with a byte budget, and restored
//!   into a sequence when a later prompt shares more with it than with anything in the
//!   context: the way a user returns to an older chat.
//!
//! Only the prompt's tail is computed. The cached cells hold what computing the same tokens at
//! the same positions produced, but in another batch: llama.cpp's CPU kernels round differently
//! at different batch sizes, so a reply can part from an uncached one at a near-tie (measured in
//! the README; tests/prompt_cache.rs checks conversations that stay identical).

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::{LlamaStateSeqFlags, SeqState};
use minerva_core::CacheStatus;

/// Length of the common prefix of two token sequences.
pub fn common_prefix(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

struct Entry {
    tokens: Vec<LlamaToken>,
    state: SeqState,
    last_used: u64,
}

/// Saved sequences in host memory, least recently used evicted first.
pub struct HostCache {
    entries: Vec<Entry>,
    budget: u64,
    bytes: u64,
}

impl HostCache {
    pub fn new(budget: u64) -> Self {
        HostCache {
            entries: Vec::new(),
            budget,
            bytes: 0,
        }
    }

    pub fn status(&self) -> CacheStatus {
        CacheStatus {
            entries: self.entries.len(),
            tokens: self.entries.iter().map(|e| e.tokens.len()).sum(),
            bytes: self.bytes,
            budget_bytes: self.budget,
        }
    }

    /// The entry sharing the longest prefix with `prompt`: (index, shared tokens).
    pub fn best(&self, prompt: &[LlamaToken]) -> Option<(usize, usize)> {
        self.entries
            .iter()
            .enumerate()
            .map(|(i, e)| (i, common_prefix(&e.tokens, prompt)))
            .max_by_key(|&(i, n)| (n, self.entries[i].last_used))
    }

    /// Saves sequence `seq` (holding `tokens`) unless an entry already covers it.
    pub fn save(&mut self, ctx: &LlamaContext<'_>, seq: i32, tokens: Vec<LlamaToken>, now: u64) {
        if self.budget == 0 || tokens.is_empty() {
            return;
        }
        if let Some(entry) = self
            .entries
            .iter_mut()
            .find(|e| common_prefix(&e.tokens, &tokens) == tokens.len())
        {
            entry.last_used = now;
            return;
        }
        let state = match ctx.state_seq_get(seq, LlamaStateSeqFlags::empty()) {
            Ok(state) => state,
            Err(e) => {
                tracing::warn!(seq, error = %e, "cannot save a sequence to the prompt cache");
                return;
            }
        };
        let size = state.byte_len() as u64;
        if size > self.budget {
            return;
        }
        // Entries this one extends are now redundant.
        self.remove_where(|e| common_prefix(&e.tokens, &tokens) == e.tokens.len());
        while self.bytes + size > self.budget {
            let Some(oldest) = (0..self.entries.len()).min_by_key(|&i| self.entries[i].last_used)
            else {
                break;
            };
            let gone = self.entries.swap_remove(oldest);
            self.bytes -= gone.state.byte_len() as u64;
            tracing::debug!(tokens = gone.tokens.len(), "prompt cache: evicted");
        }
        tracing::debug!(tokens = tokens.len(), bytes = size, "prompt cache: saved");
        self.bytes += size;
        self.entries.push(Entry {
            tokens,
            state,
            last_used: now,
        });
    }

    /// Restores entry `index` into sequence `seq`; false (and the entry dropped) on failure.
    pub fn restore(
        &mut self,
        ctx: &mut LlamaContext<'_>,
        index: usize,
        seq: i32,
        now: u64,
    ) -> bool {
        let Some(entry) = self.entries.get_mut(index) else {
            return false;
        };
        entry.last_used = now;
        match ctx.state_seq_set(&entry.state, seq) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(seq, error = %e, "cannot restore from the prompt cache; dropping the entry");
                let gone = self.entries.swap_remove(index);
                self.bytes -= gone.state.byte_len() as u64;
                false
            }
        }
    }

    fn remove_where(&mut self, pred: impl Fn(&Entry) -> bool) {
        let mut freed = 0;
        self.entries.retain(|e| {
            let drop = pred(e);
            if drop {
                freed += e.state.byte_len() as u64;
            }
            !drop
        });
        self.bytes -= freed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(v: &[i32]) -> Vec<LlamaToken> {
        v.iter().map(|&t| LlamaToken(t)).collect()
    }

    #[test]
    fn common_prefix_counts_equal_leading_tokens() {
        assert_eq!(common_prefix(&toks(&[1, 2, 3]), &toks(&[1, 2, 4])), 2);
        assert_eq!(common_prefix(&toks(&[1, 2]), &toks(&[1, 2, 3])), 2);
        assert_eq!(common_prefix(&toks(&[]), &toks(&[1])), 0);
        assert_eq!(common_prefix(&toks(&[5]), &toks(&[1])), 0);
    }
}
