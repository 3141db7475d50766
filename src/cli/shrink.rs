//! The `shrink` subcommand: clap arguments and printing; the work is [`crate::commands::shrink`].

use super::args::OutputArgs;
use crate::commands::shrink::{shrink, LayerChoice, ShrinkOptions, ShrinkReport};
use std::path::PathBuf;

/// `--help` text of the subcommand.
const LONG_ABOUT: &str =
    "Make a student skeleton: fewer transformer layers, optionally a narrower embedding.\n\
\n\
The kept layers' tensors are copied byte-for-byte and renumbered 0, 1, ... (e.g.\n\
model.layers.4. becomes model.layers.2.); config.json's layer count follows. With\n\
--hidden-size D the input embedding E (and an untied lm_head of the same shape) is replaced\n\
by its truncated-SVD coordinates E V_D = U_D Σ_D (top-D left singular vectors scaled by the\n\
singular values), and V_Dᵀ is written to embedding_projection.safetensors (E ≈ reduced @\n\
projection). Only those tensors change width: all other tensors (attention, MLP, norms,\n\
position embeddings) keep the old hidden size, as does config.json, so the result is a\n\
skeleton to be trained (distilled) or projected before it runs.\n\
\n\
Encoder-decoders (T5, mT5, BART, mBART, M2M100, Whisper) have an encoder and a decoder stack:\n\
--keep-every R applies to each; --layers LIST applies to both (every index must exist in\n\
both) unless --decoder-layers LIST gives the decoder's own list, and then --layers (or\n\
--keep-every, or nothing: all) is the encoder's. config.json's per-stack counts follow\n\
(num_layers / num_decoder_layers, encoder_layers / decoder_layers / num_hidden_layers). T5's\n\
relative_attention_bias lives in block 0 of each stack only: when block 0 is dropped, its\n\
bias goes to the new block 0. --hidden-size reduces the shared embedding, its stored tied\n\
copies and an untied lm_head alike.";

/// Arguments of `clp-gpu shrink`.
#[derive(Debug, clap::Args)]
#[command(about = "Make a student skeleton: fewer transformer layers, optionally a narrower embedding", long_about = LONG_ABOUT)]
pub struct ShrinkArgs {
    /// The model: a Hugging Face model directory, or an `org/name` id in the local HF cache.
    #[arg(long, value_name = "DIR|ID", value_hint = clap::ValueHint::DirPath)]
    pub model: String,
    /// Keep layers 0, R, 2R, ... and always the last layer.
    #[arg(long, value_name = "R", conflicts_with = "layers", value_parser = clap::value_parser!(u64).range(1..))]
    pub keep_every: Option<u64>,
    /// Keep exactly these layers (0-based, increasing), e.g. 1,3,5.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub layers: Option<Vec<usize>>,
    /// Encoder-decoders only: keep exactly these decoder layers (0-based, increasing); --layers
    /// or --keep-every then picks the encoder's.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub decoder_layers: Option<Vec<usize>>,
    /// Reduce the input embedding (and an untied lm_head of the same shape) to width D.
    #[arg(long, value_name = "D", value_parser = clap::value_parser!(u64).range(1..))]
    pub hidden_size: Option<u64>,
    /// Output model directory (must not exist unless --force).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Replace OUT if it exists.
    #[arg(long)]
    pub force: bool,
    /// --json and --quiet.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Runs `shrink` without printing: the report `--json` prints.
pub fn report(args: ShrinkArgs) -> anyhow::Result<ShrinkReport> {
    let layers = match (args.keep_every, args.layers) {
        (Some(r), _) => LayerChoice::KeepEvery(r as usize),
        (None, Some(list)) => LayerChoice::List(list),
        (None, None) => LayerChoice::All,
    };
    let opts = ShrinkOptions {
        model: args.model,
        layers,
        decoder_layers: args.decoder_layers.map(LayerChoice::List),
        hidden_size: args.hidden_size.map(|d| d as usize),
        out: args.out,
        force: args.force,
    };
    Ok(shrink(&opts)?)
}

/// Runs `shrink` and prints its report.
pub fn run(args: ShrinkArgs) -> anyhow::Result<()> {
    let output = args.output;
    let r = report(args)?;
    output.report(&r, print_text)
}

fn print_text(r: &ShrinkReport) {
    println!(
        "wrote {}: {} -> {} layers of {} (kept {:?}); parameters {} -> {}; {} -> {} bytes",
        r.out.display(),
        r.layers_before,
        r.layers_kept.len(),
        r.layer_prefix,
        r.layers_kept,
        r.params_before,
        r.params_after,
        r.bytes_before,
        r.bytes_after
    );
    if let Some(d) = &r.decoder {
        println!(
            "  decoder: {} -> {} layers of {} (kept {:?})",
            d.layers_before,
            d.layers_kept.len(),
            d.layer_prefix,
            d.layers_kept
        );
    }
    if !r.carried_from_block_0.is_empty() {
        println!(
            "  kept for the new first block: {}",
            r.carried_from_block_0.join(", ")
        );
    }
    if let Some(h) = &r.hidden {
        println!(
            "  {} reduced from width {} to {} keeping {:.2}% of the spectrum{}; projection in {}",
            h.embedding,
            h.width_before,
            h.width_after,
            100.0 * h.spectrum_kept,
            h.lm_head_energy_kept
                .map(|e| format!(
                    " ({} keeps {:.2}% of its energy)",
                    h.lm_head.as_deref().unwrap_or("lm_head"),
                    100.0 * e
                ))
                .unwrap_or_default(),
            crate::commands::shrink::PROJECTION_FILE
        );
        println!("  note: {}", h.note);
    }
}
