//! `perplexity`: the arithmetic against values computed another way (uniform logits give
//! ln V nats per token; identical weights give identical figures; windows at context ± 1 add up
//! to the single-window scores), the forward pass of every supported family against
//! transformers (tests/fixtures/perplexity/reference.json and tiny-archs.json, written by
//! tests/python/perplexity_reference.py and perplexity_tiny_archs_reference.py), one pass per
//! window against the token-by-token path, and the CLI end to end.
#![cfg(feature = "perplexity")]

mod fixtures;

use clp_gpu::commands::perplexity::{
    perplexity, score_tokens, score_tokens_with, stepwise, LanguageModel, PerplexityOptions,
    Scoring, DECODER_TYPES, ENCODER_TYPES,
};
use fixtures::{assert_close, bin, fixture_path};
use std::path::{Path, PathBuf};

const V: f64 = 700.0;

fn fixtures() -> PathBuf {
    fixture_path("perplexity")
}

/// A model directory for `family` in `root`: the fixture's config and weights plus the shared
/// tokenizer.
fn model_dir(root: &Path, family: &str, name: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixtures().join(family).join(f), dir.join(f)).unwrap();
    }
    std::fs::copy(
        fixtures().join("tokenizer.json"),
        dir.join("tokenizer.json"),
    )
    .unwrap();
    dir
}

/// Rewrites `dir/model.safetensors` with the tensors named in `zero` set to 0 (f32 fixtures).
fn zero_tensors(dir: &Path, zero: &[&str]) {
    use safetensors::tensor::TensorView;
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let owned: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(name, t)| {
            let data = if zero.contains(&name.as_str()) {
                vec![0u8; t.data().len()]
            } else {
                t.data().to_vec()
            };
            (name, t.dtype(), t.shape().to_vec(), data)
        })
        .collect();
    for z in zero {
        assert!(owned.iter().any(|(n, ..)| n == z), "no tensor {z}");
    }
    let views: Vec<(String, TensorView)> = owned
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, &path).unwrap();
}

fn set_config(dir: &Path, key: &str, value: serde_json::Value) {
    let path = dir.join("config.json");
    let mut c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    c[key] = value;
    std::fs::write(&path, serde_json::to_string_pretty(&c).unwrap()).unwrap();
}

fn write_text(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

fn options(models: Vec<PathBuf>, text: PathBuf, context: usize) -> PerplexityOptions {
    PerplexityOptions {
        models,
        text,
        context,
        max_bytes: None,
        progress: clp_gpu::progress::Progress::Hidden,
    }
}

const DOCS: &str = "{\"text\": \"The quick brown fox jumps over the lazy dog.\"}\n{\"text\": \"Zwölf Boxkämpfer jagen Viktor\\nquer über den Deich.\"}\n";

#[test]
fn perplexity_uniform_logits_give_log2_vocab_bits_per_token() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = model_dir(tmp.path(), "llama", "uniform");
    zero_tensors(&dir, &["lm_head.weight", "model.norm.weight"]);
    let text = write_text(tmp.path(), "docs.jsonl", DOCS);
    for context in [2, 5, 64] {
        let r = perplexity(&options(vec![dir.clone()], text.clone(), context)).unwrap();
        let m = &r.models[0];
        assert_eq!(m.scored_tokens, m.tokens, "BOS: every token scored");
        assert!((m.nats_per_token - V.ln()).abs() < 1e-6, "{m:?}");
        let bits_per_token = m.bits_per_byte.unwrap() * m.bytes as f64 / m.tokens as f64;
        assert!((bits_per_token - V.log2()).abs() < 1e-6, "{m:?}");
        assert!((m.perplexity - V).abs() < 1e-3);
        let want_bytes = "The quick brown fox jumps over the lazy dog.".len()
            + "Zwölf Boxkämpfer jagen Viktor\nquer über den Deich.".len();
        assert_eq!(
            m.bytes, want_bytes as u64,
            "UTF-8 bytes of the texts as given"
        );
    }
}

