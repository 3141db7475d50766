//! Stages 2b and 4: **gather** describes the row sets the computation reads (helper rows of the
//! overlap and missing tokens; source rows of the overlap, the input embedding, lm_head and
//! output bias side by side as the columns of one matrix), read from the files tile by tile,
//! never whole. **compute** runs the backend over them; its finished tiles go to a
//! [`RowWriter`], which encodes each row in the source dtype, gives rejected rows the fallback
//! (the mean of the overlapping source rows) and writes them into the reserved output rows.

use super::layout::OutPart;
use super::options::Fallback;
use super::read::Part;
use crate::backend::{ClpBackend, TileOut};
use crate::commands::column_stats::mean_rows;
use crate::error::{Error, Result};
use crate::method::{RejectReason, Selection, Weighting};
use crate::model::pair::{file_stored, Helper, SourceTarget};
use crate::progress::{Bar, Progress, Unit};
use crate::rows::{RowSet, Stored};
use crate::tensor::MatrixRef;
use crate::vocab::Matching;
use std::collections::BTreeMap;
use std::fs::File;

/// The row sets of one weighted transfer.
pub(super) struct Gathered<'a> {
    /// Source rows of the overlap tokens, all parts side by side.
    pub e_overlap: RowSet<'a>,
    /// Helper rows of the overlap tokens.
    pub h_overlap: RowSet<'a>,
    /// Helper rows of the missing tokens.
    pub h_missing: RowSet<'a>,
    /// The fallback row: column means of `e_overlap`.
    pub fallback_row: Vec<f32>,
}

/// The helper's side of a weighted transfer: its model, input embedding and open files.
pub(super) struct HelperFiles<'a> {
    /// The helper.
    pub helper: &'a Helper,
    /// Its input embedding.
    pub m: &'a MatrixRef<'a>,
    /// Its weight files, opened for positioned reads.
    pub files: &'a [File],
}

/// The source vocabulary tensors as stored, one per part, read from `files` (the source's
/// weight files): for the bit-exact copies and the row sets.
pub(super) fn source_stored<'a>(
    pair: &'a SourceTarget,
    files: &'a [File],
    parts: &[Part],
) -> Result<Vec<Stored<'a>>> {
    parts
        .iter()
        .map(|p| file_stored(&pair.source.weights, files, &p.name, &p.m))
        .collect()
}

/// The source rows `ids`, all parts side by side.
pub(super) fn source_rows<'a>(
    name: &str,
    stored: &[Stored<'a>],
    parts: &[Part],
    ids: Vec<u32>,
) -> Result<RowSet<'a>> {
    RowSet::new(name, stored.to_vec())?
        .tensors(parts.iter().map(|p| p.name.as_str()))
        .select(ids)
}

/// The source rows of the overlap tokens, all parts side by side.
pub(super) fn overlap_rows<'a>(
    stored: &[Stored<'a>],
    parts: &[Part],
    matching: &Matching,
) -> Result<RowSet<'a>> {
    let ids = matching.overlap.iter().map(|p| p.1).collect();
    source_rows("source overlap rows", stored, parts, ids)
}

/// Describes the row sets and computes the fallback row (the only rows read whole, streamed).
pub(super) fn gather<'a>(
    pair: &SourceTarget,
    e_stored: &[Stored<'a>],
    parts: &[Part],
    h: &HelperFiles<'a>,
    matching: &Matching,
) -> Result<Gathered<'a>> {
    let overlap_tgt: Vec<u32> = matching.overlap.iter().map(|p| p.0).collect();
    let e_overlap = overlap_rows(e_stored, parts, matching)?;
    let h_name = &h.helper.t.input;
    let h_stored = file_stored(&h.helper.model.weights, h.files, h_name, h.m)?;
    let h_overlap = RowSet::new("helper overlap rows", vec![h_stored])?
        .tensors([h_name])
        .select(overlap_tgt)?;
    let h_missing = RowSet::new("helper missing rows", vec![h_stored])?
        .tensors([h_name])
        .select(matching.missing.clone())?;
    let fallback_row = mean_rows(&e_overlap).map_err(|e| name_token(e, pair))?;
    Ok(Gathered {
        e_overlap,
        h_overlap,
        h_missing,
        fallback_row,
    })
}

