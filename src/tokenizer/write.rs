//! Serialising tokenizer files deterministically: tokenizer.json with `model.vocab` in id order
//! (as the tokenizers crate writes it) and every other object with sorted keys;
//! tokenizer_config.json with `added_tokens_decoder` in numeric order; the slow tokenizer's
//! vocab.txt (WordPiece), vocab.json and merges.txt (BPE) of an edited file.

use super::file::model_vocab_by_id;
use crate::error::{Error, Result};
use crate::json::Ordered;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};
use std::path::Path;

/// tokenizer.json text of `root`: pretty, vocabulary in id order, trailing newline.
pub fn to_pretty(path: &Path, root: &Map<String, Value>) -> Result<String> {
    let mut text = serde_json::to_string_pretty(&TokenizerOut(root))
        .map_err(|e| Error::bad_file(path, format!("cannot serialise: {e}")))?;
    text.push('\n');
    Ok(text)
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
                                (mk.as_str(), OrderedValue::Map(Ordered(e)))
                            }
                            _ => (mk.as_str(), OrderedValue::Plain(mv)),
                        })
                        .collect::<Vec<_>>();
                    m.serialize_entry(k, &Ordered(entries))?;
                }
                _ => m.serialize_entry(k, v)?,
            }
        }
        m.end()
    }
}

enum OrderedValue<'a> {
    Plain(&'a Value),
    Map(Ordered<'a, Value>),
}

impl Serialize for OrderedValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            OrderedValue::Plain(v) => v.serialize(s),
            OrderedValue::Map(m) => m.serialize(s),
        }
    }
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
pub fn vocab_json_and_merges(root: &Map<String, Value>, header: Option<&str>) -> (String, String) {
    let vocab = model_vocab_by_id(root);
    let vocab_json = serde_json::to_string(&Ordered(
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
        let m = Ordered(
            keys.iter()
                .zip(&decoder)
                .map(|(k, (_, t))| (k.as_str(), (*t).clone()))
                .collect(),
        );
        entries.push(("added_tokens_decoder", OrderedValue::Map(m)));
        entries.sort_by(|a, b| a.0.cmp(b.0));
    }
    let mut text = serde_json::to_string_pretty(&Ordered(entries))
        .map_err(|e| Error::Model(format!("cannot serialise tokenizer_config.json: {e}")))?;
    text.push('\n');
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::super::file::TokenizerJson;
    use super::super::load::from_json;
    use super::*;
    use serde_json::json;

    #[test]
    fn an_edited_file_is_written_in_id_order_and_loads() {
        let Value::Object(root) = json!({
            "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
            "normalizer": null, "pre_tokenizer": null, "post_processor": null, "decoder": null,
            "model": {"type": "BPE", "dropout": null, "unk_token": null,
                      "continuing_subword_prefix": null, "end_of_word_suffix": null,
                      "fuse_unk": false, "byte_fallback": false,
                      "vocab": {"b": 1, "a": 0, "z": 2}, "merges": []}
        }) else {
            panic!()
        };
        let path = Path::new("tokenizer.json");
        let mut tj = TokenizerJson::from_root(path, root).unwrap();
        // What `extend` does: a new token after the last id and the merge that makes it.
        let next = tj.model_vocab_by_id().last().map_or(0, |(_, id)| id + 1);
        let model = tj.root["model"].as_object_mut().unwrap();
        model["vocab"]["ba"] = Value::from(next);
        model["merges"] = json!(["b a"]);
        let text = to_pretty(path, &tj.root).unwrap();
        assert_eq!(text, to_pretty(path, &tj.root).unwrap());
        let vocab = &text[text.find("\"vocab\"").unwrap()..];
        let at = |t: &str| vocab.find(&format!("\"{t}\"")).unwrap();
        assert!(
            at("a") < at("b") && at("b") < at("z") && at("z") < at("ba"),
            "{vocab}"
        );
        let edited: Value = serde_json::from_str(&text).unwrap();
        let tok = from_json(path, &edited).unwrap();
        assert_eq!(tok.encode("ba", false).unwrap().get_ids(), &[3]);
        let again = TokenizerJson::from_root(path, edited.as_object().unwrap().clone()).unwrap();
        assert_eq!(again.merges(), &[("b".to_string(), "a".to_string())]);
    }
}
