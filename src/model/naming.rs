//! Which tensors of a checkpoint are indexed by the vocabulary, for any architecture.
//!
//! The rule: the **input embedding** is found by name (`embed_tokens`, `wte`,
//! `word_embeddings`, `embed_in`, `tok_embeddings`, `token_embedding`, `shared`, under any
//! prefix, so multimodal towers such as `model.language_model.` and encoder-decoders need no
//! entry here), else by shape (the one 2-D tensor with at least one row per token and the
//! config's embedding width). Its rows `V` define the vocabulary dimension: every other tensor
//! of shape `[V, w]`, `[V]` or `[1, V]` is vocabulary-indexed and rebuilt along that dimension
//! ([`Layout`]). Names then decide the role and anchor ambiguous cases:
//! - another input-embedding name of the same shape is a tied copy (`shared.weight`,
//!   `encoder.embed_tokens.weight`, `decoder.embed_tokens.weight`), rebuilt identically; the same
//!   name with and without a base-model prefix is a duplicate and refused;
//! - a head name (`lm_head`, `embed_out`, `vocab_projector`, `predictions`, `decoder`,
//!   `proj_out`, `output`, ...) makes a 2-D tensor the output embedding and a vector an output
//!   bias (`lm_head.bias`, `final_logits_bias` `[1, V]`, `cls.predictions.bias`, `decoder.bias`);
//! - names of one layer (`.3.`) and of non-vocabulary parameters (norms, positions, vision and
//!   audio towers, convolutions) are never vocabulary-indexed, whatever their shape;
//! - an unnamed vector is an output bias, unless `V` is also one of the config's other sizes
//!   (hidden, intermediate, positions): then it is refused as ambiguous, as is every unnamed
//!   2-D tensor with `V` rows (input or output cannot be told).

use crate::error::{Error, Result};
use crate::model::safetensors::Weights;
use serde_json::{Map, Value};

/// Families whose fields are read from the top-level config even when it nests a
/// `text_config` (the others are multimodal wrappers whose text tower says what it is).
const TEXT_MODEL_TYPES: &[&str] = &[
    "gpt2",
    "bloom",
    "falcon",
    "RefinedWeb",
    "RefinedWebModel",
    "llama",
    "mistral",
    "mixtral",
    "qwen2",
    "qwen3",
    "phi",
    "phi3",
    "gemma",
    "gemma2",
    "gemma3_text",
    "gpt_neox",
    "opt",
    "bert",
    "roberta",
    "xlm-roberta",
    "camembert",
    "distilbert",
    "electra",
];

/// Families whose `tie_word_embeddings` defaults to false in transformers.
const UNTIED_BY_DEFAULT: &[&str] = &[
    "llama", "mistral", "mixtral", "qwen2", "qwen3", "phi", "phi3", "gpt_neox",
];

/// Input-embedding names (the last segments of the tensor name), in order of preference for
/// the primary one.
const INPUT_NAMES: &[&str] = &[
    "shared.weight",
    "embed_tokens.weight",
    "wte.weight",
    "word_embeddings.weight",
    "embed_in.weight",
    "tok_embeddings.weight",
    "token_embedding.weight",
];

/// Name segments of output heads.
const HEAD_SEGMENTS: &[&str] = &[
    "lm_head",
    "embed_out",
    "vocab_projector",
    "generator_lm_head",
    "predictions",
    "decoder",
    "proj_out",
    "output",
    "final_logits_bias",
];

/// Fragments of names that are never vocabulary-indexed.
const NOT_VOCAB: &[&str] = &[
    "norm",
    "ln_",
    "position",
    "pos_",
    "rotary",
    "inv_freq",
    "token_type",
    "patch",
    "vision",
    "audio",
    "conv",
    "relative_attention",
];

/// Config keys of the sizes a vocabulary can be confused with.
const OTHER_SIZES: &[&str] = &[
    "hidden_size",
    "n_embd",
    "d_model",
    "dim",
    "embedding_size",
    "word_embed_proj_dim",
    "intermediate_size",
    "ffn_dim",
    "d_ff",
    "n_inner",
    "encoder_ffn_dim",
    "decoder_ffn_dim",
    "max_position_embeddings",
    "n_positions",
    "n_ctx",
    "max_target_positions",
    "max_source_positions",
    "head_dim",
];

