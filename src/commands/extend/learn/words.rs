//! The training lines as the model sees them: added tokens taken out, the model's own
//! normalizer and pre-tokenizer applied, and (SentencePiece BPE, whose files have no word
//! split) cut again before every space marker so that learned tokens stay inside words.
//! Counted per distinct word in a sorted map, so everything downstream is deterministic.

use super::original::{Family, Original, SPACE_MARKER};
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use tokenizers::{OffsetReferential, OffsetType, PreTokenizer};

/// Distinct words of the training lines and how often each occurs.
pub type WordCounts = BTreeMap<String, u64>;

/// Counts the words of `lines` under `orig`'s normalizer and pre-tokenizer.
pub fn word_counts(orig: &Original, lines: &[String]) -> Result<WordCounts> {
    let mut counts = WordCounts::new();
    for line in lines {
        for w in line_words(orig, line)? {
            *counts.entry(w).or_default() += 1;
        }
    }
    Ok(counts)
}

/// The words of one line.
pub fn line_words(orig: &Original, line: &str) -> Result<Vec<String>> {
    let tok = &orig.tokenizer;
    let fail = |e: tokenizers::Error| {
        Error::Model(format!(
            "{}: the tokenizer's pre-tokenizer failed on a training line ({e}); check the corpus encoding",
            orig.path.display()
        ))
    };
    let mut pre = tok
        .get_added_vocabulary()
        .extract_and_normalize(tok.get_normalizer(), line);
    if let Some(p) = tok.get_pre_tokenizer() {
        p.pre_tokenize(&mut pre).map_err(fail)?;
    }
    let mut out = Vec::new();
    for (text, _, tokens) in pre.get_splits(OffsetReferential::Original, OffsetType::Byte) {
        // Splits with tokens are added tokens: the model never sees them.
        if tokens.is_some() || text.is_empty() {
            continue;
        }
        if orig.family == Family::SentencePieceBpe {
            out.extend(split_at_marker(text));
        } else {
            out.push(text.to_string());
        }
    }
    Ok(out)
}

/// `text` cut before every space marker (`"▁a▁▁b"` → `"▁a"`, `"▁"`, `"▁b"`).
fn split_at_marker(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        if c == SPACE_MARKER && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        cur.push(c);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_starts_words() {
        assert_eq!(split_at_marker("▁a▁▁bc▁"), vec!["▁a", "▁", "▁bc", "▁"]);
        assert_eq!(split_at_marker("ab▁c"), vec!["ab", "▁c"]);
    }
}
