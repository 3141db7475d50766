//! `config.json` of a Hugging Face model directory: kept as raw JSON (so unknown keys survive a
//! round trip) plus the few fields clp-gpu reads: `model_type`, the hidden size, the input
//! embedding's width (`embedding_size`, `word_embed_proj_dim`, else the hidden size) and whether the
//! word embeddings are tied (with each architecture's default when the key is absent).
//! Multimodal configs (Gemma 3, LLaVA, ...) keep the language model's fields in a nested
//! `text_config`; those are read from there when the top level lacks them.

use crate::error::{Error, Result};
use crate::json::read_json_object;
use crate::model::naming;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// Keys under which architectures store the width of the input embedding, in lookup order.
const HIDDEN_SIZE_KEYS: &[&str] = &["hidden_size", "n_embd", "d_model", "dim", "embedding_size"];

/// Keys of an embedding width that differs from the hidden size (ELECTRA/ALBERT, OPT-350m),
/// looked up before [`HIDDEN_SIZE_KEYS`].
const EMBEDDING_WIDTH_KEYS: &[&str] = &["embedding_size", "word_embed_proj_dim"];

/// Families whose embeddings compute position ids from `pad_token_id` (RoBERTa's
/// `create_position_ids_from_input_ids`, M2M100's sinusoidal positions).
const POSITIONS_FROM_PAD: &[&str] = &[
    "roberta",
    "xlm-roberta",
    "xlm-roberta-xl",
    "camembert",
    "roberta-prelayernorm",
    "data2vec-text",
    "longformer",
    "xmod",
    "ibert",
    "mpnet",
    "luke",
    "m2m_100",
    "nllb-moe",
];

/// Encoder-decoder families (they shift labels right with `pad_token_id`), for configs that
/// leave `is_encoder_decoder` to the class default.
const ENCODER_DECODERS: &[&str] = &[
    "t5",
    "mt5",
    "umt5",
    "longt5",
    "bart",
    "mbart",
    "marian",
    "m2m_100",
    "nllb-moe",
    "whisper",
    "pegasus",
    "pegasus_x",
    "plbart",
    "blenderbot",
    "blenderbot-small",
    "led",
    "fsmt",
    "switch_transformers",
    "bigbird_pegasus",
    "mvp",
    "prophetnet",
];

/// A parsed `config.json`.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    /// Where it was read from.
    pub path: PathBuf,
    /// The whole JSON object.
    pub raw: Map<String, Value>,
    /// `model_type`, if present.
    pub model_type: Option<String>,
    /// The hidden size, if one of the usual keys holds it.
    pub hidden_size: Option<usize>,
    /// The input embedding's width: `embedding_size`, `word_embed_proj_dim`, else the hidden
    /// size (with the key it was read from).
    pub embedding_width: Option<(usize, &'static str)>,
    /// `tie_word_embeddings`, or the architecture's default when absent.
    pub tie_word_embeddings: bool,
}

impl ModelConfig {
    /// Reads `dir/config.json`.
    pub fn read(dir: &Path) -> Result<ModelConfig> {
        let path = dir.join("config.json");
        let raw = read_json_object(
            &path,
            "config.json is required: copy it from the original model",
        )?;
        let text = raw.get("text_config").and_then(Value::as_object);
        // A key at the top level, else in text_config.
        let get = |k: &str| raw.get(k).or_else(|| text.and_then(|t| t.get(k)));
        let model_type = raw
            .get("model_type")
            .and_then(Value::as_str)
            .filter(|t| naming::is_text_model_type(t) || text.is_none())
            .or_else(|| {
                text.and_then(|t| t.get("model_type"))
                    .and_then(Value::as_str)
            })
            .or_else(|| raw.get("model_type").and_then(Value::as_str))
            .map(str::to_owned);
        let hidden_size = HIDDEN_SIZE_KEYS
            .iter()
            .find_map(|k| get(k).and_then(Value::as_u64))
            .and_then(|v| usize::try_from(v).ok());
        let embedding_width = EMBEDDING_WIDTH_KEYS
            .iter()
            .chain(HIDDEN_SIZE_KEYS)
            .find_map(|k| Some((usize::try_from(get(k)?.as_u64()?).ok()?, *k)));
        let tie_word_embeddings = match get("tie_word_embeddings") {
            Some(Value::Bool(b)) => *b,
            Some(Value::Null) | None => naming::tied_by_default(model_type.as_deref()),
            Some(other) => {
                return Err(Error::bad_file(
                    &path,
                    format!(
                        "`tie_word_embeddings` is {other}, expected true or false: fix the value"
                    ),
                ))
            }
        };
        Ok(ModelConfig {
            path,
            raw,
            model_type,
            hidden_size,
            embedding_width,
            tie_word_embeddings,
        })
    }

