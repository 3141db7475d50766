//! Stage 1, **read**: check the options, read the source/helper pair
//! ([`crate::model::pair::read_pair`], which finds and checks the vocabulary-indexed tensors);
//! every vocabulary-indexed source tensor (input embedding and its tied copies, lm_head, output
//! biases of shape `[V]` or `[1, V]`) becomes columns of one matrix ([`Part`]).

use super::options::ApplyOptions;
use crate::error::{Error, Result};
use crate::model::naming::Layout;
use crate::model::pair::{read_pair, vocab_matrix, ModelPair};
use crate::model::writer;
use crate::model::ModelDir;
use crate::tensor::MatrixRef;
use std::path::Path;

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

/// Checks the options that need no file, then reads and checks the pair. Every bad input fails
/// here, before any tensor data is read.
pub(super) fn read_inputs(opts: &ApplyOptions) -> Result<ModelPair> {
    writer::check_out(&opts.out, opts.force)?;
    opts.weighting.validate().map_err(Error::Argument)?;
    if opts.pad_to_multiple == Some(0) {
        return Err(Error::Argument(
            "--pad-to-multiple 0: give a whole number ≥ 1".into(),
        ));
    }
    let pair = read_pair(&opts.source, &opts.helper, opts.helper_tokenizer.as_deref())?;
    writer::refuse_out_over_input(
        &opts.out,
        &[&pair.source_dir, &pair.helper_dir, &pair.tokenizer_dir],
    )?;
    if let Some(p) = &opts.provenance {
        check_provenance_dir(p)?;
    }
    Ok(pair)
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
pub(super) fn helper_matrix(pair: &ModelPair) -> Result<MatrixRef<'_>> {
    pair.helper.weights.matrix(&pair.hlp_t.input)
}

/// Every vocabulary-indexed source tensor as a part of the combined matrix.
pub(super) fn source_parts(pair: &ModelPair) -> Result<Vec<Part<'_>>> {
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
