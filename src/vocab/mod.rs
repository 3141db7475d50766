//! Tokenizer vocabularies and how two of them are matched.
//!
//! A [`Vocab`] is what transformers' `get_vocab()` returns for a fast tokenizer: the model's
//! vocabulary plus the added tokens, read from `tokenizer.json` with the `tokenizers` crate, and
//! the special-token roles (bos/eos/unk/pad/sep/cls/mask) from `tokenizer_config.json`,
//! `special_tokens_map.json` and the model config's `*_token_id` keys, in that precedence.
//!
//! [`match_tokens`] applies CLP-Transfer's rule: a target token *overlaps* when the exact same
//! string is in the source vocabulary ([`MatchMode::Exact`], the original's behaviour). With
//! [`MatchMode::Canonical`] tokens match by meaning: a target token overlaps when its canonical
//! form (the bytes it stands for and whether it starts a word, see [`canonical`]) is the form
//! of a source token, whatever either spelling, so GPT-2's `Ġhello` and Llama's `▁hello` are one
//! token while GPT-2's `Ċ` (a newline) and a SentencePiece letter `Ċ` (U+010A) are not. Added
//! tokens that stand for ordinary text (non-special, no whitespace stripping: Gemma's `"\n"`,
//! `"\t"` and `"▁▁"`) have a form like vocabulary tokens; special tokens and special-role tokens
//! have none and match by exact string (then by role). A tokenizer family that canonical
//! matching does not know falls back to exact matching, with a notice. When several source
//! tokens share a form, the same spelling wins, then the token the source tokenizer itself
//! produces when it encodes that text, then an ordinary token over a SentencePiece `<0xHH>`
//! byte token (which is only used when nothing else spells the byte), then the lowest id; the
//! others are counted as collisions. A missing target special token takes the source's token
//! of the same role when the source has one; every other missing token is computed from the
//! overlap. Every list is ordered by target id, so the result is
//! deterministic.
//!
//! Files: [`read`] (a vocabulary from tokenizer files), [`roles`] (special-token roles),
//! [`canonical`] (the forms), [`matching`] (the rules above), [`report`] (counts and examples),
//! [`ids`] (config ids by role), [`fvt`] (a target token spelled by the source tokenizer).

pub mod canonical;
pub mod fvt;
pub mod ids;
pub mod matching;
pub mod read;
pub mod report;
pub mod roles;

pub use matching::{match_tokens, match_vocabularies, MatchMode, Matching, RoleMapping};
pub use read::Vocab;
pub use report::{MatchCounts, MatchExamples, MatchReport, MissingExample, PairExample};
pub use roles::SpecialRole;
