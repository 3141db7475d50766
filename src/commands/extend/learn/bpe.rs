//! BPE (byte-level and SentencePiece): a BPE of the model's own kind is trained on the words,
//! and its merges, in rank order, are made reachable one by one in the ORIGINAL tokenizer by
//! merges appended after the existing ones.
//!
//! Why appending keeps every guarantee: BPE applies, at every step, the lowest-ranked merge
//! among adjacent pairs. A merge ranked after all others applies only where the tokenizer
//! would otherwise have stopped, so every text is segmented as before and then possibly
//! merged further: never more tokens, the same bytes (the extension is reached from the old
//! final segmentation). To make a trained token T reachable, [`Table::reach`] segments T's
//! text with the tokenizer as extended so far and merges the pieces it gets, two by two
//! (preferring pairs that are themselves trained tokens, earliest first), each merge appended
//! with a fresh rank; pieces that are intermediate tokens count against the budget. A
//! character the vocabulary lacks (SentencePiece: byte fallback) becomes a token first.

use super::original::{Family, Original};
use super::types::LearnOptions;
use super::words::WordCounts;
use crate::error::{Error, Result};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::Trainer;

/// A trained BPE: its merge results in rank order.
pub struct Trained {
    /// The token each trained merge produces, in rank order (first occurrence).
    pub results: Vec<String>,
    /// Rank of each of them.
    pub rank_of: HashMap<String, usize>,
}

impl Trained {
    /// Trains a BPE on `counts` with room for `3·add + 256` merges beyond every token the model
    /// already has: the more of the language the vocabulary covers, the more of the trained
    /// merges it already holds, so the budget grows with it. The trainer stops anyway where no
    /// pair is seen `min_freq` times, so a large budget costs nothing on a small corpus.
    pub fn train(orig: &Original, counts: &WordCounts, opts: &LearnOptions) -> Result<Trained> {
        let mut alphabet: HashSet<char> = counts.keys().flat_map(|w| w.chars()).collect();
        let initial: HashSet<char> = if orig.family == Family::ByteLevelBpe {
            ByteLevel::alphabet().into_iter().collect()
        } else {
            HashSet::new()
        };
        alphabet.extend(initial.iter().copied());
        let merges =
            (opts.add.saturating_mul(3).saturating_add(256)).saturating_add(orig.vocab.len());
        let mut trainer = BpeTrainerBuilder::new()
            .show_progress(false)
            .vocab_size(alphabet.len().saturating_add(merges))
            .min_frequency(opts.min_freq)
            .initial_alphabet(initial)
            .build();
        let occurrences = counts
            .iter()
            .flat_map(|(w, &n)| std::iter::repeat_n(w.as_str(), n as usize));
        let train_err = |e: tokenizers::Error| {
            Error::Model(format!(
                "{}: training a BPE on the corpus failed ({e}); check the corpus text",
                orig.path.display()
            ))
        };
        trainer
            .feed(occurrences, |w| Ok(vec![w.to_string()]))
            .map_err(train_err)?;
        let mut model = BPE::default();
        trainer.train(&mut model).map_err(train_err)?;
        let json = serde_json::to_value(&model).map_err(|e| {
            Error::Model(format!(
                "cannot read the trained BPE back ({e}) (a bug in clp-gpu)"
            ))
        })?;
        let mut results = Vec::new();
        let mut rank_of = HashMap::new();
        for (a, b) in merge_pairs(json.get("merges")) {
            let r = format!("{a}{b}");
            if !rank_of.contains_key(&r) {
                rank_of.insert(r.clone(), results.len());
                results.push(r);
            }
        }
        Ok(Trained { results, rank_of })
    }
}

