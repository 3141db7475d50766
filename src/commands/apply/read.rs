//! Stage 1, **read**: check the options, read the source and the target tokenizer
//! ([`crate::model::pair::read_source_target`], which finds and checks the vocabulary-indexed
//! tensors) and, for a weighted method, the helper ([`crate::model::pair::read_helper`]; FVT
//! reads no helper weights); every vocabulary-indexed source tensor (input embedding and its
//! tied copies, lm_head, output biases of shape `[V]` or `[1, V]`) becomes columns of one matrix
//! ([`Part`]).

use super::options::{ApplyOptions, Method};
use crate::error::{Error, Result};
use crate::json::read_optional_json_object;
use crate::model::naming::Layout;
use crate::model::pair::{read_helper, read_source_target, vocab_matrix, Helper, SourceTarget};
use crate::model::{hub, writer, ModelDir};
use crate::tensor::MatrixRef;
use std::path::{Path, PathBuf};

/// The inputs of one run.
pub(super) struct Inputs {
    /// The source and the target tokenizer.
    pub st: SourceTarget,
    /// The helper (weighted methods only).
    pub helper: Option<Helper>,
    /// The resolved `--helper` directory, when given (FVT reads only its config.json).
    pub helper_dir: Option<PathBuf>,
}

/// A vocabulary-sized source tensor being rebuilt: its rows are columns `col..col+cols` of the
/// combined matrix.
pub(super) struct Part<'a> {
    /// Tensor name.
    pub name: String,
    /// Its (checked) matrix view.
    pub m: MatrixRef<'a>,
    /// How it holds its rows (`[V, w]`, `[V]`, `[1, V]`).
    pub layout: Layout,
    /// Its dtype in the file.
    pub safetensors_dtype: safetensors::Dtype,
    /// First column in the combined matrix.
    pub col: usize,
}

/// Checks the options that need no file, then reads and checks the inputs. Every bad input
/// fails here, before any tensor data is read.
pub(super) fn read_inputs(opts: &ApplyOptions) -> Result<Inputs> {
    writer::check_out(&opts.out, opts.force)?;
    opts.method.validate().map_err(Error::Argument)?;
    if opts.pad_to_multiple == Some(0) {
        return Err(Error::Argument(
            "--pad-to-multiple 0: give a whole number ≥ 1".into(),
        ));
    }
    let source_dir = hub::resolve_model_dir(&opts.source, "--source")?;
    let helper_dir = (opts.helper.as_deref())
        .map(|h| hub::resolve_model_dir(h, "--helper"))
        .transpose()?;
    let tokenizer_dir = match (&opts.helper_tokenizer, &helper_dir) {
        (Some(t), _) => hub::resolve_model_dir(t, "--helper-tokenizer")?,
        (None, Some(h)) => h.clone(),
        (None, None) => return Err(needs_helper(opts.method)),
    };
    let (st, helper) = match (&helper_dir, opts.method) {
        (Some(dir), Method::Weighted(_)) => {
            let model = ModelDir::open(dir)?;
            let st = read_source_target(source_dir, tokenizer_dir, Some(&model.config.raw))?;
            let helper = read_helper(dir.clone(), model, &st.target_vocab)?;
            (st, Some(helper))
        }
        (None, Method::Weighted(_)) => return Err(needs_helper(opts.method)),
        // FVT: the config.json beside the target tokenizer (the helper's, when given) only
        // names special-token ids.
        (dir, Method::Fvt) => {
            let config_dir = dir.as_ref().unwrap_or(&tokenizer_dir);
            let config = read_optional_json_object(&config_dir.join("config.json"))?;
            let st = read_source_target(source_dir, tokenizer_dir, config.as_ref())?;
            (st, None)
        }
    };
    let mut inputs: Vec<&Path> = vec![&st.source_dir, &st.tokenizer_dir];
    inputs.extend(helper_dir.as_deref());
    writer::refuse_out_over_input(&opts.out, &inputs)?;
    if let Some(p) = &opts.provenance {
        check_provenance_dir(p)?;
    }
    Ok(Inputs {
        st,
        helper,
        helper_dir,
    })
}

/// A run without `--helper` that needs one (and FVT without any target tokenizer).
fn needs_helper(method: Method) -> Error {
    Error::Argument(match method {
        Method::Weighted(w) => format!(
            "--weighting {} needs --helper DIR|ID (the helper model, whose embeddings give the weights); only --weighting fvt runs without one, from --helper-tokenizer DIR|ID alone",
            w.name()
        ),
        Method::Fvt => "--weighting fvt needs the target tokenizer: pass --helper-tokenizer DIR|ID (or --helper DIR|ID)".into(),
    })
}

/// `--provenance FILE`: its directory must exist.
fn check_provenance_dir(p: &Path) -> Result<()> {
    let parent = p
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !parent.is_dir() {
        return Err(Error::Argument(format!(
            "--provenance {}: directory {} does not exist; create it first",
            p.display(),
            parent.display()
        )));
    }
    Ok(())
}

/// The helper's input embedding (its rows were checked against the target's base vocabulary
/// when the pair was read; target tokens past them get the fallback).
pub(super) fn helper_matrix(helper: &Helper) -> Result<MatrixRef<'_>> {
    helper.model.weights.matrix(&helper.t.input)
}

/// Every vocabulary-indexed source tensor as a part of the combined matrix.
pub(super) fn source_parts(pair: &SourceTarget) -> Result<Vec<Part<'_>>> {
    let mut parts: Vec<Part> = Vec::new();
    let mut col = 0;
    for name in pair.src_t.all() {
        let part = source_part(&pair.source, pair.src_t.rows, name, col)?;
        col += part.m.cols;
        parts.push(part);
    }
    Ok(parts)
}

/// One part, `rows` rows (the input embedding's) in its [`Layout`].
fn source_part(source: &ModelDir, rows: usize, name: String, col: usize) -> Result<Part<'_>> {
    let w = &source.weights;
    let m = vocab_matrix(w, &name, rows)?;
    let info = w
        .info(&name)
        .ok_or_else(|| Error::Model(format!("tensor `{name}` vanished")))?;
    let layout = Layout::of(&info.shape, rows).ok_or_else(|| {
        Error::bad_file(
            w.file_of(&name).unwrap_or(&source.dir),
            format!(
                "`{name}` has shape {:?}, not {rows} rows like the input embedding; the checkpoint is inconsistent",
                info.shape
            ),
        )
    })?;
    Ok(Part {
        layout,
        safetensors_dtype: info.dtype,
        name,
        m,
        col,
    })
}
