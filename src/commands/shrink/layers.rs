//! Finding a model's stack of transformer layers from its tensor names alone.
//!
//! Every architecture names layer tensors `<prefix>.<index>.<rest>`: `model.layers.5.mlp...`
//! (Llama, Mistral, Qwen), `transformer.h.5.attn...` (GPT-2, BLOOM, Falcon),
//! `gpt_neox.layers.5...`, `model.decoder.layers.5...` (OPT), `bert.encoder.layer.5...`. A name
//! is split at its first dot-separated component that is a whole number (no regex); the layer
//! stack is the prefix whose indices run 0..L with L the config's layer count (or, when the
//! config does not say, the prefix with the most layers). Later numbers in a name (MoE experts,
//! T5 sub-layers) belong to the layer and are left alone.

use crate::error::{Error, Result};
use std::collections::{BTreeMap, BTreeSet};

/// config.json keys holding the number of layers, in lookup order.
pub const LAYER_COUNT_KEYS: &[&str] = &["num_hidden_layers", "n_layer", "num_layers", "n_layers"];

/// A tensor name split as `<prefix>.<index>.<rest>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerName<'a> {
    /// Everything before the index (no trailing dot).
    pub prefix: &'a str,
    /// The layer index.
    pub index: usize,
    /// Everything after the index (no leading dot).
    pub rest: &'a str,
}

/// Splits `name` at its first component that is a whole number written without leading zeros.
/// `None` when there is none, or it is the first or the last component.
pub fn parse(name: &str) -> Option<LayerName<'_>> {
    let mut start = 0;
    for part in name.split('.') {
        let end = start + part.len();
        let is_index = !part.is_empty()
            && part.bytes().all(|b| b.is_ascii_digit())
            && (part == "0" || !part.starts_with('0'));
        if is_index {
            if start == 0 || end >= name.len() {
                return None;
            }
            return Some(LayerName {
                prefix: &name[..start - 1],
                index: part.parse().ok()?,
                rest: &name[end + 1..],
            });
        }
        start = end + 1;
    }
    None
}

/// The layer stack of a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerStack {
    /// Name prefix of the layer tensors (`model.layers`).
    pub prefix: String,
    /// Number of layers (indices 0..layers).
    pub layers: usize,
}

impl LayerStack {
    /// Where tensor `name` goes when the old layers `kept` (ascending) become 0, 1, ...:
    /// `None` when it is not a layer tensor (kept as it is), `Some(None)` when its layer is
    /// dropped, `Some(Some(new_name))` otherwise.
    pub fn rename(&self, name: &str, kept: &[usize]) -> Option<Option<String>> {
        let p = parse(name)?;
        if p.prefix != self.prefix {
            return None;
        }
        Some(
            kept.iter()
                .position(|&k| k == p.index)
                .map(|new| format!("{}.{new}.{}", p.prefix, p.rest)),
        )
    }
}

/// Every `<prefix>.<index>.` among `names`: the indices seen under each prefix.
pub type IndexSets<'a> = BTreeMap<&'a str, BTreeSet<usize>>;

/// The indices seen under each layer prefix of `names`.
pub fn index_sets<'a>(names: impl Iterator<Item = &'a str>) -> IndexSets<'a> {
    let mut by_prefix: IndexSets = BTreeMap::new();
    for n in names {
        if let Some(p) = parse(n) {
            by_prefix.entry(p.prefix).or_default().insert(p.index);
        }
    }
    by_prefix
}

/// The stacks among `by_prefix`: prefixes whose indices run 0..L without gaps, with L.
pub fn gapless<'a>(by_prefix: &IndexSets<'a>) -> Vec<(&'a str, usize)> {
    by_prefix
        .iter()
        .filter(|(_, idx)| idx.iter().copied().eq(0..idx.len()))
        .map(|(p, idx)| (*p, idx.len()))
        .collect()
}

