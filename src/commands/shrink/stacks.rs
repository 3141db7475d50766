//! The layer stacks `shrink` works on, the layers kept in each, and the config.json keys that
//! follow.
//!
//! A model has one stack (decoder-only, encoder-only), or an encoder and a decoder stack
//! (T5/mT5 `encoder.block` + `decoder.block`; BART, mBART, M2M100, Whisper
//! `model.encoder.layers` + `model.decoder.layers`). It is taken as an encoder-decoder when
//! config.json says `is_encoder_decoder` and there are stacks with `encoder` and `decoder` in
//! their prefixes, or when the single-stack search finds several stacks and both kinds are among
//! them; everything else goes the single-stack way, unchanged. Per-stack layer counts come from
//! the config: T5/mT5 `num_layers` (encoder) and `num_decoder_layers` (decoder, defaulting to
//! `num_layers`); BART/mBART/M2M100/Whisper `encoder_layers` and `decoder_layers`.

use crate::commands::shrink::layers::{self, LayerStack, LAYER_COUNT_KEYS};
use crate::commands::shrink::select::{select_in, LayerChoice};
use crate::error::{Error, Result};
use serde_json::{Map, Value};

/// config.json keys holding the encoder's layer count, in lookup order.
pub const ENCODER_COUNT_KEYS: &[&str] = &["encoder_layers", "num_layers"];
/// config.json keys holding the decoder's layer count, in lookup order (T5's
/// `num_decoder_layers` defaults to `num_layers`).
pub const DECODER_COUNT_KEYS: &[&str] = &["decoder_layers", "num_decoder_layers", "num_layers"];
/// Keys set to the encoder's new count (`num_hidden_layers` is the encoder's in BART/Whisper).
const ENCODER_UPDATE_KEYS: &[&str] = &["encoder_layers", "num_layers", "num_hidden_layers"];
/// Keys set to the decoder's new count.
const DECODER_UPDATE_KEYS: &[&str] = &["decoder_layers", "num_decoder_layers"];

/// One stack and the old indices of its kept layers, in their new order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackPlan {
    /// The stack.
    pub stack: LayerStack,
    /// The old indices kept.
    pub kept: Vec<usize>,
}

/// The stacks of a model: one, or an encoder and a decoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stacks {
    /// Decoder-only or encoder-only.
    Single(StackPlan),
    /// Encoder-decoder.
    Pair {
        /// The encoder stack.
        encoder: StackPlan,
        /// The decoder stack.
        decoder: StackPlan,
    },
}

impl Stacks {
    /// Every stack, encoder first.
    pub fn plans(&self) -> Vec<&StackPlan> {
        match self {
            Stacks::Single(p) => vec![p],
            Stacks::Pair { encoder, decoder } => vec![encoder, decoder],
        }
    }
}

/// The first of `keys` that config.json sets to a whole number, with the key.
fn count(config: &Map<String, Value>, keys: &[&'static str]) -> Option<(usize, &'static str)> {
    keys.iter().find_map(|k| {
        config
            .get(*k)
            .and_then(Value::as_u64)
            .map(|n| (n as usize, *k))
    })
}

/// Finds the stacks among `names` and the layers to keep: `layers` on every stack, or on the
/// encoder only when `decoder_layers` is given for the decoder.
pub fn plan(
    config: &Map<String, Value>,
    names: &[&str],
    describe: &str,
    layers: &LayerChoice,
    decoder_layers: Option<&LayerChoice>,
) -> Result<Stacks> {
    let sets = layers::index_sets(names.iter().copied());
    let gapless = layers::gapless(&sets);
    let both = ["encoder", "decoder"]
        .iter()
        .all(|role| gapless.iter().any(|(p, _)| layers::has_component(p, role)));
    let flagged = config.get("is_encoder_decoder") == Some(&Value::Bool(true));
    let single = if flagged && both {
        None
    } else {
        let config_layers = count(config, LAYER_COUNT_KEYS).map(|c| c.0);
        match layers::find_stack(names.iter().copied(), config_layers, describe) {
            Ok(stack) => Some(stack),
            Err(_) if both => None,
            Err(e) => return Err(e),
        }
    };
    if let Some(stack) = single {
        if decoder_layers.is_some() {
            return Err(Error::Argument(format!(
                "--decoder-layers: {describe} has one layer stack ({}), not an encoder and a decoder; use --layers or --keep-every",
                stack.prefix
            )));
        }
        let kept = select_in(layers, stack.layers, "--layers", "the model")?;
        return Ok(Stacks::Single(StackPlan { stack, kept }));
    }
    let enc = layers::find_role_stack(
        &sets,
        "encoder",
        count(config, ENCODER_COUNT_KEYS),
        describe,
    )?;
    let dec = layers::find_role_stack(
        &sets,
        "decoder",
        count(config, DECODER_COUNT_KEYS),
        describe,
    )?;
    let (dec_choice, dec_flag) = match decoder_layers {
        Some(c) => (c, "--decoder-layers"),
        None => (layers, "--layers"),
    };
    let enc_kept = select_in(
        layers,
        enc.layers,
        "--layers",
        &format!("the encoder ({})", enc.prefix),
    )?;
    let dec_kept = select_in(
        dec_choice,
        dec.layers,
        dec_flag,
        &format!(
            "the decoder ({}; pick its layers with --decoder-layers)",
            dec.prefix
        ),
    )?;
    Ok(Stacks::Pair {
        encoder: StackPlan {
            stack: enc,
            kept: enc_kept,
        },
        decoder: StackPlan {
            stack: dec,
            kept: dec_kept,
        },
    })
}

/// Sets config.json's layer counts (and a single stack's `layer_types`) to the kept layers;
/// returns the keys updated.
pub fn update_config(config: &mut Map<String, Value>, stacks: &Stacks) -> Vec<String> {
    let mut keys_updated = Vec::new();
    let mut set = |config: &mut Map<String, Value>, keys: &[&str], n: usize| {
        for key in keys {
            if config.get(*key).is_some_and(Value::is_u64) {
                config.insert(key.to_string(), Value::from(n));
                keys_updated.push(key.to_string());
            }
        }
    };
    match stacks {
        Stacks::Single(p) => {
            set(config, LAYER_COUNT_KEYS, p.kept.len());
            if let Some(Value::Array(types)) = config.get("layer_types") {
                if types.len() == p.stack.layers {
                    let subset: Vec<Value> = p.kept.iter().map(|&i| types[i].clone()).collect();
                    config.insert("layer_types".into(), Value::Array(subset));
                    keys_updated.push("layer_types".into());
                }
            }
        }
        Stacks::Pair { encoder, decoder } => {
            // T5's decoder count defaults to `num_layers`, which now holds the encoder's.
            let implicit = config.contains_key("num_layers")
                && !DECODER_UPDATE_KEYS.iter().any(|k| config.contains_key(*k));
            set(config, ENCODER_UPDATE_KEYS, encoder.kept.len());
            set(config, DECODER_UPDATE_KEYS, decoder.kept.len());
            if implicit {
                config.insert("num_decoder_layers".into(), Value::from(decoder.kept.len()));
                keys_updated.push("num_decoder_layers".into());
            }
        }
    }
    keys_updated
}
