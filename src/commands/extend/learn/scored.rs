//! Unigram and WordPiece: the trainer's new tokens as an ordered list of candidates (no merge
//! chains: any piece or entry can be used on its own). Unigram pieces keep the trained score
//! mapped onto the model's own scale; WordPiece entries come in the trainer's merge order,
//! each preceded by the characters (`c`, `##c`) it needs that the vocabulary lacks.

use super::bpe::merge_pairs;
use super::original::Original;
use super::types::LearnOptions;
use super::words::WordCounts;
use crate::error::{Error, Result};
use serde_json::Value;
use std::collections::{BTreeSet, HashSet};
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::unigram::{Unigram, UnigramTrainer};
use tokenizers::{AddedToken, Trainer};

/// One candidate token.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// As written in the vocabulary.
    pub content: String,
    /// Unigram: its score on the model's scale.
    pub score: Option<f64>,
}

/// Candidates in order of usefulness.
pub struct Listed {
    /// The candidates, most useful first.
    pub candidates: Vec<Candidate>,
    /// How the scores were mapped (Unigram), for the notes.
    pub note: Option<String>,
}

fn train_err<'a>(
    orig: &'a Original,
    what: &'static str,
) -> impl Fn(tokenizers::Error) -> Error + 'a {
    move |e| {
        Error::Model(format!(
            "{}: training a {what} on the corpus failed ({e}); check the corpus text",
            orig.path.display()
        ))
    }
}

/// Unigram: trains a Unigram on the words (one thread, words in sorted order, so the scores
/// are the same bytes on every machine) and lists the pieces the model lacks by score.
pub fn unigram(orig: &Original, counts: &WordCounts, opts: &LearnOptions) -> Result<Listed> {
    let chars: HashSet<char> = counts.keys().flat_map(|w| w.chars()).collect();
    let size = chars.len() + opts.add.saturating_mul(2) + 64;
    let trainer = UnigramTrainer::builder()
        .show_progress(false)
        .vocab_size(size.min(u32::MAX as usize) as u32)
        .build()
        .map_err(|e| Error::Model(format!("Unigram trainer: {e} (a bug in clp-gpu)")))?;
    let sentences: Vec<(String, u32)> = counts
        .iter()
        .map(|(w, &n)| (w.clone(), n.min(u32::MAX as u64) as u32))
        .collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .map_err(|e| Error::Model(format!("cannot start a thread ({e})")))?;
    let mut model = Unigram::default();
    pool.install(|| trainer.do_train(sentences, &mut model))
        .map_err(train_err(orig, "Unigram"))?;
    let mut trained: Vec<(String, f64)> = model
        .iter()
        .filter(|(p, s)| !p.is_empty() && s.is_finite() && p != "<UNK>")
        .cloned()
        .collect();
    // The trainer orders equal scores in hash order: sort, so that sums below run in one order.
    trained.sort_by(|a, b| a.0.cmp(&b.0));
    tie_rare_characters(&mut trained);
    let orig_scores = unigram_scores(orig);
    let (scale, offset, note) = fit_scale(&trained, &orig_scores);
    let floor = orig_scores.values().copied().fold(f64::INFINITY, f64::min);
    let mut candidates: Vec<Candidate> = trained
        .iter()
        .filter(|(p, _)| !orig.known.contains(p))
        .map(|(p, s)| Candidate {
            content: p.clone(),
            // Never below the model's lowest score: the unknown-token penalty is counted from it.
            score: Some((scale * s + offset).max(floor)),
        })
        .collect();
    candidates.sort_by(|a, b| {
        let (sa, sb) = (a.score.unwrap_or(0.0), b.score.unwrap_or(0.0));
        sb.total_cmp(&sa).then_with(|| a.content.cmp(&b.content))
    });
    Ok(Listed {
        candidates,
        note: Some(note),
    })
}

/// The trainer gives characters its model dropped the lowest score plus 1e-4 per character,
/// counted in hash order (different in every process): those scores become the lowest one.
fn tie_rare_characters(trained: &mut [(String, f64)]) {
    let lowest = trained.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let chars = trained.iter().filter(|p| p.0.chars().count() == 1).count();
    let window = 1e-4 * (chars as f64 + 1.0);
    for (p, s) in trained.iter_mut() {
        if p.chars().count() == 1 && *s < lowest + window {
            *s = lowest;
        }
    }
}

