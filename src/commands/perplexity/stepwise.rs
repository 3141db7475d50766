//! The token-by-token path, kept to check and time the one-pass forward passes: a window runs
//! one token at a time through a candle-transformers model's KV cache (its causal-LM heads return
//! the last position only). Only the families candle-transformers has: llama, mistral, gemma,
//! gemma2, gemma3_text, phi and phi3.
//!
//! Tied heads: when the config ties the embeddings (`tie_word_embeddings`, default true as in
//! transformers), `lm_head.weight` is taken from `model.embed_tokens.weight`.

use super::model::load_tensors;
use super::window::log_prob;
use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::{gemma, gemma2, gemma3, llama, mistral, phi, phi3};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The `model_type`s [`Stepwise::load`] can run.
pub const TYPES: &[&str] = &[
    "llama",
    "mistral",
    "gemma",
    "gemma2",
    "gemma3_text",
    "phi",
    "phi3",
];

/// A candle-transformers model scored through its KV cache.
pub struct Stepwise {
    dir: PathBuf,
    model_type: String,
    net: Net,
}

enum Net {
    Llama {
        model: llama::Llama,
        config: llama::Config,
        cache: llama::Cache,
    },
    Mistral(mistral::Model),
    Gemma(gemma::Model),
    Gemma2(gemma2::Model),
    Gemma3(gemma3::Model),
    Phi(phi::Model),
    Phi3(phi3::Model),
}

