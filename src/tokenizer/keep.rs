//! What a vocabulary subset of a tokenizer must keep so that the text of its kept tokens still
//! tokenizes the same way, and any text stays encodable: the BPE merge closure, the byte
//! alphabet, the leaves of a dropped token, the WordPiece prefixes of a failed word.
//!
//! Why a subset tokenizes kept text the same way:
//! - BPE applies, at every step, the lowest-ranked merge among adjacent pairs. Every merge a
//!   kept word went through has its parts and result kept (the closure), so it survives, keeps
//!   its relative rank and is still the lowest of a subset: the same merges run in the same order.
//! - WordPiece takes the longest vocabulary prefix at every position. The tokens it took are
//!   kept, longer candidates were absent before and still are. A word that became `[UNK]`
//!   keeps the prefixes the greedy walk took before failing (see `wordpiece_path`).
//! - Unigram picks the best-scoring segmentation; the best one survives and the set of
//!   alternatives only shrinks. WordLevel looks whole words up.

use super::bytes::{byte_level_alphabet, byte_token};
use super::file::{ModelKind, TokenizerJson};
use serde_json::Value;
use std::collections::HashSet;

impl TokenizerJson {
    /// Tokens that keep any text encodable: the 256 characters of a byte-level pre-tokenizer's
    /// alphabet and the `<0xNN>` tokens of byte fallback, where the vocabulary has them.
    pub fn byte_alphabet(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.root.get("pre_tokenizer").is_some_and(has_byte_level) {
            out.extend(byte_level_alphabet().into_iter().map(String::from));
        }
        if self.byte_fallback() {
            out.extend((0..=255u8).map(byte_token));
        }
        out.retain(|t| self.model_vocab.contains(t));
        out
    }

    /// The smallest pieces `token` is built from: the leaves of its BPE merge tree, or its
    /// single characters (as vocabulary tokens) for the other models. Keeping them keeps the
    /// text of a dropped token encodable (in smaller pieces).
    pub fn leaves(&self, token: &str) -> Vec<String> {
        let mut out = Vec::new();
        match self.kind {
            ModelKind::Bpe => {
                let mut stack = vec![token.to_string()];
                let mut seen = HashSet::new();
                while let Some(t) = stack.pop() {
                    if !seen.insert(t.clone()) {
                        continue;
                    }
                    match self.produced_by.get(&t).and_then(|m| m.first()) {
                        Some(&i) => {
                            let (a, b) = &self.merges[i];
                            stack.push(b.clone());
                            stack.push(a.clone());
                        }
                        None if self.model_vocab.contains(&t) => out.push(t),
                        None => {}
                    }
                }
            }
            ModelKind::WordPiece => {
                let (body, continued) = match token.strip_prefix(&self.prefix) {
                    Some(rest) if !self.prefix.is_empty() => (rest, true),
                    _ => (token, false),
                };
                for (i, c) in body.chars().enumerate() {
                    let piece = if i == 0 && !continued {
                        c.to_string()
                    } else {
                        format!("{}{c}", self.prefix)
                    };
                    if self.model_vocab.contains(&piece) {
                        out.push(piece);
                    }
                }
            }
            ModelKind::Unigram => {
                for c in token.chars() {
                    let piece = c.to_string();
                    if self.model_vocab.contains(&piece) {
                        out.push(piece);
                    }
                }
            }
            ModelKind::WordLevel => {}
        }
        out
    }

    /// BPE: every token some merge producing a kept token passes through, transitively,
    /// that is not already kept. Empty for the other models.
    pub fn merge_closure(&self, kept: &HashSet<String>) -> Vec<String> {
        let mut added = Vec::new();
        let mut seen: HashSet<&str> = HashSet::new();
        let mut stack: Vec<&str> = kept.iter().map(String::as_str).collect();
        while let Some(t) = stack.pop() {
            if !seen.insert(t) {
                continue;
            }
            for &i in self.produced_by.get(t).map_or(&[][..], Vec::as_slice) {
                let (a, b) = &self.merges[i];
                for part in [a.as_str(), b.as_str()] {
                    if !kept.contains(part) && !seen.contains(part) {
                        added.push(part.to_string());
                    }
                    stack.push(part);
                }
            }
        }
        added.sort();
        added.dedup();
        added
    }

    /// WordPiece: the tokens the greedy longest-prefix walk takes on `word` (a normalized,
    /// pre-tokenized word) before it finishes or fails. Empty for the other models.
    pub fn wordpiece_path(&self, word: &str) -> Vec<String> {
        let mut out = Vec::new();
        if self.kind != ModelKind::WordPiece || word.chars().count() > self.max_chars_per_word {
            return out;
        }
        let mut start = 0;
        while start < word.len() {
            let mut end = word.len();
            let mut found = None;
            while start < end {
                let sub = &word[start..end];
                let piece = if start > 0 {
                    format!("{}{sub}", self.prefix)
                } else {
                    sub.to_string()
                };
                if self.model_vocab.contains(&piece) {
                    found = Some(piece);
                    break;
                }
                end -= sub.chars().last().map_or(1, char::len_utf8);
            }
            match found {
                Some(p) => {
                    out.push(p);
                    start = end;
                }
                None => break,
            }
        }
        out
    }
}

/// Whether a pre-tokenizer is or contains ByteLevel.
pub fn has_byte_level(pre: &Value) -> bool {
    match pre.get("type").and_then(Value::as_str) {
        Some("ByteLevel") => true,
        Some("Sequence") => pre
            .get("pretokenizers")
            .and_then(Value::as_array)
            .is_some_and(|l| l.iter().any(has_byte_level)),
        _ => false,
    }
}
