//! Tokenizer vocabularies and how two of them are matched.
//!
//! A [`Vocab`] is what transformers' `get_vocab()` returns for a fast tokenizer: the model's
//! vocabulary plus the added tokens, read from `tokenizer.json` with the `tokenizers` crate, and
//! the special-token roles (bos/eos/unk/pad/sep/cls/mask) from `tokenizer_config.json`,
//! `special_tokens_map.json` and the model config's `*_token_id` keys, in that precedence.
//!
//! [`match_tokens`] applies CLP-Transfer's rule: a target token *overlaps* when the exact same
//! string is in the source vocabulary ([`MatchMode::Exact`], the original's behaviour). With
//! [`MatchMode::Canonical`] tokens match by meaning: a target token overlaps when its canonical
//! form (the bytes it stands for and whether it starts a word, see [`canonical`]) is the form
//! of a source token, whatever either spelling, so GPT-2's `Ġhello` and Llama's `▁hello` are one
//! token while GPT-2's `Ċ` (a newline) and a SentencePiece letter `Ċ` (U+010A) are not. Added
//! tokens that stand for ordinary text (non-special, no whitespace stripping: Gemma's `"\n"`,
//! `"\t"` and `"▁▁"`) have a form like vocabulary tokens; special tokens and special-role tokens
//! have none and match by exact string (then by role). A tokenizer family that canonical
//! matching does not know falls back to exact matching, with a notice. When several source
//! tokens share a form, the same spelling wins, then the token the source tokenizer itself
//! produces when it encodes that text, then an ordinary token over a SentencePiece `<0xHH>`
//! byte token (which is only used when nothing else spells the byte), then the lowest id; the
//! others are counted as collisions. A missing target special token takes the source's token
//! of the same role when the source has one; every other missing token is computed from the
//! overlap. Every list is ordered by target id, so the result is
//! deterministic.

pub mod canonical;
pub mod fvt;
pub mod ids;

use crate::error::{Error, Result};
use crate::model::json::read_optional_json_object;
use canonical::{CanonicalToken, TokenFamily, TokenizerHeader};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
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

    /// The role a config key names (`bos_token_id` → bos); `None` for other keys
    /// (`decoder_start_token_id`, `forced_bos_token_id`, ...), whose role is their token's.
    pub fn from_id_key(key: &str) -> Option<SpecialRole> {
        SpecialRole::ALL.into_iter().find(|r| r.id_key() == key)
    }
}

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
        let path = dir.join("tokenizer.json");
        if !path.is_file() {
            return Err(Error::bad_file(
                &path,
                "file not found; clp-gpu needs a fast tokenizer: save one with AutoTokenizer.from_pretrained(...).save_pretrained(DIR)",
            ));
        }
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let tokenizer = tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| {
            Error::bad_file(
                &path,
                format!(
                    "does not load as a tokenizer ({}); restore the original file",
                    one_line(&e.to_string())
                ),
            )
        })?;
        // The tokenizer loaded, so the header parses too; should it not, canonical matching is
        // off for this tokenizer rather than the whole run failing.
        let family = match serde_json::from_slice::<TokenizerHeader>(&bytes) {
            Ok(h) => TokenFamily::detect(&h),
            Err(e) => TokenFamily::Unknown {
                reason: format!("tokenizer.json header: {}", one_line(&e.to_string())),
            },
        };
        drop(bytes);
        let ids = tokenizer.get_vocab(true);
        let mut vocab = Vocab::from_ids(path, ids)?;
        vocab.family = family;
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
            .filter_map(|(form, ids)| Some((form.clone(), produced(&tokenizer, &form, &ids)?)))
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

    /// Every canonical form of this vocabulary and its ids, ascending.
    fn form_groups(&self) -> HashMap<CanonicalToken, Vec<u32>> {
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
fn produced(
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

/// How target tokens are matched with source tokens (`--match`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchMode {
    /// Same token string (CLP-Transfer's rule; `--preset original`).
    Exact,
    /// Same canonical form (bytes + word start; see [`canonical`]), whatever the spelling: the
    /// product default.
    #[default]
    Canonical,
}

impl MatchMode {
    /// Name as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            MatchMode::Exact => "exact",
            MatchMode::Canonical => "canonical",
        }
    }

    /// One-line description of the rule (for reports).
    pub fn rule(self) -> &'static str {
        match self {
            MatchMode::Exact => "exact token string; rows copied bit-exactly from the source",
            MatchMode::Canonical => {
                "the same canonical form (bytes + word start, whatever the spelling: byte-level BPE / SentencePiece / WordPiece), exact token string for tokens without one; rows copied bit-exactly from the source"
            }
        }
    }
}