impl Stepwise {
    /// Loads `dir` (a `model_type` of [`TYPES`]).
    pub fn load(dir: &Path) -> Result<Stepwise> {
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path).map_err(|e| Error::io(&config_path, e))?;
        let config: Value = serde_json::from_str(&text)
            .map_err(|e| Error::bad_file(&config_path, format!("not valid JSON: {e}")))?;
        let model_type = config["model_type"].as_str().unwrap_or("").to_string();
        if !TYPES.contains(&model_type.as_str()) {
            return Err(Error::UnsupportedModel {
                path: config_path,
                model_type,
                supported: TYPES.join(", "),
            });
        }
        let tied = config["tie_word_embeddings"].as_bool().unwrap_or(true);
        let mut tensors = load_tensors(dir)?;
        if tied {
            if let Some(embed) = tensors.get("model.embed_tokens.weight").cloned() {
                tensors.insert("lm_head.weight".to_string(), embed);
            }
        }
        let net = build_net(&model_type, &config, tied, tensors).map_err(|e| Error::Candle {
            path: dir.to_path_buf(),
            model_type: model_type.clone(),
            msg: e.to_string(),
        })?;
        Ok(Stepwise {
            dir: dir.to_path_buf(),
            model_type,
            net,
        })
    }

    /// `ln p(ids[i + 1] | ids[..=i])` for every `i`, one token at a time from an empty cache.
    pub fn window_log_probs(&mut self, ids: &[u32]) -> Result<Vec<f64>> {
        let result = self.run_window(ids);
        result.map_err(|e| Error::Candle {
            path: self.dir.clone(),
            model_type: self.model_type.clone(),
            msg: e.to_string(),
        })
    }

    fn run_window(&mut self, ids: &[u32]) -> candle_core::Result<Vec<f64>> {
        self.reset_cache()?;
        let mut out = Vec::with_capacity(ids.len().saturating_sub(1));
        for (pos, pair) in ids.windows(2).enumerate() {
            let input = Tensor::new(&pair[..1], &Device::Cpu)?.unsqueeze(0)?;
            let logits = self.step(&input, pos)?;
            let row: Vec<f32> = logits.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?;
            out.push(log_prob(&row, pair[1] as usize));
        }
        Ok(out)
    }

    fn reset_cache(&mut self) -> candle_core::Result<()> {
        match &mut self.net {
            Net::Llama { config, cache, .. } => {
                *cache = llama::Cache::new(true, DType::F32, config, &Device::Cpu)?
            }
            Net::Mistral(m) => m.clear_kv_cache(),
            Net::Gemma(m) => m.clear_kv_cache(),
            Net::Gemma2(m) => m.clear_kv_cache(),
            Net::Gemma3(m) => m.clear_kv_cache(),
            Net::Phi(m) => m.clear_kv_cache(),
            Net::Phi3(m) => m.clear_kv_cache(),
        }
        Ok(())
    }

    /// Logits after feeding one token at position `pos` (the cache holds positions `..pos`).
    fn step(&mut self, input: &Tensor, pos: usize) -> candle_core::Result<Tensor> {
        match &mut self.net {
            Net::Llama { model, cache, .. } => model.forward(input, pos, cache),
            Net::Mistral(m) => m.forward(input, pos),
            Net::Gemma(m) => m.forward(input, pos),
            Net::Gemma2(m) => m.forward(input, pos),
            Net::Gemma3(m) => m.forward(input, pos),
            Net::Phi(m) => m.forward(input),
            Net::Phi3(m) => m.forward(input, pos),
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(config: Value) -> candle_core::Result<T> {
    serde_json::from_value(config).map_err(|e| candle_core::Error::Msg(format!("config.json: {e}")))
}

fn build_net(
    model_type: &str,
    config: &Value,
    tied: bool,
    tensors: HashMap<String, Tensor>,
) -> candle_core::Result<Net> {
    let dev = Device::Cpu;
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &dev);
    let mut cfg = config.clone();
    cfg["tie_word_embeddings"] = json!(tied);
    check_head_dim(&cfg)?;
    check_attention_scale(&cfg)?;
    Ok(match model_type {
        "llama" => {
            let config = parse::<llama::LlamaConfig>(cfg)?.into_config(false);
            let cache = llama::Cache::new(true, DType::F32, &config, &dev)?;
            Net::Llama {
                model: llama::Llama::load(vb, &config)?,
                config,
                cache,
            }
        }
        "mistral" => Net::Mistral(mistral::Model::new(&parse(cfg)?, vb)?),
        "gemma" => Net::Gemma(gemma::Model::new(false, &parse(cfg)?, vb)?),
        "gemma2" => Net::Gemma2(gemma2::Model::new(false, &parse(cfg)?, vb)?),
        "gemma3_text" => Net::Gemma3(gemma3::Model::new(false, &parse(gemma3_config(cfg)?)?, vb)?),
        "phi" => Net::Phi(phi::Model::new(&parse(cfg)?, vb)?),
        "phi3" => Net::Phi3(phi3::Model::new(&parse(cfg)?, vb)?),
        other => candle_core::bail!("model_type {other} has no candle mapping"),
    })
}

/// candle's Llama, Phi and Phi-3 derive the head size as hidden / heads; a config whose
/// `head_dim` differs would run with wrong shapes, so it is refused.
fn check_head_dim(cfg: &Value) -> candle_core::Result<()> {
    let get = |k: &str| cfg[k].as_u64();
    if let (Some(h), Some(n), Some(d)) = (
        get("hidden_size"),
        get("num_attention_heads"),
        get("head_dim"),
    ) {
        let derives = matches!(cfg["model_type"].as_str(), Some("llama" | "phi" | "phi3"));
        if derives && h / n != d {
            candle_core::bail!(
                "head_dim {d} differs from hidden_size / num_attention_heads = {}; candle's model of this family cannot run it",
                h / n
            );
        }
    }
    Ok(())
}

/// candle's gemma2 and gemma3 scale attention by 1/sqrt(head_dim), transformers by
/// 1/sqrt(query_pre_attn_scalar): a config where they differ is refused rather than run wrong.
fn check_attention_scale(cfg: &Value) -> candle_core::Result<()> {
    let (scalar, head_dim) = (
        cfg["query_pre_attn_scalar"].as_u64(),
        cfg["head_dim"].as_u64(),
    );
    if let (Some(s), Some(d)) = (scalar, head_dim) {
        if s != d {
            candle_core::bail!(
                "query_pre_attn_scalar {s} differs from head_dim {d}; candle scales attention by head_dim, so this checkpoint cannot run here"
            );
        }
    }
    Ok(())
}

/// Gemma 3: candle takes a `sliding_window_pattern` (every n-th layer global) and no rope
/// scaling; both are checked against what transformers would run.
fn gemma3_config(mut cfg: Value) -> candle_core::Result<Value> {
    if !cfg["rope_scaling"].is_null() {
        candle_core::bail!("rope_scaling is set; candle's gemma3 runs unscaled rotary only");
    }
    let pattern = cfg["sliding_window_pattern"]
        .as_u64()
        .or(cfg["_sliding_window_pattern"].as_u64())
        .unwrap_or(6);
    if let Some(types) = cfg["layer_types"].as_array() {
        for (i, t) in types.iter().enumerate() {
            let sliding = !(i as u64 + 1).is_multiple_of(pattern);
            if (t.as_str() == Some("sliding_attention")) != sliding {
                candle_core::bail!(
                    "layer_types differ from a sliding_window_pattern of {pattern} at layer {i}; candle's gemma3 cannot run this layout"
                );
            }
        }
    }
    cfg["sliding_window_pattern"] = json!(pattern);
    Ok(cfg)
}
