//! A model directory opened: its config.json and its memory-mapped safetensors weights.

use crate::error::Result;
use crate::model::config::ModelConfig;
use crate::model::safetensors::Weights;
use std::path::{Path, PathBuf};

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
