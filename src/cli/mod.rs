//! The command line over the library: one file per subcommand holding its clap arguments and its
//! printing, nothing else. [`run`] is the whole CLI as a function, so the `clp-gpu` binary and
//! any other front end (a Python entry point, a test) share it; [`report`] runs a command line
//! without printing and returns its report, and [`command`] describes every flag, so the
//! Python module's functions parse their keyword arguments here, with the CLI's defaults and
//! checks.

pub mod apply;
pub mod args;
pub mod bench;
pub mod devices;
pub mod distill;
pub mod evaluate;
pub mod extend;
pub mod inspect;
#[cfg(feature = "perplexity")]
pub mod perplexity;
pub mod shrink;
pub mod trim;

use crate::error::Error;
use crate::progress::Progress;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Subcommand};
use serde_json::{to_value, Value};
use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[derive(clap::Parser)]
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
    /// Grow a model's own tokenizer with tokens learnt from your text, and give them rows.
    Extend(extend::ExtendArgs),
    // trim and shrink carry their help (short and long) on their argument structs.
    Trim(trim::TrimArgs),
    Shrink(shrink::ShrinkArgs),
    #[cfg(feature = "perplexity")]
    Perplexity(perplexity::PerplexityArgs),
    /// BiStil's bilingual distillation (PyTorch): in the Python package, pip install 'clp-gpu[distill]'.
    #[command(disable_help_flag = true)]
    Distill(distill::PythonOnlyArgs),
    /// BiStil's task distillation (PyTorch): in the Python package, pip install 'clp-gpu[distill]'.
    #[command(name = "distill-task", disable_help_flag = true)]
    DistillTask(distill::PythonOnlyArgs),
    /// List every GPU adapter wgpu can use, with the limits that matter to clp-gpu.
    Devices {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Runs the command line `args` (program name first, as `std::env::args_os()` gives it):
/// parses, runs the subcommand, prints a failure as one line on stderr. Returns the exit code:
/// 0 on success, 1 on an error, 130 when interrupted, clap's code (2) for a usage error, 0 for
/// `--help`.
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    ExitCode::from(run_status(args))
}

