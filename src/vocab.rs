//! Tokenizer vocabularies and how two of them are matched.
//!
//! A [`Vocab`] is what transformers' `get_vocab()` returns for a fast tokenizer: the model's
//! vocabulary plus the added tokens, read from `tokenizer.json` with the `tokenizers` crate, and
//! the special-token roles (bos/eos/unk/pad/sep/cls/mask) from `tokenizer_config.json`,
//! `special_tokens_map.json` and the model config's `*_token_id` keys, in that precedence.
//!
//! [`match_vocabularies`] applies CLP-Transfer's rule: a target token *overlaps* when the exact
//! same string is in the source vocabulary; every list is ordered by target id, so the result
//! is deterministic. A missing target special token takes the source's token of the same role
//! when the source has one; every other missing token is computed from the overlap.

use crate::error::{Error, Result};
use crate::model::config::read_optional_json_object;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The role of a special token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpecialRole {
    /// Beginning of sequence.
    Bos,
    /// End of sequence.
    Eos,
    /// Unknown token.
    Unk,
    /// Padding.
    Pad,
    /// Separator (encoders).
    Sep,
    /// Classification (encoders).
    Cls,
    /// Mask (encoders).
    Mask,
}

impl SpecialRole {
    /// Every role, in the order used to pick a role for a token that has several.
    pub const ALL: [SpecialRole; 7] = [
        SpecialRole::Bos,
        SpecialRole::Eos,
        SpecialRole::Unk,
        SpecialRole::Pad,
        SpecialRole::Sep,
        SpecialRole::Cls,
        SpecialRole::Mask,
    ];

    /// Short name ("bos").
    pub fn name(self) -> &'static str {
        match self {
            SpecialRole::Bos => "bos",
            SpecialRole::Eos => "eos",
            SpecialRole::Unk => "unk",
            SpecialRole::Pad => "pad",
            SpecialRole::Sep => "sep",
            SpecialRole::Cls => "cls",
            SpecialRole::Mask => "mask",
        }
    }

    /// Key in tokenizer_config.json / special_tokens_map.json ("bos_token").
    pub fn token_key(self) -> String {
        format!("{}_token", self.name())
    }

    /// Key in config.json / generation_config.json ("bos_token_id").
    pub fn id_key(self) -> String {
        format!("{}_token_id", self.name())
    }
}

/// A tokenizer's vocabulary and special-token roles.
#[derive(Debug, Clone)]
pub struct Vocab {
    /// The tokenizer.json it was read from.
    pub path: PathBuf,
    /// Token string of each id (`None` for ids no token uses).
    tokens: Vec<Option<String>>,
    ids: HashMap<String, u32>,
    /// Special-token roles and the id holding each.
    pub special: BTreeMap<SpecialRole, u32>,
}

impl Vocab {
    /// Reads `dir/tokenizer.json` and the special-token roles next to it. `config` is the
    /// model's config.json, whose `*_token_id` keys are the last resort for roles.
    pub fn read(dir: &Path, config: Option<&Map<String, Value>>) -> Result<Vocab> {
        let path = dir.join("tokenizer.json");
        if !path.is_file() {
            return Err(Error::bad_file(
                &path,
                "file not found; clp-gpu needs a fast tokenizer: save one with AutoTokenizer.from_pretrained(...).save_pretrained(DIR)",
            ));
        }
        let tokenizer = tokenizers::Tokenizer::from_file(&path).map_err(|e| {
            Error::bad_file(
                &path,
                format!(
                    "does not load as a tokenizer ({}); restore the original file",
                    one_line(&e.to_string())
                ),
            )
        })?;
        let ids = tokenizer.get_vocab(true);
        let mut vocab = Vocab::from_ids(path, ids)?;
        let tokenizer_config = read_optional_json_object(&dir.join("tokenizer_config.json"))?;
        let special_map = read_optional_json_object(&dir.join("special_tokens_map.json"))?;
        for role in SpecialRole::ALL {
            let key = role.token_key();
            let by_name = [&tokenizer_config, &special_map]
                .into_iter()
                .flatten()
                .find_map(|m| token_content(m.get(&key)?))
                .and_then(|t| vocab.id(&t));
            let by_id = || {
                let v = config?.get(&role.id_key())?;
                let id = v.as_u64().or_else(|| v.as_array()?.first()?.as_u64())?;
                let id = u32::try_from(id).ok()?;
                vocab.token(id).map(|_| id)
            };
            if let Some(id) = by_name.or_else(by_id) {
                vocab.special.insert(role, id);
            }
        }
        Ok(vocab)
    }

