//! Where each architecture keeps its vocabulary-sized tensors: the input embedding, the output
//! embedding (lm_head) and output biases, looked up by `model_type` and known tensor names, with
//! a shape-based fallback for architectures not listed here.
//!
//! Names are listed with and without the base-model prefix (`transformer.`, `model.`, ...):
//! checkpoints saved from the bare base model (e.g. the `gpt2` hub checkpoint) omit it.

use crate::error::{Error, Result};
use crate::model::safetensors::Weights;

/// Known tensor names of one family of architectures.
#[derive(Debug, Clone, Copy)]
pub struct Naming {
    /// Candidates for the input embedding (exactly one must be present).
    pub input: &'static [&'static str],
    /// Candidates for the output embedding (at most one may be present).
    pub output: &'static [&'static str],
    /// Output bias vectors (every one present is transformed).
    pub output_bias: &'static [&'static str],
    /// `tie_word_embeddings` when config.json does not say.
    pub tied_by_default: bool,
}

const DECODER_EMBED: &[&str] = &["model.embed_tokens.weight", "embed_tokens.weight"];
const LM_HEAD: &[&str] = &["lm_head.weight"];

/// The naming of `model_type`, if it is a known architecture.
pub fn for_model_type(model_type: &str) -> Option<Naming> {
    let n = |input, output, output_bias, tied_by_default| {
        Some(Naming {
            input,
            output,
            output_bias,
            tied_by_default,
        })
    };
    match model_type {
        "gpt2" => n(
            &["transformer.wte.weight", "wte.weight"],
            LM_HEAD,
            &[],
            true,
        ),
        "bloom" | "falcon" | "RefinedWeb" | "RefinedWebModel" => n(
            &[
                "transformer.word_embeddings.weight",
                "word_embeddings.weight",
            ],
            LM_HEAD,
            &[],
            true,
        ),
        "llama" | "mistral" | "mixtral" | "qwen2" | "qwen3" | "phi3" => {
            n(DECODER_EMBED, LM_HEAD, &[], false)
        }
        "gemma" | "gemma2" | "gemma3_text" => n(DECODER_EMBED, LM_HEAD, &[], true),
        "gpt_neox" => n(
            &["gpt_neox.embed_in.weight", "embed_in.weight"],
            &["embed_out.weight"],
            &[],
            false,
        ),
        "opt" => n(
            &[
                "model.decoder.embed_tokens.weight",
                "decoder.embed_tokens.weight",
            ],
            LM_HEAD,
            &[],
            true,
        ),
        "bert" => n(
            &[
                "bert.embeddings.word_embeddings.weight",
                "embeddings.word_embeddings.weight",
            ],
            &["cls.predictions.decoder.weight"],
            &["cls.predictions.bias", "cls.predictions.decoder.bias"],
            true,
        ),
        "roberta" | "xlm-roberta" | "camembert" => n(
            &[
                "roberta.embeddings.word_embeddings.weight",
                "embeddings.word_embeddings.weight",
            ],
            &["lm_head.decoder.weight"],
            &["lm_head.bias", "lm_head.decoder.bias"],
            true,
        ),
        "distilbert" => n(
            &[
                "distilbert.embeddings.word_embeddings.weight",
                "embeddings.word_embeddings.weight",
            ],
            &["vocab_projector.weight"],
            &["vocab_projector.bias"],
            true,
        ),
        "electra" => n(
            &[
                "electra.embeddings.word_embeddings.weight",
                "embeddings.word_embeddings.weight",
            ],
            &["generator_lm_head.weight"],
            &["generator_lm_head.bias"],
            true,
        ),
        _ => None,
    }
}

/// `tie_word_embeddings` when absent from config.json: the architecture's default, else
/// transformers' `PretrainedConfig` default (true).
pub fn tied_by_default(model_type: Option<&str>) -> bool {
    model_type
        .and_then(for_model_type)
        .is_none_or(|n| n.tied_by_default)
}