/// A non-finite row named by its token: a row of a source file is a source token, any other
/// (helper rows) a target token. Other errors pass through.
pub(super) fn name_token(e: Error, pair: &SourceTarget) -> Error {
    let Error::NonFiniteRow {
        path,
        tensor,
        row,
        column,
        value,
        token: None,
    } = e
    else {
        return e;
    };
    let is_source = path
        .as_ref()
        .is_some_and(|p| pair.source.weights.files.iter().any(|f| &f.path == p));
    let vocab = if is_source {
        &pair.source_vocab
    } else {
        &pair.target_vocab
    };
    let token = u32::try_from(row)
        .ok()
        .and_then(|id| vocab.token(id))
        .map(str::to_string);
    Error::NonFiniteRow {
        path,
        tensor,
        row,
        column,
        value,
        token,
    }
}

/// What the computation left besides the rows themselves.
pub(super) struct Computed {
    /// The neighbours and weights per missing row (kept for `--provenance`, top-k runs only).
    pub selection: Option<Selection>,
    /// Every row that got a fallback (missing rows the method could not build, tokens without
    /// a helper row), ascending by target id.
    pub fallback: Vec<FallbackRow>,
    /// The source ids averaged into each row built by FVT (the method or the fallback), by
    /// target id.
    pub spellings: BTreeMap<u32, Vec<u32>>,
    /// Seconds per backend stage.
    pub seconds: BTreeMap<String, f64>,
}

/// A row the method could not build, and what it got instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FallbackRow {
    /// Its target id.
    pub target_id: u32,
    /// Why: a [`RejectReason`] name, `no_helper_row` or `not_spellable`.
    pub reason: String,
    /// The row it got.
    pub got: Fallback,
}

/// Computes the missing rows on `backend` and writes them into `targets`.
pub(super) fn compute(
    backend: &dyn ClpBackend,
    rows: &Gathered,
    weighting: &Weighting,
    mut writer: RowWriter,
) -> Result<Computed> {
    let stats = backend.run(
        &rows.h_missing,
        &rows.h_overlap,
        &rows.e_overlap,
        weighting,
        &mut |tile: &TileOut| writer.receive(tile),
    )?;
    let mut computed = writer.finish()?;
    computed.seconds = stats.seconds;
    Ok(computed)
}

/// Receives finished tiles from the backend and writes their rows into the output shards.
pub(super) struct RowWriter<'a> {
    targets: &'a [OutPart],
    matching: &'a Matching,
    fallback_row: &'a [f32],
    cols: usize,
    keep_selection: bool,
    selection: Option<Selection>,
    fallback: Vec<FallbackRow>,
    encoded: Vec<Vec<u8>>,
    bar: Bar,
}