/// BPE merges of a JSON list (`"a b"` strings or `["a", "b"]` pairs), unreadable ones skipped.
pub fn merge_pairs(list: Option<&Value>) -> Vec<(String, String)> {
    let list = list
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    list.iter()
        .filter_map(|m| match m {
            Value::String(s) => {
                let (a, b) = s.split_once(' ')?;
                Some((a.to_string(), b.to_string()))
            }
            Value::Array(p) => match p.as_slice() {
                [Value::String(a), Value::String(b)] => Some((a.clone(), b.clone())),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// One change to the table, kept so a failed chain can be undone.
enum Op {
    Token(String),
    Merge((u32, u32)),
}

/// A token the plan adds.
pub struct Added {
    /// As written in the vocabulary.
    pub content: String,
    /// Its id.
    pub id: u32,
}

/// The original BPE (vocabulary, merges by pair) plus what the plan appended.
pub struct Table {
    vocab: HashMap<String, u32>,
    names: HashMap<u32, String>,
    merges: HashMap<(u32, u32), (u32, u32)>,
    ignore_merges: bool,
    next_rank: u32,
    first_new_id: u32,
    next_id: u32,
    known: HashSet<String>,
    log: Vec<Op>,
    /// Tokens added, in creation order.
    pub added: Vec<Added>,
    /// Merges appended, in rank order.
    pub new_merges: Vec<(String, String)>,
}

impl Table {
    /// The original tokenizer's BPE.
    pub fn new(orig: &Original) -> Table {
        let model = orig.root.get("model");
        let vocab = orig.vocab.clone();
        let names = vocab.iter().map(|(t, &i)| (i, t.clone())).collect();
        let mut merges = HashMap::new();
        let list = merge_pairs(model.and_then(|m| m.get("merges")));
        for (rank, (a, b)) in list.iter().enumerate() {
            let ids = (vocab.get(a), vocab.get(b), vocab.get(&format!("{a}{b}")));
            if let (Some(&x), Some(&y), Some(&r)) = ids {
                merges.insert((x, y), (rank as u32, r));
            }
        }
        let ignore_merges = model
            .and_then(|m| m.get("ignore_merges"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Table {
            vocab,
            names,
            merges,
            ignore_merges,
            next_rank: list.len() as u32,
            first_new_id: orig.first_new_id,
            next_id: orig.first_new_id,
            known: orig.known.clone(),
            log: Vec::new(),
            added: Vec::new(),
            new_merges: Vec::new(),
        }
    }

    /// Makes the trained tokens reachable, in rank order, until `add` tokens are added;
    /// tokens in `banned` are never created (nor are the tokens whose chain needs one).
    pub fn plan(&mut self, trained: &Trained, add: usize, banned: &HashSet<String>) {
        for cand in &trained.results {
            if self.added.len() >= add {
                break;
            }
            let mark = self.log.len();
            if self.reach(cand, trained, add, banned).is_err() {
                self.rollback(mark);
            }
        }
    }

    /// Undoes everything after `mark` in the log.
    fn rollback(&mut self, mark: usize) {
        while self.log.len() > mark {
            match self.log.pop() {
                Some(Op::Token(t)) => {
                    if let Some(id) = self.vocab.remove(&t) {
                        self.names.remove(&id);
                    }
                    self.added.pop();
                    self.next_id -= 1;
                }
                Some(Op::Merge(pair)) => {
                    self.merges.remove(&pair);
                    self.new_merges.pop();
                    self.next_rank -= 1;
                }
                None => break,
            }
        }
    }

    /// Adds the merges (and tokens) that make `cand` one token; `Err` when the budget or a
    /// banned token stops the chain (the caller rolls back).
    fn reach(
        &mut self,
        cand: &str,
        trained: &Trained,
        add: usize,
        banned: &HashSet<String>,
    ) -> Result<(), ()> {
        loop {
            let seg = self.segment(cand, &mut |_| {});
            if seg.len() == 1 && seg[0].is_some() {
                return Ok(());
            }
            if seg.iter().any(Option::is_none) {
                for c in cand.chars() {
                    let s = c.to_string();
                    if !self.vocab.contains_key(&s) {
                        self.new_token(s, add, banned)?;
                    }
                }
                continue;
            }
            let ids: Vec<u32> = seg.into_iter().flatten().collect();
            let mut best: Option<(usize, usize)> = None;
            for i in 0..ids.len() - 1 {
                let joined = format!("{}{}", self.names[&ids[i]], self.names[&ids[i + 1]]);
                let key = trained.rank_of.get(&joined).copied().unwrap_or(usize::MAX);
                if best.is_none_or(|(k, _)| key < k) {
                    best = Some((key, i));
                }
            }
            let (_, i) = best.ok_or(())?;
            let (a, b) = (ids[i], ids[i + 1]);
            let (sa, sb) = (self.names[&a].clone(), self.names[&b].clone());
            let joined = format!("{sa}{sb}");
            let result = match self.vocab.get(&joined) {
                Some(&r) => r,
                None => self.new_token(joined, add, banned)?,
            };
            self.merges.insert((a, b), (self.next_rank, result));
            self.next_rank += 1;
            self.new_merges.push((sa, sb));
            self.log.push(Op::Merge((a, b)));
        }
    }

    /// Adds `content` as a new token.
    fn new_token(
        &mut self,
        content: String,
        add: usize,
        banned: &HashSet<String>,
    ) -> Result<u32, ()> {
        if self.added.len() >= add || banned.contains(&content) || self.known.contains(&content) {
            return Err(());
        }
        let id = self.next_id;
        self.next_id += 1;
        self.vocab.insert(content.clone(), id);
        self.names.insert(id, content.clone());
        self.added.push(Added {
            content: content.clone(),
            id,
        });
        self.log.push(Op::Token(content));
        Ok(id)
    }

    /// The BPE segmentation of one word as the tokenizers crate computes it (lowest-ranked
    /// merge first, leftmost on ties); `None` is a character outside the vocabulary (byte
    /// fallback or unknown), which no merge joins. `created` sees every new token formed.
    pub fn segment(&self, word: &str, created: &mut dyn FnMut(u32)) -> Vec<Option<u32>> {
        if self.ignore_merges {
            if let Some(&id) = self.vocab.get(word) {
                if id >= self.first_new_id {
                    created(id);
                }
                return vec![Some(id)];
            }
        }
        let mut buf = [0u8; 4];
        let mut syms: Vec<Option<u32>> = word
            .chars()
            .map(|c| self.vocab.get(&*c.encode_utf8(&mut buf)).copied())
            .collect();
        for &id in syms.iter().flatten() {
            if id >= self.first_new_id {
                created(id);
            }
        }
        loop {
            let mut best: Option<(u32, usize, u32)> = None;
            for i in 0..syms.len().saturating_sub(1) {
                if let (Some(a), Some(b)) = (syms[i], syms[i + 1]) {
                    if let Some(&(rank, result)) = self.merges.get(&(a, b)) {
                        if best.is_none_or(|(r, _, _)| rank < r) {
                            best = Some((rank, i, result));
                        }
                    }
                }
            }
            let Some((_, i, result)) = best else {
                return syms;
            };
            syms[i] = Some(result);
            syms.remove(i + 1);
            if result >= self.first_new_id {
                created(result);
            }
        }
    }

    /// How often each added token is formed when the training words are segmented.
    pub fn frequencies(&self, counts: &WordCounts) -> HashMap<u32, u64> {
        let mut freq: HashMap<u32, u64> = HashMap::new();
        for (w, &n) in counts {
            self.segment(w, &mut |id| *freq.entry(id).or_default() += n);
        }
        freq
    }

    /// Undoes the whole plan (back to the original tokenizer).
    pub fn reset(&mut self) {
        self.rollback(0);
    }
}