/// The vocabulary-sized tensors of one model, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VocabTensors {
    /// The input embedding (`rows × dim`).
    pub input: String,
    /// The output embedding, when the checkpoint stores one.
    pub output: Option<String>,
    /// Output bias vectors (`rows`).
    pub output_bias: Vec<String>,
}

/// Finds the vocabulary-sized tensors of `weights`. `tokens` is the tokenizer size and
/// `hidden_size` the config's hidden size (both used only by the shape fallback). `which` names
/// the model in errors ("source", "helper").
pub fn find_vocab_tensors(
    weights: &Weights,
    model_type: Option<&str>,
    hidden_size: Option<usize>,
    tokens: usize,
    which: &str,
) -> Result<VocabTensors> {
    let naming = model_type.and_then(for_model_type);
    if let Some(naming) = naming {
        let present = |names: &[&str]| -> Vec<String> {
            names
                .iter()
                .filter(|n| weights.contains(n))
                .map(|n| n.to_string())
                .collect()
        };
        let input = present(naming.input);
        let output = present(naming.output);
        if input.len() > 1 {
            return Err(Error::Model(format!(
                "{which} model: embedding tensor is ambiguous: {} are present together in {}; remove the duplicate",
                input.join(" and "),
                weights.describe()
            )));
        }
        if output.len() > 1 {
            return Err(Error::Model(format!(
                "{which} model: output embedding is ambiguous: {} are present together in {}; remove the duplicate",
                output.join(" and "),
                weights.describe()
            )));
        }
        if let Some(input) = input.into_iter().next() {
            return Ok(VocabTensors {
                input,
                output: output.into_iter().next(),
                output_bias: present(naming.output_bias),
            });
        }
    }
    shape_fallback(weights, model_type, naming, hidden_size, tokens, which)
}

/// For unknown architectures: the 2-D tensors with rows ≥ tokenizer size and cols = hidden size.
fn shape_fallback(
    weights: &Weights,
    model_type: Option<&str>,
    naming: Option<Naming>,
    hidden_size: Option<usize>,
    tokens: usize,
    which: &str,
) -> Result<VocabTensors> {
    let candidates: Vec<&str> = weights
        .tensor_names()
        .filter(|name| {
            weights.info(name).is_some_and(|t| {
                t.shape.len() == 2
                    && t.shape[0] >= tokens
                    && hidden_size.is_none_or(|h| t.shape[1] == h)
            })
        })
        .collect();
    let looked_for = match naming {
        Some(n) => format!(
            "looked for {} (model_type `{}`), then by shape",
            n.input.join(", "),
            model_type.unwrap_or("")
        ),
        None => format!(
            "model_type `{}` is not a known architecture, so looked by shape",
            model_type.unwrap_or("(none)")
        ),
    };
    let is_output =
        |n: &str| n.contains("lm_head") || n.contains("embed_out") || n.contains("output");
    match candidates.as_slice() {
        [one] => Ok(VocabTensors { input: one.to_string(), output: None, output_bias: Vec::new() }),
        [a, b] if is_output(a) != is_output(b) => {
            let (input, output) = if is_output(a) { (b, a) } else { (a, b) };
            Ok(VocabTensors { input: input.to_string(), output: Some(output.to_string()), output_bias: Vec::new() })
        }
        [] => Err(Error::Model(format!(
            "{which} model: embedding tensor not found in {}: {looked_for} for a 2-D tensor with ≥ {tokens} rows{}; check that the directory holds the full model weights",
            weights.describe(),
            hidden_size.map(|h| format!(" and {h} columns")).unwrap_or_default()
        ))),
        many => Err(Error::Model(format!(
            "{which} model: embedding tensor is ambiguous in {}: {looked_for} and found {} 2-D tensors with ≥ {tokens} rows ({}); set `model_type` in config.json to a known architecture",
            weights.describe(),
            many.len(),
            many.join(", ")
        ))),
    }
}
