//! Deterministic synthetic data: a seeded generator (SplitMix64, no dependency) and embedding
//! matrices shaped like real ones (a shared mean direction plus anisotropic noise, so cosines
//! are mostly positive and not all alike). Used by tests, benches and `clp-gpu bench`.

/// SplitMix64: tiny, fast, and identical on every platform.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform integer in [0, n).
    pub fn below(&mut self, n: usize) -> usize {
        (self.uniform() * n as f64) as usize
    }
    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(f64::MIN_POSITIVE);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// `rows × dim` i.i.d. N(0, 1) values.
pub fn gaussian(rng: &mut Rng, rows: usize, dim: usize) -> Vec<f32> {
    (0..rows * dim).map(|_| rng.normal() as f32).collect()
}

/// `rows × dim` embedding-like rows: `mean_weight` × a shared random direction plus noise whose
/// per-column scale decays (anisotropy), as trained embedding matrices look.
pub fn embeddings(rng: &mut Rng, rows: usize, dim: usize, mean_weight: f32) -> Vec<f32> {
    let mean: Vec<f32> = (0..dim).map(|_| rng.normal() as f32).collect();
    let scale: Vec<f32> = (0..dim)
        .map(|c| 1.0 / (1.0 + c as f32 / 16.0).sqrt())
        .collect();
    let mut out = Vec::with_capacity(rows * dim);
    for _ in 0..rows {
        for c in 0..dim {
            out.push(mean_weight * mean[c] + scale[c] * rng.normal() as f32);
        }
    }
    out
}

/// Rows per independently seeded block of [`write_embedding_file`].
const FILE_BLOCK_ROWS: usize = 1024;

/// Writes a safetensors file holding one `rows × dim` embedding-like tensor named `name`
/// (`mean_weight` × a shared direction plus anisotropic noise, as [`embeddings`]) in `dtype`.
/// Blocks of rows are generated in parallel from their own seeds, so the bytes depend only on
/// the arguments and memory stays at a few blocks. Written to a temporary sibling, then renamed.
pub fn write_embedding_file(
    path: &std::path::Path,
    name: &str,
    rows: usize,
    dim: usize,
    dtype: crate::DType,
    seed: u64,
    mean_weight: f32,
) -> crate::Result<()> {
    use crate::error::Error;
    use rayon::prelude::*;
    use std::io::Write;
    let mut rng = Rng::new(seed);
    let mean: Vec<f32> = (0..dim).map(|_| rng.normal() as f32).collect();
    let scale: Vec<f32> = (0..dim)
        .map(|c| 1.0 / (1.0 + c as f32 / 16.0).sqrt())
        .collect();
    let len = (rows * dim * dtype.size_bytes()) as u64;
    let mut header = serde_json::to_vec(&serde_json::json!({
        "__metadata__": {"format": "pt"},
        name: {"dtype": dtype.safetensors_name(), "shape": [rows, dim], "data_offsets": [0, len]},
    }))
    .map_err(|e| Error::Argument(e.to_string()))?;
    header.resize(header.len().next_multiple_of(8), b' ');
    let tmp = path.with_extension("tmp");
    let io = |e| Error::io(&tmp, e);
    let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(io)?);
    out.write_all(&(header.len() as u64).to_le_bytes())
        .map_err(io)?;
    out.write_all(&header).map_err(io)?;
    let blocks = rows.div_ceil(FILE_BLOCK_ROWS);
    // A few blocks per core at a time keep memory small and the cores busy.
    let batch = 4 * rayon::current_num_threads().max(1);
    for b0 in (0..blocks).step_by(batch) {
        let b1 = (b0 + batch).min(blocks);
        let encoded: Vec<Vec<u8>> = (b0..b1)
            .into_par_iter()
            .map(|b| {
                let mut rng = Rng::new(seed ^ (b as u64 + 1).wrapping_mul(0xd1b5_4a32_d192_ed03));
                let r0 = b * FILE_BLOCK_ROWS;
                let r1 = (r0 + FILE_BLOCK_ROWS).min(rows);
                let mut v = Vec::with_capacity((r1 - r0) * dim);
                for _ in r0..r1 {
                    for c in 0..dim {
                        v.push(mean_weight * mean[c] + scale[c] * rng.normal() as f32);
                    }
                }
                dtype.encode(&v)
            })
            .collect();
        for e in &encoded {
            out.write_all(e).map_err(io)?;
        }
    }
    out.flush().map_err(io)?;
    drop(out);
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// `n` distinct ids from `0..universe`, in random order (partial Fisher–Yates on a sparse map).
pub fn sample_ids(rng: &mut Rng, universe: usize, n: usize) -> Vec<u32> {
    assert!(
        n <= universe,
        "cannot sample {n} distinct ids from {universe}"
    );
    let mut swapped: std::collections::HashMap<usize, usize> = std::collections::HashMap::new();
    (0..n)
        .map(|i| {
            let j = i + rng.below(universe - i);
            let vj = *swapped.get(&j).unwrap_or(&j);
            let vi = *swapped.get(&i).unwrap_or(&i);
            swapped.insert(j, vi);
            vj as u32
        })
        .collect()
}
