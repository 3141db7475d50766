//! Gemma, Gemma 2 and Gemma 3 (text): RMSNorm with `1 + w`, embeddings scaled by
//! `sqrt(hidden)`, tied head; Gemma 2/3 add norms after each branch, `query_pre_attn_scalar`,
//! sliding-window layers and soft-capping; Gemma 3 adds per-head q/k norms and a separate rotary
//! base for its sliding layers.

use super::attention::{Attention, Mask, QkNorm, Rope};
use super::blocks::{linear, Act, Mlp, Norm};
use super::checkpoint::{Cfg, Weights};
use super::decoder::{head, Decoder, Layer};
use candle_core::Result;

/// The model types this module builds.
pub const TYPES: &[&str] = &["gemma", "gemma2", "gemma3_text"];

/// Builds `model_type` from `cfg` and the tensors under `wts` (`model.` names).
pub fn build(model_type: &str, cfg: Cfg, wts: &Weights) -> Result<Decoder> {
    let hidden = cfg.usize(&["hidden_size"])?;
    let n_layers = cfg.usize(&["num_hidden_layers"])?;
    let eps = cfg.f64_or(&["rms_norm_eps"], 1e-6);
    let m = wts.at("model.");
    let embed = m.get("embed_tokens.weight")?;
    let mut layers = Vec::with_capacity(n_layers);
    for i in 0..n_layers {
        let l = m.at(&format!("layers.{i}."));
        let attn = attention(model_type, cfg, &l, i, eps)?;
        let mlp = Mlp::Gated {
            gate: linear(&l, "mlp.gate_proj")?,
            up: linear(&l, "mlp.up_proj")?,
            down: linear(&l, "mlp.down_proj")?,
            act: Act::from_cfg(cfg, &["hidden_activation"], "gelu_pytorch_tanh")?,
        };
        let nm = |name: &str| Norm::rms(&l, name, eps, 1.0);
        let layer = if model_type == "gemma" {
            Layer::pre_norm(
                nm("input_layernorm")?,
                nm("post_attention_layernorm")?,
                attn,
                mlp,
            )
        } else {
            let mut layer = Layer::pre_norm(
                nm("input_layernorm")?,
                nm("pre_feedforward_layernorm")?,
                attn,
                mlp,
            );
            layer.post_attn_norm = Some(nm("post_attention_layernorm")?);
            layer.post_mlp_norm = Some(nm("post_feedforward_layernorm")?);
            layer
        };
        layers.push(layer);
    }
    let tied = cfg.bool_or("tie_word_embeddings", true);
    Ok(Decoder {
        // transformers rounds sqrt(hidden) to the activations' dtype (f32 here).
        embed_scale: (hidden as f32).sqrt() as f64,
        final_softcap: cfg.opt_f64(&["final_logit_softcapping"]),
        ..Decoder::new(
            head(wts.opt("lm_head.weight"), &embed, tied, None),
            embed,
            layers,
            Some(Norm::rms(&m, "norm", eps, 1.0)?),
        )
    })
}

/// Whether layer `i` is a sliding-window layer: `layer_types` when given, else Gemma 2's
/// alternation (even layers) or Gemma 3's pattern (all but every n-th).
fn sliding(model_type: &str, cfg: Cfg, i: usize) -> bool {
    if let Some(t) = cfg.0["layer_types"].as_array() {
        return t.get(i).and_then(|v| v.as_str()) == Some("sliding_attention");
    }
    match model_type {
        "gemma2" => i.is_multiple_of(2),
        "gemma3_text" => {
            let pattern = cfg
                .opt_usize(&["sliding_window_pattern", "_sliding_window_pattern"])
                .unwrap_or(6);
            !(i + 1).is_multiple_of(pattern)
        }
        _ => false,
    }
}

fn attention(model_type: &str, cfg: Cfg, l: &Weights, i: usize, eps: f64) -> Result<Attention> {
    let hidden = cfg.usize(&["hidden_size"])?;
    let heads = cfg.usize(&["num_attention_heads"])?;
    let kv = cfg.opt_usize(&["num_key_value_heads"]).unwrap_or(heads);
    let d = cfg.head_dim(hidden, heads);
    let names = ["q_proj", "k_proj", "v_proj", "o_proj"];
    let a = l.at("self_attn.");
    let mut attn = Attention::separate(&a, names, heads, kv, d)?;
    let theta = cfg.rope_theta(10000.0);
    let is_sliding = model_type != "gemma" && sliding(model_type, cfg, i);
    attn.rope = Some(if model_type == "gemma3_text" && is_sliding {
        Rope::plain(d, cfg.f64_or(&["rope_local_base_freq"], 10000.0), false)
    } else {
        Rope::new(cfg, d, theta, false)?
    });
    if model_type == "gemma" {
        return Ok(attn);
    }
    attn.scale = 1.0 / cfg.f64_or(&["query_pre_attn_scalar"], d as f64).sqrt();
    attn.softcap = cfg.opt_f64(&["attn_logit_softcapping"]);
    if is_sliding {
        if let Some(w) = cfg.opt_usize(&["sliding_window"]) {
            attn.mask = Mask::Sliding(w);
        }
    }
    if model_type == "gemma3_text" {
        attn.q_norm = Some(QkNorm::PerHead(Norm::rms(&a, "q_norm", eps, 1.0)?));
        attn.k_norm = Some(QkNorm::PerHead(Norm::rms(&a, "k_norm", eps, 1.0)?));
    }
    Ok(attn)
}