/// [`run`] with the exit code as a number (for front ends that exit themselves, such as the
/// Python module's `clp-gpu` console command).
pub fn run_status<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let cli = match parse(&args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return e.exit_code().clamp(0, 255) as u8;
        }
    };
    let _ = ctrlc::set_handler(on_signal);
    match dispatch(cli, words(&args)) {
        Ok(()) => 0,
        Err(e) if is_cancelled(&e) => {
            eprintln!("{e}");
            130
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}

/// Ctrl-C / SIGTERM. The first asks the run to stop at its next check ([`crate::cancel`]): it
/// removes its staging directory, returns [`crate::Error::Cancelled`] and the process exits
/// with code 130. A second signal, or a run still going after [`HARD_STOP_AFTER`], removes the
/// temporary paths at once and exits (130); OUT is never left half done.
fn on_signal() {
    static SIGNALS: AtomicUsize = AtomicUsize::new(0);
    if SIGNALS.fetch_add(1, Ordering::SeqCst) > 0 {
        hard_stop();
    }
    eprintln!("interrupt: stopping (Ctrl-C again to stop at once)");
    crate::cancel::request();
    std::thread::spawn(|| {
        std::thread::sleep(HARD_STOP_AFTER);
        hard_stop();
    });
}

/// How long a run may take to stop after the first Ctrl-C / SIGTERM.
const HARD_STOP_AFTER: Duration = Duration::from_secs(10);

fn hard_stop() -> ! {
    eprintln!("interrupted: removing temporary output; nothing was written at the output path");
    crate::model::writer::remove_temps_and_exit(130);
}

/// Whether `e` is a cancelled run.
pub fn is_cancelled(e: &anyhow::Error) -> bool {
    matches!(e.downcast_ref::<Error>(), Some(Error::Cancelled))
}

/// The command line as recorded in reports.
fn words(args: &[OsString]) -> Vec<String> {
    args.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

/// The whole command line as a clap [`clap::Command`]: every subcommand and flag with its
/// help, default and choices. Front ends introspect it (the Python module builds its
/// functions' signatures and docstrings from it), so flags and defaults live here only.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Runs the command line `args` (program name first) like [`run`], but prints nothing,
/// installs no signal handler and never exits: returns the report that `--json` would print
/// (for `devices`, the adapter list). Progress goes to `progress`. A usage error is an
/// [`Error::Argument`] holding clap's message on one line; a run stopped through
/// [`crate::cancel`] fails with [`Error::Cancelled`] ([`is_cancelled`]).
pub fn report<I, T>(args: I, progress: Progress) -> anyhow::Result<Value>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let cli = parse(&args).map_err(usage_error)?;
    let value = match cli.command {
        Command::Apply(a) => to_value(apply::summary(a, words(&args), progress)?),
        Command::Inspect(a) => to_value(inspect::report(a)?),
        Command::Evaluate(a) => to_value(evaluate::report(a)?.0),
        Command::Extend(a) => to_value(extend::summary(a, words(&args), progress)?),
        Command::Trim(a) => to_value(trim::report(a, progress)?),
        Command::Shrink(a) => to_value(shrink::report(a)?),
        #[cfg(feature = "perplexity")]
        Command::Perplexity(a) => to_value(perplexity::report(a, progress)?),
        Command::Devices { .. } => to_value(crate::backend::gpu::list_adapters()),
        Command::Bench(_) => {
            return Err(Error::Argument(
                "bench runs on the command line only: clp-gpu bench".into(),
            )
            .into())
        }
        Command::Distill(_) => return Err(distill::not_here("distill").into()),
        Command::DistillTask(_) => return Err(distill::not_here("distill-task").into()),
    };
    Ok(value?)
}

/// Parses `args` (program name first), refusing method flags the chosen method never reads:
/// clap's conflict rules see whether a flag is given, not another flag's value.
fn parse(args: &[OsString]) -> Result<Cli, clap::Error> {
    let mut cmd = Cli::command();
    let matches = cmd.try_get_matches_from_mut(args)?;
    if let Some((name, sub)) = matches.subcommand() {
        if let (Some(why), Some(sub_cmd)) = (unread_flag(name, sub), cmd.find_subcommand_mut(name))
        {
            return Err(sub_cmd.error(clap::error::ErrorKind::ArgumentConflict, why));
        }
    }
    Cli::from_arg_matches(&matches)
}

/// A method flag given on the command line that the chosen method would ignore: `--top-k`
/// with `--weighting fvt`, `--temperature` with any weighting but softmax (`apply`), and both
/// without `--helper` in `extend` (its rows are then FVT's).
fn unread_flag(name: &str, sub: &ArgMatches) -> Option<String> {
    if name != "apply" && name != "extend" {
        return None;
    }
    let given = |id: &str| sub.value_source(id) == Some(ValueSource::CommandLine);
    let weighting = sub.get_raw("weighting").and_then(|mut v| v.next());
    let weighting = weighting.map(|w| w.to_string_lossy().into_owned());
    let without_helper = name == "extend" && sub.get_raw("helper").is_none();
    let method = match weighting.as_deref() {
        _ if without_helper => "extend without --helper (its new rows are FVT's)".to_string(),
        Some(w) => format!("--weighting {w}"),
        None => "--weighting softmax".to_string(),
    };
    let reads_k = !without_helper && weighting.as_deref() != Some("fvt");
    let reads_t = !without_helper && weighting.as_deref().is_none_or(|w| w == "softmax");
    let unread = [
        ("top_k", "--top-k", reads_k),
        ("temperature", "--temperature", reads_t),
    ];
    let (_, flag, _) = unread
        .into_iter()
        .find(|&(id, _, read)| !read && given(id))?;
    Some(format!(
        "{flag} is not read by {method}; leave it out (--top-k serves clp, softmax, sparsemax and omp with a helper; --temperature serves softmax)"
    ))
}

/// clap's message without its usage lines, on one line.
fn usage_error(e: clap::Error) -> Error {
    let text = e.render().to_string();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .collect();
    Error::Argument(lines.join(" ").trim_start_matches("error: ").to_string())
}

fn dispatch(cli: Cli, words: Vec<String>) -> anyhow::Result<()> {
    match cli.command {
        Command::Apply(args) => apply::run(args, words),
        Command::Inspect(args) => inspect::run(args),
        Command::Evaluate(args) => evaluate::run(args),
        Command::Extend(args) => extend::run(args, words),
        Command::Trim(args) => trim::run(args),
        Command::Shrink(args) => shrink::run(args),
        #[cfg(feature = "perplexity")]
        Command::Perplexity(args) => perplexity::run(args),
        Command::Devices { json } => devices::run(json),
        Command::Bench(args) => bench::run(args),
        Command::Distill(_) => Err(distill::not_here("distill").into()),
        Command::DistillTask(_) => Err(distill::not_here("distill-task").into()),
    }
}
