//! `tokenizer.json` read as JSON, for the commands that rewrite it (`trim` today, `extend`
//! next): [`TokenizerJson`] checks the structure once and answers what the model section holds
//! (type, vocabulary in id order, BPE merges, byte fallback, unknown token) and which tokens
//! the file names elsewhere (`added_tokens`, post-processor, padding). Supported models: BPE
//! (merges as `"a b"` strings or `["a", "b"]` pairs), WordPiece, WordLevel and Unigram.
//!
//! A command that edits the file changes [`TokenizerJson::root`] (or a copy), writes it with
//! [`super::write::to_pretty`] (deterministic: vocabulary in id order) and, to ask the edited
//! file anything, reads it again with [`TokenizerJson::from_root`]; [`super::load::from_json`]
//! checks that the `tokenizers` crate loads it.

use super::family::{TokenFamily, TokenizerHeader};
use super::load::from_json;
use crate::error::{Error, Result};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// The model type of a tokenizer.json.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ModelKind {
    /// Byte-pair encoding.
    #[serde(rename = "BPE")]
    Bpe,
    /// Greedy longest-prefix subwords (BERT).
    WordPiece,
    /// Whole-word lookup.
    WordLevel,
    /// SentencePiece unigram language model.
    Unigram,
}

impl ModelKind {
    /// The `model.type` string of tokenizer.json.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Bpe => "BPE",
            ModelKind::WordPiece => "WordPiece",
            ModelKind::WordLevel => "WordLevel",
            ModelKind::Unigram => "Unigram",
        }
    }
}

/// A parsed tokenizer.json with the facts trimming needs.
#[derive(Debug, Clone)]
pub struct TokenizerJson {
    /// Where it was read from.
    pub path: PathBuf,
    /// The whole JSON object.
    pub root: Map<String, Value>,
    /// Model type.
    pub kind: ModelKind,
    /// Tokens of the model's own vocabulary (not the added tokens).
    pub(super) model_vocab: HashSet<String>,
    /// BPE merges, in rank order.
    pub(super) merges: Vec<(String, String)>,
    /// Whether the merges were written as `"a b"` strings (else pairs).
    pub(super) merges_as_strings: bool,
    /// BPE: result token → indices of the merges producing it.
    pub(super) produced_by: HashMap<String, Vec<usize>>,
    /// `continuing_subword_prefix` (BPE, WordPiece).
    pub(super) prefix: String,
    /// WordPiece `max_input_chars_per_word`.
    pub(super) max_chars_per_word: usize,
}

/// One entry of `added_tokens`: text matched before the model runs, with its id.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct AddedToken {
    /// Its id.
    pub id: u64,
    /// Its text.
    pub content: String,
    /// Whether it is a special token (skipped when decoding).
    #[serde(default)]
    pub special: bool,
    /// Whether it only matches a whole word.
    #[serde(default)]
    pub single_word: bool,
    /// Whether it takes the whitespace on its left.
    #[serde(default)]
    pub lstrip: bool,
    /// Whether it takes the whitespace on its right.
    #[serde(default)]
    pub rstrip: bool,
    /// Whether it matches the normalized text (else the raw text).
    #[serde(default)]
    pub normalized: bool,
}

impl TokenizerJson {
    /// Reads and checks `path`.
    pub fn read(path: &Path) -> Result<TokenizerJson> {
        let root = crate::json::read_json_object(path, super::load::MISSING_FIX)?;
        Self::from_root(path, root)
    }

    /// Checks an already parsed tokenizer.json (`path` is used in messages).
    pub fn from_root(path: &Path, root: Map<String, Value>) -> Result<TokenizerJson> {
        let bad = |msg: String| Error::bad_file(path, msg);
        let model = root
            .get("model")
            .and_then(Value::as_object)
            .ok_or_else(|| bad("no `model` object; restore the original file".into()))?;
        let kind = model_kind(model, &bad)?;
        let model_vocab = model_vocab(kind, model, &bad)?;
        let prefix = model
            .get("continuing_subword_prefix")
            .and_then(Value::as_str)
            .unwrap_or(if kind == ModelKind::WordPiece {
                "##"
            } else {
                ""
            })
            .to_string();
        let (merges, merges_as_strings) = if kind == ModelKind::Bpe {
            read_merges(model, &bad)?
        } else {
            (Vec::new(), false)
        };
        let max_chars_per_word = model
            .get("max_input_chars_per_word")
            .and_then(Value::as_u64)
            .map_or(100, |n| n as usize);
        let mut tj = TokenizerJson {
            path: path.to_path_buf(),
            root,
            kind,
            model_vocab,
            merges,
            merges_as_strings,
            produced_by: HashMap::new(),
            prefix,
            max_chars_per_word,
        };
        for (i, (a, b)) in tj.merges.iter().enumerate() {
            let result = tj.merge_result(a, b);
            tj.produced_by.entry(result).or_default().push(i);
        }
        Ok(tj)
    }

