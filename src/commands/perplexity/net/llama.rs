//! The Llama lineage: `model.embed_tokens`, `model.layers.N.{self_attn, mlp, *_layernorm}`,
//! `model.norm`, `lm_head`. Covers llama, mistral, mixtral, qwen2, qwen3, granite, smollm3,
//! starcoder2, stablelm, olmo2 and cohere, which differ in norms, biases, q/k norms, rotary
//! layout, residual wiring and a few multipliers.

use super::attention::{Attention, Mask, QkNorm, Rope};
use super::blocks::{linear, Act, Mlp, Norm};
use super::checkpoint::{Cfg, Weights};
use super::decoder::{head, Decoder, Layer};
use candle_core::{bail, Result};
use candle_nn::Linear;

/// The model types this module builds.
pub const TYPES: &[&str] = &[
    "llama",
    "mistral",
    "mixtral",
    "qwen2",
    "qwen3",
    "granite",
    "smollm3",
    "starcoder2",
    "stablelm",
    "olmo2",
    "cohere",
];

/// Shapes read from the config.
struct Dims {
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    layers: usize,
    eps: f64,
}

fn dims(cfg: Cfg) -> Result<Dims> {
    let hidden = cfg.usize(&["hidden_size"])?;
    let heads = cfg.usize(&["num_attention_heads"])?;
    Ok(Dims {
        heads,
        kv_heads: cfg.opt_usize(&["num_key_value_heads"]).unwrap_or(heads),
        head_dim: cfg.head_dim(hidden, heads),
        layers: cfg.usize(&["num_hidden_layers"])?,
        eps: cfg.f64_or(&["rms_norm_eps", "layer_norm_eps", "norm_epsilon"], 1e-6),
    })
}

/// Builds `model_type` from `cfg` and the tensors under `wts` (`model.` and `lm_head.` names).
pub fn build(model_type: &str, cfg: Cfg, wts: &Weights) -> Result<Decoder> {
    refuse_unsupported(model_type, cfg)?;
    let d = dims(cfg)?;
    let tied_default = matches!(model_type, "starcoder2" | "smollm3" | "cohere");
    let tied = cfg.bool_or("tie_word_embeddings", tied_default);
    let m = wts.at("model.");
    let embed = m.get("embed_tokens.weight")?;
    let mut layers = Vec::with_capacity(d.layers);
    for i in 0..d.layers {
        layers.push(layer(
            model_type,
            cfg,
            &d,
            &m.at(&format!("layers.{i}.")),
            i,
        )?);
    }
    let final_norm = norm(model_type, &m, "norm", d.eps)?;
    let logit_scale = match model_type {
        "cohere" => cfg.f64_or(&["logit_scale"], 1.0),
        "granite" => 1.0 / cfg.f64_or(&["logits_scaling"], 1.0),
        _ => 1.0,
    };
    let embed_scale = match model_type {
        "granite" => cfg.f64_or(&["embedding_multiplier"], 1.0),
        _ => 1.0,
    };
    Ok(Decoder {
        embed_scale,
        logit_scale,
        ..Decoder::new(
            head(wts.opt("lm_head.weight"), &embed, tied, None),
            embed,
            layers,
            Some(final_norm),
        )
    })
}

fn refuse_unsupported(model_type: &str, cfg: Cfg) -> Result<()> {
    match model_type {
        "stablelm" => cfg.refuse_if(
            "qk_layernorm",
            true,
            "per-head q/k LayerNorms are not implemented",
        ),
        "cohere" => cfg.refuse_if("use_qk_norm", true, "q/k LayerNorms are not implemented"),
        "qwen2" | "qwen3" => cfg.refuse_if(
            "use_sliding_window",
            true,
            "windowed layers above max_window_layers are not implemented",
        ),
        _ => Ok(()),
    }
}

/// The norm `name` of this family: LayerNorm (with or without bias) or RMSNorm.
fn norm(model_type: &str, wts: &Weights, name: &str, eps: f64) -> Result<Norm> {
    match model_type {
        "starcoder2" | "stablelm" | "cohere" => Norm::layer(wts, name, eps),
        _ => Norm::rms(wts, name, eps, 0.0),
    }
}

fn layer(model_type: &str, cfg: Cfg, d: &Dims, wts: &Weights, i: usize) -> Result<Layer> {
    let attn = attention(model_type, cfg, d, wts, i)?;
    let mlp = mlp(model_type, cfg, wts)?;
    let nm = |name: &str| norm(model_type, wts, name, d.eps);
    let parallel = match model_type {
        "cohere" => true,
        "stablelm" => cfg.bool_or("use_parallel_residual", false),
        _ => false,
    };
    if parallel {
        return Ok(Layer::parallel(nm("input_layernorm")?, attn, mlp));
    }
    if model_type == "olmo2" {
        // Norms after each branch, none before.
        return Ok(Layer {
            attn_norm: None,
            mlp_norm: None,
            post_attn_norm: Some(nm("post_attention_layernorm")?),
            post_mlp_norm: Some(nm("post_feedforward_layernorm")?),
            parallel: false,
            residual_scale: 1.0,
            attn,
            mlp,
        });
    }
    let mut l = Layer::pre_norm(
        nm("input_layernorm")?,
        nm("post_attention_layernorm")?,
        attn,
        mlp,
    );
    if model_type == "granite" {
        l.residual_scale = cfg.f64_or(&["residual_multiplier"], 1.0);
    }
    Ok(l)
}