#[test]
fn perplexity_identical_weights_give_identical_figures() {
    let tmp = tempfile::tempdir().unwrap();
    let text = write_text(tmp.path(), "docs.jsonl", DOCS);
    for family in ["llama", "qwen2"] {
        let a = model_dir(tmp.path(), family, &format!("{family}-a"));
        let b = model_dir(tmp.path(), family, &format!("{family}-b"));
        let r = perplexity(&options(vec![a, b], text.clone(), 16)).unwrap();
        let (x, y) = (&r.models[0], &r.models[1]);
        assert_eq!(
            (x.tokens, x.scored_tokens, x.windows),
            (y.tokens, y.scored_tokens, y.windows)
        );
        let (bx, by) = (x.bits_per_byte.unwrap(), y.bits_per_byte.unwrap());
        assert_eq!(bx.to_bits(), by.to_bits(), "{family}");
        assert_eq!(x.nats_per_token.to_bits(), y.nats_per_token.to_bits());
        assert!(bx.is_finite() && bx > 0.0);
        assert!(x.pseudo_bits_per_byte.is_none());
    }
}

/// Around the document length n: contexts n + 1 and n + 2 are one window (same scores); context
/// n is two windows, whose scores are the single-window scores of the first n - 1 tokens and of
/// the last token alone.
#[test]
fn perplexity_windows_exact_at_context_plus_minus_one() {
    let tmp = tempfile::tempdir().unwrap();
    for (family, tol) in [("llama", 1e-9), ("qwen2", 1e-5), ("gemma2", 1e-9)] {
        let mut lm = LanguageModel::load(&model_dir(tmp.path(), family, family)).unwrap();
        let tokens = lm.tokenize("The quick brown fox jumps.").unwrap();
        let n = tokens.len();
        assert!(n >= 4 && n + 2 <= lm.max_positions, "{n}");
        let one = score_tokens(&mut lm, &tokens, n + 1).unwrap();
        let wider = score_tokens(&mut lm, &tokens, n + 2).unwrap();
        assert_eq!(one.len(), n);
        assert_close(family, &wider, &one, |_| 0.0);
        let two = score_tokens(&mut lm, &tokens, n).unwrap();
        let mut pieces = score_tokens(&mut lm, &tokens[..n - 1], 64).unwrap();
        pieces.extend(score_tokens(&mut lm, &tokens[n - 1..], 64).unwrap());
        assert_close(family, &two, &pieces, |_| tol);
        assert_close(family, &two[..n - 1], &one[..n - 1], |_| tol);
        let (s1, s2): (f64, f64) = (one.iter().sum(), two.iter().sum());
        assert!(
            (s1 - s2).abs() > 1e-6,
            "the last token's context changed: sums must differ"
        );
    }
}

/// Without a BOS the first token of each window is not scored: n - windows of n tokens.
#[test]
fn perplexity_without_bos_skips_the_first_token_of_each_window() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = model_dir(tmp.path(), "llama", "nobos");
    set_config(&dir, "bos_token_id", serde_json::Value::Null);
    let mut lm = LanguageModel::load(&dir).unwrap();
    assert_eq!(lm.bos, None);
    let tokens = lm.tokenize("The quick brown fox jumps.").unwrap();
    let n = tokens.len();
    let one = score_tokens(&mut lm, &tokens, n).unwrap();
    assert_eq!(one.len(), n - 1);
    assert_close(
        "n+1",
        &score_tokens(&mut lm, &tokens, n + 1).unwrap(),
        &one,
        |_| 0.0,
    );
    let two = score_tokens(&mut lm, &tokens, n - 1).unwrap();
    assert_eq!(two.len(), n - 2, "windows of n-1 and 1 tokens");
    assert_close("n-1", &two, &one[..n - 2], |_| 1e-9);
    let text = write_text(tmp.path(), "one.txt", "The quick brown fox jumps.\n");
    let r = perplexity(&options(vec![dir], text, n - 1)).unwrap();
    assert_eq!(
        (
            r.models[0].tokens,
            r.models[0].scored_tokens,
            r.models[0].windows
        ),
        (n as u64, n as u64 - 2, 2)
    );
}

