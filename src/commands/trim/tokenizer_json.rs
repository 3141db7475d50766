//! `tokenizer.json` edited as JSON: what a trimmed vocabulary must keep so the tokenizer still
//! works (merge closure, byte alphabet, tokens the post-processor and padding name), and the
//! edited file itself (vocabulary subset with compact ids, merges whose three tokens survive,
//! added-token, post-processor and padding ids renumbered).
//!
//! Supported models: BPE (merges as `"a b"` strings or `["a", "b"]` pairs), WordPiece,
//! WordLevel and Unigram. Why a subset tokenizes kept text the same way:
//! - BPE applies, at every step, the lowest-ranked merge among adjacent pairs. Every merge a
//!   kept word went through has its parts and result kept (the closure), so it survives, keeps
//!   its relative rank and is still the lowest of a subset: the same merges run in the same order.
//! - WordPiece takes the longest vocabulary prefix at every position. The tokens it took are
//!   kept, longer candidates were absent before and still are. A word that became `[UNK]`
//!   keeps the prefixes the greedy walk took before failing (see `wordpiece_path`).
//! - Unigram picks the best-scoring segmentation; the best one survives and the set of
//!   alternatives only shrinks. WordLevel looks whole words up.

use crate::error::{Error, Result};
use serde::ser::{Serialize, SerializeMap, Serializer};
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
    model_vocab: HashSet<String>,
    /// BPE merges, in rank order.
    merges: Vec<(String, String)>,
    /// Whether the merges were written as `"a b"` strings (else pairs).
    merges_as_strings: bool,
    /// BPE: result token → indices of the merges producing it.
    produced_by: HashMap<String, Vec<usize>>,
    /// `continuing_subword_prefix` (BPE, WordPiece).
    prefix: String,
    /// WordPiece `max_input_chars_per_word`.
    max_chars_per_word: usize,
}

/// What trimming changed in the tokenizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct EditCounts {
    /// BPE merges before.
    pub merges_before: usize,
    /// BPE merges kept.
    pub merges_after: usize,
}

