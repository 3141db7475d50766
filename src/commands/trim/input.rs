//! Stage 1 of `trim`, **read**: the options, checked before any file is read, then the model,
//! its tokenizer, the vocabulary tensors and the `--keep` list.

use crate::error::{Error, Result};
use crate::model::pair::{self, rebuilt_vocab_tensors};
use crate::model::writer;
use crate::model::{hub, ModelDir};
use crate::progress::Progress;
use crate::vocab::Vocab;
use std::path::{Path, PathBuf};

use crate::tokenizer::TokenizerJson;

/// What `trim` needs to know.
#[derive(Debug, Clone)]
pub struct TrimOptions {
    /// Model directory or hub id.
    pub model: String,
    /// Text files (UTF-8, one unit per line) whose tokens are kept.
    pub corpora: Vec<PathBuf>,
    /// Keep a token whose relative frequency in some corpus is at least this.
    pub min_freq: f64,
    /// A file of token strings (one per line) to keep whatever their frequency.
    pub keep: Option<PathBuf>,
    /// Output directory.
    pub out: PathBuf,
    /// Replace an existing OUT.
    pub force: bool,
    /// Tokenize every corpus again with the trimmed tokenizer and compare.
    pub verify: bool,
    /// Where progress shows (corpus lines counted and checked).
    pub progress: Progress,
}

/// What the read stage found.
pub(super) struct Read {
    /// The resolved model directory.
    pub(super) model_dir: PathBuf,
    /// The model.
    pub(super) model: ModelDir,
    /// Its tokenizer.
    pub(super) vocab: Vocab,
    /// Its tokenizer.json.
    pub(super) tj: TokenizerJson,
    /// The vocabulary-indexed tensors ([`crate::model::naming`]): input embedding, its tied
    /// copies, lm_head and output biases when present.
    pub(super) vocab_tensors: Vec<String>,
    /// Rows of the input embedding (tokens at or past them, added tokens, have no row).
    pub(super) embedding_rows_before: usize,
    /// `--keep` tokens.
    pub(super) keep_tokens: Vec<String>,
    /// The tokenizer as loaded for counting.
    pub(super) counting: tokenizers::Tokenizer,
}

/// Stage 1, **read**: options, model, tokenizer, vocabulary tensors, `--keep`.
pub(super) fn read(opts: &TrimOptions) -> Result<Read> {
    check_options(opts)?;
    let model_dir = hub::resolve_model_dir(&opts.model, "--model")?;
    writer::refuse_out_over_input(&opts.out, &[&model_dir])?;
    for c in &opts.corpora {
        if !c.is_file() {
            return Err(Error::Argument(format!(
                "--corpus {}: no such file; pass a UTF-8 text file, one sentence or paragraph per line",
                c.display()
            )));
        }
    }
    let model = ModelDir::open(&model_dir)?;
    let vocab = Vocab::read(&model_dir, Some(&model.config.raw))?;
    let tj = TokenizerJson::read(&model_dir.join("tokenizer.json"))?;
    let vt = rebuilt_vocab_tensors(&model, vocab.base_len(), "model", "")?;
    pair::check_rows(
        &model,
        &vt,
        &vocab,
        "embedding",
        "use the tokenizer that belongs to this model",
    )?;
    let vocab_tensors = vt.all();
    let embedding_rows_before = vt.rows;
    let keep_tokens = match &opts.keep {
        Some(p) => read_keep_file(p, &vocab)?,
        None => Vec::new(),
    };
    let counting = tj.load_for_counting()?;
    Ok(Read {
        model_dir,
        model,
        vocab,
        tj,
        vocab_tensors,
        embedding_rows_before,
        keep_tokens,
        counting,
    })
}

/// The options checked before any file is read.
fn check_options(opts: &TrimOptions) -> Result<()> {
    writer::check_out(&opts.out, opts.force)?;
    if !(opts.min_freq.is_finite() && (0.0..=1.0).contains(&opts.min_freq)) {
        return Err(Error::Argument(format!(
            "--min-freq {}: give a relative frequency between 0 and 1, e.g. 1e-6",
            opts.min_freq
        )));
    }
    if opts.corpora.is_empty() {
        return Err(Error::Argument(
            "--corpus: give at least one text file (one sentence or paragraph per line)".into(),
        ));
    }
    Ok(())
}

/// `--keep FILE`: one token string per line (exact vocabulary strings); blank lines skipped.
fn read_keep_file(path: &Path, vocab: &Vocab) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::bad_file(
            path,
            format!(
                "cannot read the --keep file ({e}); pass a UTF-8 text file with one token per line"
            ),
        )
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.strip_suffix('\r').unwrap_or(line);
        if t.is_empty() {
            continue;
        }
        if vocab.id(t).is_none() {
            return Err(Error::bad_file(
                path,
                format!(
                    "line {}: `{t}` is not a token of {}; write tokens exactly as in its vocabulary (e.g. Ġthe for GPT-2) or remove the line",
                    i + 1,
                    vocab.path.display()
                ),
            ));
        }
        out.push(t.to_string());
    }
    Ok(out)
}
