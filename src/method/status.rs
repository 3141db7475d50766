//! What happens to each row: the status of a normalised helper row, why a missing row was
//! rejected (both as the shaders' status codes), and the f64 row normalisation every backend
//! shares.

use crate::error::{Error, Result};
use crate::tensor::MatrixRef;

/// The status codes rows carry out of every backend: the `STATUS_*` constants of
/// `shaders/common.wgsl`, with the same names and values (the naga test checks that they agree).
pub mod code {
    /// Computed (a helper row: finite and non-zero).
    pub const OK: u32 = 0;
    /// The helper row is all zeros.
    pub const ZERO_HELPER_ROW: u32 = 1;
    /// The helper row holds NaN or ±Inf.
    pub const NON_FINITE_HELPER_ROW: u32 = 2;
    /// The weights cancel (OMP: no atoms).
    pub const WEIGHT_SUM_NEAR_ZERO: u32 = 3;
    /// The result would not be finite.
    pub const NON_FINITE_RESULT: u32 = 4;
    /// OMP: the row's norm is out of range.
    pub const NORM_OUT_OF_RANGE: u32 = 5;
    /// Every code, with its name in `shaders/common.wgsl` (after `STATUS_`).
    pub const ALL: [(&str, u32); 6] = [
        ("OK", OK),
        ("ZERO_HELPER_ROW", ZERO_HELPER_ROW),
        ("NON_FINITE_HELPER_ROW", NON_FINITE_HELPER_ROW),
        ("WEIGHT_SUM_NEAR_ZERO", WEIGHT_SUM_NEAR_ZERO),
        ("NON_FINITE_RESULT", NON_FINITE_RESULT),
        ("NORM_OUT_OF_RANGE", NORM_OUT_OF_RANGE),
    ];
}

/// A status code no backend writes: a bug (in a shader, most likely) must surface, not pass as
/// a plausible reason.
fn unknown(code: u32, what: &str) -> Error {
    Error::Gpu(format!(
        "unknown {what} status code {code} (known: 0 to {}): a bug in clp-gpu, please report it",
        code::NORM_OUT_OF_RANGE
    ))
}

/// State of one helper row after normalisation (values match the shaders' status codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[repr(u32)]
pub enum RowStatus {
    /// Finite and non-zero: normalised.
    Ok = code::OK,
    /// All zeros: left as zeros.
    Zero = code::ZERO_HELPER_ROW,
    /// Contains NaN or ±Inf: set to zeros.
    NonFinite = code::NON_FINITE_HELPER_ROW,
}

impl RowStatus {
    /// From a `normalize` status code; any other code is an error.
    pub fn from_code(c: u32) -> Result<RowStatus> {
        match c {
            code::OK => Ok(RowStatus::Ok),
            code::ZERO_HELPER_ROW => Ok(RowStatus::Zero),
            code::NON_FINITE_HELPER_ROW => Ok(RowStatus::NonFinite),
            _ => Err(unknown(c, "row")),
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
    /// From an output row's status code (the finish stage's): `None` for a computed row; a
    /// code no backend writes is an error.
    pub fn from_code(c: u32) -> Result<Option<RejectReason>> {
        Ok(Some(match c {
            code::OK => return Ok(None),
            code::ZERO_HELPER_ROW => RejectReason::ZeroHelperRow,
            code::NON_FINITE_HELPER_ROW => RejectReason::NonFiniteHelperRow,
            code::WEIGHT_SUM_NEAR_ZERO => RejectReason::WeightSumNearZero,
            code::NON_FINITE_RESULT => RejectReason::NonFiniteResult,
            code::NORM_OUT_OF_RANGE => RejectReason::NormOutOfRange,
            _ => return Err(unknown(c, "output row")),
        }))
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
            RejectReason::ZeroHelperRow => code::ZERO_HELPER_ROW,
            RejectReason::NonFiniteHelperRow => code::NON_FINITE_HELPER_ROW,
            RejectReason::WeightSumNearZero => code::WEIGHT_SUM_NEAR_ZERO,
            RejectReason::NonFiniteResult => code::NON_FINITE_RESULT,
            RejectReason::NormOutOfRange => code::NORM_OUT_OF_RANGE,
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
            assert_eq!(RejectReason::from_code(r.code()).unwrap(), Some(r));
            assert_eq!(serde_json::to_value(r).unwrap(), r.name());
        }
        assert_eq!(NormOutOfRange.name(), "norm_out_of_range");
        assert_eq!(RejectReason::from_code(0).unwrap(), None);
        // A code no backend writes is an error, never a plausible reason.
        for c in [6, 7, u32::MAX] {
            let e = RejectReason::from_code(c).unwrap_err().to_string();
            assert!(e.contains(&format!("status code {c}")), "{e}");
            assert!(RowStatus::from_code(c).is_err());
        }
        assert!(RowStatus::from_code(3).is_err());
        for s in [RowStatus::Ok, RowStatus::Zero, RowStatus::NonFinite] {
            assert_eq!(RowStatus::from_code(s as u32).unwrap(), s);
        }
    }
}