/// Whether `model_type` is a text model whose own config fields are read (see
/// [`TEXT_MODEL_TYPES`]).
pub fn is_text_model_type(model_type: &str) -> bool {
    TEXT_MODEL_TYPES.contains(&model_type)
}

/// `tie_word_embeddings` when absent from config.json: the architecture's default, else
/// transformers' `PretrainedConfig` default (true).
pub fn tied_by_default(model_type: Option<&str>) -> bool {
    model_type.is_none_or(|t| !UNTIED_BY_DEFAULT.contains(&t))
}

/// How a vocabulary-indexed tensor holds its `V` rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `[V, w]`: one row of width `w` per token.
    Rows,
    /// `[V]`: one value per token.
    Vector,
    /// `[1, V]`: one value per token (`final_logits_bias`).
    RowVector,
}

impl Layout {
    /// The layout of a tensor of `shape` indexed by a vocabulary of `rows`, if it is one.
    pub fn of(shape: &[usize], rows: usize) -> Option<Layout> {
        match shape {
            [r, _] if *r == rows => Some(Layout::Rows),
            [r] if *r == rows => Some(Layout::Vector),
            [1, r] if *r == rows => Some(Layout::RowVector),
            _ => None,
        }
    }

    /// The shape of this layout with `rows` rows and rows of width `cols`.
    pub fn shape(self, rows: usize, cols: usize) -> Vec<usize> {
        match self {
            Layout::Rows => vec![rows, cols],
            Layout::Vector => vec![rows],
            Layout::RowVector => vec![1, rows],
        }
    }
}

/// The vocabulary-indexed tensors of one model, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VocabTensors {
    /// The input embedding (`V × width`).
    pub input: String,
    /// Tied copies of the input embedding stored beside it (encoder/decoder `embed_tokens`).
    pub input_copies: Vec<String>,
    /// The output embedding, when the checkpoint stores one.
    pub output: Option<String>,
    /// Output biases (`[V]` or `[1, V]`).
    pub output_bias: Vec<String>,
    /// `V`: the input embedding's rows.
    pub rows: usize,
}

impl VocabTensors {
    /// Every vocabulary-indexed tensor: input, its copies, output, biases.
    pub fn all(&self) -> Vec<String> {
        let mut names = vec![self.input.clone()];
        names.extend(self.input_copies.iter().cloned());
        names.extend(self.output.iter().cloned());
        names.extend(self.output_bias.iter().cloned());
        names
    }
}

/// What discovery needs to know about one model.
pub struct Discovery<'a> {
    /// Its weights (headers only are read).
    pub weights: &'a Weights,
    /// `model_type` (for messages).
    pub model_type: Option<&'a str>,
    /// Its config.json (the sizes a vocabulary can be confused with).
    pub config: &'a Map<String, Value>,
    /// The config's embedding width (for the shape fallback).
    pub width: Option<usize>,
    /// Tokens of the base vocabulary (for the shape fallback).
    pub tokens: usize,
    /// "source", "helper", "model": names the model in errors.
    pub which: &'a str,
}

impl Discovery<'_> {
    fn ambiguous(&self, what: String) -> Error {
        Error::Model(format!(
            "{} model: {what} in {} (model_type `{}`); rename the tensor or remove it",
            self.which,
            self.weights.describe(),
            self.model_type.unwrap_or("(none)")
        ))
    }
}

