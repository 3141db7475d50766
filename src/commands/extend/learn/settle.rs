//! The repair loop: build the extension from the first `add` proposed tokens that are not
//! banned, load it with the tokenizers crate, and check it on the training text; ban every new
//! token a check blames and build again, until no check fails (the ban set grows every round,
//! so this ends; with every proposal banned the extension is the original tokenizer).
//!
//! Checks, in order: on every distinct training word (the model's own input), the extended
//! model takes no more tokens and spells out no unknown token the original did not have (the
//! new tokens in a failing word are blamed); every new token is reachable (the model turns
//! its content into exactly that token); every token is used at least `min_freq` times; then,
//! on every training line with the whole tokenizer, no line takes more tokens and every line
//! decodes to what the original decodes it to, an original unknown token standing for any
//! text (the new tokens in a failing line are blamed).

use super::bpe::{Table, Trained};
use super::original::{load_for_counting, Family, Original};
use super::scored::Listed;
use super::types::{Extension, Fertility, LearnOptions, NewToken};
use super::words::WordCounts;
use super::write::{extended_root, to_bytes, Entry};
use crate::error::{Error, Result};
use rayon::prelude::*;
use std::collections::{BTreeMap, HashMap, HashSet};
use tokenizers::Model;

/// What a trainer proposes.
pub enum Proposal {
    /// BPE: trained merges to make reachable.
    Bpe(Trained),
    /// Unigram, WordPiece: tokens in order of usefulness.
    Listed(Listed),
}

/// One token of a built extension.
struct Planned {
    content: String,
    id: u32,
    score: Option<f64>,
    /// BPE: how often its merge fires on the training words (else counted on the model).
    formed: Option<u64>,
}

/// A built extension: new tokens in id order and appended merges.
struct Built {
    tokens: Vec<Planned>,
    merges: Vec<(String, String)>,
}

/// Reasons a token is dropped, with counts and a few examples, for the notes.
#[derive(Default)]
struct Notes(BTreeMap<&'static str, (usize, Vec<String>)>);

impl Notes {
    fn add(&mut self, reason: &'static str, token: &str) {
        let e = self.0.entry(reason).or_default();
        e.0 += 1;
        if e.1.len() < 5 {
            e.1.push(format!("{token:?}"));
        }
    }

    fn lines(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|(r, (n, ex))| format!("dropped {n} token(s) {r} (e.g. {})", ex.join(", ")))
            .collect()
    }
}

/// Rounds after which the loop stops refilling the budget from further proposals and only
/// removes tokens.
const REFILL_ROUNDS: usize = 16;

