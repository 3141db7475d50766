//! The `trim` subcommand: clap arguments and printing; the work is [`crate::commands::trim`].

use super::args::OutputArgs;
use crate::commands::trim::{trim, TrimOptions, TrimReport};
use crate::progress::Progress;
use std::path::PathBuf;

/// `--help` text of the subcommand.
const LONG_ABOUT: &str = "Cut a model's vocabulary down to the tokens its corpora use.\n\
\n\
Each corpus is tokenized line by line with the model's own tokenizer. A token is kept when\n\
its relative frequency in at least one corpus reaches --min-freq, or it is a special or\n\
added token, or it is listed in --keep; the tokenizer also keeps what it needs to stay\n\
consistent (BPE merge closure, the byte alphabet of byte-level BPE). The kept tokens get\n\
ids 0.. in their old order; the input embedding, an untied lm_head and output biases keep\n\
those rows (bytes copied); every other tensor is copied unchanged. A line of a corpus\n\
whose tokens were all kept tokenizes to the same tokens as before (checked unless\n\
--no-verify).";

/// Arguments of `clp-gpu trim`.
#[derive(Debug, clap::Args)]
#[command(about = "Cut a model's vocabulary down to the tokens its corpora use", long_about = LONG_ABOUT)]
pub struct TrimArgs {
    /// The model: a Hugging Face model directory, or an `org/name` id in the local HF cache.
    #[arg(long, value_name = "DIR|ID", value_hint = clap::ValueHint::DirPath)]
    pub model: String,
    /// A UTF-8 text file, one sentence or paragraph per line (repeat for each language).
    #[arg(long, value_name = "FILE", required = true)]
    pub corpus: Vec<PathBuf>,
    /// Keep a token whose relative frequency in some corpus is at least this (0 keeps every
    /// token that occurs).
    #[arg(long, value_name = "FREQ", default_value_t = 1e-6)]
    pub min_freq: f64,
    /// A file of token strings to keep as well, one per line, written as in the vocabulary
    /// (e.g. Ġthe for GPT-2).
    #[arg(long, value_name = "FILE")]
    pub keep: Option<PathBuf>,
    /// Output model directory (must not exist unless --force).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Replace OUT if it exists.
    #[arg(long)]
    pub force: bool,
    /// Skip tokenizing the corpora again to check the trimmed tokenizer (halves the time).
    #[arg(long)]
    pub no_verify: bool,
    /// --json and --quiet.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Runs `trim` without printing (progress goes to `progress`): the report `--json` prints.
pub fn report(args: TrimArgs, progress: Progress) -> anyhow::Result<TrimReport> {
    let opts = TrimOptions {
        model: args.model,
        corpora: args.corpus,
        min_freq: args.min_freq,
        keep: args.keep,
        out: args.out,
        force: args.force,
        verify: !args.no_verify,
        progress,
    };
    Ok(trim(&opts)?)
}

/// Runs `trim` and prints its report.
pub fn run(args: TrimArgs) -> anyhow::Result<()> {
    let output = args.output;
    let r = report(args, output.progress())?;
    output.report(&r, print_text)
}

fn print_text(r: &TrimReport) {
    let k = &r.kept;
    println!(
        "wrote {}: {} -> {} tokens ({}); kept: {} frequency, {} special, {} --keep, {} byte alphabet, {} alphabet, {} unknown-word path, {} merge closure",
        r.out.display(),
        r.tokens_before,
        r.tokens_after,
        r.tokenizer_model.name(),
        k.frequency,
        k.special,
        k.keep_file,
        k.byte_alphabet,
        k.alphabet,
        k.unk_path,
        k.merge_closure
    );
    println!(
        "embedding parameters: {} -> {} ({:.1}% removed); model: {} -> {} bytes ({:.1}% smaller)",
        r.embedding_params_before,
        r.embedding_params_after,
        100.0 * r.embedding_params_removed_share,
        r.model_bytes_before,
        r.model_bytes_after,
        100.0 * (1.0 - r.model_bytes_after as f64 / r.model_bytes_before.max(1) as f64)
    );
    for (c, v) in r.corpora.iter().zip(
        r.verification
            .iter()
            .map(Some)
            .chain(std::iter::repeat(None)),
    ) {
        let check = match v {
            Some(v) => format!(
                "; {} of {} lines tokenize identically, {} hold a token below --min-freq",
                v.identical, v.lines, v.with_dropped_tokens
            ),
            None => String::new(),
        };
        println!(
            "  {}: {} lines, {} tokens, {} distinct, {} at or above --min-freq{check}",
            c.path.display(),
            c.lines,
            c.tokens,
            c.distinct_tokens,
            c.frequent_tokens
        );
    }
    for s in &r.config_ids_unmapped {
        println!("  note: {s} names no token of the tokenizer; set to null");
    }
    for f in &r.files_dropped {
        println!("  note: {f} not written (cannot be trimmed; tokenizer.json is the tokenizer)");
    }
}
