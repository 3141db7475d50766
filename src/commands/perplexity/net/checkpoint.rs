//! What every family module reads: a checkpoint's tensors ([`Weights`]) and its config
//! ([`Cfg`]); a sibling of the families, so that none imports its parent `net`.

use candle_core::{bail, Result, Tensor};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// A checkpoint's tensors (f32, CPU) under a name prefix.
pub struct Weights {
    map: Arc<HashMap<String, Tensor>>,
    prefix: String,
}

impl Weights {
    /// All tensors, no prefix.
    pub fn new(map: HashMap<String, Tensor>) -> Weights {
        Weights {
            map: Arc::new(map),
            prefix: String::new(),
        }
    }

    /// The same tensors seen under `prefix` (`"model.layers.0."`); names given later are
    /// relative to it.
    pub fn at(&self, prefix: &str) -> Weights {
        Weights {
            map: self.map.clone(),
            prefix: format!("{}{prefix}", self.prefix),
        }
    }

    /// Whether `name` exists.
    pub fn has(&self, name: &str) -> bool {
        self.map.contains_key(&format!("{}{name}", self.prefix))
    }

    /// The tensor `name`, or an error naming it.
    pub fn get(&self, name: &str) -> Result<Tensor> {
        let full = format!("{}{name}", self.prefix);
        match self.map.get(&full) {
            Some(t) => Ok(t.clone()),
            None => bail!("no tensor {full} in the checkpoint"),
        }
    }

    /// The tensor `name` if present (biases, optional norms).
    pub fn opt(&self, name: &str) -> Option<Tensor> {
        self.map.get(&format!("{}{name}", self.prefix)).cloned()
    }

    /// The first prefix among `candidates` under which `name` exists.
    pub fn find_prefix<'a>(&self, candidates: &[&'a str], name: &str) -> Option<&'a str> {
        candidates
            .iter()
            .copied()
            .find(|p| self.map.contains_key(&format!("{}{p}{name}", self.prefix)))
    }
}

/// Typed reads of `config.json` keys, with errors that name the key.
#[derive(Clone, Copy)]
pub struct Cfg<'a>(pub &'a Value);

impl Cfg<'_> {
    /// An unsigned integer key, trying each alias in turn.
    pub fn usize(&self, keys: &[&str]) -> Result<usize> {
        self.opt_usize(keys).ok_or_else(|| {
            candle_core::Error::Msg(format!("config.json: no integer {}", keys.join(" / ")))
        })
    }
    /// An optional unsigned integer key.
    pub fn opt_usize(&self, keys: &[&str]) -> Option<usize> {
        keys.iter()
            .find_map(|k| self.0[*k].as_u64())
            .map(|v| v as usize)
    }
    /// A number key, trying each alias in turn.
    pub fn opt_f64(&self, keys: &[&str]) -> Option<f64> {
        keys.iter().find_map(|k| self.0[*k].as_f64())
    }
    /// A number key with a default.
    pub fn f64_or(&self, keys: &[&str], default: f64) -> f64 {
        self.opt_f64(keys).unwrap_or(default)
    }
    /// A boolean key with a default.
    pub fn bool_or(&self, key: &str, default: bool) -> bool {
        self.0[key].as_bool().unwrap_or(default)
    }
    /// A string key.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.0[key].as_str()
    }
    /// `head_dim`, or hidden / heads when absent or null.
    pub fn head_dim(&self, hidden: usize, heads: usize) -> usize {
        self.opt_usize(&["head_dim"]).unwrap_or(hidden / heads)
    }
    /// Refuses a checkpoint whose boolean `key` is `value`, saying why.
    pub fn refuse_if(&self, key: &str, value: bool, why: &str) -> Result<()> {
        if self.0[key].as_bool() == Some(value) {
            bail!("config.json: {key} is {value}, {why}");
        }
        Ok(())
    }
    /// The rotary base: `rope_theta`, or `rope_parameters.rope_theta` (transformers 5).
    pub fn rope_theta(&self, default: f64) -> f64 {
        self.opt_f64(&["rope_theta"])
            .or(self.0["rope_parameters"]["rope_theta"].as_f64())
            .unwrap_or(default)
    }
}
