//! Stage 3, **select**: which tokens stay, each for the first reason that applies (see the
//! module docs of [`super`]), and their new ids (0.. in the old order).

use super::corpus::CorpusCounts;
use super::input::Read;
use crate::error::Result;
use crate::model::rewrite;
use crate::tokenizer::{ModelKind, TokenizerJson};
use crate::vocab::Vocab;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

/// Tokens kept, per reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct KeptCounts {
    /// Added tokens, special-token roles, config ids, tokens the tokenizer names.
    pub special: usize,
    /// Forced by `--keep`.
    pub keep_file: usize,
    /// Frequency ≥ `--min-freq` in at least one corpus.
    pub frequency: usize,
    /// Byte-level alphabet / byte-fallback tokens.
    pub byte_alphabet: usize,
    /// Smallest pieces of tokens seen in a corpus but dropped by frequency.
    pub alphabet: usize,
    /// WordPiece: prefixes the greedy walk takes on a word that ends up unknown.
    pub unk_path: usize,
    /// BPE: parts of merges that build a kept token.
    pub merge_closure: usize,
}

/// One corpus in the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CorpusSummary {
    /// The file.
    pub path: PathBuf,
    /// Non-empty lines.
    pub lines: u64,
    /// Tokens under the original tokenizer.
    pub tokens: u64,
    /// Distinct token ids seen.
    pub distinct_tokens: usize,
    /// Distinct tokens at or above `--min-freq`.
    pub frequent_tokens: usize,
}

/// Why a token was kept (first reason that applies, in this order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Reason {
    Special,
    KeepFile,
    Frequency,
    ByteAlphabet,
    Alphabet,
    UnkPath,
    MergeClosure,
}

/// The kept tokens and their new ids.
pub(super) struct Selection {
    /// Per corpus.
    pub summaries: Vec<CorpusSummary>,
    /// Kept tokens per reason.
    pub kept: KeptCounts,
    /// The old ids of the kept tokens, in their new order.
    pub kept_ids: Vec<u32>,
    /// `new_id[old]`: the new id of each kept old id.
    pub new_id: Vec<Option<u32>>,
    /// Token string → new id.
    pub new_ids: HashMap<String, u32>,
}

/// The first reason per token id, filled reason by reason.
struct Marks<'a> {
    vocab: &'a Vocab,
    reason: Vec<Option<Reason>>,
}

impl Marks<'_> {
    /// Marks `token` (if it is in the vocabulary and not marked yet).
    fn mark(&mut self, token: &str, r: Reason) {
        if let Some(id) = self.vocab.id(token) {
            let slot = &mut self.reason[id as usize];
            if slot.is_none() {
                *slot = Some(r);
            }
        }
    }
}

/// Selects the kept tokens; `generation` is the model's generation_config.json, if any.
pub(super) fn select(
    input: &Read,
    counts: &[CorpusCounts],
    generation: Option<&Map<String, Value>>,
    min_freq: f64,
) -> Result<Selection> {
    let (vocab, tj) = (&input.vocab, &input.tj);
    let mut marks = Marks {
        vocab,
        reason: vec![None; vocab.len()],
    };
    mark_special(&mut marks, input, generation);
    for t in &input.keep_tokens {
        marks.mark(t, Reason::KeepFile);
    }
    let summaries = mark_frequent(&mut marks, counts, min_freq);
    for t in tj.byte_alphabet() {
        marks.mark(&t, Reason::ByteAlphabet);
    }
    mark_alphabet(&mut marks, tj, counts);
    if tj.kind == ModelKind::WordPiece {
        mark_unk_paths(&mut marks, input, counts)?;
    }
    let kept_strings: HashSet<String> = (0..vocab.len())
        .filter(|&id| marks.reason[id].is_some())
        .filter_map(|id| vocab.token(id as u32).map(str::to_owned))
        .collect();
    for t in tj.merge_closure(&kept_strings) {
        marks.mark(&t, Reason::MergeClosure);
    }
    Ok(renumber(&marks, summaries))
}

/// Added tokens, tokens the tokenizer names, special-token roles and config ids.
fn mark_special(marks: &mut Marks, input: &Read, generation: Option<&Map<String, Value>>) {
    let (vocab, tj) = (&input.vocab, &input.tj);
    for t in tj.added_tokens().iter().chain(&tj.referenced_tokens()) {
        marks.mark(t, Reason::Special);
    }
    let mut config_ids: Vec<u64> = vocab.special.values().map(|&i| i as u64).collect();
    config_ids.extend(rewrite::config_token_ids(&input.model.config.raw));
    if let Some(g) = generation {
        config_ids.extend(rewrite::config_token_ids(g));
    }
    for id in config_ids {
        if let Some(t) = u32::try_from(id).ok().and_then(|i| vocab.token(i)) {
            marks.mark(t, Reason::Special);
        }
    }
}

