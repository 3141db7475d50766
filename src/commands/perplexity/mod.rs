//! `perplexity`: how well a model predicts a text, in figures that compare across tokenizers
//! (bits per UTF-8 byte). The step-0 check after `apply`: score the source, the helper and the
//! transferred model on the same documents.
//!
//! Stages: [`text`] reads the documents and applies `--max-bytes`; [`model`] loads each model
//! directory onto one of our forward passes ([`net`], candle tensors on the CPU); [`window`] cuts
//! each tokenized document into windows and turns log-probabilities into the reported figures.
//! Every model scores exactly the same documents. Decoders score a window in one forward pass;
//! masked-LM encoders by pseudo-log-likelihood, reported as pseudo bits per byte. [`stepwise`]
//! is the older token-by-token path through candle-transformers' KV cache, kept to check and time
//! the one-pass path.

pub mod model;
pub mod net;
pub mod stepwise;
pub mod text;
pub mod window;

use crate::error::{Error, Result};
use crate::progress::{Progress, Unit};
pub use model::{
    supported_model_types, LanguageModel, Scoring, DECODER_TYPES, ENCODER_DECODER_TYPES,
    ENCODER_TYPES,
};
use std::path::PathBuf;
use std::time::Instant;
pub use text::{read_documents, Documents, TextFormat};
pub use window::{scored_tokens, windows, Totals};

/// What to score.
#[derive(Debug, Clone)]
pub struct PerplexityOptions {
    /// Model directories, each scored on the same documents.
    pub models: Vec<PathBuf>,
    /// The text file (JSON Lines or one document per line).
    pub text: PathBuf,
    /// Window length in tokens, BOS included; clamped to each model's positions.
    pub context: usize,
    /// Stop before the document that would take the total past this many bytes.
    pub max_bytes: Option<u64>,
    /// Where progress shows (documents scored, per model).
    pub progress: Progress,
}

/// The figures of one model.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelScore {
    /// The model directory.
    pub model: String,
    /// Its `model_type`.
    pub model_type: String,
    /// `causal` (bits per byte) or `pseudo-log-likelihood` (masked-LM encoders: pseudo bits per
    /// byte; nats per token and perplexity are then pseudo figures too).
    pub scoring: Scoring,
    /// The window length used (after clamping), BOS included.
    pub context: usize,
    /// Whether windows start with the config's BOS (decoders).
    pub bos: Option<u32>,
    /// Documents scored.
    pub documents: u64,
    /// Their UTF-8 bytes.
    pub bytes: u64,
    /// Text tokens (BOS excluded).
    pub tokens: u64,
    /// Text tokens scored (without a BOS the first of each window is not).
    pub scored_tokens: u64,
    /// Windows run.
    pub windows: u64,
    /// Text tokens per byte.
    pub tokens_per_byte: f64,
    /// Mean negative log-likelihood per scored token, in nats.
    pub nats_per_token: f64,
    /// exp(nats per token).
    pub perplexity: f64,
    /// Negative log-likelihood of the text in bits per UTF-8 byte (decoders; null for encoders).
    pub bits_per_byte: Option<f64>,
    /// Negative pseudo-log-likelihood in bits per UTF-8 byte (encoders; null for decoders): each
    /// token predicted with every other token of its window visible, so never comparable with
    /// `bits_per_byte`.
    pub pseudo_bits_per_byte: Option<f64>,
    /// Wall time of loading and scoring, in seconds.
    pub seconds: f64,
}

/// The report of a `perplexity` run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PerplexityReport {
    /// The text file.
    pub text: String,
    /// How it was read.
    pub format: TextFormat,
    /// Documents scored (the same for every model).
    pub documents: u64,
    /// Their UTF-8 bytes.
    pub bytes: u64,
    /// Documents left out by `--max-bytes`.
    pub documents_dropped: usize,
    /// One entry per model, in the order given.
    pub models: Vec<ModelScore>,
}

