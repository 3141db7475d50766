//! Rewriting a model's weights into an output directory tensor by tensor: each input tensor is
//! dropped, copied byte-for-byte (possibly under a new name) or replaced by new bytes. Output
//! files mirror the input files (same names, same order of tensors), an input file whose
//! tensors are all dropped is not written, and a sharded input gets a new index. Used by
//! `trim` and `shrink`; the streaming itself is [`crate::model::writer`].

use crate::error::{Error, Result};
use crate::model::safetensors::{TensorInfo, Weights};
use crate::model::writer::{self, OutShard, OutTensor, TensorData};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// What becomes of one input tensor.
#[derive(Debug, Clone)]
pub enum TensorAction {
    /// Not written.
    Drop,
    /// Copied byte-for-byte under this name.
    Copy(String),
    /// Written from new bytes.
    Replace {
        /// Output name.
        name: String,
        /// Element type.
        dtype: safetensors::Dtype,
        /// Shape.
        shape: Vec<usize>,
        /// Little-endian data.
        bytes: Vec<u8>,
    },
}

/// Sizes of what [`write_weights`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Written {
    /// Tensors written.
    pub tensors: usize,
    /// Sum of tensor data bytes (the index's `total_size`).
    pub bytes: u64,
    /// Sum of tensor elements.
    pub params: u64,
}

/// Number of elements of a shape.
pub fn numel(shape: &[usize]) -> u64 {
    shape.iter().map(|&d| d as u64).product()
}

/// Sum of the elements of every tensor of `weights`.
pub fn total_params(weights: &Weights) -> u64 {
    weights
        .tensor_names()
        .filter_map(|n| weights.info(n))
        .map(|t| numel(&t.shape))
        .sum()
}

/// Writes every tensor of `weights` into `out_dir` as `action` decides (tensors it returns
/// nothing for are copied under their own name). Two output tensors with one name are refused.
pub fn write_weights(
    weights: &Weights,
    out_dir: &Path,
    actions: &BTreeMap<String, TensorAction>,
) -> Result<Written> {
    let mut shards: Vec<OutShard> = Vec::new();
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for f in &weights.files {
        let mut tensors = Vec::new();
        for name in &f.tensors {
            let Some(info) = weights.info(name) else {
                continue;
            };
            let t = match actions.get(name) {
                Some(TensorAction::Drop) => continue,
                Some(TensorAction::Copy(new)) => copy_tensor(new, info, &f.path),
                None => copy_tensor(name, info, &f.path),
                Some(TensorAction::Replace {
                    name: new,
                    dtype,
                    shape,
                    bytes,
                }) => OutTensor {
                    name: new.clone(),
                    dtype: *dtype,
                    shape: shape.clone(),
                    data: TensorData::Owned(bytes),
                },
            };
            tensors.push(t);
        }
        if !tensors.is_empty() {
            shards.push(OutShard {
                file_name: f.file_name.clone(),
                metadata: f.metadata.clone(),
                tensors,
            });
        }
    }
    for s in &shards {
        for t in &s.tensors {
            if let Some(other) = seen.insert(&t.name, &s.file_name) {
                return Err(Error::Model(format!(
                    "two output tensors would be named `{}` ({} and {}); the input {} already holds a tensor of that name",
                    t.name,
                    other,
                    s.file_name,
                    weights.describe()
                )));
            }
        }
    }
    let mut written = Written::default();
    for s in &shards {
        writer::write_shard(out_dir, s, &mut |_| {})?;
        for t in &s.tensors {
            written.tensors += 1;
            written.bytes += t.data.len_bytes();
            written.params += numel(&t.shape);
        }
    }
    if weights.sharded {
        writer::write_index(out_dir, &shards)?;
    }
    Ok(written)
}

fn copy_tensor<'a>(name: &str, info: &TensorInfo, path: &'a Path) -> OutTensor<'a> {
    OutTensor {
        name: name.to_string(),
        dtype: info.dtype,
        shape: info.shape.clone(),
        data: TensorData::Copy {
            path,
            start: info.start,
            len_bytes: info.len_bytes,
        },
    }
}

/// Copies the files of `src_dir` named in `names` that exist into `out_dir`.
pub fn copy_files(src_dir: &Path, out_dir: &Path, names: &[&str]) -> Result<Vec<String>> {
    let mut copied = Vec::new();
    for f in names {
        let from = src_dir.join(f);
        if from.is_file() {
            std::fs::copy(&from, out_dir.join(f)).map_err(|e| Error::io(&from, e))?;
            copied.push(f.to_string());
        }
    }
    Ok(copied)
}

