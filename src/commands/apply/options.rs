//! What `apply` takes ([`ApplyOptions`], with its [`Method`] and [`Fallback`]) and what it
//! returns ([`ApplySummary`]).

use crate::backend::Backend;
use crate::defaults::Preset;
use crate::method::{TopK, Weighting};
use crate::progress::Progress;
use crate::vocab::{MatchCounts, MatchMode};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What `apply` needs to know.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Source model directory or hub id.
    pub source: String,
    /// Helper model directory or hub id (optional with [`Method::Fvt`] when
    /// `helper_tokenizer` is given: FVT reads no helper weights).
    pub helper: Option<String>,
    /// Where the target tokenizer comes from (default: the helper directory).
    pub helper_tokenizer: Option<String>,
    /// Output directory (must not exist unless `force`).
    pub out: PathBuf,
    /// How the missing rows are built: a weighting with its neighbours per missing token (and
    /// softmax temperature), e.g. `Method::Weighted(Weighting::from_parts("clp", TopK::All,
    /// 0.1)?)`, or FVT.
    pub method: Method,
    /// What rows the method cannot build get (`--fallback`).
    pub fallback: Fallback,
    /// How target tokens are matched with source tokens.
    pub match_mode: MatchMode,
    /// The `--preset` that set `weighting` and `match_mode`, if any (recorded in the report).
    pub preset: Option<Preset>,
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
    /// Resolved helper directory (`None`: FVT with `--helper-tokenizer` alone).
    pub helper: Option<PathBuf>,
    /// Directory the target tokenizer was copied from.
    pub target_tokenizer: PathBuf,
    /// Backend name.
    pub backend: String,
    /// GPU adapter (GPU backend only).
    pub adapter: Option<String>,
    /// The `--preset`, if one set the method.
    pub preset: Option<Preset>,
    /// Token matching (`exact` or `canonical`).
    pub match_mode: String,
    /// `--top-k`.
    pub top_k: String,
    /// The method: the weighting (with k and temperature), or `fvt`.
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
    /// Tokens computed by the method (fallback rows included).
    pub computed: usize,
    /// Rows that got a fallback: computed tokens the method could not build, and target tokens
    /// without a helper row.
    pub fallback: usize,
    /// `--fallback` as asked.
    pub fallback_method: Fallback,
    /// The fallback rows per kind they got.
    pub fallback_rows: FallbackCounts,
    /// Names of the tensors that were rebuilt.
    pub tensors_rebuilt: Vec<String>,
    /// What the user should know about how the run differs from what was asked (e.g.
    /// canonical matching falling back to exact); printed by the CLI, kept in the report.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<String>,
    /// Seconds per stage.
    pub timings_s: BTreeMap<String, f64>,
}

/// How `apply` builds the rows of the missing tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// A weighted combination of the overlapping source rows, weights from similarities in the
    /// helper's embedding space (CLP and the other weightings), on the chosen backend.
    Weighted(Weighting),
    /// FVT (fast vocabulary transfer): the mean of the source rows of the token as the source
    /// tokenizer spells it. Reads no helper weights and needs no backend.
    Fvt,
}

impl Method {
    /// Checks the parameters (see [`Weighting::validate`]).
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Method::Weighted(w) => w.validate(),
            Method::Fvt => Ok(()),
        }
    }

    /// The method over `overlap` overlapping tokens (see [`Weighting::for_overlap`]).
    pub fn for_overlap(self, overlap: usize) -> Result<Method, String> {
        match self {
            Method::Weighted(w) => w.for_overlap(overlap).map(Method::Weighted),
            Method::Fvt => Ok(Method::Fvt),
        }
    }

    /// The label in the report: the weighting's (method, k, temperature), or `fvt`.
    pub fn label(&self) -> String {
        match self {
            Method::Weighted(w) => w.label(),
            Method::Fvt => "fvt".into(),
        }
    }

    /// The name as on the command line (`--weighting`).
    pub fn name(&self) -> &'static str {
        match self {
            Method::Weighted(w) => w.name(),
            Method::Fvt => "fvt",
        }
    }

    /// `--top-k` as given: OMP's atoms (not its candidates), else the selected neighbours;
    /// `None` for FVT, which selects none.
    pub fn requested_top_k(&self) -> Option<TopK> {
        match *self {
            Method::Weighted(Weighting::Omp { atoms }) => Some(TopK::K(atoms)),
            Method::Weighted(w) => Some(w.top_k()),
            Method::Fvt => None,
        }
    }
}

/// What a row gets when the method cannot build it (`--fallback`): a rejected row (zero or
/// non-finite helper row, cancelling weights, a non-finite result, ...), a target token with
/// no helper row, a token FVT cannot spell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fallback {
    /// The token's FVT row (the mean of the source rows of its spelling by the source
    /// tokenizer); the mean when the source tokenizer cannot spell it.
    Fvt,
    /// The mean of the overlapping source rows.
    Mean,
}

impl Fallback {
    /// The name as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Fallback::Fvt => "fvt",
            Fallback::Mean => "mean",
        }
    }
}

/// Fallback rows per kind of row they got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FallbackCounts {
    /// Rows that got their FVT row.
    pub fvt: usize,
    /// Rows that got the mean of the overlapping source rows.
    pub mean: usize,
}
