//! The multi-threaded CPU path: the same tiled pipeline as the GPU engine (same plan, same
//! stages, same guards and status codes), with the GEMMs done by `matrixmultiply` (SIMD
//! micro-kernels, threaded) and the per-row stages spread over cores with `rayon`.
//!
//! It makes the tool useful without a GPU and puts GPU and CPU one flag apart in `bench`. It is
//! not the oracle: accumulation is f32 like the GPU's; [`crate::backend::reference`] (f64) stays the
//! oracle for both.

use crate::backend::api::{self, stage, ClpBackend, Stats, TileOut};
use crate::error::Result;
use crate::method::status::code as status_code;
use crate::method::{
    closed_form_weights, FinishRule, RejectReason, RowStatus, Weighting, WEIGHT_SUM_TOLERANCE,
};
use crate::plan::{choose_tiles, Problem, TileLimits, TilePlan, OVERLAP_BLOCK_ROWS};
use crate::rows::RowSet;
use crate::tensor::DType;
use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;
use std::time::Instant;

/// The CPU backend. `memory_bytes` bounds the working set of tiles, like `--gpu-memory` does on
/// the device.
#[derive(Debug, Clone, Copy)]
pub struct CpuBackend {
    /// Bytes all tile buffers together may take.
    pub memory_bytes: u64,
    /// Cap on missing rows per tile (tests).
    pub max_m_rows: usize,
    /// Cap on overlap rows per tile (tests).
    pub max_o_rows: usize,
}

impl CpuBackend {
    /// A CPU backend with a working-set budget.
    pub fn new(memory_bytes: u64) -> CpuBackend {
        CpuBackend {
            memory_bytes,
            max_m_rows: usize::MAX,
            max_o_rows: usize::MAX,
        }
    }
}

/// Decodes gathered rows of `dtype` into `dst` (resized).
fn decode(dtype: DType, bytes: &[u8], dst: &mut Vec<f32>) {
    let n = bytes.len() / dtype.size_bytes();
    dst.resize(n, 0.0);
    match dtype {
        DType::F32 => bytemuck::cast_slice_mut::<f32, u8>(dst).copy_from_slice(bytes),
        DType::F16 => {
            let h: Vec<half::f16> = bytemuck::pod_collect_to_vec(bytes);
            h.convert_to_f32_slice(dst);
        }
        DType::BF16 => {
            let h: Vec<half::bf16> = bytemuck::pod_collect_to_vec(bytes);
            h.convert_to_f32_slice(dst);
        }
    }
}

/// L2-normalises each row in place (max-abs scaled, f64 sum of squares) and records its status;
/// zero and non-finite rows become zeros, as on the GPU.
fn normalize(x: &mut [f32], cols: usize, status: &mut Vec<u32>) {
    status.resize(x.len() / cols, 0);
    x.par_chunks_mut(cols)
        .zip(status.par_iter_mut())
        .for_each(|(row, st)| {
            if row.iter().any(|v| !v.is_finite()) {
                *st = RowStatus::NonFinite as u32;
                row.fill(0.0);
                return;
            }
            let m = row.iter().fold(0.0f32, |a, v| a.max(v.abs()));
            if m == 0.0 {
                *st = RowStatus::Zero as u32;
                return;
            }
            let inv_m = 1.0 / m as f64;
            let ss: f64 = row.iter().map(|&v| (v as f64 * inv_m).powi(2)).sum();
            let inv = inv_m / ss.sqrt();
            for v in row.iter_mut() {
                *v = (*v as f64 * inv) as f32;
            }
            *st = RowStatus::Ok as u32;
        });
}

