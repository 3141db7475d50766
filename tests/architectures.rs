//! `apply` on the tiny checkpoints of 38 architectures as transformers saves them
//! (`tests/fixtures/tiny-archs/`, see its README) onto the 500-token GPT-2 helper
//! (`tests/fixtures/helpers/gpt2-500`). For each: every vocabulary-indexed tensor (every tensor
//! with the 700-token vocabulary in its shape: embeddings, untied heads, `lm_head.bias`,
//! `final_logits_bias` `[1, 700]`, `cls.predictions.bias`, `decoder.bias`, ...) has the target's
//! rows, every other tensor is byte-identical to the source, dtypes and the other dimensions
//! are unchanged, and the rows of tokens in both vocabularies are the source rows bit-exactly.
//! Every failing fixture is reported at once.

mod fixtures;

use fixtures::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The vocabulary size of every fixture.
const SOURCE_VOCAB: usize = 700;

/// One fixture: its directory name, the extra `apply` arguments it needs, and a note.
struct Arch {
    name: &'static str,
    extra_args: &'static [&'static str],
    note: &'static str,
}

const fn arch(name: &'static str, note: &'static str) -> Arch {
    Arch {
        name,
        extra_args: &[],
        note,
    }
}

/// A family that needs a pad token: the gpt2-500 helper has none, so `<pad>` is added to the
/// target tokenizer (one more row).
const fn needs_pad(name: &'static str, note: &'static str) -> Arch {
    Arch {
        name,
        extra_args: &["--pad-token", "<pad>"],
        note,
    }
}

/// The 38 fixtures. The families marked "pad" compute position ids or shift labels with the
/// pad id; the gpt2-500 helper has none, and `apply` refuses such a family without
/// `--pad-token`, so they run with `--pad-token <pad>` (a new target token).
const ARCHS: &[Arch] = &[
    arch("gpt2", "tied wte"),
    arch("gpt_bigcode", "tied wte"),
    arch("bloom", "tied word_embeddings"),
    arch("falcon", "tied word_embeddings"),
    arch("gpt_neox", "untied embed_out"),
    arch("gptj", "untied lm_head + lm_head.bias"),
    arch("opt", "tied, word_embed_proj_dim"),
    arch("llama", "untied lm_head"),
    arch("mistral", "f16, untied"),
    arch("mixtral", "untied"),
    arch("qwen2", "bf16, tied"),
    arch("qwen3", "tied"),
    arch("gemma", "tied"),
    arch("gemma2", "tied"),
    arch("gemma3_text", "bf16, tied"),
    arch("phi", "f16, untied lm_head + lm_head.bias"),
    arch("phi3", "untied"),
    arch("stablelm", "untied"),
    arch("olmo2", "untied"),
    arch("cohere", "tied"),
    arch("granite", "untied"),
    arch("starcoder2", "tied"),
    arch("smollm3", "tied"),
    arch("gemma3", "multimodal: language_model. prefix, text_config"),
    arch("llava", "multimodal: language_model.lm_head untied"),
    needs_pad("t5", "pad: shared.weight, labels shifted with pad"),
    needs_pad("mt5", "pad: shared.weight + untied lm_head"),
    needs_pad("bart", "pad: model.shared + final_logits_bias [1, V]"),
    needs_pad("mbart", "pad: model.shared + final_logits_bias [1, V]"),
    needs_pad("m2m_100", "pad: model.shared, position ids from pad"),
    needs_pad(
        "whisper",
        "pad: decoder.embed_tokens, labels shifted with pad",
    ),
    arch("bert", "cls.predictions.bias"),
    needs_pad("roberta", "pad: position ids from pad; lm_head.bias"),
    needs_pad("xlm-roberta", "pad: position ids from pad; lm_head.bias"),
    arch("distilbert", "vocab_projector.bias"),
    arch("electra", "embedding_size; generator_lm_head.bias"),
    arch("deberta-v2", "cls.predictions.bias"),
    arch("modernbert", "tok_embeddings; decoder.bias"),
];

type Tensors = BTreeMap<String, (safetensors::Dtype, Vec<usize>, Vec<u8>)>;

/// `(target id, source id)` of the tokens spelled the same in both tokenizers.
fn overlap(source: &Path, target: &Path) -> Vec<(u32, u32)> {
    let src = vocab_of(source);
    let mut pairs: Vec<(u32, u32)> = vocab_of(target)
        .iter()
        .filter_map(|(t, &tid)| src.get(t).map(|&sid| (tid, sid)))
        .filter(|&(_, sid)| (sid as usize) < SOURCE_VOCAB)
        .collect();
    pairs.sort();
    pairs
}

