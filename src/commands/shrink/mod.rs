//! `clp-gpu shrink`: a student skeleton from a teacher model: fewer transformer layers, and
//! optionally a narrower input embedding.
//!
//! Layers: the layer stack is found from the tensor names ([`layers`]); the kept layers' tensors
//! are copied byte-for-byte and renumbered 0, 1, ... in their old order, the other layers'
//! tensors are dropped, every tensor outside the stack is copied as it is, and config.json's
//! layer count (`num_hidden_layers` / `n_layer` / `num_layers` / `n_layers`, each one present)
//! and a per-layer `layer_types` list follow. `--keep-every r` keeps layers 0, r, 2r, ... and
//! always the last layer (the one whose output the final norm and head were trained on).
//!
//! Encoder-decoders (T5, mT5, BART, mBART, M2M100, Whisper) have two stacks ([`stacks`]): the
//! choice applies to each (`--layers` indices must exist in both), or `--decoder-layers` gives
//! the decoder its own list; both are renumbered and config.json's per-stack counts follow.
//! T5 keeps `relative_attention_bias` in block 0 of each stack only: when block 0 is dropped,
//! that tensor is kept under its name, which is the new first block's.
//!
//! Width (`--hidden-size D`): the input embedding E becomes E V_D = U_D Σ_D (rows × D), V_D the
//! top-D right singular vectors ([`svd`]); stored tied copies of it (an encoder-decoder's
//! `encoder/decoder.embed_tokens`) and an untied lm_head of the same shape become W V_D, so all
//! live in the same reduced coordinates. V_Dᵀ (D × d, f32) is written to
//! `embedding_projection.safetensors` (tensor `projection`): E ≈ reduced @ projection. Every
//! other tensor keeps the old width d and config.json keeps `hidden_size`, so the result does
//! not run as it is: `clp-gpu distill` (the Python package's `[distill]` extra) turns it into
//! a runnable narrow student (width D, freshly initialised layers, this embedding) and trains it.

pub mod layers;
pub mod select;
pub mod stacks;
pub mod svd;

pub use select::{select_layers, LayerChoice};

use crate::error::{Error, Result};
use crate::json::write_json;
use crate::model::pair::vocab_tensors;
use crate::model::rewrite::{self, TensorAction};
use crate::model::safetensors::engine_dtype;
use crate::model::writer::{self, OutShard, OutTensor, Staging, TensorData};
use crate::model::{hub, ModelDir, Weights, TOKENIZER_FILES};
use nalgebra::DMatrix;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// File (in OUT) holding V_Dᵀ after a width reduction.
pub const PROJECTION_FILE: &str = "embedding_projection.safetensors";
/// Tensor name of V_Dᵀ in [`PROJECTION_FILE`].
pub const PROJECTION_TENSOR: &str = "projection";

/// What `shrink` needs to know.
#[derive(Debug, Clone)]
pub struct ShrinkOptions {
    /// Model directory or hub id.
    pub model: String,
    /// Layers to keep (of every stack, unless `decoder_layers` is given).
    pub layers: LayerChoice,
    /// Layers to keep of an encoder-decoder's decoder (`layers` then applies to the encoder).
    pub decoder_layers: Option<LayerChoice>,
    /// Reduce the input embedding to this width.
    pub hidden_size: Option<usize>,
    /// Output directory.
    pub out: PathBuf,
    /// Replace an existing OUT.
    pub force: bool,
}

/// The width reduction in the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HiddenReport {
    /// How the reduced embedding is made.
    pub method: String,
    /// The input embedding.
    pub embedding: String,
    /// The untied lm_head reduced with the same basis, if any.
    pub lm_head: Option<String>,
    /// Width before.
    pub width_before: usize,
    /// Width after.
    pub width_after: usize,
    /// Σ_{i<D} σ_i² / Σ σ_i² of the input embedding.
    pub spectrum_kept: f64,
    /// The top-D singular values.
    pub singular_values: Vec<f64>,
    /// ‖W V_D‖² / ‖W‖² of the lm_head.
    pub lm_head_energy_kept: Option<f64>,
    /// File and tensor holding V_Dᵀ.
    pub projection: String,
    /// What is left for training.
    pub note: String,
}

