//! Argument types more than one subcommand parses, so each flag is spelled, checked and
//! documented once.

use crate::backend::Backend;
use crate::commands::apply::{Fallback, Method};
use crate::method::{TopK, Weighting};
use crate::progress::Progress;
use crate::tensor::DType;
use crate::vocab::MatchMode;
use clap::builder::PossibleValue;
use std::io::IsTerminal;

/// `--source`, `--helper` and `--helper-tokenizer`: the model pair `apply`, `evaluate` and
/// `inspect` read. The help is `apply`'s; `evaluate` and `inspect` reword it and make
/// `--helper` required with `mut_arg` on their own structs.
#[derive(Debug, Clone, clap::Args)]
pub struct PairArgs {
    /// Source model: a Hugging Face model directory, or an `org/name` id in the local HF cache.
    #[arg(long, value_name = "DIR|ID", value_hint = clap::ValueHint::DirPath)]
    pub source: String,
    /// Helper model (speaks the target tokenizer): a directory or an `org/name` id in the local HF cache.
    /// Optional with --weighting fvt when --helper-tokenizer is given.
    #[arg(long, value_name = "DIR|ID", value_hint = clap::ValueHint::DirPath)]
    pub helper: Option<String>,
    /// Take the target tokenizer from here instead of the helper directory.
    #[arg(long, value_name = "DIR|ID", value_hint = clap::ValueHint::DirPath)]
    pub helper_tokenizer: Option<String>,
}

impl PairArgs {
    /// `--helper`, for the commands that make it required (clap has checked it is there).
    pub fn required_helper(&self) -> crate::Result<String> {
        self.helper.clone().ok_or_else(|| {
            crate::Error::Argument("--helper: give the helper model (a directory or an id)".into())
        })
    }
}

/// `--match`: how target tokens find source tokens. The help is `apply`'s; `evaluate` and
/// `inspect` reword it with `mut_arg`.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct MatchArgs {
    /// How target tokens find source tokens: `canonical` (the same bytes and word start whatever
    /// the spelling: GPT-2 `Ġhello` = Llama `▁hello` = BERT `hello`, `Ċ` = `<0x0A>` = "\n") or
    /// `exact` (the same string, as the original CLP-Transfer). Preview with `clp-gpu inspect`.
    #[arg(
        long = "match",
        value_parser = MatchModeParser,
        value_name = "exact|canonical",
        hide_possible_values = true,
        default_value_t = crate::defaults::MATCH
    )]
    pub match_mode: MatchMode,
}

/// `--match`'s parser: [`MatchMode`]'s own `FromStr` (so a bad value gets its one-line
/// message) that also tells front ends the names it takes (`possible_values`; `--help` explains
/// them, so the flag hides the list).
#[derive(Debug, Clone, Copy)]
pub struct MatchModeParser;

impl clap::builder::TypedValueParser for MatchModeParser {
    type Value = MatchMode;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> std::result::Result<MatchMode, clap::Error> {
        let parser = clap::builder::StringValueParser::new().try_map(|s| s.parse::<MatchMode>());
        parser.parse_ref(cmd, arg, value)
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        let modes = [MatchMode::Exact, MatchMode::Canonical];
        Some(Box::new(
            modes.into_iter().map(|m| PossibleValue::new(m.name())),
        ))
    }
}

/// A size in bytes on the command line (`--gpu-memory`, `--max-bytes`): a number of bytes or
/// a number with a unit, e.g. `512MiB` or `2GiB`. Its own type, so that front ends reading
/// [`crate::cli::command`] see a size, not a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl std::str::FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        crate::plan::parse_bytes(s).map(ByteSize)
    }
}

/// Compute backend on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendArg {
    /// A hardware GPU when there is one (or the adapter WGPU_ADAPTER_NAME names), else the CPU
    /// path; software renderers (llvmpipe/lavapipe, WARP, SwiftShader) only by name.
    Auto,
    /// The WGSL engine on a GPU, software adapters included (honours WGPU_BACKEND /
    /// WGPU_ADAPTER_NAME).
    Gpu,
    /// The multi-threaded CPU path (no GPU needed).
    Cpu,
    /// The plain-Rust f64 CPU reference (slow; for checking).
    CpuReference,
}

impl From<BackendArg> for Backend {
    fn from(b: BackendArg) -> Backend {
        match b {
            BackendArg::Auto => Backend::Auto,
            BackendArg::Gpu => Backend::Gpu,
            BackendArg::Cpu => Backend::Cpu,
            BackendArg::CpuReference => Backend::CpuReference,
        }
    }
}

