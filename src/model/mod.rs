//! Hugging Face model directories: finding them ([`hub`]), reading `config.json` ([`config`]),
//! mapping safetensors weights ([`safetensors`]), locating the vocabulary-sized tensors per
//! architecture ([`naming`]), reading a source/helper pair with its checks ([`pair`]), rewriting
//! a model's tensors ([`rewrite`]) and writing the output directory ([`writer`]: safetensors
//! shards, staging, temporary files). JSON files are [`crate::json`].

pub mod config;
pub mod hub;
pub mod naming;
pub mod pair;
pub mod rewrite;
pub mod safetensors;
pub mod writer;

pub use config::ModelConfig;
pub use naming::VocabTensors;
pub use safetensors::Weights;

use crate::error::Result;
use std::path::{Path, PathBuf};

/// Tokenizer files copied from the target tokenizer's directory when present.
pub const TOKENIZER_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "vocab.txt",
    "tokenizer.model",
    "spiece.model",
    "sentencepiece.bpe.model",
    "chat_template.jinja",
    "chat_template.json",
];

/// A model directory with its config and mapped weights.
#[derive(Debug)]
pub struct ModelDir {
    /// The directory.
    pub dir: PathBuf,
    /// Its config.json.
    pub config: ModelConfig,
    /// Its safetensors weights.
    pub weights: Weights,
}

impl ModelDir {
    /// Reads config.json and maps the weights of `dir` (headers only).
    pub fn open(dir: &Path) -> Result<ModelDir> {
        let config = ModelConfig::read(dir)?;
        let weights = Weights::open(dir)?;
        Ok(ModelDir {
            dir: dir.to_path_buf(),
            config,
            weights,
        })
    }
}
