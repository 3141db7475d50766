//! Reading the inputs of a transfer: a source/helper pair (both model directories, both
//! tokenizers, the vocabulary-indexed tensors of each found by [`naming`]), the checks every
//! command that rebuilds vocabulary rows needs (a 2-D embedding as wide as the config says, a
//! row per token of the base vocabulary, an output embedding when untied), and the weight files
//! opened for positioned reads.
//! No tensor data is read here.

use crate::error::{Error, Result};
use crate::model::dir::ModelDir;
use crate::model::hub;
use crate::model::naming::{self, VocabTensors};
use crate::model::safetensors::Weights;
use crate::rows::{Storage, Stored};
use crate::tensor::MatrixRef;
use crate::tokenizer;
use crate::vocab::Vocab;
use serde_json::{Map, Value};
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

/// The source model and the target tokenizer: what every transfer reads, with or without a
/// helper model (FVT needs no helper weights).
pub struct SourceTarget {
    /// Resolved source directory.
    pub source_dir: PathBuf,
    /// Directory the target tokenizer is read from.
    pub tokenizer_dir: PathBuf,
    /// The source model (config and mapped weights).
    pub source: ModelDir,
    /// The source tokenizer.
    pub source_vocab: Vocab,
    /// The source tokenizer as loaded (parsed once per run; FVT spells target tokens with it).
    pub source_tokenizer: tokenizers::Tokenizer,
    /// The target tokenizer.
    pub target_vocab: Vocab,
    /// The source's vocabulary tensors.
    pub src_t: VocabTensors,
}

/// A helper model: it speaks the target tokenizer.
pub struct Helper {
    /// Resolved directory.
    pub dir: PathBuf,
    /// The model (config and mapped weights).
    pub model: ModelDir,
    /// Its vocabulary tensors.
    pub t: VocabTensors,
}

/// Resolves (offline), opens and checks a source/helper pair: configs, tokenizers, weight
/// headers and the vocabulary-indexed tensors. Source tokens past the embedding's rows (added
/// tokens, as Gemma 3 ships `<image_soft_token>`) are left out of the source vocabulary. No
/// tensor data is read.
pub fn read_pair(source: &str, helper: &str, helper_tokenizer: Option<&str>) -> Result<ModelPair> {
    let source_dir = hub::resolve_model_dir(source, "--source")?;
    let helper_dir = hub::resolve_model_dir(helper, "--helper")?;
    let tokenizer_dir = match helper_tokenizer {
        Some(s) => hub::resolve_model_dir(s, "--helper-tokenizer")?,
        None => helper_dir.clone(),
    };
    let helper_model = ModelDir::open(&helper_dir)?;
    let st = read_source_target(source_dir, tokenizer_dir, Some(&helper_model.config.raw))?;
    let h = read_helper(helper_dir, helper_model, &st.target_vocab)?;
    Ok(ModelPair {
        source_dir: st.source_dir,
        helper_dir: h.dir,
        tokenizer_dir: st.tokenizer_dir,
        source: st.source,
        helper: h.model,
        source_vocab: st.source_vocab,
        target_vocab: st.target_vocab,
        src_t: st.src_t,
        hlp_t: h.t,
    })
}

/// Opens and checks the source model in `source_dir` and reads the target tokenizer from
/// `tokenizer_dir` (`target_config`: the config.json whose `*_token_id` keys are the last resort
/// for the target's special-token roles). No tensor data is read.
pub fn read_source_target(
    source_dir: PathBuf,
    tokenizer_dir: PathBuf,
    target_config: Option<&Map<String, Value>>,
) -> Result<SourceTarget> {
    let source = ModelDir::open(&source_dir)?;
    let loaded = tokenizer::read(&source_dir)?;
    let source_vocab = Vocab::from_loaded(&source_dir, &loaded, Some(&source.config.raw))?;
    let target_vocab = Vocab::read(&tokenizer_dir, target_config)?;
    let src_t =
        rebuilt_vocab_tensors(&source, source_vocab.base_len(), "source", "source model: ")?;
    check_rows(
        &source,
        &src_t,
        &source_vocab,
        "source embedding",
        "use the tokenizer that belongs to this model",
    )?;
    let source_vocab = source_vocab.within_rows(src_t.rows);
    Ok(SourceTarget {
        source_dir,
        tokenizer_dir,
        source,
        source_vocab,
        source_tokenizer: loaded.tokenizer,
        target_vocab,
        src_t,
    })
}