impl std::fmt::Display for MatchMode {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for MatchMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "exact" => Ok(MatchMode::Exact),
            "canonical" => Ok(MatchMode::Canonical),
            _ => Err(format!("`{s}`: write exact or canonical")),
        }
    }
}

/// How every target id gets its row.
#[derive(Debug, Clone, Default)]
pub struct Matching {
    /// The rule used.
    pub mode: MatchMode,
    /// `(target id, source id)` of tokens in both vocabularies (by exact string or canonical
    /// form), ascending by target id.
    pub overlap: Vec<(u32, u32)>,
    /// The target ids of `overlap` matched by canonical form to a differently spelled source
    /// token, ascending.
    pub canonical: Vec<u32>,
    /// Missing special tokens mapped by role, ascending by target id.
    pub by_role: Vec<RoleMapping>,
    /// Target ids computed from the overlap, ascending.
    pub missing: Vec<u32>,
    /// Source tokens whose canonical form a preferred source token already has (canonical
    /// mode; they can never be matched canonically).
    pub source_collisions: usize,
    /// Why the matching is not the one asked for (canonical mode on a tokenizer family it
    /// does not know falls back to exact matching), for the user to see.
    pub notice: Option<String>,
}

/// Matches `target` against `source` by exact token string (see the module docs).
pub fn match_vocabularies(source: &Vocab, target: &Vocab) -> Matching {
    match_with(source, target, None)
}

/// Matches `target` against `source` with `mode` (see the module docs). Canonical mode needs
/// the family of both tokenizers: when either is unknown it falls back to exact matching and
/// says why in [`Matching::notice`].
pub fn match_tokens(source: &Vocab, target: &Vocab, mode: MatchMode) -> Result<Matching> {
    if mode == MatchMode::Exact {
        return Ok(match_vocabularies(source, target));
    }
    for (v, which) in [(source, "source"), (target, "target")] {
        if let TokenFamily::Unknown { reason } = &v.family {
            let mut m = match_vocabularies(source, target);
            m.notice = Some(format!(
                "--match canonical: cannot tell how the {which} tokenizer {} spells tokens ({reason}); matched by exact token string instead",
                v.path.display()
            ));
            return Ok(m);
        }
    }
    let (index, collisions) = canonical_index(source);
    let mut m = match_with(source, target, Some(&index));
    m.source_collisions = collisions;
    Ok(m)
}

/// Canonical form → the preferred source id of that form, and the number of source tokens
/// that lost to another of the same form. Of several source tokens with one form, the one the
/// source tokenizer produces for that text wins (Gemma's added `"\n"` over its byte piece
/// `<0x0A>`); failing that, an ordinary token beats a byte-fallback token (which is only used
/// when nothing else spells the byte), then the lower id wins.
fn canonical_index(source: &Vocab) -> (HashMap<CanonicalToken, u32>, usize) {
    let rank = |id: u32| {
        let byte_token = source
            .token(id)
            .is_some_and(|t| t.len() == 6 && t.starts_with("<0x") && t.ends_with('>'));
        (byte_token, id)
    };
    let groups = source.form_groups();
    let collisions = groups.values().map(|ids| ids.len() - 1).sum();
    let index = groups
        .into_iter()
        .map(|(form, ids)| {
            let winner = match ids.as_slice() {
                [only] => *only,
                _ => (source.produced.get(&form).copied())
                    .filter(|p| ids.contains(p))
                    .unwrap_or_else(|| {
                        ids.iter()
                            .copied()
                            .min_by_key(|&id| rank(id))
                            .unwrap_or(ids[0])
                    }),
            };
            (form, winner)
        })
        .collect();
    (index, collisions)
}