/// Builds, checks and repairs the extension; see the module documentation.
pub fn settle(
    orig: &Original,
    proposal: &Proposal,
    counts: &WordCounts,
    lines: &[String],
    opts: &LearnOptions,
) -> Result<Extension> {
    let mut table = matches!(proposal, Proposal::Bpe(_)).then(|| Table::new(orig));
    let words: Vec<(&String, u64)> = counts.iter().map(|(w, &n)| (w, n)).collect();
    let unk = orig.unk_id();
    let before: Vec<WordSeg> = words
        .par_iter()
        .map(|(w, _)| WordSeg::of(orig.model(), w, unk, u32::MAX))
        .collect::<Result<_>>()?;
    let orig_lines = encode_lines(&orig.tokenizer, lines);
    let unk_text = unk.and_then(|u| orig.tokenizer.id_to_token(u));
    let mut banned: HashSet<String> = HashSet::new();
    let mut notes = Notes::default();
    let mut pool: Option<HashSet<String>> = None;
    for round in 0.. {
        let built = build(
            orig,
            proposal,
            table.as_mut(),
            counts,
            opts.add,
            &banned,
            pool.as_ref(),
        );
        let entries: Vec<Entry> = built
            .tokens
            .iter()
            .map(|t| Entry {
                content: &t.content,
                id: t.id,
                score: t.score,
            })
            .collect();
        let root = extended_root(orig, &entries, &built.merges)?;
        let ext = load_for_counting(&orig.path, &root)?;
        let (freq, mut blamed) = check_words(orig, &ext, &words, &before, unk, &built)?;
        for t in &built.tokens {
            if freq.get(&t.id).copied().unwrap_or(0) < opts.min_freq {
                blamed
                    .entry(t.content.clone())
                    .or_insert("seen fewer than --min-freq times");
            }
        }
        let mut line_failures = false;
        if blamed.is_empty() {
            let ext_lines = encode_lines(&ext, lines);
            let (_, failing) = compare(&orig_lines, &ext_lines, lines, unk_text.as_deref());
            line_failures = !failing.is_empty();
            for i in failing {
                for id in ext_lines[i].as_ref().map_or(&[][..], |e| &e.0[..]) {
                    if let Some(t) = built.tokens.iter().find(|t| t.id == *id) {
                        blamed
                            .entry(t.content.clone())
                            .or_insert("that made a training line longer or decode differently");
                    }
                }
            }
        }
        if blamed.is_empty() && !line_failures {
            return finish(orig, proposal, built, &freq, &root, notes);
        }
        if blamed.is_empty() {
            // A failing line none of whose tokens is new: drop the whole build rather than
            // keep an extension that breaks a line (never seen; a guard, not a strategy).
            for t in &built.tokens {
                blamed.insert(
                    t.content.clone(),
                    "in a build whose failure could not be attributed",
                );
            }
        }
        for (t, reason) in blamed {
            notes.add(reason, &t);
            banned.insert(t);
        }
        if round + 1 >= REFILL_ROUNDS {
            pool = Some(built.tokens.into_iter().map(|t| t.content).collect());
        }
    }
    unreachable!("the loop returns")
}

/// The extension from the proposal, without the banned tokens (and, once `pool` is set, only
/// tokens in it).
fn build(
    orig: &Original,
    proposal: &Proposal,
    table: Option<&mut Table>,
    counts: &WordCounts,
    add: usize,
    banned: &HashSet<String>,
    pool: Option<&HashSet<String>>,
) -> Built {
    match (proposal, table) {
        (Proposal::Bpe(trained), Some(table)) => {
            table.reset();
            table.plan(trained, add, banned);
            let formed = table.frequencies(counts);
            Built {
                tokens: table
                    .added
                    .iter()
                    .map(|a| Planned {
                        content: a.content.clone(),
                        id: a.id,
                        score: None,
                        formed: Some(formed.get(&a.id).copied().unwrap_or(0)),
                    })
                    .collect(),
                merges: table.new_merges.clone(),
            }
        }
        (Proposal::Listed(listed), _) => Built {
            tokens: listed
                .candidates
                .iter()
                .filter(|c| !banned.contains(&c.content))
                .filter(|c| pool.is_none_or(|p| p.contains(&c.content)))
                .take(add)
                .zip(orig.first_new_id..)
                .map(|(c, id)| Planned {
                    content: c.content.clone(),
                    id,
                    score: c.score,
                    formed: None,
                })
                .collect(),
            merges: Vec::new(),
        },
        (Proposal::Bpe(_), None) => Built {
            tokens: Vec::new(),
            merges: Vec::new(),
        },
    }
}

/// A word under a model: its token count, the bytes its unknown tokens cover and its new
/// tokens (ids from `first`).
struct WordSeg {
    tokens: usize,
    unknown: Vec<(usize, usize)>,
    new: Vec<(u32, String)>,
}

impl WordSeg {
    fn of(model: &impl Model, word: &str, unk: Option<u32>, first: u32) -> Result<WordSeg> {
        let toks = model.tokenize(word).map_err(|e| {
            Error::Model(format!(
                "the tokenizer's model cannot encode the training word {word:?} ({e}); check the corpus text"
            ))
        })?;
        Ok(WordSeg {
            tokens: toks.len(),
            unknown: toks
                .iter()
                .filter(|t| Some(t.id) == unk)
                .map(|t| t.offsets)
                .collect(),
            new: toks
                .iter()
                .filter(|t| t.id >= first)
                .map(|t| (t.id, t.value.clone()))
                .collect(),
        })
    }
}