/// Finds the vocabulary-indexed tensors (see the module docs).
pub fn find_vocab_tensors(d: &Discovery) -> Result<VocabTensors> {
    let inputs = input_candidates(d)?;
    let input = match inputs.first() {
        Some(i) => i.clone(),
        None => shape_fallback(d)?,
    };
    let shape = &d
        .weights
        .info(&input)
        .map(|t| t.shape.clone())
        .unwrap_or_default();
    let rows = shape.first().copied().unwrap_or(0);
    let mut t = VocabTensors {
        input: input.clone(),
        input_copies: Vec::new(),
        output: None,
        output_bias: Vec::new(),
        rows,
    };
    if shape.len() != 2 {
        return Ok(t); // refused by the caller, which names the shape
    }
    let collision = colliding_size(d.config, rows);
    let mut outputs = Vec::new();
    for name in d.weights.tensor_names().filter(|n| *n != input) {
        let Some(info) = d.weights.info(name) else {
            continue;
        };
        let Some(layout) = Layout::of(&info.shape, rows) else {
            continue;
        };
        match classify(d, name, layout, &info.shape, shape, collision)? {
            Role::InputCopy => t.input_copies.push(name.to_string()),
            Role::Output => outputs.push(name.to_string()),
            Role::Bias => t.output_bias.push(name.to_string()),
            Role::None => {}
        }
    }
    if outputs.len() > 1 {
        return Err(d.ambiguous(format!(
            "output embedding is ambiguous: {} are present together",
            outputs.join(" and ")
        )));
    }
    t.output = outputs.pop();
    Ok(t)
}

enum Role {
    InputCopy,
    Output,
    Bias,
    None,
}

/// The role of a tensor with `V` rows (see the module docs).
fn classify(
    d: &Discovery,
    name: &str,
    layout: Layout,
    shape: &[usize],
    input_shape: &[usize],
    collision: Option<&str>,
) -> Result<Role> {
    if is_input_name(name) && layout == Layout::Rows {
        if shape != input_shape {
            return Err(d.ambiguous(format!(
                "embedding tensor is ambiguous: `{name}` has shape {shape:?}, the input embedding {input_shape:?}"
            )));
        }
        return Ok(Role::InputCopy);
    }
    if is_layer_or_not_vocab(name) {
        return Ok(Role::None);
    }
    let head = has_head_segment(name);
    let size_note = || {
        collision
            .map(|k| format!(" (and {} is also the config's `{k}`)", input_shape[0]))
            .unwrap_or_default()
    };
    match layout {
        Layout::Rows if head => Ok(Role::Output),
        Layout::Vector | Layout::RowVector if head || collision.is_none() => Ok(Role::Bias),
        Layout::Rows => Err(d.ambiguous(format!(
            "tensor `{name}` is ambiguous: it has the input embedding's {} rows{} but its name marks it neither as an input embedding nor as an output head",
            input_shape[0],
            size_note()
        ))),
        _ => Err(d.ambiguous(format!(
            "tensor `{name}` {shape:?} is ambiguous: it may be a per-token bias{} but its name is not an output head's",
            size_note()
        ))),
    }
}

/// Tensors named like an input embedding, primary first; a name present with and without a
/// base-model prefix is refused.
fn input_candidates(d: &Discovery) -> Result<Vec<String>> {
    let mut found: Vec<(usize, String)> = d
        .weights
        .tensor_names()
        .filter_map(|n| input_rank(n).map(|r| (r, n.to_string())))
        .collect();
    found.sort_by(|a, b| (a.0, a.1.len(), &a.1).cmp(&(b.0, b.1.len(), &b.1)));
    for (_, a) in &found {
        if let Some((_, b)) = found.iter().find(|(_, b)| a.ends_with(&format!(".{b}"))) {
            return Err(d.ambiguous(format!(
                "embedding tensor is ambiguous: {b} and {a} are present together; remove the duplicate"
            )));
        }
    }
    let primary_shape = found
        .first()
        .and_then(|(_, n)| d.weights.info(n))
        .map(|t| t.shape.clone());
    // Other input names of another shape (a second tower's table) are not this vocabulary's.
    Ok(found
        .into_iter()
        .filter(|(_, n)| d.weights.info(n).map(|t| t.shape.clone()) == primary_shape)
        .map(|(_, n)| n)
        .collect())
}

fn input_rank(name: &str) -> Option<usize> {
    if name.split('.').any(|s| s.parse::<usize>().is_ok()) {
        return None;
    }
    INPUT_NAMES
        .iter()
        .position(|p| name == *p || name.ends_with(&format!(".{p}")))
}

