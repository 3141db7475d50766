//! BLOOM: ALiBi instead of positions, a LayerNorm right after the embeddings, per-head fused
//! QKV (`[heads, 3, head_dim]` rows), GELU (tanh) MLP, tied head.

use super::attention::{alibi_slopes, Attention};
use super::blocks::{linear, split_per_head_qkv, Act, Mlp, Norm};
use super::checkpoint::{Cfg, Weights};
use super::decoder::{head, Decoder, Layer};
use candle_core::Result;

/// Builds a BLOOM model from `cfg` and the tensors under `transformer.`.
pub fn build(cfg: Cfg, wts: &Weights) -> Result<Decoder> {
    cfg.refuse_if(
        "apply_residual_connection_post_layernorm",
        true,
        "the post-LayerNorm residual variant is not implemented",
    )?;
    let hidden = cfg.usize(&["hidden_size", "n_embed"])?;
    let heads = cfg.usize(&["n_head", "num_attention_heads"])?;
    let d = hidden / heads;
    let eps = cfg.f64_or(&["layer_norm_epsilon"], 1e-5);
    let t = wts.at("transformer.");
    let slopes = alibi_slopes(heads);
    let mut layers = Vec::new();
    for i in 0..cfg.usize(&["n_layer", "num_hidden_layers"])? {
        let l = t.at(&format!("h.{i}."));
        let fused = linear(&l, "self_attention.query_key_value")?;
        let qkv = split_per_head_qkv(&fused, heads, d)?;
        let o = linear(&l, "self_attention.dense")?;
        let mut attn = Attention::from_parts(qkv, o, heads, heads, d);
        attn.alibi = Some(slopes.clone());
        let mlp = Mlp::Plain {
            up: linear(&l, "mlp.dense_h_to_4h")?,
            down: linear(&l, "mlp.dense_4h_to_h")?,
            act: Act::GeluTanh,
        };
        let n1 = Norm::layer(&l, "input_layernorm", eps)?;
        let n2 = Norm::layer(&l, "post_attention_layernorm", eps)?;
        layers.push(Layer::pre_norm(n1, n2, attn, mlp));
    }
    let embed = t.get("word_embeddings.weight")?;
    let tied = cfg.bool_or("tie_word_embeddings", true);
    Ok(Decoder {
        embed_norm: Some(Norm::layer(&t, "word_embeddings_layernorm", eps)?),
        ..Decoder::new(
            head(wts.opt("lm_head.weight"), &embed, tied, None),
            embed,
            layers,
            Some(Norm::layer(&t, "ln_f", eps)?),
        )
    })
}
