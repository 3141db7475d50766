//! `clp-gpu bench`: times a backend (GPU engine or CPU path) on deterministic synthetic
//! embeddings of a chosen shape and reports wall time, GFLOP/s, input GB/s, time per stage, peak
//! host RSS, the tile plan and the adapter.
//!
//! Inputs live in memory (only the rows a run needs), or with `on_disk` in full-vocabulary
//! safetensors files (source `source_vocab × d_s`, helper `helper_vocab × d_h`) that are written
//! once per shape and seed and then streamed with positioned reads, so reading and gathering
//! scattered rows is part of the timing and host memory stays bounded. Overlap and missing ids
//! are a seeded random sample, scattered over both vocabularies as real ones are.
//!
//! `verify` rows are recomputed with the streamed f64 reference; the worst error is reported.
//! A checksum of all output rows shows determinism and budget-invariance at a glance.

use crate::backend::reference;
use crate::backend::{stage, ClpBackend, Stats, TileOut};
use crate::error::{Error, Result};
use crate::method::{TopK, Weighting};
use crate::model::safetensors::data_offset;
use crate::rows::{RowSet, Storage, Stored};
use crate::synthetic::{embeddings, sample_ids, write_embedding_file, Rng};
use crate::tensor::{DType, MatrixRef};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The shape of a benchmark problem.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct BenchShape {
    /// Missing tokens M.
    pub missing: usize,
    /// Overlapping tokens O.
    pub overlap: usize,
    /// Helper dimension d_h.
    pub helper_dim: usize,
    /// Source dimension d_s.
    pub source_dim: usize,
    /// Rows of the source embedding (on-disk inputs).
    pub source_vocab: usize,
    /// Rows of the helper embedding (on-disk inputs; at least O + M).
    pub helper_vocab: usize,
    /// Storage type of every input.
    pub dtype: DType,
}

impl BenchShape {
    /// The default: S1 (BLOOM-7b1 source, 1.5B GPT-2 helper, d_s 4096, d_h 1600) with the
    /// vocabularies cut 16× (O = M = 1,500), fp16, so it runs in about a minute on a software
    /// driver.
    pub fn default_scaled() -> BenchShape {
        BenchShape {
            missing: 1500,
            overlap: 1500,
            helper_dim: 1600,
            source_dim: 4096,
            source_vocab: 250_880 / 16,
            helper_vocab: 50_257 / 16,
            dtype: DType::F16,
        }
    }
    /// S1 at full size: source 250,880 × 4,096, helper 50,257 × 1,600, O = M = 25,000.
    pub fn s1() -> BenchShape {
        BenchShape {
            missing: 25_000,
            overlap: 25_000,
            helper_dim: 1600,
            source_dim: 4096,
            source_vocab: 250_880,
            helper_vocab: 50_257,
            dtype: DType::F16,
        }
    }
    /// S2 at full size: source 250,880 × 4,096, helper 250,880 × 2,048, O = 100,000,
    /// M = 150,000.
    pub fn s2() -> BenchShape {
        BenchShape {
            missing: 150_000,
            overlap: 100_000,
            helper_dim: 2048,
            source_dim: 4096,
            source_vocab: 250_880,
            helper_vocab: 250_880,
            dtype: DType::F16,
        }
    }
    /// A custom M, O, d_h, d_s; vocabularies just large enough.
    pub fn custom(missing: usize, overlap: usize, helper_dim: usize, source_dim: usize) -> Self {
        BenchShape {
            missing,
            overlap,
            helper_dim,
            source_dim,
            source_vocab: overlap + missing,
            helper_vocab: overlap + missing,
            dtype: DType::F16,
        }
    }
    fn check(&self) -> Result<()> {
        if self.overlap == 0 || self.helper_dim == 0 || self.source_dim == 0 {
            return Err(Error::Argument(
                "bench shape: O, d_h and d_s must be at least 1".into(),
            ));
        }
        if self.helper_vocab < self.overlap + self.missing || self.source_vocab < self.overlap {
            return Err(Error::Argument(format!(
                "bench shape: O + M = {} exceeds the helper vocabulary {} (or O the source vocabulary {}); lower --missing",
                self.overlap + self.missing,
                self.helper_vocab,
                self.source_vocab
            )));
        }
        Ok(())
    }
}

