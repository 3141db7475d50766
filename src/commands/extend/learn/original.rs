//! The tokenizer being extended: its JSON, the tokenizers crate's view of it (dropout, padding
//! and truncation off), its family, the tokens it already has and the first free id.

use crate::error::{Error, Result};
use crate::tokenizer::keep::has_byte_level;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// The tokenizer families `extend` can grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// BPE over the 256-character byte alphabet (GPT-2, Llama 3, Qwen).
    ByteLevelBpe,
    /// BPE over characters with byte fallback, words marked by `▁` (Llama 2, Mistral, Gemma).
    SentencePieceBpe,
    /// SentencePiece unigram (T5, XLM-R).
    Unigram,
    /// Greedy longest-prefix subwords (BERT).
    WordPiece,
}

impl Family {
    /// The family's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Family::ByteLevelBpe => "byte-level BPE",
            Family::SentencePieceBpe => "SentencePiece BPE",
            Family::Unigram => "Unigram",
            Family::WordPiece => "WordPiece",
        }
    }
}

/// The SentencePiece word marker.
pub const SPACE_MARKER: char = '▁';

/// A tokenizer.json read for extension.
pub struct Original {
    /// Where it was read from.
    pub path: PathBuf,
    /// The whole JSON object, as read.
    pub root: Map<String, Value>,
    /// The tokenizer (dropout, padding and truncation off).
    pub tokenizer: tokenizers::Tokenizer,
    /// Its family.
    pub family: Family,
    /// The model vocabulary: token → id.
    pub vocab: HashMap<String, u32>,
    /// Model vocabulary and added-token contents: strings a new token may not take.
    pub known: HashSet<String>,
    /// Largest existing id + 1 (model vocabulary and added tokens).
    pub first_new_id: u32,
    /// WordPiece `continuing_subword_prefix` (`##`).
    pub prefix: String,
    /// Added tokens outside the model vocabulary, with their ids.
    pub added_outside: Vec<(String, u32)>,
}

impl Original {
    /// Reads `path` and checks that its family can be extended.
    pub fn read(path: &Path) -> Result<Original> {
        let root = crate::json::read_json_object(
            path,
            "extend needs a fast tokenizer: save one with AutoTokenizer.from_pretrained(...).save_pretrained(DIR)",
        )?;
        let bad = |msg: String| Error::bad_file(path, msg);
        let model = root
            .get("model")
            .and_then(Value::as_object)
            .ok_or_else(|| bad("no `model` object; restore the original file".into()))?;
        let family = family(&root, model, &bad)?;
        let vocab = model_vocab(family, model, &bad)?;
        let mut known: HashSet<String> = vocab.keys().cloned().collect();
        let mut largest = vocab.values().copied().max();
        let mut added_outside = Vec::new();
        let taken: HashSet<u32> = vocab.values().copied().collect();
        for t in root
            .get("added_tokens")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let content = t.get("content").and_then(Value::as_str);
            let id = t.get("id").and_then(Value::as_u64).map(|i| i as u32);
            let (Some(content), Some(id)) = (content, id) else {
                return Err(bad(
                    "an `added_tokens` entry has no content or id; restore the original file"
                        .into(),
                ));
            };
            known.insert(content.to_string());
            largest = largest.max(Some(id));
            if !vocab.contains_key(content) {
                if taken.contains(&id) {
                    return Err(bad(format!(
                        "added token {content:?} has id {id}, which the model vocabulary gives another token; restore the original file"
                    )));
                }
                added_outside.push((content.to_string(), id));
            }
        }
        let first_new_id = largest.map_or(0, |l| l + 1);
        if family == Family::Unigram && first_new_id as usize != vocab.len() {
            return Err(bad(format!(
                "a Unigram tokenizer whose added tokens lie beyond its {} pieces (largest id {}) cannot take new pieces after them; extend is refused for this tokenizer",
                vocab.len(),
                first_new_id - 1
            )));
        }
        let prefix = model
            .get("continuing_subword_prefix")
            .and_then(Value::as_str)
            .unwrap_or("##")
            .to_string();
        let tokenizer = load_for_counting(path, &root)?;
        Ok(Original {
            path: path.to_path_buf(),
            root,
            tokenizer,
            family,
            vocab,
            known,
            first_new_id,
            prefix,
            added_outside,
        })
    }

    /// The model of the tokenizer.
    pub fn model(&self) -> &tokenizers::ModelWrapper {
        self.tokenizer.get_model()
    }

    /// The model's unknown token, where it has one.
    pub fn unk_id(&self) -> Option<u32> {
        let model = self.root.get("model")?;
        match self.family {
            Family::Unigram => model.get("unk_id")?.as_u64().map(|i| i as u32),
            _ => self.vocab.get(model.get("unk_token")?.as_str()?).copied(),
        }
    }

    /// The text a vocabulary entry stands for (byte-level characters decoded, the space marker
    /// as a space, the WordPiece continuation prefix removed).
    pub fn text_of(&self, content: &str) -> String {
        match self.family {
            Family::ByteLevelBpe => {
                let bytes: Vec<u8> = content.chars().filter_map(byte_of_char).collect();
                String::from_utf8_lossy(&bytes).into_owned()
            }
            Family::SentencePieceBpe | Family::Unigram => content.replace(SPACE_MARKER, " "),
            Family::WordPiece => content
                .strip_prefix(self.prefix.as_str())
                .unwrap_or(content)
                .to_string(),
        }
    }
}

