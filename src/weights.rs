//! The vocabulary of a CLP computation, shared by the GPU engine and the CPU reference: how many
//! neighbours to use, how to weight them, and what comes back (rows, selections, rejected rows).
//! Also the host-side math every backend shares: f64 row normalisation and OMP.

use crate::rows::RowSet;
use crate::tensor::MatrixRef;

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

/// How selected neighbours are weighted. The closed-form weightings (clp, softmax, sparsemax)
/// are divided by their sum, so a new row has the scale of the source rows, and are guarded
/// against weights that cancel. OMP's coefficients are affine (they sum to 1 as solved) and are
/// used as solved; its rows are bounded by the norms of the source rows (see [`FinishRule`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Weighting {
    /// CLP-Transfer: w = cos, normalised by Σ cos (negative cosines kept).
    Clp {
        /// Neighbours per missing row.
        top_k: TopK,
    },
    /// WECHSEL-style: w = exp((cos − cos_max) / T) over the top-k.
    Softmax {
        /// Neighbours per missing row (must be a number).
        top_k: TopK,
        /// Temperature T > 0.
        temperature: f32,
    },
    /// FOCUS-style: sparsemax of the cosines over the top-k (exact whenever the support is
    /// smaller than k, which the reports count).
    Sparsemax {
        /// Neighbours per missing row (must be a number).
        top_k: TopK,
    },
    /// Orthogonal matching pursuit in the helper space (tokensurgeon-style atom choice):
    /// `atoms` overlap tokens are chosen greedily from the [`omp_candidates`] most similar
    /// ones, and the affine least-squares coefficients x (Σx = 1, see [`affine_fit`]) of the
    /// missing token's raw helper row on theirs weight the source rows: the row is Σ_j x_j e_j.
    /// A row with no atoms (its helper row is orthogonal to every candidate), or whose L2 norm
    /// exceeds that of every overlap source row, is rejected ([`FinishRule::AsSolved`]).
    Omp {
        /// Atoms per missing row.
        atoms: usize,
    },
}

impl Weighting {
    /// Builds a weighting from its command-line parts: `name` (clp, softmax, sparsemax, omp),
    /// `--top-k` (for omp: the atoms) and `--temperature` (softmax only).
    pub fn from_parts(name: &str, top_k: TopK, temperature: f32) -> Result<Weighting, String> {
        let w = match name {
            "clp" => Weighting::Clp { top_k },
            "softmax" => Weighting::Softmax { top_k, temperature },
            "sparsemax" => Weighting::Sparsemax { top_k },
            "omp" => match top_k {
                TopK::K(atoms) => Weighting::Omp { atoms },
                TopK::All => return Err("--weighting omp needs --top-k K (its atoms, ≤ 64)".into()),
            },
            other => {
                return Err(format!(
                    "--weighting `{other}`: choose clp, softmax, sparsemax or omp"
                ))
            }
        };
        w.validate()?;
        Ok(w)
    }
}

/// Candidates OMP chooses its atoms from: the most similar overlap tokens.
pub fn omp_candidates(atoms: usize) -> usize {
    (4 * atoms).clamp(atoms, 256)
}

impl Weighting {
    /// The neighbours selected by similarity (OMP: its candidates).
    pub fn top_k(&self) -> TopK {
        match *self {
            Weighting::Clp { top_k }
            | Weighting::Softmax { top_k, .. }
            | Weighting::Sparsemax { top_k } => top_k,
            Weighting::Omp { atoms } => TopK::K(omp_candidates(atoms)),
        }
    }
    /// The method's name as on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Weighting::Clp { .. } => "clp",
            Weighting::Softmax { .. } => "softmax",
            Weighting::Sparsemax { .. } => "sparsemax",
            Weighting::Omp { .. } => "omp",
        }
    }
    /// A short label: method, k and temperature.
    pub fn label(&self) -> String {
        match *self {
            Weighting::Clp { top_k } => format!("clp k={top_k}"),
            Weighting::Softmax { top_k, temperature } => {
                format!("softmax k={top_k} T={temperature}")
            }
            Weighting::Sparsemax { top_k } => format!("sparsemax k={top_k}"),
            Weighting::Omp { atoms } => format!("omp k={atoms}"),
        }
    }
    /// Whether rows are divided by the sum of their weights (every weighting but OMP, whose
    /// coefficients are used as solved).
    pub fn divides_by_weight_sum(&self) -> bool {
        !matches!(self, Weighting::Omp { .. })
    }
    /// Code of the GPU `weights` kernel (OMP weights are computed on the host).
    pub fn shader_mode(&self) -> u32 {
        match self {
            Weighting::Clp { .. } => 0,
            Weighting::Softmax { .. } => 1,
            Weighting::Sparsemax { .. } => 2,
            Weighting::Omp { .. } => 3,
        }
    }
    /// Checks the parameters; dense mode exists only for CLP (it is computed in low rank).
    pub fn validate(&self) -> Result<(), String> {
        match *self {
            Weighting::Softmax { temperature, .. } if !(temperature > 0.0 && temperature.is_finite()) => {
                Err(format!("--temperature {temperature}: give a number > 0, e.g. 0.1"))
            }
            Weighting::Softmax { top_k: TopK::All, .. } | Weighting::Sparsemax { top_k: TopK::All } => Err(format!(
                "--weighting {} needs --top-k K (a number ≤ 256); only clp has a dense (`all`) form",
                self.name()
            )),
            Weighting::Omp { atoms: 0 } => Err("--top-k for omp (its atoms) must be at least 1".into()),
            Weighting::Omp { atoms } if atoms > 64 => Err(format!(
                "omp with {atoms} atoms: at most 64 are supported (candidates are 4 × atoms ≤ 256)"
            )),
            _ => Ok(()),
        }
    }
}