    pub(super) fn model(&self) -> &Map<String, Value> {
        // Checked in `from_root`.
        self.root
            .get("model")
            .and_then(Value::as_object)
            .expect("model object checked on read")
    }

    /// The token a BPE merge produces (the tokenizers crate strips the continuing-subword
    /// prefix from the right part).
    pub(super) fn merge_result(&self, a: &str, b: &str) -> String {
        let tail = b.get(self.prefix.len()..).unwrap_or("");
        let tail = if self.prefix.is_empty() { b } else { tail };
        format!("{a}{tail}")
    }

    /// Number of BPE merges.
    pub fn merge_count(&self) -> usize {
        self.merges.len()
    }

    /// Whether `token` is in the model's own vocabulary.
    pub fn in_model_vocab(&self, token: &str) -> bool {
        self.model_vocab.contains(token)
    }

    /// The model's own vocabulary (not the added tokens) with its ids, ascending by id
    /// (Unigram: a piece's id is its position).
    pub fn model_vocab_by_id(&self) -> Vec<(String, u64)> {
        model_vocab_by_id(&self.root)
    }

    /// BPE merges in rank order (empty for the other models).
    pub fn merges(&self) -> &[(String, String)] {
        &self.merges
    }

    /// Whether the BPE merges are written as `"a b"` strings (else `["a", "b"]` pairs).
    pub fn merges_as_strings(&self) -> bool {
        self.merges_as_strings
    }

    /// `model.byte_fallback`: whether bytes without a token become `<0xHH>` tokens.
    pub fn byte_fallback(&self) -> bool {
        self.model().get("byte_fallback").and_then(Value::as_bool) == Some(true)
    }

    /// The model's `unk_token` when it has one (BPE, WordPiece, WordLevel).
    pub fn unk_token(&self) -> Option<String> {
        self.model().get("unk_token")?.as_str().map(str::to_owned)
    }

    /// Unigram: the piece at `unk_id`.
    pub fn unigram_unk(&self) -> Option<String> {
        if self.kind != ModelKind::Unigram {
            return None;
        }
        let model = self.model();
        let id = model.get("unk_id")?.as_u64()?;
        let piece = model.get("vocab")?.as_array()?.get(id as usize)?.get(0)?;
        piece.as_str().map(str::to_owned)
    }

    /// The unknown token, whatever the model type: `unk_token`, else Unigram's `unk_id` piece.
    pub fn unk(&self) -> Option<String> {
        self.unk_token().or_else(|| self.unigram_unk())
    }

    /// How the tokenizer spells its tokens, from the same header [`crate::tokenizer::read`]
    /// detects it from.
    pub fn family(&self) -> TokenFamily {
        TokenFamily::from_header(TokenizerHeader::from_root(&self.root))
    }

    /// The continuing-subword prefix (`##` for WordPiece by default; BPE optionally).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Every entry of `added_tokens` that reads as one (an id and a content), in file order.
    pub fn added_token_entries(&self) -> Vec<AddedToken> {
        let list = self.root.get("added_tokens").and_then(Value::as_array);
        (list.into_iter().flatten())
            .filter_map(|t| AddedToken::deserialize(t).ok())
            .collect()
    }