/// An id of a config that [`remap_token_ids_at`] could not carry over and says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedId {
    /// The dotted key (`text_config.pad_token_id`, `forced_decoder_ids`, `lang_to_id`).
    pub path: String,
    /// The table entry's name, for `lang_to_id` / `task_to_id`.
    pub name: Option<String>,
    /// The id.
    pub id: u64,
    /// What became of it: "set to null", "removed from the list", ...
    pub action: &'static str,
}

impl std::fmt::Display for DroppedId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.name, self.action) {
            (Some(name), _) => write!(f, "{}[{name:?}] = {}", self.path, self.id),
            (None, SET_TO_NULL) => write!(f, "{} = {}", self.path, self.id),
            (None, _) => write!(f, "{} contains {}", self.path, self.id),
        }
    }
}

const SET_TO_NULL: &str = "set to null";
const REMOVED: &str = "removed from the list";
const PAIR_REMOVED: &str = "its [position, id] pair removed";
const SEQUENCE_REMOVED: &str = "its sequence removed";
const ENTRY_REMOVED: &str = "its entry removed";

/// How a config key holds token ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IdKey {
    /// `*_token_id`: an id or a list of ids, each naming a token the model needs.
    Named,
    /// `suppress_tokens`, `begin_suppress_tokens` (Whisper): ids generation must not produce.
    Suppressed,
    /// `bad_words_ids`: id sequences generation must not produce.
    BadSequences,
    /// `force_words_ids`: id sequences (or lists of alternatives) generation must produce.
    ForcedSequences,
    /// `forced_decoder_ids` (Whisper): `[position, id]` pairs.
    ForcedPairs,
    /// `lang_to_id`, `task_to_id` (Whisper): name → id.
    Table,
}

impl IdKey {
    fn of(key: &str) -> Option<IdKey> {
        Some(match key {
            "suppress_tokens" | "begin_suppress_tokens" => IdKey::Suppressed,
            "bad_words_ids" => IdKey::BadSequences,
            "force_words_ids" => IdKey::ForcedSequences,
            "forced_decoder_ids" => IdKey::ForcedPairs,
            "lang_to_id" | "task_to_id" => IdKey::Table,
            _ if key.ends_with("_token_id") => IdKey::Named,
            _ => return None,
        })
    }

    /// Whether an id without a counterpart is reported. A token the vocabulary lacks can never
    /// be produced, so dropping it from what generation must avoid changes nothing.
    fn reported(self) -> bool {
        !matches!(self, IdKey::Suppressed | IdKey::BadSequences)
    }
}

/// Rewrites every token id of a config object (see [`remap_token_ids_at`]) through `map`.
pub fn remap_token_ids(
    config: &mut Map<String, Value>,
    map: &dyn Fn(u64) -> Option<u64>,
) -> Vec<DroppedId> {
    remap_token_ids_at(config, &mut |_, id| map(id))
}

/// Rewrites every token id of a config object and of the objects nested in it (`text_config`,
/// `decoder`, `task_specific_params`, ...) through `map(path, id)`, `path` being the dotted key
/// (`text_config.bos_token_id`). The ids are those of `*_token_id` keys (a number or a list)
/// and of generation's and Whisper's id keys: `suppress_tokens`, `begin_suppress_tokens`,
/// `bad_words_ids`, `force_words_ids`, `forced_decoder_ids` (`[position, id]` pairs) and
/// `lang_to_id` / `task_to_id` (name → id). An id `map` returns `None` for is dropped: a
/// `*_token_id` scalar becomes `null` (kept as null so that the config class's default id does
/// not come back); a list loses it (repeated results are kept once, and a `*_token_id` list
/// left empty becomes `null`); a pair, sequence or table entry that holds it goes. Returns the
/// dropped ids, except those of `suppress_tokens`, `begin_suppress_tokens` and `bad_words_ids`:
/// a token the vocabulary lacks cannot be produced, so there is nothing left to suppress.
pub fn remap_token_ids_at(
    config: &mut Map<String, Value>,
    map: &mut dyn FnMut(&str, u64) -> Option<u64>,
) -> Vec<DroppedId> {
    let mut dropped = Vec::new();
    remap_in(config, "", map, &mut dropped);
    dropped
}

