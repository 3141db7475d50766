//! The target's pad token: `--pad-token TOKEN` names a token of the target tokenizer, or a new
//! one that is added to it as a special token with the next id (one more embedding row: the
//! source's pad row, copied, when the source has a pad, else zeros). Without `--pad-token`, a
//! family that cannot run without a pad ([`crate::model::config::ModelConfig::pad_needed`]) and
//! a pad-less target tokenizer are refused here, before any work.
//!
//! The matching runs on the target tokenizer as it is; the new token joins the target
//! vocabulary only afterwards ([`target_vocab`], [`add_pad_row`]), so no helper row is needed
//! for it. The tokenizer files written for a chosen pad name it as `pad_token`
//! ([`write_tokenizer_files`]).

use super::options::ApplyOptions;
use crate::error::{Error, Result};
use crate::json::{read_json_object, read_optional_json_object, write_json};
use crate::model::pair::SourceTarget;
use crate::model::TOKENIZER_FILES;
use crate::vocab::{Matching, RoleMapping, SpecialRole, Vocab};
use serde_json::{json, Map, Value};
use std::path::Path;

/// The pad token chosen with `--pad-token`.
#[derive(Debug, Clone)]
pub(super) struct Pad {
    /// The token.
    pub token: String,
    /// Its target id.
    pub id: u32,
    /// For a new token: tokenizer.json with it in `added_tokens` (checked to load and to give
    /// the token `id`).
    pub new_tokenizer: Option<Value>,
}

impl Pad {
    /// Whether the token is added to the target tokenizer.
    pub fn is_new(&self) -> bool {
        self.new_tokenizer.is_some()
    }
}

/// Checks `--pad-token` against the target tokenizer, or refuses a family that needs a pad
/// when the target has none and no `--pad-token` was given.
pub(super) fn plan(opts: &ApplyOptions, pair: &SourceTarget) -> Result<Option<Pad>> {
    let target = &pair.target_vocab;
    let Some(token) = &opts.pad_token else {
        if target.special.contains_key(&SpecialRole::Pad) {
            return Ok(None);
        }
        return match pair.source.config.pad_needed() {
            Some(why) => Err(Error::Argument(format!(
                "the source {} needs a pad token ({why}) but the target tokenizer {} has none: pass --pad-token TOKEN (a token of the target tokenizer, or a new one such as --pad-token '<pad>', which is added)",
                pair.source.config.path.display(),
                target.path.display()
            ))),
            None => Ok(None),
        };
    };
    if token.is_empty() {
        return Err(Error::Argument(
            "--pad-token is empty: give a token, e.g. --pad-token '<pad>'".into(),
        ));
    }
    if let Some(id) = target.id(token) {
        return Ok(Some(Pad {
            token: token.clone(),
            id,
            new_tokenizer: None,
        }));
    }
    let id = u32::try_from(target.len())
        .map_err(|_| Error::Argument("--pad-token: the target tokenizer is full".into()))?;
    let new_tokenizer = Some(tokenizer_with(&target.path, token, id)?);
    Ok(Some(Pad {
        token: token.clone(),
        id,
        new_tokenizer,
    }))
}

/// tokenizer.json at `path` with `token` appended to `added_tokens` as a special token, loaded
/// back with the `tokenizers` crate to check that it numbers the token `id`.
fn tokenizer_with(path: &Path, token: &str, id: u32) -> Result<Value> {
    let mut root = read_json_object(path, "the target tokenizer needs a tokenizer.json")?;
    let entry = json!({"id": id, "content": token, "single_word": false, "lstrip": false,
                       "rstrip": false, "normalized": false, "special": true});
    match root
        .entry("added_tokens")
        .or_insert_with(|| Value::Array(Vec::new()))
    {
        Value::Array(list) => list.push(entry),
        _ => {
            return Err(Error::bad_file(
                path,
                "`added_tokens` is not a list; restore the original file",
            ))
        }
    }
    let root = Value::Object(root);
    let bytes = serde_json::to_vec(&root).map_err(|e| Error::bad_file(path, e.to_string()))?;
    let got = tokenizers::Tokenizer::from_bytes(&bytes)
        .ok()
        .and_then(|t| t.token_to_id(token));
    if got != Some(id) {
        return Err(Error::bad_file(
            path,
            format!(
                "cannot add --pad-token `{token}` as id {id} (the tokenizer numbers it {got:?}); pass a token of the target tokenizer instead"
            ),
        ));
    }
    Ok(root)
}

/// The target vocabulary with the chosen pad in the pad role (a new token with its new id).
pub(super) fn target_vocab(pad: Option<&Pad>, vocab: &Vocab) -> Vocab {
    match pad {
        Some(p) => vocab.clone().with_special(SpecialRole::Pad, &p.token).0,
        None => vocab.clone(),
    }
}

/// A new pad token's row: the source's pad row when the source has a pad (copied like every
/// by-role row), else it stays zero.
pub(super) fn add_pad_row(pad: Option<&Pad>, matching: &mut Matching, source: &Vocab) {
    let Some(p) = pad.filter(|p| p.is_new()) else {
        return;
    };
    if let Some(&source_id) = source.special.get(&SpecialRole::Pad) {
        matching.by_role.push(RoleMapping {
            target_id: p.id,
            source_id,
            role: SpecialRole::Pad,
        });
    }
}

/// Copies the target tokenizer's files from `dir` into `out_dir`; with a chosen pad, names it
/// `pad_token` in tokenizer_config.json and special_tokens_map.json (written when the target
/// has neither), and a new one also in tokenizer.json, `added_tokens_decoder` and
/// added_tokens.json.
pub(super) fn write_tokenizer_files(pad: Option<&Pad>, dir: &Path, out_dir: &Path) -> Result<()> {
    for f in TOKENIZER_FILES {
        let from = dir.join(f);
        if from.is_file() {
            std::fs::copy(&from, out_dir.join(f)).map_err(|e| Error::io(&from, e))?;
        }
    }
    let Some(p) = pad else {
        return Ok(());
    };
    if let Some(root) = &p.new_tokenizer {
        write_json(&out_dir.join("tokenizer.json"), root)?;
    }
    let decoder_entry = json!({"content": p.token, "lstrip": false, "normalized": false,
                               "rstrip": false, "single_word": false, "special": true});
    let mut named = false;
    for f in ["tokenizer_config.json", "special_tokens_map.json"] {
        let Some(mut m) = read_optional_json_object(&dir.join(f))? else {
            continue;
        };
        m.insert("pad_token".into(), json!(p.token));
        if let (true, Some(Value::Object(d))) = (p.is_new(), m.get_mut("added_tokens_decoder")) {
            d.insert(p.id.to_string(), decoder_entry.clone());
        }
        write_json(&out_dir.join(f), &Value::Object(m))?;
        named = true;
    }
    if !named {
        let m = Map::from_iter([("pad_token".to_string(), json!(p.token))]);
        write_json(&out_dir.join("special_tokens_map.json"), &Value::Object(m))?;
    }
    if p.is_new() {
        if let Some(mut m) = read_optional_json_object(&dir.join("added_tokens.json"))? {
            m.insert(p.token.clone(), json!(p.id));
            write_json(&out_dir.join("added_tokens.json"), &Value::Object(m))?;
        }
    }
    Ok(())
}