impl<'a> RowWriter<'a> {
    /// A writer of the rows of `matching.missing` into `targets` (`cols`: all parts together);
    /// `keep_selection` keeps the neighbours for the provenance.
    pub fn new(
        targets: &'a [OutPart],
        matching: &'a Matching,
        fallback_row: &'a [f32],
        keep_selection: bool,
        bar: Bar,
    ) -> RowWriter<'a> {
        RowWriter {
            targets,
            matching,
            fallback_row,
            cols: targets.iter().map(|t| t.cols).sum(),
            keep_selection,
            selection: None,
            fallback: Vec::new(),
            encoded: vec![Vec::new(); targets.len()],
            bar,
        }
    }

    /// Checks, encodes and writes one tile.
    pub fn receive(&mut self, tile: &TileOut) -> Result<()> {
        crate::cancel::check()?;
        let (missing, cols) = (self.matching.missing.len(), self.cols);
        if tile.dim != cols || tile.start + tile.status.len() > missing {
            return Err(Error::Shape(format!(
                "backend returned rows of width {} at {} for {missing} rows of width {cols} (a bug in clp-gpu; please report it)",
                tile.dim, tile.start
            )));
        }
        if self.keep_selection && tile.k > 0 {
            let sel = self.selection.get_or_insert_with(|| Selection {
                k: tile.k,
                indices: Vec::new(),
                scores: Vec::new(),
                weights: Vec::new(),
            });
            sel.indices.extend_from_slice(tile.indices);
            sel.scores.extend_from_slice(tile.scores);
            sel.weights.extend_from_slice(tile.weights);
        }
        for (i, &code) in tile.status.iter().enumerate() {
            self.write_row(tile.start + i, &tile.rows[i * cols..(i + 1) * cols], code)?;
        }
        self.bar.inc(tile.status.len() as u64);
        Ok(())
    }

    /// Row `m` of the missing rows: its values, or the mean fallback when the guards rejected
    /// it (`code`) or it is not finite in the source dtype (f16 overflow); the fallback stage
    /// may replace that by the row's FVT row.
    fn write_row(&mut self, m: usize, values: &[f32], code: u32) -> Result<()> {
        let mut reason = RejectReason::from_code(code)?.map(|r| r.name().to_string());
        if reason.is_none() && !encode_parts(self.targets, values, &mut self.encoded) {
            reason = Some(RejectReason::NonFiniteResult.name().to_string());
        }
        if let Some(reason) = reason {
            self.fallback.push(FallbackRow {
                target_id: self.matching.missing[m],
                reason,
                got: Fallback::Mean,
            });
            encode_parts(self.targets, self.fallback_row, &mut self.encoded);
        }
        for (t, bytes) in self.targets.iter().zip(&self.encoded) {
            t.write_row(self.matching.missing[m], bytes)?;
        }
        Ok(())
    }

    /// Checks the selection against the rows and flushes the output rows to disk.
    fn finish(self) -> Result<Computed> {
        self.bar.finish();
        let missing = self.matching.missing.len();
        if let Some(sel) = &self.selection {
            if sel.indices.len() != missing * sel.k
                || sel
                    .indices
                    .iter()
                    .any(|&j| j as usize >= self.matching.overlap.len())
            {
                return Err(Error::Shape(format!(
                    "backend returned a selection of {} indices (k = {}) for {missing} rows (a bug in clp-gpu; please report it)",
                    sel.indices.len(),
                    sel.k
                )));
            }
        }
        for t in self.targets {
            t.sync()?;
        }
        Ok(Computed {
            selection: self.selection,
            fallback: self.fallback,
            spellings: BTreeMap::new(),
            seconds: BTreeMap::new(),
        })
    }
}

/// Writes `row` (all columns) as the row of each of `ids`.
pub(super) fn write_fixed_rows(targets: &[OutPart], ids: &[u32], row: &[f32]) -> Result<()> {
    let mut encoded = vec![Vec::new(); targets.len()];
    encode_parts(targets, row, &mut encoded);
    for &id in ids {
        for (t, bytes) in targets.iter().zip(&encoded) {
            t.write_row(id, bytes)?;
        }
    }
    Ok(())
}

/// Encodes `values` (all columns) into each part's dtype; false if any value is not finite
/// there (f16 overflows at 65,504).
pub(super) fn encode_parts(parts: &[OutPart], values: &[f32], out: &mut [Vec<u8>]) -> bool {
    let mut finite = true;
    for (p, o) in parts.iter().zip(out.iter_mut()) {
        *o = p.dtype.encode(&values[p.col..p.col + p.cols]);
        finite &= (0..p.cols).all(|c| p.dtype.decode(o, c).is_finite());
    }
    finite
}

/// The progress bar of the computed rows.
pub(super) fn rows_bar(progress: &Progress, total: u64, backend: &str) -> Bar {
    progress.bar(format!("computing rows on {backend}"), total, Unit::Rows)
}
