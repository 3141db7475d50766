//! `clp-gpu extend` end to end: a small model with an English byte-level BPE tokenizer grown with
//! tokens of a made-up language. The rows are checked against values this file computes itself
//! in f64 from the input weights: existing rows bit-exact, FVT rows as the mean of the rows of
//! the token's pieces under the ORIGINAL tokenizer (encoded here with the tokenizers crate), and
//! helper rows as CLP over the top-k cosines in the helper's space.

mod fixtures;

use clp_gpu::tensor::DType;
use fixtures::*;
use std::path::{Path, PathBuf};

/// Words of a made-up language: long, with recurring stems, so a trainer finds merges the
/// English tokenizer lacks.
const WORDS: &[&str] = &[
    "schnorkel",
    "schnorkelbaum",
    "baumhaus",
    "hausmaus",
    "mausefalle",
    "fallobst",
    "obstgarten",
    "gartenzwerg",
    "zwergenland",
    "landkarte",
    "kartenspiel",
    "spielplatz",
    "platzregen",
    "regenwurm",
    "wurmloch",
    "lochkarte",
];

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("clp-extend-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A Llama-layout model (untied input embedding and lm_head) with an English tokenizer, and a
/// corpus of the made-up language.
fn model_and_corpus(dir: &Path, dtype: DType) -> (Model, PathBuf) {
    let model = build_model(
        &dir.join("model"),
        &ModelSpec {
            arch: Arch::Llama,
            vocab: Vocab::Trained {
                lang: Lang::English,
                size: 300,
                pad_rows: 0,
            },
            dim: 16,
            dtype,
            ..ModelSpec::default()
        },
    );
    let corpus = dir.join("corpus.txt");
    write_corpus(&corpus, &lines(WORDS, 400, 7));
    (model, corpus)
}

fn extend_args<'a>(
    model: &'a Model,
    corpus: &'a Path,
    out: &'a Path,
    add: &'a str,
) -> Vec<&'a str> {
    vec![
        "--model",
        s(&model.dir),
        "--corpus",
        s(corpus),
        "--add",
        add,
        "--out",
        s(out),
        "--json",
        "--quiet",
    ]
}

fn rows_f64(dtype: DType, bytes: &[u8], dim: usize) -> Vec<Vec<f64>> {
    let n = bytes.len() / dtype.size_bytes();
    let v: Vec<f64> = (0..n).map(|i| dtype.decode(bytes, i) as f64).collect();
    v.chunks(dim).map(<[f64]>::to_vec).collect()
}

/// The ids the tokenizer's model alone (BPE merges) splits a vocabulary string into.
fn model_split(tok: &tokenizers::Tokenizer, content: &str) -> Vec<u32> {
    use tokenizers::Model;
    let pieces = tok.get_model().tokenize(content).unwrap();
    pieces.iter().map(|t| t.id).collect()
}

/// Existing rows bit-exact, existing ids and strings unchanged, every new token reachable.
fn check_kept(model: &Model, out: &Path) -> (tokenizers::Tokenizer, Vec<(u32, String)>) {
    let before = tokenizer(&model.dir);
    let after = tokenizer(out);
    let v0 = model.tokens as u32;
    for id in 0..v0 {
        assert_eq!(after.id_to_token(id), before.id_to_token(id), "id {id}");
    }
    let ws = read_weights(out);
    for name in model.vocab_tensors() {
        let (_, shape, bytes) = &ws[name];
        let orig = &model.tensor(name).bytes;
        assert!(shape[0] > model.tokens, "{name} grew: {shape:?}");
        assert_eq!(
            &bytes[..orig.len()],
            &orig[..],
            "{name}: existing rows bit-exact"
        );
    }
    let mut new = Vec::new();
    for id in v0..after.get_vocab_size(true) as u32 {
        // The model alone (no pre-tokenizer: the tokenizer adds a prefix space to whole texts).
        let token = after.id_to_token(id).unwrap();
        let split = model_split(&after, &token);
        assert_eq!(
            split,
            vec![id],
            "new token {token:?} is reachable: it splits to itself"
        );
        new.push((id, token));
    }
    assert!(!new.is_empty());
    (before, new)
}