/// The word-level checks of one round: how often each new token is used (BPE: formed) and the
/// tokens blamed, with the reason.
#[allow(clippy::type_complexity)]
fn check_words(
    orig: &Original,
    ext: &tokenizers::Tokenizer,
    words: &[(&String, u64)],
    before: &[WordSeg],
    unk: Option<u32>,
    built: &Built,
) -> Result<(HashMap<u32, u64>, BTreeMap<String, &'static str>)> {
    let first = orig.first_new_id;
    let model = ext.get_model();
    let after: Vec<WordSeg> = words
        .par_iter()
        .map(|(w, _)| WordSeg::of(model, w, unk, first))
        .collect::<Result<_>>()?;
    let mut used: HashMap<u32, u64> = HashMap::new();
    let mut blamed = BTreeMap::new();
    for (((w, n), b), a) in words.iter().zip(before).zip(&after) {
        let spelled_out = a
            .unknown
            .iter()
            .any(|&(s, e)| !b.unknown.iter().any(|&(bs, be)| bs <= s && e <= be));
        let longer = a.tokens > b.tokens;
        for (id, _) in &a.new {
            *used.entry(*id).or_default() += n;
        }
        if longer || spelled_out {
            let reason = if longer {
                "that made a training word longer"
            } else {
                "that turned a training word into an unknown token"
            };
            let mut culprits: Vec<String> = a.new.iter().map(|t| t.1.clone()).collect();
            if culprits.is_empty() && orig.family == Family::WordPiece {
                // The word became one unknown token: blame the new entries the greedy walk
                // took before it failed.
                culprits = wordpiece_walk(model, w, &orig.prefix)
                    .into_iter()
                    .filter(|&id| id >= first)
                    .filter_map(|id| model.id_to_token(id))
                    .collect();
            }
            for c in culprits {
                blamed.entry(c).or_insert(reason);
            }
        }
    }
    for t in &built.tokens {
        if let Some(f) = t.formed {
            used.insert(t.id, f);
        }
        let continuation = orig.family == Family::WordPiece && t.content.starts_with(&orig.prefix);
        if continuation {
            continue;
        }
        let reached = model.tokenize(&t.content).ok();
        if reached
            .as_deref()
            .map(|r| r.iter().map(|x| x.id).collect::<Vec<_>>())
            != Some(vec![t.id])
        {
            blamed
                .entry(t.content.clone())
                .or_insert("that its own text does not reach (another segmentation scores higher)");
        }
    }
    Ok((used, blamed))
}

/// The ids WordPiece's greedy longest-prefix walk takes on `word` before it ends or fails.
fn wordpiece_walk(model: &impl Model, word: &str, prefix: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < word.len() {
        let found = (start + 1..=word.len())
            .rev()
            .filter(|&end| word.is_char_boundary(end))
            .find_map(|end| {
                let sub = &word[start..end];
                let piece = if start > 0 {
                    format!("{prefix}{sub}")
                } else {
                    sub.to_string()
                };
                Some((end, model.token_to_id(&piece)?))
            });
        match found {
            Some((end, id)) => {
                out.push(id);
                start = end;
            }
            None => break,
        }
    }
    out
}

/// Every line encoded (no special tokens) and decoded; `None` where encoding failed.
type Encoded = Option<(Vec<u32>, String)>;

fn encode_lines(tok: &tokenizers::Tokenizer, lines: &[String]) -> Vec<Encoded> {
    lines
        .par_iter()
        .map(|l| {
            let ids = tok.encode(l.as_str(), false).ok()?.get_ids().to_vec();
            let text = tok.decode(&ids, false).ok()?;
            Some((ids, text))
        })
        .collect()
}

