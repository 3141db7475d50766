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

/// Rewrites every `*_token_id` key of a config object (a number or a list of numbers) through
/// `map`; an id `map` returns `None` for becomes `null` (dropped from a list) and is listed in
/// the result. Nested objects (`text_config`, ...) are rewritten too; see [`remap_token_ids_at`].
pub fn remap_token_ids(
    config: &mut Map<String, Value>,
    map: &dyn Fn(u64) -> Option<u64>,
) -> Vec<String> {
    remap_token_ids_at(config, &mut |_, id| map(id))
}

/// Rewrites every `*_token_id` key of a config object and of the objects nested in it
/// (`text_config`, `decoder`, `task_specific_params`, ...) through `map(path, id)`, `path` being
/// the dotted key (`text_config.bos_token_id`). A scalar `map` returns `None` for becomes
/// `null` (kept as null so that the config class's default id does not come back); a list
/// loses it, repeated results are kept once and a list left empty becomes `null`. Returns
/// `"path = id"` / `"path contains id"` for every id that was dropped.
pub fn remap_token_ids_at(
    config: &mut Map<String, Value>,
    map: &mut dyn FnMut(&str, u64) -> Option<u64>,
) -> Vec<String> {
    let mut unmapped = Vec::new();
    remap_in(config, "", map, &mut unmapped);
    unmapped
}

fn remap_in(
    obj: &mut Map<String, Value>,
    prefix: &str,
    map: &mut dyn FnMut(&str, u64) -> Option<u64>,
    unmapped: &mut Vec<String>,
) {
    for (key, v) in obj.iter_mut() {
        let path = format!("{prefix}{key}");
        if let Value::Object(inner) = v {
            remap_in(inner, &format!("{path}."), map, unmapped);
            continue;
        }
        if !key.ends_with("_token_id") {
            continue;
        }
        match v {
            Value::Number(n) => {
                if let Some(id) = n.as_u64() {
                    match map(&path, id) {
                        Some(new) => *v = Value::from(new),
                        None => {
                            unmapped.push(format!("{path} = {id}"));
                            *v = Value::Null;
                        }
                    }
                }
            }
            Value::Array(items) => {
                let mut out: Vec<Value> = Vec::new();
                for item in items.iter() {
                    let new = match item.as_u64() {
                        Some(id) => match map(&path, id) {
                            Some(new) => Value::from(new),
                            None => {
                                unmapped.push(format!("{path} contains {id}"));
                                continue;
                            }
                        },
                        None => item.clone(),
                    };
                    if !out.contains(&new) {
                        out.push(new);
                    }
                }
                *v = if out.is_empty() && !items.is_empty() {
                    Value::Null
                } else {
                    Value::Array(out)
                };
            }
            _ => {}
        }
    }
}

/// Every id named by a `*_token_id` key of a config object or of an object nested in it.
pub fn config_token_ids(config: &Map<String, Value>) -> Vec<u64> {
    let mut ids = Vec::new();
    for (key, v) in config {
        match v {
            Value::Object(inner) => ids.extend(config_token_ids(inner)),
            _ if !key.ends_with("_token_id") => {}
            Value::Number(n) => ids.extend(n.as_u64()),
            Value::Array(items) => ids.extend(items.iter().filter_map(Value::as_u64)),
            _ => {}
        }
    }
    ids
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
}