/// The helper `model` (opened from `dir`) checked against the target tokenizer: its input
/// embedding has a row for every token of the target's base vocabulary.
pub fn read_helper(dir: PathBuf, model: ModelDir, target_vocab: &Vocab) -> Result<Helper> {
    let t = vocab_tensors(&model, target_vocab.base_len(), "helper")?;
    check_rows(
        &model,
        &t,
        target_vocab,
        "helper embedding",
        "pass the tokenizer the helper was trained with (--helper-tokenizer)",
    )?;
    Ok(Helper { dir, model, t })
}

/// The vocabulary-indexed tensors of `model` (`tokens`: its base vocabulary, for the shape
/// fallback; `what` names it in errors: "source", "helper"), with the input embedding checked
/// to be 2-D and as wide as the config's embedding width.
pub fn vocab_tensors(model: &ModelDir, tokens: usize, what: &str) -> Result<VocabTensors> {
    let c = &model.config;
    let t = naming::find_vocab_tensors(&naming::Discovery {
        weights: &model.weights,
        model_type: c.model_type.as_deref(),
        config: &c.raw,
        width: c.embedding_width.map(|w| w.0),
        tokens,
        which: what,
    })?;
    let w = &model.weights;
    let path = w.file_of(&t.input).unwrap_or(&model.dir);
    let shape = w
        .info(&t.input)
        .map(|i| i.shape.clone())
        .unwrap_or_default();
    if shape.len() != 2 {
        return Err(Error::bad_file(
            path,
            format!(
                "{what} embedding `{}` is stored with shape {shape:?}; an embedding is [rows, width]: re-save the model with save_pretrained",
                t.input
            ),
        ));
    }
    if let Some((width, key)) = c.embedding_width.filter(|w| w.0 != shape[1]) {
        return Err(Error::bad_file(
            path,
            format!(
                "{what} embedding `{}` is {} wide but {} says `{key}` = {width}; use the config.json that belongs to these weights",
                t.input,
                shape[1],
                c.path.display()
            ),
        ));
    }
    Ok(t)
}

/// The embedding must have a row for every token of the tokenizer's base vocabulary (added
/// tokens past the rows have none: they are not in the model's vocabulary).
pub fn check_rows(
    model: &ModelDir,
    t: &VocabTensors,
    vocab: &Vocab,
    what: &str,
    fix: &str,
) -> Result<()> {
    if t.rows >= vocab.base_len() {
        return Ok(());
    }
    Err(Error::bad_file(
        model.weights.file_of(&t.input).unwrap_or(&model.dir),
        format!(
            "{what} `{}` has {} rows but the tokenizer {} has {} tokens in its base vocabulary (added tokens left out); {fix}",
            t.input,
            t.rows,
            vocab.path.display(),
            vocab.base_len()
        ),
    ))
}

/// A vocabulary-indexed tensor of a vocabulary of `rows` as `rows × cols`
/// ([`naming::Layout`]: `[V]` and `[1, V]` are `V` rows of one value).
pub fn vocab_matrix<'a>(w: &'a Weights, name: &str, rows: usize) -> Result<MatrixRef<'a>> {
    let m = w.matrix(name)?;
    match w.info(name).map(|i| i.shape.as_slice()) {
        Some([1, r]) if *r == rows && rows > 1 => {
            MatrixRef::new(name, w.bytes(name)?, m.dtype, *r, 1)
        }
        _ => Ok(m),
    }
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
