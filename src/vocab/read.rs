//! Reading a vocabulary: the tokens of a `tokenizer.json` (the model's vocabulary plus the
//! added tokens, as transformers' `get_vocab()` returns them), which of them are added tokens
//! and which of those stand for ordinary text, the special-token roles, and for each canonical
//! form several tokens share, the one the tokenizer itself produces.

use super::canonical::CanonicalToken;
use super::roles::SpecialRole;
use crate::error::{Error, Result};
use crate::json::read_optional_json_object;
use crate::tokenizer::{self, TokenFamily};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// A tokenizer's vocabulary and special-token roles.
#[derive(Clone)]
pub struct Vocab {
    /// The tokenizer.json it was read from.
    pub path: PathBuf,
    /// Token string of each id (`None` for ids no token uses).
    tokens: Vec<Option<String>>,
    ids: HashMap<String, u32>,
    /// Special-token roles and the id holding each.
    pub special: BTreeMap<SpecialRole, u32>,
    /// How the tokenizer spells tokens (detected from tokenizer.json).
    pub family: TokenFamily,
    /// Ids of `added_tokens` entries (raw text outside the model's spelling).
    added: HashSet<u32>,
    /// The added tokens among `added` that stand for ordinary text (non-special, no
    /// `lstrip`/`rstrip`): they have a canonical form, as vocabulary tokens do.
    added_text: HashSet<u32>,
    /// For each canonical form that several of its tokens share, the one this tokenizer
    /// produces when it encodes that text (asked once, when read from a file).
    produced: HashMap<CanonicalToken, u32>,
}

impl std::fmt::Debug for Vocab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vocab")
            .field("path", &self.path)
            .field("tokens", &self.tokens.len())
            .field("special", &self.special)
            .field("family", &self.family)
            .field("added", &self.added.len())
            .field("added_text", &self.added_text.len())
            .field("produced", &self.produced.len())
            .finish()
    }
}

impl Vocab {
    /// Reads `dir/tokenizer.json` and the special-token roles next to it. `config` is the
    /// model's config.json, whose `*_token_id` keys are the last resort for roles.
    pub fn read(dir: &Path, config: Option<&Map<String, Value>>) -> Result<Vocab> {
        Vocab::from_loaded(dir, &tokenizer::read(dir)?, config)
    }

    /// The vocabulary of `loaded` (`dir/tokenizer.json`, already read) and the special-token
    /// roles next to it; `config` as for [`Vocab::read`].
    pub fn from_loaded(
        dir: &Path,
        loaded: &tokenizer::Loaded,
        config: Option<&Map<String, Value>>,
    ) -> Result<Vocab> {
        let (path, tokenizer) = (loaded.path.clone(), &loaded.tokenizer);
        let ids = tokenizer.get_vocab(true);
        let mut vocab = Vocab::from_ids(path, ids)?;
        vocab.family = loaded.family.clone();
        let added = tokenizer.get_added_tokens_decoder();
        vocab.added = added.keys().copied().collect();
        vocab.added_text = added
            .iter()
            .filter(|(_, a)| !a.special && !a.lstrip && !a.rstrip)
            .map(|(&id, _)| id)
            .collect();
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
        // Forms shared by several tokens: which one the tokenizer itself produces (asked here,
        // once, so the tokenizer need not be kept).
        vocab.produced = (vocab.form_groups().into_iter())
            .filter(|(_, ids)| ids.len() > 1)
            .filter_map(|(form, ids)| Some((form.clone(), produced_of(tokenizer, &form, &ids)?)))
            .collect();
        Ok(vocab)
    }