    /// Contents of every entry of `added_tokens`.
    pub fn added_tokens(&self) -> Vec<String> {
        self.root
            .get("added_tokens")
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(|t| t.get("content")?.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Tokens the tokenizer itself refers to by name: the model's unknown token, the
    /// post-processor's special tokens and the padding token.
    pub fn referenced_tokens(&self) -> Vec<String> {
        let mut out = Vec::new();
        out.extend(self.unk_token());
        out.extend(self.unigram_unk());
        if let Some(pp) = self.root.get("post_processor") {
            processor_tokens(pp, &mut out);
        }
        if let Some(t) = self
            .root
            .get("padding")
            .and_then(|p| p.get("pad_token"))
            .and_then(Value::as_str)
        {
            out.push(t.to_string());
        }
        out
    }

    /// The tokenizer to count and compare with: this file with BPE dropout off (so counting is
    /// deterministic), padding and truncation off (so every line is counted whole).
    pub fn load_for_counting(&self) -> Result<tokenizers::Tokenizer> {
        let mut root = self.root.clone();
        if let Some(Value::Object(m)) = root.get_mut("model") {
            if m.contains_key("dropout") {
                m.insert("dropout".into(), Value::Null);
            }
        }
        root.insert("padding".into(), Value::Null);
        root.insert("truncation".into(), Value::Null);
        from_json(&self.path, &Value::Object(root))
    }
}

/// Model vocabulary tokens of a tokenizer.json object with their ids, ascending by id.
pub fn model_vocab_by_id(root: &Map<String, Value>) -> Vec<(String, u64)> {
    let model = root.get("model");
    let mut v: Vec<(String, u64)> = match model.and_then(|m| m.get("vocab")) {
        Some(Value::Object(m)) => m
            .iter()
            .filter_map(|(t, id)| Some((t.clone(), id.as_u64()?)))
            .collect(),
        Some(Value::Array(pieces)) => pieces
            .iter()
            .enumerate()
            .filter_map(|(i, p)| Some((p.get(0)?.as_str()?.to_string(), i as u64)))
            .collect(),
        _ => Vec::new(),
    };
    v.sort_by_key(|p| p.1);
    v
}

/// Token strings a post-processor inserts.
fn processor_tokens(pp: &Value, out: &mut Vec<String>) {
    match pp.get("type").and_then(Value::as_str) {
        Some("TemplateProcessing") => {
            if let Some(specials) = pp.get("special_tokens").and_then(Value::as_object) {
                for s in specials.values() {
                    if let Some(tokens) = s.get("tokens").and_then(Value::as_array) {
                        out.extend(tokens.iter().filter_map(Value::as_str).map(str::to_owned));
                    }
                }
            }
        }
        Some("BertProcessing") | Some("RobertaProcessing") => {
            for key in ["sep", "cls"] {
                if let Some(t) = pp.get(key).and_then(|p| p.get(0)).and_then(Value::as_str) {
                    out.push(t.to_string());
                }
            }
        }
        Some("Sequence") => {
            for p in pp
                .get("processors")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                processor_tokens(p, out);
            }
        }
        _ => {}
    }
}

/// The tokenizer model's type (`model.type`; old BPE files omit it).
fn model_kind(model: &Map<String, Value>, bad: &dyn Fn(String) -> Error) -> Result<ModelKind> {
    let ty = model.get("type").and_then(Value::as_str);
    Ok(match ty {
        Some("BPE") => ModelKind::Bpe,
        Some("WordPiece") => ModelKind::WordPiece,
        Some("WordLevel") => ModelKind::WordLevel,
        Some("Unigram") => ModelKind::Unigram,
        // Old files omit the type; BPE is the only model with merges.
        None if model.contains_key("merges") => ModelKind::Bpe,
        other => {
            return Err(bad(format!(
                "model type {} is not supported; trim handles BPE, WordPiece, WordLevel and Unigram tokenizers",
                other.map_or("(missing)".to_string(), |t| format!("`{t}`"))
            )))
        }
    })
}

/// The token strings of `model.vocab` (Unigram: a list of [piece, score]; else token → id).
fn model_vocab(
    kind: ModelKind,
    model: &Map<String, Value>,
    bad: &dyn Fn(String) -> Error,
) -> Result<HashSet<String>> {
    match (kind, model.get("vocab")) {
        (ModelKind::Unigram, Some(Value::Array(pieces))) => pieces
            .iter()
            .map(|p| {
                p.get(0)
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| bad("a Unigram `model.vocab` entry is not [piece, score]; restore the original file".into()))
            })
            .collect::<Result<_>>(),
        (ModelKind::Unigram, _) => Err(bad(
            "Unigram `model.vocab` is not a list; restore the original file".into(),
        )),
        (_, Some(Value::Object(v))) => Ok(v.keys().cloned().collect()),
        _ => Err(bad(
            "`model.vocab` is not an object of token → id; restore the original file".into(),
        )),
    }
}