/// One more layer stack in the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StackReport {
    /// Name prefix of the layer tensors.
    pub layer_prefix: String,
    /// Layers before.
    pub layers_before: usize,
    /// The old indices of the kept layers, in their new order.
    pub layers_kept: Vec<usize>,
}

/// What `shrink` did (printed by the CLI; also `shrink_report.json` in OUT).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ShrinkReport {
    /// The output directory.
    pub out: PathBuf,
    /// The resolved model directory.
    pub model: PathBuf,
    /// Name prefix of the layer tensors.
    pub layer_prefix: String,
    /// Layers before.
    pub layers_before: usize,
    /// The old indices of the kept layers, in their new order.
    pub layers_kept: Vec<usize>,
    /// config.json keys set to the new layer count.
    pub config_keys_updated: Vec<String>,
    /// Elements of all tensors before.
    pub params_before: u64,
    /// Elements of all tensors after (the projection file not included).
    pub params_after: u64,
    /// Tensor bytes before.
    pub bytes_before: u64,
    /// Tensor bytes after (the projection file not included).
    pub bytes_after: u64,
    /// An encoder-decoder's decoder stack (the fields above are then the encoder's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decoder: Option<StackReport>,
    /// Block-0-only tensors (T5's `relative_attention_bias`) kept for the new first block when
    /// the old block 0 was dropped.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub carried_from_block_0: Vec<String>,
    /// The width reduction, if asked for.
    pub hidden: Option<HiddenReport>,
    /// Seconds for the whole run.
    pub seconds: f64,
}

/// Runs the whole shrink; see the module docs. Nothing exists at `opts.out` unless this
/// returns `Ok`.
pub fn shrink(opts: &ShrinkOptions) -> Result<ShrinkReport> {
    let started = Instant::now();
    let (model_dir, model) = read(opts)?;
    let w = &model.weights;
    let names: Vec<&str> = w.tensor_names().collect();
    let found = stacks::plan(
        &model.config.raw,
        &names,
        &w.describe(),
        &opts.layers,
        opts.decoder_layers.as_ref(),
    )?;
    let mut actions = layer_actions(w, &found);
    let carried = carry_block0_only(w, &found, &mut actions);
    let width = match opts.hidden_size {
        Some(dim) => Some(reduce_width(&model, dim, &mut actions)?),
        None => None,
    };

    let staging = Staging::create(&opts.out, opts.force)?;
    let out_dir = staging.path().to_path_buf();
    let written = rewrite::write_weights(w, &out_dir, &actions)?;
    drop(actions);
    if let Some((h, bytes)) = &width {
        write_projection(&out_dir, h, bytes)?;
    }
    let mut config = model.config.raw.clone();
    let keys_updated = stacks::update_config(&mut config, &found);
    write_json(&out_dir.join("config.json"), &Value::Object(config))?;
    rewrite::copy_files(&model_dir, &out_dir, &["generation_config.json"])?;
    rewrite::copy_files(&model_dir, &out_dir, TOKENIZER_FILES)?;

    let plans = found.plans();
    let report = ShrinkReport {
        out: opts.out.clone(),
        model: model_dir.clone(),
        layer_prefix: plans[0].stack.prefix.clone(),
        layers_before: plans[0].stack.layers,
        layers_kept: plans[0].kept.clone(),
        config_keys_updated: keys_updated,
        decoder: plans.get(1).map(|p| StackReport {
            layer_prefix: p.stack.prefix.clone(),
            layers_before: p.stack.layers,
            layers_kept: p.kept.clone(),
        }),
        carried_from_block_0: carried,
        params_before: rewrite::total_params(w),
        params_after: written.params,
        bytes_before: w.total_bytes(),
        bytes_after: written.bytes,
        hidden: width.map(|(h, _)| h),
        seconds: started.elapsed().as_secs_f64(),
    };
    let value = serde_json::to_value(&report)
        .map_err(|e| Error::Model(format!("cannot serialise the report: {e}")))?;
    write_json(&out_dir.join("shrink_report.json"), &value)?;
    staging.commit()?;
    Ok(report)
}

