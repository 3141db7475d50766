//! ModernBERT: pre-norm layers (none before the first attention), fused `Wqkv`, rotary with a
//! global and a local base, local layers seeing `local_attention / 2` positions either side, a
//! gated MLP from one fused `Wi`, bias-free LayerNorms, and a tied decoder with bias.

use super::attention::{Attention, Mask, Rope};
use super::blocks::{linear, split_rows, Act, Mlp, Norm};
use super::checkpoint::{Cfg, Weights};
use super::decoder::Layer;
use super::encoder::{Encoder, EncoderLayer};
use candle_core::Result;
use candle_nn::Linear;

/// Builds a ModernBERT masked LM from `cfg` and the tensors under `model.`, `head.` and
/// `decoder.`.
pub fn build(cfg: Cfg, wts: &Weights) -> Result<Encoder> {
    let hidden = cfg.usize(&["hidden_size"])?;
    let heads = cfg.usize(&["num_attention_heads"])?;
    let d = hidden / heads;
    let inter = cfg.usize(&["intermediate_size"])?;
    let eps = cfg.f64_or(&["norm_eps"], 1e-5);
    let every = cfg
        .opt_usize(&["global_attn_every_n_layers"])
        .unwrap_or(1)
        .max(1);
    let window = cfg.opt_usize(&["local_attention"]).unwrap_or(128) / 2;
    let act = Act::from_cfg(cfg, &["hidden_activation"], "gelu")?;
    let m = wts.at("model.");
    let mut layers = Vec::new();
    for i in 0..cfg.usize(&["num_hidden_layers"])? {
        let l = m.at(&format!("layers.{i}."));
        let qkv = split_rows(&linear(&l, "attn.Wqkv")?, &[hidden; 3])?;
        let qkv = [qkv[0].clone(), qkv[1].clone(), qkv[2].clone()];
        let mut attn = Attention::from_parts(qkv, linear(&l, "attn.Wo")?, heads, heads, d);
        let global = i % every == 0;
        let theta = if global {
            cfg.f64_or(&["global_rope_theta"], 160000.0)
        } else {
            cfg.f64_or(&["local_rope_theta"], 10000.0)
        };
        attn.rope = Some(Rope::plain(d, theta, false));
        attn.mask = if global {
            Mask::Bidirectional
        } else {
            Mask::Local(window)
        };
        let wi = split_rows(&linear(&l, "mlp.Wi")?, &[inter, inter])?;
        let mlp = Mlp::Gated {
            gate: wi[0].clone(),
            up: wi[1].clone(),
            down: linear(&l, "mlp.Wo")?,
            act,
        };
        let mut layer = Layer::pre_norm(
            Norm::layer(&l, "mlp_norm", eps)?,
            Norm::layer(&l, "mlp_norm", eps)?,
            attn,
            mlp,
        );
        layer.attn_norm = match l.has("attn_norm.weight") {
            true => Some(Norm::layer(&l, "attn_norm", eps)?),
            false => None,
        };
        layers.push(EncoderLayer::PreNorm(layer));
    }
    let embed = m.get("embeddings.tok_embeddings.weight")?;
    let bias = match wts.opt("decoder.bias") {
        Some(b) => b,
        None => embed.narrow(1, 0, 1)?.squeeze(1)?.zeros_like()?,
    };
    Ok(Encoder {
        decoder: Linear::new(embed.clone(), Some(bias)),
        embed,
        positions: None,
        token_type: None,
        embed_proj_before_norm: None,
        embed_norm: Some(Norm::layer(&m, "embeddings.norm", eps)?),
        embed_proj: None,
        layers,
        final_norm: Some(Norm::layer(&m, "final_norm", eps)?),
        head_dense: linear(wts, "head.dense")?,
        head_act: Act::from_cfg(cfg, &["classifier_activation"], "gelu")?,
        head_norm: Norm::layer(wts, "head.norm", eps)?,
    })
}
