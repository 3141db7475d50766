//! Learning new tokens for a model's own tokenizer and writing the extended tokenizer.json.
//!
//! Stages: [`original`] reads the tokenizer and names its family (or refuses it); [`words`]
//! cuts the training lines into the words the model sees (its own normalizer, added tokens and
//! pre-tokenizer; SentencePiece text also at the space marker); one trainer per family
//! ([`bpe`]: byte-level and SentencePiece BPE, appended merges; [`scored`]: Unigram pieces on
//! the model's score scale, WordPiece entries) proposes tokens in order of usefulness;
//! [`settle`] extends the tokenizer with the first `add` of them and repairs it until every
//! training line decodes as before and takes no more tokens (dropping the tokens responsible);
//! [`write`] edits the JSON (existing entries untouched, new ids after the largest one).

mod bpe;
mod original;
mod scored;
mod settle;
mod words;
mod write;

use crate::error::{Error, Result};
use std::path::Path;

pub use original::Family;

/// What to learn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LearnOptions {
    /// New tokens to add at most (intermediate tokens a merge chain needs included).
    pub add: usize,
    /// Tokens seen fewer times on the training lines are dropped.
    pub min_freq: u64,
}

/// A token the extension adds.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NewToken {
    /// Its id: after the largest existing id (added and special tokens included).
    pub id: u32,
    /// The token as written in the vocabulary (`Ġhaus`, `▁Haus`, `##en`).
    pub content: String,
    /// The text it stands for.
    pub text: String,
    /// Order of usefulness (0 = first): creation order of the merges (BPE), score order
    /// (Unigram), the trainer's merge order (WordPiece).
    pub rank: usize,
    /// How often it is used on the training lines: merges producing it (BPE), pieces in the
    /// extended segmentation (Unigram, WordPiece).
    pub frequency: u64,
    /// Its content under the original tokenizer's model (ids).
    pub pieces_before: Vec<u32>,
}

/// The extended tokenizer.
#[derive(Debug, Clone)]
pub struct Extension {
    /// "byte-level BPE", "SentencePiece BPE", "Unigram" or "WordPiece".
    pub family: &'static str,
    /// The extended tokenizer.json, deterministic bytes.
    pub tokenizer_json: Vec<u8>,
    /// The new tokens, in id order.
    pub tokens: Vec<NewToken>,
    /// What the checks dropped, and why.
    pub notes: Vec<String>,
}

/// Tokens per line before and after, over a set of lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Fertility {
    /// Lines compared.
    pub lines: usize,
    /// Their UTF-8 bytes.
    pub bytes: u64,
    /// Tokens under the original tokenizer.
    pub tokens_before: u64,
    /// Tokens under the extended tokenizer.
    pub tokens_after: u64,
    /// Lines that take more tokens after.
    pub longer: usize,
    /// Lines whose extended encoding decodes to something else than the original's.
    pub roundtrip_failures: usize,
}

/// Learns up to `opts.add` tokens from `lines` (one document per line) for the tokenizer at
/// `tokenizer_json` and returns the extended tokenizer.
pub fn learn(tokenizer_json: &Path, lines: &[String], opts: &LearnOptions) -> Result<Extension> {
    if opts.add == 0 {
        return Err(Error::Argument(
            "--add 0 adds nothing; pass the number of tokens to add (e.g. --add 1000)".into(),
        ));
    }
    if lines.iter().all(|l| l.trim().is_empty()) {
        return Err(Error::Argument(
            "the training text is empty; pass a corpus with text in the target language".into(),
        ));
    }
    let orig = original::Original::read(tokenizer_json)?;
    let counts = words::word_counts(&orig, lines)?;
    let proposal = match orig.family {
        Family::ByteLevelBpe | Family::SentencePieceBpe => {
            settle::Proposal::Bpe(bpe::Trained::train(&orig, &counts, opts)?)
        }
        Family::Unigram => settle::Proposal::Listed(scored::unigram(&orig, &counts, opts)?),
        Family::WordPiece => settle::Proposal::Listed(scored::wordpiece(&orig, &counts, opts)?),
    };
    settle::settle(&orig, &proposal, &counts, lines, opts)
}

/// Encodes every line with both tokenizers (no special tokens added) and compares: tokens
/// before and after, lines that got longer, lines that decode differently.
pub fn check(
    original: &tokenizers::Tokenizer,
    extended: &tokenizers::Tokenizer,
    lines: &[String],
) -> Fertility {
    settle::compare_lines(original, extended, lines).0
}