/// Checks the options and opens the model (headers only); returns its resolved directory too.
fn read(opts: &ShrinkOptions) -> Result<(PathBuf, ModelDir)> {
    writer::check_out(&opts.out, opts.force)?;
    let decoder_all = matches!(opts.decoder_layers, None | Some(LayerChoice::All));
    if opts.layers == LayerChoice::All && decoder_all && opts.hidden_size.is_none() {
        return Err(Error::Argument(
            "nothing to do: pass --keep-every R, --layers LIST and/or --hidden-size D".into(),
        ));
    }
    let model_dir = hub::resolve_model_dir(&opts.model, "--model")?;
    writer::refuse_out_over_input(&opts.out, &[&model_dir])?;
    let model = ModelDir::open(&model_dir)?;
    Ok((model_dir, model))
}

/// The layer tensors of every stack: kept ones renamed to their new index, the others dropped.
fn layer_actions(w: &Weights, found: &stacks::Stacks) -> BTreeMap<String, TensorAction> {
    let mut actions: BTreeMap<String, TensorAction> = BTreeMap::new();
    for name in w.tensor_names() {
        let renamed = found
            .plans()
            .into_iter()
            .find_map(|p| p.stack.rename(name, &p.kept));
        match renamed {
            None => {}
            Some(None) => {
                actions.insert(name.to_string(), TensorAction::Drop);
            }
            Some(Some(new)) => {
                actions.insert(name.to_string(), TensorAction::Copy(new));
            }
        }
    }
    actions
}

/// `--hidden-size`: the input embedding (and an untied lm_head of its shape) reduced by SVD;
/// returns the report and the bytes of V_Dᵀ (F32).
fn reduce_width(
    model: &ModelDir,
    dim: usize,
    actions: &mut BTreeMap<String, TensorAction>,
) -> Result<(HiddenReport, Vec<u8>)> {
    let w = &model.weights;
    let tokens = model
        .config
        .raw
        .get("vocab_size")
        .and_then(Value::as_u64)
        .unwrap_or(0) as usize;
    let vt = vocab_tensors(model, tokens, "model")?;
    let e = w.matrix(&vt.input)?;
    if w.info(&vt.input).map(|t| t.shape.len()) != Some(2) {
        return Err(Error::Model(format!(
            "`{}` is not a matrix; --hidden-size needs a 2-D input embedding",
            vt.input
        )));
    }
    let red = svd::reduce(&e, dim, &vt.input)?;
    reduce_tensor(w, &vt.input, &red.basis, actions)?;
    // Tied copies (an encoder-decoder's stored `encoder/decoder.embed_tokens`) follow.
    for copy in &vt.input_copies {
        reduce_tensor(w, copy, &red.basis, actions)?;
    }
    let lm_head = vt
        .output
        .filter(|o| w.info(o).map(|t| &t.shape) == w.info(&vt.input).map(|t| &t.shape));
    let lm_head_energy_kept = match &lm_head {
        Some(o) => Some(reduce_tensor(w, o, &red.basis, actions)?),
        None => None,
    };
    let d = e.cols;
    let mut p = Vec::with_capacity(dim * d);
    for k in 0..dim {
        for c in 0..d {
            p.push(red.basis[(c, k)] as f32);
        }
    }
    let projection = crate::tensor::DType::F32.encode(&p);
    let reduced = std::iter::once(&vt.input)
        .chain(&vt.input_copies)
        .chain(&lm_head)
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let hidden = HiddenReport {
        method: "truncated SVD E = U Σ Vᵀ (f64, via the eigen-decomposition of EᵀE): reduced embedding = E V_D = U_D Σ_D (top-D left singular vectors scaled by their singular values)".into(),
        embedding: vt.input.clone(),
        lm_head,
        width_before: d,
        width_after: dim,
        spectrum_kept: red.spectrum_kept,
        singular_values: red.singular_values.clone(),
        lm_head_energy_kept,
        projection: format!("{PROJECTION_FILE}: `{PROJECTION_TENSOR}` = V_Dᵀ ({dim} x {d}, F32); embedding ≈ reduced @ projection"),
        note: format!(
            "only {reduced} changed width; every other tensor is still {d} wide and config.json keeps the old hidden size, so this skeleton does not run as it is: `clp-gpu distill` (pip install 'clp-gpu[distill]') makes it a runnable {dim}-wide student and trains it"
        ),
    };
    Ok((hidden, projection))
}

