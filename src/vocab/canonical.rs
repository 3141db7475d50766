//! Canonical token forms: what a token stands for, independent of how its tokenizer spells it.
//!
//! Tokenizer families spell the same string differently. A token's canonical form is the pair
//! (**bytes** of text it stands for, **word start**): whether it begins a new word, i.e. the text
//! before it ends in a space (or, for WordPiece, any word boundary). `--match canonical` matches
//! tokens on that pair, so `Ġhello` (GPT-2), `▁hello` (Llama) and `hello` (BERT) are one token.
//!
//! # Detecting the family from `tokenizer.json`
//!
//! The rules, first match wins (a "component" is any object with a `type` anywhere inside the
//! `normalizer`, `pre_tokenizer` or `decoder`, so `Sequence`s of any depth are searched):
//!
//! 1. `model.type` is `WordPiece` → [`TokenFamily::WordPiece`] with the model's
//!    `continuing_subword_prefix` (default `##`).
//! 2. `model.type` is neither `BPE` nor `Unigram` (e.g. `WordLevel`) → unknown.
//! 3. A BPE `end_of_word_suffix` (CLIP's `</w>`) marks word *ends*, which this form does not
//!    express → unknown.
//! 4. A `ByteLevel` component in the pre-tokenizer, decoder or normalizer → byte-level BPE.
//! 5. A `Metaspace` component in the pre-tokenizer or decoder → SentencePiece with its
//!    `replacement` (default `▁`).
//! 6. A `Replace` normalizer from `" "` to one character `c`, or a `Replace` decoder from `c` to
//!    `" "` (Llama 2, Mistral, Gemma) → SentencePiece with replacement `c`.
//! 7. A BPE `continuing_subword_prefix` (BPE trained WordPiece-style) → WordPiece with it.
//! 8. Otherwise unknown: the tokens carry no word-boundary marker we can read.
//!
//! `model.type` may be absent in old files; it is then inferred from the keys the model has
//! (`merges` → BPE, `max_input_chars_per_word` → WordPiece, `unk_id` or a list `vocab` →
//! Unigram). SentencePiece byte fallback is on when `model.byte_fallback` is true or the decoder
//! has a `ByteFallback` component.
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

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{Map, Value};

/// The part of `tokenizer.json` that tells the family: the model's type and flags, and the
/// normalizer, pre-tokenizer and decoder (small). The vocabulary and merges are skipped unread.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TokenizerHeader {
    /// `model`, without its vocabulary.
    #[serde(default)]
    pub model: ModelHeader,
    /// `normalizer` (may be null).
    #[serde(default)]
    pub normalizer: Option<Value>,
    /// `pre_tokenizer` (may be null).
    #[serde(default)]
    pub pre_tokenizer: Option<Value>,
    /// `decoder` (may be null).
    #[serde(default)]
    pub decoder: Option<Value>,
}

/// The flags of `tokenizer.json`'s `model` that matter for canonical forms.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ModelHeader {
    /// `type`: `BPE`, `WordPiece`, `Unigram`, `WordLevel` (absent in some old files).
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// `byte_fallback` (BPE and Unigram).
    #[serde(default)]
    pub byte_fallback: Option<bool>,
    /// `continuing_subword_prefix` (WordPiece; BPE optionally).
    #[serde(default)]
    pub continuing_subword_prefix: Option<String>,
    /// `end_of_word_suffix` (BPE optionally).
    #[serde(default)]
    pub end_of_word_suffix: Option<String>,
    #[serde(default)]
    merges: Option<IgnoredAny>,
    #[serde(default)]
    max_input_chars_per_word: Option<IgnoredAny>,
    #[serde(default)]
    unk_id: Option<IgnoredAny>,
    #[serde(default)]
    vocab: Option<VocabShape>,
}

/// Whether `model.vocab` is a list (Unigram) or a map (the others), read without keeping it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VocabShape {
    List,
    Map,
}