fn is_input_name(name: &str) -> bool {
    input_rank(name).is_some()
}

fn is_layer_or_not_vocab(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    name.split('.').any(|s| s.parse::<usize>().is_ok())
        || NOT_VOCAB.iter().any(|f| lower.contains(f))
}

fn has_head_segment(name: &str) -> bool {
    let segments: Vec<&str> = name.split('.').collect();
    let (last, rest) = segments.split_last().unwrap_or((&"", &[]));
    rest.iter().any(|s| HEAD_SEGMENTS.contains(s)) || HEAD_SEGMENTS.contains(last)
}

/// The config key (top level, `text_config`, `vision_config`) of a size other than the
/// vocabulary's that equals `rows`.
fn colliding_size(config: &Map<String, Value>, rows: usize) -> Option<&'static str> {
    let tables = std::iter::once(config).chain(
        ["text_config", "vision_config", "encoder", "decoder"]
            .iter()
            .filter_map(|k| config.get(*k).and_then(Value::as_object)),
    );
    for table in tables {
        if let Some(k) = OTHER_SIZES
            .iter()
            .find(|k| table.get(**k).and_then(Value::as_u64) == Some(rows as u64))
        {
            return Some(k);
        }
    }
    None
}

/// No input-embedding name: the one 2-D tensor with ≥ `tokens` rows and the embedding width.
fn shape_fallback(d: &Discovery) -> Result<String> {
    let candidates: Vec<&str> = d
        .weights
        .tensor_names()
        .filter(|name| {
            d.weights.info(name).is_some_and(|t| {
                t.shape.len() == 2
                    && t.shape[0] >= d.tokens
                    && d.width.is_none_or(|h| t.shape[1] == h)
                    && !is_layer_or_not_vocab(name)
            })
        })
        .collect();
    let looked_for = format!(
        "looked for {} under any prefix (model_type `{}`), then by shape",
        INPUT_NAMES.join(", "),
        d.model_type.unwrap_or("(none)")
    );
    match candidates.as_slice() {
        [one] => Ok(one.to_string()),
        [] => Err(Error::Model(format!(
            "{} model: embedding tensor not found in {}: {looked_for} for a 2-D tensor with ≥ {} rows{}; check that the directory holds the full model weights",
            d.which,
            d.weights.describe(),
            d.tokens,
            d.width.map(|h| format!(" and {h} columns")).unwrap_or_default()
        ))),
        many => Err(Error::Model(format!(
            "{} model: embedding tensor is ambiguous in {}: {looked_for} and found {} 2-D tensors with ≥ {} rows ({}); rename the input embedding to a known name (e.g. model.embed_tokens.weight) or set `model_type` in config.json to a known architecture",
            d.which,
            d.weights.describe(),
            many.len(),
            d.tokens,
            many.join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_and_names() {
        assert_eq!(Layout::of(&[700, 16], 700), Some(Layout::Rows));
        assert_eq!(Layout::of(&[700], 700), Some(Layout::Vector));
        assert_eq!(Layout::of(&[1, 700], 700), Some(Layout::RowVector));
        assert_eq!(Layout::of(&[16, 700], 700), None);
        assert_eq!(Layout::RowVector.shape(500, 1), vec![1, 500]);
        assert!(is_input_name("model.language_model.embed_tokens.weight"));
        assert!(is_input_name("shared.weight"));
        assert!(!is_input_name("model.layers.0.embed_tokens.weight"));
        assert!(has_head_segment("final_logits_bias"));
        assert!(has_head_segment("cls.predictions.bias"));
        assert!(has_head_segment("decoder.bias"));
        assert!(!has_head_segment("model.norm.weight"));
        assert!(is_layer_or_not_vocab("model.norm.weight"));
        assert!(is_layer_or_not_vocab("h.0.mlp.c_fc.bias"));
        let cfg: Map<String, Value> =
            serde_json::from_str(r#"{"text_config": {"intermediate_size": 700}}"#).unwrap();
        assert_eq!(colliding_size(&cfg, 700), Some("intermediate_size"));
        assert_eq!(colliding_size(&cfg, 701), None);
    }
}
