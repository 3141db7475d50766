//! The `evaluate` subcommand: clap arguments, the grid of configurations, and the table; the
//! work is [`crate::commands::evaluate`].

use super::args::{BackendArg, ByteSize, MatchArgs, OutputArgs, PairArgs};
use crate::commands::evaluate::{evaluate, EvaluateOptions, EvaluateReport};
use crate::{TopK, Weighting};

/// Score weightings on a held-out share of the overlap before writing a model.
#[derive(Debug, clap::Args)]
#[command(
    mut_arg("source", |a| a.help("Source model: a directory, or an `org/name` id in the local HF cache")),
    mut_arg("helper", |a| a.required(true).help("Helper model: a directory, or an `org/name` id in the local HF cache")),
    mut_arg("match_mode", |a| a.help("How tokens are matched (see `apply --help`)")),
)]
pub struct EvaluateArgs {
    /// --source, --helper (required here) and --helper-tokenizer.
    #[command(flatten)]
    pub pair: PairArgs,
    /// --match.
    #[command(flatten)]
    pub matching: MatchArgs,
    /// Weightings to score, comma separated. `fvt` (apply only) cannot be scored: the held-out
    /// tokens are overlap tokens, which the source tokenizer keeps whole, so FVT would just copy
    /// their rows.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "clp,softmax,sparsemax,omp"
    )]
    pub weighting: Vec<String>,
    /// k values, comma separated (`all` only applies to clp; omp uses k ≤ 64 as its atoms).
    #[arg(long, value_delimiter = ',', default_value = "all,10,64")]
    pub top_k: Vec<TopK>,
    /// Softmax temperatures, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "0.05,0.1,0.2")]
    pub temperature: Vec<f32>,
    /// Share of the overlapping tokens hidden and scored.
    #[arg(long, default_value_t = 0.1)]
    pub holdout: f64,
    /// Seed of the hidden sample and of the random baseline.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Which implementation computes the rows.
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    pub backend: BackendArg,
    /// Memory budget of the tile buffers, e.g. 512MiB.
    #[arg(long, value_name = "SIZE", default_value = "1GiB")]
    pub gpu_memory: ByteSize,
    /// --json and --quiet.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Runs `evaluate` without printing: the report `--json` prints, and the (weighting, k)
/// combinations skipped because the method does not have them.
pub fn report(args: EvaluateArgs) -> anyhow::Result<(EvaluateReport, Vec<String>)> {
    // Every valid (weighting, k, T) combination; combinations a method does not have are skipped.
    let mut grid = Vec::new();
    let mut skipped = Vec::new();
    anyhow::ensure!(
        !args.weighting.iter().any(|w| w == "fvt"),
        super::args::EVALUATE_REFUSES_FVT
    );
    for name in &args.weighting {
        for &k in &args.top_k {
            let temps: &[f32] = if name == "softmax" {
                &args.temperature
            } else {
                &[1.0]
            };
            for &t in temps {
                match Weighting::from_parts(name, k, t) {
                    Ok(w) => grid.push(w),
                    Err(_) if ["clp", "softmax", "sparsemax", "omp"].contains(&name.as_str()) => {
                        skipped.push(format!("{name} k={k}"));
                    }
                    Err(e) => anyhow::bail!(e),
                }
            }
        }
    }
    anyhow::ensure!(
        !grid.is_empty(),
        "no valid --weighting/--top-k combination to evaluate"
    );
    let opts = EvaluateOptions {
        helper: args.pair.required_helper()?,
        source: args.pair.source,
        helper_tokenizer: args.pair.helper_tokenizer,
        match_mode: args.matching.match_mode,
        holdout: args.holdout,
        seed: args.seed,
        weightings: grid,
        backend: args.backend.into(),
        memory_bytes: args.gpu_memory.0,
    };
    Ok((evaluate(&opts)?, skipped))
}

/// Runs `evaluate` and prints the table.
pub fn run(args: EvaluateArgs) -> anyhow::Result<()> {
    let output = args.output;
    let (r, skipped) = report(args)?;
    output.notices(&r.notices);
    output.report(&r, |r| print_table(r, skipped))
}

/// The human report: one row per method, then the combinations that were skipped.
fn print_table(r: &EvaluateReport, mut skipped: Vec<String>) {
    println!(
        "{} overlapping tokens: {} hidden and scored, {} anchors; {}",
        r.overlap, r.held_out, r.anchors, r.backend
    );
    println!(
        "{:>4} {:<40} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8}",
        "rank",
        "method",
        "rel L2",
        "‖p‖/‖t‖",
        "mean cos",
        "p10",
        "median",
        "p90",
        "rejected",
        "seconds"
    );
    for s in &r.scores {
        let mark = if s.default { "*" } else { " " };
        println!(
            "{:>4}{mark}{:<40} {:>8.4} {:>8.3} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>9} {:>8.2}",
            s.rank,
            s.method,
            s.rel_l2,
            s.norm_ratio,
            s.mean,
            s.p10,
            s.p50,
            s.p90,
            s.rejected,
            s.seconds
        );
    }
    println!("rank: by mean relative L2 error ‖p − t‖ / ‖t‖ (cosine alone is blind to scale)");
    if r.scores.iter().any(|s| s.default) {
        println!(
            "*: the default method of `apply` ({})",
            crate::defaults::WEIGHTING.label()
        );
    }
    if !skipped.is_empty() {
        skipped.dedup();
        println!(
            "not applicable (only clp has a dense form; omp takes k ≤ 64 atoms): {}",
            skipped.join(", ")
        );
    }
}