/// Checks the output `out` of `apply` from `source` with `rows` target rows; returns the
/// problems found and the names of the rebuilt tensors.
fn check(
    source: &Path,
    out: &Path,
    rows: usize,
    overlap: &[(u32, u32)],
) -> (Vec<String>, Vec<String>) {
    let (before, after): (Tensors, Tensors) = (read_weights(source), read_weights(out));
    let mut problems = Vec::new();
    let mut rebuilt = Vec::new();
    if before.keys().ne(after.keys()) {
        problems.push("the output has other tensor names than the source".to_string());
    }
    for (name, (dtype, shape, bytes)) in &before {
        let Some((o_dtype, o_shape, o_bytes)) = after.get(name) else {
            continue;
        };
        if o_dtype != dtype {
            problems.push(format!("{name}: dtype {o_dtype:?}, source {dtype:?}"));
        }
        let Some(dim) = shape.iter().position(|&d| d == SOURCE_VOCAB) else {
            if name.ends_with("embeddings.position_embeddings.weight") && o_shape != shape {
                // RoBERTa-style positions follow the pad id: the table is shifted to it.
                if let Some(p) = shifted_positions(source, out, shape, bytes, o_shape, o_bytes) {
                    problems.push(format!("{name}: {p}"));
                }
                rebuilt.push(name.clone());
                continue;
            }
            if o_shape != shape || o_bytes != bytes {
                problems.push(format!("{name}: not byte-identical to the source"));
            }
            continue;
        };
        rebuilt.push(name.clone());
        let mut want = shape.clone();
        want[dim] = rows;
        if *o_shape != want {
            problems.push(format!("{name}: shape {o_shape:?}, want {want:?}"));
            continue;
        }
        // Rows along `dim`: a [1, V] tensor has rows of one value.
        let row = bytes.len() / SOURCE_VOCAB;
        for &(tid, sid) in overlap {
            let (t, s) = (tid as usize * row, sid as usize * row);
            if o_bytes[t..t + row] != bytes[s..s + row] {
                problems.push(format!("{name}: row {tid} is not source row {sid}"));
                break;
            }
        }
    }
    (problems, rebuilt)
}

/// Checks a position table shifted from the source's pad id to the output's: row `old + i`
/// of the source is row `new + i` of the output, every row below `new` is zero, and the config's
/// `max_position_embeddings` is the new row count.
fn shifted_positions(
    source: &Path,
    out: &Path,
    shape: &[usize],
    bytes: &[u8],
    o_shape: &[usize],
    o_bytes: &[u8],
) -> Option<String> {
    let pad = |dir: &Path| read_json(&dir.join("config.json"))["pad_token_id"].as_u64();
    let (Some(old), Some(new)) = (pad(source), pad(out)) else {
        return Some("shifted, but a config has no pad_token_id".into());
    };
    let (old, new) = (old as usize, new as usize);
    let rb = bytes.len() / shape[0];
    let want_rows = shape[0] - old + new;
    let max = read_json(&out.join("config.json"))["max_position_embeddings"].as_u64();
    if o_shape != [want_rows, shape[1]] || max != Some(want_rows as u64) {
        return Some(format!(
            "shape {o_shape:?} / max {max:?}, want {want_rows} rows"
        ));
    }
    if o_bytes[new * rb..] != bytes[old * rb..] || o_bytes[..new * rb].iter().any(|&b| b != 0) {
        return Some(format!("rows not shifted from pad {old} to pad {new}"));
    }
    None
}

