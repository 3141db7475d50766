//! The extended tokenizer.json: the original object with the new entries added to
//! `model.vocab` (BPE and WordPiece: token → id; Unigram: `[piece, score]` appended, ids by
//! position) and BPE merges appended after the existing ones, in the file's own merge format.
//! Nothing else changes: added tokens, normalizer, pre-tokenizer, post-processor, decoder.
//! Written like `trim` writes (vocabulary in id order, other keys sorted): same input, same bytes.

use super::original::{Family, Original};
use crate::error::{Error, Result};
use serde_json::{Map, Value};

/// A token to write.
pub struct Entry<'a> {
    /// As written in the vocabulary.
    pub content: &'a str,
    /// Its id.
    pub id: u32,
    /// Unigram score.
    pub score: Option<f64>,
}

/// The original JSON with `entries` and `merges` added.
pub fn extended_root(
    orig: &Original,
    entries: &[Entry<'_>],
    merges: &[(String, String)],
) -> Result<Map<String, Value>> {
    let mut root = orig.root.clone();
    let path = &orig.path;
    let model = root
        .get_mut("model")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| Error::bad_file(path, "no `model` object; restore the original file"))?;
    match (orig.family, model.get_mut("vocab")) {
        (Family::Unigram, Some(Value::Array(pieces))) => {
            for e in entries {
                debug_assert_eq!(e.id as usize, pieces.len());
                pieces.push(Value::Array(vec![
                    Value::from(e.content),
                    Value::from(e.score.unwrap_or(0.0)),
                ]));
            }
        }
        (_, Some(Value::Object(vocab))) => {
            // The tokenizers crate numbers an added token outside the model vocabulary after
            // the vocabulary's size, which the new entries would shift: such tokens go into the
            // vocabulary at their own ids (the added vocabulary takes their text out before the
            // model sees it, and no merge produces them).
            for (content, id) in &orig.added_outside {
                vocab.insert(content.clone(), Value::from(*id));
            }
            for e in entries {
                vocab.insert(e.content.to_string(), Value::from(e.id));
            }
        }
        _ => {
            return Err(Error::bad_file(
                path,
                "`model.vocab` changed shape while extending (a bug in clp-gpu; please report it)",
            ))
        }
    }
    if !merges.is_empty() {
        append_merges(model, merges);
    }
    Ok(root)
}

/// Appends `merges` to `model.merges` in the file's format (`"a b"` strings where the file
/// uses them and no part holds a space; `["a", "b"]` pairs otherwise, the old ones converted).
fn append_merges(model: &mut Map<String, Value>, merges: &[(String, String)]) {
    let mut list = match model.remove("merges") {
        Some(Value::Array(l)) => l,
        _ => Vec::new(),
    };
    let as_strings = list.first().is_some_and(Value::is_string)
        && merges
            .iter()
            .all(|(a, b)| !a.contains(' ') && !b.contains(' '));
    if !as_strings && list.first().is_some_and(Value::is_string) {
        list = super::bpe::merge_pairs(Some(&Value::Array(list)))
            .into_iter()
            .map(|(a, b)| Value::Array(vec![Value::from(a), Value::from(b)]))
            .collect();
    }
    for (a, b) in merges {
        list.push(if as_strings {
            Value::from(format!("{a} {b}"))
        } else {
            Value::Array(vec![Value::from(a.as_str()), Value::from(b.as_str())])
        });
    }
    model.insert("merges".into(), Value::Array(list));
}

/// tokenizer.json bytes of `root`.
pub fn to_bytes(orig: &Original, root: &Map<String, Value>) -> Result<Vec<u8>> {
    crate::tokenizer::write::to_pretty(&orig.path, root).map(String::into_bytes)
}
