//! The `perplexity` subcommand: clap arguments and the table; the work is
//! [`crate::commands::perplexity`].

use super::args::{terminal_progress, ByteSize};
use crate::commands::perplexity::{perplexity, PerplexityOptions, PerplexityReport};
use crate::model::hub::resolve_model_dir;
use crate::progress::Progress;
use std::path::PathBuf;

/// Score models on a text: bits per UTF-8 byte (comparable across tokenizers), perplexity per
/// token, tokens per byte.
///
/// Each document is tokenized with the model's own tokenizer.json (no special tokens), prefixed
/// with the config's bos_token_id when it has one, and scored in consecutive windows of
/// --context tokens on the CPU (candle, f32), one forward pass per window. Masked-LM encoders
/// (BERT, RoBERTa, ModernBERT, ...) are scored by pseudo-log-likelihood and reported as pseudo
/// bits per byte. Several --model give one table over exactly the same documents.
#[derive(Debug, clap::Args)]
pub struct PerplexityArgs {
    /// A model to score: a directory, or an `org/name` id in the local HF cache. Repeat for a table.
    #[arg(long = "model", value_name = "DIR|ID", value_hint = clap::ValueHint::DirPath, required = true)]
    pub models: Vec<String>,
    /// UTF-8 documents: JSON Lines with a "text" field, or plain text with one document per line.
    #[arg(long, value_name = "FILE")]
    pub text: PathBuf,
    /// Window length in tokens, BOS included; clamped to max_position_embeddings.
    #[arg(long, default_value_t = 1024)]
    pub context: usize,
    /// Stop before the document that would take the text past this many bytes (e.g. 1MiB).
    #[arg(long, value_name = "SIZE")]
    pub max_bytes: Option<ByteSize>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Runs `perplexity` without printing (progress goes to `progress`): the report `--json`
/// prints.
pub fn report(args: PerplexityArgs, progress: Progress) -> anyhow::Result<PerplexityReport> {
    let models = args
        .models
        .iter()
        .map(|spec| resolve_model_dir(spec, "--model"))
        .collect::<Result<Vec<_>, _>>()?;
    let opts = PerplexityOptions {
        models,
        text: args.text,
        context: args.context,
        max_bytes: args.max_bytes.map(|b| b.0),
        progress,
    };
    Ok(perplexity(&opts)?)
}

/// Runs `perplexity` and prints the table (or JSON).
pub fn run(args: PerplexityArgs) -> anyhow::Result<()> {
    let json = args.json;
    let progress = terminal_progress(!args.quiet && !json);
    let report = report(args, progress)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

fn print_table(r: &PerplexityReport) {
    let dropped = if r.documents_dropped > 0 {
        format!(" ({} more left out by --max-bytes)", r.documents_dropped)
    } else {
        String::new()
    };
    println!(
        "{}: {} documents, {} UTF-8 bytes{dropped}",
        r.text, r.documents, r.bytes
    );
    println!(
        "{:<40} {:>12} {:>8} {:>10} {:>8} {:>10} {:>10} {:>9} {:>11}",
        "model",
        "type",
        "context",
        "tokens",
        "tok/byte",
        "nats/tok",
        "ppl/tok",
        "bits/byte",
        "pseudo-b/B"
    );
    let figure = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.4}"));
    for m in &r.models {
        println!(
            "{:<40} {:>12} {:>8} {:>10} {:>8.4} {:>10.4} {:>10.3} {:>9} {:>11}",
            m.model,
            m.model_type,
            m.context,
            m.tokens,
            m.tokens_per_byte,
            m.nats_per_token,
            m.perplexity,
            figure(m.bits_per_byte),
            figure(m.pseudo_bits_per_byte)
        );
    }
    if r.models.iter().any(|m| m.pseudo_bits_per_byte.is_some()) {
        println!(
            "pseudo-b/B: masked-LM encoders, pseudo-log-likelihood (each token masked once, the rest of its window visible); their nats/tok and ppl/tok are pseudo too; not comparable with bits/byte"
        );
    }
    for m in r.models.iter().filter(|m| m.scored_tokens < m.tokens) {
        println!(
            "{}: no bos_token_id, so the first token of each of its {} windows is not scored ({} of {} tokens scored)",
            m.model, m.windows, m.scored_tokens, m.tokens
        );
    }
}