fn remap_in(
    obj: &mut Map<String, Value>,
    prefix: &str,
    map: &mut dyn FnMut(&str, u64) -> Option<u64>,
    dropped: &mut Vec<DroppedId>,
) {
    for (key, v) in obj.iter_mut() {
        let path = format!("{prefix}{key}");
        let kind = IdKey::of(key);
        if let (Value::Object(inner), None | Some(IdKey::Named)) = (&mut *v, kind) {
            remap_in(inner, &format!("{path}."), map, dropped);
            continue;
        }
        let Some(kind) = kind else {
            continue;
        };
        let lost = remap_value(v, kind, &mut |id| map(&path, id));
        if kind.reported() {
            dropped.extend(lost.into_iter().map(|(id, action, name)| DroppedId {
                path: path.clone(),
                name,
                id,
                action,
            }));
        }
    }
}

/// Rewrites the ids of one value of kind `kind`; returns each id `map` dropped (in order), what
/// became of it and the table entry's name.
fn remap_value(
    v: &mut Value,
    kind: IdKey,
    map: &mut dyn FnMut(u64) -> Option<u64>,
) -> Vec<(u64, &'static str, Option<String>)> {
    let mut what = Vec::new();
    let mut emptied = false;
    match (kind, &mut *v) {
        (IdKey::Named | IdKey::Suppressed, Value::Number(n)) => {
            if let Some(id) = n.as_u64() {
                match map(id) {
                    Some(new) => *n = new.into(),
                    None => {
                        what.push((id, SET_TO_NULL, None));
                        emptied = true;
                    }
                }
            }
        }
        (IdKey::Named | IdKey::Suppressed, Value::Array(items)) => {
            let mut out: Vec<Value> = Vec::new();
            for item in items.iter() {
                let new = match item.as_u64() {
                    Some(id) => match map(id) {
                        Some(new) => Value::from(new),
                        None => {
                            what.push((id, REMOVED, None));
                            continue;
                        }
                    },
                    None => item.clone(),
                };
                if !out.contains(&new) {
                    out.push(new);
                }
            }
            // A `*_token_id` list left empty becomes null, as a scalar does.
            emptied = out.is_empty() && !items.is_empty() && kind == IdKey::Named;
            *items = out;
        }
        (
            IdKey::BadSequences | IdKey::ForcedSequences | IdKey::ForcedPairs,
            Value::Array(items),
        ) => {
            let action = match kind {
                IdKey::ForcedPairs => PAIR_REMOVED,
                _ => SEQUENCE_REMOVED,
            };
            items.retain_mut(|item| {
                let mapped = match (kind, item) {
                    // `[position, id]`: only the id (null in Whisper's "any token") maps.
                    (IdKey::ForcedPairs, Value::Array(pair)) => {
                        pair.get_mut(1).map_or(Ok(()), |id| all_ids(id, map))
                    }
                    (_, item) => all_ids(item, map),
                };
                mapped.map_err(|id| what.push((id, action, None))).is_ok()
            });
        }
        (IdKey::Table, Value::Object(entries)) => {
            entries.retain(|name, id| {
                let mapped = all_ids(id, map);
                let name = Some(name.clone());
                mapped
                    .map_err(|id| what.push((id, ENTRY_REMOVED, name)))
                    .is_ok()
            });
        }
        _ => {}
    }
    if emptied {
        *v = Value::Null;
    }
    what
}

/// Rewrites every id in `v` (a number, or arrays of them at any depth) in place; stops at the
/// first id `map` drops and returns it.
fn all_ids(v: &mut Value, map: &mut dyn FnMut(u64) -> Option<u64>) -> Result<(), u64> {
    match v {
        Value::Number(n) => match n.as_u64() {
            Some(id) => {
                *n = map(id).ok_or(id)?.into();
                Ok(())
            }
            None => Ok(()),
        },
        Value::Array(items) => items.iter_mut().try_for_each(|item| all_ids(item, map)),
        _ => Ok(()),
    }
}

/// Every id a config object or an object nested in it names a token by: the ids
/// [`remap_token_ids_at`] rewrites, except those of what generation must avoid
/// (`suppress_tokens`, `begin_suppress_tokens`, `bad_words_ids`).
pub fn config_token_ids(config: &Map<String, Value>) -> Vec<u64> {
    let mut ids = Vec::new();
    for (key, v) in config {
        match (IdKey::of(key), v) {
            (None | Some(IdKey::Named), Value::Object(inner)) => {
                ids.extend(config_token_ids(inner))
            }
            (Some(kind), v) if kind.reported() => collect_ids(v, kind, &mut ids),
            _ => {}
        }
    }
    ids
}