/// Runs `apply` on one fixture; returns the problems (empty when it passed).
fn run_one(a: &Arch, backend: &str, pad_to: Option<usize>, tmp: &Path) -> Vec<String> {
    let source = fixture_path("tiny-archs").join(a.name);
    let helper = fixture_path("helpers/gpt2-500");
    let out = tmp.join(format!("{}-{backend}-{}", a.name, pad_to.unwrap_or(0)));
    let mut args = vec![
        "--source",
        s(&source),
        "--helper",
        s(&helper),
        "--out",
        s(&out),
        "--backend",
        backend,
        "--json",
    ];
    let pad = pad_to.map(|p| p.to_string());
    if let Some(p) = &pad {
        args.extend(["--pad-to-multiple", p]);
    }
    args.extend(a.extra_args);
    let o = run("apply", &args);
    if !o.status.success() {
        return vec![format!(
            "apply failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )];
    }
    let target = vocab_of(&helper)
        .values()
        .map(|&i| i as usize + 1)
        .max()
        .unwrap();
    let added_pad = usize::from(a.extra_args.contains(&"--pad-token"));
    let target = target + added_pad;
    let rows = pad_to.map_or(target, |p| target.next_multiple_of(p));
    let (problems, rebuilt) = check(&source, &out, rows, &overlap(&source, &helper));
    let mut problems = problems;
    if rebuilt.is_empty() {
        problems.push("no tensor has the vocabulary in its shape".into());
    }
    let _ = std::fs::remove_dir_all(&out);
    problems
}

#[test]
fn every_architecture_gets_the_target_vocabulary_and_keeps_every_other_byte() {
    let tmp = tempfile::tempdir().unwrap();
    assert_eq!(ARCHS.len(), 38);
    let mut failed = Vec::new();
    for a in ARCHS {
        for p in run_one(a, "cpu", None, tmp.path()) {
            failed.push(format!("{} ({}): {p}", a.name, a.note));
        }
    }
    // Padding, and the GPU engine (lavapipe in CI) on one family of each kind.
    for (name, backend, pad) in [
        ("gpt2", "cpu", Some(64)),
        ("bart", "cpu", Some(64)),
        ("phi", "gpu", None),
        ("bart", "gpu", None),
        ("modernbert", "gpu", Some(8)),
        ("gemma3", "gpu", None),
    ] {
        let a = ARCHS.iter().find(|a| a.name == name).unwrap();
        for p in run_one(a, backend, pad, tmp.path()) {
            failed.push(format!("{name} ({backend}, pad {pad:?}): {p}"));
        }
    }
    assert!(
        failed.is_empty(),
        "{} problem(s):\n{}",
        failed.len(),
        failed.join("\n")
    );
}

/// A copy of `dir` whose tokenizer.json has one more added token, `<image_soft_token>`, at
/// `id` (one past the embedding's rows, as Gemma 3 ships it).
fn with_token_past_rows(dir: &Path, to: &Path, id: u32) -> PathBuf {
    let d = copy_dir(dir, to);
    let path = d.join("tokenizer.json");
    let mut tj = read_json(&path);
    tj["added_tokens"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "id": id, "content": "<image_soft_token>", "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": true
        }));
    write_json(&path, &tj);
    d
}

#[test]
fn an_added_token_past_the_embedding_is_not_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let helper = fixture_path("helpers/gpt2-500");
    let gpt2 = fixture_path("tiny-archs/gpt2");
    // Source side: the token has no source row, so it is not in the source vocabulary.
    let source = with_token_past_rows(&gpt2, &tmp.path().join("src"), SOURCE_VOCAB as u32);
    let out = tmp.path().join("out-src");
    let args = [
        "--source",
        s(&source),
        "--helper",
        s(&helper),
        "--out",
        s(&out),
        "--backend",
        "cpu",
    ];
    ok(run("apply", &args));
    let (problems, _) = check(&source, &out, 500, &overlap(&source, &helper));
    assert!(problems.is_empty(), "{problems:?}");
    // Target side: the helper has no row for it; it gets the fallback, the rest is as usual.
    let target = with_token_past_rows(&helper, &tmp.path().join("hlp"), 500);
    let out = tmp.path().join("out-tgt");
    let args = [
        "--source",
        s(&gpt2),
        "--helper",
        s(&target),
        "--out",
        s(&out),
        "--backend",
        "cpu",
    ];
    ok(run("apply", &args));
    let (problems, _) = check(&gpt2, &out, 501, &overlap(&gpt2, &target));
    assert!(problems.is_empty(), "{problems:?}");
    // trim keeps the token past the (trimmed) rows.
    let corpus = tmp.path().join("corpus.txt");
    std::fs::write(&corpus, "the cat sat on the mat\nhello world\n").unwrap();
    let out = tmp.path().join("out-trim");
    let args = [
        "--model",
        s(&source),
        "--corpus",
        s(&corpus),
        "--out",
        s(&out),
    ];
    ok(run("trim", &args));
    let weights = read_weights(&out);
    let rows = weights["transformer.wte.weight"].1[0];
    let id = vocab_of(&out)["<image_soft_token>"] as usize;
    assert!(
        rows < SOURCE_VOCAB && id >= rows,
        "{rows} rows, token at {id}"
    );
}
