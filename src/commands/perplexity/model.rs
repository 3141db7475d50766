//! Loading a Hugging Face model directory for scoring: `config.json`, `tokenizer.json` and the
//! safetensors weights (sharded or not), mapped by `model_type` onto one of our forward passes
//! ([`super::net`]), run on the CPU in f32.
//!
//! Decoders score a window in one forward pass that yields every position's logits. Masked-LM
//! encoders score by pseudo-log-likelihood ([`Scoring::PseudoLogLikelihood`]). Multimodal
//! checkpoints (gemma3, llava) are scored by their text tower. Encoder-decoders are refused.

use super::net::{self, decoder::Decoder, encoder::Encoder, Cfg, Weights};
use super::window::log_prob;
use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The decoder `model_type`s [`LanguageModel::load`] runs (gemma3 and llava: the text tower).
pub const DECODER_TYPES: &[&str] = &[
    "gpt2",
    "gpt_bigcode",
    "bloom",
    "falcon",
    "gpt_neox",
    "gptj",
    "opt",
    "llama",
    "mistral",
    "mixtral",
    "qwen2",
    "qwen3",
    "gemma",
    "gemma2",
    "gemma3_text",
    "gemma3",
    "phi",
    "phi3",
    "stablelm",
    "olmo2",
    "cohere",
    "granite",
    "starcoder2",
    "smollm3",
    "llava",
];

/// The masked-LM encoder `model_type`s, scored by pseudo-log-likelihood.
pub const ENCODER_TYPES: &[&str] = &[
    "bert",
    "roberta",
    "xlm-roberta",
    "distilbert",
    "electra",
    "deberta-v2",
    "modernbert",
];

/// Encoder-decoder `model_type`s, refused with their own message.
pub const ENCODER_DECODER_TYPES: &[&str] = &[
    "t5",
    "mt5",
    "umt5",
    "longt5",
    "bart",
    "mbart",
    "m2m_100",
    "nllb-moe",
    "marian",
    "pegasus",
    "blenderbot",
    "whisper",
    "encoder-decoder",
];

/// How a model's figures are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scoring {
    /// Each token predicted from the tokens before it: bits per byte.
    Causal,
    /// Each token predicted with itself masked and every other token of its window visible:
    /// pseudo bits per byte, not comparable with causal figures.
    PseudoLogLikelihood,
}

/// A model ready to score text: its tokenizer, its BOS id and a forward pass.
pub struct LanguageModel {
    /// The model directory.
    pub dir: PathBuf,
    /// `model_type` from `config.json`.
    pub model_type: String,
    /// `bos_token_id` from `config.json` (or its `text_config`), if any; decoders only.
    pub bos: Option<u32>,
    /// Longest window the positions allow.
    pub max_positions: usize,
    /// Causal or pseudo-log-likelihood.
    pub scoring: Scoring,
    /// Encoders: the special tokens the tokenizer puts before and after a text.
    pub wrap: (Vec<u32>, Vec<u32>),
    /// Encoders: the mask token.
    pub mask: Option<u32>,
    tokenizer: tokenizers::Tokenizer,
    net: Net,
}

enum Net {
    Decoder(Decoder),
    Encoder(Encoder),
}

/// Every model type perplexity runs, decoders then encoders.
pub fn supported_model_types() -> Vec<&'static str> {
    DECODER_TYPES.iter().chain(ENCODER_TYPES).copied().collect()
}

impl LanguageModel {
    /// Loads `dir`. A `model_type` outside [`DECODER_TYPES`] and [`ENCODER_TYPES`] is an error
    /// naming it.
    pub fn load(dir: &Path) -> Result<LanguageModel> {
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path).map_err(|e| Error::io(&config_path, e))?;
        let config: Value = serde_json::from_str(&text)
            .map_err(|e| Error::bad_file(&config_path, format!("not valid JSON: {e}")))?;
        let model_type = config["model_type"].as_str().unwrap_or("").to_string();
        check_model_type(&config_path, &model_type)?;
        let tokenizer_path = dir.join("tokenizer.json");
        let tokenizer = crate::tokenizer::load_file(&tokenizer_path)?;
        let fail = |e: candle_core::Error| Error::Candle {
            path: dir.to_path_buf(),
            model_type: model_type.clone(),
            msg: e.to_string(),
        };
        let tensors = load_tensors(dir)?;
        let encoder = ENCODER_TYPES.contains(&model_type.as_str());
        let (net, text_config) = build_net(&model_type, &config, tensors).map_err(fail)?;
        let mut lm = LanguageModel {
            dir: dir.to_path_buf(),
            bos: None,
            max_positions: max_positions(&model_type, &text_config),
            scoring: Scoring::Causal,
            wrap: (Vec::new(), Vec::new()),
            mask: None,
            model_type,
            tokenizer,
            net,
        };
        if encoder {
            lm.scoring = Scoring::PseudoLogLikelihood;
            lm.wrap = special_wrap(&lm.tokenizer, &tokenizer_path)?;
            lm.mask = Some(mask_token(dir, &lm.tokenizer)?);
        } else {
            lm.bos = config["bos_token_id"]
                .as_u64()
                .or(text_config["bos_token_id"].as_u64())
                .map(|b| b as u32);
        }
        Ok(lm)
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