    /// The `model_type` (top level or `text_config`) when this family computes position ids
    /// from `pad_token_id` (positions start after the pad id, so moving the pad moves them).
    pub fn positions_from_pad(&self) -> Option<&str> {
        let text = self.raw.get("text_config").and_then(Value::as_object);
        [Some(&self.raw), text]
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("model_type")?.as_str())
            .find(|t| POSITIONS_FROM_PAD.contains(t))
    }

    /// Why a model of this config cannot run without a pad token (`None` when it can): the
    /// family computes position ids from `pad_token_id`, or it is an encoder-decoder (by
    /// `is_encoder_decoder` or its `model_type`), which shifts labels with it.
    pub fn pad_needed(&self) -> Option<String> {
        let text = self.raw.get("text_config").and_then(Value::as_object);
        let types: Vec<&str> = [Some(&self.raw), text]
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("model_type")?.as_str())
            .collect();
        if let Some(t) = types.iter().find(|t| POSITIONS_FROM_PAD.contains(t)) {
            return Some(format!("{t} computes position ids from the pad token"));
        }
        let enc_dec = self.raw.get("is_encoder_decoder").and_then(Value::as_bool);
        let t = types.first().copied().unwrap_or("this model");
        match enc_dec {
            Some(true) => Some(format!(
                "{t} is an encoder-decoder, which shifts labels with the pad token"
            )),
            Some(false) => None,
            None => types
                .iter()
                .find(|t| ENCODER_DECODERS.contains(t))
                .map(|t| {
                    format!("{t} is an encoder-decoder, which shifts labels with the pad token")
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_text_config_supplies_the_language_model_fields() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"model_type": "gemma3", "architectures": ["Gemma3ForConditionalGeneration"],
                "text_config": {"model_type": "gemma3_text", "hidden_size": 640,
                                 "vocab_size": 262208, "tie_word_embeddings": false}}"#,
        )
        .unwrap();
        let c = ModelConfig::read(dir.path()).unwrap();
        assert_eq!(c.model_type.as_deref(), Some("gemma3_text"));
        assert_eq!(c.hidden_size, Some(640));
        assert!(!c.tie_word_embeddings);
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"model_type": "llama", "hidden_size": 64, "text_config": {"hidden_size": 8}}"#,
        )
        .unwrap();
        let c = ModelConfig::read(dir.path()).unwrap();
        assert_eq!(
            (c.model_type.as_deref(), c.hidden_size),
            (Some("llama"), Some(64))
        );
        assert!(!c.tie_word_embeddings);
        assert_eq!(c.pad_needed(), None);
    }

    #[test]
    fn families_that_need_a_pad_token() {
        let dir = tempfile::tempdir().unwrap();
        let needs = |config: &str| {
            std::fs::write(dir.path().join("config.json"), config).unwrap();
            ModelConfig::read(dir.path()).unwrap().pad_needed()
        };
        assert!(needs(r#"{"model_type": "roberta"}"#)
            .unwrap()
            .contains("position ids"));
        assert!(needs(r#"{"model_type": "t5"}"#)
            .unwrap()
            .contains("encoder-decoder"));
        assert!(needs(r#"{"model_type": "x", "is_encoder_decoder": true}"#).is_some());
        assert_eq!(
            needs(r#"{"model_type": "llama", "is_encoder_decoder": false}"#),
            None
        );
        assert_eq!(
            needs(r#"{"model_type": "gemma3", "text_config": {"model_type": "gemma3_text"}}"#),
            None
        );
    }
}
