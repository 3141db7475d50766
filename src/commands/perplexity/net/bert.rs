//! BERT and its descendants with post-norm layers: bert, roberta, xlm-roberta, distilbert,
//! electra (the generator, `ElectraForMaskedLM`) and deberta-v2 without relative attention.
//! Each names its embeddings, layers and MLM head differently; the computation is shared.

use super::attention::{Attention, Mask};
use super::blocks::{linear, Act, Mlp, Norm};
use super::checkpoint::{Cfg, Weights};
use super::encoder::{Encoder, EncoderLayer, Positions};
use candle_core::{bail, Result};
use candle_nn::Linear;

/// The model types this module builds.
pub const TYPES: &[&str] = &[
    "bert",
    "roberta",
    "xlm-roberta",
    "distilbert",
    "electra",
    "deberta-v2",
];

/// The tensor names of one family.
struct Names {
    base: &'static str,
    layer: &'static str,
    attn: [&'static str; 4],
    attn_norm: &'static str,
    mlp: [&'static str; 2],
    mlp_norm: &'static str,
}

const BERT: Names = Names {
    base: "bert.",
    layer: "encoder.layer.",
    attn: [
        "attention.self.query",
        "attention.self.key",
        "attention.self.value",
        "attention.output.dense",
    ],
    attn_norm: "attention.output.LayerNorm",
    mlp: ["intermediate.dense", "output.dense"],
    mlp_norm: "output.LayerNorm",
};

fn names(model_type: &str) -> Names {
    match model_type {
        "roberta" | "xlm-roberta" => Names {
            base: "roberta.",
            ..BERT
        },
        "electra" => Names {
            base: "electra.",
            ..BERT
        },
        "deberta-v2" => Names {
            base: "deberta.",
            attn: [
                "attention.self.query_proj",
                "attention.self.key_proj",
                "attention.self.value_proj",
                "attention.output.dense",
            ],
            ..BERT
        },
        "distilbert" => Names {
            base: "distilbert.",
            layer: "transformer.layer.",
            attn: [
                "attention.q_lin",
                "attention.k_lin",
                "attention.v_lin",
                "attention.out_lin",
            ],
            attn_norm: "sa_layer_norm",
            mlp: ["ffn.lin1", "ffn.lin2"],
            mlp_norm: "output_layer_norm",
        },
        _ => BERT,
    }
}

/// Builds `model_type` from `cfg` and the checkpoint's tensors.
pub fn build(model_type: &str, cfg: Cfg, wts: &Weights) -> Result<Encoder> {
    if model_type == "deberta-v2" {
        cfg.refuse_if(
            "relative_attention",
            true,
            "DeBERTa's disentangled (relative) attention is not implemented",
        )?;
        if cfg.opt_usize(&["conv_kernel_size"]).unwrap_or(0) > 0 {
            bail!(
                "config.json: conv_kernel_size > 0; DeBERTa's convolution layer is not implemented"
            );
        }
    }
    if cfg
        .str("position_embedding_type")
        .is_some_and(|p| p != "absolute")
    {
        bail!("config.json: position_embedding_type is not \"absolute\"; relative position embeddings are not implemented");
    }
    let distil = model_type == "distilbert";
    let n = names(model_type);
    let base = wts.at(n.base);
    let hidden = cfg.usize(&["hidden_size", "dim"])?;
    let heads = cfg.usize(&["num_attention_heads", "n_heads"])?;
    let eps = if distil {
        1e-12
    } else {
        cfg.f64_or(&["layer_norm_eps"], 1e-12)
    };
    let act = Act::from_cfg(cfg, &["hidden_act", "activation"], "gelu")?;
    let mut layers = Vec::new();
    for i in 0..cfg.usize(&["num_hidden_layers", "n_layers"])? {
        let l = base.at(&format!("{}{i}.", n.layer));
        let mut attn = Attention::separate(&l, n.attn, heads, heads, hidden / heads)?;
        attn.mask = Mask::Bidirectional;
        layers.push(EncoderLayer::PostNorm {
            attn,
            attn_norm: Norm::layer(&l, n.attn_norm, eps)?,
            mlp: Mlp::Plain {
                up: linear(&l, n.mlp[0])?,
                down: linear(&l, n.mlp[1])?,
                act,
            },
            mlp_norm: Norm::layer(&l, n.mlp_norm, eps)?,
        });
    }
    let e = base.at("embeddings.");
    let embed = e.get("word_embeddings.weight")?;
    let positions = match (model_type, e.opt("position_embeddings.weight")) {
        (_, None) => None,
        ("roberta" | "xlm-roberta", Some(t)) => {
            Some((t, Positions::AfterPad(cfg.usize(&["pad_token_id"])? as u32)))
        }
        (_, Some(t)) => Some((t, Positions::FromZero)),
    };
    if model_type == "deberta-v2" && !cfg.bool_or("position_biased_input", true) {
        bail!("config.json: position_biased_input is false; DeBERTa without input positions needs relative attention, which is not implemented");
    }
    let (head_dense, head_act, head_norm, bias) = head(model_type, wts, eps, act)?;
    Ok(Encoder {
        decoder: Linear::new(embed.clone(), Some(bias)),
        embed,
        positions,
        token_type: match e.opt("token_type_embeddings.weight") {
            Some(t) => Some(t.narrow(0, 0, 1)?),
            None => None,
        },
        embed_proj_before_norm: match e.has("embed_proj.weight") {
            true => Some(linear(&e, "embed_proj")?),
            false => None,
        },
        embed_norm: Some(Norm::layer(&e, "LayerNorm", eps)?),
        embed_proj: match base.has("embeddings_project.weight") {
            true => Some(linear(&base, "embeddings_project")?),
            false => None,
        },
        layers,
        final_norm: None,
        head_dense,
        head_act,
        head_norm,
    })
}

/// The MLM head: dense, activation, norm, and the vocabulary bias.
fn head(
    model_type: &str,
    wts: &Weights,
    eps: f64,
    act: Act,
) -> Result<(Linear, Act, Norm, candle_core::Tensor)> {
    let (prefix, dense, norm, bias) = match model_type {
        "roberta" | "xlm-roberta" => ("lm_head.", "dense", "layer_norm", "bias"),
        "distilbert" => (
            "",
            "vocab_transform",
            "vocab_layer_norm",
            "vocab_projector.bias",
        ),
        "electra" => (
            "",
            "generator_predictions.dense",
            "generator_predictions.LayerNorm",
            "generator_lm_head.bias",
        ),
        _ => {
            let p = wts
                .find_prefix(&["cls.predictions.", "lm_predictions.lm_head."], "bias")
                .unwrap_or("cls.predictions.");
            let dense = if p == "cls.predictions." {
                "transform.dense"
            } else {
                "dense"
            };
            let norm = if p == "cls.predictions." {
                "transform.LayerNorm"
            } else {
                "LayerNorm"
            };
            (p, dense, norm, "bias")
        }
    };
    let h = wts.at(prefix);
    // RoBERTa's head and ELECTRA's generator use exact GELU whatever hidden_act says.
    let act = match model_type {
        "roberta" | "xlm-roberta" | "electra" => Act::Gelu,
        _ => act,
    };
    Ok((
        linear(&h, dense)?,
        act,
        Norm::layer(&h, norm, eps)?,
        h.get(bias)?,
    ))
}
