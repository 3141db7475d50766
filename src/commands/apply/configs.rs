//! The output's config.json and generation_config.json, built before any work so that their
//! notices are known up front: `vocab_size` set to the target's rows wherever the config keeps
//! the language model's size (the top level, `text_config`, any nested config whose
//! `vocab_size` is the source embedding's rows), and every token id (`*_token_id` at the top
//! level and nested, numbers or lists; Whisper's and generation's id lists and tables, see
//! [`crate::model::rewrite::remap_token_ids_at`]) carried over to the target token of the same
//! role ([`crate::vocab::ids`]), or dropped with a notice when the target has none. A
//! generation_config.json without a pad id gets the config's (transformers warns on every
//! `generate` otherwise).

use crate::error::{Error, Result};
use crate::json::read_optional_json_object;
use crate::model::rewrite;
use crate::model::ModelDir;
use crate::vocab::ids::target_id_by_role;
use crate::vocab::{SpecialRole, Vocab};
use serde_json::{json, Map, Value};

/// The configs of the output, and what the user should know about them.
pub(super) struct OutConfigs {
    /// config.json.
    pub config: Map<String, Value>,
    /// generation_config.json, when the source has one.
    pub generation: Option<Map<String, Value>>,
    /// One line per id without a target counterpart.
    pub notices: Vec<String>,
    /// The learned position table, shifted to the target's pad id (RoBERTa-style families).
    pub positions: Option<ShiftedPositions>,
}

/// A position table rebuilt for a new pad id: positions are `pad + 1 + i`, so row `old + 1 + i`
/// of the source moves to `new + 1 + i` and the pad row to `new`; the rows below are zeros.
pub(super) struct ShiftedPositions {
    /// The tensor.
    pub name: String,
    /// Its new shape `[rows, width]`.
    pub shape: Vec<usize>,
    /// Its new bytes, in the source dtype.
    pub bytes: Vec<u8>,
}

/// The largest position table a pad shift may build (rows below the new pad are zeros).
const MAX_SHIFTED_POSITIONS_BYTES: usize = 512 << 20;

/// The source and target of an id mapping.
pub(super) struct Tokenizers<'a> {
    /// The source tokenizer (the roles ids have in the source).
    pub source: &'a Vocab,
    /// The target tokenizer, with `--pad-token` applied.
    pub target: &'a Vocab,
}

impl OutConfigs {
    /// The configs of `source` for the target tokenizer; `source_rows` are the rows of the
    /// source input embedding, `target_rows` those of the new one.
    pub fn new(
        source: &ModelDir,
        tok: &Tokenizers,
        source_rows: usize,
        target_rows: usize,
    ) -> Result<OutConfigs> {
        let mut notices = Vec::new();
        let mut config = source.config.raw.clone();
        set_vocab_sizes(&mut config, source_rows, target_rows);
        remap_ids(&mut config, "config.json", tok, &mut notices);
        // bos/eos/pad the target has are set at the top level when the source config has no
        // id for them (absent or null), so the model agrees with its tokenizer.
        for role in [SpecialRole::Bos, SpecialRole::Eos, SpecialRole::Pad] {
            if let Some(&id) = tok.target.special.get(&role) {
                let entry = config.entry(role.id_key()).or_insert(Value::Null);
                if entry.is_null() {
                    *entry = json!(id);
                }
            }
        }
        let positions = shift_positions(source, &mut config, &mut notices)?;
        let gen_path = source.dir.join("generation_config.json");
        let generation = match read_optional_json_object(&gen_path)? {
            Some(mut gen) => {
                remap_ids(&mut gen, "generation_config.json", tok, &mut notices);
                if let Some(pad) = config_pad(&config) {
                    let entry = gen.entry("pad_token_id").or_insert(Value::Null);
                    if entry.is_null() {
                        *entry = json!(pad);
                    }
                }
                Some(gen)
            }
            None => None,
        };
        Ok(OutConfigs {
            positions,
            config,
            generation,
            notices,
        })
    }
}

