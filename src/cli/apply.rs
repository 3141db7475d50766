//! The `apply` subcommand: clap arguments and printing; the work is [`crate::commands::apply`].

use super::args::{
    BackendArg, ByteSize, FallbackArg, MatchArgs, OutputArgs, PairArgs, WeightingArg,
};
use crate::commands::apply::{apply, ApplyOptions, ApplySummary, Method};
use crate::defaults::{self, Preset};
use crate::progress::Progress;
use crate::TopK;
use std::path::PathBuf;

/// Build a target model: the source model's weights with the helper's tokenizer.
#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// --source, --helper and --helper-tokenizer.
    #[command(flatten)]
    pub pair: PairArgs,
    /// Output model directory (must not exist unless --force).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Neighbours per missing token: a number, or `all` (clp only: the original dense CLP).
    #[arg(long, value_name = "K|all", default_value_t = defaults::TOP_K)]
    pub top_k: TopK,
    /// --match.
    #[command(flatten)]
    pub matching: MatchArgs,
    /// How the selected neighbours are weighted: clp (cos / Σcos, the original), softmax
    /// (exp(cos/T), WECHSEL), sparsemax (FOCUS), omp (orthogonal matching pursuit with K atoms,
    /// tokensurgeon). All but clp need --top-k K. `clp-gpu evaluate` compares them on your pair.
    /// fvt (FVT) needs no helper weights: each missing token's row is the mean of the source
    /// rows of its text as the source tokenizer spells it (--top-k and --temperature refused).
    #[arg(long, value_enum, default_value_t = WeightingArg::of(&defaults::WEIGHTING))]
    pub weighting: WeightingArg,
    /// What rows the weighting cannot build get (a zero or non-finite helper row, cancelling
    /// weights, a non-finite result; target tokens without a helper row): fvt, the token's FVT
    /// row (the mean where the source tokenizer cannot spell it), or mean, the mean of the
    /// overlapping source rows. The report and --provenance say which row got which.
    #[arg(long, value_enum, value_name = "fvt|mean", default_value = "fvt")]
    pub fallback: FallbackArg,
    /// Softmax temperature (softmax only: refused with another weighting).
    #[arg(long, default_value_t = defaults::TEMPERATURE)]
    pub temperature: f32,
    /// A named method instead of --match/--weighting/--top-k/--temperature: `original` is the
    /// paper's CLP-Transfer exactly (exact match, clp over every overlapping token).
    #[arg(long, value_enum, conflicts_with_all = ["match_mode", "weighting", "top_k", "temperature"])]
    pub preset: Option<Preset>,
    /// Which implementation computes the missing rows.
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    pub backend: BackendArg,
    /// Memory budget of the tile buffers, e.g. 512MiB or 2GiB (GPU memory on the GPU, the
    /// working set on the CPU). Host memory stays near this plus a few MiB whatever the model size.
    #[arg(long, value_name = "SIZE", default_value = "1GiB")]
    pub gpu_memory: ByteSize,
    /// Replace OUT if it exists.
    #[arg(long)]
    pub force: bool,
    /// --json and --quiet.
    #[command(flatten)]
    pub output: OutputArgs,
    /// Write per-token provenance (JSON Lines) to this file.
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub provenance: Option<PathBuf>,
    /// Round the number of embedding rows up to a multiple of N (extra rows are zeros).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub pad_to_multiple: Option<u64>,
    /// The target's pad token: a token of the target tokenizer, or a new one to add (it gets
    /// one more embedding row: the source's pad row, or zeros). Needed by RoBERTa-style models
    /// and encoder-decoders when the target tokenizer has no pad token.
    #[arg(long, value_name = "TOKEN")]
    pub pad_token: Option<String>,
}

/// Runs `apply` without printing (progress goes to `progress`): the summary `--json` prints.
/// `arguments` is the command line recorded in clp_transfer.json.
pub fn summary(
    args: ApplyArgs,
    arguments: Vec<String>,
    progress: Progress,
) -> anyhow::Result<ApplySummary> {
    let (match_mode, method) = match args.preset {
        Some(p) => (p.match_mode(), Method::Weighted(p.weighting())),
        None => (
            args.matching.match_mode,
            args.weighting.method(args.top_k, args.temperature)?,
        ),
    };
    let opts = ApplyOptions {
        source: args.pair.source,
        helper: args.pair.helper,
        helper_tokenizer: args.pair.helper_tokenizer,
        out: args.out,
        method,
        fallback: args.fallback.into(),
        match_mode,
        preset: args.preset,
        backend: args.backend.into(),
        memory_bytes: args.gpu_memory.0,
        force: args.force,
        provenance: args.provenance,
        pad_to_multiple: args.pad_to_multiple.map(|n| n as usize),
        pad_token: args.pad_token,
        progress,
        arguments,
    };
    Ok(apply(&opts)?)
}

/// Runs `apply` and prints its summary.
pub fn run(args: ApplyArgs, arguments: Vec<String>) -> anyhow::Result<()> {
    let output = args.output;
    let s = summary(args, arguments, output.progress())?;
    output.notices(&s.notices);
    output.report(&s, |s| {
        let how = match s.weighting.as_str() {
            "fvt" => "fvt (the source tokenizer's spellings)".to_string(),
            _ => format!(
                "{} on {}",
                s.weighting,
                s.adapter.as_deref().unwrap_or(&s.backend)
            ),
        };
        println!(
            "wrote {} ({} rows, {}): {} copied ({} exact, {} canonical), {} special by role, {} computed ({} fallback: {} fvt, {} mean) with {how}",
            s.out.display(),
            s.target_rows,
            s.dtype,
            s.overlap,
            s.matching.exact,
            s.matching.canonical,
            s.special_by_role,
            s.computed,
            s.fallback,
            s.fallback_rows.fvt,
            s.fallback_rows.mean,
        )
    })
}
