//! Our own forward passes of the scored families, on candle's tensor ops (CPU, f32): every
//! position's logits from one pass over a window.
//!
//! Why not candle-transformers: its causal-LM heads return the logits of the last position only
//! (and keep a KV cache for generation), and it lacks several families `apply` writes (bloom,
//! gpt2, gpt_neox, opt, gptj, ...). Wrapping its models would not reach the hidden states of
//! most of them (they are private), so the families are written here once, as configurations
//! of a few shared blocks:
//!
//! - [`blocks`]: norms (LayerNorm, RMSNorm, Gemma's `1 + w`), projections, activations and the
//!   MLP variants (plain, gated, mixture of experts);
//! - [`attention`]: multi-head attention with grouped KV heads, rotary (full or partial,
//!   half-split or interleaved), ALiBi or no position term, per-head or whole q/k norms,
//!   causal, sliding-window or bidirectional masks;
//! - [`decoder`]: the causal stack (learned/rotary/ALiBi positions, sequential or parallel
//!   residual, pre and post norms) and [`encoder`]: the masked-LM stack scored by
//!   pseudo-log-likelihood;
//! - one small module per lineage maps a checkpoint's tensor names and config keys onto them:
//!   [`gpt`] (gpt2, gpt_bigcode, gptj, gpt_neox, opt), [`bloom`], [`falcon`], [`llama`] (llama,
//!   mistral, mixtral, qwen2, qwen3, granite, smollm3, starcoder2, stablelm, olmo2, cohere),
//!   [`gemma`], [`phi`], [`bert`] (bert, roberta, xlm-roberta, distilbert, electra,
//!   deberta-v2) and [`modernbert`].
//!
//! Each family is checked against transformers' per-token log-probabilities in
//! `tests/perplexity.rs`.

pub mod attention;
pub mod bert;
pub mod blocks;
pub mod bloom;
pub mod checkpoint;
pub mod decoder;
pub mod encoder;
pub mod falcon;
pub mod gemma;
pub mod gpt;
pub mod llama;
pub mod modernbert;
pub mod phi;

pub use checkpoint::{Cfg, Weights};
