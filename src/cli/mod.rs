//! The command line over the library: one file per subcommand holding its clap arguments and its
//! printing, nothing else. [`run`] is the whole CLI as a function, so the `clp-gpu` binary and
//! any other front end (a Python entry point, a test) share it.

pub mod apply;
pub mod args;
pub mod bench;
pub mod devices;
pub mod evaluate;
pub mod inspect;
#[cfg(feature = "perplexity")]
pub mod perplexity;
pub mod shrink;
pub mod trim;

use clap::{Parser, Subcommand};
use std::ffi::OsString;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "clp-gpu",
    version,
    about = "CLP-Transfer onto a new tokenizer, on any GPU"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Benchmark initialisation speed on synthetic BLOOM-shaped embeddings (no downloads).
    Bench(bench::BenchArgs),
    /// Build a target model: source weights + the helper's tokenizer (CLP-Transfer).
    Apply(apply::ApplyArgs),
    /// Show how the helper's tokenizer overlaps the source's (tokenizer files only: no weights, no GPU).
    ///
    /// Counts and examples of exact, canonical-only, special-by-role and missing target tokens.
    Inspect(inspect::InspectArgs),
    /// Score weightings (clp, softmax, sparsemax, omp; k and T) on a held-out share of the
    /// overlap: cosine between predicted and true source rows, next to two baselines.
    Evaluate(evaluate::EvaluateArgs),
    // trim and shrink carry their help (short and long) on their argument structs.
    Trim(trim::TrimArgs),
    Shrink(shrink::ShrinkArgs),
    #[cfg(feature = "perplexity")]
    Perplexity(perplexity::PerplexityArgs),
    /// List every GPU adapter wgpu can use, with the limits that matter to clp-gpu.
    Devices {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Runs the command line `args` (program name first, as `std::env::args_os()` gives it):
/// parses, runs the subcommand, prints a failure as one line on stderr. Returns the exit code:
/// 0 on success, 1 on an error, clap's code (2) for a usage error, 0 for `--help`.
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
    };
    // Ctrl-C / SIGTERM: remove staging directories and temporary files, never leave OUT half done.
    let _ = ctrlc::set_handler(|| {
        eprintln!("interrupted: removing temporary output; nothing was written at the output path");
        crate::model::writer::remove_temps_and_exit(130);
    });
    let words: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    match dispatch(cli, words) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli, words: Vec<String>) -> anyhow::Result<()> {
    match cli.command {
        Command::Apply(args) => apply::run(args, words),
        Command::Inspect(args) => inspect::run(args),
        Command::Evaluate(args) => evaluate::run(args),
        Command::Trim(args) => trim::run(args),
        Command::Shrink(args) => shrink::run(args),
        #[cfg(feature = "perplexity")]
        Command::Perplexity(args) => perplexity::run(args),
        Command::Devices { json } => devices::run(json),
        Command::Bench(args) => bench::run(args),
    }
}