/// `--weighting` on the command line: clp, softmax, sparsemax, omp or fvt (the variants carry
/// no doc comments so that `--help` keeps listing the plain names; the argument's help explains
/// them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WeightingArg {
    // cos / Σcos, the original CLP-Transfer.
    Clp,
    // exp(cos/T), WECHSEL.
    Softmax,
    // FOCUS.
    Sparsemax,
    // Orthogonal matching pursuit with K atoms, tokensurgeon.
    Omp,
    // FVT: the mean of the source rows of the token as the source tokenizer spells it (apply only).
    Fvt,
}

impl WeightingArg {
    /// The name [`Weighting::from_parts`] takes.
    pub fn name(self) -> &'static str {
        match self {
            WeightingArg::Clp => "clp",
            WeightingArg::Softmax => "softmax",
            WeightingArg::Sparsemax => "sparsemax",
            WeightingArg::Omp => "omp",
            WeightingArg::Fvt => "fvt",
        }
    }

    /// The argument naming `w`'s method.
    pub const fn of(w: &Weighting) -> WeightingArg {
        match w {
            Weighting::Clp { .. } => WeightingArg::Clp,
            Weighting::Softmax { .. } => WeightingArg::Softmax,
            Weighting::Sparsemax { .. } => WeightingArg::Sparsemax,
            Weighting::Omp { .. } => WeightingArg::Omp,
        }
    }

    /// The weighting with its `--top-k` and `--temperature`, checked (`fvt` is no weighting:
    /// see [`WeightingArg::method`]).
    pub fn with(self, top_k: TopK, temperature: f32) -> crate::Result<Weighting> {
        if self == WeightingArg::Fvt {
            return Err(crate::Error::Argument(
                "--weighting fvt is for apply only: it weights no neighbours, so there is nothing to bench; choose clp, softmax, sparsemax or omp".into(),
            ));
        }
        Weighting::from_parts(self.name(), top_k, temperature).map_err(crate::Error::Argument)
    }

    /// `apply`'s method: FVT, or the weighting with its `--top-k` and `--temperature`.
    pub fn method(self, top_k: TopK, temperature: f32) -> crate::Result<Method> {
        match self {
            WeightingArg::Fvt => Ok(Method::Fvt),
            w => w.with(top_k, temperature).map(Method::Weighted),
        }
    }
}

/// `--fallback` on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FallbackArg {
    /// The token's FVT row (the mean when the source tokenizer cannot spell it).
    Fvt,
    /// The mean of the overlapping source rows.
    Mean,
}

impl From<FallbackArg> for Fallback {
    fn from(f: FallbackArg) -> Fallback {
        match f {
            FallbackArg::Fvt => Fallback::Fvt,
            FallbackArg::Mean => Fallback::Mean,
        }
    }
}

/// Why `evaluate` refuses `--weighting fvt` (one line).
pub const EVALUATE_REFUSES_FVT: &str = "--weighting fvt cannot be evaluated: evaluate hides overlap tokens and predicts their source rows, but the source tokenizer keeps each of them whole, so FVT would just copy the true row; compare FVT on the model `apply --weighting fvt` writes instead";

/// Storage type of generated data (`--dtype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DTypeArg {
    /// 32-bit float.
    F32,
    /// IEEE half.
    F16,
    /// bfloat16.
    Bf16,
}

impl From<DTypeArg> for DType {
    fn from(d: DTypeArg) -> DType {
        match d {
            DTypeArg::F32 => DType::F32,
            DTypeArg::F16 => DType::F16,
            DTypeArg::Bf16 => DType::BF16,
        }
    }
}

/// How a long-running command reports (apply, evaluate, trim, shrink, bench), the same on
/// every one: `--json` prints the report as JSON on stdout; `--quiet` drops progress bars,
/// progress lines, notices and the human summary (errors still print, and `--json` still
/// prints the report).
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct OutputArgs {
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress bars and no human summary.
    #[arg(long)]
    pub quiet: bool,
}

impl OutputArgs {
    /// Where progress shows: bars on stderr when it is a terminal (and not `--quiet`).
    pub fn progress(self) -> Progress {
        terminal_progress(!self.quiet)
    }

    /// A progress line or notice on stderr (not with `--quiet`).
    pub fn say(self, line: &str) {
        if !self.quiet {
            eprintln!("{line}");
        }
    }

    /// Each notice as a `notice:` line on stderr (not with `--quiet`).
    pub fn notices(self, notices: &[String]) {
        for n in notices {
            self.say(&format!("notice: {n}"));
        }
    }

    /// The report: JSON on stdout with `--json`, else `human` unless `--quiet`.
    pub fn report<T: serde::Serialize>(
        self,
        report: &T,
        human: impl FnOnce(&T),
    ) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(report)?);
        } else if !self.quiet {
            human(report);
        }
        Ok(())
    }
}

/// Bars on stderr when `wanted` and stderr is a terminal, else nowhere.
pub fn terminal_progress(wanted: bool) -> Progress {
    if wanted && std::io::stderr().is_terminal() {
        Progress::Terminal
    } else {
        Progress::Hidden
    }
}
