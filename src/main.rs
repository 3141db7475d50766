//! The `clp-gpu` command line: parse, build, run, print. All logic lives in the library.

mod apply_cli;
mod shrink_cli;
mod trim_cli;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "clp-gpu",
    version,
    about = "CLP-Transfer onto a new tokenizer, on any GPU"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Benchmark initialisation speed on synthetic BLOOM-shaped embeddings (no downloads).
    Bench(BenchArgs),
    /// Build a target model: source weights + the helper's tokenizer (CLP-Transfer).
    Apply(apply_cli::ApplyArgs),
    // trim and shrink carry their help (short and long) on their argument structs.
    Trim(trim_cli::TrimArgs),
    Shrink(shrink_cli::ShrinkArgs),
    /// List every GPU adapter wgpu can use, with the limits that matter to clp-gpu.
    Devices {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Apply(args) => apply_cli::run(args),
        Command::Trim(args) => trim_cli::run(args),
        Command::Shrink(args) => shrink_cli::run(args),
        Command::Devices { json } => devices(json),
        Command::Bench(args) => bench(args),
    }
}

#[derive(clap::Args)]
struct BenchArgs {
    /// Named full-size scenario: s1 (25k x 25k, d_h 1600, d_s 4096) or s2 (150k x 100k, d_h
    /// 2048, d_s 4096). Default: s1 with vocabularies cut to 1,500 x 1,500 (about a minute on lavapipe).
    #[arg(long, value_parser = ["s1", "s2"])]
    scenario: Option<String>,
    /// Custom shape as MISSING,OVERLAP,HELPER_DIM,SOURCE_DIM (overrides --scenario).
    #[arg(long, value_name = "M,O,DH,DS")]
    shape: Option<String>,
    /// Modes to time, comma separated: `all` (dense, the original CLP) and/or k values.
    #[arg(long, default_value = "all,64", value_delimiter = ',')]
    top_k: Vec<clp_gpu::TopK>,
    /// Storage type of the synthetic inputs.
    #[arg(long, default_value = "f16", value_parser = ["f32", "f16", "bf16"])]
    dtype: String,
    /// GPU memory budget, e.g. 512MiB or 2GiB.
    #[arg(long, default_value = "1GiB")]
    gpu_memory: String,
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

fn parse_bytes(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("`{s}` is not a size; write e.g. 512MiB or 2GiB"))?;
    let mult = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1u64,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => anyhow::bail!("`{s}` has an unknown unit; use KiB, MiB or GiB"),
    };
    Ok((n * mult as f64) as u64)
}

fn bench(args: BenchArgs) -> Result<()> {
    use clp_gpu::bench::BenchShape;
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
        (
            shape.missing,
            shape.overlap,
            shape.helper_dim,
            shape.source_dim,
        ) = (v[0], v[1], v[2], v[3]);
    }
    shape.dtype = match args.dtype.as_str() {
        "f32" => clp_gpu::DType::F32,
        "bf16" => clp_gpu::DType::BF16,
        _ => clp_gpu::DType::F16,
    };
    let gpu = clp_gpu::Gpu::new()?;
    let options = clp_gpu::engine::EngineOptions {
        gpu_memory_bytes: parse_bytes(&args.gpu_memory)?,
        ..Default::default()
    };
    let engine = clp_gpu::Engine::with_options(gpu, options)?;
    if !args.json {
        eprintln!("adapter: {}", engine.gpu().adapter());
        eprintln!(
            "shape: M {} x O {}, helper dim {}, source dim {}, {}",
            shape.missing, shape.overlap, shape.helper_dim, shape.source_dim, shape.dtype
        );
    }
    let report = clp_gpu::bench::run(&engine, shape, &args.top_k, args.seed, args.verify)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("inputs generated in {:.2} s", report.generate_seconds);
    println!(
        "{:>6} {:>9} {:>10} {:>10} {:>11} {:>13} {:>9} {:>9}",
        "top-k", "seconds", "GFLOP/s", "upload GB/s", "rows/s", "tiles M x O", "GPU MiB", "verify"
    );
    for r in &report.results {
        println!(
            "{:>6} {:>9.3} {:>10.2} {:>10.3} {:>11.0} {:>13} {:>9} {:>9}",
            r.top_k,
            r.seconds,
            r.gflops,
            r.upload_gb_per_s,
            r.rows_per_s,
            format!("{} x {}", r.tiles.0, r.tiles.1),
            r.gpu_bytes >> 20,
            r.verify_max_rel_err
                .map_or("-".to_string(), |e| format!("{e:.1e}")),
        );
    }
    println!(
        "peak RSS {:.1} MiB",
        report.peak_rss_bytes as f64 / (1 << 20) as f64
    );
    Ok(())
}

fn devices(json: bool) -> Result<()> {
    let adapters = clp_gpu::gpu::list_adapters();
    if json {
        println!("{}", serde_json::to_string_pretty(&adapters)?);
        return Ok(());
    }
    if adapters.is_empty() {
        anyhow::bail!(clp_gpu::Error::NoAdapter {
            filter: String::new()
        });
    }
    for (i, a) in adapters.iter().enumerate() {
        println!("[{i}] {a}");
        println!(
            "    max storage binding {} MiB, max buffer {} MiB, workgroup storage {} KiB, SHADER_F16 {}, SUBGROUP {}",
            a.max_storage_binding_bytes >> 20,
            a.max_buffer_bytes >> 20,
            a.max_workgroup_storage_bytes >> 10,
            if a.shader_f16 { "yes" } else { "no" },
            if a.subgroup { "yes" } else { "no" },
        );
    }
    Ok(())
}
