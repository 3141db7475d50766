//! Loading a Hugging Face model directory for scoring: `config.json`, `tokenizer.json` and the
//! safetensors weights (sharded or not), mapped by `model_type` onto a candle-transformers model
//! that runs on the CPU in f32.
//!
//! candle-transformers' causal-LM heads return the logits of the last position only. Where the
//! crate exposes the base model's hidden states (Qwen2, Qwen3) a window runs in one forward pass
//! and our own `lm_head` projects every position; for the other families a window runs one token
//! at a time through the model's KV cache, which gives the same log-probabilities (causal
//! attention) at the cost of matrix-vector products.
//!
//! Tied heads: when the config ties the embeddings (`tie_word_embeddings`, default true as in
//! transformers), `lm_head.weight` is taken from `model.embed_tokens.weight`, as transformers does.

use super::window::log_prob;
use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::{Linear, Module, VarBuilder};
use candle_transformers::models::{gemma, gemma2, gemma3, llama, mistral, phi, phi3, qwen2, qwen3};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The `model_type`s [`LanguageModel::load`] can run.
pub const SUPPORTED_MODEL_TYPES: &[&str] = &[
    "llama",
    "mistral",
    "qwen2",
    "qwen3",
    "gemma",
    "gemma2",
    "gemma3_text",
    "phi",
    "phi3",
];

/// A model ready to score text: its tokenizer, its BOS id and a candle network.
pub struct LanguageModel {
    /// The model directory.
    pub dir: PathBuf,
    /// `model_type` from `config.json`.
    pub model_type: String,
    /// `bos_token_id` from `config.json`, if any.
    pub bos: Option<u32>,
    /// `max_position_embeddings` (or `n_positions`).
    pub max_positions: usize,
    tokenizer: tokenizers::Tokenizer,
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
    Qwen2 {
        model: qwen2::Model,
        lm_head: Linear,
    },
    // Qwen3's base model has no public cache reset: it is rebuilt (cheaply, the tensors are
    // shared) for every window.
    Qwen3 {
        config: qwen3::Config,
        vb: VarBuilder<'static>,
        lm_head: Linear,
    },
}

impl LanguageModel {
    /// Loads `dir`. A `model_type` outside [`SUPPORTED_MODEL_TYPES`] is an error naming it.
    pub fn load(dir: &Path) -> Result<LanguageModel> {
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path).map_err(|e| Error::io(&config_path, e))?;
        let config: Value = serde_json::from_str(&text)
            .map_err(|e| Error::bad_file(&config_path, format!("not valid JSON: {e}")))?;
        let model_type = config["model_type"].as_str().unwrap_or("").to_string();
        if !SUPPORTED_MODEL_TYPES.contains(&model_type.as_str()) {
            return Err(Error::UnsupportedModel {
                path: config_path,
                model_type,
                supported: SUPPORTED_MODEL_TYPES.join(", "),
            });
        }
        let tokenizer_path = dir.join("tokenizer.json");
        let tokenizer = tokenizers::Tokenizer::from_file(&tokenizer_path).map_err(|e| {
            Error::bad_file(&tokenizer_path, format!("cannot load the tokenizer: {e}"))
        })?;
        let bos = config["bos_token_id"].as_u64().map(|b| b as u32);
        let max_positions = config["max_position_embeddings"]
            .as_u64()
            .or(config["n_positions"].as_u64())
            .unwrap_or(u64::MAX) as usize;
        let fail = |e: candle_core::Error| Error::Candle {
            path: dir.to_path_buf(),
            model_type: model_type.clone(),
            msg: e.to_string(),
        };
        let tied = config["tie_word_embeddings"].as_bool().unwrap_or(true);
        let tensors = load_tensors(dir, tied)?;
        let net = build_net(&model_type, &config, tied, tensors).map_err(fail)?;
        Ok(LanguageModel {
            dir: dir.to_path_buf(),
            model_type,
            bos,
            max_positions,
            tokenizer,
            net,
        })
    }

    /// The ids of `text` under the model's tokenizer, without special tokens.
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.tokenizer.encode(text, false).map_err(|e| {
            Error::Model(format!(
                "{}: tokenizing failed: {e}",
                self.dir.join("tokenizer.json").display()
            ))
        })?;
        Ok(enc.get_ids().to_vec())
    }

    /// `ln p(ids[i + 1] | ids[..=i])` for every `i`, from one fresh run over `ids` (positions
    /// from 0). Returns `ids.len() - 1` values.
    pub fn window_log_probs(&mut self, ids: &[u32]) -> Result<Vec<f64>> {
        let result = self.run_window(ids);
        result.map_err(|e| Error::Candle {
            path: self.dir.clone(),
            model_type: self.model_type.clone(),
            msg: e.to_string(),
        })
    }

    fn run_window(&mut self, ids: &[u32]) -> candle_core::Result<Vec<f64>> {
        if ids.len() < 2 {
            return Ok(Vec::new());
        }
        let dev = Device::Cpu;
        if let Some(rows) = self.full_logits(ids)? {
            return Ok(score_rows(&rows, ids));
        }
        self.reset_cache()?;
        let mut out = Vec::with_capacity(ids.len() - 1);
        for (pos, pair) in ids.windows(2).enumerate() {
            let input = Tensor::new(&pair[..1], &dev)?.unsqueeze(0)?;
            let logits = self.step(&input, pos)?;
            let row: Vec<f32> = logits.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?;
            out.push(log_prob(&row, pair[1] as usize));
        }
        Ok(out)
    }

    /// Logits of every position in one pass, for the families that expose hidden states.
    fn full_logits(&mut self, ids: &[u32]) -> candle_core::Result<Option<Vec<Vec<f32>>>> {
        let input = Tensor::new(ids, &Device::Cpu)?.unsqueeze(0)?;
        let hidden = match &mut self.net {
            Net::Qwen2 { model, lm_head } => {
                model.clear_kv_cache();
                lm_head.forward(&model.forward(&input, 0, None)?)?
            }
            Net::Qwen3 {
                config,
                vb,
                lm_head,
            } => {
                let mut model = qwen3::Model::new(config, vb.clone())?;
                lm_head.forward(&model.forward(&input, 0)?)?
            }
            _ => return Ok(None),
        };
        Ok(Some(hidden.squeeze(0)?.to_dtype(DType::F32)?.to_vec2()?))
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
            Net::Qwen2 { .. } | Net::Qwen3 { .. } => {}
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
            Net::Qwen2 { .. } | Net::Qwen3 { .. } => {
                candle_core::bail!("qwen runs whole windows")
            }
        }
    }
}

