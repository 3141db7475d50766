//! The `bench` subcommand: clap arguments and printing; the work is [`crate::commands::bench`].

use anyhow::Result;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Named full-size scenario: s1 (source 250,880 x 4,096, helper 50,257 x 1,600, O = M =
    /// 25,000) or s2 (source 250,880 x 4,096, helper 250,880 x 2,048, O = 100,000, M = 150,000).
    /// Default: s1 with vocabularies cut 16x (O = M = 1,500; about a minute on lavapipe).
    #[arg(long, value_parser = ["s1", "s2"])]
    scenario: Option<String>,
    /// Custom shape as MISSING,OVERLAP,HELPER_DIM,SOURCE_DIM (overrides --scenario).
    #[arg(long, value_name = "M,O,DH,DS")]
    shape: Option<String>,
    /// Override the number of missing rows M of the scenario (e.g. S2 with M = 10,000).
    #[arg(long)]
    missing: Option<usize>,
    /// Modes to time, comma separated: `all` (dense, the original CLP) and/or k values.
    #[arg(long, default_value = "all,64", value_delimiter = ',')]
    top_k: Vec<crate::TopK>,
    /// Weighting of the selected neighbours (see `apply --help`).
    #[arg(long, default_value = "clp", value_parser = ["clp", "softmax", "sparsemax", "omp"])]
    weighting: String,
    /// Softmax temperature.
    #[arg(long, default_value_t = 0.1)]
    temperature: f32,
    /// Storage type of the synthetic inputs.
    #[arg(long, default_value = "f16", value_parser = ["f32", "f16", "bf16"])]
    dtype: String,
    /// Compute on the GPU (WGSL kernels via wgpu) or the multi-threaded CPU path.
    #[arg(long, default_value = "gpu", value_parser = ["gpu", "cpu"])]
    backend: String,
    /// Memory budget for the tile buffers, e.g. 512MiB or 2GiB: device memory on the GPU, the
    /// working set on the CPU.
    #[arg(long, default_value = "1GiB", value_parser = crate::plan::parse_bytes)]
    gpu_memory: u64,
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
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: BenchArgs) -> Result<()> {
    use crate::commands::bench::BenchShape;
    let mut shape = match args.scenario.as_deref() {
        Some("s1") => BenchShape::s1(),
        Some("s2") => BenchShape::s2(),
        _ => BenchShape::default_scaled(),
    };
    if let Some(s) = &args.shape {
        let v: Vec<usize> = s
            .split(',')
            .map(|x| x.trim().parse())
            .collect::<Result<_, _>>()
            .map_err(|_| {
                anyhow::anyhow!(
                    "--shape `{s}`: write four whole numbers M,O,DH,DS, e.g. 2500,2500,1600,4096"
                )
            })?;
        anyhow::ensure!(v.len() == 4, "--shape `{s}`: write four numbers M,O,DH,DS");
        shape = BenchShape::custom(v[0], v[1], v[2], v[3]);
    }
    if let Some(m) = args.missing {
        shape.missing = m;
    }
    shape.dtype = match args.dtype.as_str() {
        "f32" => crate::DType::F32,
        "bf16" => crate::DType::BF16,
        _ => crate::DType::F16,
    };
    let budget = args.gpu_memory;
    let opts = crate::commands::bench::BenchOptions {
        shape,
        modes: args
            .top_k
            .iter()
            .map(|&k| crate::Weighting::from_parts(&args.weighting, k, args.temperature))
            .collect::<Result<_, _>>()
            .map_err(anyhow::Error::msg)?,
        seed: args.seed,
        verify: args.verify,
        on_disk: args.on_disk.then(|| args.data_dir.clone()),
    };
    let say = |line: String| {
        if !args.json {
            eprintln!("{line}");
        }
    };
    say(format!(
        "shape: M {} x O {}, helper {} x {}, source {} x {}, {}, inputs {}",
        shape.missing,
        shape.overlap,
        shape.helper_vocab,
        shape.helper_dim,
        shape.source_vocab,
        shape.source_dim,
        shape.dtype,
        if args.on_disk {
            format!("on disk in {}", args.data_dir.display())
        } else {
            "in memory".into()
        }
    ));
    let report = if args.backend == "cpu" {
        let cpu = crate::backend::cpu::CpuBackend::new(budget);
        say(format!(
            "backend: {}",
            crate::backend::ClpBackend::describe(&cpu)
        ));
        crate::commands::bench::run(&cpu, None, &opts)?
    } else {
        let gpu = crate::Gpu::new()?;
        let options = crate::backend::gpu::EngineOptions {
            gpu_memory_bytes: budget,
            time_stages: args.stages,
            ..Default::default()
        };
        let engine = crate::Engine::with_options(gpu, options)?;
        say(format!("adapter: {}", engine.gpu().adapter()));
        crate::commands::bench::run(&engine, Some(engine.gpu().adapter().clone()), &opts)?
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
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
    Ok(())
}