    /// Decoders: `ln p(ids[i + 1] | ids[..=i])` for every `i`, from one forward pass over
    /// `ids` (positions from 0). Returns `ids.len() - 1` values.
    pub fn window_log_probs(&mut self, ids: &[u32]) -> Result<Vec<f64>> {
        let result = match &self.net {
            Net::Decoder(d) if ids.len() >= 2 => d.forward(ids).and_then(|l| score_rows(&l, ids)),
            Net::Decoder(_) => Ok(Vec::new()),
            Net::Encoder(_) => Err(candle_core::Error::Msg(
                "a masked-LM encoder has no causal log-probabilities".into(),
            )),
        };
        result.map_err(|e| self.candle_error(e))
    }

    /// Decoders: the logits of every position of `ids`, `[ids.len(), vocab]`.
    pub fn logits(&self, ids: &[u32]) -> Result<Tensor> {
        match &self.net {
            Net::Decoder(d) => d.forward(ids).map_err(|e| self.candle_error(e)),
            Net::Encoder(_) => Err(Error::Model(format!(
                "{}: a masked-LM encoder has no causal logits",
                self.dir.display()
            ))),
        }
    }

    /// Encoders: `ln p(ids[p] | ids with p masked)` for each `p` in `scored`, the masked copies
    /// of the window run in batches.
    pub fn pseudo_log_probs(
        &mut self,
        ids: &[u32],
        scored: std::ops::Range<usize>,
    ) -> Result<Vec<f64>> {
        let (Net::Encoder(enc), Some(mask)) = (&self.net, self.mask) else {
            return Err(Error::Model(format!(
                "{}: pseudo-log-likelihood needs a masked-LM encoder",
                self.dir.display()
            )));
        };
        // Bounds the attention scores of one batch to about 2^26 values (256 MiB).
        let heads_t2 = (ids.len() * ids.len() * 16).max(1);
        let batch = ((1usize << 26) / heads_t2).clamp(1, 256);
        enc.pseudo_log_probs(ids, scored, mask, batch)
            .map_err(|e| self.candle_error(e))
    }

    fn candle_error(&self, e: candle_core::Error) -> Error {
        Error::Candle {
            path: self.dir.clone(),
            model_type: self.model_type.clone(),
            msg: e.to_string(),
        }
    }
}

fn check_model_type(config_path: &Path, model_type: &str) -> Result<()> {
    if ENCODER_DECODER_TYPES.contains(&model_type) {
        return Err(Error::EncoderDecoderModel {
            path: config_path.to_path_buf(),
            model_type: model_type.to_string(),
        });
    }
    if !DECODER_TYPES.contains(&model_type) && !ENCODER_TYPES.contains(&model_type) {
        return Err(Error::UnsupportedModel {
            path: config_path.to_path_buf(),
            model_type: model_type.to_string(),
            supported: supported_model_types().join(", "),
        });
    }
    Ok(())
}

/// The longest window: `max_position_embeddings` (or `n_positions`), less RoBERTa's offset of
/// `pad_token_id + 1`; unbounded for ALiBi models without the key.
fn max_positions(model_type: &str, cfg: &Value) -> usize {
    let n = cfg["max_position_embeddings"]
        .as_u64()
        .or(cfg["n_positions"].as_u64())
        .map_or(usize::MAX, |n| n as usize);
    match model_type {
        "roberta" | "xlm-roberta" => {
            let pad = cfg["pad_token_id"].as_u64().unwrap_or(1) as usize;
            n.saturating_sub(pad + 1)
        }
        _ => n,
    }
}

/// `ln p(ids[i + 1])` from row `i` of `logits`, row by row (f64 accumulation).
fn score_rows(logits: &Tensor, ids: &[u32]) -> candle_core::Result<Vec<f64>> {
    let mut out = Vec::with_capacity(ids.len() - 1);
    for (i, &target) in ids[1..].iter().enumerate() {
        let row: Vec<f32> = logits.get(i)?.to_dtype(DType::F32)?.to_vec1()?;
        out.push(log_prob(&row, target as usize));
    }
    Ok(out)
}