/// Tokens at or above `min_freq` in some corpus; returns the per-corpus summaries.
fn mark_frequent(marks: &mut Marks, counts: &[CorpusCounts], min_freq: f64) -> Vec<CorpusSummary> {
    let mut summaries = Vec::new();
    for c in counts {
        let mut distinct = 0;
        let mut frequent = 0;
        for (id, slot) in marks.reason.iter_mut().enumerate() {
            if c.counts[id] == 0 {
                continue;
            }
            distinct += 1;
            if c.frequency(id) >= min_freq {
                frequent += 1;
                slot.get_or_insert(Reason::Frequency);
            }
        }
        summaries.push(CorpusSummary {
            path: c.path.clone(),
            lines: c.lines,
            tokens: c.tokens,
            distinct_tokens: distinct,
            frequent_tokens: frequent,
        });
    }
    summaries
}

/// The smallest pieces of every token seen in a corpus but dropped so far.
fn mark_alphabet(marks: &mut Marks, tj: &TokenizerJson, counts: &[CorpusCounts]) {
    let dropped_seen: Vec<u32> = (0..marks.reason.len())
        .filter(|&id| marks.reason[id].is_none() && counts.iter().any(|c| c.counts[id] > 0))
        .map(|id| id as u32)
        .collect();
    let vocab = marks.vocab;
    for id in dropped_seen {
        if let Some(t) = vocab.token(id) {
            for leaf in tj.leaves(t) {
                marks.mark(&leaf, Reason::Alphabet);
            }
        }
    }
}

/// WordPiece: the prefixes the greedy walk takes on every word that became unknown.
fn mark_unk_paths(marks: &mut Marks, input: &Read, counts: &[CorpusCounts]) -> Result<()> {
    let spans: std::collections::BTreeSet<&String> =
        counts.iter().flat_map(|c| &c.unk_spans).collect();
    for span in spans {
        for word in pre_tokenized_words(&input.counting, span)? {
            for t in input.tj.wordpiece_path(&word) {
                marks.mark(&t, Reason::UnkPath);
            }
        }
    }
    Ok(())
}

/// New ids 0.. for the marked tokens, in their old order, and the counts per reason.
fn renumber(marks: &Marks, summaries: Vec<CorpusSummary>) -> Selection {
    let n = marks.reason.len();
    let mut kept = KeptCounts::default();
    let mut kept_ids: Vec<u32> = Vec::new();
    let mut new_id: Vec<Option<u32>> = vec![None; n];
    let mut new_ids: HashMap<String, u32> = HashMap::new();
    for (id, r) in marks.reason.iter().enumerate() {
        let Some(r) = r else { continue };
        let Some(token) = marks.vocab.token(id as u32) else {
            continue;
        };
        *match r {
            Reason::Special => &mut kept.special,
            Reason::KeepFile => &mut kept.keep_file,
            Reason::Frequency => &mut kept.frequency,
            Reason::ByteAlphabet => &mut kept.byte_alphabet,
            Reason::Alphabet => &mut kept.alphabet,
            Reason::UnkPath => &mut kept.unk_path,
            Reason::MergeClosure => &mut kept.merge_closure,
        } += 1;
        let new = kept_ids.len() as u32;
        new_id[id] = Some(new);
        new_ids.insert(token.to_string(), new);
        kept_ids.push(id as u32);
    }
    Selection {
        summaries,
        kept,
        kept_ids,
        new_id,
        new_ids,
    }
}

/// The words the tokenizer's normalizer and pre-tokenizer make of `span`.
fn pre_tokenized_words(tok: &tokenizers::Tokenizer, span: &str) -> Result<Vec<String>> {
    use tokenizers::{Normalizer, OffsetReferential, OffsetType, PreTokenizer};
    let fail = |e: tokenizers::Error| {
        crate::error::Error::Model(format!(
            "the tokenizer failed on `{span}`: {}",
            crate::error::one_line(&e.to_string())
        ))
    };
    let mut normalized = tokenizers::NormalizedString::from(span);
    if let Some(n) = tok.get_normalizer() {
        n.normalize(&mut normalized).map_err(fail)?;
    }
    let mut pre = tokenizers::PreTokenizedString::from(normalized);
    if let Some(p) = tok.get_pre_tokenizer() {
        p.pre_tokenize(&mut pre).map_err(fail)?;
    }
    Ok(pre
        .get_splits(OffsetReferential::Original, OffsetType::Byte)
        .into_iter()
        .map(|(s, _, _)| s.to_string())
        .collect())
}