impl TokenizerJson {
    /// Reads and checks `path`.
    pub fn read(path: &Path) -> Result<TokenizerJson> {
        let root = crate::model::json::read_json_object(
            path,
            "trim needs a fast tokenizer: save one with AutoTokenizer.from_pretrained(...).save_pretrained(DIR)",
        )?;
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

    fn model(&self) -> &Map<String, Value> {
        // Checked in `from_root`.
        self.root
            .get("model")
            .and_then(Value::as_object)
            .expect("model object checked on read")
    }

    /// The token a BPE merge produces (the tokenizers crate strips the continuing-subword
    /// prefix from the right part).
    fn merge_result(&self, a: &str, b: &str) -> String {
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
        let model = self.model();
        if let Some(unk) = model.get("unk_token").and_then(Value::as_str) {
            out.push(unk.to_string());
        }
        if self.kind == ModelKind::Unigram {
            if let (Some(id), Some(Value::Array(pieces))) = (
                model.get("unk_id").and_then(Value::as_u64),
                model.get("vocab"),
            ) {
                if let Some(p) = pieces
                    .get(id as usize)
                    .and_then(|p| p.get(0))
                    .and_then(Value::as_str)
                {
                    out.push(p.to_string());
                }
            }
        }
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

    /// Tokens that keep any text encodable: the 256 characters of a byte-level pre-tokenizer's
    /// alphabet and the `<0xNN>` tokens of byte fallback, where the vocabulary has them.
    pub fn byte_alphabet(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.root.get("pre_tokenizer").is_some_and(has_byte_level) {
            let mut chars: Vec<char> =
                tokenizers::pre_tokenizers::byte_level::ByteLevel::alphabet()
                    .into_iter()
                    .collect();
            chars.sort_unstable();
            out.extend(chars.into_iter().map(String::from));
        }
        if self.model().get("byte_fallback").and_then(Value::as_bool) == Some(true) {
            out.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
        }
        out.retain(|t| self.model_vocab.contains(t));
        out
    }

    /// The smallest pieces `token` is built from: the leaves of its BPE merge tree, or its
    /// single characters (as vocabulary tokens) for the other models. Keeping them keeps the
    /// text of a dropped token encodable (in smaller pieces).
    pub fn leaves(&self, token: &str) -> Vec<String> {
        let mut out = Vec::new();
        match self.kind {
            ModelKind::Bpe => {
                let mut stack = vec![token.to_string()];
                let mut seen = HashSet::new();
                while let Some(t) = stack.pop() {
                    if !seen.insert(t.clone()) {
                        continue;
                    }
                    match self.produced_by.get(&t).and_then(|m| m.first()) {
                        Some(&i) => {
                            let (a, b) = &self.merges[i];
                            stack.push(b.clone());
                            stack.push(a.clone());
                        }
                        None if self.model_vocab.contains(&t) => out.push(t),
                        None => {}
                    }
                }
            }
            ModelKind::WordPiece => {
                let (body, continued) = match token.strip_prefix(&self.prefix) {
                    Some(rest) if !self.prefix.is_empty() => (rest, true),
                    _ => (token, false),
                };
                for (i, c) in body.chars().enumerate() {
                    let piece = if i == 0 && !continued {
                        c.to_string()
                    } else {
                        format!("{}{c}", self.prefix)
                    };
                    if self.model_vocab.contains(&piece) {
                        out.push(piece);
                    }
                }
            }
            ModelKind::Unigram => {
                for c in token.chars() {
                    let piece = c.to_string();
                    if self.model_vocab.contains(&piece) {
                        out.push(piece);
                    }
                }
            }
            ModelKind::WordLevel => {}
        }
        out
    }

    /// BPE: every token some merge producing a kept token passes through, transitively,
    /// that is not already kept. Empty for the other models.
    pub fn merge_closure(&self, kept: &HashSet<String>) -> Vec<String> {
        let mut added = Vec::new();
        let mut seen: HashSet<&str> = HashSet::new();
        let mut stack: Vec<&str> = kept.iter().map(String::as_str).collect();
        while let Some(t) = stack.pop() {
            if !seen.insert(t) {
                continue;
            }
            for &i in self.produced_by.get(t).map_or(&[][..], Vec::as_slice) {
                let (a, b) = &self.merges[i];
                for part in [a.as_str(), b.as_str()] {
                    if !kept.contains(part) && !seen.contains(part) {
                        added.push(part.to_string());
                    }
                    stack.push(part);
                }
            }
        }
        added.sort();
        added.dedup();
        added
    }

    /// WordPiece: the tokens the greedy longest-prefix walk takes on `word` (a normalized,
    /// pre-tokenized word) before it finishes or fails. Empty for the other models.
    pub fn wordpiece_path(&self, word: &str) -> Vec<String> {
        let mut out = Vec::new();
        if self.kind != ModelKind::WordPiece || word.chars().count() > self.max_chars_per_word {
            return out;
        }
        let mut start = 0;
        while start < word.len() {
            let mut end = word.len();
            let mut found = None;
            while start < end {
                let sub = &word[start..end];
                let piece = if start > 0 {
                    format!("{}{sub}", self.prefix)
                } else {
                    sub.to_string()
                };
                if self.model_vocab.contains(&piece) {
                    found = Some(piece);
                    break;
                }
                end -= sub.chars().last().map_or(1, char::len_utf8);
            }
            match found {
                Some(p) => {
                    out.push(p);
                    start = end;
                }
                None => break,
            }
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
        load(&self.path, &Value::Object(root))
    }

    /// The edited tokenizer.json: only tokens in `new_ids` (token → new id), renumbered.
    pub fn trimmed(
        &self,
        new_ids: &HashMap<String, u32>,
    ) -> Result<(Map<String, Value>, EditCounts)> {
        let mut root = self.root.clone();
        let id_of = |t: &str| new_ids.get(t).copied();
        let mut counts = EditCounts {
            merges_before: self.merges.len(),
            merges_after: 0,
        };
        let path = &self.path;
        let model = root
            .get_mut("model")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| Error::bad_file(path, "no `model` object"))?;
        self.trim_model_vocab(model, new_ids);
        if self.kind == ModelKind::Bpe {
            let merges = self.kept_merges(new_ids);
            counts.merges_after = merges.len();
            model.insert("merges".into(), Value::Array(merges));
        }
        if let Some(Value::Array(added)) = root.get_mut("added_tokens") {
            remap_added_tokens(added, &id_of, path)?;
        }
        if let Some(pp) = root.get_mut("post_processor") {
            remap_processor(pp, &id_of);
        }
        if let Some(Value::Object(p)) = root.get_mut("padding") {
            if let Some(id) = p.get("pad_token").and_then(Value::as_str).and_then(id_of) {
                p.insert("pad_id".into(), Value::from(id));
            }
        }
        Ok((root, counts))
    }

    /// `model.vocab` (and Unigram's `unk_id`) of the kept tokens, with their new ids.
    fn trim_model_vocab(&self, model: &mut Map<String, Value>, new_ids: &HashMap<String, u32>) {
        let id_of = |t: &str| new_ids.get(t).copied();
        match self.kind {
            ModelKind::Unigram => {
                let old_unk = model.get("unk_id").and_then(Value::as_u64).and_then(|i| {
                    model
                        .get("vocab")?
                        .get(i as usize)?
                        .get(0)?
                        .as_str()
                        .map(str::to_owned)
                });
                if let Some(Value::Array(pieces)) = model.get_mut("vocab") {
                    pieces.retain(|p| {
                        p.get(0)
                            .and_then(Value::as_str)
                            .is_some_and(|t| new_ids.contains_key(t))
                    });
                }
                if let Some(unk) = old_unk {
                    model.insert("unk_id".into(), Value::from(id_of(&unk)));
                }
            }
            _ => {
                let vocab: Map<String, Value> = model
                    .get("vocab")
                    .and_then(Value::as_object)
                    .map(|v| {
                        v.keys()
                            .filter_map(|t| Some((t.clone(), Value::from(id_of(t)?))))
                            .collect()
                    })
                    .unwrap_or_default();
                model.insert("vocab".into(), Value::Object(vocab));
            }
        }
    }

    /// BPE: the merges whose parts and result are all kept, in the file's format.
    fn kept_merges(&self, new_ids: &HashMap<String, u32>) -> Vec<Value> {
        let keep = |t: &str| self.model_vocab.contains(t) && new_ids.contains_key(t);
        self.merges
            .iter()
            .filter(|(a, b)| keep(a) && keep(b) && keep(&self.merge_result(a, b)))
            .map(|(a, b)| {
                if self.merges_as_strings {
                    Value::String(format!("{a} {b}"))
                } else {
                    Value::Array(vec![Value::String(a.clone()), Value::String(b.clone())])
                }
            })
            .collect()
    }

    /// vocab.txt (WordPiece) of an edited file: model tokens in id order, one per line.
    pub fn vocab_txt(root: &Map<String, Value>) -> String {
        let mut out = String::new();
        for (t, _) in model_vocab_by_id(root) {
            out.push_str(&t);
            out.push('\n');
        }
        out
    }

    /// vocab.json and merges.txt (BPE) of an edited file. `header` is the first line of the
    /// original merges.txt when it was a `#version` line.
    pub fn vocab_json_and_merges(
        root: &Map<String, Value>,
        header: Option<&str>,
    ) -> (String, String) {
        let vocab = model_vocab_by_id(root);
        let vocab_json = serde_json::to_string(&OrderedMap(
            vocab
                .iter()
                .map(|(t, id)| (t.as_str(), Value::from(*id)))
                .collect(),
        ))
        .unwrap_or_default();
        let mut merges = String::new();
        if let Some(h) = header {
            merges.push_str(h);
            merges.push('\n');
        }
        let list = root
            .get("model")
            .and_then(|m| m.get("merges"))
            .and_then(Value::as_array);
        for m in list.into_iter().flatten() {
            match m {
                Value::String(s) => merges.push_str(s),
                Value::Array(p) => {
                    let parts: Vec<&str> = p.iter().filter_map(Value::as_str).collect();
                    merges.push_str(&parts.join(" "));
                }
                _ => continue,
            }
            merges.push('\n');
        }
        (vocab_json, merges)
    }
}

/// Loads a tokenizer from JSON with the tokenizers crate (`path` names it in errors).
pub fn load(path: &Path, json: &Value) -> Result<tokenizers::Tokenizer> {
    let text = serde_json::to_string(json)
        .map_err(|e| Error::bad_file(path, format!("cannot serialise: {e}")))?;
    text.parse::<tokenizers::Tokenizer>().map_err(|e| {
        Error::bad_file(
            path,
            format!(
                "does not load as a tokenizer ({}); restore the original file",
                e.to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        )
    })
}

/// Model vocabulary tokens of a tokenizer.json object with their ids, ascending by id.
fn model_vocab_by_id(root: &Map<String, Value>) -> Vec<(String, u64)> {
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

fn has_byte_level(pre: &Value) -> bool {
    match pre.get("type").and_then(Value::as_str) {
        Some("ByteLevel") => true,
        Some("Sequence") => pre
            .get("pretokenizers")
            .and_then(Value::as_array)
            .is_some_and(|l| l.iter().any(has_byte_level)),
        _ => false,
    }
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

/// Rewrites the ids a post-processor stores next to its token strings.
fn remap_processor(pp: &mut Value, id_of: &dyn Fn(&str) -> Option<u32>) {
    match pp.get("type").and_then(Value::as_str) {
        Some("TemplateProcessing") => {
            if let Some(specials) = pp.get_mut("special_tokens").and_then(Value::as_object_mut) {
                for s in specials.values_mut() {
                    let ids: Option<Vec<Value>> = s
                        .get("tokens")
                        .and_then(Value::as_array)
                        .map(|l| {
                            l.iter()
                                .map(|t| t.as_str().and_then(id_of).map(Value::from))
                                .collect()
                        })
                        .and_then(|v: Vec<Option<Value>>| v.into_iter().collect());
                    if let (Some(ids), Some(o)) = (ids, s.as_object_mut()) {
                        o.insert("ids".into(), Value::Array(ids));
                    }
                }
            }
        }
        Some("BertProcessing") | Some("RobertaProcessing") => {
            for key in ["sep", "cls"] {
                if let Some(Value::Array(pair)) = pp.get_mut(key) {
                    if let Some(id) = pair.first().and_then(Value::as_str).and_then(id_of) {
                        if pair.len() == 2 {
                            pair[1] = Value::from(id);
                        }
                    }
                }
            }
        }
        Some("Sequence") => {
            if let Some(Value::Array(list)) = pp.get_mut("processors") {
                for p in list {
                    remap_processor(p, id_of);
                }
            }
        }
        _ => {}
    }
}

/// A JSON object serialised in the order given (serde_json's `Map` sorts its keys).
struct OrderedMap<'a>(Vec<(&'a str, Value)>);

impl Serialize for OrderedMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// A tokenizer.json object whose `model.vocab` is written in id order (as the tokenizers crate
/// writes it), every other object with sorted keys.
struct TokenizerOut<'a>(&'a Map<String, Value>);

impl Serialize for TokenizerOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            match (k.as_str(), v) {
                ("model", Value::Object(model)) => {
                    let entries = model
                        .iter()
                        .map(|(mk, mv)| match (mk.as_str(), mv) {
                            ("vocab", Value::Object(vocab)) => {
                                let mut e: Vec<(&str, Value)> = vocab
                                    .iter()
                                    .map(|(t, id)| (t.as_str(), id.clone()))
                                    .collect();
                                e.sort_by_key(|p| p.1.as_u64());
                                (mk.as_str(), OrderedValue::Map(OrderedMap(e)))
                            }
                            _ => (mk.as_str(), OrderedValue::Plain(mv)),
                        })
                        .collect::<Vec<_>>();
                    m.serialize_entry(k, &OrderedEntries(entries))?;
                }
                _ => m.serialize_entry(k, v)?,
            }
        }
        m.end()
    }
}

