//! Canonical token forms: what a token stands for, independent of how its tokenizer spells it.
//!
//! Tokenizer families spell the same string differently. A token's canonical form is the pair
//! (**bytes** of text it stands for, **word start**): whether it begins a new word, i.e. the text
//! before it ends in a space (or, for WordPiece, any word boundary). `--match canonical` matches
//! tokens on that pair, so `Ġhello` (GPT-2), `▁hello` (Llama) and `hello` (BERT) are one token.
//!
//! The family of a tokenizer (and so how to read its spellings) is detected in
//! [`crate::tokenizer::family`]; the byte tables are [`crate::tokenizer::bytes`].
//!
//!
//! # Canonical form per family
//!
//! * **Byte-level BPE** (GPT-2, BLOOM, Llama 3, Qwen): every character is one byte through the
//!   GPT-2 `bytes_to_unicode` table (printable Latin-1 maps to itself, the other 68 bytes to
//!   U+0100..U+0143, e.g. space → `Ġ`, newline → `Ċ`). A character outside the table means the
//!   token has no canonical form.
//! * **SentencePiece** (Llama 2, Mistral, T5, XLM-R): with byte fallback, `<0xHH>` is the single
//!   byte `HH`; otherwise the replacement character (`▁`) is a space and the rest is UTF-8.
//!
//! For both, a leading space byte means word start and is dropped, so the form is just the
//! bytes with the first space read as a flag: `Ġhello` = `▁hello` = (`hello`, word start); a
//! bare token (`hello`, no marker) is not a word start; `Ġ`, `▁` and `<0x20>` are all
//! (empty, word start); `ĠĠ` = `▁▁` = (` `, word start).
//! * **WordPiece** (BERT): a token starting with the continuation prefix (`##`) is the rest, not
//!   a word start; any other token is a word start (WordPiece cannot tell a word after a space
//!   from one after punctuation, and the first is far more common).
//!
//! * **Added tokens that are text** (non-special `added_tokens` entries without `lstrip` /
//!   `rstrip`: Gemma's `"\n"`, `"\t"`, `"\n\n"`, `"▁▁"`, HTML tags) stand for their content,
//!   spelled as the decoder reads it: a SentencePiece replacement character is a space
//!   (`"▁▁"` = `ĠĠ` = (` `, word start)) whether or not the entry is `normalized`; in a
//!   byte-level tokenizer the content goes through the byte table when every character is in
//!   it and is raw UTF-8 otherwise (a literal `"\n"` or run of spaces), as the `ByteLevel`
//!   decoder does ([`TokenFamily::canonical_added`]).
//!
//! Tokens of an unknown family, special-role tokens, special added tokens and added tokens that
//! strip the whitespace around them (their text is ambiguous) have no canonical form: they
//! match only by exact string (or, for special tokens, by role). Unicode normalisation
//! (NFC/NFKC, lower-casing) is not undone: `Ü` and `ü` stay different.

use crate::tokenizer::bytes::{byte_level_byte, parse_byte_token};
use crate::tokenizer::family::TokenFamily;

impl TokenFamily {
    /// The canonical form of a model-vocabulary token of this family, if it has one.
    pub fn canonical(&self, token: &str) -> Option<CanonicalToken> {
        match self {
            TokenFamily::ByteLevel => {
                let bytes: Option<Vec<u8>> = token.chars().map(byte_level_byte).collect();
                CanonicalToken::from_text(bytes?)
            }
            TokenFamily::SentencePiece {
                replacement,
                byte_fallback,
            } => {
                let byte = parse_byte_token(token).filter(|_| *byte_fallback);
                CanonicalToken::from_text(match byte {
                    Some(b) => vec![b],
                    None => token.replace(*replacement, " ").into_bytes(),
                })
            }
            TokenFamily::WordPiece { prefix } => {
                match token
                    .strip_prefix(prefix.as_str())
                    .filter(|r| !r.is_empty())
                {
                    Some(rest) => Some(CanonicalToken {
                        bytes: rest.as_bytes().to_vec(),
                        word_start: false,
                    }),
                    None if token.is_empty() => None,
                    None => Some(CanonicalToken {
                        bytes: token.as_bytes().to_vec(),
                        word_start: true,
                    }),
                }
            }
            TokenFamily::Unknown { .. } => None,
        }
    }

