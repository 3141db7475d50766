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
mod types;
mod words;
mod write;

use crate::error::{Error, Result};
use std::path::Path;

pub use original::Family;
pub use types::{Extension, Fertility, LearnOptions, NewToken};

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