fn score_rows(rows: &[Vec<f32>], ids: &[u32]) -> Vec<f64> {
    ids[1..]
        .iter()
        .zip(rows)
        .map(|(&target, row)| log_prob(row, target as usize))
        .collect()
}

/// Every tensor of the checkpoint as f32 on the CPU; with tied embeddings, `lm_head.weight` is
/// the input embedding.
fn load_tensors(dir: &Path, tied: bool) -> Result<HashMap<String, Tensor>> {
    let mut tensors = HashMap::new();
    for path in safetensors_files(dir)? {
        let part = candle_core::safetensors::load(&path, &Device::Cpu)
            .map_err(|e| Error::bad_file(&path, format!("cannot read safetensors: {e}")))?;
        for (name, t) in part {
            let t = t
                .to_dtype(DType::F32)
                .map_err(|e| Error::bad_file(&path, format!("{name}: {e}")))?;
            tensors.insert(name, t);
        }
    }
    if tied {
        if let Some(embed) = tensors.get("model.embed_tokens.weight").cloned() {
            tensors.insert("lm_head.weight".to_string(), embed);
        }
    }
    Ok(tensors)
}

fn safetensors_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let text = std::fs::read_to_string(&index).map_err(|e| Error::io(&index, e))?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| Error::bad_file(&index, format!("not valid JSON: {e}")))?;
        let mut files: Vec<PathBuf> = v["weight_map"]
            .as_object()
            .ok_or_else(|| Error::bad_file(&index, "no \"weight_map\" object"))?
            .values()
            .filter_map(|f| f.as_str().map(|f| dir.join(f)))
            .collect();
        files.sort();
        files.dedup();
        return Ok(files);
    }
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    Err(Error::bad_file(
        dir,
        "no model.safetensors or model.safetensors.index.json; perplexity reads safetensors checkpoints only",
    ))
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
    let head = |name: &str| tensors.get(name).cloned();
    let lm_head = head("lm_head.weight").map(|w| Linear::new(w, None));
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
        "qwen2" => {
            if cfg["sliding_window"].is_null() {
                cfg["sliding_window"] = cfg["max_position_embeddings"].clone();
            }
            let lm_head =
                lm_head.ok_or_else(|| candle_core::Error::Msg("no lm_head.weight".into()))?;
            Net::Qwen2 {
                model: qwen2::Model::new(&parse(cfg)?, vb)?,
                lm_head,
            }
        }
        "qwen3" => {
            let config: qwen3::Config = parse(cfg)?;
            qwen3::Model::new(&config, vb.clone())?;
            let lm_head =
                lm_head.ok_or_else(|| candle_core::Error::Msg("no lm_head.weight".into()))?;
            Net::Qwen3 {
                config,
                vb,
                lm_head,
            }
        }
        other => candle_core::bail!("model_type {other} has no candle mapping"),
    })
}

/// candle's Llama, Qwen2, Phi and Phi-3 derive the head size as hidden / heads; a config whose
/// `head_dim` differs would run with wrong shapes, so it is refused.
fn check_head_dim(cfg: &Value) -> candle_core::Result<()> {
    let get = |k: &str| cfg[k].as_u64();
    if let (Some(h), Some(n), Some(d)) = (
        get("hidden_size"),
        get("num_attention_heads"),
        get("head_dim"),
    ) {
        let derives = matches!(
            cfg["model_type"].as_str(),
            Some("llama" | "qwen2" | "phi" | "phi3")
        );
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
