//! The GPT lineage with its own tensor names: gpt2 and gpt_bigcode (learned positions, fused
//! `c_attn`), gptj (interleaved partial rotary, parallel residual), gpt_neox (per-head fused QKV,
//! partial rotary, parallel residual) and opt (learned positions offset by 2, ReLU).

use super::attention::{Attention, Rope};
use super::blocks::{conv1d, linear, split_per_head_qkv, split_rows, Act, Mlp, Norm};
use super::checkpoint::{Cfg, Weights};
use super::decoder::{head, Decoder, Layer};
use candle_core::{bail, Result};

/// The model types this module builds.
pub const TYPES: &[&str] = &["gpt2", "gpt_bigcode", "gptj", "gpt_neox", "opt"];

/// Builds `model_type` from `cfg` and the checkpoint's tensors.
pub fn build(model_type: &str, cfg: Cfg, wts: &Weights) -> Result<Decoder> {
    match model_type {
        "gpt2" | "gpt_bigcode" => gpt2(model_type, cfg, wts),
        "gptj" => gptj(cfg, wts),
        "gpt_neox" => gpt_neox(cfg, wts),
        "opt" => opt(cfg, wts),
        other => bail!("{other} is not a GPT-lineage model type"),
    }
}

fn gpt2(model_type: &str, cfg: Cfg, wts: &Weights) -> Result<Decoder> {
    cfg.refuse_if(
        "reorder_and_upcast_attn",
        true,
        "the reordered attention is not implemented",
    )?;
    let hidden = cfg.usize(&["n_embd"])?;
    let heads = cfg.usize(&["n_head"])?;
    let d = hidden / heads;
    let eps = cfg.f64_or(&["layer_norm_epsilon"], 1e-5);
    let act = Act::from_cfg(cfg, &["activation_function"], "gelu_new")?;
    let t = wts.at("transformer.");
    let bigcode = model_type == "gpt_bigcode";
    let mqa = bigcode && cfg.bool_or("multi_query", true);
    let kv = if mqa { 1 } else { heads };
    let proj = |l: &Weights, name: &str| {
        if bigcode {
            linear(l, name)
        } else {
            conv1d(l, name)
        }
    };
    let mut layers = Vec::new();
    for i in 0..cfg.usize(&["n_layer"])? {
        let l = t.at(&format!("h.{i}."));
        let fused = proj(&l, "attn.c_attn")?;
        let qkv = if bigcode && !mqa {
            split_per_head_qkv(&fused, heads, d)?
        } else {
            let parts = split_rows(&fused, &[hidden, kv * d, kv * d])?;
            [parts[0].clone(), parts[1].clone(), parts[2].clone()]
        };
        let mut attn = Attention::from_parts(qkv, proj(&l, "attn.c_proj")?, heads, kv, d);
        if !cfg.bool_or("scale_attn_weights", true) {
            attn.scale = 1.0;
        }
        if cfg.bool_or("scale_attn_by_inverse_layer_idx", false) {
            attn.scale /= (i + 1) as f64;
        }
        let mlp = Mlp::Plain {
            up: proj(&l, "mlp.c_fc")?,
            down: proj(&l, "mlp.c_proj")?,
            act,
        };
        let n1 = Norm::layer(&l, "ln_1", eps)?;
        layers.push(Layer::pre_norm(
            n1,
            Norm::layer(&l, "ln_2", eps)?,
            attn,
            mlp,
        ));
    }
    let embed = t.get("wte.weight")?;
    Ok(Decoder {
        positions: Some((t.get("wpe.weight")?, 0)),
        ..Decoder::new(
            head(
                wts.opt("lm_head.weight"),
                &embed,
                cfg.bool_or("tie_word_embeddings", true),
                None,
            ),
            embed,
            layers,
            Some(Norm::layer(&t, "ln_f", eps)?),
        )
    })
}

fn gptj(cfg: Cfg, wts: &Weights) -> Result<Decoder> {
    let hidden = cfg.usize(&["n_embd"])?;
    let heads = cfg.usize(&["n_head"])?;
    let d = hidden / heads;
    let eps = cfg.f64_or(&["layer_norm_epsilon"], 1e-5);
    let act = Act::from_cfg(cfg, &["activation_function"], "gelu_new")?;
    let rotary = cfg.opt_usize(&["rotary_dim"]).unwrap_or(d);
    let t = wts.at("transformer.");
    let mut layers = Vec::new();
    for i in 0..cfg.usize(&["n_layer"])? {
        let l = t.at(&format!("h.{i}."));
        let names = ["q_proj", "k_proj", "v_proj", "out_proj"];
        let mut attn = Attention::separate(&l.at("attn."), names, heads, heads, d)?;
        attn.rope = Some(Rope::plain(rotary, 10000.0, true));
        let mlp = Mlp::Plain {
            up: linear(&l, "mlp.fc_in")?,
            down: linear(&l, "mlp.fc_out")?,
            act,
        };
        layers.push(Layer::parallel(Norm::layer(&l, "ln_1", eps)?, attn, mlp));
    }
    let embed = t.get("wte.weight")?;
    let tied = cfg.bool_or("tie_word_embeddings", false);
    Ok(Decoder::new(
        head(
            wts.opt("lm_head.weight"),
            &embed,
            tied,
            wts.opt("lm_head.bias"),
        ),
        embed,
        layers,
        Some(Norm::layer(&t, "ln_f", eps)?),
    ))
}

