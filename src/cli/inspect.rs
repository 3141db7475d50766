//! The `inspect` subcommand: clap arguments and printing; the work is [`crate::commands::inspect`].

use super::args::{MatchArgs, PairArgs};
use crate::commands::inspect::{inspect, InspectOptions, InspectReport};
use crate::vocab::{MatchMode, PairExample};

/// Show how the helper's tokenizer overlaps the source's (tokenizer files only: no weights, no GPU).
#[derive(Debug, clap::Args)]
#[command(
    mut_arg("source", |a| a.help("Source model: a directory with tokenizer.json (config.json optional), or an `org/name` id in the local HF cache")),
    mut_arg("helper", |a| a.required(true).help("Helper model (speaks the target tokenizer): a directory or an `org/name` id in the local HF cache")),
    mut_arg("match_mode", |a| a.help("How target tokens find source tokens, as in `apply`: `canonical` (same bytes and word start across spellings: `Ġhello` = `▁hello`) or `exact` (same string)")),
)]
pub struct InspectArgs {
    /// --source, --helper (required here) and --helper-tokenizer.
    #[command(flatten)]
    pub pair: PairArgs,
    /// --match.
    #[command(flatten)]
    pub matching: MatchArgs,
    /// Examples of each kind to list (the first by target id).
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub examples: usize,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Runs `inspect` without printing: the report `--json` prints.
pub fn report(args: InspectArgs) -> anyhow::Result<InspectReport> {
    Ok(inspect(&InspectOptions {
        helper: args.pair.required_helper()?,
        source: args.pair.source,
        helper_tokenizer: args.pair.helper_tokenizer,
        match_mode: args.matching.match_mode,
        examples: args.examples,
    })?)
}

/// Runs `inspect` and prints its report.
pub fn run(args: InspectArgs) -> anyhow::Result<()> {
    let json = args.json;
    let report = report(args)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        if let Some(n) = &report.matching.notice {
            eprintln!("notice: {n}");
        }
        print!("{}", text(&report));
    }
    Ok(())
}

fn quoted(token: &Option<String>) -> String {
    match token {
        Some(t) => format!("{t:?}"),
        None => "(no token)".into(),
    }
}

fn pair_line(p: &PairExample) -> String {
    let mut line = format!(
        "  {:>7} {} <- {} {}",
        p.target_id,
        quoted(&p.target_token),
        p.source_id,
        quoted(&p.source_token)
    );
    if let Some(c) = &p.canonical {
        line.push_str(&format!("  (text {c:?})"));
    }
    if let Some(r) = p.role {
        line.push_str(&format!("  ({})", r.name()));
    }
    line
}

/// The human-readable report.
fn text(r: &InspectReport) -> String {
    let m = &r.matching;
    let c = &m.counts;
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(format!(
        "source  {}: {} tokens, {}",
        r.source.tokenizer.display(),
        r.source.tokens,
        m.source_family
    ));
    line(format!(
        "target  {}: {} tokens, {}",
        r.target.tokenizer.display(),
        r.target.tokens,
        m.target_family
    ));
    line(format!("match   {}", c.mode));
    line(String::new());
    let share = |n: usize| 100.0 * n as f64 / c.target_tokens.max(1) as f64;
    for (kind, n) in [
        ("exact", c.exact),
        ("canonical-only", c.canonical),
        ("special by role", c.special_by_role),
        ("missing", c.missing),
    ] {
        line(format!("  {kind:<16} {n:>8} {:>6.1}%", share(n)));
    }
    line(format!("  {:<16} {:>8}", "target tokens", c.target_tokens));
    if c.mode == MatchMode::Canonical {
        line(format!(
            "  {:<16} {:>8}  (source tokens that lost a shared canonical form to a preferred one)",
            "source collisions", c.source_collisions
        ));
    }
    if let Some(n) = r.canonical_would_add {
        line(format!(
            "  --match canonical would copy {n} more target tokens"
        ));
    }
    let ex = &m.examples;
    let sections: [(&str, usize, Vec<String>); 4] = [
        ("exact", c.exact, ex.exact.iter().map(pair_line).collect()),
        (
            "canonical-only",
            c.canonical,
            ex.canonical.iter().map(pair_line).collect(),
        ),
        (
            "special by role",
            c.special_by_role,
            ex.special_by_role.iter().map(pair_line).collect(),
        ),
        (
            "missing",
            c.missing,
            ex.missing
                .iter()
                .map(|e| format!("  {:>7} {}", e.target_id, quoted(&e.target_token)))
                .collect(),
        ),
    ];
    for (kind, total, lines) in sections {
        if lines.is_empty() {
            continue;
        }
        line(String::new());
        line(format!(
            "{kind}: first {} of {total} by target id (target <- source)",
            lines.len()
        ));
        for l in lines {
            line(l);
        }
    }
    out
}