/// Scores every model on the documents of `opts.text`.
pub fn perplexity(opts: &PerplexityOptions) -> Result<PerplexityReport> {
    if opts.context < 2 {
        return Err(Error::Argument(format!(
            "--context {}: a window needs at least 2 tokens (one to predict from, one to predict)",
            opts.context
        )));
    }
    if opts.models.is_empty() {
        return Err(Error::Argument("give at least one --model".into()));
    }
    let docs = read_documents(&opts.text, opts.max_bytes)?;
    let mut models = Vec::new();
    for dir in &opts.models {
        let start = Instant::now();
        let mut lm = LanguageModel::load(dir)?;
        let context = opts.context.min(lm.max_positions).max(2);
        let causal = lm.scoring == Scoring::Causal;
        let task = format!("scoring {}", dir.display());
        let bar = (opts.progress).bar(task, docs.docs.len() as u64, Unit::Documents);
        let mut totals = Totals::default();
        for doc in &docs.docs {
            crate::cancel::check()?;
            let logprobs = score_document(&mut lm, doc, context)?;
            crate::cancel::check()?;
            add_document(&mut totals, doc, &logprobs, &lm, context)?;
            bar.inc(1);
        }
        bar.finish();
        models.push(ModelScore {
            model: dir.display().to_string(),
            model_type: lm.model_type.clone(),
            scoring: lm.scoring,
            context,
            bos: lm.bos,
            documents: totals.documents,
            bytes: totals.bytes,
            tokens: totals.tokens,
            scored_tokens: totals.scored_tokens,
            windows: totals.windows,
            tokens_per_byte: totals.tokens_per_byte(),
            nats_per_token: totals.nats_per_token(),
            perplexity: totals.perplexity(),
            bits_per_byte: causal.then(|| totals.bits_per_byte()),
            pseudo_bits_per_byte: (!causal).then(|| totals.bits_per_byte()),
            seconds: start.elapsed().as_secs_f64(),
        });
    }
    Ok(PerplexityReport {
        text: opts.text.display().to_string(),
        format: docs.format,
        documents: docs.docs.len() as u64,
        bytes: docs.bytes,
        documents_dropped: docs.dropped,
        models,
    })
}

/// Per-document log-probabilities of the scored tokens, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentScore {
    /// The document's text-token ids.
    pub tokens: Vec<u32>,
    /// `ln p` of each scored token, window after window.
    pub log_probs: Vec<f64>,
}

/// Tokenizes `doc` and scores it in windows of `context` positions (BOS included).
pub fn score_document(lm: &mut LanguageModel, doc: &str, context: usize) -> Result<DocumentScore> {
    let tokens = lm.tokenize(doc)?;
    let log_probs = score_tokens(lm, &tokens, context)?;
    Ok(DocumentScore { tokens, log_probs })
}

/// Scores `tokens` in windows of `context` positions. Decoders: each window starts with the
/// model's BOS when it has one and runs in one forward pass. Encoders: each window is wrapped in
/// the tokenizer's special tokens and every text token is scored by pseudo-log-likelihood.
pub fn score_tokens(lm: &mut LanguageModel, tokens: &[u32], context: usize) -> Result<Vec<f64>> {
    if lm.scoring == Scoring::Causal {
        let bos = lm.bos;
        return score_tokens_with(bos, tokens, context, |ids| lm.window_log_probs(ids));
    }
    let (before, after) = lm.wrap.clone();
    let mut out = Vec::with_capacity(tokens.len());
    for range in encoder_windows(lm, tokens.len(), context)? {
        crate::cancel::check()?;
        let n = range.len();
        let ids = [&before[..], &tokens[range], &after[..]].concat();
        out.extend(lm.pseudo_log_probs(&ids, before.len()..before.len() + n)?);
    }
    Ok(out)
}

/// The causal windowing with any scorer of a window (`ids` → `ln p(ids[i + 1] | ids[..=i])`):
/// the one-pass forward ([`LanguageModel::window_log_probs`]) or the token-by-token path
/// ([`stepwise::Stepwise::window_log_probs`]).
pub fn score_tokens_with(
    bos: Option<u32>,
    tokens: &[u32],
    context: usize,
    mut window: impl FnMut(&[u32]) -> Result<Vec<f64>>,
) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(tokens.len());
    for range in windows(tokens.len(), bos.is_some(), context) {
        crate::cancel::check()?;
        let mut ids = Vec::with_capacity(context);
        ids.extend(bos);
        ids.extend_from_slice(&tokens[range]);
        out.extend(window(&ids)?);
    }
    Ok(out)
}

/// An encoder's chunks of text tokens: `context` less the special tokens around each window.
fn encoder_windows(
    lm: &LanguageModel,
    n: usize,
    context: usize,
) -> Result<Vec<std::ops::Range<usize>>> {
    let specials = lm.wrap.0.len() + lm.wrap.1.len();
    if context <= specials {
        return Err(Error::Argument(format!(
            "--context {context}: {} wraps every window in {specials} special tokens; give a longer context",
            lm.model_type
        )));
    }
    Ok(windows(n, false, context - specials))
}

fn add_document(
    totals: &mut Totals,
    doc: &str,
    score: &DocumentScore,
    lm: &LanguageModel,
    context: usize,
) -> Result<()> {
    let n = score.tokens.len();
    totals.documents += 1;
    totals.bytes += doc.len() as u64;
    totals.tokens += n as u64;
    if lm.scoring == Scoring::Causal {
        let bos = lm.bos.is_some();
        totals.scored_tokens += scored_tokens(n, bos, context) as u64;
        totals.windows += windows(n, bos, context).len() as u64;
    } else {
        totals.scored_tokens += n as u64;
        totals.windows += encoder_windows(lm, n, context)?.len() as u64;
    }
    totals.nats -= score.log_probs.iter().sum::<f64>();
    Ok(())
}
