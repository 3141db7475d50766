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