/// The forward pass of each family against transformers (float32, eager attention).
#[test]
fn perplexity_matches_transformers_reference() {
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("reference.json")).unwrap())
            .unwrap();
    let texts = reference["texts"].as_array().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let models = reference["models"].as_object().unwrap();
    assert_eq!(models.len(), 9);
    for (family, rows) in models {
        let mut lm = LanguageModel::load(&model_dir(tmp.path(), family, family)).unwrap();
        assert_eq!(lm.model_type, *family);
        for (text, row) in texts.iter().zip(rows.as_array().unwrap()) {
            let want_ids: Vec<u32> = serde_json::from_value(row["ids"].clone()).unwrap();
            let want: Vec<f64> = serde_json::from_value(row["log_probs"].clone()).unwrap();
            let tokens = lm.tokenize(text.as_str().unwrap()).unwrap();
            let mut ids: Vec<u32> = lm.bos.into_iter().collect();
            ids.extend(&tokens);
            assert_eq!(ids, want_ids, "{family}: token ids");
            let context = lm.max_positions;
            let got = score_tokens(&mut lm, &tokens, context).unwrap();
            assert_close(family, &got, &want, |_| 1e-4);
        }
    }
}

#[test]
fn perplexity_cli_table_json_max_bytes_and_plain_text() {
    let tmp = tempfile::tempdir().unwrap();
    let llama = model_dir(tmp.path(), "llama", "llama");
    let qwen = model_dir(tmp.path(), "qwen2", "qwen2");
    let text = write_text(tmp.path(), "docs.jsonl", DOCS);
    let out = std::process::Command::new(bin())
        .args(["perplexity", "--quiet", "--context", "16", "--text"])
        .arg(&text)
        .arg("--model")
        .arg(&llama)
        .arg("--model")
        .arg(&qwen)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("2 documents, 97 UTF-8 bytes"), "{stdout}");
    assert!(
        stdout.contains("bits/byte") && stdout.contains("qwen2"),
        "{stdout}"
    );

    // --max-bytes 60 keeps the first document (44 bytes) only; plain text, one per line.
    let plain = write_text(
        tmp.path(),
        "docs.txt",
        "The quick brown fox jumps over the lazy dog.\nZwölf Boxkämpfer jagen Viktor\n",
    );
    let out = std::process::Command::new(bin())
        .args(["perplexity", "--json", "--max-bytes", "60", "--text"])
        .arg(&plain)
        .arg("--model")
        .arg(&llama)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["format"], "plain");
    assert_eq!(
        (j["documents"].as_u64(), j["bytes"].as_u64()),
        (Some(1), Some(44))
    );
    assert_eq!(j["documents_dropped"], 1);
    let m = &j["models"][0];
    assert_eq!(
        m["context"], 64,
        "default 1024 clamped to max_position_embeddings"
    );
    let bpb = m["bits_per_byte"].as_f64().unwrap();
    let npt = m["nats_per_token"].as_f64().unwrap();
    let tokens = m["tokens"].as_f64().unwrap();
    assert!((bpb - npt * tokens / std::f64::consts::LN_2 / 44.0).abs() < 1e-9);
}

#[test]
fn perplexity_cli_unsupported_family_names_model_type() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = model_dir(tmp.path(), "llama", "xlnetish");
    set_config(&dir, "model_type", "xlnet".into());
    let text = write_text(tmp.path(), "docs.txt", "hello\n");
    let out = std::process::Command::new(bin())
        .args(["perplexity", "--text"])
        .arg(&text)
        .arg("--model")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("model_type \"xlnet\""), "{stderr}");
}

/// --context is clamped to max_position_embeddings (64 in the fixtures).
#[test]
fn perplexity_context_is_clamped_to_positions() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = model_dir(tmp.path(), "phi3", "phi3");
    let text = write_text(tmp.path(), "docs.jsonl", DOCS);
    let r = perplexity(&options(vec![dir], text, 1024)).unwrap();
    assert_eq!(r.models[0].context, 64);
    assert!(r.models[0].bits_per_byte.unwrap().is_finite());
}

