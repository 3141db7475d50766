//! What `extend` takes ([`ExtendOptions`]) and returns ([`ExtendSummary`]).

use super::learn::Fertility;
use crate::backend::Backend;
use crate::commands::apply::{Fallback, Method};
use crate::progress::Progress;
use crate::vocab::MatchMode;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What `extend` needs to know.
#[derive(Debug, Clone)]
pub struct ExtendOptions {
    /// The model to extend: a directory or an id in the local HF cache.
    pub model: String,
    /// Text files, one document per line.
    pub corpora: Vec<PathBuf>,
    /// How many tokens to add at most.
    pub add: usize,
    /// Tokens the trainer saw fewer times are not added.
    pub min_freq: u64,
    /// Share of each corpus's lines held out from learning (checked and reported only).
    pub holdout: f64,
    /// A model that already knows the language: its embedding space gives the new rows'
    /// weights (`None`: FVT).
    pub helper: Option<String>,
    /// How the new rows are built: FVT, or a weighting (with `helper`).
    pub method: Method,
    /// What rows the method cannot build get.
    pub fallback: Fallback,
    /// How extended-vocabulary tokens find model (and helper) tokens.
    pub match_mode: MatchMode,
    /// Compute backend of a weighted method.
    pub backend: Backend,
    /// Memory budget of the tile buffers, bytes.
    pub memory_bytes: u64,
    /// Round the number of embedding rows up to a multiple of this.
    pub pad_to_multiple: Option<usize>,
    /// Write per-token provenance (JSON Lines) here.
    pub provenance: Option<PathBuf>,
    /// Output directory.
    pub out: PathBuf,
    /// Replace an existing OUT.
    pub force: bool,
    /// Where progress shows.
    pub progress: Progress,
    /// The command line, recorded in the report.
    pub arguments: Vec<String>,
}

/// A token `extend` added.
#[derive(Debug, Clone, Serialize)]
pub struct AddedToken {
    /// Its id.
    pub id: u32,
    /// As written in the vocabulary.
    pub token: String,
    /// The text it stands for.
    pub text: String,
    /// Its pieces under the original tokenizer (what FVT averages).
    pub pieces: Vec<String>,
    /// Order of usefulness (merge rank or score order), 0 first.
    pub rank: usize,
    /// How often the trainer saw it.
    pub frequency: u64,
}

/// Tokens per byte of one corpus, before and after.
#[derive(Debug, Clone, Serialize)]
pub struct CorpusFertility {
    /// The file.
    pub corpus: PathBuf,
    /// The lines the tokens were learnt from.
    pub train: Fertility,
    /// The held-out lines.
    pub heldout: Fertility,
}

/// How the rows were built (from the `apply` engine's summary).
#[derive(Debug, Clone, Serialize)]
pub struct RowsSummary {
    /// `fvt`, or the weighting with k and temperature.
    pub method: String,
    /// The helper directory, with a weighted method.
    pub helper: Option<PathBuf>,
    /// Backend that computed weighted rows (`cpu`, `gpu`; FVT: none).
    pub backend: String,
    /// GPU adapter, on the GPU backend.
    pub adapter: Option<String>,
    /// Dtype of the embedding.
    pub dtype: String,
    /// Rows of the new embedding (tokens plus padding).
    pub target_rows: usize,
    /// Rows copied bit-exact from the model (existing tokens).
    pub copied: usize,
    /// New rows computed by the method.
    pub computed: usize,
    /// Of those, rows that got the fallback.
    pub fallback: usize,
    /// Names of the tensors rebuilt.
    pub tensors_rebuilt: Vec<String>,
}

/// What `extend` did (printed by the CLI; `OUT/extend_report.json`).
#[derive(Debug, Clone, Serialize)]
pub struct ExtendSummary {
    /// The output directory.
    pub out: PathBuf,
    /// The resolved model directory.
    pub model: PathBuf,
    /// The tokenizer family extended.
    pub family: String,
    /// Tokens before (largest id + 1).
    pub tokens_before: usize,
    /// Tokens after (largest id + 1).
    pub tokens_after: usize,
    /// Tokens added.
    pub added: usize,
    /// `--add` as asked.
    pub asked: usize,
    /// `--min-freq`.
    pub min_freq: u64,
    /// Tokens per byte per corpus, before and after.
    pub fertility: Vec<CorpusFertility>,
    /// All corpora together: training lines.
    pub train: Fertility,
    /// All corpora together: held-out lines.
    pub heldout: Fertility,
    /// How the new rows were built.
    pub rows: RowsSummary,
    /// The tokens added, in id order, with their pieces under the original tokenizer.
    pub tokens: Vec<AddedToken>,
    /// What the learner dropped or changed, and why; what the engine noticed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<String>,
    /// The command line.
    pub arguments: Vec<String>,
    /// Seconds per stage.
    pub timings_s: BTreeMap<String, f64>,
}
