//! The method of a CLP computation: how many neighbours to use ([`TopK`]) and how to weight
//! them ([`Weighting`], every method of it in one `impl`), and the closed-form weights the
//! reference and the CPU path compute from a row's scores.

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
/// used as solved; its rows are bounded by the norms of the source rows (see [`super::FinishRule`]).
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
    /// ones, and the affine least-squares coefficients x (Σx = 1, see [`super::affine_fit`]) of the
    /// missing token's raw helper row on theirs weight the source rows: the row is Σ_j x_j e_j.
    /// A row with no atoms (its helper row is orthogonal to every candidate), or whose L2 norm
    /// exceeds that of every overlap source row, is rejected ([`super::FinishRule::AsSolved`]).
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
                TopK::All => {
                    return Err(format!(
                        "--weighting omp needs --top-k K (its atoms, ≤ {MAX_OMP_ATOMS})"
                    ))
                }
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
                "--weighting {} needs --top-k K (a number ≤ {MAX_SELECTED}); only clp has a dense (`all`) form",
                self.name()
            )),
            Weighting::Omp { atoms: 0 } => Err("--top-k for omp (its atoms) must be at least 1".into()),
            Weighting::Omp { atoms } if atoms > MAX_OMP_ATOMS => Err(format!(
                "omp with {atoms} atoms: at most {MAX_OMP_ATOMS} are supported (candidates are {OMP_CANDIDATES_PER_ATOM} × atoms ≤ {MAX_SELECTED})"
            )),
            _ => Ok(()),
        }
    }
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
            TopK::K(k) if !selectable(k) && k >= overlap => Err(format!(
                "--weighting {} over all {overlap} overlapping tokens: at most {MAX_SELECTED} can be selected per token; use --top-k {MAX_SELECTED} or less (or --weighting clp --top-k all)",
                w.name()
            )),
            TopK::K(k) if !selectable(k) => Err(format!(
                "--top-k {k}: at most {MAX_SELECTED} neighbours can be selected per token, and {overlap} tokens overlap; use --top-k {MAX_SELECTED} or less, or `all`"
            )),
            _ => {
                w.validate()?;
                Ok(w)
            }
        }
    }
}

/// The most neighbours a top-k selection keeps per row, on every backend (the GPU top-k holds its
/// candidates in workgroup memory, one invocation each: `kernels::TOPK_WORKGROUP`).
pub const MAX_SELECTED: usize = 256;

/// Whether a selection can hold `k` neighbours per row (1 to [`MAX_SELECTED`]): the one top-k
/// limit check, used by the method, the backend contract and the GPU kernel.
pub fn selectable(k: usize) -> bool {
    (1..=MAX_SELECTED).contains(&k)
}

/// Candidates OMP chooses its atoms from: the most similar overlap tokens.
pub fn omp_candidates(atoms: usize) -> usize {
    (OMP_CANDIDATES_PER_ATOM * atoms).clamp(atoms, MAX_SELECTED)
}

/// OMP chooses each atom from this many candidates (the selection's size per atom).
pub const OMP_CANDIDATES_PER_ATOM: usize = 4;

/// Most OMP atoms: their candidates must fit one selection ([`MAX_SELECTED`]).
pub const MAX_OMP_ATOMS: usize = MAX_SELECTED / OMP_CANDIDATES_PER_ATOM;

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

#[cfg(test)]
mod tests {
    use super::*;

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