fn collect_ids(v: &Value, kind: IdKey, ids: &mut Vec<u64>) {
    match (kind, v) {
        (IdKey::ForcedPairs, Value::Array(pairs)) => {
            ids.extend(pairs.iter().filter_map(|p| p.get(1)?.as_u64()));
        }
        (_, Value::Number(n)) => ids.extend(n.as_u64()),
        (_, Value::Array(items)) => items.iter().for_each(|i| collect_ids(i, kind, ids)),
        (IdKey::Table, Value::Object(entries)) => {
            entries.values().for_each(|i| collect_ids(i, kind, ids))
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn token_ids_are_remapped_in_nested_configs_and_lists() {
        let Value::Object(mut c) = json!({
            "bos_token_id": 1, "eos_token_id": [2, 7, 3], "vocab_size": 9, "pad_token_id": 5,
            "text_config": {"pad_token_id": 7, "hidden_size": 4},
            "decoder": {"decoder_start_token_id": [7]},
        }) else {
            unreachable!()
        };
        assert_eq!(config_token_ids(&c), vec![1, 7, 2, 7, 3, 5, 7]);
        let mut seen = Vec::new();
        let dropped = remap_token_ids_at(&mut c, &mut |path, id| {
            seen.push(path.to_string());
            (id != 7).then_some(if id == 3 { 20 } else { id * 10 })
        });
        assert_eq!(
            Value::Object(c),
            json!({"bos_token_id": 10, "eos_token_id": [20], "vocab_size": 9, "pad_token_id": 50,
                   "text_config": {"pad_token_id": null, "hidden_size": 4},
                   "decoder": {"decoder_start_token_id": null}})
        );
        let dropped: Vec<String> = dropped.iter().map(ToString::to_string).collect();
        assert_eq!(
            dropped,
            vec![
                "decoder.decoder_start_token_id contains 7",
                "eos_token_id contains 7",
                "text_config.pad_token_id = 7"
            ]
        );
        assert!(seen.contains(&"text_config.pad_token_id".to_string()));
    }

    #[test]
    fn whisper_and_generation_id_keys_are_remapped() {
        // Whisper's generation_config.json layout, ids shifted by 1000 where they map; 7 and 9
        // have no counterpart.
        let Value::Object(mut g) = json!({
            "suppress_tokens": [1, 7, 3], "begin_suppress_tokens": [7],
            "bad_words_ids": [[1, 2], [7, 3], [3]], "force_words_ids": [[[1], [9, 2]], [[3]]],
            "forced_decoder_ids": [[1, null], [2, 5], [3, 9]],
            "lang_to_id": {"<|en|>": 4, "<|xx|>": 9}, "task_to_id": {"transcribe": 5},
            "no_timestamps_token_id": 6, "max_initial_timestamp_index": 50,
            "alignment_heads": [[1, 2]],
        }) else {
            unreachable!()
        };
        assert_eq!(config_token_ids(&g), vec![1, 9, 2, 3, 5, 9, 4, 9, 6, 5]);
        let dropped = remap_token_ids(&mut g, &|id| (id != 7 && id != 9).then_some(id + 1000));
        assert_eq!(
            Value::Object(g),
            json!({
                "suppress_tokens": [1001, 1003], "begin_suppress_tokens": [],
                "bad_words_ids": [[1001, 1002], [1003]], "force_words_ids": [[[1003]]],
                "forced_decoder_ids": [[1, null], [2, 1005]],
                "lang_to_id": {"<|en|>": 1004}, "task_to_id": {"transcribe": 1005},
                "no_timestamps_token_id": 1006, "max_initial_timestamp_index": 50,
                "alignment_heads": [[1, 2]],
            })
        );
        // What generation must avoid drops unreported; what names a needed token is reported.
        let said: Vec<String> = dropped
            .iter()
            .map(|d| format!("{d}: {}", d.action))
            .collect();
        assert_eq!(
            said,
            vec![
                "force_words_ids contains 9: its sequence removed",
                "forced_decoder_ids contains 9: its [position, id] pair removed",
                "lang_to_id[\"<|xx|>\"] = 9: its entry removed",
            ]
        );
    }
}