fn tiny_archs() -> PathBuf {
    fixture_path("tiny-archs")
}

/// A copy of `tests/fixtures/tiny-archs/NAME` (config, weights, tokenizer); encoders also get a
/// tokenizer_config.json naming `<unk>` as the mask token (the shared tokenizer has none), as
/// tests/python/perplexity_tiny_archs_reference.py assumes.
fn tiny_arch_dir(root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(tiny_archs().join(name).join(f), dir.join(f)).unwrap();
    }
    if ENCODER_TYPES.contains(&name) {
        std::fs::write(
            dir.join("tokenizer_config.json"),
            r#"{"mask_token": "<unk>"}"#,
        )
        .unwrap();
    }
    dir
}

/// Rewrites `dir/model.safetensors` in f32 with every tensor of two or more dimensions multiplied
/// by `factor`, as tests/python/perplexity_tiny_archs_reference.py does to the loaded model (a
/// power of two, so exact in every format).
fn scale_matrices(dir: &Path, factor: f32) {
    use safetensors::{tensor::TensorView, Dtype};
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let owned: Vec<(String, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(name, t)| {
            let vals: Vec<f32> = match t.dtype() {
                Dtype::F32 => t
                    .data()
                    .chunks(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
                Dtype::F16 => t
                    .data()
                    .chunks(2)
                    .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
                Dtype::BF16 => t
                    .data()
                    .chunks(2)
                    .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
                other => panic!("{name}: {other:?}"),
            };
            let k = if t.shape().len() >= 2 { factor } else { 1.0 };
            let data = vals.iter().flat_map(|v| (v * k).to_le_bytes()).collect();
            (name, t.shape().to_vec(), data)
        })
        .collect();
    let views: Vec<(String, TensorView)> = owned
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &path).unwrap();
}

