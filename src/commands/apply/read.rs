//! Stage 1, **read**: check the options, read the source/helper pair
//! ([`crate::model::pair::read_pair`]), and find and check the vocabulary-sized tensors: the
//! source's input embedding, lm_head and output bias become the columns of one matrix
//! ([`Part`]), and the helper embedding must cover the target tokenizer.

use super::options::ApplyOptions;
use crate::error::{Error, Result};
use crate::model::pair::{read_pair, ModelPair};
use crate::model::writer;
use crate::model::ModelDir;
use crate::tensor::MatrixRef;
use crate::vocab::Vocab;
use std::path::Path;

/// A vocabulary-sized source tensor being rebuilt: its rows are columns `col..col+cols` of the
/// combined matrix.
pub(super) struct Part<'a> {
    /// Tensor name.
    pub name: String,
    /// Its (checked) matrix view.
    pub m: MatrixRef<'a>,
    /// A 1-D tensor (an output bias).
    pub shape_is_vector: bool,
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

/// The helper's input embedding, checked to have a row for every target token.
pub(super) fn helper_matrix(pair: &ModelPair) -> Result<MatrixRef<'_>> {
    let (helper, hlp_t, target_vocab) = (&pair.helper, &pair.hlp_t, &pair.target_vocab);
    let helper_m = helper.weights.matrix(&hlp_t.input)?;
    if helper_m.rows < target_vocab.len() {
        return Err(Error::bad_file(
            helper.weights.file_of(&hlp_t.input).unwrap_or(&pair.helper_dir),
            format!(
                "helper embedding `{}` has {} rows but the target tokenizer {} has {} tokens; pass the tokenizer the helper was trained with (--helper-tokenizer)",
                hlp_t.input,
                helper_m.rows,
                target_vocab.path.display(),
                target_vocab.len()
            ),
        ));
    }
    Ok(helper_m)
}

/// The source's vocabulary tensors as parts of the combined matrix, with shapes checked.
pub(super) fn source_parts(pair: &ModelPair) -> Result<Vec<Part<'_>>> {
    let t = &pair.src_t;
    let mut names = vec![t.input.clone()];
    names.extend(t.output.iter().cloned());
    names.extend(t.output_bias.iter().cloned());
    let mut parts: Vec<Part> = Vec::new();
    let mut col = 0;
    for name in names {
        let part = source_part(&pair.source, &pair.source_vocab, parts.first(), name, col)?;
        col += part.m.cols;
        parts.push(part);
    }
    Ok(parts)
}

/// One part: the first must cover the source tokenizer, the others must match the first's rows.
fn source_part<'a>(
    source: &'a ModelDir,
    vocab: &Vocab,
    first: Option<&Part>,
    name: String,
    col: usize,
) -> Result<Part<'a>> {
    let w = &source.weights;
    let m = w.matrix(&name)?;
    let info = w
        .info(&name)
        .ok_or_else(|| Error::Model(format!("tensor `{name}` vanished")))?;
    let path = w.file_of(&name).unwrap_or(&source.dir);
    if let Some(first) = first {
        if m.rows != first.m.rows {
            return Err(Error::bad_file(
                path,
                format!(
                    "`{name}` has {} rows but the input embedding `{}` has {}; the checkpoint is inconsistent",
                    m.rows, first.name, first.m.rows
                ),
            ));
        }
    } else if m.rows < vocab.len() {
        return Err(Error::bad_file(
            path,
            format!(
                "source embedding `{name}` has {} rows but the source tokenizer {} has {} tokens; use the tokenizer that belongs to this model",
                m.rows,
                vocab.path.display(),
                vocab.len()
            ),
        ));
    }
    Ok(Part {
        shape_is_vector: info.shape.len() == 1,
        safetensors_dtype: info.dtype,
        name,
        m,
        col,
    })
}