/// The byte a byte-level BPE character stands for.
fn byte_of_char(c: char) -> Option<u8> {
    use std::sync::OnceLock;
    static TABLE: OnceLock<HashMap<char, u8>> = OnceLock::new();
    TABLE
        .get_or_init(|| {
            // GPT-2's table: printable bytes map to themselves, the others to 256 + n in order.
            let mut map = HashMap::new();
            let mut n = 0u32;
            for b in 0..=255u8 {
                let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
                let c = if printable {
                    char::from(b)
                } else {
                    n += 1;
                    char::from_u32(255 + n).unwrap_or('\u{0}')
                };
                map.insert(c, b);
            }
            map
        })
        .get(&c)
        .copied()
}

/// The family of a tokenizer, or a one-line refusal naming it.
fn family(
    root: &Map<String, Value>,
    model: &Map<String, Value>,
    bad: &dyn Fn(String) -> Error,
) -> Result<Family> {
    let ty = model.get("type").and_then(Value::as_str);
    let ty = ty.or(model.contains_key("merges").then_some("BPE"));
    match ty {
        Some("BPE") => {
            for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
                if let Some(p) = model.get(key).and_then(Value::as_str) {
                    if !p.is_empty() {
                        return Err(bad(format!(
                            "a BPE tokenizer with a {key} ({p:?}) is not supported by extend (it grows byte-level BPE, SentencePiece BPE with byte fallback, Unigram and WordPiece tokenizers)"
                        )));
                    }
                }
            }
            if root.get("pre_tokenizer").is_some_and(has_byte_level) {
                Ok(Family::ByteLevelBpe)
            } else if model.get("byte_fallback").and_then(Value::as_bool) == Some(true) {
                Ok(Family::SentencePieceBpe)
            } else {
                Err(bad("a BPE tokenizer with neither a byte-level alphabet nor byte fallback is not supported by extend (new characters could not be written); it grows byte-level BPE, SentencePiece BPE with byte fallback, Unigram and WordPiece tokenizers".into()))
            }
        }
        Some("Unigram") => Ok(Family::Unigram),
        Some("WordPiece") => Ok(Family::WordPiece),
        Some(other) => Err(bad(format!(
            "model type `{other}` is not supported by extend (a whole-word or unknown model has no subwords to learn into); it grows byte-level BPE, SentencePiece BPE, Unigram and WordPiece tokenizers"
        ))),
        None => Err(bad(
            "no `model.type`; restore the original file (extend grows BPE, Unigram and WordPiece tokenizers)".into(),
        )),
    }
}

/// `model.vocab` as token → id (Unigram: the piece list, ids by position).
fn model_vocab(
    family: Family,
    model: &Map<String, Value>,
    bad: &dyn Fn(String) -> Error,
) -> Result<HashMap<String, u32>> {
    let missing = || {
        bad("the tokenizer has no model vocabulary (`model.vocab`); restore the original tokenizer.json".into())
    };
    match (family, model.get("vocab")) {
        (Family::Unigram, Some(Value::Array(pieces))) if !pieces.is_empty() => pieces
            .iter()
            .enumerate()
            .map(|(i, p)| {
                p.get(0)
                    .and_then(Value::as_str)
                    .map(|t| (t.to_string(), i as u32))
                    .ok_or_else(|| {
                        bad(format!(
                            "Unigram piece {i} is not [piece, score]; restore the original file"
                        ))
                    })
            })
            .collect(),
        (Family::Unigram, _) => Err(missing()),
        (_, Some(Value::Object(v))) if !v.is_empty() => v
            .iter()
            .map(|(t, id)| {
                id.as_u64().map(|i| (t.clone(), i as u32)).ok_or_else(|| {
                    bad(format!(
                        "vocabulary entry {t:?} has no integer id; restore the original file"
                    ))
                })
            })
            .collect(),
        _ => Err(missing()),
    }
}

/// The tokenizer as the tokenizers crate loads it, with dropout, padding and truncation off.
pub fn load_for_counting(path: &Path, root: &Map<String, Value>) -> Result<tokenizers::Tokenizer> {
    let mut root = root.clone();
    if let Some(Value::Object(m)) = root.get_mut("model") {
        if m.contains_key("dropout") {
            m.insert("dropout".into(), Value::Null);
        }
    }
    root.insert("padding".into(), Value::Null);
    root.insert("truncation".into(), Value::Null);
    crate::tokenizer::load::from_json(path, &Value::Object(root))
}