fn gpt_neox(cfg: Cfg, wts: &Weights) -> Result<Decoder> {
    let hidden = cfg.usize(&["hidden_size"])?;
    let heads = cfg.usize(&["num_attention_heads"])?;
    let d = hidden / heads;
    let eps = cfg.f64_or(&["layer_norm_eps"], 1e-5);
    let act = Act::from_cfg(cfg, &["hidden_act"], "gelu")?;
    let pct = cfg.f64_or(&["partial_rotary_factor", "rotary_pct"], 1.0);
    let theta = cfg
        .opt_f64(&["rotary_emb_base"])
        .unwrap_or(cfg.rope_theta(10000.0));
    let parallel = cfg.bool_or("use_parallel_residual", true);
    let g = wts.at("gpt_neox.");
    let mut layers = Vec::new();
    for i in 0..cfg.usize(&["num_hidden_layers"])? {
        let l = g.at(&format!("layers.{i}."));
        let fused = linear(&l, "attention.query_key_value")?;
        let qkv = split_per_head_qkv(&fused, heads, d)?;
        let mut attn = Attention::from_parts(qkv, linear(&l, "attention.dense")?, heads, heads, d);
        attn.rope = Some(Rope::new(cfg, (pct * d as f64) as usize, theta, false)?);
        let mlp = Mlp::Plain {
            up: linear(&l, "mlp.dense_h_to_4h")?,
            down: linear(&l, "mlp.dense_4h_to_h")?,
            act,
        };
        let n1 = Norm::layer(&l, "input_layernorm", eps)?;
        let mut layer = Layer::pre_norm(
            n1,
            Norm::layer(&l, "post_attention_layernorm", eps)?,
            attn,
            mlp,
        );
        layer.parallel = parallel;
        layers.push(layer);
    }
    let embed = g.get("embed_in.weight")?;
    let tied = cfg.bool_or("tie_word_embeddings", false);
    Ok(Decoder::new(
        head(wts.opt("embed_out.weight"), &embed, tied, None),
        embed,
        layers,
        Some(Norm::layer(&g, "final_layer_norm", eps)?),
    ))
}

fn opt(cfg: Cfg, wts: &Weights) -> Result<Decoder> {
    cfg.refuse_if(
        "do_layer_norm_before",
        false,
        "post-norm OPT (opt-350m) is not implemented",
    )?;
    let hidden = cfg.usize(&["hidden_size"])?;
    if cfg.opt_usize(&["word_embed_proj_dim"]).unwrap_or(hidden) != hidden {
        bail!("config.json: word_embed_proj_dim differs from hidden_size; OPT's embedding projections are not implemented");
    }
    let heads = cfg.usize(&["num_attention_heads"])?;
    let d = hidden / heads;
    let act = Act::from_cfg(cfg, &["activation_function"], "relu")?;
    let dec = wts.at("model.decoder.");
    let mut layers = Vec::new();
    for i in 0..cfg.usize(&["num_hidden_layers"])? {
        let l = dec.at(&format!("layers.{i}."));
        let names = ["q_proj", "k_proj", "v_proj", "out_proj"];
        let attn = Attention::separate(&l.at("self_attn."), names, heads, heads, d)?;
        let mlp = Mlp::Plain {
            up: linear(&l, "fc1")?,
            down: linear(&l, "fc2")?,
            act,
        };
        let n1 = Norm::layer(&l, "self_attn_layer_norm", 1e-5)?;
        layers.push(Layer::pre_norm(
            n1,
            Norm::layer(&l, "final_layer_norm", 1e-5)?,
            attn,
            mlp,
        ));
    }
    let embed = dec.get("embed_tokens.weight")?;
    let final_norm = if dec.has("final_layer_norm.weight") {
        Some(Norm::layer(&dec, "final_layer_norm", 1e-5)?)
    } else {
        None
    };
    Ok(Decoder {
        positions: Some((dec.get("embed_positions.weight")?, 2)),
        ..Decoder::new(
            head(
                wts.opt("lm_head.weight"),
                &embed,
                cfg.bool_or("tie_word_embeddings", true),
                None,
            ),
            embed,
            layers,
            final_norm,
        )
    })
}