    /// A vocabulary from a token → id map (no special roles, no added tokens, unknown family).
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
            family: TokenFamily::Unknown {
                reason: "read without a tokenizer.json".into(),
            },
            added: HashSet::new(),
            added_text: HashSet::new(),
            produced: HashMap::new(),
        })
    }

    /// This vocabulary with `family` and `added` token ids (for vocabularies built in code).
    /// The added tokens are special ones (no canonical form); see [`Vocab::with_text_added`].
    pub fn with_family(
        mut self,
        family: TokenFamily,
        added: impl IntoIterator<Item = u32>,
    ) -> Vocab {
        self.family = family;
        self.added = added.into_iter().collect();
        self
    }

    /// This vocabulary with `ids` as non-special added tokens that stand for ordinary text (as
    /// Gemma's `"\n"` and `"▁▁"`): added tokens with a canonical form.
    pub fn with_text_added(mut self, ids: impl IntoIterator<Item = u32>) -> Vocab {
        for id in ids {
            self.added.insert(id);
            self.added_text.insert(id);
        }
        self
    }

    /// This vocabulary with `token` in `role`: the token's id when it has one, else `token` is
    /// added as a new special token with the next id (as `added_tokens` of tokenizer.json
    /// would number it). Returns the vocabulary and the id.
    pub fn with_special(mut self, role: SpecialRole, token: &str) -> (Vocab, u32) {
        let id = match self.id(token) {
            Some(id) => id,
            None => {
                let id = self.tokens.len() as u32;
                self.tokens.push(Some(token.to_owned()));
                self.ids.insert(token.to_owned(), id);
                self.added.insert(id);
                id
            }
        };
        self.special.insert(role, id);
        (self, id)
    }

    /// Number of ids: the largest id + 1 (rows an embedding needs).
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// The rows the model's own vocabulary needs: its largest id + 1, added tokens left out
    /// (Gemma 3 adds `<image_soft_token>` one past its embedding).
    pub fn base_len(&self) -> usize {
        (0..self.tokens.len())
            .rev()
            .find(|&i| self.tokens[i].is_some() && !self.added.contains(&(i as u32)))
            .map_or(0, |i| i + 1)
    }

    /// This vocabulary without the ids at or past `rows` (added tokens that have no embedding
    /// row are not in the model's vocabulary).
    pub fn within_rows(mut self, rows: usize) -> Vocab {
        if self.tokens.len() <= rows {
            return self;
        }
        self.tokens.truncate(rows);
        self.ids.retain(|_, &mut i| (i as usize) < rows);
        self.special.retain(|_, &mut i| (i as usize) < rows);
        self.added.retain(|&i| (i as usize) < rows);
        self.added_text.retain(|&i| (i as usize) < rows);
        self
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

    /// Whether `id` is a special-role or `added_tokens` entry (not ordinary model text).
    pub fn is_special_or_added(&self, id: u32) -> bool {
        self.added.contains(&id) || self.roles_of(id).next().is_some()
    }

    /// The canonical form of `id`: none for special-role tokens, special (or whitespace-
    /// stripping) added tokens and tokenizers of an unknown family; an added token that stands
    /// for ordinary text has the form of its content (see [`canonical`]).
    pub fn canonical(&self, id: u32) -> Option<CanonicalToken> {
        if self.roles_of(id).next().is_some() {
            return None;
        }
        if self.added_text.contains(&id) {
            return self.family.canonical_added(self.token(id)?);
        }
        if self.added.contains(&id) {
            return None;
        }
        self.family.canonical(self.token(id)?)
    }

    /// Of the tokens of `form` (several share it), the one this tokenizer produces for its
    /// text, when known.
    pub(super) fn produced(&self, form: &CanonicalToken) -> Option<u32> {
        self.produced.get(form).copied()
    }

    /// Every canonical form of this vocabulary and its ids, ascending.
    pub(super) fn form_groups(&self) -> HashMap<CanonicalToken, Vec<u32>> {
        let mut groups: HashMap<CanonicalToken, Vec<u32>> = HashMap::new();
        for id in 0..self.len() as u32 {
            if let Some(form) = self.canonical(id) {
                groups.entry(form).or_default().push(id);
            }
        }
        groups
    }
}

/// Of `candidates` (ids of one canonical form), the one `tokenizer` produces when it encodes the
/// form's text alone (for a word start: the text after a space, then the text itself, for
/// tokenizers that prepend the space); `None` when it produces none of them in one token or the
/// text is not UTF-8.
fn produced_of(
    tokenizer: &tokenizers::Tokenizer,
    form: &CanonicalToken,
    candidates: &[u32],
) -> Option<u32> {
    let text = std::str::from_utf8(&form.bytes).ok()?;
    let spaced = format!(" {text}");
    let tries: &[&str] = if form.word_start {
        &[&spaced, text]
    } else {
        &[text]
    };
    tries.iter().filter(|t| !t.is_empty()).find_map(|t| {
        let encoding = tokenizer.encode(*t, false).ok()?;
        match encoding.get_ids() {
            [id] if candidates.contains(id) => Some(*id),
            _ => None,
        }
    })
}

/// A special-token value: a string, or an AddedToken object with `content`.
fn token_content(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content")?.as_str().map(str::to_owned),
        _ => None,
    }
}
