//! Reading the inputs of a transfer: a source/helper pair (both model directories, both
//! tokenizers, the vocabulary-sized tensors of each), the tied-embedding check every command
//! that rebuilds vocabulary rows needs, and the weight files opened for positioned reads.
//! No tensor data is read here.

use crate::error::{Error, Result};
use crate::model::{hub, naming, ModelDir, VocabTensors, Weights};
use crate::rows::{Storage, Stored};
use crate::tensor::MatrixRef;
use crate::vocab::Vocab;
use std::fs::File;
use std::path::PathBuf;

/// The inputs every command that reads a source/helper pair needs.
pub struct ModelPair {
    /// Resolved source directory.
    pub source_dir: PathBuf,
    /// Resolved helper directory.
    pub helper_dir: PathBuf,
    /// Directory the target tokenizer is read from.
    pub tokenizer_dir: PathBuf,
    /// The source model (config and mapped weights).
    pub source: ModelDir,
    /// The helper model.
    pub helper: ModelDir,
    /// The source tokenizer.
    pub source_vocab: Vocab,
    /// The target tokenizer.
    pub target_vocab: Vocab,
    /// The source's vocabulary tensors.
    pub src_t: VocabTensors,
    /// The helper's vocabulary tensors.
    pub hlp_t: VocabTensors,
}

/// Resolves (offline), opens and checks a source/helper pair: configs, tokenizers, weight
/// headers and the vocabulary-sized tensors. No tensor data is read.
pub fn read_pair(source: &str, helper: &str, helper_tokenizer: Option<&str>) -> Result<ModelPair> {
    let source_dir = hub::resolve_model_dir(source, "--source")?;
    let helper_dir = hub::resolve_model_dir(helper, "--helper")?;
    let tokenizer_dir = match helper_tokenizer {
        Some(s) => hub::resolve_model_dir(s, "--helper-tokenizer")?,
        None => helper_dir.clone(),
    };
    let source = ModelDir::open(&source_dir)?;
    let helper = ModelDir::open(&helper_dir)?;
    let source_vocab = Vocab::read(&source_dir, Some(&source.config.raw))?;
    let target_vocab = Vocab::read(&tokenizer_dir, Some(&helper.config.raw))?;
    let src_t = rebuilt_vocab_tensors(&source, source_vocab.len(), "source", "source model: ")?;
    let hlp_t = vocab_tensors(&helper, target_vocab.len(), "helper")?;
    Ok(ModelPair {
        source_dir,
        helper_dir,
        tokenizer_dir,
        source,
        helper,
        source_vocab,
        target_vocab,
        src_t,
        hlp_t,
    })
}

/// The vocabulary-sized tensors of `model` (`what` names it in errors: "source", "helper").
pub fn vocab_tensors(model: &ModelDir, tokens: usize, what: &str) -> Result<VocabTensors> {
    naming::find_vocab_tensors(
        &model.weights,
        model.config.model_type.as_deref(),
        model.config.hidden_size,
        tokens,
        what,
    )
}

/// The vocabulary tensors of a model whose rows are rebuilt, checked for the tied-embedding
/// mismatch: a config that says untied must come with an output embedding (`prefix` starts the
/// error message, e.g. "source model: ").
pub fn rebuilt_vocab_tensors(
    model: &ModelDir,
    tokens: usize,
    what: &str,
    prefix: &str,
) -> Result<VocabTensors> {
    let t = vocab_tensors(model, tokens, what)?;
    if !model.config.tie_word_embeddings && t.output.is_none() {
        return Err(Error::Model(format!(
            "{prefix}{} says tie_word_embeddings = false but no output embedding (lm_head) is in {}; set tie_word_embeddings to true if the model is tied, or add the missing shard",
            model.config.path.display(),
            model.weights.describe()
        )));
    }
    Ok(t)
}

/// Every weight file of a model, opened for positioned reads.
pub fn open_files(w: &Weights) -> Result<Vec<File>> {
    w.files
        .iter()
        .map(|f| {
            File::open(&f.path).map_err(|e| {
                Error::bad_file(&f.path, format!("cannot open: {e}; check its permissions"))
            })
        })
        .collect()
}

/// Tensor `name` (already checked as `m`) as stored matrix read from its file.
pub fn file_stored<'a>(
    w: &'a Weights,
    files: &'a [File],
    name: &str,
    m: &MatrixRef,
) -> Result<Stored<'a>> {
    let info = w
        .info(name)
        .ok_or_else(|| Error::Model(format!("tensor `{name}` vanished")))?;
    Ok(Stored {
        storage: Storage::File {
            file: &files[info.file],
            path: &w.files[info.file].path,
            offset: info.start,
        },
        dtype: m.dtype,
        rows: m.rows,
        cols: m.cols,
    })
}
