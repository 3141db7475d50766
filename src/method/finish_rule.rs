//! The finish stage's rule, which every backend applies the same way: divided rows and their
//! cancellation guard, OMP's rows as solved and the norm range that bounds them.

use crate::rows::RowSet;

use super::weighting::Weighting;

/// A row whose weights would be meaningless: |Σw| ≤ this × Σ|w| (top-k) or × ‖Σ_j ĥ_j‖ (dense)
/// amplifies rounding error by more than 1000× and is what produces garbage/NaN in the original.
pub const WEIGHT_SUM_TOLERANCE: f32 = 1e-3;

/// Relative slack on both ends of a [`NormRange`]: a row equal to a source row up to rounding
/// (one atom, coefficient 1) is never rejected for its last bits, whichever backend rounds.
pub const NORM_RANGE_SLACK: f64 = 1e-4;

/// The L2 norms an OMP row may have: from zero up to the largest norm of the overlap source rows
/// over all their columns, widened by [`NORM_RANGE_SLACK`] and rounded outwards to f32, so that
/// every backend compares with the same two numbers. Only the top is a bound: coefficients that
/// extrapolate far beyond their atoms make rows *longer* than any source row, while a row
/// shorter than every source row is an ordinary average (softmax and sparsemax rows, which score
/// best, are short too). Measured on a trained pair (`tests/python/trained_pair.py`), a lower
/// bound at the smallest source norm sent 1,050 of 1,707 OMP rows to the fallback and cost 0.3
/// bits per byte. With affine coefficients the bound is a guard that rarely fires (README,
/// "OMP").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NormRange {
    /// Smallest accepted norm.
    pub lo: f32,
    /// Largest accepted norm (finite).
    pub hi: f32,
}

impl NormRange {
    /// `[0, largest row norm of set]`, streamed in chunks of rows (never the whole set) and
    /// accumulated in f64. Rows whose norm is not finite are left out (their selection is
    /// rejected as a non-finite result anyway); with none left the range is [0, 0].
    pub fn of_rows(set: &RowSet) -> crate::Result<NormRange> {
        let mut max = None::<f64>;
        set.for_each_chunk(|_, m| {
            for r in 0..m.rows {
                let norm = (0..m.cols)
                    .map(|c| (m.get(r, c) as f64).powi(2))
                    .sum::<f64>()
                    .sqrt();
                if norm.is_finite() {
                    max = Some(max.map_or(norm, |m| m.max(norm)));
                }
            }
            Ok(())
        })?;
        Ok(match max {
            Some(max) => NormRange::widened(0.0, max),
            None => NormRange { lo: 0.0, hi: 0.0 },
        })
    }

    /// `[min, max]` widened by [`NORM_RANGE_SLACK`], rounded outwards to f32 (hi at most
    /// f32::MAX).
    pub fn widened(min: f64, max: f64) -> NormRange {
        let lo = min * (1.0 - NORM_RANGE_SLACK);
        let hi = (max * (1.0 + NORM_RANGE_SLACK)).min(f32::MAX as f64);
        let (mut lo32, mut hi32) = (lo as f32, hi as f32);
        if lo32 as f64 > lo {
            lo32 = lo32.next_down();
        }
        if (hi32 as f64) < hi {
            hi32 = hi32.next_up();
        }
        NormRange {
            lo: lo32.max(0.0),
            hi: hi32,
        }
    }

    /// Whether `norm` lies in the range (false for NaN).
    pub fn contains(&self, norm: f64) -> bool {
        norm >= self.lo as f64 && norm <= self.hi as f64
    }
}

/// How every backend's finish stage turns a row's weighted sum Σ_j w_j e_j into the output row,
/// and which rows it rejects (besides zero or non-finite helper rows and non-finite results).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FinishRule {
    /// clp, softmax, sparsemax: divided by Σw; rejected when |Σw| ≤ [`WEIGHT_SUM_TOLERANCE`] ×
    /// Σ|w| (top-k) or × ‖Σ_j ĥ_j‖ (dense).
    DivideBySum,
    /// OMP: Σ_j x_j e_j as solved; rejected when every x_j is zero
    /// ([`super::RejectReason::WeightSumNearZero`]) or when its L2 norm leaves the range
    /// ([`super::RejectReason::NormOutOfRange`]).
    AsSolved(NormRange),
}

impl FinishRule {
    /// The rule of a run: computed once per run, on the host, by every backend the same way
    /// (only OMP reads anything: the norms of `e_overlap`, streamed).
    pub fn for_run(weighting: &Weighting, e_overlap: &RowSet) -> crate::Result<FinishRule> {
        if weighting.divides_by_weight_sum() {
            return Ok(FinishRule::DivideBySum);
        }
        Ok(FinishRule::AsSolved(NormRange::of_rows(e_overlap)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::method::TopK;
    use crate::tensor::MatrixRef;

    #[test]
    fn the_norm_range_holds_the_source_norms_and_only_omp_reads_it() {
        let e = [3.0f32, 4.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 2.0];
        let m = MatrixRef::from_f32(&e, 3, 3).unwrap();
        let set = RowSet::from_matrix("eo", &m);
        let range = NormRange::of_rows(&set).unwrap();
        assert!(range.lo == 0.0 && range.hi >= 5.0 && range.hi < 5.001);
        assert!(range.contains(0.49) && range.contains(5.0) && range.contains(0.0));
        assert!(!range.contains(5.01) && !range.contains(f64::NAN));
        let clp = Weighting::Clp { top_k: TopK::K(2) };
        assert_eq!(
            FinishRule::for_run(&clp, &set).unwrap(),
            FinishRule::DivideBySum
        );
        let omp = Weighting::Omp { atoms: 2 };
        assert_eq!(
            FinishRule::for_run(&omp, &set).unwrap(),
            FinishRule::AsSolved(range)
        );
    }
}
