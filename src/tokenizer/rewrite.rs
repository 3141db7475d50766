//! A tokenizer.json rewritten to a vocabulary subset, per model type: the kept tokens with
//! compact new ids (a token → id map, or Unigram's piece list and `unk_id`), the BPE merges
//! whose three tokens survive (in the file's format), and the ids stored next to token strings
//! elsewhere (`added_tokens`, post-processor, padding) renumbered.

use super::file::{ModelKind, TokenizerJson};
use crate::error::{Error, Result};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::Path;

/// What trimming changed in the tokenizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct EditCounts {
    /// BPE merges before.
    pub merges_before: usize,
    /// BPE merges kept.
    pub merges_after: usize,
}

impl TokenizerJson {
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

#[cfg(test)]
mod tests {
    use super::super::file::test_json as tj;
    use super::super::load::from_json;
    use super::super::write::to_pretty;
    use super::*;
    use serde_json::json;
    use std::collections::HashSet;

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
        from_json(Path::new("t"), &Value::Object(root)).unwrap();
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
        let tok = from_json(Path::new("t"), &Value::Object(root)).unwrap();
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