/// Builds the network; returns it with the config of the scored (text) model.
fn build_net(
    model_type: &str,
    config: &Value,
    tensors: HashMap<String, Tensor>,
) -> candle_core::Result<(Net, Value)> {
    if matches!(model_type, "gemma3" | "llava") {
        let mut text = config["text_config"].clone();
        if !text.is_object() {
            candle_core::bail!("config.json: {model_type} without a text_config");
        }
        if text["tie_word_embeddings"].is_null() && !config["tie_word_embeddings"].is_null() {
            text["tie_word_embeddings"] = config["tie_word_embeddings"].clone();
        }
        let inner = text["model_type"]
            .as_str()
            .unwrap_or(if model_type == "gemma3" {
                "gemma3_text"
            } else {
                "llama"
            })
            .to_string();
        if !DECODER_TYPES.contains(&inner.as_str()) || matches!(inner.as_str(), "gemma3" | "llava")
        {
            candle_core::bail!("text_config.model_type {inner:?} is not a decoder perplexity runs");
        }
        let (net, _) = build_net(&inner, &text, text_tower(tensors))?;
        return Ok((net, text));
    }
    let cfg = Cfg(config);
    let wts = Weights::new(tensors);
    let net = match model_type {
        t if net::llama::TYPES.contains(&t) => Net::Decoder(net::llama::build(t, cfg, &wts)?),
        t if net::gemma::TYPES.contains(&t) => Net::Decoder(net::gemma::build(t, cfg, &wts)?),
        t if net::phi::TYPES.contains(&t) => Net::Decoder(net::phi::build(t, cfg, &wts)?),
        t if net::gpt::TYPES.contains(&t) => Net::Decoder(net::gpt::build(t, cfg, &wts)?),
        "bloom" => Net::Decoder(net::bloom::build(cfg, &wts)?),
        "falcon" => Net::Decoder(net::falcon::build(cfg, &wts)?),
        t if net::bert::TYPES.contains(&t) => Net::Encoder(net::bert::build(t, cfg, &wts)?),
        "modernbert" => Net::Encoder(net::modernbert::build(cfg, &wts)?),
        other => candle_core::bail!("model_type {other} has no forward pass"),
    };
    Ok((net, config.clone()))
}

/// A multimodal checkpoint's language model under the plain names (`model.`, `lm_head.`):
/// transformers 4 saves `language_model.model.*` and `language_model.lm_head.*`, transformers 5
/// `model.language_model.*` and `lm_head.*`. Vision tensors are dropped.
fn text_tower(tensors: HashMap<String, Tensor>) -> HashMap<String, Tensor> {
    tensors
        .into_iter()
        .filter_map(|(name, t)| {
            let renamed = if let Some(rest) = name.strip_prefix("language_model.") {
                rest.to_string()
            } else if let Some(rest) = name.strip_prefix("model.language_model.") {
                format!("model.{rest}")
            } else if name.starts_with("lm_head.") {
                name
            } else {
                return None;
            };
            Some((renamed, t))
        })
        .collect()
}

/// The special tokens the tokenizer's post-processor puts before and after a text
/// (`[CLS]`/`[SEP]`, `<s>`/`</s>`), found by encoding a probe with and without them.
fn special_wrap(tok: &tokenizers::Tokenizer, path: &Path) -> Result<(Vec<u32>, Vec<u32>)> {
    let enc = |special: bool| -> Result<Vec<u32>> {
        tok.encode("a", special)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| Error::bad_file(path, format!("tokenizing failed: {e}")))
    };
    let (plain, wrapped) = (enc(false)?, enc(true)?);
    let at = wrapped
        .windows(plain.len().max(1))
        .position(|w| w == plain.as_slice())
        .unwrap_or(0);
    let after = (at + plain.len()).min(wrapped.len());
    Ok((wrapped[..at].to_vec(), wrapped[after..].to_vec()))
}

/// The mask token: `mask_token` of tokenizer_config.json, else an added `[MASK]` or `<mask>`.
fn mask_token(dir: &Path, tok: &tokenizers::Tokenizer) -> Result<u32> {
    let path = dir.join("tokenizer_config.json");
    let named = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| match &v["mask_token"] {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => o.get("content").and_then(|c| c.as_str()).map(String::from),
            _ => None,
        });
    let candidates = named.iter().map(String::as_str).chain(["[MASK]", "<mask>"]);
    for c in candidates {
        if let Some(id) = tok.token_to_id(c) {
            return Ok(id);
        }
    }
    Err(Error::bad_file(
        &path,
        "no mask token (no mask_token here and no [MASK] or <mask> in tokenizer.json); pseudo-log-likelihood needs one: set \"mask_token\"",
    ))
}

/// Every tensor of the checkpoint as f32 on the CPU.
pub(super) fn load_tensors(dir: &Path) -> Result<HashMap<String, Tensor>> {
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