impl<'de> Deserialize<'de> for VocabShape {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = VocabShape;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a vocabulary list or map")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<VocabShape, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(VocabShape::List)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<VocabShape, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(VocabShape::Map)
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl TokenizerHeader {
    /// Parses the header out of the text of a `tokenizer.json`.
    pub fn parse(json: &str) -> serde_json::Result<TokenizerHeader> {
        serde_json::from_str(json)
    }

    /// `model.type`, or the type its keys imply when the file leaves it out.
    pub fn model_type(&self) -> Option<&str> {
        let m = &self.model;
        if let Some(k) = m.kind.as_deref() {
            return Some(k);
        }
        if m.merges.is_some() {
            Some("BPE")
        } else if m.max_input_chars_per_word.is_some() {
            Some("WordPiece")
        } else if m.unk_id.is_some() || m.vocab == Some(VocabShape::List) {
            Some("Unigram")
        } else if m.vocab == Some(VocabShape::Map) {
            Some("WordLevel")
        } else {
            None
        }
    }
}

/// How a tokenizer spells its tokens (see the module docs for the detection rules).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "family", rename_all = "snake_case")]
pub enum TokenFamily {
    /// Byte-level BPE: each character is one byte via GPT-2's `bytes_to_unicode`; `Ġ` is a space.
    ByteLevel,
    /// SentencePiece: `replacement` (`▁`) is a space; `<0xHH>` is a byte when `byte_fallback`.
    #[serde(rename = "sentencepiece")]
    SentencePiece {
        /// The character that stands for a space.
        replacement: char,
        /// Whether `<0xHH>` tokens stand for single bytes.
        byte_fallback: bool,
    },
    /// WordPiece: a token with `prefix` continues a word; any other token starts one.
    #[serde(rename = "wordpiece")]
    WordPiece {
        /// The continuation prefix (`##`).
        prefix: String,
    },
    /// Not recognised: tokens have no canonical form.
    Unknown {
        /// Why the family could not be told.
        reason: String,
    },
}

impl std::fmt::Display for TokenFamily {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            TokenFamily::ByteLevel => write!(f, "byte-level BPE"),
            TokenFamily::SentencePiece {
                replacement,
                byte_fallback,
            } => write!(
                f,
                "SentencePiece ('{replacement}' = space{})",
                if *byte_fallback {
                    ", <0xHH> byte fallback"
                } else {
                    ""
                }
            ),
            TokenFamily::WordPiece { prefix } => {
                write!(f, "WordPiece ('{prefix}' = continuation)")
            }
            TokenFamily::Unknown { reason } => write!(f, "unknown family ({reason})"),
        }
    }
}