#[test]
fn fvt_rows_are_the_mean_of_the_original_pieces_and_existing_rows_stay() {
    let dir = temp("fvt");
    let (model, corpus) = model_and_corpus(&dir, DType::BF16);
    let out = dir.join("out");
    let report = ok_json(run("extend", &extend_args(&model, &corpus, &out, "40")));
    let (before, new) = check_kept(&model, &out);
    assert_eq!(report["added"].as_u64().unwrap() as usize, new.len());
    assert!(new.len() <= 40);
    let ws = read_weights(&out);
    for name in model.vocab_tensors() {
        let orig = rows_f64(DType::BF16, &model.tensor(name).bytes, model.dim);
        let got = rows_f64(DType::BF16, &ws[name].2, model.dim);
        for (id, token) in &new {
            let pieces = model_split(&before, token);
            assert!(pieces.len() > 1, "{token:?} was already one token");
            for c in 0..model.dim {
                let mean =
                    pieces.iter().map(|&p| orig[p as usize][c]).sum::<f64>() / pieces.len() as f64;
                let g = got[*id as usize][c];
                assert!(
                    (g - mean).abs() <= 1e-2 * mean.abs().max(1e-3),
                    "{name} row {id} ({token:?}) col {c}: {g} vs mean {mean}"
                );
            }
        }
    }
    // Fertility: the report's figures, recounted here.
    let train = &report["train"];
    assert!(train["tokens_after"].as_u64() < train["tokens_before"].as_u64());
    assert_eq!(train["longer"], 0);
    assert_eq!(train["roundtrip_failures"], 0);
    let config = read_json(&out.join("config.json"));
    assert_eq!(
        config["vocab_size"].as_u64().unwrap() as usize,
        model.tokens + new.len()
    );
    assert!(!out.join("clp_transfer.json").exists());
    let saved = read_json(&out.join("extend_report.json"));
    assert_eq!(saved["tokens"].as_array().unwrap().len(), new.len());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_same_inputs_give_the_same_bytes() {
    let dir = temp("determinism");
    let (model, corpus) = model_and_corpus(&dir, DType::F32);
    let (a, b) = (dir.join("a"), dir.join("b"));
    ok_json(run("extend", &extend_args(&model, &corpus, &a, "25")));
    ok_json(run("extend", &extend_args(&model, &corpus, &b, "25")));
    let (mut fa, mut fb) = (dir_bytes(&a), dir_bytes(&b));
    for f in [&mut fa, &mut fb] {
        f.remove("extend_report.json");
    }
    assert_eq!(fa, fb);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A helper whose tokenizer is the extended one (so every token has its own helper row) with
/// random embeddings: the expected new rows are CLP over the top-k cosines in its space,
/// computed here.
#[test]
fn helper_rows_are_clp_over_the_nearest_tokens_in_the_helper_space() {
    let dir = temp("helper");
    let (model, corpus) = model_and_corpus(&dir, DType::F32);
    let first = dir.join("first");
    ok_json(run("extend", &extend_args(&model, &corpus, &first, "20")));
    let helper_dir = dir.join("helper");
    std::fs::create_dir_all(&helper_dir).unwrap();
    for f in [
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    ] {
        std::fs::copy(first.join(f), helper_dir.join(f)).unwrap();
    }
    let v = tokenizer(&first).get_vocab_size(true);
    let helper = build_model(
        &helper_dir,
        &ModelSpec {
            arch: Arch::Gpt2,
            vocab: Vocab::Rows(v),
            dim: 8,
            seed: 900,
            ..ModelSpec::default()
        },
    );
    for backend in ["cpu", "gpu"] {
        let out = dir.join(format!("out-{backend}"));
        let mut args = extend_args(&model, &corpus, &out, "20");
        args.extend([
            "--helper",
            s(&helper_dir),
            "--weighting",
            "clp",
            "--top-k",
            "4",
            "--backend",
            backend,
        ]);
        let report = ok_json(run("extend", &args));
        assert_eq!(report["rows"]["fallback"], 0, "{report}");
        let (_, new) = check_kept(&model, &out);
        let h = rows_f64(DType::F32, &helper.tensor(helper.input_name()).bytes, 8);
        let ws = read_weights(&out);
        for name in model.vocab_tensors() {
            let e = rows_f64(DType::F32, &model.tensor(name).bytes, model.dim);
            let got = rows_f64(DType::F32, &ws[name].2, model.dim);
            for (id, token) in &new {
                let want = clp_top_k(&h, *id as usize, model.tokens, 4, &e);
                for c in 0..model.dim {
                    let g = got[*id as usize][c];
                    assert!(
                        (g - want[c]).abs() <= 1e-4 * (1.0 + want[c].abs()),
                        "{backend} {name} row {id} ({token:?}) col {c}: {g} vs {}",
                        want[c]
                    );
                }
            }
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Σ cos_j e_j / Σ cos_j over the `k` existing tokens (ids below `v0`) most similar to `t` in
/// the helper space `h` (ties: the smaller id).
fn clp_top_k(h: &[Vec<f64>], t: usize, v0: usize, k: usize, e: &[Vec<f64>]) -> Vec<f64> {
    let norm = |x: &[f64]| x.iter().map(|a| a * a).sum::<f64>().sqrt();
    let cos = |a: &[f64], b: &[f64]| {
        a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>() / (norm(a) * norm(b))
    };
    let mut scored: Vec<(f64, usize)> = (0..v0).map(|j| (cos(&h[t], &h[j]), j)).collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let top = &scored[..k];
    let sum: f64 = top.iter().map(|p| p.0).sum();
    (0..e[0].len())
        .map(|c| top.iter().map(|&(w, j)| w * e[j][c]).sum::<f64>() / sum)
        .collect()
}

#[test]
fn bad_inputs_fail_in_one_line_and_leave_nothing() {
    let dir = temp("bad");
    let (model, corpus) = model_and_corpus(&dir, DType::F32);
    let out = dir.join("out");
    let fail = |args: Vec<&str>, needles: &[&str]| {
        assert_fails_cleanly(run("extend", &args), &out, needles);
    };
    fail(extend_args(&model, &corpus, &out, "0"), &["--add 0"]);
    let missing = dir.join("missing.txt");
    fail(extend_args(&model, &missing, &out, "10"), &["missing.txt"]);
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "\n\n").unwrap();
    fail(extend_args(&model, &empty, &out, "10"), &["empty.txt"]);
    let no_tok = copy_dir(&model.dir, &dir.join("no-tokenizer"));
    std::fs::remove_file(no_tok.join("tokenizer.json")).unwrap();
    let m2 = Model {
        dir: no_tok,
        ..model.clone()
    };
    fail(extend_args(&m2, &corpus, &out, "10"), &["tokenizer.json"]);
    let mut weighted = extend_args(&model, &corpus, &out, "10");
    weighted.extend(["--weighting", "softmax"]);
    fail(weighted, &["--helper"]);
    std::fs::create_dir_all(&out).unwrap();
    let taken = run("extend", &extend_args(&model, &corpus, &out, "10"));
    assert!(!taken.status.success());
    assert!(String::from_utf8_lossy(&taken.stderr).contains("--force"));
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0, "OUT untouched");
    std::fs::remove_dir_all(&dir).unwrap();
}