    /// A vocabulary from a token → id map (no special roles).
    pub fn from_ids(path: PathBuf, ids: HashMap<String, u32>) -> Result<Vocab> {
        let len = ids.values().map(|&i| i as usize + 1).max().unwrap_or(0);
        // Ids far beyond the token count would make every embedding huge; real tokenizers
        // leave at most a few holes.
        if len > ids.len().saturating_mul(4).max(1 << 20) {
            return Err(Error::bad_file(
                &path,
                format!(
                    "has {} tokens but ids up to {}; restore the original file",
                    ids.len(),
                    len - 1
                ),
            ));
        }
        let mut tokens = vec![None; len];
        for (t, &i) in &ids {
            tokens[i as usize] = Some(t.clone());
        }
        if len == 0 {
            return Err(Error::bad_file(
                &path,
                "the tokenizer has an empty vocabulary; restore the original file",
            ));
        }
        Ok(Vocab {
            path,
            tokens,
            ids,
            special: BTreeMap::new(),
        })
    }

    /// Number of ids: the largest id + 1 (rows an embedding needs).
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether the vocabulary is empty (never true for a loaded tokenizer).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Id of `token`.
    pub fn id(&self, token: &str) -> Option<u32> {
        self.ids.get(token).copied()
    }

    /// Token of `id`.
    pub fn token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize)?.as_deref()
    }

    /// The roles `id` holds, in [`SpecialRole::ALL`] order.
    pub fn roles_of(&self, id: u32) -> impl Iterator<Item = SpecialRole> + '_ {
        SpecialRole::ALL
            .into_iter()
            .filter(move |r| self.special.get(r) == Some(&id))
    }
}

/// A special-token value: a string, or an AddedToken object with `content`.
fn token_content(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content")?.as_str().map(str::to_owned),
        _ => None,
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A target special token that takes the source row of the same role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RoleMapping {
    /// The target id.
    pub target_id: u32,
    /// The source id whose row it takes.
    pub source_id: u32,
    /// The shared role.
    pub role: SpecialRole,
}

/// How every target id gets its row.
#[derive(Debug, Clone, Default)]
pub struct Matching {
    /// `(target id, source id)` of tokens in both vocabularies, ascending by target id.
    pub overlap: Vec<(u32, u32)>,
    /// Missing special tokens mapped by role, ascending by target id.
    pub by_role: Vec<RoleMapping>,
    /// Target ids computed from the overlap, ascending.
    pub missing: Vec<u32>,
}

/// Matches `target` against `source` by exact token string (see the module docs).
pub fn match_vocabularies(source: &Vocab, target: &Vocab) -> Matching {
    let mut m = Matching::default();
    for t in 0..target.len() as u32 {
        if let Some(s) = target.token(t).and_then(|tok| source.id(tok)) {
            m.overlap.push((t, s));
            continue;
        }
        let by_role = target.roles_of(t).find_map(|role| {
            source.special.get(&role).map(|&s| RoleMapping {
                target_id: t,
                source_id: s,
                role,
            })
        });
        match by_role {
            Some(r) => m.by_role.push(r),
            None => m.missing.push(t),
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab(tokens: &[&str]) -> Vocab {
        let ids = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.to_string(), i as u32))
            .collect();
        Vocab::from_ids(PathBuf::from("t"), ids).unwrap()
    }

    #[test]
    fn overlap_missing_and_roles() {
        let mut s = vocab(&["<|endoftext|>", "a", "b", "c"]);
        s.special.insert(SpecialRole::Eos, 0);
        let mut t = vocab(&["</s>", "<pad>", "c", "x", "a"]);
        t.special.insert(SpecialRole::Eos, 0);
        t.special.insert(SpecialRole::Pad, 1);
        let m = match_vocabularies(&s, &t);
        assert_eq!(m.overlap, vec![(2, 3), (4, 1)]);
        assert_eq!(
            m.by_role,
            vec![RoleMapping {
                target_id: 0,
                source_id: 0,
                role: SpecialRole::Eos
            }]
        );
        assert_eq!(m.missing, vec![1, 3]);
    }
}