/// Floating-point operations of one run (multiply-add = 2).
pub fn flops(s: &BenchShape, top_k: TopK) -> f64 {
    let (m, o, dh, ds) = (
        s.missing as f64,
        s.overlap as f64,
        s.helper_dim as f64,
        s.source_dim as f64,
    );
    match top_k {
        TopK::K(k) => 2.0 * m * o * dh + 2.0 * m * (k.min(s.overlap) as f64) * ds,
        TopK::All => 2.0 * o * dh * (ds + 1.0) + 2.0 * m * dh * (ds + 1.0),
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// The problem shape.
    pub shape: BenchShape,
    /// Modes to time.
    pub modes: Vec<Weighting>,
    /// Seed of the synthetic inputs.
    pub seed: u64,
    /// Rows to check against the f64 reference.
    pub verify: usize,
    /// Keep the inputs in full-size safetensors files in this directory and stream them.
    pub on_disk: Option<PathBuf>,
}

/// Time of one stage.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StageTime {
    /// Stage name.
    pub stage: String,
    /// Seconds (summed over tiles).
    pub seconds: f64,
    /// GB/s through the stage, where bytes apply.
    pub gb_per_s: Option<f64>,
    /// GFLOP/s of the stage's arithmetic, where it is a GEMM-like stage.
    pub gflops: Option<f64>,
}

/// Floating-point operations of one stage (multiply-add = 2), where it has a clear count.
pub fn stage_flops(s: &BenchShape, top_k: TopK, name: &str) -> Option<f64> {
    let (m, o, dh, ds) = (
        s.missing as f64,
        s.overlap as f64,
        s.helper_dim as f64,
        s.source_dim as f64,
    );
    match (name, top_k) {
        (stage::SIMILARITY, TopK::K(_)) => Some(2.0 * m * o * dh),
        (stage::COMBINE, TopK::K(k)) => Some(2.0 * m * k.min(s.overlap) as f64 * ds),
        (stage::GRAM, TopK::All) => Some(2.0 * o * dh * (ds + 1.0)),
        (stage::COMBINE, TopK::All) => Some(2.0 * m * dh * (ds + 1.0)),
        _ => None,
    }
}

/// One mode's measurements.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchResult {
    /// "all" or k.
    pub top_k: String,
    /// Wall time of the run (gather, upload, kernels, readback, sink), seconds.
    pub seconds: f64,
    /// Useful GFLOP/s over that time.
    pub gflops: f64,
    /// Input bytes gathered per second of wall time, GB/s.
    pub input_gb_per_s: f64,
    /// Missing rows produced per second.
    pub rows_per_s: f64,
    /// Time per stage.
    pub stages: Vec<StageTime>,
    /// Missing tile × overlap tile of the plan.
    pub tiles: (usize, usize),
    /// Buffer memory the plan allocates (device memory on the GPU), bytes.
    pub buffer_bytes: u64,
    /// Rejected rows.
    pub rejected: usize,
    /// FNV-1a of every output row's bits and status, row by row (equal checksums = identical
    /// output, whatever the tiling).
    pub checksum: String,
    /// Rows verified against the f64 reference.
    pub verified_rows: usize,
    /// Worst |got − reference| / row max-abs over the verified rows (None: not verified).
    pub verify_max_rel_err: Option<f64>,
}

