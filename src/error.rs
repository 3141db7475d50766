//! The crate's one error type. Every variant carries the context a user needs to act: the file,
//! tensor or token involved, what was expected and what was found, and (in the message) the fix.

use std::path::PathBuf;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in clp-gpu.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No wgpu adapter at all (or none matching the user's filter).
    #[error("no GPU adapter found{filter}: install a Vulkan driver (on Debian/Ubuntu: `apt-get install mesa-vulkan-drivers libvulkan1` for the lavapipe software driver) or unset WGPU_BACKEND/WGPU_ADAPTER_NAME")]
    NoAdapter {
        /// Description of the filter that was applied, if any (starts with a space).
        filter: String,
    },
    /// The adapter refused to create a device.
    #[error("could not open device on adapter {adapter}: {source}")]
    RequestDevice {
        /// Adapter name.
        adapter: String,
        /// Driver error.
        source: wgpu::RequestDeviceError,
    },
    /// A GPU operation (map, poll) failed or timed out.
    #[error("GPU operation failed: {0}")]
    Gpu(String),
    /// The adapter cannot run clp-gpu's kernels (checked before the device is opened).
    #[error("GPU adapter {adapter} cannot run clp-gpu: {what}; choose another adapter (WGPU_ADAPTER_NAME, WGPU_BACKEND) or use --backend cpu")]
    GpuUnsupported {
        /// Adapter name.
        adapter: String,
        /// What it lacks.
        what: String,
    },
    /// The GPU reported an error (validation, out of memory, internal) or the device was lost.
    #[error("GPU {kind} while {during} on {adapter}: {msg}; {fix}")]
    GpuFault {
        /// Adapter name.
        adapter: String,
        /// What clp-gpu was doing.
        during: String,
        /// "validation error", "out of memory", "internal error" or "device lost".
        kind: &'static str,
        /// The driver's message, on one line.
        msg: String,
        /// What the user can do.
        fix: &'static str,
    },
    /// A shape or size precondition of a kernel or of the engine does not hold.
    #[error("invalid shape: {0}")]
    Shape(String),
    /// A value given on the command line or through the API is out of range.
    #[error("{0}")]
    Argument(String),
    /// A size that does not fit the adapter's limits or the memory budget.
    #[error(
        "{what} needs {needed_bytes} bytes but the limit is {limit_bytes} bytes ({limit}); {fix}"
    )]
    Limit {
        /// What was being sized.
        what: String,
        /// Bytes it needs.
        needed_bytes: u64,
        /// The limit in bytes.
        limit_bytes: u64,
        /// Name of the limit.
        limit: String,
        /// What the user can do.
        fix: String,
    },
    /// An I/O error on a named path.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file exists but its content is wrong (bad JSON, bad safetensors header, ...).
    #[error("{path}: {msg}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        msg: String,
    },
    /// Input data of the model is unusable (a tensor missing, a token problem, ...).
    #[error("{0}")]
    Model(String),
    /// A row the run reads holds a NaN or an Inf.
    #[error(
        "{}: tensor `{tensor}` row {row}{}: element {column} is {value}; the checkpoint is corrupt: re-download or repair it (every row the transfer reads must be finite)",
        .path.as_ref().map_or("(in memory)".into(), |p| p.display().to_string()),
        .token.as_ref().map_or(String::new(), |t| format!(" (token {t:?})"))
    )]
    NonFiniteRow {
        /// The file (`None` for a matrix in memory).
        path: Option<PathBuf>,
        /// The tensor.
        tensor: String,
        /// The stored row (the token id of the tensor's vocabulary).
        row: usize,
        /// The first non-finite element of the row.
        column: usize,
        /// "NaN" or "Inf".
        value: &'static str,
        /// The token of that row, where the caller knows the vocabulary.
        token: Option<String>,
    },
    /// A model family that `perplexity` cannot run.
    #[error("{path}: model_type {model_type:?} is not supported by perplexity (it runs: {supported}); score this model in Python instead")]
    UnsupportedModel {
        /// The model's config.json.
        path: PathBuf,
        /// Its `model_type`.
        model_type: String,
        /// The families that do run.
        supported: String,
    },
    /// An encoder-decoder model (T5, BART, Whisper, ...), which `perplexity` does not score.
    #[error("{path}: model_type {model_type:?} is an encoder-decoder; perplexity scores decoder-only models (causal) and masked-LM encoders (pseudo-log-likelihood) only")]
    EncoderDecoderModel {
        /// The model's config.json.
        path: PathBuf,
        /// Its `model_type`.
        model_type: String,
    },
    /// candle could not build or run a model (a config key it needs, a tensor missing, ...).
    #[error("{path}: {model_type} model: {msg}; check config.json and the safetensors against the transformers checkpoint of this family")]
    Candle {
        /// The model directory.
        path: PathBuf,
        /// Its `model_type`.
        model_type: String,
        /// candle's message.
        msg: String,
    },
    /// The run was asked to stop ([`crate::cancel`]: Ctrl-C, SIGTERM, or the Python caller);
    /// its staging directory was removed.
    #[error(
        "interrupted: the temporary output was removed; nothing was written at the output path"
    )]
    Cancelled,
}

impl Error {
    /// Shorthand for an [`Error::Io`] on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
    /// Shorthand for an [`Error::BadFile`] on `path`.
    pub fn bad_file(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::BadFile {
            path: path.into(),
            msg: msg.into(),
        }
    }
}

/// The text on one line: newlines and runs of whitespace become one space.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