/// Canonical mode: the source token that stands for what target token `t` stands for. A token
/// with a canonical form matches by that form, whatever the spelling (the byte-level `Ċ` is a
/// newline, the SentencePiece letter `Ċ` is U+010A: they do not match); the source token of the
/// same spelling wins when it has the same form. A token without a form (special tokens)
/// matches by exact string a source token that has no form either: ordinary text spelled
/// `<unk>` and a special `<unk>` are different tokens, whichever side each is on.
fn by_meaning(
    source: &Vocab,
    target: &Vocab,
    t: u32,
    index: &HashMap<CanonicalToken, u32>,
) -> Option<u32> {
    let same_spelling = target.token(t).and_then(|tok| source.id(tok));
    let Some(form) = target.canonical(t) else {
        return same_spelling.filter(|&s| source.canonical(s).is_none());
    };
    if let Some(s) = same_spelling {
        if source.canonical(s).as_ref() == Some(&form) {
            return Some(s);
        }
    }
    index.get(&form).copied()
}

fn match_with(
    source: &Vocab,
    target: &Vocab,
    index: Option<&HashMap<CanonicalToken, u32>>,
) -> Matching {
    let mut m = Matching {
        mode: if index.is_some() {
            MatchMode::Canonical
        } else {
            MatchMode::Exact
        },
        ..Matching::default()
    };
    for t in 0..target.len() as u32 {
        let matched = match index {
            None => target.token(t).and_then(|tok| source.id(tok)),
            Some(index) => by_meaning(source, target, t, index),
        };
        if let Some(s) = matched {
            m.overlap.push((t, s));
            if target.token(t) != source.token(s) {
                m.canonical.push(t);
            }
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

/// How many target tokens got their row which way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct MatchCounts {
    /// The rule used.
    pub mode: MatchMode,
    /// Target ids (largest id + 1).
    pub target_tokens: usize,
    /// Copied: the same string is in the source.
    pub exact: usize,
    /// Copied: only the canonical form is in the source.
    pub canonical: usize,
    /// Missing special tokens given the source row of the same role.
    pub special_by_role: usize,
    /// Computed from the overlap.
    pub missing: usize,
    /// Source tokens that lost a canonical form to another source token.
    pub source_collisions: usize,
}

/// A target token and the source token whose row it takes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PairExample {
    /// Target id.
    pub target_id: u32,
    /// Target token string.
    pub target_token: Option<String>,
    /// Source id.
    pub source_id: u32,
    /// Source token string.
    pub source_token: Option<String>,
    /// The shared canonical form as text (canonical matches; a leading space is a word start).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canonical: Option<String>,
    /// The shared role (special-by-role matches).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<SpecialRole>,
}

/// A target token without a source row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MissingExample {
    /// Target id.
    pub target_id: u32,
    /// Target token string.
    pub target_token: Option<String>,
}

/// The first examples of each kind, by target id.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct MatchExamples {
    /// Exact matches.
    pub exact: Vec<PairExample>,
    /// Canonical-only matches.
    pub canonical: Vec<PairExample>,
    /// Special tokens by role.
    pub special_by_role: Vec<PairExample>,
    /// Missing tokens.
    pub missing: Vec<MissingExample>,
}

/// Counts, families and examples of a matching (in `inspect` and `clp_transfer.json`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MatchReport {
    /// The source tokenizer's family.
    pub source_family: TokenFamily,
    /// The target tokenizer's family.
    pub target_family: TokenFamily,
    /// How many of each kind.
    pub counts: MatchCounts,
    /// The first examples of each kind.
    pub examples: MatchExamples,
    /// Why the matching is not the one asked for, if it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
}

impl Matching {
    /// How many target tokens got their row which way.
    pub fn counts(&self) -> MatchCounts {
        MatchCounts {
            mode: self.mode,
            target_tokens: self.overlap.len() + self.by_role.len() + self.missing.len(),
            exact: self.overlap.len() - self.canonical.len(),
            canonical: self.canonical.len(),
            special_by_role: self.by_role.len(),
            missing: self.missing.len(),
            source_collisions: self.source_collisions,
        }
    }