/// Every object with a string `type` inside `v` (itself included), depth first.
fn components(v: &Value) -> Vec<&Map<String, Value>> {
    fn walk<'a>(v: &'a Value, out: &mut Vec<&'a Map<String, Value>>) {
        match v {
            Value::Object(o) => {
                if o.get("type").is_some_and(Value::is_string) {
                    out.push(o);
                }
                for x in o.values() {
                    walk(x, out);
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, &mut out);
    out
}

fn of_type<'a>(
    v: Option<&'a Value>,
    kind: &'a str,
) -> impl Iterator<Item = &'a Map<String, Value>> + 'a {
    v.into_iter()
        .flat_map(components)
        .filter(move |o| o.get("type").and_then(Value::as_str) == Some(kind))
}

/// `o[key]` when it is a string of exactly one character.
fn one_char(o: &Map<String, Value>, key: &str) -> Option<char> {
    let s = o.get(key)?.as_str()?;
    let mut chars = s.chars();
    let c = chars.next()?;
    chars.next().is_none().then_some(c)
}

/// The string pattern of a `Replace` component (`{"pattern": {"String": s}}`).
fn replace_pattern(o: &Map<String, Value>) -> Option<&str> {
    o.get("pattern")?.get("String")?.as_str()
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

impl TokenFamily {
    /// Detects the family from a tokenizer.json header (rules in the module docs).
    pub fn detect(h: &TokenizerHeader) -> TokenFamily {
        let unknown = |reason: String| TokenFamily::Unknown { reason };
        let model_type = h.model_type();
        match model_type {
            Some("WordPiece") => {
                return TokenFamily::WordPiece {
                    prefix: non_empty(&h.model.continuing_subword_prefix)
                        .unwrap_or("##")
                        .to_string(),
                }
            }
            Some("BPE") | Some("Unigram") => {}
            Some(other) => return unknown(format!("model type {other}")),
            None => return unknown("tokenizer.json names no model type".into()),
        }
        if let Some(suffix) = non_empty(&h.model.end_of_word_suffix) {
            return unknown(format!(
                "end-of-word suffix {suffix:?} marks word ends, not word starts"
            ));
        }
        let (norm, pre, dec) = (
            h.normalizer.as_ref(),
            h.pre_tokenizer.as_ref(),
            h.decoder.as_ref(),
        );
        if [pre, dec, norm]
            .into_iter()
            .any(|v| of_type(v, "ByteLevel").next().is_some())
        {
            return TokenFamily::ByteLevel;
        }
        let byte_fallback =
            h.model.byte_fallback == Some(true) || of_type(dec, "ByteFallback").next().is_some();
        let metaspace = of_type(pre, "Metaspace")
            .chain(of_type(dec, "Metaspace"))
            .next()
            .map(|o| one_char(o, "replacement").unwrap_or('▁'));
        let replaced = || {
            of_type(norm, "Replace")
                .filter(|o| replace_pattern(o) == Some(" "))
                .find_map(|o| one_char(o, "content"))
                .or_else(|| {
                    of_type(dec, "Replace")
                        .filter(|o| o.get("content").and_then(Value::as_str) == Some(" "))
                        .find_map(|o| {
                            let p = replace_pattern(o)?;
                            let mut chars = p.chars();
                            let c = chars.next()?;
                            chars.next().is_none().then_some(c)
                        })
                })
        };
        if let Some(replacement) = metaspace.or_else(replaced) {
            return TokenFamily::SentencePiece {
                replacement,
                byte_fallback,
            };
        }
        if let Some(prefix) = non_empty(&h.model.continuing_subword_prefix) {
            return TokenFamily::WordPiece {
                prefix: prefix.to_string(),
            };
        }
        unknown(format!(
            "{} model with neither a ByteLevel nor a Metaspace pre-tokenizer: no word-boundary marker",
            model_type.unwrap_or("?")
        ))
    }

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
                let byte = byte_fallback_byte(token).filter(|_| *byte_fallback);
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

    /// Whether tokens of this family have canonical forms at all.
    pub fn is_known(&self) -> bool {
        !matches!(self, TokenFamily::Unknown { .. })
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

/// Whether GPT-2's `bytes_to_unicode` maps byte `b` to the character of the same code.
const fn byte_level_keeps(b: u8) -> bool {
    matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF)
}

/// The 68 bytes `bytes_to_unicode` moves to U+0100.., in order.
const BYTE_LEVEL_MOVED: [u8; 68] = {
    let mut t = [0u8; 68];
    let mut n = 0;
    let mut b = 0;
    while b < 256 {
        if !byte_level_keeps(b as u8) {
            t[n] = b as u8;
            n += 1;
        }
        b += 1;
    }
    t
};

/// The byte a byte-level BPE character stands for.
pub fn byte_level_byte(c: char) -> Option<u8> {
    let u = c as u32;
    if u < 256 && byte_level_keeps(u as u8) {
        return Some(u as u8);
    }
    let n = u.checked_sub(256)? as usize;
    BYTE_LEVEL_MOVED.get(n).copied()
}

/// The byte-level BPE spelling of `bytes` (GPT-2's `bytes_to_unicode`).
pub fn byte_level_spelling(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if byte_level_keeps(b) {
                b as char
            } else {
                let n = BYTE_LEVEL_MOVED.iter().position(|&m| m == b).unwrap_or(0);
                char::from_u32(256 + n as u32).unwrap_or('\u{FFFD}')
            }
        })
        .collect()
}

/// `HH` of a SentencePiece byte-fallback token `<0xHH>` (two hex digits).
fn byte_fallback_byte(token: &str) -> Option<u8> {
    let hex = token.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ct(text: &str, word_start: bool) -> Option<CanonicalToken> {
        Some(CanonicalToken {
            bytes: text.as_bytes().to_vec(),
            word_start,
        })
    }

    fn detect(v: Value) -> TokenFamily {
        TokenFamily::detect(&TokenizerHeader::parse(&v.to_string()).unwrap())
    }

    fn sp() -> TokenFamily {
        TokenFamily::SentencePiece {
            replacement: '▁',
            byte_fallback: true,
        }
    }

    #[test]
    fn byte_level_table_is_gpt2s() {
        // Every byte round-trips, the table is a bijection onto 256 distinct characters.
        let chars: Vec<char> = (0..=255u8)
            .map(|b| byte_level_spelling(&[b]).chars().next().unwrap())
            .collect();
        for (b, &c) in chars.iter().enumerate() {
            assert_eq!(byte_level_byte(c), Some(b as u8), "byte {b} via {c:?}");
        }
        let mut sorted = chars.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 256);
        // Well-known points of GPT-2's table.
        assert_eq!(chars[b' ' as usize], 'Ġ');
        assert_eq!(chars[b'\n' as usize], 'Ċ');
        assert_eq!(chars[b'\t' as usize], 'ĉ');
        assert_eq!(chars[0], 'Ā');
        assert_eq!(chars[0x7F], 'ġ');
        assert_eq!(chars[0xAD], 'Ń');
        assert_eq!(chars[b'A' as usize], 'A');
        assert_eq!(chars[0xE9], 'é');
        assert_eq!(byte_level_byte('Ņ'), None, "U+0145 is past the table");
        assert_eq!(byte_level_byte('▁'), None);
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

    #[test]
    fn detect_byte_level() {
        // GPT-2.
        let gpt2 = json!({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false},
            "decoder": {"type": "ByteLevel"}});
        assert_eq!(detect(gpt2), TokenFamily::ByteLevel);
        // Llama 3 / Qwen: Split then ByteLevel inside a Sequence.
        let llama3 = json!({"model": {"type": "BPE", "byte_fallback": false, "vocab": {}, "merges": []},
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": "\\s+"}, "behavior": "Isolated"},
                {"type": "ByteLevel", "use_regex": false}]},
            "decoder": null});
        assert_eq!(detect(llama3), TokenFamily::ByteLevel);
        // Old file without model.type.
        let untyped = json!({"model": {"vocab": {"a": 0}, "merges": ["a b"]},
            "decoder": {"type": "ByteLevel"}});
        assert_eq!(detect(untyped), TokenFamily::ByteLevel);
    }

    #[test]
    fn detect_sentencepiece() {
        // Metaspace pre-tokenizer (T5, XLM-R: Unigram, no byte fallback).
        let t5 = json!({"model": {"type": "Unigram", "unk_id": 2, "vocab": [["<pad>", 0.0]]},
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "WhitespaceSplit"},
                {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always"}]},
            "decoder": {"type": "Metaspace", "replacement": "▁"}});
        assert_eq!(
            detect(t5),
            TokenFamily::SentencePiece {
                replacement: '▁',
                byte_fallback: false
            }
        );
        // Llama 2 / Mistral: no pre-tokenizer, Replace normalizer, ByteFallback decoder.
        let llama2 = json!({"model": {"type": "BPE", "byte_fallback": true, "vocab": {}, "merges": []},
            "normalizer": {"type": "Sequence", "normalizers": [
                {"type": "Prepend", "prepend": "▁"},
                {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
            "pre_tokenizer": null,
            "decoder": {"type": "Sequence", "decoders": [
                {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
                {"type": "ByteFallback"}, {"type": "Fuse"},
                {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}});
        assert_eq!(detect(llama2), sp());
        // Gemma-like: only the decoder says which character is the space; byte fallback from
        // the decoder.
        let gemma = json!({"model": {"type": "BPE", "vocab": {}, "merges": []},
            "decoder": {"type": "Sequence", "decoders": [
                {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
                {"type": "ByteFallback"}]}});
        assert_eq!(detect(gemma), sp());
        // A Metaspace with another replacement character; untyped Unigram (vocab list).
        let custom = json!({"model": {"vocab": [["a", 0.0]]},
            "pre_tokenizer": {"type": "Metaspace", "replacement": "_", "add_prefix_space": true}});
        assert_eq!(
            detect(custom),
            TokenFamily::SentencePiece {
                replacement: '_',
                byte_fallback: false
            }
        );
    }

    #[test]
    fn detect_wordpiece_and_unknown() {
        let bert = json!({"model": {"type": "WordPiece", "unk_token": "[UNK]",
            "continuing_subword_prefix": "##", "max_input_chars_per_word": 100, "vocab": {}},
            "pre_tokenizer": {"type": "BertPreTokenizer"}, "decoder": {"type": "WordPiece", "prefix": "##"}});
        assert_eq!(
            detect(bert),
            TokenFamily::WordPiece {
                prefix: "##".into()
            }
        );
        let untyped = json!({"model": {"max_input_chars_per_word": 100, "vocab": {}}});
        assert_eq!(
            detect(untyped),
            TokenFamily::WordPiece {
                prefix: "##".into()
            }
        );
        let bpe_prefix = json!({"model": {"type": "BPE", "continuing_subword_prefix": "@@", "vocab": {}, "merges": []},
            "pre_tokenizer": {"type": "Whitespace"}});
        assert_eq!(
            detect(bpe_prefix),
            TokenFamily::WordPiece {
                prefix: "@@".into()
            }
        );
        let unknowns = [
            json!({"model": {"type": "WordLevel", "vocab": {}, "unk_token": "?"}}),
            json!({"model": {"type": "BPE", "vocab": {}, "merges": []},
                   "pre_tokenizer": {"type": "Whitespace"}}),
            // CLIP: byte-level, but word ends are marked, not starts.
            json!({"model": {"type": "BPE", "end_of_word_suffix": "</w>", "vocab": {}, "merges": []},
                   "pre_tokenizer": {"type": "ByteLevel"}}),
            json!({"version": "1.0"}),
        ];
        for u in unknowns {
            let f = detect(u.clone());
            assert!(!f.is_known(), "{u} detected as {f}");
            assert_eq!(f.canonical("hello"), None);
        }
    }
}
