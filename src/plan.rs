//! Tile plan: how many missing rows (`m_rows`) and overlap rows (`o_rows`) one pass of the
//! kernels handles, chosen so that every buffer fits the adapter's storage-binding limit and all
//! buffers together fit the GPU-memory budget. Buffers are allocated once from the plan and
//! reused for every tile.

use crate::error::{Error, Result};
use crate::tensor::DType;

/// The shapes and types of one CLP problem.
#[derive(Debug, Clone, Copy)]
pub struct Problem {
    /// Missing rows M.
    pub missing: usize,
    /// Overlapping rows O.
    pub overlap: usize,
    /// Helper dimension d_h.
    pub helper_dim: usize,
    /// Source dimension d_s.
    pub source_dim: usize,
    /// dtype of the helper rows (missing and overlap may differ; the wider is planned for).
    pub helper_dtype: DType,
    /// dtype of the source rows.
    pub source_dtype: DType,
    /// Neighbours per row, already clamped to O; `None` = dense mode.
    pub k: Option<usize>,
}

/// Caps and budget a plan must respect.
#[derive(Debug, Clone, Copy)]
pub struct TileLimits {
    /// Largest single storage binding in bytes.
    pub max_binding_bytes: u64,
    /// GPU memory all buffers together may use.
    pub budget_bytes: u64,
    /// Upper bound on missing rows per tile (tests use small values to force tiling).
    pub max_m_rows: usize,
    /// Upper bound on overlap rows per tile.
    pub max_o_rows: usize,
}

/// Most workgroups one dispatch dimension may have (WebGPU's default limit, which every adapter
/// offers).
pub const MAX_WORKGROUPS_PER_DIMENSION: u32 = 65_535;

/// Preferred tile sizes before limits shrink them: large enough to keep a GPU busy, small
/// enough that one similarity tile (4096 × 8192 f32 = 128 MiB) fits lavapipe's binding limit.
const PREFERRED_M_ROWS: usize = 4096;
const PREFERRED_O_ROWS: usize = 8192;
/// Most missing rows per tile: `combine` dispatches one workgroup row per missing row.
const MAX_DISPATCH_ROWS: usize = MAX_WORKGROUPS_PER_DIMENSION as usize;

/// Dense mode sums G = Ĥ_Oᵀ [E_O | 1] over the overlap in blocks of this many rows aligned to
/// absolute overlap indices (each block's partial product is added to G in order, on every
/// backend), and its overlap tiles are a multiple of it, so that G's bits do not depend on the
/// budget. A constant, never derived from the budget; a multiple of the matmul shader's K step.
/// 128 rows keep the smallest dense tile small while adding to G no more often than the CPU
/// GEMM does on its own (it updates C every 256 rows of K).
pub const OVERLAP_BLOCK_ROWS: usize = 128;

/// The chosen tiling and the buffer sizes that follow from it.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct TilePlan {
    /// Missing rows per tile.
    pub m_rows: usize,
    /// Overlap rows per tile.
    pub o_rows: usize,
    /// Total bytes of all GPU buffers.
    pub gpu_bytes: u64,
    /// Largest single buffer in bytes.
    pub largest_buffer_bytes: u64,
}

/// What a planned buffer is used as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufferUse {
    /// A storage buffer the kernels bind (also a copy source and destination).
    Storage,
    /// The map-readable buffer results are copied into.
    Readback,
}

/// One planned buffer.
#[derive(Debug, Clone, Copy)]
pub struct BufferSpec {
    /// Label of the buffer (also named in limit errors).
    pub name: &'static str,
    /// Bytes the run needs; 0 for a buffer the mode does not use (it is allocated at the
    /// minimum size so that every bind group stays complete, and not budgeted).
    pub bytes: u64,
    /// How it is used.
    pub usage: BufferUse,
}

