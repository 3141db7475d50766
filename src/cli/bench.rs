//! The `bench` subcommand: clap arguments and printing; the work is [`crate::commands::bench`].

use super::args::{ByteSize, DTypeArg, OutputArgs, WeightingArg};
use crate::backend::gpu::{Engine, EngineOptions, Gpu};
use crate::backend::{cpu::CpuBackend, Backend, ClpBackend};
use crate::commands::bench::{BenchOptions, BenchReport, BenchShape};
use crate::TopK;
use anyhow::Result;

/// A named full-size shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Source 250,880 x 4,096, helper 50,257 x 1,600, O = M = 25,000.
    S1,
    /// Source 250,880 x 4,096, helper 250,880 x 2,048, O = 100,000, M = 150,000.
    S2,
}

/// Where `bench` computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchBackend {
    /// A hardware GPU when there is one (or the adapter WGPU_ADAPTER_NAME names), else the CPU
    /// path; software renderers (llvmpipe/lavapipe, WARP, SwiftShader) only by name.
    Auto,
    /// The WGSL engine on a GPU, software adapters included (honours WGPU_BACKEND /
    /// WGPU_ADAPTER_NAME).
    Gpu,
    /// The multi-threaded CPU path.
    Cpu,
}

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Named full-size scenario: s1 (source 250,880 x 4,096, helper 50,257 x 1,600, O = M =
    /// 25,000) or s2 (source 250,880 x 4,096, helper 250,880 x 2,048, O = 100,000, M = 150,000).
    /// Default: s1 with vocabularies cut 16x (O = M = 1,500; about a minute on lavapipe).
    #[arg(long, value_enum)]
    scenario: Option<Scenario>,
    /// Custom shape as MISSING,OVERLAP,HELPER_DIM,SOURCE_DIM (overrides --scenario).
    #[arg(long, value_name = "M,O,DH,DS", value_parser = parse_shape)]
    shape: Option<BenchShape>,
    /// Override the number of missing rows M of the scenario (e.g. S2 with M = 10,000).
    #[arg(long)]
    missing: Option<usize>,
    /// Modes to time, comma separated: `all` (dense, the original CLP) and/or k values.
    #[arg(long, default_value = "all,64", value_delimiter = ',')]
    top_k: Vec<TopK>,
    /// Weighting of the selected neighbours (see `apply --help`).
    #[arg(long, value_enum, default_value_t = WeightingArg::Clp)]
    weighting: WeightingArg,
    /// Softmax temperature.
    #[arg(long, default_value_t = 0.1)]
    temperature: f32,
    /// Storage type of the synthetic inputs.
    #[arg(long, value_enum, default_value_t = DTypeArg::F16)]
    dtype: DTypeArg,
    /// Compute on the GPU (WGSL kernels via wgpu) or the multi-threaded CPU path; `auto` takes
    /// a hardware GPU when there is one, else the CPU path.
    #[arg(long, value_enum, default_value_t = BenchBackend::Auto)]
    backend: BenchBackend,
    /// Memory budget for the tile buffers, e.g. 512MiB or 2GiB: device memory on the GPU, the
    /// working set on the CPU.
    #[arg(long, default_value = "1GiB")]
    gpu_memory: ByteSize,
    /// Write the inputs as full-vocabulary safetensors files first (kept in --data-dir and reused)
    /// and stream them from disk, so reading and gathering are part of the timing.
    #[arg(long)]
    on_disk: bool,
    /// Where --on-disk keeps its files.
    #[arg(long, default_value_os_t = std::env::temp_dir().join("clp-gpu-bench"))]
    data_dir: std::path::PathBuf,
    /// Time every kernel stage separately (GPU: submits and waits after each stage, which
    /// removes the overlap of upload and compute; the total is then slower).
    #[arg(long)]
    stages: bool,
    /// Check this many random rows against the f64 CPU reference and report the worst error.
    #[arg(long, default_value_t = 0)]
    verify: usize,
    /// Seed of the synthetic inputs.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// --json and --quiet.
    #[command(flatten)]
    output: OutputArgs,
}

/// `--shape M,O,DH,DS`.
fn parse_shape(s: &str) -> std::result::Result<BenchShape, String> {
    let v: Vec<usize> = s
        .split(',')
        .map(|x| x.trim().parse())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| {
            format!("`{s}`: write four whole numbers M,O,DH,DS, e.g. 2500,2500,1600,4096")
        })?;
    match v[..] {
        [m, o, dh, ds] => Ok(BenchShape::custom(m, o, dh, ds)),
        _ => Err(format!("`{s}`: write four numbers M,O,DH,DS")),
    }
}