impl Weighting {
    /// This weighting over `overlap` overlapping tokens: a k at or above the overlap means all
    /// of them (clp: its dense form; softmax and sparsemax: k = the overlap, when the selection
    /// can hold that many; omp: at most that many atoms). A k the selection cannot hold (more
    /// than [`MAX_SELECTED`]) and below the overlap is an error that states the limit.
    pub fn for_overlap(self, overlap: usize) -> Result<Weighting, String> {
        let k = match self.top_k() {
            TopK::K(k) => k,
            TopK::All => return Ok(self),
        };
        let w = match self {
            Weighting::Clp { .. } if k >= overlap => Weighting::Clp { top_k: TopK::All },
            Weighting::Omp { atoms } => Weighting::Omp {
                atoms: atoms.min(overlap),
            },
            Weighting::Softmax { temperature, .. } if k >= overlap => Weighting::Softmax {
                top_k: TopK::K(overlap),
                temperature,
            },
            Weighting::Sparsemax { .. } if k >= overlap => Weighting::Sparsemax {
                top_k: TopK::K(overlap),
            },
            w => w,
        };
        match w.top_k() {
            TopK::K(k) if k > MAX_SELECTED && k >= overlap => Err(format!(
                "--weighting {} over all {overlap} overlapping tokens: at most {MAX_SELECTED} can be selected per token; use --top-k {MAX_SELECTED} or less (or --weighting clp --top-k all)",
                w.name()
            )),
            TopK::K(k) if k > MAX_SELECTED => Err(format!(
                "--top-k {k}: at most {MAX_SELECTED} neighbours can be selected per token, and {overlap} tokens overlap; use --top-k {MAX_SELECTED} or less, or `all`"
            )),
            _ => {
                w.validate()?;
                Ok(w)
            }
        }
    }
}

/// The most neighbours a top-k selection keeps per row (the GPU top-k holds its candidates in
/// workgroup memory).
pub const MAX_SELECTED: usize = crate::kernels::MAX_TOP_K;

/// Weights of one row from its selected similarities (best first), for the closed-form
/// weightings (not OMP). f64; the GPU kernel does the same in f32.
pub fn closed_form_weights(w: &Weighting, scores: &[f64]) -> Vec<f64> {
    match *w {
        Weighting::Clp { .. } | Weighting::Omp { .. } => scores.to_vec(),
        Weighting::Softmax { temperature, .. } => {
            let top = scores.first().copied().unwrap_or(0.0);
            scores
                .iter()
                .map(|s| ((s - top) / temperature as f64).exp())
                .collect()
        }
        Weighting::Sparsemax { .. } => {
            // Scores are sorted descending: the support is the longest prefix with
            // 1 + j·z_j > Σ_{i≤j} z_i.
            let mut cum = 0.0;
            let mut tau = 0.0;
            for (j, &z) in scores.iter().enumerate() {
                cum += z;
                let n = (j + 1) as f64;
                if 1.0 + n * z > cum {
                    tau = (cum - 1.0) / n;
                }
            }
            scores.iter().map(|z| (z - tau).max(0.0)).collect()
        }
    }
}

