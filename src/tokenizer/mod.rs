//! The `tokenizer.json` format, in one place: loading a tokenizer with the `tokenizers` crate
//! ([`load`]: one error line, once per run; [`read`] returns it with its [`family`]), the family a
//! tokenizer belongs to ([`family`]), how single bytes are written ([`bytes`]: GPT-2's
//! byte-level table, `<0xHH>` byte-fallback tokens), and the file as JSON for commands that
//! rewrite it: [`file`] reads its structure ([`TokenizerJson`]: model type, vocabulary, merges,
//! byte fallback, unknown token, added tokens), [`keep`] says what a vocabulary subset must
//! keep to still tokenize, [`rewrite`] writes the subset per model type, and [`write`]
//! serialises deterministically (vocabulary in id order).
//!
//! This module reads tokenizers; what their tokens *mean* and how two vocabularies match is
//! [`crate::vocab`], which builds on it. It imports nothing of the crate but [`crate::error`]
//! and [`crate::json`].

pub mod bytes;
pub mod family;
pub mod file;
pub mod keep;
pub mod load;
pub mod rewrite;
pub mod write;

pub use family::TokenFamily;
pub use file::{ModelKind, TokenizerJson};
pub use load::{from_bytes, from_json, load_file, read, Loaded, MISSING_FIX};