/// C (m × n) = A · B + beta · C, with A (m × k) and B (k × n) given by row and column strides
/// (so transposes are free) and C row-major.
fn gemm(
    (m, n, k): (usize, usize, usize),
    a: &[f32],
    (rsa, csa): (usize, usize),
    b: &[f32],
    (rsb, csb): (usize, usize),
    beta: f32,
    c: &mut [f32],
) {
    let last = |rows: usize, cols: usize, rs: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs;
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    assert!(last(m, k, rsa, csa) < a.len() && last(k, n, rsb, csb) < b.len() && c.len() >= m * n);
    // SAFETY: the assert bounds every element the strides reach.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// Best first; ties go to the smaller index.
fn better(a: &(f32, u32), b: &(f32, u32)) -> std::cmp::Ordering {
    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
}

/// Merges one tile of a row's scores (overlap ids from `o0`) into its running top-k.
fn merge_row(best: &mut Vec<(f32, u32)>, scores: &[f32], o0: u32, k: usize) {
    let full = best.len() == k;
    let threshold = best.last().map_or(f32::NEG_INFINITY, |b| b.0);
    // Later ids lose ties, so a full list only takes strictly better scores.
    let mut cand: Vec<(f32, u32)> = scores
        .iter()
        .enumerate()
        .filter(|(_, &s)| !full || s > threshold)
        .map(|(j, &s)| (s + 0.0, o0 + j as u32))
        .collect();
    if cand.is_empty() {
        return;
    }
    cand.append(best);
    if cand.len() > k {
        cand.select_nth_unstable_by(k - 1, better);
        cand.truncate(k);
    }
    cand.sort_unstable_by(better);
    *best = cand;
}

/// Finishes one row under `rule` (divided by `sum`, or as solved and bounded in norm), guards it
/// and writes it; returns its status code. `scale` is what the cancellation guard compares
/// |Σw| with (for rows as solved: Σ|w|, zero when every weight is).
fn finish_row(
    numer: &[f32],
    (sum, scale): (f32, f64),
    rule: FinishRule,
    h_status: u32,
    out: &mut [f32],
) -> u32 {
    out.fill(0.0);
    if h_status == RowStatus::Zero as u32 || h_status == RowStatus::NonFinite as u32 {
        return h_status;
    }
    let range = match rule {
        FinishRule::DivideBySum => {
            let bound = WEIGHT_SUM_TOLERANCE as f64 * scale;
            if !sum.is_finite() || bound.is_nan() || (sum.abs() as f64) <= bound {
                return RejectReason::WeightSumNearZero.code();
            }
            if numer.iter().any(|&v| !(v / sum).is_finite()) {
                return RejectReason::NonFiniteResult.code();
            }
            for (o, &v) in out.iter_mut().zip(numer) {
                *o = v / sum;
            }
            return status_code::OK;
        }
        FinishRule::AsSolved(range) => range,
    };
    if scale.is_nan() || scale <= 0.0 {
        return RejectReason::WeightSumNearZero.code();
    }
    if numer.iter().any(|v| !v.is_finite()) {
        return RejectReason::NonFiniteResult.code();
    }
    let norm = numer
        .iter()
        .map(|&v| (v as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    if !range.contains(norm) {
        return RejectReason::NormOutOfRange.code();
    }
    out.copy_from_slice(numer);
    status_code::OK
}

/// Buffers of one run, reused for every tile.
#[derive(Default)]
struct Work {
    raw: Vec<u8>,
    hm: Vec<f32>,
    hm_status: Vec<u32>,
    ho: Vec<f32>,
    ho_status: Vec<u32>,
    eo: Vec<f32>,
    scores: Vec<f32>,
    numer: Vec<f32>,
    out: Vec<f32>,
    status: Vec<u32>,
}

impl Work {
    /// Gathers and decodes rows of `set` into `dst` (timed as gather + upload).
    fn load(
        raw: &mut Vec<u8>,
        stats: &mut Stats,
        set: &RowSet,
        start: usize,
        end: usize,
        dst: &mut Vec<f32>,
    ) -> Result<()> {
        stats.time(stage::GATHER, || set.gather(start, end, raw))?;
        stats.gathered_bytes += raw.len() as u64;
        stats.time(stage::UPLOAD, || decode(set.dtype(), raw, dst));
        Ok(())
    }
}

impl ClpBackend for CpuBackend {
    fn describe(&self) -> String {
        format!(
            "CPU ({} threads, matrixmultiply sgemm)",
            rayon::current_num_threads()
        )
    }

    fn tile_plan(&self, problem: &Problem) -> Result<TilePlan> {
        choose_tiles(
            problem,
            &TileLimits {
                max_binding_bytes: self.memory_bytes,
                budget_bytes: self.memory_bytes,
                max_m_rows: self.max_m_rows,
                max_o_rows: self.max_o_rows,
            },
        )
    }

    fn run(
        &self,
        hm: &RowSet,
        ho: &RowSet,
        eo: &RowSet,
        weighting: &Weighting,
        sink: &mut dyn FnMut(&TileOut) -> Result<()>,
    ) -> Result<Stats> {
        let p = api::problem(hm, ho, eo, weighting)?;
        if p.missing == 0 {
            return Ok(Stats::default());
        }
        let tp = ClpBackend::tile_plan(self, &p)?;
        let mut run = Run {
            sets: Sets { hm, ho, eo },
            weighting,
            rule: FinishRule::for_run(weighting, eo)?,
            o_tiles: api::tiles(p.overlap, tp.o_rows),
            p,
            w: Work::default(),
            stats: Stats {
                tiles: (tp.m_rows, tp.o_rows),
                buffer_bytes: tp.gpu_bytes,
                ..Stats::default()
            },
        };
        let dense = match run.p.k {
            None => Some(run.dense_gram()?),
            Some(_) => None,
        };
        for (m0, m1) in api::tiles(run.p.missing, tp.m_rows) {
            run.missing_tile((m0, m1), dense.as_ref(), sink)?;
        }
        Ok(run.stats)
    }
}

/// The three inputs of a run.
struct Sets<'s, 'a> {
    hm: &'s RowSet<'a>,
    ho: &'s RowSet<'a>,
    eo: &'s RowSet<'a>,
}

/// Dense mode's accumulated G = Ĥ_Oᵀ [E_O | 1] (dh × (ds + 1)) and the guard scale ‖Σ_j ĥ_j‖.
struct Dense {
    gram: Vec<f32>,
    scale: f64,
}

/// The selection of one missing tile in top-k mode: per row the best (score, overlap index)
/// pairs, best first, and their weights (`kk` per row).
struct TopKTile {
    best: Vec<Vec<(f32, u32)>>,
    kk: usize,
    weights: Vec<f32>,
}

/// One run of the CPU path: its problem, inputs, the overlap tiles and the reused buffers.
struct Run<'s, 'a> {
    sets: Sets<'s, 'a>,
    weighting: &'s Weighting,
    /// How finished rows are divided and bounded.
    rule: FinishRule,
    p: Problem,
    o_tiles: Vec<(usize, usize)>,
    w: Work,
    stats: Stats,
}

impl Run<'_, '_> {
    /// Gathers, decodes and (for helper rows) normalises rows `start..end` of one input.
    fn load_helper(&mut self, missing: bool, start: usize, end: usize) -> Result<()> {
        let dh = self.p.helper_dim;
        let (set, dst, status) = if missing {
            (self.sets.hm, &mut self.w.hm, &mut self.w.hm_status)
        } else {
            (self.sets.ho, &mut self.w.ho, &mut self.w.ho_status)
        };
        Work::load(&mut self.w.raw, &mut self.stats, set, start, end, dst)?;
        self.stats
            .time(stage::NORMALISE, || normalize(dst, dh, status));
        Ok(())
    }

    fn load_source(&mut self, start: usize, end: usize) -> Result<()> {
        let eo = self.sets.eo;
        Work::load(
            &mut self.w.raw,
            &mut self.stats,
            eo,
            start,
            end,
            &mut self.w.eo,
        )
    }

    /// Dense mode, once per run: G over every overlap tile, then the guard scale.
    fn dense_gram(&mut self) -> Result<Dense> {
        let (dh, ds) = (self.p.helper_dim, self.p.source_dim);
        let mut gram = vec![0.0f32; dh * (ds + 1)];
        let mut e1 = Vec::new();
        for (o0, o1) in self.o_tiles.clone() {
            let ot = o1 - o0;
            debug_assert!(o0 % OVERLAP_BLOCK_ROWS == 0, "dense tile at {o0}");
            self.load_helper(false, o0, o1)?;
            self.load_source(o0, o1)?;
            let w = &self.w;
            self.stats.time(stage::GRAM, || {
                e1.resize(ot * (ds + 1), 1.0);
                e1.par_chunks_mut(ds + 1)
                    .zip(w.eo.par_chunks(ds))
                    .for_each(|(dst, src)| {
                        dst[..ds].copy_from_slice(src);
                        dst[ds] = 1.0;
                    });
                // G += Ĥ_Oᵀ [E_O | 1] block by block (A = Ĥ_Oᵀ read transposed): the tile
                // starts on a block boundary, so the sums do not depend on the tile height.
                for (b0, b1) in api::tiles(ot, OVERLAP_BLOCK_ROWS) {
                    gemm(
                        (dh, ds + 1, b1 - b0),
                        &w.ho[b0 * dh..],
                        (1, dh),
                        &e1[b0 * (ds + 1)..],
                        (ds + 1, 1),
                        1.0,
                        &mut gram,
                    );
                }
            });
        }
        let s: Vec<f64> = (0..dh).map(|i| gram[i * (ds + 1) + ds] as f64).collect();
        let m = s.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        let mut scale = 0.0f64;
        if m > 0.0 {
            scale = m * s.iter().map(|v| (v / m).powi(2)).sum::<f64>().sqrt();
        }
        Ok(Dense { gram, scale })
    }

    /// Computes missing rows `m0..m1` and hands them to the sink.
    fn missing_tile(
        &mut self,
        (m0, m1): (usize, usize),
        dense: Option<&Dense>,
        sink: &mut dyn FnMut(&TileOut) -> Result<()>,
    ) -> Result<()> {
        let mt = m1 - m0;
        self.load_helper(true, m0, m1)?;
        self.w.out.resize(mt * self.p.source_dim, 0.0);
        self.w.status.resize(mt, 0);
        let selected = match (dense, self.p.k) {
            (Some(d), _) => {
                self.dense_rows(mt, d);
                None
            }
            (None, Some(k)) => {
                let best = self.select(mt, k)?;
                let sel = self.weigh(m0, m1, best)?;
                self.combine(&sel)?;
                Some(sel)
            }
            (None, None) => unreachable!("dense mode always has its gram"),
        };
        let (mut scores, mut indices) = (Vec::new(), Vec::new());
        if let Some(sel) = &selected {
            for b in &sel.best {
                scores.extend(b.iter().map(|p| p.0));
                indices.extend(b.iter().map(|p| p.1));
            }
        }
        let t = Instant::now();
        sink(&TileOut {
            start: m0,
            dim: self.p.source_dim,
            rows: &self.w.out,
            status: &self.w.status,
            k: self.p.k.unwrap_or(0),
            scores: &scores,
            indices: &indices,
            weights: selected.as_ref().map_or(&[][..], |s| &s.weights),
        })?;
        self.stats.add(stage::WRITE, t.elapsed());
        Ok(())
    }

    /// Dense mode, per missing tile: Ĥ_M G divided by its last column, guarded.
    fn dense_rows(&mut self, mt: usize, d: &Dense) {
        let (dh, ds) = (self.p.helper_dim, self.p.source_dim);
        let t = Instant::now();
        let w = &mut self.w;
        w.numer.resize(mt * (ds + 1), 0.0);
        gemm(
            (mt, ds + 1, dh),
            &w.hm,
            (dh, 1),
            &d.gram,
            (ds + 1, 1),
            0.0,
            &mut w.numer,
        );
        w.out
            .par_chunks_mut(ds)
            .zip(w.status.par_iter_mut())
            .zip(w.numer.par_chunks(ds + 1).zip(w.hm_status.par_iter()))
            .for_each(|((out, st), (numer, &hs))| {
                let sum = (numer[ds], d.scale);
                *st = finish_row(&numer[..ds], sum, FinishRule::DivideBySum, hs, out);
            });
        self.stats.add(stage::COMBINE, t.elapsed());
    }

    /// Top-k mode: the k most similar overlap rows of each missing row, over every overlap tile.
    fn select(&mut self, mt: usize, k: usize) -> Result<Vec<Vec<(f32, u32)>>> {
        let dh = self.p.helper_dim;
        let mut best: Vec<Vec<(f32, u32)>> = vec![Vec::with_capacity(k); mt];
        for (o0, o1) in self.o_tiles.clone() {
            let ot = o1 - o0;
            self.load_helper(false, o0, o1)?;
            let w = &mut self.w;
            self.stats.time(stage::SIMILARITY, || {
                w.scores.resize(mt * ot, 0.0);
                // S = Ĥ_M Ĥ_Oᵀ: B = Ĥ_Oᵀ (dh × ot) read transposed.
                gemm(
                    (mt, ot, dh),
                    &w.hm,
                    (dh, 1),
                    &w.ho,
                    (1, dh),
                    0.0,
                    &mut w.scores,
                );
                best.par_iter_mut()
                    .zip(w.scores.par_chunks(ot))
                    .for_each(|(b, s)| merge_row(b, s, o0 as u32, k));
            });
        }
        Ok(best)
    }

    /// The weights of each row's selection, in selection order.
    fn weigh(&mut self, m0: usize, m1: usize, best: Vec<Vec<(f32, u32)>>) -> Result<TopKTile> {
        let t = Instant::now();
        let kk = best.first().map_or(0, Vec::len);
        let weights: Vec<f32> = match *self.weighting {
            Weighting::Omp { atoms } => {
                let indices: Vec<u32> = best.iter().flat_map(|b| b.iter().map(|p| p.1)).collect();
                let Sets { hm, ho, .. } = self.sets;
                crate::method::omp_tile_weights(hm, ho, m0, m1, &indices, kk, atoms)?
            }
            _ => best
                .par_iter()
                .flat_map_iter(|b| {
                    let s: Vec<f64> = b.iter().map(|p| p.0 as f64).collect();
                    closed_form_weights(self.weighting, &s)
                        .into_iter()
                        .map(|x| x as f32)
                })
                .collect(),
        };
        self.stats.add(stage::COMBINE, t.elapsed());
        Ok(TopKTile { best, kk, weights })
    }

    /// Top-k mode: Σ_j w_j e_j over every overlap tile, then the run's [`FinishRule`] (the
    /// division by Σ w, or OMP's norm bounds) and the guards.
    /// Each row adds its selected rows in ascending overlap index, one running sum across
    /// tiles, so the sum does not depend on where the tiles split the overlap.
    fn combine(&mut self, sel: &TopKTile) -> Result<()> {
        let ds = self.p.source_dim;
        let kk = sel.kk.max(1);
        self.w.numer.clear();
        self.w.numer.resize(sel.best.len() * ds, 0.0);
        let by_index: Vec<Vec<(u32, f32)>> = sel
            .best
            .par_iter()
            .zip(sel.weights.par_chunks(kk))
            .map(|(b, wr)| {
                let mut v: Vec<(u32, f32)> =
                    b.iter().map(|p| p.1).zip(wr.iter().copied()).collect();
                v.sort_unstable_by_key(|p| p.0);
                v
            })
            .collect();
        for (o0, o1) in self.o_tiles.clone() {
            self.load_source(o0, o1)?;
            let w = &mut self.w;
            self.stats.time(stage::COMBINE, || {
                w.numer
                    .par_chunks_mut(ds)
                    .zip(by_index.par_iter())
                    .for_each(|(acc, sel)| accumulate(acc, sel, (o0, o1), &w.eo, ds));
            });
        }
        let t = Instant::now();
        let (w, rule) = (&mut self.w, self.rule);
        w.out
            .par_chunks_mut(ds)
            .zip(w.status.par_iter_mut())
            .zip(w.numer.par_chunks(ds).zip(sel.weights.par_chunks(kk)))
            .zip(w.hm_status.par_iter())
            .for_each(|(((out, st), (numer, wr)), &hs)| {
                let sum = wr.iter().fold(0.0f32, |a, &x| a + x);
                let scale = wr.iter().fold(0.0f32, |a, &x| a + x.abs());
                *st = finish_row(numer, (sum, scale as f64), rule, hs, out);
            });
        self.stats.add(stage::COMBINE, t.elapsed());
        Ok(())
    }
}

/// Adds `w_j · e_j` to `acc` for the selected `(j, w_j)` (ascending `j`) that fall in the
/// overlap tile `o0..o1` (`eo_tile` holds its source rows), in ascending `j`.
fn accumulate(
    acc: &mut [f32],
    by_index: &[(u32, f32)],
    (o0, o1): (usize, usize),
    eo_tile: &[f32],
    ds: usize,
) {
    let start = by_index.partition_point(|p| (p.0 as usize) < o0);
    for &(j, wj) in &by_index[start..] {
        let j = j as usize;
        if j >= o1 {
            break;
        }
        if wj == 0.0 {
            continue;
        }
        let e = &eo_tile[(j - o0) * ds..(j - o0 + 1) * ds];
        for (a, &x) in acc.iter_mut().zip(e) {
            *a += wj * x;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_best_and_breaks_ties_to_the_smaller_index() {
        let mut best = Vec::new();
        merge_row(&mut best, &[0.5, 0.9, 0.5, -0.0], 0, 3);
        assert_eq!(best, vec![(0.9, 1), (0.5, 0), (0.5, 2)]);
        merge_row(&mut best, &[0.5, 0.7, 1.0], 4, 3);
        assert_eq!(best, vec![(1.0, 6), (0.9, 1), (0.7, 5)]);
    }
}