/// Every device buffer of one run for tiles of `m_rows` × `o_rows`: the one table the planner
/// budgets with and the engine allocates from.
#[derive(Debug, Clone, Copy)]
pub struct BufferTable {
    /// Raw missing helper rows.
    pub hm_raw: BufferSpec,
    /// Normalised missing rows (f32).
    pub hm_hat: BufferSpec,
    /// Statuses of the missing rows.
    pub hm_status: BufferSpec,
    /// Raw overlap helper rows, two upload slots.
    pub ho_raw: [BufferSpec; 2],
    /// Normalised overlap rows (f32).
    pub ho_hat: BufferSpec,
    /// Statuses of the overlap rows.
    pub ho_status: BufferSpec,
    /// Raw source rows, two upload slots.
    pub eo_raw: [BufferSpec; 2],
    /// Weighted sums with the weight sum as last column.
    pub numer: BufferSpec,
    /// Output rows.
    pub out: BufferSpec,
    /// Output statuses.
    pub status: BufferSpec,
    /// Top-k: one similarity tile.
    pub scores: BufferSpec,
    /// Top-k: running best scores.
    pub best_score: BufferSpec,
    /// Top-k: running best indices.
    pub best_index: BufferSpec,
    /// Top-k: weights.
    pub weight: BufferSpec,
    /// Top-k: guard scales.
    pub guard: BufferSpec,
    /// Dense: the Gram matrix G = Ĥ_Oᵀ [E_O | 1].
    pub gram: BufferSpec,
    /// Readback: rows | status | top-k scores | top-k indices | weights.
    pub readback: BufferSpec,
}

impl BufferTable {
    /// The buffers of problem `p` for tiles of `m_rows` × `o_rows`.
    pub fn new(p: &Problem, m_rows: usize, o_rows: usize) -> BufferTable {
        let (dh, ds) = (p.helper_dim as u64, p.source_dim as u64);
        let (mt, ot) = (m_rows as u64, o_rows as u64);
        let he = p.helper_dtype.size_bytes() as u64;
        let se = p.source_dtype.size_bytes() as u64;
        let k = p.k.unwrap_or(0) as u64;
        let top_k = |bytes: u64| if p.k.is_some() { bytes } else { 0 };
        let dense = |bytes: u64| if p.k.is_none() { bytes } else { 0 };
        let storage = |name, bytes| BufferSpec {
            name,
            bytes,
            usage: BufferUse::Storage,
        };
        BufferTable {
            hm_raw: storage("missing helper rows", mt * dh * he),
            hm_hat: storage("normalised missing rows", mt * dh * 4),
            hm_status: storage("missing row status", mt * 4),
            ho_raw: [
                storage("overlap helper rows (slot 0)", ot * dh * he),
                storage("overlap helper rows (slot 1)", ot * dh * he),
            ],
            ho_hat: storage("normalised overlap rows", ot * dh * 4),
            ho_status: storage("overlap row status", ot * 4),
            eo_raw: [
                storage("source rows (slot 0)", ot * ds * se),
                storage("source rows (slot 1)", ot * ds * se),
            ],
            numer: storage("weighted sums", mt * (ds + 1) * 4),
            out: storage("output rows", mt * ds * 4),
            status: storage("output status", mt * 4),
            scores: storage("similarity tile", top_k(mt * ot * 4)),
            best_score: storage("top-k scores", top_k(mt * k * 4)),
            best_index: storage("top-k indices", top_k(mt * k * 4)),
            weight: storage("weights", top_k(mt * k * 4)),
            guard: storage("guard scales", top_k(mt * 4)),
            gram: storage("Gram matrix", dense(dh * (ds + 1) * 4)),
            readback: BufferSpec {
                name: "readback",
                bytes: mt * (ds + 1 + 3 * k) * 4,
                usage: BufferUse::Readback,
            },
        }
    }

    /// Every buffer, in a fixed order.
    pub fn entries(&self) -> [&BufferSpec; 19] {
        [
            &self.hm_raw,
            &self.hm_hat,
            &self.hm_status,
            &self.ho_raw[0],
            &self.ho_raw[1],
            &self.ho_hat,
            &self.ho_status,
            &self.eo_raw[0],
            &self.eo_raw[1],
            &self.numer,
            &self.out,
            &self.status,
            &self.scores,
            &self.best_score,
            &self.best_index,
            &self.weight,
            &self.guard,
            &self.gram,
            &self.readback,
        ]
    }

    /// Bytes of all buffers together.
    pub fn total_bytes(&self) -> u64 {
        self.entries().iter().map(|b| b.bytes).sum()
    }