    /// The canonical form of a non-special added token whose content is `content` (text the
    /// tokenizer matches before its model runs): the content as the decoder spells it out. Only
    /// byte-level BPE differs from [`TokenFamily::canonical`]: content with a character outside
    /// the byte table (a literal newline or space) is its raw UTF-8.
    pub fn canonical_added(&self, content: &str) -> Option<CanonicalToken> {
        match self {
            TokenFamily::ByteLevel => self
                .canonical(content)
                .or_else(|| CanonicalToken::from_text(content.as_bytes().to_vec())),
            _ => self.canonical(content),
        }
    }
}

/// A token as the text it stands for: its bytes and whether it starts a word.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CanonicalToken {
    /// The bytes of text (without the word-start space). May be partial UTF-8.
    pub bytes: Vec<u8>,
    /// Whether the token begins a word (follows a space).
    pub word_start: bool,
}

impl CanonicalToken {
    /// The form of a token that stands for `text`: a leading space is the word-start flag.
    /// `None` for empty text.
    fn from_text(mut text: Vec<u8>) -> Option<CanonicalToken> {
        let word_start = text.first() == Some(&b' ');
        if word_start {
            text.remove(0);
        } else if text.is_empty() {
            return None;
        }
        Some(CanonicalToken {
            bytes: text,
            word_start,
        })
    }

