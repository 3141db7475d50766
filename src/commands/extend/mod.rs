//! `clp-gpu extend`: grow a model's own tokenizer with tokens learnt from a language's text,
//! and give the new rows a start; every existing token keeps its string, id and row.
//!
//! Stages (timed in the report), run in order by [`extend`]:
//! 1. **read**: resolve the model (offline), read the corpora ([`corpora`]: one document per
//!    line, an evenly spread held-out share set aside).
//! 2. **learn** ([`learn`]): train a tokenizer of the model's own family on the training lines
//!    with the model's normaliser and pre-tokeniser, and append up to `--add` new tokens (with
//!    the merges, pieces or entries that make each reachable) after the largest existing id.
//! 3. **check**: every line of every corpus (training and held-out) encoded by the original and
//!    the extended tokenizer: none may take more tokens or decode differently; tokens per byte
//!    before and after go in the report.
//! 4. **rows** ([`rows`]): the `apply` engine with the extended tokenizer as the target. Every
//!    existing token matches itself and its rows are copied bit-exact; the new tokens are the
//!    missing ones: FVT by default (the mean of the model's rows of the token's pieces under the
//!    original tokenizer), or with `--helper` a weighting in the helper's embedding space.
//! 5. **write**: the model directory and `extend_report.json`, renamed to OUT at the end.

mod corpora;
pub mod learn;
mod options;
mod rows;

pub use options::{AddedToken, CorpusFertility, ExtendOptions, ExtendSummary, RowsSummary};

use crate::commands::apply::{ApplySummary, Method};
use crate::commands::timer::Timer;
use crate::error::{Error, Result};
use crate::json::write_json;
use crate::model::{hub, writer};
use learn::{Fertility, LearnOptions};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The report's file name in OUT.
pub const REPORT_FILE: &str = "extend_report.json";

/// Runs the whole extension; see the module docs. Nothing exists at `opts.out` unless this
/// returns `Ok`.
pub fn extend(opts: &ExtendOptions) -> Result<ExtendSummary> {
    let mut timer = Timer::start();
    check_options(opts)?;
    let model_dir = hub::resolve_model_dir(&opts.model, "--model")?;
    let tokenizer_json = model_tokenizer(&model_dir)?;
    writer::check_out(&opts.out, opts.force)?;
    writer::refuse_out_over_input(&opts.out, &[&model_dir])?;
    let corpora = corpora::read(&opts.corpora, opts.holdout)?;
    timer.lap("read");

    let train: Vec<String> = corpora.iter().flat_map(|c| c.train.clone()).collect();
    let learn_opts = LearnOptions {
        add: opts.add,
        min_freq: opts.min_freq,
    };
    let extension = learn::learn(&tokenizer_json, &train, &learn_opts)?;
    drop(train);
    timer.lap("learn");

    if extension.tokens.is_empty() {
        let why = match extension.notes.first() {
            Some(n) => format!(" ({})", crate::error::one_line(n)),
            None => String::new(),
        };
        return Err(Error::Argument(format!(
            "the corpora hold no token the model lacks that was seen at least {} times (--min-freq){why}; give more text or lower --min-freq",
            opts.min_freq
        )));
    }
    let bytes = std::fs::read(&tokenizer_json).map_err(|e| Error::io(&tokenizer_json, e))?;
    let original = crate::tokenizer::load::from_bytes(&tokenizer_json, &bytes)?;
    let extended = crate::tokenizer::load::from_bytes(&tokenizer_json, &extension.tokenizer_json)?;
    let fertility = check_corpora(&original, &extended, &corpora)?;
    timer.lap("check");

    let staging = writer::Staging::create(&opts.out, opts.force)?;
    let built = rows::build(opts, &model_dir, &extension, staging.path())?;
    timer.lap("rows");

    let tokens = added_tokens(&original, &extension);
    let mut notices = built.notices.clone();
    if extension.tokens.len() < opts.add {
        notices.push(format!(
            "added {} of the {} tokens asked for: the corpora hold no more that the model lacks and that are used at least {} times (--min-freq); more text gives more",
            extension.tokens.len(),
            opts.add,
            opts.min_freq
        ));
    }
    notices.extend(extension.notes.iter().cloned());
    let summary = ExtendSummary {
        out: opts.out.clone(),
        model: model_dir,
        family: extension.family.to_string(),
        tokens_before: extension.tokens[0].id as usize,
        tokens_after: built.summary.target_tokens,
        added: extension.tokens.len(),
        asked: opts.add,
        min_freq: opts.min_freq,
        train: total(fertility.iter().map(|f| &f.train)),
        heldout: total(fertility.iter().map(|f| &f.heldout)),
        fertility,
        rows: rows_summary(&built.summary, built.helper.clone()),
        tokens,
        notices,
        arguments: opts.arguments.clone(),
        timings_s: BTreeMap::new(),
    };
    finish(summary, staging, timer)
}