    /// The largest buffer (the last of equals).
    pub fn largest(&self) -> &BufferSpec {
        self.entries()
            .into_iter()
            .max_by_key(|b| b.bytes)
            .expect("the plan has buffers")
    }
}

/// Chooses tile sizes for `p` within `limits`.
pub fn choose_tiles(p: &Problem, limits: &TileLimits) -> Result<TilePlan> {
    let mut mt = p
        .missing
        .clamp(1, PREFERRED_M_ROWS.min(limits.max_m_rows.max(1)));
    mt = mt.min(MAX_DISPATCH_ROWS);
    let mut ot = first_o_rows(p, limits.max_o_rows);
    loop {
        let total_of = |mt: usize, ot: usize| BufferTable::new(p, mt, ot).total_bytes();
        let buffers = BufferTable::new(p, mt, ot);
        let total = buffers.total_bytes();
        let (big_name, big) = (buffers.largest().name, buffers.largest().bytes);
        if big <= limits.max_binding_bytes && total <= limits.budget_bytes {
            return Ok(TilePlan {
                m_rows: mt,
                o_rows: ot,
                gpu_bytes: total,
                largest_buffer_bytes: big,
            });
        }
        // Shrink whichever side the buffers depend on more; never below k overlap rows.
        let m_cost = total - total_of(mt / 2, ot);
        let smaller_o = halved_o_rows(p, ot);
        let o_cost = smaller_o.map_or(0, |o| total - total_of(mt, o));
        let can_m = mt > 1;
        if can_m && (m_cost >= o_cost || smaller_o.is_none()) {
            mt /= 2;
        } else if let Some(o) = smaller_o {
            ot = o;
        } else {
            let (needed, limit_bytes, limit) = if big > limits.max_binding_bytes {
                (
                    big,
                    limits.max_binding_bytes,
                    format!("max storage binding ({big_name})"),
                )
            } else {
                (total, limits.budget_bytes, "GPU memory budget".to_string())
            };
            return Err(Error::Limit {
                what: format!(
                    "a CLP pass over {} x {} helper and {} x {} source rows",
                    p.missing, p.helper_dim, p.overlap, p.source_dim
                ),
                needed_bytes: needed,
                limit_bytes,
                limit,
                fix: if p.k.is_none() {
                    "raise --gpu-memory, or use --top-k K (dense mode keeps a d_h x d_s Gram matrix on the GPU)".into()
                } else {
                    "raise --gpu-memory or lower --top-k".into()
                },
            });
        }
    }
}

/// The overlap tile before the budget shrinks it: the whole overlap or the preferred size
/// under `cap`, never below k rows (top-k) or one [`OVERLAP_BLOCK_ROWS`] block (dense, where a
/// tile is a whole number of blocks unless it is the whole overlap).
fn first_o_rows(p: &Problem, cap: usize) -> usize {
    let cap = PREFERRED_O_ROWS.min(cap.max(1));
    let cap = match p.k {
        Some(k) => cap.max(k),
        None => (cap / OVERLAP_BLOCK_ROWS).max(1) * OVERLAP_BLOCK_ROWS,
    };
    p.overlap.clamp(1, cap)
}

/// The next smaller overlap tile after `ot`, if any: half of it, and in dense mode rounded down
/// to whole [`OVERLAP_BLOCK_ROWS`] blocks (at least one); top-k never goes below k rows.
fn halved_o_rows(p: &Problem, ot: usize) -> Option<usize> {
    let half = match p.k {
        Some(k) => Some(ot / 2).filter(|&h| h >= k.max(1)),
        None => Some(ot / 2 / OVERLAP_BLOCK_ROWS * OVERLAP_BLOCK_ROWS)
            .filter(|&h| h > 0)
            .or((ot > OVERLAP_BLOCK_ROWS).then_some(OVERLAP_BLOCK_ROWS)),
    };
    half.filter(|&h| h < ot)
}

/// Parses a size such as `512MiB`, `2GiB`, `1.5G` or `1048576` (binary units) into bytes.
pub fn parse_bytes(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size; write e.g. 512MiB or 2GiB"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1u64,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("`{s}` has an unknown unit; use KiB, MiB or GiB")),
    };
    Ok((n * mult as f64) as u64)
}
