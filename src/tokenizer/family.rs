//! Which family a tokenizer belongs to, read from `tokenizer.json`: how it spells its tokens
//! (byte-level BPE, SentencePiece, WordPiece), which decides what a token string stands for.
//! The forms themselves are `vocab::canonical`'s rules.
//!
//! # Detection
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

use crate::error::one_line;
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

    /// The header of an already parsed tokenizer.json object (nothing cloned).
    pub fn from_root(root: &Map<String, Value>) -> serde_json::Result<TokenizerHeader> {
        TokenizerHeader::deserialize(root)
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
    /// The family of a header as read, or unknown with the reason it did not read: the
    /// tokenizer may load all the same, and canonical matching is then off rather than the run
    /// failing.
    pub fn from_header(header: serde_json::Result<TokenizerHeader>) -> TokenFamily {
        match header {
            Ok(h) => TokenFamily::detect(&h),
            Err(e) => TokenFamily::Unknown {
                reason: format!("tokenizer.json header: {}", one_line(&e.to_string())),
            },
        }
    }

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

    /// Whether tokens of this family have canonical forms at all.
    pub fn is_known(&self) -> bool {
        !matches!(self, TokenFamily::Unknown { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        }
    }
}