/// A whole bench report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchReport {
    /// What ran the math.
    pub backend: String,
    /// The adapter (GPU backend).
    pub adapter: Option<crate::backend::gpu::AdapterSummary>,
    /// Why `--backend auto` picked the backend (absent when one was asked for by name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend_choice: Option<String>,
    /// The shape.
    pub shape: BenchShape,
    /// "memory" or the directory of the on-disk inputs.
    pub inputs: String,
    /// Seconds to generate (or find) the inputs.
    pub generate_seconds: f64,
    /// Per mode.
    pub results: Vec<BenchResult>,
    /// Peak resident set of the process, bytes (VmHWM).
    pub peak_rss_bytes: u64,
}

/// Peak resident set size of this process (Linux VmHWM), 0 where unknown.
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

/// The synthetic inputs of a run: owned bytes (memory) or open files (disk).
enum Inputs {
    Memory {
        hm: Vec<u8>,
        ho: Vec<u8>,
        eo: Vec<u8>,
    },
    Disk {
        dir: PathBuf,
        source: (File, PathBuf, u64),
        helper: (File, PathBuf, u64),
        overlap_tgt: Vec<u32>,
        overlap_src: Vec<u32>,
        missing: Vec<u32>,
    },
}

/// The file `dir/name`, generated unless it already exists with the expected size.
fn ensure_file(
    dir: &Path,
    name: &str,
    rows: usize,
    cols: usize,
    dtype: DType,
    seed: u64,
    mean_weight: f32,
) -> Result<(File, PathBuf, u64)> {
    let path = dir.join(name);
    let data_len = (rows * cols * dtype.size_bytes()) as u64;
    let ok = |path: &Path| -> Result<Option<(File, u64)>> {
        let Ok(f) = File::open(path) else {
            return Ok(None);
        };
        let size = f.metadata().map_err(|e| Error::io(path, e))?.len();
        let off = data_offset(&f, path)?;
        Ok((size == off + data_len).then_some((f, off)))
    };
    if let Some((f, off)) = ok(&path)? {
        return Ok((f, path, off));
    }
    write_embedding_file(&path, "embedding", rows, cols, dtype, seed, mean_weight)?;
    let (f, off) = ok(&path)?.ok_or_else(|| {
        Error::bad_file(
            &path,
            "generated file has the wrong size; delete it and rerun",
        )
    })?;
    Ok((f, path, off))
}

impl Inputs {
    fn generate(shape: &BenchShape, seed: u64, on_disk: Option<&Path>) -> Result<Inputs> {
        let dt = shape.dtype;
        let Some(dir) = on_disk else {
            let mut rng = Rng::new(seed);
            return Ok(Inputs::Memory {
                hm: dt.encode(&embeddings(&mut rng, shape.missing, shape.helper_dim, 0.5)),
                ho: dt.encode(&embeddings(&mut rng, shape.overlap, shape.helper_dim, 0.5)),
                eo: dt.encode(&embeddings(&mut rng, shape.overlap, shape.source_dim, 0.3)),
            });
        };
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let source = ensure_file(
            dir,
            &format!(
                "source-{}x{}-{}-seed{seed}.safetensors",
                shape.source_vocab, shape.source_dim, dt
            ),
            shape.source_vocab,
            shape.source_dim,
            dt,
            seed ^ 0x0005_eed5,
            0.3,
        )?;
        let helper = ensure_file(
            dir,
            &format!(
                "helper-{}x{}-{}-seed{seed}.safetensors",
                shape.helper_vocab, shape.helper_dim, dt
            ),
            shape.helper_vocab,
            shape.helper_dim,
            dt,
            seed ^ 0x0005_eed4,
            0.5,
        )?;
        let mut rng = Rng::new(seed ^ 0x1d5);
        let target = sample_ids(&mut rng, shape.helper_vocab, shape.overlap + shape.missing);
        let mut overlap_tgt = target[..shape.overlap].to_vec();
        let mut missing = target[shape.overlap..].to_vec();
        overlap_tgt.sort_unstable();
        missing.sort_unstable();
        let overlap_src = sample_ids(&mut rng, shape.source_vocab, shape.overlap);
        Ok(Inputs::Disk {
            dir: dir.to_path_buf(),
            source,
            helper,
            overlap_tgt,
            overlap_src,
            missing,
        })
    }