/// Replaces tensor `name` (keeping a layer rename) by its projection on `basis`; returns the
/// share of its energy kept.
fn reduce_tensor(
    w: &Weights,
    name: &str,
    basis: &DMatrix<f64>,
    actions: &mut BTreeMap<String, TensorAction>,
) -> Result<f64> {
    let m = w.matrix(name)?;
    let info = w
        .info(name)
        .ok_or_else(|| Error::Model(format!("tensor `{name}` vanished")))?;
    let dtype = engine_dtype(info.dtype).ok_or_else(|| {
        Error::Model(format!(
            "tensor `{name}` has dtype {:?}; --hidden-size supports F32, F16 and BF16",
            info.dtype
        ))
    })?;
    let (values, energy) = svd::project(&m, basis);
    let new_name = match actions.get(name) {
        Some(TensorAction::Copy(n)) => n.clone(),
        _ => name.to_string(),
    };
    actions.insert(
        name.to_string(),
        TensorAction::Replace {
            name: new_name,
            dtype: info.dtype,
            shape: vec![m.rows, basis.ncols()],
            bytes: dtype.encode(&values),
        },
    );
    Ok(energy)
}

/// Writes V_Dᵀ to [`PROJECTION_FILE`].
fn write_projection(out_dir: &Path, h: &HiddenReport, bytes: &[u8]) -> Result<()> {
    let shard = OutShard {
        file_name: PROJECTION_FILE.to_string(),
        metadata: BTreeMap::from([
            ("embedding".to_string(), h.embedding.clone()),
            (
                "meaning".to_string(),
                "embedding ≈ reduced_embedding @ projection (V_D transposed)".to_string(),
            ),
        ]),
        tensors: vec![OutTensor {
            name: PROJECTION_TENSOR.to_string(),
            dtype: safetensors::Dtype::F32,
            shape: vec![h.width_after, h.width_before],
            data: TensorData::Owned(bytes),
        }],
    };
    writer::write_shard(out_dir, &shard, &mut |_| {})?;
    Ok(())
}

/// Tensor names of block 0 that only block 0 has: T5 keeps its `relative_attention_bias` in
/// block 0 of each stack and every block uses it.
const BLOCK0_ONLY: &[&str] = &["relative_attention_bias"];

/// When a stack's old block 0 is dropped, its [`BLOCK0_ONLY`] tensors the new first block lacks
/// are kept under the same name (which is the new block 0's); returns their names.
fn carry_block0_only(
    w: &Weights,
    found: &stacks::Stacks,
    actions: &mut BTreeMap<String, TensorAction>,
) -> Vec<String> {
    let mut carried = Vec::new();
    for p in found.plans() {
        let Some(&first) = p.kept.first().filter(|&&f| f != 0) else {
            continue;
        };
        for name in w.tensor_names() {
            let Some(l) = layers::parse(name) else {
                continue;
            };
            let shared = BLOCK0_ONLY.iter().any(|s| l.rest.contains(s));
            if l.prefix != p.stack.prefix || l.index != 0 || !shared {
                continue;
            }
            let own = format!("{}.{first}.{}", l.prefix, l.rest);
            if w.info(&own).is_none() {
                actions.insert(name.to_string(), TensorAction::Copy(name.to_string()));
                carried.push(name.to_string());
            }
        }
    }
    carried
}
