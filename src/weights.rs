//! The vocabulary of a CLP computation, shared by the GPU engine and the CPU reference: how many
//! neighbours to use, how to weight them, and what comes back (rows, selections, rejected rows).

/// How many overlapping tokens each missing token is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopK {
    /// The `k` most similar overlapping tokens (k ≥ 1; clamped to the overlap size).
    K(usize),
    /// Every overlapping token: the original CLP-Transfer (computed in low rank on the GPU).
    All,
}

impl std::str::FromStr for TopK {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("all") {
            return Ok(TopK::All);
        }
        match s.parse::<usize>() {
            Ok(k) if k >= 1 => Ok(TopK::K(k)),
            _ => Err(format!(
                "`{s}` is not a top-k: give a whole number ≥ 1 or `all`"
            )),
        }
    }
}

impl std::fmt::Display for TopK {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TopK::K(k) => write!(f, "{k}"),
            TopK::All => f.write_str("all"),
        }
    }
}

/// How selected neighbours are weighted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Weighting {
    /// CLP-Transfer: w = cos, normalised by Σ cos (negative cosines kept).
    Clp {
        /// Neighbours per missing row.
        top_k: TopK,
    },
}

impl Weighting {
    /// The neighbour count of this weighting.
    pub fn top_k(&self) -> TopK {
        match *self {
            Weighting::Clp { top_k } => top_k,
        }
    }
}

/// A row whose weights would be meaningless: |Σw| ≤ this × Σ|w| (top-k) or × ‖Σ_j ĥ_j‖ (dense)
/// amplifies rounding error by more than 1000× and is what produces garbage/NaN in the original.
pub const WEIGHT_SUM_TOLERANCE: f32 = 1e-3;

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
    /// Its weights nearly cancel (see [`WEIGHT_SUM_TOLERANCE`]).
    WeightSumNearZero,
    /// The combination would hold NaN or Inf (a non-finite source row was selected).
    NonFiniteResult,
}

impl RejectReason {
    /// Shader status code of the combine/finish stage.
    pub fn from_code(code: u32) -> Option<RejectReason> {
        match code {
            0 => None,
            1 => Some(RejectReason::ZeroHelperRow),
            2 => Some(RejectReason::NonFiniteHelperRow),
            3 => Some(RejectReason::WeightSumNearZero),
            _ => Some(RejectReason::NonFiniteResult),
        }
    }
    /// The status code of this reason (the inverse of [`RejectReason::from_code`]).
    pub fn code(self) -> u32 {
        match self {
            RejectReason::ZeroHelperRow => 1,
            RejectReason::NonFiniteHelperRow => 2,
            RejectReason::WeightSumNearZero => 3,
            RejectReason::NonFiniteResult => 4,
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

/// The neighbours chosen for each missing row in top-k mode.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// Neighbours per row (the requested k clamped to the overlap size).
    pub k: usize,
    /// `rows × k` indices into the overlap rows, best first (ties: smaller index first).
    pub indices: Vec<u32>,
    /// `rows × k` cosine similarities, matching `indices`.
    pub scores: Vec<f32>,
}

/// The result of a CLP computation.
#[derive(Debug, Clone)]
pub struct ClpOutput {
    /// `missing × dim` f32 rows, row-major; rejected rows are all zeros.
    pub rows: Vec<f32>,
    /// Columns of each row (the source dimension).
    pub dim: usize,
    /// Rows not computed from weights, ascending by row.
    pub rejected: Vec<RejectedRow>,
    /// Chosen neighbours (top-k mode only).
    pub selection: Option<Selection>,
}
