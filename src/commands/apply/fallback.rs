//! FVT as the method (`--weighting fvt`) and the fallback stage (`--fallback fvt`): rows built
//! from the source tokenizer's spelling of each token ([`super::fvt`]). Rows without an FVT row
//! (see there) get the mean of the overlapping source rows; with `--fallback mean` every
//! fallback row keeps the mean the row writer gave it.

use super::fvt::FvtRows;
use super::layout::OutPart;
use super::options::Fallback;
use super::read::Part;
use super::rows::{self, name_token, Computed, FallbackRow};
use crate::commands::column_stats::mean_rows;
use crate::error::Result;
use crate::model::pair::SourceTarget;
use crate::progress::{Bar, Progress, Unit};
use crate::rows::Stored;
use crate::vocab::fvt::Speller;
use crate::vocab::Matching;
use std::collections::BTreeMap;

/// The source rows and the output tensors of a run.
pub(super) struct Sources<'a> {
    /// The source and the target tokenizer.
    pub pair: &'a SourceTarget,
    /// The rebuilt parts.
    pub parts: &'a [Part<'a>],
    /// The source vocabulary tensors as stored, one per part.
    pub stored: &'a [Stored<'a>],
    /// The output tensors, one per part.
    pub targets: &'a [OutPart],
}

impl Sources<'_> {
    /// Writes the FVT rows of `ids`; returns the spelling of each (`None`: no FVT row).
    fn write_fvt(&self, ids: &[u32], bar: &Bar) -> Result<Vec<Option<Vec<u32>>>> {
        let speller = Speller::new(&self.pair.source_vocab, &self.pair.source_tokenizer);
        let rows = FvtRows {
            pair: self.pair,
            speller: &speller,
            stored: self.stored,
            parts: self.parts,
            targets: self.targets,
        };
        rows.write(ids, bar)
    }

    /// Flushes the output rows to disk.
    fn sync(&self) -> Result<()> {
        self.targets.iter().try_for_each(OutPart::sync)
    }
}

/// `--weighting fvt`: every missing row is its FVT row; the rows without one get the mean of
/// the overlapping source rows (read only then), with the reason `not_spellable`.
pub(super) fn fvt_rows(
    src: &Sources,
    matching: &Matching,
    progress: &Progress,
) -> Result<Computed> {
    let missing = &matching.missing;
    let bar = rows::rows_bar(progress, missing.len() as u64, "the CPU (fvt)");
    let spellings = src.write_fvt(missing, &bar)?;
    bar.finish();
    let mut computed = Computed {
        selection: None,
        fallback: Vec::new(),
        spellings: BTreeMap::new(),
        seconds: BTreeMap::new(),
    };
    let mut unspelled = Vec::new();
    for (&id, spelling) in missing.iter().zip(spellings) {
        match spelling {
            Some(s) => {
                computed.spellings.insert(id, s);
            }
            None => unspelled.push(id),
        }
    }
    if !unspelled.is_empty() {
        let overlap = rows::overlap_rows(src.stored, src.parts, matching)?;
        let mean = mean_rows(&overlap).map_err(|e| name_token(e, src.pair))?;
        rows::write_fixed_rows(src.targets, &unspelled, &mean)?;
    }
    unspelled.sort_unstable();
    computed.fallback = (unspelled.into_iter())
        .map(|target_id| FallbackRow {
            target_id,
            reason: "not_spellable".into(),
            got: Fallback::Mean,
        })
        .collect();
    src.sync()?;
    Ok(computed)
}

/// `--fallback fvt` after a weighted method: each fallback row (given the mean by the row
/// writer) gets its FVT row where it has one.
pub(super) fn fvt_fallback(src: &Sources, computed: &mut Computed) -> Result<()> {
    if computed.fallback.is_empty() {
        return Ok(());
    }
    let ids: Vec<u32> = computed.fallback.iter().map(|f| f.target_id).collect();
    let spellings = src.write_fvt(
        &ids,
        &Progress::Hidden.bar("fvt fallback rows", ids.len() as u64, Unit::Rows),
    )?;
    for (f, spelling) in computed.fallback.iter_mut().zip(spellings) {
        if let Some(s) = spelling {
            f.got = Fallback::Fvt;
            computed.spellings.insert(f.target_id, s);
        }
    }
    src.sync()
}
