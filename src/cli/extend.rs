//! The `extend` subcommand: clap arguments and printing; the work is [`crate::commands::extend`].

use super::args::{BackendArg, ByteSize, FallbackArg, MatchArgs, OutputArgs, WeightingArg};
use crate::commands::extend::{extend, ExtendOptions, ExtendSummary};
use crate::defaults;
use crate::progress::Progress;
use crate::TopK;
use std::path::PathBuf;

/// Grow a model's own tokenizer with tokens learnt from your text, and give them rows.
///
/// Every existing token keeps its string, id and rows (copied bit-exact); up to --add new
/// tokens, learnt from the corpora by a trainer of the model's own tokenizer family (byte-level
/// BPE, SentencePiece BPE, Unigram, WordPiece), get the ids after the largest existing one. No
/// line of the corpora takes more tokens than before, and every line decodes as before (checked
/// at the end of every run). The new rows are FVT by default (the mean of the model's rows of
/// the token's pieces), or, with --helper, a weighting in a helper model's embedding space.
#[derive(Debug, clap::Args)]
pub struct ExtendArgs {
    /// The model to extend: a Hugging Face model directory, or an `org/name` id in the local HF cache.
    #[arg(long, value_name = "DIR|ID", value_hint = clap::ValueHint::DirPath)]
    pub model: String,
    /// Text in the language to add, one document per line (repeat for several files).
    #[arg(long, value_name = "FILE", required = true, value_hint = clap::ValueHint::FilePath)]
    pub corpus: Vec<PathBuf>,
    /// How many tokens to add at most (in order of usefulness: merge rank or score; the
    /// intermediate tokens a merge chain needs count).
    #[arg(long, value_name = "N")]
    pub add: usize,
    /// Leave out tokens the trainer saw fewer than this many times.
    #[arg(long, value_name = "COUNT", default_value_t = 2)]
    pub min_freq: u64,
    /// Share of each corpus's lines held out from learning; the report gives tokens per byte on
    /// them too.
    #[arg(long, value_name = "SHARE", default_value_t = 0.1)]
    pub holdout: f64,
    /// Output model directory (must not exist unless --force).
    #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    pub out: PathBuf,
    /// A model that already knows the language (any tokenizer): the new rows combine the
    /// model's rows of the tokens nearest in the helper's embedding space (--weighting).
    #[arg(long, value_name = "DIR|ID", value_hint = clap::ValueHint::DirPath)]
    pub helper: Option<String>,
    /// How the new rows are built: fvt (default without --helper: the mean of the model's rows
    /// of the token's pieces) or, with --helper, clp, softmax (default with --helper),
    /// sparsemax or omp, as in `apply`.
    #[arg(long, value_enum)]
    pub weighting: Option<WeightingArg>,
    /// Neighbours per new token (with --helper): a number, or `all` (clp only).
    #[arg(long, value_name = "K|all", default_value_t = defaults::TOP_K)]
    pub top_k: TopK,
    /// Softmax temperature (with --helper).
    #[arg(long, default_value_t = defaults::TEMPERATURE)]
    pub temperature: f32,
    /// --match: how tokens of the extended vocabulary find the model's and the helper's tokens.
    #[command(flatten)]
    pub matching: MatchArgs,
    /// What rows the weighting cannot build get: fvt (the token's FVT row) or mean.
    #[arg(long, value_enum, value_name = "fvt|mean", default_value = "fvt")]
    pub fallback: FallbackArg,
    /// Which implementation computes weighted rows (with --helper).
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    pub backend: BackendArg,
    /// Memory budget of the tile buffers, e.g. 512MiB or 2GiB.
    #[arg(long, value_name = "SIZE", default_value = "1GiB")]
    pub gpu_memory: ByteSize,
    /// Round the number of embedding rows up to a multiple of N (extra rows are zeros).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub pad_to_multiple: Option<u64>,
    /// Write per-token provenance (JSON Lines) to this file.
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub provenance: Option<PathBuf>,
    /// Replace OUT if it exists.
    #[arg(long)]
    pub force: bool,
    /// --json and --quiet.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Runs `extend` without printing: the summary `--json` prints (and OUT/extend_report.json holds).
pub fn summary(
    args: ExtendArgs,
    arguments: Vec<String>,
    progress: Progress,
) -> anyhow::Result<ExtendSummary> {
    let weighting = args.weighting.unwrap_or(match args.helper {
        Some(_) => WeightingArg::of(&defaults::WEIGHTING),
        None => WeightingArg::Fvt,
    });
    let opts = ExtendOptions {
        model: args.model,
        corpora: args.corpus,
        add: args.add,
        min_freq: args.min_freq,
        holdout: args.holdout,
        helper: args.helper,
        method: weighting.method(args.top_k, args.temperature)?,
        fallback: args.fallback.into(),
        match_mode: args.matching.match_mode,
        backend: args.backend.into(),
        memory_bytes: args.gpu_memory.0,
        pad_to_multiple: args.pad_to_multiple.map(|n| n as usize),
        provenance: args.provenance,
        out: args.out,
        force: args.force,
        progress,
        arguments,
    };
    Ok(extend(&opts)?)
}

/// Runs `extend` and prints its summary.
pub fn run(args: ExtendArgs, arguments: Vec<String>) -> anyhow::Result<()> {
    let output = args.output;
    let s = summary(args, arguments, output.progress())?;
    output.notices(&s.notices);
    output.report(&s, |s| {
        let per_byte = |t: u64, b: u64| t as f64 / b.max(1) as f64;
        println!(
            "wrote {} ({} tokens: {} + {} new, {}): tokens per byte {:.4} -> {:.4} on the training lines, {:.4} -> {:.4} held out; rows: {} copied, {} new by {} ({} fallback)",
            s.out.display(),
            s.tokens_after,
            s.tokens_before,
            s.added,
            s.family,
            per_byte(s.train.tokens_before, s.train.bytes),
            per_byte(s.train.tokens_after, s.train.bytes),
            per_byte(s.heldout.tokens_before, s.heldout.bytes),
            per_byte(s.heldout.tokens_after, s.heldout.bytes),
            s.rows.copied,
            s.rows.computed,
            s.rows.method,
            s.rows.fallback,
        )
    })
}