/// Orthogonal matching pursuit of one missing row: `target` is its raw helper row and
/// `candidates` the raw helper rows (`n × dim`) of the overlap tokens to choose from. Up to
/// `atoms` candidates are chosen greedily by |cosine| with the residual, on unit rows (the
/// choice does not depend on row norms), refitting least squares after every pick (incremental
/// Cholesky); ties go to the smaller index and nearly dependent atoms are skipped. The returned
/// coefficients (one per candidate, zero where not chosen) are then refitted on the *raw* rows
/// as an affine combination ([`affine_fit`]): they sum to 1. Zero or non-finite rows count as
/// zero rows (never chosen; a zero target chooses nothing and gets no coefficients).
pub fn omp(target: &[f64], candidates: &[f64], dim: usize, atoms: usize) -> Vec<f64> {
    let n = candidates.len() / dim.max(1);
    let unit = |v: &[f64]| -> Vec<f64> {
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm.is_finite() && norm > 0.0 {
            v.iter().map(|x| x / norm).collect()
        } else {
            vec![0.0; v.len()]
        }
    };
    let t = unit(target);
    let a: Vec<f64> = candidates.chunks(dim.max(1)).flat_map(unit).collect();
    let chosen = omp_choose(&t, &a, dim, atoms);
    let mut out = vec![0.0; n];
    let rows: Vec<&[f64]> = (chosen.iter())
        .map(|&j| &candidates[j * dim..(j + 1) * dim])
        .collect();
    for (&j, x) in chosen.iter().zip(affine_fit(target, &rows)) {
        out[j] = x;
    }
    out
}

/// The ridge of OMP's affine refit, relative to tr(C) = Σ_j ‖t − h_j‖² (the regulariser of
/// locally linear embedding, at its customary 1e-3). It grows with the atoms, as the need for it
/// does: more atoms fit more of what only the helper space holds, and their coefficients carry
/// more of what only the source rows hold (measured on the trained pair: at k = 64 a ridge of
/// 1e-3 × the *mean* squared distance left 15% of the rows longer than every source row). On a
/// pair whose source rows are an exact linear image of the helper rows it costs ~1% relative
/// error.
pub const OMP_RIDGE: f64 = 1e-3;

/// The affine least-squares coefficients of `target` on `rows` (the chosen atoms, raw):
/// `min ‖Σ_j x_j h_j − t‖² + λ ‖x‖²` subject to `Σ_j x_j = 1`, λ = [`OMP_RIDGE`] × tr(C),
/// solved as `C x ∝ 1` with C the Gram matrix of the differences t − h_j (+ λ I), by Cholesky
/// in f64. Why affine and not plain least squares, measured (README, "OMP"): trained
/// embeddings share a large common component, the source's differing from the helper's, so
/// the plain coefficients' sum decides the row's length; an affine combination carries every
/// component the atoms share (the common one included) over as it is, and is exact whenever
/// the source rows are an affine image of the helper rows. Empty for no rows.
pub fn affine_fit(target: &[f64], rows: &[&[f64]]) -> Vec<f64> {
    let k = rows.len();
    if k == 0 {
        return Vec::new();
    }
    let diff: Vec<Vec<f64>> = (rows.iter())
        .map(|r| target.iter().zip(*r).map(|(t, h)| t - h).collect())
        .collect();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let mut c: Vec<Vec<f64>> = (diff.iter())
        .map(|di| diff.iter().map(|dj| dot(di, dj)).collect())
        .collect();
    let trace: f64 = (0..k).map(|i| c[i][i]).sum();
    if trace.is_nan() || trace <= 0.0 || trace.is_infinite() {
        return vec![1.0 / k as f64; k]; // the target is every atom: any affine weights fit
    }
    let lambda = OMP_RIDGE * trace;
    for (i, ci) in c.iter_mut().enumerate() {
        ci[i] += lambda;
    }
    let x = cholesky_solve(c, &vec![1.0; k]);
    let sum: f64 = x.iter().sum();
    x.iter().map(|v| v / sum).collect()
}

