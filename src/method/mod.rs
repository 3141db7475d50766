//! The method of a CLP computation, shared by every backend and the f64 reference: how many
//! neighbours to use and how to weight them ([`weighting`], [`omp`]), how a row is finished and
//! rejected ([`finish_rule`], [`status`]) and what comes back ([`output`]). (Model weights are
//! [`crate::model::Weights`]; this module is about the method.)

pub mod finish_rule;
pub mod omp;
pub mod output;
pub mod status;
pub mod weighting;

pub use finish_rule::{FinishRule, NormRange, NORM_RANGE_SLACK, WEIGHT_SUM_TOLERANCE};
pub use omp::{affine_fit, omp, omp_tile_weights, OMP_RIDGE};
pub use output::{ClpOutput, Selection};
pub use status::{normalize_rows, RejectReason, RejectedRow, RowStatus};
pub use weighting::{
    closed_form_weights, omp_candidates, selectable, TopK, Weighting, MAX_OMP_ATOMS, MAX_SELECTED,
    OMP_CANDIDATES_PER_ATOM,
};