/// BPE `model.merges` as pairs, and whether they were written as `"a b"` strings.
fn read_merges(
    model: &Map<String, Value>,
    bad: &dyn Fn(String) -> Error,
) -> Result<(Vec<(String, String)>, bool)> {
    let list = match model.get("merges") {
        Some(Value::Array(l)) => l.as_slice(),
        None | Some(Value::Null) => &[],
        Some(_) => {
            return Err(bad(
                "`model.merges` is not a list; restore the original file".into(),
            ))
        }
    };
    let mut merges = Vec::new();
    let mut merges_as_strings = false;
    for (i, m) in list.iter().enumerate() {
        let pair = match m {
            Value::String(s) => {
                merges_as_strings = true;
                let mut it = s.split(' ');
                match (it.next(), it.next(), it.next()) {
                    (Some(a), Some(b), None) => Some((a.to_string(), b.to_string())),
                    _ => None,
                }
            }
            Value::Array(p) => match p.as_slice() {
                [Value::String(a), Value::String(b)] => Some((a.clone(), b.clone())),
                _ => None,
            },
            _ => None,
        };
        let pair = pair.ok_or_else(|| {
            bad(format!(
                "merge {i} is neither \"a b\" nor [\"a\", \"b\"]; restore the original file"
            ))
        })?;
        merges.push(pair);
    }
    Ok((merges, merges_as_strings))
}

/// A checked tokenizer.json from a JSON object (tests of this module and its siblings).
#[cfg(test)]
pub(super) fn test_json(v: Value) -> TokenizerJson {
    let Value::Object(root) = v else {
        panic!("a tokenizer.json is an object")
    };
    TokenizerJson::from_root(Path::new("tokenizer.json"), root).unwrap()
}

#[cfg(test)]
mod tests {
    use super::test_json as tj;
    use super::*;
    use serde_json::json;

    #[test]
    fn model_section_and_added_tokens() {
        let t = tj(json!({
            "added_tokens": [{"id": 4, "content": "<s>", "single_word": false, "lstrip": false,
                              "rstrip": false, "normalized": false, "special": true},
                             {"content": "no id"}],
            "model": {"type": "BPE", "unk_token": "<unk>", "byte_fallback": true,
                      "vocab": {"b": 2, "<unk>": 0, "a": 1, "ab": 3}, "merges": [["a", "b"]]},
        }));
        assert_eq!(t.kind, ModelKind::Bpe);
        let by_id = t.model_vocab_by_id();
        let by_id: Vec<(&str, u64)> = by_id.iter().map(|(s, i)| (s.as_str(), *i)).collect();
        assert_eq!(by_id, vec![("<unk>", 0), ("a", 1), ("b", 2), ("ab", 3)]);
        assert_eq!(t.merges(), &[("a".to_string(), "b".to_string())]);
        assert!(!t.merges_as_strings());
        assert!(t.byte_fallback());
        assert_eq!(t.unk().as_deref(), Some("<unk>"));
        assert_eq!(t.prefix(), "");
        assert_eq!(
            t.family(),
            TokenFamily::Unknown {
                reason: "BPE model with neither a ByteLevel nor a Metaspace pre-tokenizer: no word-boundary marker".into()
            }
        );
        let added = t.added_token_entries();
        assert_eq!(
            added.len(),
            1,
            "the entry without an id is not an added token"
        );
        assert_eq!(
            (added[0].id, added[0].content.as_str(), added[0].special),
            (4, "<s>", true)
        );
        assert_eq!(t.added_tokens(), vec!["<s>", "no id"]);
    }

    #[test]
    fn unigram_unknown_is_the_piece_at_unk_id() {
        let t = tj(json!({"model": {"type": "Unigram", "unk_id": 1,
                                    "vocab": [["a", -1.0], ["<unk>", 0.0]]}}));
        assert_eq!(t.unk().as_deref(), Some("<unk>"));
        assert_eq!(t.unk_token(), None);
        let metaspace = json!({"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true});
        let mut with_pre = t.clone();
        with_pre.root.insert("pre_tokenizer".into(), metaspace);
        assert_eq!(
            with_pre.family(),
            TokenFamily::SentencePiece {
                replacement: '▁',
                byte_fallback: false
            }
        );
        assert!(!t.byte_fallback());
        let by_id = t.model_vocab_by_id();
        let by_id: Vec<(&str, u64)> = by_id.iter().map(|(s, i)| (s.as_str(), *i)).collect();
        assert_eq!(by_id, vec![("a", 0), ("<unk>", 1)]);
        let wp = tj(
            json!({"model": {"type": "WordPiece", "unk_token": "[UNK]", "vocab": {"[UNK]": 0}}}),
        );
        assert_eq!(
            (wp.kind, wp.prefix(), wp.unk().as_deref()),
            (ModelKind::WordPiece, "##", Some("[UNK]"))
        );
    }
}