    /// Counts plus the first `examples` of each kind (by target id), with token strings.
    pub fn report(&self, source: &Vocab, target: &Vocab, examples: usize) -> MatchReport {
        let owned = |t: Option<&str>| t.map(str::to_owned);
        let pair = |t: u32, s: u32| PairExample {
            target_id: t,
            target_token: owned(target.token(t)),
            source_id: s,
            source_token: owned(source.token(s)),
            canonical: None,
            role: None,
        };
        let canonical: HashSet<u32> = self.canonical.iter().copied().collect();
        let (by_form, exact): (Vec<_>, Vec<_>) = self
            .overlap
            .iter()
            .copied()
            .partition(|p| canonical.contains(&p.0));
        MatchReport {
            source_family: source.family.clone(),
            target_family: target.family.clone(),
            counts: self.counts(),
            examples: MatchExamples {
                exact: exact
                    .iter()
                    .take(examples)
                    .map(|&(t, s)| pair(t, s))
                    .collect(),
                canonical: by_form
                    .iter()
                    .take(examples)
                    .map(|&(t, s)| PairExample {
                        canonical: target.canonical(t).map(|f| f.text()),
                        ..pair(t, s)
                    })
                    .collect(),
                special_by_role: self
                    .by_role
                    .iter()
                    .take(examples)
                    .map(|r| PairExample {
                        role: Some(r.role),
                        ..pair(r.target_id, r.source_id)
                    })
                    .collect(),
                missing: self
                    .missing
                    .iter()
                    .take(examples)
                    .map(|&t| MissingExample {
                        target_id: t,
                        target_token: owned(target.token(t)),
                    })
                    .collect(),
            },
            notice: self.notice.clone(),
        }
    }
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

    fn family_vocab(tokens: &[&str], family: TokenFamily, added: &[u32]) -> Vocab {
        vocab(tokens).with_family(family, added.iter().copied())
    }

    #[test]
    fn canonical_matching_across_families() {
        // Source: byte-level BPE (GPT-2 style); id 0 is an added special token.
        let mut s = family_vocab(
            &[
                "<|endoftext|>",
                "a",
                "Ġhello",
                "hello",
                "Ċ",
                "ĠfÃ¼r",
                "Ã",
                "Ġ",
                "<unk>",
            ],
            TokenFamily::ByteLevel,
            &[0],
        );
        s.special.insert(SpecialRole::Eos, 0);
        // Target: SentencePiece with byte fallback (Llama style); 0..2 are added specials.
        let sp = TokenFamily::SentencePiece {
            replacement: '▁',
            byte_fallback: true,
        };
        let mut t = family_vocab(
            &[
                "<unk>", "<s>", "</s>", "<0x0A>", "<0xC3>", "▁hello", "hello", "a", "▁für", "▁",
                "▁world", "<0x61>",
            ],
            sp,
            &[0, 1, 2],
        );
        t.special.insert(SpecialRole::Unk, 0);
        t.special.insert(SpecialRole::Bos, 1);
        t.special.insert(SpecialRole::Eos, 2);

        let exact = match_tokens(&s, &t, MatchMode::Exact).unwrap();
        assert_eq!(exact.mode, MatchMode::Exact);
        // `<unk>` is a plain source token with the same string: exact wins over roles.
        assert_eq!(exact.overlap, vec![(0, 8), (6, 3), (7, 1)]);
        assert!(exact.canonical.is_empty());

        let m = match_tokens(&s, &t, MatchMode::Canonical).unwrap();
        // The target's special `<unk>` is not the source's ordinary text `<unk>`: by role only.
        assert_eq!(
            m.overlap,
            vec![
                (3, 4),
                (4, 6),
                (5, 2),
                (6, 3),
                (7, 1),
                (8, 5),
                (9, 7),
                (11, 1)
            ]
        );
        assert_eq!(m.canonical, vec![3, 4, 5, 8, 9, 11]);
        assert_eq!(
            m.by_role,
            vec![RoleMapping {
                target_id: 2,
                source_id: 0,
                role: SpecialRole::Eos
            }]
        );
        // `<unk>` and `<s>` have roles the source lacks; `▁world` is not in the source.
        assert_eq!(m.missing, vec![0, 1, 10]);
        assert_eq!(m.source_collisions, 0);
        let c = m.counts();
        assert_eq!(
            (
                c.exact,
                c.canonical,
                c.special_by_role,
                c.missing,
                c.target_tokens
            ),
            (2, 6, 1, 3, 12)
        );

        let r = m.report(&s, &t, 2);
        assert_eq!(r.examples.exact.len(), 2);
        assert_eq!(
            r.examples.canonical[0].target_token.as_deref(),
            Some("<0x0A>")
        );
        assert_eq!(r.examples.canonical[0].source_token.as_deref(), Some("Ċ"));
        assert_eq!(r.examples.canonical[0].canonical.as_deref(), Some("\n"));
        assert_eq!(r.examples.canonical[1].canonical.as_deref(), Some("\\xC3"));
        assert_eq!(r.examples.special_by_role[0].role, Some(SpecialRole::Eos));
        assert_eq!(r.examples.missing[0].target_token.as_deref(), Some("<unk>"));
        assert_eq!(r.examples.missing[1].target_token.as_deref(), Some("<s>"));
    }

