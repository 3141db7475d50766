//! How the *source* tokenizer spells a target token: the source tokens whose rows FVT (fast
//! vocabulary transfer) averages.
//!
//! A target token stands for some bytes and a word-start flag (its [`CanonicalToken`]). The
//! source family writes that text its own way: byte-level BPE maps every byte through GPT-2's
//! table (`Ġ` for the space); SentencePiece writes the space as its replacement (`▁`) and bytes
//! that are not valid UTF-8 on their own as byte-fallback tokens `<0xHH>`; WordPiece writes the
//! word as it is. The spelled word is then split by the source tokenizer's *model* alone (BPE
//! merges, Unigram, WordPiece), without normaliser or pre-tokeniser, so the split is exactly the
//! one the source model would make of that word. The unknown token is never part of the result:
//! a word that only splits into unknowns has no spelling.

use super::canonical::CanonicalToken;
use super::read::Vocab;
use super::roles::SpecialRole;
use crate::tokenizer::bytes::{byte_level_spelling, byte_token};
use crate::tokenizer::TokenFamily;
use tokenizers::Model;

/// The source tokenizer, ready to spell target tokens.
pub struct Speller<'t> {
    family: TokenFamily,
    tokenizer: &'t tokenizers::Tokenizer,
    unk: Option<u32>,
}

/// One piece of a spelled word: text for the model to split, or a byte-fallback token.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Byte(u8),
}