/// `G x = b` for a symmetric positive definite G, by Cholesky (G overwritten by L).
fn cholesky_solve(mut g: Vec<Vec<f64>>, b: &[f64]) -> Vec<f64> {
    let t = b.len();
    for c in 0..t {
        let d = g[c][c] - (0..c).map(|k| g[c][k] * g[c][k]).sum::<f64>();
        g[c][c] = d.max(f64::MIN_POSITIVE).sqrt();
        for r in c + 1..t {
            let acc: f64 = (0..c).map(|k| g[r][k] * g[c][k]).sum();
            g[r][c] = (g[r][c] - acc) / g[c][c];
        }
    }
    let mut y = vec![0.0; t];
    for r in 0..t {
        let acc: f64 = (0..r).map(|c| g[r][c] * y[c]).sum();
        y[r] = (b[r] - acc) / g[r][r];
    }
    let mut x = vec![0.0; t];
    for r in (0..t).rev() {
        let acc: f64 = (r + 1..t).map(|c| g[c][r] * x[c]).sum();
        x[r] = (y[r] - acc) / g[r][r];
    }
    x
}

/// Greedy OMP on unit rows: the chosen candidate indices, in the order chosen.
fn omp_choose(target: &[f64], candidates: &[f64], dim: usize, atoms: usize) -> Vec<usize> {
    let n = candidates.len() / dim.max(1);
    let atom = |j: usize| &candidates[j * dim..(j + 1) * dim];
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let b: Vec<f64> = (0..n).map(|j| dot(atom(j), target)).collect();
    let mut chosen: Vec<usize> = Vec::new();
    let mut excluded = vec![false; n];
    let mut gram_cols: Vec<Vec<f64>> = Vec::new(); // G[:, s] for every chosen s
    let mut l: Vec<Vec<f64>> = Vec::new(); // Cholesky rows of G[S, S]
    let mut x: Vec<f64> = Vec::new();
    while chosen.len() < atoms.min(n) {
        // Correlation of the residual with every candidate: b − G[:, S] x.
        let mut best: Option<(usize, f64)> = None;
        for j in 0..n {
            if excluded[j] {
                continue;
            }
            let c = b[j]
                - gram_cols
                    .iter()
                    .zip(&x)
                    .map(|(g, xi)| g[j] * xi)
                    .sum::<f64>();
            if best.is_none_or(|(_, bc)| c.abs() > bc) {
                best = Some((j, c.abs()));
            }
        }
        let Some((j, corr)) = best else { break };
        if corr <= 1e-12 {
            break;
        }
        excluded[j] = true;
        let g: Vec<f64> = (0..n).map(|i| dot(atom(i), atom(j))).collect();
        // New Cholesky row: solve L w = G[S, j]; d = sqrt(G[j, j] − |w|²).
        let mut wv = Vec::with_capacity(chosen.len());
        for (r, lr) in l.iter().enumerate() {
            let acc: f64 = (0..r).map(|c| lr[c] * wv[c]).sum();
            wv.push((g[chosen[r]] - acc) / lr[r]);
        }
        let d2 = g[j] - wv.iter().map(|v| v * v).sum::<f64>();
        if d2 <= 1e-10 {
            continue; // dependent on the atoms already chosen
        }
        wv.push(d2.sqrt());
        l.push(wv);
        chosen.push(j);
        gram_cols.push(g);
        // Solve L Lᵀ x = b[S].
        let t = chosen.len();
        let mut y = vec![0.0; t];
        for r in 0..t {
            let acc: f64 = (0..r).map(|c| l[r][c] * y[c]).sum();
            y[r] = (b[chosen[r]] - acc) / l[r][r];
        }
        x = vec![0.0; t];
        for r in (0..t).rev() {
            let acc: f64 = (r + 1..t).map(|c| l[c][r] * x[c]).sum();
            x[r] = (y[r] - acc) / l[r][r];
        }
    }
    chosen
}

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
        const CHUNK: usize = 4096;
        let mut max = None::<f64>;
        let mut bytes = Vec::new();
        for r0 in (0..set.rows()).step_by(CHUNK) {
            let r1 = (r0 + CHUNK).min(set.rows());
            set.gather(r0, r1, &mut bytes)?;
            let m = MatrixRef::new(set.name(), &bytes, set.dtype(), r1 - r0, set.cols())?;
            for r in 0..m.rows {
                let norm = (0..m.cols)
                    .map(|c| (m.get(r, c) as f64).powi(2))
                    .sum::<f64>()
                    .sqrt();
                if norm.is_finite() {
                    max = Some(max.map_or(norm, |m| m.max(norm)));
                }
            }
        }
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
    /// ([`RejectReason::WeightSumNearZero`]) or when its L2 norm leaves the range
    /// ([`RejectReason::NormOutOfRange`]).
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
    /// Its weights nearly cancel (see [`WEIGHT_SUM_TOLERANCE`]); for OMP, whose rows are not
    /// divided by the sum: it has no atoms, so every coefficient is zero (the helper row is
    /// orthogonal to every candidate, the limit |Σx| = Σ|x| = 0 of the same condition).
    WeightSumNearZero,
    /// The combination would hold NaN or Inf (a non-finite source row was selected).
    NonFiniteResult,
    /// OMP only: the row's L2 norm exceeds that of every overlap source row (its affine
    /// coefficients extrapolate far beyond their atoms; see [`NormRange`]).
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