enum OrderedValue<'a> {
    Plain(&'a Value),
    Map(OrderedMap<'a>),
}

impl Serialize for OrderedValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            OrderedValue::Plain(v) => v.serialize(s),
            OrderedValue::Map(m) => m.serialize(s),
        }
    }
}

struct OrderedEntries<'a>(Vec<(&'a str, OrderedValue<'a>)>);

impl Serialize for OrderedEntries<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// `added_tokens` with their new ids, sorted by id; every added token must have been kept.
fn remap_added_tokens(
    added: &mut [Value],
    id_of: &dyn Fn(&str) -> Option<u32>,
    path: &Path,
) -> Result<()> {
    for t in added.iter_mut() {
        let content = t.get("content").and_then(Value::as_str).map(str::to_owned);
        let new = content.as_deref().and_then(id_of).ok_or_else(|| {
            Error::Model(format!(
                "added token {content:?} of {} was not kept (a bug in clp-gpu; please report it)",
                path.display()
            ))
        })?;
        if let Some(o) = t.as_object_mut() {
            o.insert("id".into(), Value::from(new));
        }
    }
    added.sort_by_key(|t| t.get("id").and_then(Value::as_u64));
    Ok(())
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

/// tokenizer.json text of `root`: pretty, vocabulary in id order, trailing newline.
pub fn to_pretty(path: &Path, root: &Map<String, Value>) -> Result<String> {
    let mut text = serde_json::to_string_pretty(&TokenizerOut(root))
        .map_err(|e| Error::bad_file(path, format!("cannot serialise: {e}")))?;
    text.push('\n');
    Ok(text)
}

/// tokenizer_config.json with `added_tokens_decoder` keys (ids) renumbered through `map` and
/// written in numeric order. Entries whose id `map` drops are removed.
pub fn remap_tokenizer_config(
    config: &Map<String, Value>,
    map: &dyn Fn(u64) -> Option<u64>,
) -> Result<String> {
    let mut entries: Vec<(&str, OrderedValue)> = Vec::new();
    let mut decoder: Vec<(u64, &Value)> = Vec::new();
    for (k, v) in config {
        if k == "added_tokens_decoder" {
            if let Value::Object(d) = v {
                decoder = d
                    .iter()
                    .filter_map(|(id, t)| Some((map(id.parse().ok()?)?, t)))
                    .collect();
                decoder.sort_by_key(|p| p.0);
            }
            continue;
        }
        entries.push((k.as_str(), OrderedValue::Plain(v)));
    }
    let keys: Vec<String> = decoder.iter().map(|(id, _)| id.to_string()).collect();
    if config.contains_key("added_tokens_decoder") {
        let m = OrderedMap(
            keys.iter()
                .zip(&decoder)
                .map(|(k, (_, t))| (k.as_str(), (*t).clone()))
                .collect(),
        );
        entries.push(("added_tokens_decoder", OrderedValue::Map(m)));
        entries.sort_by(|a, b| a.0.cmp(b.0));
    }
    let mut text = serde_json::to_string_pretty(&OrderedEntries(entries))
        .map_err(|e| Error::Model(format!("cannot serialise tokenizer_config.json: {e}")))?;
    text.push('\n');
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tj(v: Value) -> TokenizerJson {
        let Value::Object(root) = v else { panic!() };
        TokenizerJson::from_root(Path::new("tokenizer.json"), root).unwrap()
    }

    #[test]
    fn bpe_closure_and_string_merges() {
        let t = tj(json!({
            "added_tokens": [{"id": 7, "content": "<s>", "single_word": false, "lstrip": false,
                              "rstrip": false, "normalized": false, "special": true}],
            "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "c": 2, "ab": 3, "abc": 4, "bc": 5, "x": 6, "<s>": 7},
                      "merges": ["a b", "ab c", "b c"]},
        }));
        let kept: HashSet<String> = ["abc", "<s>"].iter().map(|s| s.to_string()).collect();
        assert_eq!(t.merge_closure(&kept), vec!["a", "ab", "b", "c"]);
        assert_eq!(t.leaves("abc"), vec!["a", "b", "c"]);
        let new: HashMap<String, u32> = [
            ("a", 0),
            ("b", 1),
            ("c", 2),
            ("ab", 3),
            ("abc", 4),
            ("<s>", 5),
        ]
        .iter()
        .map(|(t, i)| (t.to_string(), *i))
        .collect();
        let (root, counts) = t.trimmed(&new).unwrap();
        assert_eq!(
            counts,
            EditCounts {
                merges_before: 3,
                merges_after: 2
            }
        );
        assert_eq!(root["model"]["merges"], json!(["a b", "ab c"]));
        assert_eq!(root["added_tokens"][0]["id"], json!(5));
        let text = to_pretty(Path::new("t"), &root).unwrap();
        // The vocabulary is written in id order ("abc" = 4 before "<s>" = 5), not sorted.
        let vocab = &text[text.find("\"vocab\"").unwrap()..];
        assert!(vocab.find("\"abc\"").unwrap() < vocab.find("\"<s>\"").unwrap());
        load(Path::new("t"), &Value::Object(root)).unwrap();
    }

    #[test]
    fn unigram_subset_renumbers_unk() {
        let t = tj(json!({
            "model": {"type": "Unigram", "unk_id": 2, "vocab": [["<pad>", 0.0], ["x", -1.0], ["<unk>", 0.0], ["▁a", -2.0]]},
        }));
        assert_eq!(t.referenced_tokens(), vec!["<unk>"]);
        let new: HashMap<String, u32> = [("<pad>", 0), ("<unk>", 1), ("▁a", 2)]
            .iter()
            .map(|(t, i)| (t.to_string(), *i))
            .collect();
        let (root, _) = t.trimmed(&new).unwrap();
        assert_eq!(root["model"]["unk_id"], json!(1));
        assert_eq!(
            root["model"]["vocab"],
            json!([["<pad>", 0.0], ["<unk>", 0.0], ["▁a", -2.0]])
        );
        let tok = load(Path::new("t"), &Value::Object(root)).unwrap();
        assert_eq!(tok.token_to_id("▁a"), Some(2));
    }

    #[test]
    fn wordpiece_path_records_prefixes_of_failed_words() {
        let t = tj(json!({
            "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                      "max_input_chars_per_word": 100, "vocab": {"[UNK]": 0, "ab": 1, "a": 2, "##bc": 3}},
        }));
        // "abc": "ab" matches, then "##c" does not: the word is [UNK], but "ab" was taken.
        assert_eq!(t.wordpiece_path("abc"), vec!["ab"]);
        assert!(t.leaves("##bc").is_empty());
    }
}