    #[test]
    fn canonical_matches_by_meaning_not_spelling() {
        // Source: SentencePiece with byte fallback whose vocabulary also holds the *letters*
        // Ċ (U+010A), Ġ (U+0120) and â (U+00E2), a literal newline and its byte token.
        let sp = TokenFamily::SentencePiece {
            replacement: '▁',
            byte_fallback: true,
        };
        let s = family_vocab(
            &[
                "Ċ", "Ġ", "â", "<0x0A>", "\n", "<0xE2>", "<0x20>", "▁", "▁hello", "hello",
            ],
            sp,
            &[],
        );
        // Target: byte-level BPE, where Ċ is "\n", Ġ is " " and â is the lone byte 0xE2.
        let t = family_vocab(
            &["Ċ", "Ġ", "â", "Ġhello", "hello", "ÃĪ"],
            TokenFamily::ByteLevel,
            &[],
        );
        let m = match_tokens(&s, &t, MatchMode::Canonical).unwrap();
        // Ċ → the newline the source tokenizer produces ("\n", not <0x0A>, not the letter);
        // Ġ → "▁" (a lone word start; <0x20> is a byte piece); â → <0xE2>; Ġhello → ▁hello;
        // hello → hello (same spelling, same form); ÃĪ (bytes C3 88 = "È") has no source token.
        assert_eq!(m.overlap, vec![(0, 4), (1, 7), (2, 5), (3, 8), (4, 9)]);
        assert_eq!(m.canonical, vec![0, 1, 2, 3]);
        assert_eq!(m.missing, vec![5]);
        assert_eq!(m.notice, None);
        // Exact matching would take the letters: the bug canonical mode must not have.
        let exact = match_tokens(&s, &t, MatchMode::Exact).unwrap();
        assert_eq!(exact.overlap, vec![(0, 0), (1, 1), (2, 2), (4, 9)]);
    }

    #[test]
    fn collisions_prefer_ordinary_tokens_then_lowest_id() {
        // A SentencePiece source spells "a" twice (byte fallback first) and " b" twice.
        let sp = TokenFamily::SentencePiece {
            replacement: '▁',
            byte_fallback: true,
        };
        let s = family_vocab(&["<0x61>", "x", "a", "▁b", "▁b▁", "<0x20>", "▁"], sp, &[]);
        let t = family_vocab(
            &["##a", "b", "##▁"],
            TokenFamily::WordPiece {
                prefix: "##".into(),
            },
            &[],
        );
        let m = match_tokens(&s, &t, MatchMode::Canonical).unwrap();
        // "##a" → "a" (id 2) beats "<0x61>" (id 0); "b" → "▁b"; "##▁" is "▁" as text, no form
        // in the source. "<0x61>" lost to "a" and "<0x20>" to "▁" (both a lone word start).
        assert_eq!(m.overlap, vec![(0, 2), (1, 3)]);
        assert_eq!(m.source_collisions, 2);
    }

    #[test]
    fn canonical_falls_back_to_exact_on_unknown_families() {
        let s = vocab(&["a", "Ġb"]);
        let t = family_vocab(&["a", "Ġb"], TokenFamily::ByteLevel, &[]);
        let m = match_tokens(&s, &t, MatchMode::Canonical).unwrap();
        assert_eq!(m.mode, MatchMode::Exact);
        assert_eq!(m.overlap, vec![(0, 0), (1, 1)]);
        let notice = m.notice.expect("a fallback says so");
        assert!(
            notice.contains("source tokenizer") && notice.contains("exact"),
            "{notice}"
        );
        assert_eq!(match_tokens(&s, &t, MatchMode::Exact).unwrap().notice, None);
        assert_eq!(
            match_tokens(&s, &t, MatchMode::Exact).unwrap().overlap,
            vec![(0, 0), (1, 1)]
        );
        assert_eq!("canonical".parse::<MatchMode>(), Ok(MatchMode::Canonical));
        assert!("fuzzy".parse::<MatchMode>().is_err());
    }
}
