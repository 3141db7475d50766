//! Phi (1, 1.5, 2): parallel attention and MLP on one LayerNorm, partial rotary, biases,
//! `final_layernorm`, `lm_head` with bias. Phi-3: Llama-like with a fused `qkv_proj` and a fused
//! `gate_up_proj`.

use super::attention::{Attention, QkNorm, Rope};
use super::blocks::{linear, split_rows, Act, Mlp, Norm};
use super::checkpoint::{Cfg, Weights};
use super::decoder::{head, Decoder, Layer};
use candle_core::{bail, Result};

/// The model types this module builds.
pub const TYPES: &[&str] = &["phi", "phi3"];

/// Builds `model_type` from `cfg` and the tensors under `model.` and `lm_head.`.
pub fn build(model_type: &str, cfg: Cfg, wts: &Weights) -> Result<Decoder> {
    let hidden = cfg.usize(&["hidden_size"])?;
    let heads = cfg.usize(&["num_attention_heads"])?;
    let kv = cfg.opt_usize(&["num_key_value_heads"]).unwrap_or(heads);
    let d = cfg.head_dim(hidden, heads);
    let phi3 = model_type == "phi3";
    let eps = cfg.f64_or(&["layer_norm_eps", "rms_norm_eps"], 1e-5);
    let rotary = (cfg.f64_or(&["partial_rotary_factor"], 1.0) * d as f64) as usize;
    let act = Act::from_cfg(cfg, &["hidden_act"], if phi3 { "silu" } else { "gelu_new" })?;
    let m = wts.at("model.");
    let mut layers = Vec::new();
    for i in 0..cfg.usize(&["num_hidden_layers"])? {
        let l = m.at(&format!("layers.{i}."));
        let a = l.at("self_attn.");
        let mut attn = if phi3 {
            let p = split_rows(&linear(&a, "qkv_proj")?, &[heads * d, kv * d, kv * d])?;
            let qkv = [p[0].clone(), p[1].clone(), p[2].clone()];
            Attention::from_parts(qkv, linear(&a, "o_proj")?, heads, kv, d)
        } else {
            let names = ["q_proj", "k_proj", "v_proj", "dense"];
            Attention::separate(&a, names, heads, kv, d)?
        };
        attn.rope = Some(Rope::new(cfg, rotary, cfg.rope_theta(10000.0), false)?);
        if !phi3 && cfg.bool_or("qk_layernorm", false) {
            attn.q_norm = Some(QkNorm::PerHead(Norm::layer(&a, "q_layernorm", eps)?));
            attn.k_norm = Some(QkNorm::PerHead(Norm::layer(&a, "k_layernorm", eps)?));
        }
        let layer = if phi3 {
            let p = split_rows(
                &linear(&l, "mlp.gate_up_proj")?,
                &[cfg.usize(&["intermediate_size"])?; 2],
            )?;
            let mlp = Mlp::Gated {
                gate: p[0].clone(),
                up: p[1].clone(),
                down: linear(&l, "mlp.down_proj")?,
                act,
            };
            let n1 = Norm::rms(&l, "input_layernorm", eps, 0.0)?;
            Layer::pre_norm(
                n1,
                Norm::rms(&l, "post_attention_layernorm", eps, 0.0)?,
                attn,
                mlp,
            )
        } else {
            let mlp = Mlp::Plain {
                up: linear(&l, "mlp.fc1")?,
                down: linear(&l, "mlp.fc2")?,
                act,
            };
            Layer::parallel(Norm::layer(&l, "input_layernorm", eps)?, attn, mlp)
        };
        layers.push(layer);
    }
    let embed = m.get("embed_tokens.weight")?;
    let tied = cfg.bool_or("tie_word_embeddings", false);
    let final_norm = if phi3 {
        Norm::rms(&m, "norm", eps, 0.0)?
    } else {
        Norm::layer(&m, "final_layernorm", eps)?
    };
    if phi3 && cfg.0["rope_scaling"].is_object() {
        bail!("config.json: Phi-3 rope_scaling (longrope/su) is not implemented by perplexity");
    }
    Ok(Decoder::new(
        head(
            wts.opt("lm_head.weight"),
            &embed,
            tied,
            wts.opt("lm_head.bias"),
        ),
        embed,
        layers,
        Some(final_norm),
    ))
}
