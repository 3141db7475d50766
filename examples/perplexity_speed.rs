//! Seconds per window of `clp-gpu perplexity`: one forward pass per window (the path
//! `perplexity` runs) against token-by-token scoring through candle-transformers' KV cache (the
//! path it ran before), on the same windows, with the largest difference of their
//! log-probabilities.
//!
//!     cargo run --release --example perplexity_speed -- MODEL_DIR TEXT_FILE [CONTEXT] [WINDOWS]
//!
//! MODEL_DIR is a llama, mistral, gemma, gemma2, gemma3_text, phi or phi3 checkpoint (the
//! families candle-transformers has); tests/python/perplexity_timing_model.py builds a random
//! Llama of realistic width for it. CONTEXT defaults to 512, WINDOWS to 2.

use anyhow::{bail, Context};
use clp_gpu::commands::perplexity::{read_documents, stepwise::Stepwise, LanguageModel};
use std::path::PathBuf;
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        bail!("usage: perplexity_speed MODEL_DIR TEXT_FILE [CONTEXT] [WINDOWS]");
    }
    let dir = PathBuf::from(&args[0]);
    let context: usize = args
        .get(2)
        .map_or(Ok(512), |s| s.parse())
        .context("CONTEXT")?;
    let n_windows: usize = args
        .get(3)
        .map_or(Ok(2), |s| s.parse())
        .context("WINDOWS")?;
    let mut lm = LanguageModel::load(&dir)?;
    let mut step = Stepwise::load(&dir)?;
    let docs = read_documents(&PathBuf::from(&args[1]), None)?;
    let mut tokens = Vec::new();
    for d in &docs.docs {
        tokens.extend(lm.tokenize(d)?);
    }
    let width = context - usize::from(lm.bos.is_some());
    let windows: Vec<Vec<u32>> = tokens
        .chunks_exact(width)
        .take(n_windows)
        .map(|c| lm.bos.into_iter().chain(c.iter().copied()).collect())
        .collect();
    if windows.len() < n_windows {
        bail!(
            "the text has {} tokens: fewer than {n_windows} windows of {width}",
            tokens.len()
        );
    }
    let (mut one_s, mut step_s, mut worst) = (0.0, 0.0, 0.0f64);
    for ids in &windows {
        let t = Instant::now();
        let a = lm.window_log_probs(ids)?;
        one_s += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let b = step.window_log_probs(ids)?;
        step_s += t.elapsed().as_secs_f64();
        worst = a
            .iter()
            .zip(&b)
            .fold(worst, |w, (x, y)| w.max((x - y).abs()));
    }
    let n = windows.len() as f64;
    println!(
        "{}: {} windows of {context} tokens; one pass: {:.2} s/window; token by token: {:.2} s/window; {:.1}x; largest |Δ ln p| {worst:.2e}",
        dir.display(),
        windows.len(),
        one_s / n,
        step_s / n,
        step_s / one_s
    );
    Ok(())
}