/// A family that computes position ids from the pad id (RoBERTa: `pad + 1 + i`, M2M100's
/// sinusoidal table) reads other positions when the pad id moves: said, with the numbers.
/// RoBERTa-style families compute position ids from the pad id (`pad + 1 + i`). When the
/// target's pad id differs from the source's, the learned position table is shifted to it and
/// `max_position_embeddings` follows, so every position keeps its row; a family whose positions
/// are computed (M2M100's sinusoids) only gets the larger `max_position_embeddings`, with a
/// notice that its positions move.
fn shift_positions(
    source: &ModelDir,
    config: &mut Map<String, Value>,
    notices: &mut Vec<String>,
) -> Result<Option<ShiftedPositions>> {
    let Some(family) = source.config.positions_from_pad() else {
        return Ok(None);
    };
    let (Some(old), Some(new)) = (config_pad(&source.config.raw), config_pad(config)) else {
        return Ok(None);
    };
    let Some(max) = source
        .config
        .raw
        .get("max_position_embeddings")
        .and_then(Value::as_u64)
    else {
        return Ok(None);
    };
    if old == new || old + 1 >= max {
        return Ok(None);
    }
    let (old, new, max) = (old as usize, new as usize, max as usize);
    let new_max = new + (max - old);
    config.insert("max_position_embeddings".into(), json!(new_max));
    let w = &source.weights;
    let table = w
        .tensor_names()
        .find(|n| n.ends_with("embeddings.position_embeddings.weight"))
        .and_then(|n| w.matrix(n).ok().filter(|m| m.rows == max).map(|m| (n, m)));
    let Some((name, m)) = table else {
        notices.push(format!(
            "{family} computes position ids from pad_token_id (pad + 1 + i): the target's pad id {new} differs from the source's {old}, so positions start at {} instead of {}; max_position_embeddings is now {new_max} (computed positions: fine-tune to adapt)",
            new + 1,
            old + 1
        ));
        return Ok(None);
    };
    let rb = m.row_bytes();
    if new_max * rb > MAX_SHIFTED_POSITIONS_BYTES {
        return Err(Error::Argument(format!(
            "{}: {family} computes position ids from the pad id, and the target's pad id {new} would need a position table `{name}` of {new_max} rows ({} MiB); pass --pad-token with a target token of a small id",
            source.dir.display(),
            (new_max * rb) >> 20
        )));
    }
    let mut bytes = vec![0u8; new_max * rb];
    bytes[new * rb..].copy_from_slice(m.rows_bytes(old, max));
    notices.push(format!(
        "{family} computes position ids from pad_token_id: `{name}` shifted from pad {old} to pad {new} ({max} → {new_max} rows, every position keeps its row)"
    ));
    Ok(Some(ShiftedPositions {
        name: name.to_string(),
        shape: vec![new_max, m.cols],
        bytes,
    }))
}

/// The config's pad id: top level, else `text_config`.
fn config_pad(config: &Map<String, Value>) -> Option<u64> {
    let text = config.get("text_config").and_then(Value::as_object);
    [Some(config), text]
        .into_iter()
        .flatten()
        .find_map(|c| c.get("pad_token_id")?.as_u64())
}

/// Sets `vocab_size` in `text_config` and in every nested object whose `vocab_size` is the
/// source's rows; at the top level when it has one or when no nested config does.
fn set_vocab_sizes(config: &mut Map<String, Value>, source_rows: usize, target_rows: usize) {
    let nested = set_nested_vocab_sizes(config, source_rows, target_rows);
    if config.contains_key("vocab_size") || !nested {
        config.insert("vocab_size".into(), json!(target_rows));
    }
}

fn set_nested_vocab_sizes(obj: &mut Map<String, Value>, source_rows: usize, rows: usize) -> bool {
    let mut any = false;
    for (key, v) in obj.iter_mut() {
        let Value::Object(inner) = v else {
            continue;
        };
        let size = inner.get("vocab_size").and_then(Value::as_u64);
        if size.is_some() && (key == "text_config" || size == Some(source_rows as u64)) {
            inner.insert("vocab_size".into(), json!(rows));
            any = true;
        }
        any |= set_nested_vocab_sizes(inner, source_rows, rows);
    }
    any
}

/// Carries every token id of `obj` (the file `file`) over to the target; a notice per id that
/// has no target counterpart.
fn remap_ids(
    obj: &mut Map<String, Value>,
    file: &str,
    tok: &Tokenizers,
    notices: &mut Vec<String>,
) {
    let mut misses = Vec::new();
    let dropped = rewrite::remap_token_ids_at(obj, &mut |path, id| {
        let key = path.rsplit('.').next().unwrap_or(path);
        match target_id_by_role(tok.source, tok.target, key, id) {
            Ok(t) => Some(u64::from(t)),
            Err(miss) => {
                misses.push((path.to_string(), id, miss));
                None
            }
        }
    });
    for d in &dropped {
        let Some((_, _, miss)) = misses.iter().find(|(p, id, _)| *p == d.path && *id == d.id)
        else {
            continue;
        };
        let fix = if miss.pad {
            "; pass --pad-token TOKEN to give the target a pad token"
        } else {
            ""
        };
        notices.push(format!(
            "{file}: {d} has no counterpart in the target tokenizer ({}); {}{fix}",
            miss.why, d.action
        ));
    }
}