    /// Readable form: a leading space for a word start, then the text; bytes that are not UTF-8
    /// are written `\xHH`.
    pub fn text(&self) -> String {
        let mut out = String::new();
        if self.word_start {
            out.push(' ');
        }
        for chunk in self.bytes.utf8_chunks() {
            out.push_str(chunk.valid());
            for b in chunk.invalid() {
                out.push_str(&format!("\\x{b:02X}"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::bytes::byte_level_spelling;

    fn sp() -> TokenFamily {
        TokenFamily::SentencePiece {
            replacement: '▁',
            byte_fallback: true,
        }
    }

    fn ct(text: &str, word_start: bool) -> Option<CanonicalToken> {
        Some(CanonicalToken {
            bytes: text.as_bytes().to_vec(),
            word_start,
        })
    }

    #[test]
    fn byte_level_forms() {
        let f = TokenFamily::ByteLevel;
        assert_eq!(f.canonical("Ġhello"), ct("hello", true));
        assert_eq!(f.canonical("hello"), ct("hello", false));
        assert_eq!(f.canonical("Ġ"), ct("", true));
        assert_eq!(f.canonical("ĠĠ"), ct(" ", true));
        assert_eq!(f.canonical("Ċ"), ct("\n", false));
        assert_eq!(f.canonical("helloĠ"), ct("hello ", false));
        // "für" is c3 bc in UTF-8: Ã (0xC3) ¼ (0xBC).
        assert_eq!(f.canonical("ĠfÃ¼r"), ct("für", true));
        // A lone lead byte is partial UTF-8 but still a form.
        assert_eq!(
            f.canonical("Ã"),
            Some(CanonicalToken {
                bytes: vec![0xC3],
                word_start: false
            })
        );
        assert_eq!(f.canonical("Ã").unwrap().text(), "\\xC3");
        assert_eq!(f.canonical("ĠfÃ¼r").unwrap().text(), " für");
        assert_eq!(f.canonical("▁hello"), None, "not a byte-level character");
        assert_eq!(f.canonical(""), None);
    }

    #[test]
    fn sentencepiece_forms() {
        let f = sp();
        assert_eq!(f.canonical("▁hello"), ct("hello", true));
        assert_eq!(f.canonical("hello"), ct("hello", false));
        assert_eq!(f.canonical("▁"), ct("", true));
        assert_eq!(f.canonical("▁▁"), ct(" ", true));
        assert_eq!(f.canonical("a▁b"), ct("a b", false));
        assert_eq!(f.canonical("▁für"), ct("für", true));
        assert_eq!(f.canonical("<0x0A>"), ct("\n", false));
        assert_eq!(
            f.canonical("<0x20>"),
            ct("", true),
            "a lone space, as ▁ and Ġ"
        );
        assert_eq!(f.canonical("<0x20>"), TokenFamily::ByteLevel.canonical("Ġ"));
        assert_eq!(
            f.canonical("<0xC3>"),
            Some(CanonicalToken {
                bytes: vec![0xC3],
                word_start: false
            })
        );
        assert_eq!(f.canonical("<0xc3>").unwrap().bytes, vec![0xC3]);
        // Not byte tokens.
        assert_eq!(f.canonical("<0x0A0>"), ct("<0x0A0>", false));
        assert_eq!(f.canonical("<0xZZ>"), ct("<0xZZ>", false));
        let no_fallback = TokenFamily::SentencePiece {
            replacement: '▁',
            byte_fallback: false,
        };
        assert_eq!(no_fallback.canonical("<0x0A>"), ct("<0x0A>", false));
        // Same string in byte-level and SentencePiece spelling.
        for text in ["hello", "für", "naïve café", "\n", "日本"] {
            let bl = byte_level_spelling(format!(" {text}").as_bytes());
            let spm = format!("▁{}", text.replace(' ', "▁"));
            assert_eq!(
                TokenFamily::ByteLevel.canonical(&bl),
                f.canonical(&spm),
                "{bl} vs {spm}"
            );
        }
    }

    #[test]
    fn added_text_forms() {
        // Byte-level: raw text (a literal newline, spaces) is raw UTF-8; table spellings decode.
        let bl = TokenFamily::ByteLevel;
        assert_eq!(bl.canonical_added("\n"), ct("\n", false));
        assert_eq!(bl.canonical_added("   "), ct("  ", true));
        assert_eq!(bl.canonical_added("<think>"), ct("<think>", false));
        assert_eq!(bl.canonical_added("ĠĠ"), ct(" ", true));
        assert_eq!(bl.canonical_added(""), None);
        // SentencePiece (Gemma): "▁▁" is two spaces, "\n" and "\t" themselves.
        let f = sp();
        assert_eq!(f.canonical_added("▁▁"), ct(" ", true));
        assert_eq!(f.canonical_added("\n\n"), ct("\n\n", false));
        assert_eq!(f.canonical_added("\t"), ct("\t", false));
        assert_eq!(f.canonical_added("▁▁"), bl.canonical("ĠĠ"));
        assert_eq!(f.canonical_added("\n"), bl.canonical("Ċ"));
    }

    #[test]
    fn wordpiece_forms() {
        let f = TokenFamily::WordPiece {
            prefix: "##".into(),
        };
        assert_eq!(f.canonical("hello"), ct("hello", true));
        assert_eq!(f.canonical("##llo"), ct("llo", false));
        assert_eq!(f.canonical("##ü"), ct("ü", false));
        assert_eq!(f.canonical("##"), ct("##", true));
        assert_eq!(f.canonical("#"), ct("#", true));
        assert_eq!(f.canonical(""), None);
        // A WordPiece continuation is a bare byte-level token; a word a Ġ-token.
        assert_eq!(
            f.canonical("##llo"),
            TokenFamily::ByteLevel.canonical("llo")
        );
        assert_eq!(
            f.canonical("hello"),
            TokenFamily::ByteLevel.canonical("Ġhello")
        );
    }
}
