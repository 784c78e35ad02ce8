//! Log-probabilities from raw logits (log-softmax), as llama-server reports them by default.

use minerva_core::TokenId;

/// `log p(token)` for `chosen`, and the `top` most likely tokens with their log-probabilities.
pub fn from_logits(logits: &[f32], chosen: TokenId, top: usize) -> (f32, Vec<(TokenId, f32)>) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
    let lse = max + sum.ln() as f32;
    let chosen_lp = usize::try_from(chosen)
        .ok()
        .and_then(|i| logits.get(i))
        .map_or(f32::NEG_INFINITY, |&l| l - lse);

    let mut best: Vec<(TokenId, f32)> = Vec::with_capacity(top + 1);
    if top > 0 {
        for (i, &l) in logits.iter().enumerate() {
            if best.len() == top && best.last().is_some_and(|&(_, b)| l <= b) {
                continue;
            }
            let pos = best.partition_point(|&(_, b)| b >= l);
            best.insert(pos, (i as TokenId, l));
            best.truncate(top);
        }
    }
    for entry in &mut best {
        entry.1 -= lse;
    }
    (chosen_lp, best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_softmax_and_top_n() {
        let logits = [1.0f32, 3.0, 2.0, 0.5];
        let (lp, top) = from_logits(&logits, 2, 2);
        let lse = logits.iter().map(|l| l.exp()).sum::<f32>().ln();
        assert!((lp - (2.0 - lse)).abs() < 1e-5);
        assert_eq!(top.iter().map(|t| t.0).collect::<Vec<_>>(), vec![1, 2]);
        assert!((top[0].1 - (3.0 - lse)).abs() < 1e-5);
        let total: f32 = logits.iter().map(|l| (l - lse).exp()).sum();
        assert!((total - 1.0).abs() < 1e-5);
    }

    #[test]
    fn ties_keep_lower_id_first() {
        let (_, top) = from_logits(&[5.0, 5.0, 1.0], 0, 3);
        assert_eq!(top.iter().map(|t| t.0).collect::<Vec<_>>(), vec![0, 1, 2]);
    }
}
