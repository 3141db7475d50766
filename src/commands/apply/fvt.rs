//! FVT rows (fast vocabulary transfer): a target token's row is the mean of the source rows of
//! the token as the source tokenizer spells it ([`Speller`]: its bytes and word-start flag in
//! the source's spelling, lone bytes through the source's `<0xHH>` byte-fallback tokens),
//! averaged in f64 over every vocabulary part side by side (input embedding, untied lm_head,
//! output bias) and encoded in the source dtype like every computed row. `--weighting fvt`
//! builds every missing row this way; `--fallback fvt` the rows the weighted methods reject.
//!
//! Only the source rows the spellings name are read: the spellings, one after another, are one
//! [`RowSet`] streamed in chunks, so a token's rows are summed as they arrive and its row is
//! written as soon as its last source row is in. A token without a canonical form (special and
//! added tokens), one the source tokenizer cannot spell, and one whose mean is not finite in
//! the source dtype get no FVT row; the caller gives them the mean of the overlap.

use super::layout::OutPart;
use super::read::Part;
use super::rows::{encode_parts, name_token, source_rows};
use crate::commands::column_stats::try_for_each_chunk;
use crate::error::Result;
use crate::model::pair::SourceTarget;
use crate::progress::Bar;
use crate::rows::Stored;
use crate::vocab::fvt::Speller;

/// Where FVT rows are read from and written to.
pub(super) struct FvtRows<'a> {
    /// The source and the target tokenizer.
    pub pair: &'a SourceTarget,
    /// The source tokenizer, ready to spell target tokens.
    pub speller: &'a Speller<'a>,
    /// The source vocabulary tensors as stored, one per part.
    pub stored: &'a [Stored<'a>],
    /// The parts (for the tensor names in errors).
    pub parts: &'a [Part<'a>],
    /// The output tensors, one per part.
    pub targets: &'a [OutPart],
}

impl FvtRows<'_> {
    /// The source ids that spell target token `id`: `None` when it has no canonical form, the
    /// source tokenizer cannot spell it, or the spelling names a token past the source's rows.
    pub fn spell(&self, id: u32) -> Option<Vec<u32>> {
        let form = self.pair.target_vocab.canonical(id)?;
        let ids = self.speller.spell(&form)?;
        let rows = self.stored.first()?.rows;
        ids.iter().all(|&s| (s as usize) < rows).then_some(ids)
    }

    /// Writes the FVT row of each target token of `ids` that has one; returns, per token, the
    /// source ids its row averages (`None`: no FVT row was written, see the module docs).
    pub fn write(&self, ids: &[u32], bar: &Bar) -> Result<Vec<Option<Vec<u32>>>> {
        let mut spellings: Vec<Option<Vec<u32>>> = ids.iter().map(|&id| self.spell(id)).collect();
        // Each spelled token in order: (index into `ids`, rows of its spelling).
        let queue: Vec<(usize, usize)> = (spellings.iter().enumerate())
            .filter_map(|(i, s)| Some((i, s.as_ref()?.len())))
            .collect();
        let flat: Vec<u32> = spellings.iter().flatten().flatten().copied().collect();
        let set = source_rows(
            "source rows of FVT spellings",
            self.stored,
            self.parts,
            flat,
        )?;
        let mut acc = vec![0.0f64; set.cols()];
        let mut encoded = vec![Vec::new(); self.targets.len()];
        let (mut token, mut summed) = (0, 0);
        let mut not_finite = Vec::new();
        try_for_each_chunk(&set, |m| {
            for r in 0..m.rows {
                for (c, a) in acc.iter_mut().enumerate() {
                    *a += m.get(r, c) as f64;
                }
                summed += 1;
                let (i, n) = queue[token];
                if summed < n {
                    continue;
                }
                let mean: Vec<f32> = acc.iter().map(|&a| (a / n as f64) as f32).collect();
                if encode_parts(self.targets, &mean, &mut encoded) {
                    for (t, bytes) in self.targets.iter().zip(&encoded) {
                        t.write_row(ids[i], bytes)?;
                    }
                } else {
                    not_finite.push(i);
                }
                acc.fill(0.0);
                (token, summed) = (token + 1, 0);
                bar.inc(1);
            }
            Ok(())
        })
        .map_err(|e| name_token(e, self.pair))?;
        bar.inc((ids.len() - queue.len()) as u64);
        for i in not_finite {
            spellings[i] = None;
        }
        Ok(spellings)
    }
}
