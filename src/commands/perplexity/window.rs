//! The windowing and scoring arithmetic, free of any model: which tokens of a document go into
//! which window, which of them are scored, and how log-probabilities add up to the reported
//! figures.
//!
//! A document of `n` text tokens is cut into consecutive windows. With a BOS token each window
//! is `[BOS] + chunk` with chunks of `context - 1` text tokens, and every text token is scored
//! (the first one predicted from BOS alone). Without a BOS each window is a chunk of `context`
//! text tokens and its first token has nothing to be predicted from, so it is not scored.

use std::ops::Range;

/// The chunks of text-token indices `0..n_tokens`, one per window, in order. A window holds
/// `context` positions in all, the BOS included when there is one. `context` must be at least 2
/// (one position to predict from and one to predict); the caller checks.
pub fn windows(n_tokens: usize, has_bos: bool, context: usize) -> Vec<Range<usize>> {
    let chunk = if has_bos { context - 1 } else { context };
    (0..n_tokens)
        .step_by(chunk.max(1))
        .map(|start| start..(start + chunk).min(n_tokens))
        .collect()
}

/// How many text tokens of a document are scored: all of them with a BOS, all but the first of
/// each window without one.
pub fn scored_tokens(n_tokens: usize, has_bos: bool, context: usize) -> usize {
    if has_bos {
        n_tokens
    } else {
        n_tokens - windows(n_tokens, false, context).len()
    }
}

/// `ln p(target)` under the distribution `softmax(logits)`, accumulated in f64.
pub fn log_prob(logits: &[f32], target: usize) -> f64 {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
    let sum: f64 = logits.iter().map(|&x| (x as f64 - max).exp()).sum();
    logits[target] as f64 - max - sum.ln()
}

/// Running totals over the documents of one model.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    /// Documents scored.
    pub documents: u64,
    /// UTF-8 bytes of their text.
    pub bytes: u64,
    /// Text tokens (BOS excluded).
    pub tokens: u64,
    /// Text tokens that were scored (all of them with a BOS).
    pub scored_tokens: u64,
    /// Windows run.
    pub windows: u64,
    /// Sum of `-ln p` over the scored tokens.
    pub nats: f64,
}

impl Totals {
    /// Tokens per UTF-8 byte (how finely the tokenizer cuts this text).
    pub fn tokens_per_byte(&self) -> f64 {
        ratio(self.tokens as f64, self.bytes as f64)
    }
    /// Mean negative log-likelihood of a scored token, in nats.
    pub fn nats_per_token(&self) -> f64 {
        ratio(self.nats, self.scored_tokens as f64)
    }
    /// `exp(nats per token)`.
    pub fn perplexity(&self) -> f64 {
        self.nats_per_token().exp()
    }
    /// Total negative log-likelihood in bits over the UTF-8 bytes: the figure that compares
    /// models with different tokenizers.
    pub fn bits_per_byte(&self) -> f64 {
        ratio(self.nats / std::f64::consts::LN_2, self.bytes as f64)
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        f64::NAN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perplexity_windows_cover_every_token_once() {
        for n in 0..40 {
            for context in 2..12 {
                for bos in [false, true] {
                    let w = windows(n, bos, context);
                    let flat: Vec<usize> = w.iter().flat_map(|r| r.clone()).collect();
                    assert_eq!(flat, (0..n).collect::<Vec<_>>(), "n={n} ctx={context}");
                    let width = if bos { context - 1 } else { context };
                    assert!(w.iter().all(|r| !r.is_empty() && r.len() <= width));
                    assert_eq!(w.len(), n.div_ceil(width));
                }
            }
        }
    }

    #[test]
    fn perplexity_scored_counts_at_context_edges() {
        // 10 tokens, BOS: always 10 scored. No BOS: context 10 → 1 window → 9 scored;
        // context 9 → 2 windows → 8; context 11 → 1 window → 9.
        assert_eq!(scored_tokens(10, true, 10), 10);
        assert_eq!(scored_tokens(10, false, 9), 8);
        assert_eq!(scored_tokens(10, false, 10), 9);
        assert_eq!(scored_tokens(10, false, 11), 9);
        assert_eq!(windows(10, true, 11), vec![0..10]);
        assert_eq!(windows(10, true, 10), vec![0..9, 9..10]);
    }

    #[test]
    fn perplexity_log_prob_of_uniform_logits() {
        let logits = vec![3.5f32; 700];
        assert!((log_prob(&logits, 17) + (700f64).ln()).abs() < 1e-12);
        let t = Totals {
            documents: 1,
            bytes: 4,
            tokens: 2,
            scored_tokens: 2,
            windows: 1,
            nats: 2.0 * (700f64).ln(),
        };
        assert!((t.bits_per_byte() - 2.0 * (700f64).log2() / 4.0).abs() < 1e-12);
        assert!((t.perplexity() - 700.0).abs() < 1e-9);
    }
}
