//! How many KV cells the context's sequences hold between them, counting a shared cell once.
//!
//! With llama.cpp's unified KV cache (one stream for all sequences), `llama_memory_seq_cp`
//! shares cells: the destination sequence is added to the source's cells, nothing is copied
//! (`llama_kv_cache::seq_cp`, same-stream branch). llama.cpp does not report how many cells are
//! in use, so the scheduler keeps this ledger beside the context, the way it keeps each
//! sequence's tokens.
//!
//! A sequence's cells are a list of *runs*: `(run, n)` names the first `n` cells of run `run`.
//! Tokens a sequence appends go to a run of its own, which it alone extends; another sequence
//! sharing its prefix refers to a leading part of that run. A run's cells in use are the most
//! any sequence refers to, so the cells in use are the sum of that over runs. A sequence cut
//! back (`llama_memory_seq_rm`) refers to less, and appends after a cut open a new run: the
//! cells cut off are either freed or still held by a sequence that shares them.

use std::collections::HashMap;

#[derive(Default, Clone)]
struct SeqCells {
    runs: Vec<(u64, usize)>,
    /// Whether the last run is this sequence's own and it may extend it.
    growing: bool,
}

impl SeqCells {
    fn len(&self) -> usize {
        self.runs.iter().map(|&(_, n)| n).sum()
    }

    fn truncate(&mut self, mut keep: usize) {
        let mut out = Vec::with_capacity(self.runs.len());
        for &(run, n) in &self.runs {
            if keep == 0 {
                break;
            }
            out.push((run, n.min(keep)));
            keep -= n.min(keep);
        }
        self.runs = out;
        self.growing = false;
    }
}

/// The ledger of cells held by each sequence (see the module documentation).
pub struct Cells {
    seqs: Vec<SeqCells>,
    next_run: u64,
}

impl Cells {
    /// A ledger for `n_seq` sequences, all empty.
    pub fn new(n_seq: usize) -> Self {
        Cells {
            seqs: vec![SeqCells::default(); n_seq],
            next_run: 0,
        }
    }

    /// Sequence `seq` now holds `len` cells: cut back to its first `len`, or grown by cells of
    /// its own.
    pub fn set_len(&mut self, seq: usize, len: usize) {
        let Some(s) = self.seqs.get_mut(seq) else {
            return;
        };
        let have = s.len();
        if len < have {
            s.truncate(len);
        } else if len > have {
            let grow = len - have;
            match s.runs.last_mut() {
                Some((_, n)) if s.growing => *n += grow,
                _ => {
                    s.runs.push((self.next_run, grow));
                    self.next_run += 1;
                    s.growing = true;
                }
            }
        }
    }

    /// Sequence `seq` holds no cells.
    pub fn clear(&mut self, seq: usize) {
        if let Some(s) = self.seqs.get_mut(seq) {
            *s = SeqCells::default();
        }
    }

    /// Empty sequence `dst` now shares the first `n` cells of `src`, which holds `src_len`.
    pub fn share(&mut self, src: usize, src_len: usize, dst: usize, n: usize) {
        self.set_len(src, src_len);
        let Some(mut shared) = self.seqs.get(src).cloned() else {
            return;
        };
        shared.truncate(n.min(src_len));
        if let Some(d) = self.seqs.get_mut(dst) {
            *d = shared;
        }
    }

    /// Cells held by at least one sequence.
    pub fn used(&self) -> usize {
        let mut runs: HashMap<u64, usize> = HashMap::new();
        for &(run, n) in self.seqs.iter().flat_map(|s| &s.runs) {
            let most = runs.entry(run).or_default();
            *most = (*most).max(n);
        }
        runs.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_of_their_own_add_up() {
        let mut c = Cells::new(3);
        c.set_len(0, 100);
        c.set_len(1, 50);
        c.set_len(0, 120);
        assert_eq!(c.used(), 170);
        c.clear(0);
        assert_eq!(c.used(), 50);
    }

    #[test]
    fn a_shared_prefix_counts_once() {
        let mut c = Cells::new(4);
        c.set_len(0, 1000);
        for dst in 1..4 {
            c.share(0, 1000, dst, 1000);
            c.set_len(dst, 1010);
        }
        c.set_len(0, 1010);
        assert_eq!(c.used(), 1000 + 4 * 10);
        // The source cut back and grown again: the cells it cut off are still shared.
        c.set_len(0, 500);
        c.set_len(0, 600);
        assert_eq!(c.used(), 1000 + 3 * 10 + 100);
        // Every sharer gone: only the source's own cells are left.
        for dst in 1..4 {
            c.clear(dst);
        }
        assert_eq!(c.used(), 600);
    }

    #[test]
    fn sharing_part_of_a_growing_run_and_chains() {
        let mut c = Cells::new(3);
        c.set_len(0, 300);
        c.share(0, 400, 1, 200);
        assert_eq!(c.used(), 400);
        c.set_len(1, 250);
        // A copy of a copy: its first 150 cells are sequence 0's.
        c.share(1, 250, 2, 220);
        assert_eq!(c.used(), 400 + 50);
        c.clear(0);
        c.clear(1);
        assert_eq!(c.used(), 220);
    }

    #[test]
    fn cut_then_grow_opens_a_new_run() {
        let mut c = Cells::new(2);
        c.set_len(0, 100);
        c.share(0, 100, 1, 100);
        c.set_len(1, 40);
        c.set_len(1, 90);
        assert_eq!(c.used(), 100 + 50);
    }
}