/// The neighbours chosen for each missing row in top-k mode.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// Neighbours per row (the requested k clamped to the overlap size).
    pub k: usize,
    /// `rows × k` indices into the overlap rows, best first (ties: smaller index first).
    pub indices: Vec<u32>,
    /// `rows × k` cosine similarities, matching `indices`.
    pub scores: Vec<f32>,
    /// `rows × k` weights before any division by their sum (CLP: the cosines; OMP: the
    /// coefficients, which are never divided).
    pub weights: Vec<f32>,
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

/// OMP weights of missing rows `m0..m1` given their selected candidates (`indices`, `n` per
/// row, into the overlap rows): the host step of [`Weighting::Omp`] for every backend, on the
/// raw helper rows in f64 as in the reference ([`omp`]); rows run in parallel.
pub fn omp_tile_weights(
    h_missing: &RowSet,
    h_overlap: &RowSet,
    m0: usize,
    m1: usize,
    indices: &[u32],
    n: usize,
    atoms: usize,
) -> crate::Result<Vec<f32>> {
    use rayon::prelude::*;
    let dh = h_overlap.cols();
    let raw = |set: &RowSet, bytes: &[u8], rows: usize| -> crate::Result<Vec<f64>> {
        let m = MatrixRef::new(set.name(), bytes, set.dtype(), rows, dh)?;
        Ok((0..rows).flat_map(|r| m.row_f64(r)).collect())
    };
    let mut bytes = Vec::new();
    h_missing.gather(m0, m1, &mut bytes)?;
    let targets = raw(h_missing, &bytes, m1 - m0)?;
    // Every distinct candidate once, gathered in index order (runs read together).
    let mut ids: Vec<u32> = indices.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let mut cand = Vec::new();
    let mut row = Vec::new();
    for &id in &ids {
        h_overlap.gather(id as usize, id as usize + 1, &mut row)?;
        cand.extend_from_slice(&row);
    }
    let cand = raw(h_overlap, &cand, ids.len())?;
    let pos = |id: u32| ids.binary_search(&id).unwrap_or(0);
    let out: Vec<Vec<f32>> = (0..m1 - m0)
        .into_par_iter()
        .map(|r| {
            let sel = &indices[r * n..(r + 1) * n];
            let mut a = Vec::with_capacity(n * dh);
            for &j in sel {
                let p = pos(j);
                a.extend_from_slice(&cand[p * dh..(p + 1) * dh]);
            }
            omp(&targets[r * dh..(r + 1) * dh], &a, dh, atoms)
                .into_iter()
                .map(|x| x as f32)
                .collect()
        })
        .collect();
    Ok(out.concat())
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

    #[test]
    fn k_at_or_above_the_overlap_means_all_of_it() {
        let clp = |k| Weighting::Clp { top_k: TopK::K(k) };
        assert_eq!(
            clp(5000).for_overlap(321),
            Ok(Weighting::Clp { top_k: TopK::All })
        );
        assert_eq!(
            clp(321).for_overlap(321),
            Ok(Weighting::Clp { top_k: TopK::All })
        );
        assert_eq!(clp(10).for_overlap(321), Ok(clp(10)));
        let soft = |k| Weighting::Softmax {
            top_k: TopK::K(k),
            temperature: 0.1,
        };
        assert_eq!(soft(5000).for_overlap(200), Ok(soft(200)));
        assert_eq!(
            Weighting::Omp { atoms: 50 }.for_overlap(20),
            Ok(Weighting::Omp { atoms: 20 })
        );
        // Between the selection limit and the overlap: one line stating the limit.
        let e = clp(300).for_overlap(5000).unwrap_err();
        assert!(e.contains("at most 256"), "{e}");
        let e = soft(5000).for_overlap(300).unwrap_err();
        assert!(e.contains("at most 256") && e.contains("300"), "{e}");
        let e = Weighting::Sparsemax {
            top_k: TopK::K(400),
        }
        .for_overlap(1000)
        .unwrap_err();
        assert!(e.contains("--top-k 400"), "{e}");
    }
}
