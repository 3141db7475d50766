//! The command line described for the Python side: each exposed subcommand with its help and,
//! per flag, its help, default, choices and a type tag. All of it is read from the engine's
//! clap definition ([`clp_gpu::cli::command`]); nothing here restates a default.
//!
//! Type tags (what `clp_gpu/_spec.py` turns into annotations), from clap's metadata of each
//! flag: `bool` (a switch: `ArgAction::SetTrue`), `int` and `float` (the value parser's type),
//! `path` (a path's value hint: a `PathBuf`, or a directory or hub id), `size` (the value
//! parser's type is [`ByteSize`]: an int or a string like `512MiB`), `top_k` ([`TopK`]: an int
//! or `"all"`), `str` (anything else). Choices are the possible values clap lists (value enums).

use clap::{Arg, ArgAction, Command, ValueHint};
use clp_gpu::cli::args::ByteSize;
use clp_gpu::TopK;
use serde_json::{json, Value};
use std::any::TypeId;
use std::path::PathBuf;

/// The subcommands the module has a function for (`bench` stays on the command line).
const COMMANDS: &[&str] = &[
    "apply",
    "evaluate",
    "extend",
    "inspect",
    "trim",
    "shrink",
    "perplexity",
    "devices",
];

/// Flags the functions do not take: they return the report (`--json`), and `progress=`
/// replaces `--quiet`.
const NOT_ARGUMENTS: &[&str] = &["json", "quiet", "help", "version"];

/// Every exposed subcommand, in the CLI's order.
pub fn spec() -> Value {
    let cli = clp_gpu::cli::command();
    let commands: Vec<Value> = cli
        .get_subcommands()
        .filter(|c| COMMANDS.contains(&c.get_name()))
        .map(command)
        .collect();
    json!({ "version": env!("CARGO_PKG_VERSION"), "commands": commands })
}

/// A command's flags in `--help`'s order (clap's display order: `mut_arg`, which evaluate and
/// inspect use to reword a shared flag, moves the flag to the end of `get_arguments`).
fn command(c: &Command) -> Value {
    let mut flags: Vec<&Arg> = c
        .get_arguments()
        .filter(|a| !NOT_ARGUMENTS.contains(&a.get_id().as_str()) && a.get_long().is_some())
        .collect();
    flags.sort_by_key(|a| a.get_display_order());
    let args: Vec<Value> = flags.into_iter().map(argument).collect();
    json!({
        "name": c.get_name(),
        "about": c.get_about().map(ToString::to_string),
        "long_about": c.get_long_about().map(ToString::to_string),
        // Commands with --quiet report progress or notices: their functions take `progress`.
        "progress": c.get_arguments().any(|a| a.get_id() == "quiet"),
        "args": args,
    })
}

fn argument(a: &Arg) -> Value {
    let switch = matches!(a.get_action(), ArgAction::SetTrue);
    let defaults: Vec<String> = if switch {
        Vec::new()
    } else {
        let d = a.get_default_values().iter();
        d.map(|v| v.to_string_lossy().into_owned()).collect()
    };
    json!({
        "long": a.get_long(),
        "help": a.get_long_help().or(a.get_help()).map(ToString::to_string),
        "required": a.is_required_set(),
        "multiple": matches!(a.get_action(), ArgAction::Append),
        "delimiter": a.get_value_delimiter().map(String::from),
        "default": defaults,
        "choices": choices(a, switch),
        "type": type_tag(a, switch),
    })
}

/// The values an argument takes: its value enum's names (hidden ones left out).
fn choices(a: &Arg, switch: bool) -> Vec<String> {
    if switch {
        return Vec::new();
    }
    a.get_possible_values()
        .iter()
        .filter(|p| !p.is_hide_set())
        .map(|p| p.get_name().to_string())
        .collect()
}

fn type_tag(a: &Arg, switch: bool) -> &'static str {
    if switch {
        return "bool";
    }
    let t = a.get_value_parser().type_id();
    let is = |id: TypeId| t == id;
    if is(TypeId::of::<ByteSize>()) {
        "size"
    } else if is(TypeId::of::<TopK>()) {
        "top_k"
    } else if [
        TypeId::of::<u64>(),
        TypeId::of::<usize>(),
        TypeId::of::<u32>(),
        TypeId::of::<i64>(),
    ]
    .into_iter()
    .any(is)
    {
        "int"
    } else if is(TypeId::of::<f64>()) || is(TypeId::of::<f32>()) {
        "float"
    } else if is(TypeId::of::<PathBuf>()) || is_path_hint(a.get_value_hint()) {
        "path"
    } else {
        "str"
    }
}

/// Whether a value hint names a path (clap gives a `PathBuf` argument `AnyPath`; a directory
/// or hub id such as `--source` says `DirPath` itself).
fn is_path_hint(hint: ValueHint) -> bool {
    matches!(
        hint,
        ValueHint::AnyPath | ValueHint::FilePath | ValueHint::DirPath | ValueHint::ExecutablePath
    )
}
