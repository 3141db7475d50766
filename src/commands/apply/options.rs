//! What `apply` takes ([`ApplyOptions`]) and what it returns ([`ApplySummary`]).

use crate::backend::Backend;
use crate::progress::Progress;
use crate::vocab::{MatchCounts, MatchMode};
use crate::weights::Weighting;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What `apply` needs to know.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Source model directory or hub id.
    pub source: String,
    /// Helper model directory or hub id.
    pub helper: String,
    /// Where the target tokenizer comes from (default: the helper directory).
    pub helper_tokenizer: Option<String>,
    /// Output directory (must not exist unless `force`).
    pub out: PathBuf,
    /// How the missing rows are computed: the weighting with its neighbours per missing token
    /// (and softmax temperature), e.g. `Weighting::from_parts("clp", TopK::All, 0.1)`.
    pub weighting: Weighting,
    /// How target tokens are matched with source tokens.
    pub match_mode: MatchMode,
    /// Compute backend.
    pub backend: Backend,
    /// Memory budget of the tile buffers (GPU memory, or the CPU working set), bytes.
    pub memory_bytes: u64,
    /// Replace an existing OUT.
    pub force: bool,
    /// Write per-token provenance (JSON Lines) here.
    pub provenance: Option<PathBuf>,
    /// Round the number of embedding rows up to a multiple of this.
    pub pad_to_multiple: Option<usize>,
    /// The target's pad token (`--pad-token`): a token of the target tokenizer, or a new one
    /// added to it (and given one more embedding row).
    pub pad_token: Option<String>,
    /// Where progress shows (copying tensors, computing rows).
    pub progress: Progress,
    /// The command line, recorded in clp_transfer.json.
    pub arguments: Vec<String>,
}

/// What `apply` did (printed by the CLI, `--json` prints it as JSON).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ApplySummary {
    /// The output directory.
    pub out: PathBuf,
    /// Resolved source directory.
    pub source: PathBuf,
    /// Resolved helper directory.
    pub helper: PathBuf,
    /// Directory the target tokenizer was copied from.
    pub target_tokenizer: PathBuf,
    /// Backend name.
    pub backend: String,
    /// GPU adapter (GPU backend only).
    pub adapter: Option<String>,
    /// `--top-k`.
    pub top_k: String,
    /// The weighting (method, k, temperature).
    pub weighting: String,
    /// Dtype of the source input embedding (and of the new one).
    pub dtype: String,
    /// Tokens of the target tokenizer (largest id + 1).
    pub target_tokens: usize,
    /// Rows of the new embedding (tokens plus padding).
    pub target_rows: usize,
    /// Tokens copied from the source.
    pub overlap: usize,
    /// How the tokens matched, per kind (exact, canonical-only, special by role, missing).
    pub matching: MatchCounts,
    /// Special tokens given the source row of the same role.
    pub special_by_role: usize,
    /// Tokens computed by CLP (fallback rows included).
    pub computed: usize,
    /// Computed tokens that got the fallback instead.
    pub fallback: usize,
    /// Names of the tensors that were rebuilt.
    pub tensors_rebuilt: Vec<String>,
    /// What the user should know about how the run differs from what was asked (e.g.
    /// canonical matching falling back to exact); printed by the CLI, kept in the report.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<String>,
    /// Seconds per stage.
    pub timings_s: BTreeMap<String, f64>,
}