    fn describe(&self) -> String {
        match self {
            Inputs::Memory { .. } => "memory".into(),
            Inputs::Disk { dir, .. } => format!("disk: {}", dir.display()),
        }
    }

    /// The row sets H_M, H_O, E_O.
    fn row_sets(&self, shape: &BenchShape) -> Result<[RowSet<'_>; 3]> {
        let dt = shape.dtype;
        let (dh, ds) = (shape.helper_dim, shape.source_dim);
        match self {
            Inputs::Memory { hm, ho, eo } => Ok([
                RowSet::from_matrix(
                    "missing helper rows",
                    &MatrixRef::new("hm", hm, dt, shape.missing, dh)?,
                ),
                RowSet::from_matrix(
                    "overlap helper rows",
                    &MatrixRef::new("ho", ho, dt, shape.overlap, dh)?,
                ),
                RowSet::from_matrix(
                    "overlap source rows",
                    &MatrixRef::new("eo", eo, dt, shape.overlap, ds)?,
                ),
            ]),
            Inputs::Disk {
                source,
                helper,
                overlap_tgt,
                overlap_src,
                missing,
                ..
            } => {
                fn stored(
                    f: &(File, PathBuf, u64),
                    dtype: DType,
                    rows: usize,
                    cols: usize,
                ) -> Stored<'_> {
                    Stored {
                        storage: Storage::File {
                            file: &f.0,
                            path: &f.1,
                            offset: f.2,
                        },
                        dtype,
                        rows,
                        cols,
                    }
                }
                let h = stored(helper, dt, shape.helper_vocab, dh);
                let s = stored(source, dt, shape.source_vocab, ds);
                Ok([
                    RowSet::new("missing helper rows", vec![h])?.select(missing.clone())?,
                    RowSet::new("overlap helper rows", vec![h])?.select(overlap_tgt.clone())?,
                    RowSet::new("overlap source rows", vec![s])?.select(overlap_src.clone())?,
                ])
            }
        }
    }
}

/// FNV-1a, 64 bit.
struct Fnv(u64);