/// The original Unigram's scores by piece.
fn unigram_scores(orig: &Original) -> std::collections::HashMap<String, f64> {
    let pieces = orig
        .root
        .get("model")
        .and_then(|m| m.get("vocab"))
        .and_then(Value::as_array);
    pieces
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p.get(0)?.as_str()?.to_string(), p.get(1)?.as_f64()?)))
        .collect()
}

/// Least-squares `orig ≈ scale · trained + offset` over the pieces both models have (an offset
/// alone where fewer than 3 are shared or the fit does not rise).
fn fit_scale(
    trained: &[(String, f64)],
    orig: &std::collections::HashMap<String, f64>,
) -> (f64, f64, String) {
    let pairs: Vec<(f64, f64)> = trained
        .iter()
        .filter_map(|(p, s)| Some((*s, *orig.get(p)?)))
        .collect();
    let n = pairs.len() as f64;
    if pairs.is_empty() {
        return (
            1.0,
            0.0,
            "Unigram scores kept as trained (no piece shared with the model)".into(),
        );
    }
    let mx = pairs.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pairs.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = pairs.iter().map(|p| (p.0 - mx) * (p.0 - mx)).sum();
    let sxy: f64 = pairs.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let (scale, offset) = if pairs.len() >= 3 && sxx > 0.0 && sxy > 0.0 {
        (sxy / sxx, my - sxy / sxx * mx)
    } else {
        (1.0, my - mx)
    };
    let note = format!(
        "Unigram scores mapped onto the model's scale as {scale:.4} x trained + {offset:.4} (fitted on {} shared pieces)",
        pairs.len()
    );
    (scale, offset, note)
}

/// WordPiece: trains the BPE the WordPiece trainer runs (continuation prefix on every
/// non-initial character) and lists the entries the model lacks in merge order.
pub fn wordpiece(orig: &Original, counts: &WordCounts, opts: &LearnOptions) -> Result<Listed> {
    let prefix = orig.prefix.clone();
    let chars: BTreeSet<char> = counts.keys().flat_map(|w| w.chars()).collect();
    // The continuation characters as "special tokens" first, in sorted order: the trainer
    // would otherwise number them in hash order, and ties between merges follow the numbers.
    let continued: Vec<String> = chars.iter().map(|c| format!("{prefix}{c}")).collect();
    let mut trainer = BpeTrainerBuilder::new()
        .show_progress(false)
        .vocab_size(2 * chars.len() + opts.add.saturating_mul(3) + 256)
        .min_frequency(opts.min_freq)
        .continuing_subword_prefix(prefix.clone())
        .special_tokens(
            continued
                .iter()
                .map(|t| AddedToken::from(t.clone(), true))
                .collect(),
        )
        .build();
    let occurrences = counts
        .iter()
        .flat_map(|(w, &n)| std::iter::repeat_n(w.as_str(), n as usize));
    trainer
        .feed(occurrences, |w| Ok(vec![w.to_string()]))
        .map_err(train_err(orig, "WordPiece"))?;
    let mut model = BPE::default();
    trainer
        .train(&mut model)
        .map_err(train_err(orig, "WordPiece"))?;
    let json = serde_json::to_value(&model).map_err(|e| {
        Error::Model(format!(
            "cannot read the trained BPE back ({e}) (a bug in clp-gpu)"
        ))
    })?;
    let mut seen: HashSet<String> = HashSet::new();
    let mut candidates = Vec::new();
    for (a, b) in merge_pairs(json.get("merges")) {
        let tail = b.strip_prefix(prefix.as_str()).unwrap_or(&b);
        let token = format!("{a}{tail}");
        let (body, continued) = match token.strip_prefix(prefix.as_str()) {
            Some(rest) => (rest.to_string(), true),
            None => (token.clone(), false),
        };
        for (i, c) in body.chars().enumerate() {
            let unit = if i == 0 && !continued {
                c.to_string()
            } else {
                format!("{prefix}{c}")
            };
            push_new(orig, &mut seen, &mut candidates, unit);
        }
        push_new(orig, &mut seen, &mut candidates, token);
    }
    Ok(Listed {
        candidates,
        note: None,
    })
}

fn push_new(orig: &Original, seen: &mut HashSet<String>, out: &mut Vec<Candidate>, t: String) {
    if !orig.known.contains(&t) && seen.insert(t.clone()) {
        out.push(Candidate {
            content: t,
            score: None,
        });
    }
}