/// Writes the report (with the final timings) and renames the staging directory to OUT.
fn finish(
    mut summary: ExtendSummary,
    staging: writer::Staging,
    mut timer: Timer,
) -> Result<ExtendSummary> {
    timer.lap("write");
    summary.timings_s = timer.stages().clone();
    let value = serde_json::to_value(&summary)
        .map_err(|e| Error::Model(format!("cannot serialise the report: {e}")))?;
    write_json(&staging.path().join(REPORT_FILE), &value)?;
    staging.commit()?;
    Ok(summary)
}

/// The checks that need no file.
fn check_options(opts: &ExtendOptions) -> Result<()> {
    if opts.add == 0 {
        return Err(Error::Argument(
            "--add 0: give how many tokens to add, a whole number ≥ 1 (e.g. 8000)".into(),
        ));
    }
    if opts.pad_to_multiple == Some(0) {
        return Err(Error::Argument(
            "--pad-to-multiple 0: give a whole number ≥ 1".into(),
        ));
    }
    opts.method.validate().map_err(Error::Argument)?;
    match (opts.method, &opts.helper) {
        (Method::Weighted(w), None) => Err(Error::Argument(format!(
            "--weighting {} needs --helper DIR|ID (a model that knows the language: its embeddings give the weights); without one, extend uses fvt",
            w.name()
        ))),
        _ => Ok(()),
    }
}

/// The model's `tokenizer.json` (extend needs the fast tokenizer's file: the vocabulary and,
/// for BPE, the merges live there).
fn model_tokenizer(dir: &Path) -> Result<PathBuf> {
    let path = dir.join("tokenizer.json");
    if !path.is_file() {
        return Err(Error::bad_file(
            dir,
            "has no tokenizer.json; extend needs the model's fast tokenizer file (save it with transformers: AutoTokenizer.from_pretrained(DIR).save_pretrained(DIR))",
        ));
    }
    Ok(path)
}

/// Every corpus checked: no line may take more tokens after, or decode differently.
fn check_corpora(
    original: &tokenizers::Tokenizer,
    extended: &tokenizers::Tokenizer,
    corpora: &[corpora::Corpus],
) -> Result<Vec<CorpusFertility>> {
    let mut out = Vec::new();
    for c in corpora {
        let train = learn::check(original, extended, &c.train);
        let heldout = learn::check(original, extended, &c.heldout);
        for (f, which) in [(&train, "training"), (&heldout, "held-out")] {
            if f.longer > 0 || f.roundtrip_failures > 0 {
                return Err(Error::Model(format!(
                    "{}: the extended tokenizer breaks its guarantees on {which} lines ({} take more tokens, {} decode differently); this is a bug in extend, please report it with the corpus",
                    c.path.display(),
                    f.longer,
                    f.roundtrip_failures
                )));
            }
        }
        out.push(CorpusFertility {
            corpus: c.path.clone(),
            train,
            heldout,
        });
    }
    Ok(out)
}

/// The sum of several corpora's figures.
fn total<'a>(parts: impl Iterator<Item = &'a Fertility>) -> Fertility {
    let mut t = Fertility::default();
    for f in parts {
        t.lines += f.lines;
        t.bytes += f.bytes;
        t.tokens_before += f.tokens_before;
        t.tokens_after += f.tokens_after;
        t.longer += f.longer;
        t.roundtrip_failures += f.roundtrip_failures;
    }
    t
}

/// The report's list of added tokens, with their pieces spelled by the original tokenizer.
fn added_tokens(original: &tokenizers::Tokenizer, ext: &learn::Extension) -> Vec<AddedToken> {
    ext.tokens
        .iter()
        .map(|t| AddedToken {
            id: t.id,
            token: t.content.clone(),
            text: t.text.clone(),
            pieces: (t.pieces_before.iter())
                .map(|&id| original.id_to_token(id).unwrap_or_default())
                .collect(),
            rank: t.rank,
            frequency: t.frequency,
        })
        .collect()
}

fn rows_summary(s: &ApplySummary, helper: Option<PathBuf>) -> RowsSummary {
    RowsSummary {
        method: s.weighting.clone(),
        helper,
        backend: s.backend.clone(),
        adapter: s.adapter.clone(),
        dtype: s.dtype.clone(),
        target_rows: s.target_rows,
        copied: s.overlap + s.special_by_role,
        computed: s.computed,
        fallback: s.fallback,
        tensors_rebuilt: s.tensors_rebuilt.clone(),
    }
}
