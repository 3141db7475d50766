//! What happens to each row: the status of a normalised helper row, why a missing row was
//! rejected (both as the shaders' status codes), and the f64 row normalisation every backend
//! shares.

use crate::tensor::MatrixRef;

/// State of one helper row after normalisation (values match the shaders' status codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[repr(u32)]
pub enum RowStatus {
    /// Finite and non-zero: normalised.
    Ok = 0,
    /// All zeros: left as zeros.
    Zero = 1,
    /// Contains NaN or ±Inf: set to zeros.
    NonFinite = 2,
}

impl RowStatus {
    /// From a shader status code.
    pub fn from_code(code: u32) -> RowStatus {
        match code {
            0 => RowStatus::Ok,
            1 => RowStatus::Zero,
            _ => RowStatus::NonFinite,
        }
    }
}

/// Why a missing row was not computed from its weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// Its helper embedding is all zeros: there is no direction to compare.
    ZeroHelperRow,
    /// Its helper embedding holds NaN or Inf.
    NonFiniteHelperRow,
    /// Its weights nearly cancel (see [`super::WEIGHT_SUM_TOLERANCE`]); for OMP, whose rows are not
    /// divided by the sum: it has no atoms, so every coefficient is zero (the helper row is
    /// orthogonal to every candidate, the limit |Σx| = Σ|x| = 0 of the same condition).
    WeightSumNearZero,
    /// The combination would hold NaN or Inf (a non-finite source row was selected).
    NonFiniteResult,
    /// OMP only: the row's L2 norm exceeds that of every overlap source row (its affine
    /// coefficients extrapolate far beyond their atoms; see [`super::NormRange`]).
    NormOutOfRange,
}

impl RejectReason {
    /// Shader status code of the combine/finish stage.
    pub fn from_code(code: u32) -> Option<RejectReason> {
        match code {
            0 => None,
            1 => Some(RejectReason::ZeroHelperRow),
            2 => Some(RejectReason::NonFiniteHelperRow),
            3 => Some(RejectReason::WeightSumNearZero),
            5 => Some(RejectReason::NormOutOfRange),
            _ => Some(RejectReason::NonFiniteResult),
        }
    }
    /// The reason as reports name it (its serde name, e.g. `norm_out_of_range`).
    pub fn name(self) -> &'static str {
        match self {
            RejectReason::ZeroHelperRow => "zero_helper_row",
            RejectReason::NonFiniteHelperRow => "non_finite_helper_row",
            RejectReason::WeightSumNearZero => "weight_sum_near_zero",
            RejectReason::NonFiniteResult => "non_finite_result",
            RejectReason::NormOutOfRange => "norm_out_of_range",
        }
    }
    /// The status code of this reason (the inverse of [`RejectReason::from_code`]).
    pub fn code(self) -> u32 {
        match self {
            RejectReason::ZeroHelperRow => 1,
            RejectReason::NonFiniteHelperRow => 2,
            RejectReason::WeightSumNearZero => 3,
            RejectReason::NonFiniteResult => 4,
            RejectReason::NormOutOfRange => 5,
        }
    }
}

/// A missing row left as zeros, for the caller to fill with its fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RejectedRow {
    /// Index into the missing rows.
    pub row: usize,
    /// Why.
    pub reason: RejectReason,
}

/// L2-normalised rows of `m` (zeros for zero or non-finite rows) and each row's status.
pub fn normalize_rows(m: &MatrixRef) -> (Vec<f64>, Vec<RowStatus>) {
    let mut out = vec![0.0f64; m.rows * m.cols];
    let mut status = Vec::with_capacity(m.rows);
    for r in 0..m.rows {
        let row = m.row_f64(r);
        if row.iter().any(|x| !x.is_finite()) {
            status.push(RowStatus::NonFinite);
            continue;
        }
        let norm = row.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm == 0.0 {
            status.push(RowStatus::Zero);
            continue;
        }
        for (o, x) in out[r * m.cols..(r + 1) * m.cols].iter_mut().zip(&row) {
            *o = x / norm;
        }
        status.push(RowStatus::Ok);
    }
    (out, status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reject_reasons_round_trip_their_codes_and_names() {
        use RejectReason::*;
        let all = [
            ZeroHelperRow,
            NonFiniteHelperRow,
            WeightSumNearZero,
            NonFiniteResult,
            NormOutOfRange,
        ];
        for (i, r) in all.into_iter().enumerate() {
            assert_eq!(r.code(), i as u32 + 1);
            assert_eq!(RejectReason::from_code(r.code()), Some(r));
            assert_eq!(serde_json::to_value(r).unwrap(), r.name());
        }
        assert_eq!(NormOutOfRange.name(), "norm_out_of_range");
        assert_eq!(RejectReason::from_code(0), None);
    }
}