impl<'t> Speller<'t> {
    /// The speller of `source` with its tokenizer, as loaded when `source` was read (the
    /// source tokenizer is parsed once per run).
    pub fn new(source: &Vocab, tokenizer: &'t tokenizers::Tokenizer) -> Speller<'t> {
        let unk = source.special.get(&SpecialRole::Unk).copied().or_else(|| {
            let model = tokenizer.get_model();
            ["<unk>", "[UNK]"].iter().find_map(|t| model.token_to_id(t))
        });
        Speller {
            family: source.family.clone(),
            tokenizer,
            unk,
        }
    }

    /// The source ids that spell `form`, in order; `None` when the source family cannot write
    /// it (an unknown family, bytes SentencePiece without byte fallback cannot hold) or it
    /// splits into nothing but unknown tokens.
    pub fn spell(&self, form: &CanonicalToken) -> Option<Vec<u32>> {
        let model = self.tokenizer.get_model();
        let mut ids = Vec::new();
        for piece in self.pieces(form)? {
            match piece {
                Piece::Byte(b) => ids.push(model.token_to_id(&byte_token(b))?),
                Piece::Text(text) => {
                    let tokens = model.tokenize(&text).ok()?;
                    ids.extend(tokens.iter().map(|t| t.id));
                }
            }
        }
        ids.retain(|&id| Some(id) != self.unk);
        (!ids.is_empty()).then_some(ids)
    }

    /// `form` written in the source family's spelling.
    fn pieces(&self, form: &CanonicalToken) -> Option<Vec<Piece>> {
        let mut text = Vec::with_capacity(form.bytes.len() + 1);
        if form.word_start {
            text.push(b' ');
        }
        text.extend_from_slice(&form.bytes);
        match &self.family {
            TokenFamily::ByteLevel => Some(vec![Piece::Text(byte_level_spelling(&text))]),
            TokenFamily::SentencePiece {
                replacement,
                byte_fallback,
            } => {
                let mut pieces = Vec::new();
                for chunk in text.utf8_chunks() {
                    let valid = chunk.valid();
                    if !valid.is_empty() {
                        let spelled = valid.replace(' ', &replacement.to_string());
                        pieces.push(Piece::Text(spelled));
                    }
                    for &b in chunk.invalid() {
                        if !byte_fallback {
                            return None;
                        }
                        pieces.push(Piece::Byte(b));
                    }
                }
                Some(pieces)
            }
            TokenFamily::WordPiece { .. } => {
                let word = std::str::from_utf8(&form.bytes).ok()?;
                Some(vec![Piece::Text(word.to_string())])
            }
            TokenFamily::Unknown { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Writes `tokenizer.json` of a BPE model (`vocab`, `merges`) with `extra` top-level keys
    /// and reads it as a [`Vocab`], with the tokenizer loaded.
    fn bpe(
        dir: &std::path::Path,
        vocab: serde_json::Value,
        merges: &[&str],
        extra: serde_json::Value,
    ) -> (Vocab, crate::tokenizer::Loaded) {
        let mut tj = json!({
            "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
            "normalizer": null, "pre_tokenizer": null, "post_processor": null, "decoder": null,
            "model": {"type": "BPE", "dropout": null, "unk_token": null,
                      "continuing_subword_prefix": null, "end_of_word_suffix": null,
                      "fuse_unk": false, "byte_fallback": false, "vocab": vocab, "merges": merges}
        });
        for (k, v) in extra.as_object().unwrap() {
            if k == "byte_fallback" {
                tj["model"]["byte_fallback"] = v.clone();
            } else {
                tj[k] = v.clone();
            }
        }
        std::fs::write(dir.join("tokenizer.json"), tj.to_string()).unwrap();
        let loaded = crate::tokenizer::read(dir).unwrap();
        (Vocab::from_loaded(dir, &loaded, None).unwrap(), loaded)
    }

    fn form(text: &[u8], word_start: bool) -> CanonicalToken {
        CanonicalToken {
            bytes: text.to_vec(),
            word_start,
        }
    }

    #[test]
    fn byte_level_source_spells_words_as_its_model_splits_them() {
        let dir = tempfile::tempdir().unwrap();
        let (v, loaded) = bpe(
            dir.path(),
            json!({"h": 0, "e": 1, "l": 2, "o": 3, "Ġ": 4, "Ġh": 5, "Ġhe": 6, "ll": 7, "Ã": 8, "¼": 9}),
            &["Ġ h", "Ġh e", "l l"],
            json!({"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
                   "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true}}),
        );
        assert_eq!(v.family, TokenFamily::ByteLevel);
        let s = Speller::new(&v, &loaded.tokenizer);
        // " hello" = Ġhe + ll + o; "hello" inside a word = h e ll o.
        assert_eq!(s.spell(&form(b"hello", true)), Some(vec![6, 7, 3]));
        assert_eq!(s.spell(&form(b"hello", false)), Some(vec![0, 1, 7, 3]));
        // "ü" is the bytes C3 BC: Ã and ¼ in GPT-2's table; a lone byte is one symbol too.
        assert_eq!(s.spell(&form("ü".as_bytes(), false)), Some(vec![8, 9]));
        assert_eq!(s.spell(&form(&[0xC3], false)), Some(vec![8]));
    }

    #[test]
    fn sentencepiece_source_uses_byte_fallback_for_lone_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (v, loaded) = bpe(
            dir.path(),
            json!({"<unk>": 0, "<0xE2>": 1, "<0xC3>": 2, "<0xA9>": 3, "▁": 4, "a": 5, "▁a": 6, "b": 7}),
            &["▁ a"],
            json!({"byte_fallback": true,
                   "decoder": {"type": "Sequence", "decoders": [
                       {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
                       {"type": "ByteFallback"}]}}),
        );
        assert!(matches!(
            v.family,
            TokenFamily::SentencePiece {
                byte_fallback: true,
                ..
            }
        ));
        let s = Speller::new(&v, &loaded.tokenizer);
        assert_eq!(s.spell(&form(b"ab", true)), Some(vec![6, 7]));
        // A lone 0xE2 (the first byte of a 3-byte character) is <0xE2>.
        assert_eq!(s.spell(&form(&[0xE2], false)), Some(vec![1]));
        // "é" is not in the vocabulary: the model falls back to its bytes.
        assert_eq!(s.spell(&form("é".as_bytes(), false)), Some(vec![2, 3]));
    }
}