/// What was found, for error messages: `prefix.{0,1,2}, ...`.
fn found(by_prefix: &IndexSets) -> String {
    if by_prefix.is_empty() {
        return "no tensor name has the form <prefix>.<layer>.<rest>".to_string();
    }
    by_prefix
        .iter()
        .map(|(p, idx)| {
            format!(
                "{p}.{{{}}}",
                idx.iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The stacks with `config_layers` layers, or when that is unknown the largest ones.
fn pick<'a>(stacks: &[(&'a str, usize)], config_layers: Option<usize>) -> Vec<(&'a str, usize)> {
    let want = config_layers.unwrap_or_else(|| stacks.iter().map(|s| s.1).max().unwrap_or(0));
    stacks.iter().copied().filter(|s| s.1 == want).collect()
}

/// Whether a dot-separated component of `prefix` is `role` (`encoder`, `decoder`).
pub fn has_component(prefix: &str, role: &str) -> bool {
    prefix.split('.').any(|c| c == role)
}

/// Finds the layer stack among `names`. `config_layers` is the config's layer count, if any.
pub fn find_stack<'a>(
    names: impl Iterator<Item = &'a str>,
    config_layers: Option<usize>,
    describe: &str,
) -> Result<LayerStack> {
    let by_prefix = index_sets(names);
    let stacks = gapless(&by_prefix);
    let candidates = pick(&stacks, config_layers);
    match candidates.as_slice() {
        [(prefix, layers)] => Ok(LayerStack {
            prefix: prefix.to_string(),
            layers: *layers,
        }),
        [] => Err(Error::Model(format!(
            "no stack of transformer layers found in {describe}{}: found {}; shrink needs tensors named <prefix>.<layer>.<rest> with layers 0..L",
            config_layers.map(|l| format!(" with the {l} layers config.json declares")).unwrap_or_default(),
            found(&by_prefix)
        ))),
        many => Err(Error::Model(format!(
            "several layer stacks in {describe} ({}); shrink handles models with one stack, or one encoder and one decoder stack",
            many.iter().map(|(p, l)| format!("{p} with {l} layers")).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// The `role` (`encoder` / `decoder`) stack of an encoder-decoder: the stack with a prefix
/// component `role` and the `config_layers` layers config.json declares (or, when it does not
/// say, the largest such stack).
pub fn find_role_stack(
    by_prefix: &IndexSets,
    role: &str,
    config_layers: Option<(usize, &str)>,
    describe: &str,
) -> Result<LayerStack> {
    let stacks: Vec<(&str, usize)> = gapless(by_prefix)
        .into_iter()
        .filter(|(p, _)| has_component(p, role))
        .collect();
    let candidates = pick(&stacks, config_layers.map(|c| c.0));
    match candidates.as_slice() {
        [(prefix, layers)] => Ok(LayerStack {
            prefix: prefix.to_string(),
            layers: *layers,
        }),
        [] => Err(Error::Model(format!(
            "no {role} layer stack found in {describe}{}: found {}; shrink needs tensors named <prefix>.<layer>.<rest> with `{role}` in the prefix and layers 0..L",
            config_layers.map(|(l, k)| format!(" with the {l} layers config.json declares in `{k}`")).unwrap_or_default(),
            found(by_prefix)
        ))),
        many => Err(Error::Model(format!(
            "several {role} layer stacks in {describe} ({}); set the {role} layer count in config.json to pick one",
            many.iter().map(|(p, l)| format!("{p} with {l} layers")).collect::<Vec<_>>().join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_layer_names_of_every_family() {
        let p = parse("model.layers.12.self_attn.q_proj.weight").unwrap();
        assert_eq!(
            (p.prefix, p.index, p.rest),
            ("model.layers", 12, "self_attn.q_proj.weight")
        );
        let p = parse("transformer.h.0.attn.c_attn.weight").unwrap();
        assert_eq!((p.prefix, p.index), ("transformer.h", 0));
        assert_eq!(
            parse("bert.encoder.layer.3.output.dense.bias")
                .unwrap()
                .prefix,
            "bert.encoder.layer"
        );
        assert_eq!(
            parse("model.decoder.layers.1.fc1.weight").unwrap().prefix,
            "model.decoder.layers"
        );
        assert_eq!(parse("h.7.ln_1.weight").unwrap().prefix, "h");
        let p = parse("model.layers.3.mlp.experts.7.w1.weight").unwrap();
        assert_eq!((p.index, p.rest), (3, "mlp.experts.7.w1.weight"));
        assert_eq!(parse("lm_head.weight"), None);
        assert_eq!(parse("0.weight"), None);
        assert_eq!(parse("model.layers.3"), None);
        assert_eq!(parse("model.layers.03.x"), None);
    }

    #[test]
    fn finds_the_stack_and_renames() {
        let names = [
            "model.embed_tokens.weight",
            "model.layers.0.a",
            "model.layers.1.a",
            "model.layers.2.a",
            "model.vision.blocks.0.a",
        ];
        let s = find_stack(names.iter().copied(), Some(3), "m").unwrap();
        assert_eq!(
            s,
            LayerStack {
                prefix: "model.layers".into(),
                layers: 3
            }
        );
        let s2 = find_stack(names.iter().copied(), None, "m").unwrap();
        assert_eq!(s2, s);
        assert_eq!(
            s.rename("model.layers.2.a", &[0, 2]),
            Some(Some("model.layers.1.a".into()))
        );
        assert_eq!(s.rename("model.layers.1.a", &[0, 2]), Some(None));
        assert_eq!(s.rename("model.vision.blocks.0.a", &[0, 2]), None);
        assert!(find_stack(names.iter().copied(), Some(5), "m").is_err());
        let two = [
            "encoder.block.0.a",
            "decoder.block.0.a",
            "decoder.block.1.a",
        ];
        assert!(find_stack(two[..2].iter().copied(), None, "m").is_err());
        let sets = index_sets(two.iter().copied());
        let dec = find_role_stack(&sets, "decoder", Some((2, "num_decoder_layers")), "m").unwrap();
        assert_eq!((dec.prefix.as_str(), dec.layers), ("decoder.block", 2));
        let enc = find_role_stack(&sets, "encoder", None, "m").unwrap();
        assert_eq!((enc.prefix.as_str(), enc.layers), ("encoder.block", 1));
        assert!(find_role_stack(&sets, "encoder", Some((3, "num_layers")), "m").is_err());
    }
}