/// Fertility of `ext` against `orig` and the lines that got longer or decode differently.
fn compare(
    orig: &[Encoded],
    ext: &[Encoded],
    lines: &[String],
    unk_text: Option<&str>,
) -> (Fertility, Vec<usize>) {
    let mut f = Fertility::default();
    let mut failing = Vec::new();
    for (i, ((o, e), line)) in orig.iter().zip(ext).zip(lines).enumerate() {
        f.lines += 1;
        f.bytes += line.len() as u64;
        let (Some((oi, od)), Some((ei, ed))) = (o, e) else {
            f.roundtrip_failures += 1;
            failing.push(i);
            continue;
        };
        f.tokens_before += oi.len() as u64;
        f.tokens_after += ei.len() as u64;
        let longer = ei.len() > oi.len();
        let same =
            od == ed || unk_text.is_some_and(|u| od.contains(u) && wildcard_match(od, u, ed));
        f.longer += usize::from(longer);
        f.roundtrip_failures += usize::from(!same);
        if longer || !same {
            failing.push(i);
        }
    }
    (f, failing)
}

/// Whether `text` is `pattern` with every `wild` in it replaced by some text.
fn wildcard_match(pattern: &str, wild: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split(wild).collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if parts.len() == 1 {
        return pattern == text;
    }
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(p) => rest = &rest[p + mid.len()..],
            None => return false,
        }
    }
    true
}

/// [`super::check`]: both tokenizers on every line.
pub fn compare_lines(
    original: &tokenizers::Tokenizer,
    extended: &tokenizers::Tokenizer,
    lines: &[String],
) -> (Fertility, Vec<usize>) {
    let unk_text = unk_token_text(original);
    compare(
        &encode_lines(original, lines),
        &encode_lines(extended, lines),
        lines,
        unk_text.as_deref(),
    )
}

/// The unknown token of a tokenizer's model, as text.
fn unk_token_text(tok: &tokenizers::Tokenizer) -> Option<String> {
    use tokenizers::ModelWrapper;
    match tok.get_model() {
        ModelWrapper::BPE(b) => b.get_unk_token().clone(),
        ModelWrapper::WordPiece(w) => Some(w.unk_token.clone()),
        ModelWrapper::Unigram(u) => {
            // The Unigram model does not expose its unk id: ask it for a private-use character.
            let t = u.tokenize("\u{10FFFD}").ok()?;
            (t.len() == 1).then(|| u.id_to_token(t[0].id)).flatten()
        }
        _ => None,
    }
}

/// The extension's bytes and report.
fn finish(
    orig: &Original,
    proposal: &Proposal,
    built: Built,
    used: &HashMap<u32, u64>,
    root: &serde_json::Map<String, serde_json::Value>,
    notes: Notes,
) -> Result<Extension> {
    let mut out_notes = notes.lines();
    if let Proposal::Listed(Listed { note: Some(n), .. }) = proposal {
        out_notes.insert(0, n.clone());
    }
    let tokens = built
        .tokens
        .iter()
        .enumerate()
        .map(|(rank, t)| NewToken {
            id: t.id,
            content: t.content.clone(),
            text: orig.text_of(&t.content),
            rank,
            frequency: used.get(&t.id).copied().unwrap_or(0),
            pieces_before: pieces_before(orig, &t.content),
        })
        .collect();
    Ok(Extension {
        family: orig.family.name(),
        tokenizer_json: to_bytes(orig, root)?,
        tokens,
        notes: out_notes,
    })
}

/// `content` under the original model (WordPiece continuations: the greedy longest-prefix
/// walk with the continuation prefix at every position).
fn pieces_before(orig: &Original, content: &str) -> Vec<u32> {
    let unk = orig.unk_id();
    if orig.family == Family::WordPiece {
        if let Some(body) = content.strip_prefix(orig.prefix.as_str()) {
            let mut out = Vec::new();
            let mut start = 0;
            while start < body.len() {
                let found = (start + 1..=body.len())
                    .rev()
                    .filter(|&end| body.is_char_boundary(end))
                    .find_map(|end| {
                        let id =
                            orig.vocab
                                .get(&format!("{}{}", orig.prefix, &body[start..end]))?;
                        Some((end, *id))
                    });
                match found {
                    Some((end, id)) => {
                        out.push(id);
                        start = end;
                    }
                    None => return unk.into_iter().collect(),
                }
            }
            return out;
        }
    }
    orig.model()
        .tokenize(content)
        .map(|t| t.into_iter().map(|t| t.id).collect())
        .unwrap_or_default()
}
