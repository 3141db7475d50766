//! Falcon: rotary positions, fused QKV (multi-query `[heads + 2]` or grouped
//! `[kv, heads/kv + 2]` head blocks), parallel attention and MLP reading one norm (or two with
//! the new decoder architecture), tied head. ALiBi Falcons (falcon-rw) are refused.

use super::attention::{Attention, Rope};
use super::blocks::{linear, split_rows, Act, Mlp, Norm};
use super::checkpoint::{Cfg, Weights};
use super::decoder::{head, Decoder, Layer};
use candle_core::Result;
use candle_nn::Linear;

/// Builds a Falcon model from `cfg` and the tensors under `transformer.`.
pub fn build(cfg: Cfg, wts: &Weights) -> Result<Decoder> {
    cfg.refuse_if("alibi", true, "ALiBi Falcon (falcon-rw) is not implemented")?;
    let hidden = cfg.usize(&["hidden_size"])?;
    let heads = cfg.usize(&["num_attention_heads"])?;
    let d = hidden / heads;
    let eps = cfg.f64_or(&["layer_norm_epsilon"], 1e-5);
    let new_arch = cfg.bool_or("new_decoder_architecture", false);
    let kv = if new_arch {
        cfg.opt_usize(&["num_kv_heads"]).unwrap_or(heads)
    } else if cfg.bool_or("multi_query", true) {
        1
    } else {
        heads
    };
    let parallel = new_arch || cfg.bool_or("parallel_attn", true);
    let act = Act::from_cfg(cfg, &["activation"], "gelu")?;
    let t = wts.at("transformer.");
    let mut layers = Vec::new();
    for i in 0..cfg.usize(&["num_hidden_layers"])? {
        let l = t.at(&format!("h.{i}."));
        let fused = linear(&l, "self_attention.query_key_value")?;
        let qkv = split_qkv(&fused, heads, kv, d, new_arch)?;
        let mut attn =
            Attention::from_parts(qkv, linear(&l, "self_attention.dense")?, heads, kv, d);
        attn.rope = Some(Rope::new(cfg, d, cfg.rope_theta(10000.0), false)?);
        let mlp = Mlp::Plain {
            up: linear(&l, "mlp.dense_h_to_4h")?,
            down: linear(&l, "mlp.dense_4h_to_h")?,
            act,
        };
        let layer = if l.has("ln_attn.weight") {
            let mut layer = Layer::pre_norm(
                Norm::layer(&l, "ln_attn", eps)?,
                Norm::layer(&l, "ln_mlp", eps)?,
                attn,
                mlp,
            );
            layer.parallel = true;
            layer
        } else if parallel {
            Layer::parallel(Norm::layer(&l, "input_layernorm", eps)?, attn, mlp)
        } else {
            let n2 = Norm::layer(&l, "post_attention_layernorm", eps)?;
            Layer::pre_norm(Norm::layer(&l, "input_layernorm", eps)?, n2, attn, mlp)
        };
        layers.push(layer);
    }
    let embed = t.get("word_embeddings.weight")?;
    let tied = cfg.bool_or("tie_word_embeddings", true);
    Ok(Decoder::new(
        head(wts.opt("lm_head.weight"), &embed, tied, None),
        embed,
        layers,
        Some(Norm::layer(&t, "ln_f", eps)?),
    ))
}

/// Falcon's fused QKV rows: without the new architecture, multi-query is `[q heads, k, v]` and
/// multi-head is per head `[heads, 3, d]`; with it, `[kv, heads/kv + 2, d]` (each KV group's
/// queries, then its key and value).
fn split_qkv(
    fused: &Linear,
    heads: usize,
    kv: usize,
    d: usize,
    new_arch: bool,
) -> Result<[Linear; 3]> {
    if !new_arch && kv == heads {
        return super::blocks::split_per_head_qkv(fused, heads, d);
    }
    if !new_arch {
        let p = split_rows(fused, &[heads * d, d, d])?;
        return Ok([p[0].clone(), p[1].clone(), p[2].clone()]);
    }
    let group = heads / kv;
    let mut sizes = Vec::new();
    for _ in 0..kv {
        sizes.extend([group * d, d, d]);
    }
    let parts = split_rows(fused, &sizes)?;
    let gather = |offset: usize| -> Result<Linear> {
        let ws: Vec<_> = parts
            .iter()
            .skip(offset)
            .step_by(3)
            .map(|p| p.weight().clone())
            .collect();
        let w = candle_core::Tensor::cat(&ws, 0)?;
        let b = match parts[0].bias() {
            Some(_) => {
                let bs: Vec<_> = parts
                    .iter()
                    .skip(offset)
                    .step_by(3)
                    .filter_map(|p| p.bias().cloned())
                    .collect();
                Some(candle_core::Tensor::cat(&bs, 0)?)
            }
            None => None,
        };
        Ok(Linear::new(w, b))
    };
    Ok([gather(0)?, gather(1)?, gather(2)?])
}