fn tiny_archs_reference() -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join("tiny-archs.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Every decoder and masked-LM encoder of tests/fixtures/tiny-archs against transformers:
/// per-token log-probabilities (decoders) and pseudo-log-likelihoods (encoders) within 1e-4,
/// with the matrices scaled so that attention is far from uniform.
#[test]
fn perplexity_every_tiny_arch_family_matches_transformers() {
    let reference = tiny_archs_reference();
    let texts = reference["texts"].as_array().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut seen = Vec::new();
    for (group, scoring) in [
        ("decoders", Scoring::Causal),
        ("encoders", Scoring::PseudoLogLikelihood),
    ] {
        for (name, rows) in reference[group].as_object().unwrap() {
            let dir = tiny_arch_dir(tmp.path(), name);
            scale_matrices(&dir, reference["scale"].as_f64().unwrap() as f32);
            let mut lm = LanguageModel::load(&dir).unwrap();
            assert_eq!(lm.scoring, scoring, "{name}");
            if scoring == Scoring::PseudoLogLikelihood {
                assert_eq!(
                    lm.mask,
                    reference["mask_token_id"].as_u64().map(|m| m as u32)
                );
            }
            for (text, row) in texts.iter().zip(rows.as_array().unwrap()) {
                let want_ids: Vec<u32> = serde_json::from_value(row["ids"].clone()).unwrap();
                let want: Vec<f64> = serde_json::from_value(row["log_probs"].clone()).unwrap();
                let tokens = lm.tokenize(text.as_str().unwrap()).unwrap();
                let mut ids: Vec<u32> = lm.bos.into_iter().collect();
                ids.extend(&tokens);
                assert_eq!(ids, want_ids, "{name}: token ids");
                let context = lm.max_positions.min(1024);
                let got = score_tokens(&mut lm, &tokens, context).unwrap();
                assert_close(name, &got, &want, |_| 1e-4);
            }
            seen.push(name.clone());
        }
    }
    let mut all: Vec<&str> = DECODER_TYPES.iter().chain(ENCODER_TYPES).copied().collect();
    all.sort();
    seen.sort();
    assert_eq!(seen, all, "every supported family has reference values");
}

/// One forward pass per window gives what the token-by-token path gives: against
/// candle-transformers' KV-cache stepping (the families it has), and, for every decoder, against
/// running each prefix of the window on its own and keeping its last position.
#[test]
fn perplexity_one_pass_equals_token_by_token() {
    let tmp = tempfile::tempdir().unwrap();
    let text = "The quick brown fox jumps over the lazy dog. Zwölf Boxkämpfer jagen Viktor.";
    for family in stepwise::TYPES {
        let dir = model_dir(tmp.path(), family, family);
        let mut lm = LanguageModel::load(&dir).unwrap();
        let mut step = stepwise::Stepwise::load(&dir).unwrap();
        let tokens = lm.tokenize(text).unwrap();
        for context in [7, 64] {
            let one = score_tokens(&mut lm, &tokens, context).unwrap();
            let stepped =
                score_tokens_with(lm.bos, &tokens, context, |ids| step.window_log_probs(ids))
                    .unwrap();
            assert_close(family, &one, &stepped, |_| 1e-4);
            let (a, b): (f64, f64) = (one.iter().sum(), stepped.iter().sum());
            assert!(
                (a - b).abs() < 1e-4 * one.len() as f64,
                "{family}: {a} vs {b}"
            );
        }
    }
    for name in DECODER_TYPES {
        let mut lm = LanguageModel::load(&tiny_arch_dir(tmp.path(), name)).unwrap();
        let mut ids: Vec<u32> = lm.bos.into_iter().collect();
        ids.extend(lm.tokenize("Zwölf Boxkämpfer jagen Viktor quer.").unwrap());
        let one = lm.window_log_probs(&ids).unwrap();
        let by_prefix: Vec<f64> = (2..=ids.len())
            .map(|end| *lm.window_log_probs(&ids[..end]).unwrap().last().unwrap())
            .collect();
        assert_close(name, &one, &by_prefix, |_| 1e-5);
    }
}

#[test]
fn perplexity_cli_scores_an_encoder_as_pseudo_bits_per_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let bert = tiny_arch_dir(tmp.path(), "bert");
    let gpt2 = tiny_arch_dir(tmp.path(), "gpt2");
    let text = write_text(tmp.path(), "docs.jsonl", DOCS);
    let out = std::process::Command::new(bin())
        .args(["perplexity", "--json", "--context", "16", "--text"])
        .arg(&text)
        .args(["--model"])
        .arg(&bert)
        .args(["--model"])
        .arg(&gpt2)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (enc, dec) = (&j["models"][0], &j["models"][1]);
    assert_eq!(enc["scoring"], "pseudo-log-likelihood");
    assert!(enc["bits_per_byte"].is_null(), "{enc}");
    assert!(enc["pseudo_bits_per_byte"].as_f64().unwrap() > 0.0);
    assert_eq!(enc["scored_tokens"], enc["tokens"]);
    assert_eq!(dec["scoring"], "causal");
    assert!(dec["pseudo_bits_per_byte"].is_null());
    assert!(dec["bits_per_byte"].as_f64().unwrap() > 0.0);
}

#[test]
fn perplexity_refuses_encoder_decoders_and_encoders_without_a_mask_token() {
    let tmp = tempfile::tempdir().unwrap();
    let t5 = tmp.path().join("t5");
    std::fs::create_dir_all(&t5).unwrap();
    std::fs::copy(tiny_archs().join("t5/config.json"), t5.join("config.json")).unwrap();
    let text = write_text(tmp.path(), "docs.txt", "hello\n");
    let out = std::process::Command::new(bin())
        .args(["perplexity", "--text"])
        .arg(&text)
        .arg("--model")
        .arg(&t5)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("\"t5\" is an encoder-decoder"), "{stderr}");

    let bert = tiny_arch_dir(tmp.path(), "bert");
    std::fs::remove_file(bert.join("tokenizer_config.json")).unwrap();
    let e = LanguageModel::load(&bert).err().unwrap().to_string();
    assert!(
        e.contains("tokenizer_config.json") && e.contains("mask_token"),
        "{e}"
    );
}