impl BenchArgs {
    fn options(&self) -> Result<BenchOptions> {
        let mut shape = self.shape.unwrap_or_else(|| match self.scenario {
            Some(Scenario::S1) => BenchShape::s1(),
            Some(Scenario::S2) => BenchShape::s2(),
            None => BenchShape::default_scaled(),
        });
        if let Some(m) = self.missing {
            shape.missing = m;
        }
        shape.dtype = self.dtype.into();
        Ok(BenchOptions {
            shape,
            modes: self
                .top_k
                .iter()
                .map(|&k| self.weighting.with(k, self.temperature))
                .collect::<crate::Result<_>>()?,
            seed: self.seed,
            verify: self.verify,
            on_disk: self.on_disk.then(|| self.data_dir.clone()),
        })
    }

    /// A progress line on stderr (not with --quiet).
    fn say(&self, line: String) {
        self.output.say(&line);
    }
}

/// Runs `bench` and prints its report.
pub fn run(args: BenchArgs) -> Result<()> {
    let opts = args.options()?;
    let shape = &opts.shape;
    args.say(format!(
        "shape: M {} x O {}, helper {} x {}, source {} x {}, {}, inputs {}",
        shape.missing,
        shape.overlap,
        shape.helper_vocab,
        shape.helper_dim,
        shape.source_vocab,
        shape.source_dim,
        shape.dtype,
        match &opts.on_disk {
            Some(dir) => format!("on disk in {}", dir.display()),
            None => "in memory".into(),
        }
    ));
    let (backend, why) = match args.backend {
        BenchBackend::Auto => {
            let chosen = Backend::Auto.resolve();
            args.output
                .notices(&chosen.why.iter().cloned().collect::<Vec<_>>());
            match chosen.backend {
                Backend::Gpu => (BenchBackend::Gpu, chosen.why),
                _ => (BenchBackend::Cpu, chosen.why),
            }
        }
        asked => (asked, None),
    };
    let mut report = match backend {
        BenchBackend::Auto | BenchBackend::Cpu => {
            let cpu = CpuBackend::new(args.gpu_memory.0);
            args.say(format!("backend: {}", ClpBackend::describe(&cpu)));
            crate::commands::bench::run(&cpu, None, &opts)?
        }
        BenchBackend::Gpu => {
            let options = EngineOptions {
                gpu_memory_bytes: args.gpu_memory.0,
                time_stages: args.stages,
                ..Default::default()
            };
            let engine = Engine::with_options(Gpu::new()?, options)?;
            args.say(format!("adapter: {}", engine.gpu().adapter()));
            let adapter = Some(engine.gpu().adapter().clone());
            crate::commands::bench::run(&engine, adapter, &opts)?
        }
    };
    report.backend_choice = why;
    args.output.report(&report, print_report)
}

/// The human report: one table row per mode, then the stages of each mode and the peak RSS.
fn print_report(report: &BenchReport) {
    println!(
        "inputs ready in {:.2} s ({})",
        report.generate_seconds, report.inputs
    );
    println!(
        "{:>6} {:>9} {:>9} {:>10} {:>10} {:>13} {:>8} {:>9} {:>17}",
        "top-k",
        "seconds",
        "GFLOP/s",
        "input GB/s",
        "rows/s",
        "tiles M x O",
        "buf MiB",
        "verify",
        "checksum"
    );
    for r in &report.results {
        println!(
            "{:>6} {:>9.3} {:>9.2} {:>10.3} {:>10.0} {:>13} {:>8} {:>9} {:>17}",
            r.top_k,
            r.seconds,
            r.gflops,
            r.input_gb_per_s,
            r.rows_per_s,
            format!("{} x {}", r.tiles.0, r.tiles.1),
            r.buffer_bytes >> 20,
            r.verify_max_rel_err
                .map_or("-".to_string(), |e| format!("{e:.1e}")),
            r.checksum,
        );
    }
    for r in &report.results {
        let stages: Vec<String> = r
            .stages
            .iter()
            .map(|s| {
                let rate = match (s.gb_per_s, s.gflops) {
                    (Some(g), _) => format!(" ({g:.2} GB/s)"),
                    (_, Some(f)) => format!(" ({f:.1} GFLOP/s)"),
                    _ => String::new(),
                };
                format!("{} {:.3} s{rate}", s.stage, s.seconds)
            })
            .collect();
        println!("stages (top-k {}): {}", r.top_k, stages.join(", "));
    }
    println!(
        "peak RSS {:.1} MiB",
        report.peak_rss_bytes as f64 / (1 << 20) as f64
    );
}
