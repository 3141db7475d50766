//! What the learner takes and returns.

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