impl Fnv {
    fn eat(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Runs every mode on synthetic data of `opts.shape` and verifies `opts.verify` rows.
pub fn run(
    backend: &dyn ClpBackend,
    adapter: Option<crate::backend::gpu::AdapterSummary>,
    opts: &BenchOptions,
) -> Result<BenchReport> {
    let shape = opts.shape;
    shape.check()?;
    let t0 = Instant::now();
    let inputs = Inputs::generate(&shape, opts.seed, opts.on_disk.as_deref())?;
    let generate_seconds = t0.elapsed().as_secs_f64();
    let sets = inputs.row_sets(&shape)?;
    let mut verify_ids: Vec<usize> = {
        let mut rng = Rng::new(opts.seed ^ 0xfeed);
        (0..opts.verify.min(shape.missing))
            .map(|_| rng.below(shape.missing))
            .collect()
    };
    verify_ids.sort_unstable();
    verify_ids.dedup();
    let results = opts
        .modes
        .iter()
        .map(|w| run_mode(backend, &sets, &shape, w, &verify_ids))
        .collect::<Result<_>>()?;
    Ok(BenchReport {
        backend: backend.describe(),
        adapter,
        backend_choice: None,
        shape,
        inputs: inputs.describe(),
        generate_seconds,
        results,
        peak_rss_bytes: peak_rss_bytes(),
    })
}

/// One timed run of one mode: checksum of every output row, the rows to verify kept aside.
fn run_mode(
    backend: &dyn ClpBackend,
    [hm, ho, eo]: &[RowSet<'_>; 3],
    shape: &BenchShape,
    weighting: &Weighting,
    verify_ids: &[usize],
) -> Result<BenchResult> {
    let top_k = weighting.top_k();
    let mut hash = Fnv(0xcbf2_9ce4_8422_2325);
    let mut kept: BTreeMap<usize, (Vec<f32>, u32)> = BTreeMap::new();
    let mut rejected = 0;
    let t = Instant::now();
    let stats = backend.run(hm, ho, eo, weighting, &mut |tile: &TileOut| {
        // Row by row (its values, then its status), so that the checksum is the same for the
        // same rows however the run split them into tiles.
        for (row, status) in tile.rows.chunks(tile.dim.max(1)).zip(tile.status) {
            hash.eat(bytemuck::cast_slice(row));
            hash.eat(&status.to_le_bytes());
        }
        rejected += tile.status.iter().filter(|&&s| s != 0).count();
        let end = tile.start + tile.status.len();
        for &r in verify_ids.iter().filter(|&&r| r >= tile.start && r < end) {
            let i = r - tile.start;
            let row = tile.rows[i * tile.dim..(i + 1) * tile.dim].to_vec();
            kept.insert(r, (row, tile.status[i]));
        }
        Ok(())
    })?;
    let seconds = t.elapsed().as_secs_f64();
    let verify_max_rel_err = if verify_ids.is_empty() {
        None
    } else {
        let want = reference::clp_rows(verify_ids, hm, ho, eo, weighting)?;
        Some(worst_relative_error(verify_ids, &kept, &want))
    };
    Ok(BenchResult {
        top_k: match weighting {
            Weighting::Clp { top_k } => top_k.to_string(),
            w => w.label(),
        },
        seconds,
        gflops: flops(shape, top_k) / seconds / 1e9,
        input_gb_per_s: stats.gathered_bytes as f64 / seconds / 1e9,
        rows_per_s: shape.missing as f64 / seconds,
        stages: stage_times(&stats, shape, top_k),
        tiles: stats.tiles,
        buffer_bytes: stats.buffer_bytes,
        rejected,
        checksum: format!("{:016x}", hash.0),
        verified_rows: verify_ids.len(),
        verify_max_rel_err,
    })
}

/// The worst error of the kept rows against the reference, relative to each reference row's
/// largest magnitude; infinite when a row's status differs.
fn worst_relative_error(
    ids: &[usize],
    kept: &BTreeMap<usize, (Vec<f32>, u32)>,
    want: &[reference::ReferenceRow],
) -> f64 {
    let mut worst = 0.0f64;
    for (r, w) in ids.iter().zip(want) {
        let (got, status) = &kept[r];
        if *status != w.rejected.map_or(0, |x| x.code()) {
            worst = f64::INFINITY;
            continue;
        }
        let scale = w.values.iter().fold(1e-30f64, |a, x| a.max(x.abs() as f64));
        for (g, v) in got.iter().zip(&w.values) {
            worst = worst.max((*g as f64 - *v as f64).abs() / scale);
        }
    }
    worst
}

/// Seconds of every stage that ran, with GB/s for the byte-moving stages and GFLOP/s for the
/// GEMM-like ones.
fn stage_times(stats: &Stats, shape: &BenchShape, top_k: TopK) -> Vec<StageTime> {
    let bytes_of = |s: &str| match s {
        stage::GATHER => Some(stats.gathered_bytes),
        stage::UPLOAD if stats.uploaded_bytes > 0 => Some(stats.uploaded_bytes),
        stage::READBACK => Some(stats.readback_bytes),
        _ => None,
    };
    stage::ALL
        .iter()
        .filter_map(|&s| {
            let secs = *stats.seconds.get(s)?;
            Some(StageTime {
                stage: s.to_string(),
                seconds: secs,
                gb_per_s: bytes_of(s)
                    .filter(|_| secs > 0.0)
                    .map(|b| b as f64 / secs / 1e9),
                gflops: stage_flops(shape, top_k, s)
                    .filter(|_| secs > 0.0)
                    .map(|f| f / secs / 1e9),
            })
        })
        .collect()
}