fn attention(model_type: &str, cfg: Cfg, d: &Dims, wts: &Weights, i: usize) -> Result<Attention> {
    let a = wts.at("self_attn.");
    let names = ["q_proj", "k_proj", "v_proj", "o_proj"];
    let mut attn = Attention::separate(&a, names, d.heads, d.kv_heads, d.head_dim)?;
    let rotary = (cfg.f64_or(&["partial_rotary_factor"], 1.0) * d.head_dim as f64) as usize;
    let interleaved = model_type == "cohere";
    let mut rope = Some(Rope::new(
        cfg,
        rotary,
        cfg.rope_theta(10000.0),
        interleaved,
    )?);
    match model_type {
        "qwen3" => {
            attn.q_norm = Some(QkNorm::PerHead(Norm::rms(&a, "q_norm", d.eps, 0.0)?));
            attn.k_norm = Some(QkNorm::PerHead(Norm::rms(&a, "k_norm", d.eps, 0.0)?));
        }
        "olmo2" => {
            attn.q_norm = Some(QkNorm::Whole(Norm::rms(&a, "q_norm", d.eps, 0.0)?));
            attn.k_norm = Some(QkNorm::Whole(Norm::rms(&a, "k_norm", d.eps, 0.0)?));
        }
        "granite" => attn.scale = cfg.f64_or(&["attention_multiplier"], attn.scale),
        "smollm3" => {
            // no_rope_layers[i] == 0: layer i has no rotary term.
            if let Some(flags) = cfg.0["no_rope_layers"].as_array() {
                if flags.get(i).and_then(|f| f.as_u64()) == Some(0) {
                    rope = None;
                }
            }
        }
        _ => {}
    }
    if matches!(model_type, "mistral" | "mixtral" | "starcoder2" | "smollm3") {
        if let Some(w) = cfg.opt_usize(&["sliding_window"]) {
            let on = model_type != "smollm3" || cfg.bool_or("use_sliding_window", false);
            if on {
                attn.mask = Mask::Sliding(w);
            }
        }
    }
    attn.rope = rope;
    Ok(attn)
}

fn mlp(model_type: &str, cfg: Cfg, wts: &Weights) -> Result<Mlp> {
    let act = Act::from_cfg(cfg, &["hidden_act", "hidden_activation"], "silu")?;
    match model_type {
        "starcoder2" => Ok(Mlp::Plain {
            up: linear(wts, "mlp.c_fc")?,
            down: linear(wts, "mlp.c_proj")?,
            act,
        }),
        "mixtral" => mixtral(cfg, wts, act),
        _ => Ok(Mlp::Gated {
            gate: linear(wts, "mlp.gate_proj")?,
            up: linear(wts, "mlp.up_proj")?,
            down: linear(wts, "mlp.down_proj")?,
            act,
        }),
    }
}

/// Mixtral's experts as transformers 4 saves them (`block_sparse_moe.experts.E.w1/w3/w2`) or as
/// transformers 5 does (`mlp.experts.gate_up_proj` `[E, 2I, H]` and `down_proj` `[E, H, I]`).
fn mixtral(cfg: Cfg, wts: &Weights, act: Act) -> Result<Mlp> {
    let n = cfg.usize(&["num_local_experts"])?;
    if n == 0 {
        bail!("config.json: num_local_experts is 0");
    }
    let top_k = cfg.usize(&["num_experts_per_tok"])?;
    let mut experts = Vec::with_capacity(n);
    if wts.has("block_sparse_moe.gate.weight") {
        let moe = wts.at("block_sparse_moe.");
        for e in 0..n {
            let x = moe.at(&format!("experts.{e}."));
            experts.push(Mlp::Gated {
                gate: linear(&x, "w1")?,
                up: linear(&x, "w3")?,
                down: linear(&x, "w2")?,
                act,
            });
        }
        let router = linear(&moe, "gate")?;
        return Ok(Mlp::Moe {
            router,
            experts,
            top_k,
        });
    }
    let gate_up = wts.get("mlp.experts.gate_up_proj")?;
    let down = wts.get("mlp.experts.down_proj")?;
    let inter = gate_up.dim(1)? / 2;
    for e in 0..n {
        let gu = gate_up.get(e)?;
        experts.push(Mlp::Gated {
            gate: Linear::new(gu.narrow(0, 0, inter)?.contiguous()?, None),
            up: Linear::new(gu.narrow(0, inter, inter)?.contiguous()?, None),
            down: Linear::new(down.get(e)?.contiguous()?, None),
            act,
        });
    }
    let router = linear(wts, "mlp.gate")?;
    Ok(Mlp::Moe {
        router,
        experts,
        top_k,
    })
}
