//! FVT end to end: `apply --weighting fvt` and `--fallback fvt|mean`, on a Llama-style source
//! (untied lm_head, a SentencePiece BPE tokenizer with `<0xHH>` byte fallback) and a GPT-2-style
//! byte-level BPE target. Both vocabularies are written out by hand here, small enough that the
//! source spelling of every target token is worked out below by hand (not by the crate's
//! speller), and each expected row is the f64 mean of those source rows, compared with the
//! output safetensors. The runs match tokens exactly (`--match exact`), so the overlap is the
//! hand-listed one.

mod fixtures;

use clp_gpu::tensor::DType;
use fixtures::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const DIM: usize = 8;

/// The source vocabulary after `<unk>` `<s>` `</s>` (0..=2) and `<0x00>`..`<0xFF>` (3..=258).
const SOURCE_PIECES: &[&str] = &[
    "▁", "t", "h", "e", "▁t", "▁th", "▁the", "c", "a", "▁c", "▁ca", "r", "s", "▁cat",
];
const SOURCE_MERGES: &[&str] = &["▁ t", "▁t h", "▁th e", "▁ c", "▁c a", "▁ca t"];

/// The target vocabulary (byte-level: `Ġ` is the space, `Ã` `©` the bytes C3 A9 of "é"); the
/// last entry, `<mask>`, is an added token without a role.
const TARGET_TOKENS: &[&str] = &[
    "<|endoftext|>",
    "t",
    "h",
    "e",
    "c",
    "a",
    "r",
    "s",
    "Ġ",
    "Ã",
    "©",
    "Ġt",
    "Ġth",
    "Ġthe",
    "Ġc",
    "Ġca",
    "Ġcar",
    "Ã©",
    "ĠcÃ©",
    "<mask>",
];
const TARGET_MERGES: &[&str] = &[
    "Ġ t", "Ġt h", "Ġth e", "Ġ c", "Ġc a", "Ġca r", "Ã ©", "Ġc Ã©",
];

/// Source id of a piece of [`SOURCE_PIECES`], or of the byte-fallback token of byte `b`.
fn piece(p: &str) -> u32 {
    259 + SOURCE_PIECES.iter().position(|&x| x == p).unwrap() as u32
}
fn byte(b: u8) -> u32 {
    3 + b as u32
}
fn target(t: &str) -> u32 {
    TARGET_TOKENS.iter().position(|&x| x == t).unwrap() as u32
}

/// Every missing target token (target id → source ids) as the source tokenizer spells it,
/// worked out by hand: the word-start `Ġ` becomes `▁`, the source's merges split the word, and
/// bytes the source has no piece for (é = C3 A9, or a lone byte) are `<0xHH>` tokens.
fn spellings() -> BTreeMap<u32, Vec<u32>> {
    BTreeMap::from([
        (target("Ġ"), vec![piece("▁")]),
        // A lone byte (half of "é") is its byte-fallback token.
        (target("Ã"), vec![byte(0xC3)]),
        (target("©"), vec![byte(0xA9)]),
        (target("Ġt"), vec![piece("▁t")]),
        (target("Ġth"), vec![piece("▁th")]),
        (target("Ġthe"), vec![piece("▁the")]),
        (target("Ġc"), vec![piece("▁c")]),
        (target("Ġca"), vec![piece("▁ca")]),
        // "▁car": ▁ c → ▁c, ▁c a → ▁ca; no merge takes r.
        (target("Ġcar"), vec![piece("▁ca"), piece("r")]),
        // "é" has no source piece: byte fallback.
        (target("Ã©"), vec![byte(0xC3), byte(0xA9)]),
        (target("ĠcÃ©"), vec![piece("▁c"), byte(0xC3), byte(0xA9)]),
    ])
}

/// Source tokens the target spells the same: the exact overlap.
const OVERLAP: &[&str] = &["t", "h", "e", "c", "a", "r", "s"];

fn special(content: &str, id: u32) -> Value {
    json!({"id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false,
           "normalized": false, "special": true})
}

/// A Llama-style SentencePiece BPE tokenizer (Metaspace, byte fallback) into `dir`.
fn write_source_tokenizer(dir: &Path) {
    let mut vocab = serde_json::Map::new();
    for (i, t) in ["<unk>", "<s>", "</s>"].iter().enumerate() {
        vocab.insert(t.to_string(), json!(i));
    }
    for b in 0..=255u32 {
        vocab.insert(format!("<0x{b:02X}>"), json!(3 + b));
    }
    for (i, p) in SOURCE_PIECES.iter().enumerate() {
        vocab.insert(p.to_string(), json!(259 + i));
    }
    let metaspace = json!({"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": false});
    let tj = json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [special("<unk>", 0), special("<s>", 1), special("</s>", 2)],
        "normalizer": null, "pre_tokenizer": metaspace, "post_processor": null, "decoder": metaspace,
        "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>", "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
                  "vocab": vocab, "merges": SOURCE_MERGES},
    });
    std::fs::create_dir_all(dir).unwrap();
    write_json(&dir.join("tokenizer.json"), &tj);
    write_json(
        &dir.join("tokenizer_config.json"),
        &json!({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}),
    );
}

/// A GPT-2-style byte-level BPE tokenizer (`<|endoftext|>` as bos/eos/unk, `<mask>` added)
/// into `dir`.
fn write_target_tokenizer(dir: &Path) {
    let n = TARGET_TOKENS.len() - 1;
    let vocab: serde_json::Map<String, Value> = (TARGET_TOKENS[..n].iter().enumerate())
        .map(|(i, t)| (t.to_string(), json!(i)))
        .collect();
    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
    let tj = json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [special("<|endoftext|>", 0), special("<mask>", n as u32)],
        "normalizer": null, "pre_tokenizer": byte_level, "post_processor": byte_level, "decoder": byte_level,
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                  "vocab": vocab, "merges": TARGET_MERGES},
    });
    std::fs::create_dir_all(dir).unwrap();
    write_json(&dir.join("tokenizer.json"), &tj);
    write_json(
        &dir.join("tokenizer_config.json"),
        &json!({"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}),
    );
}

struct Setup {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    source: Model,
    helper: Model,
    /// The target tokenizer alone (no weights).
    tokenizer: PathBuf,
}

/// Source: Llama (untied, f32) with the SentencePiece tokenizer; helper: GPT-2 with the
/// byte-level target tokenizer; and the target tokenizer alone.
fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    write_source_tokenizer(&root.join("src"));
    let source = build_model(
        &root.join("src"),
        &ModelSpec {
            arch: Arch::Llama,
            vocab: Vocab::Rows(259 + SOURCE_PIECES.len()),
            dim: DIM,
            dtype: DType::F32,
            seed: 31,
            ..Default::default()
        },
    );
    write_target_tokenizer(&root.join("hlp"));
    let helper = build_model(
        &root.join("hlp"),
        &ModelSpec {
            arch: Arch::Gpt2,
            vocab: Vocab::Rows(TARGET_TOKENS.len()),
            dim: DIM,
            dtype: DType::F32,
            seed: 41,
            ..Default::default()
        },
    );
    let tok_dir = root.join("tok");
    write_target_tokenizer(&tok_dir);
    // The tokenizers load, and they split text the way the tables above say.
    assert_eq!(tokens(&tokenizer(&tok_dir), " cé"), vec!["ĠcÃ©"]);
    let src_tok = tokenizer(&source.dir);
    assert_eq!(tokens(&src_tok, "car"), vec!["▁ca", "r"]);
    assert_eq!(tokens(&src_tok, "cé"), vec!["▁c", "<0xC3>", "<0xA9>"]);
    Setup {
        _tmp: tmp,
        root,
        source,
        helper,
        tokenizer: tok_dir,
    }
}

/// Row `row` of source tensor `name`, decoded to f64.
fn source_row(m: &Model, name: &str, row: u32) -> Vec<f64> {
    let t = m.tensor(name);
    (0..DIM)
        .map(|c| t.dtype.decode(&t.bytes, row as usize * DIM + c) as f64)
        .collect()
}

/// The f64 mean of source rows `ids` of tensor `name`.
fn mean_of(m: &Model, name: &str, ids: &[u32]) -> Vec<f64> {
    let mut acc = [0.0; DIM];
    for &id in ids {
        for (a, v) in acc.iter_mut().zip(source_row(m, name, id)) {
            *a += v;
        }
    }
    acc.iter().map(|a| a / ids.len() as f64).collect()
}

/// Asserts row `target_id` of output tensor `name` is `want` (within rounding to f32).
fn assert_row(out: &Path, name: &str, target_id: u32, want: &[f64], what: &str) {
    let got = read_weights(out);
    let (_, shape, bytes) = &got[name];
    assert_eq!(shape, &vec![TARGET_TOKENS.len(), DIM], "{name}");
    for (c, &w) in want.iter().enumerate() {
        let have = DType::F32.decode(bytes, target_id as usize * DIM + c) as f64;
        assert!(
            (have - w).abs() <= ulp(DType::F32, w as f32) as f64,
            "{name} row {target_id} ({what}) col {c}: {have} vs {w}"
        );
    }
}

/// Every missing row of both tensors is the hand-computed FVT mean of its own tensor's rows.
fn assert_fvt_rows(source: &Model, out: &Path) {
    for name in ["model.embed_tokens.weight", "lm_head.weight"] {
        for (id, ids) in spellings() {
            let what = format!("fvt of {}", TARGET_TOKENS[id as usize]);
            assert_row(out, name, id, &mean_of(source, name, &ids), &what);
        }
    }
}

/// The f64 mean of the overlapping source rows of `name`.
fn overlap_mean(source: &Model, name: &str) -> Vec<f64> {
    let ids: Vec<u32> = OVERLAP.iter().map(|t| piece(t)).collect();
    mean_of(source, name, &ids)
}

fn provenance(path: &Path) -> BTreeMap<u64, Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|v| (v["id"].as_u64().unwrap(), v))
        .collect()
}

#[test]
fn fvt_rows_are_the_mean_of_the_source_spelling_in_both_untied_tensors() {
    let t = setup();
    let out = t.root.join("out");
    let prov = t.root.join("prov.jsonl");
    let summary = ok_json(run(
        "apply",
        &[
            "--source",
            s(&t.source.dir),
            "--helper",
            s(&t.helper.dir),
            "--out",
            s(&out),
            "--weighting",
            "fvt",
            "--match",
            "exact",
            "--provenance",
            s(&prov),
            "--json",
        ],
    ));
    assert_eq!(summary["weighting"], "fvt");
    assert_eq!(summary["backend"], "none");
    assert_eq!(summary["overlap"], OVERLAP.len());
    // The 11 spelled tokens and <mask>, which has no canonical form.
    assert_eq!(summary["computed"], spellings().len() + 1);
    assert_eq!(summary["fallback"], 1);
    assert_eq!(summary["fallback_rows"], json!({"fvt": 0, "mean": 1}));
    assert_fvt_rows(&t.source, &out);
    // Overlap rows are copied; <mask> gets the mean of the overlap rows.
    for name in ["model.embed_tokens.weight", "lm_head.weight"] {
        for tok in OVERLAP {
            let row = source_row(&t.source, name, piece(tok));
            assert_row(&out, name, target(tok), &row, "copied");
        }
        let mean = overlap_mean(&t.source, name);
        assert_row(&out, name, target("<mask>"), &mean, "mean");
    }
    let report = read_json(&out.join("clp_transfer.json"));
    assert_eq!(report["method"]["weighting"], "fvt");
    assert_eq!(report["method"]["fallback"], "fvt");
    assert_eq!(report["counts"]["fallback_mean"], 1);
    let row = &report["fallback"]["rows"][0];
    assert_eq!(
        (&row["token"], &row["reason"], &row["got"]),
        (&json!("<mask>"), &json!("not_spellable"), &json!("mean"))
    );
    assert_eq!(report["helper"]["weights"], "not read: fvt needs none");
    // Provenance names the source tokens of each FVT row.
    let p = provenance(&prov);
    let line = &p[&(target("ĠcÃ©") as u64)];
    assert_eq!(line["method"], "fvt");
    let sources: Vec<u64> = (line["sources"].as_array().unwrap().iter())
        .map(|s| s["id"].as_u64().unwrap())
        .collect();
    assert_eq!(sources, vec![piece("▁c") as u64, 198, 172]);
    assert_eq!(line["sources"][1]["token"], "<0xC3>");
    assert_eq!(p[&(target("<mask>") as u64)]["method"], "fallback_mean");
}

#[test]
fn fvt_needs_only_the_target_tokenizer() {
    let t = setup();
    let out = t.root.join("out");
    let summary = ok_json(run(
        "apply",
        &[
            "--source",
            s(&t.source.dir),
            "--helper-tokenizer",
            s(&t.tokenizer),
            "--out",
            s(&out),
            "--weighting",
            "fvt",
            "--match",
            "exact",
            "--json",
        ],
    ));
    assert_eq!(summary["helper"], Value::Null);
    assert_fvt_rows(&t.source, &out);
    assert!(out.join("tokenizer.json").is_file());
    // The same model files as with the helper given (its weights are not read either way).
    let with_helper = t.root.join("out-helper");
    ok(run(
        "apply",
        &[
            "--source",
            s(&t.source.dir),
            "--helper",
            s(&t.helper.dir),
            "--out",
            s(&with_helper),
            "--weighting",
            "fvt",
            "--match",
            "exact",
            "--quiet",
        ],
    ));
    assert_eq!(read_weights(&out), read_weights(&with_helper));

    // Without a tokenizer, and a weighted method without a helper: one line each.
    let bad = t.root.join("bad");
    let no_tok = ["--source", s(&t.source.dir), "--out", s(&bad)];
    let fvt_args = [&no_tok[..], &["--weighting", "fvt"]].concat();
    assert_fails_cleanly(run("apply", &fvt_args), &bad, &["--helper-tokenizer"]);
    let clp_args = [&no_tok[..], &["--helper-tokenizer", s(&t.tokenizer)]].concat();
    assert_fails_cleanly(
        run("apply", &clp_args),
        &bad,
        &["--weighting softmax needs --helper", "--weighting fvt"],
    );
}

#[test]
fn a_zero_helper_row_gets_its_fvt_row_by_default_and_the_mean_with_fallback_mean() {
    let mut t = setup();
    let victim = target("Ġcar");
    let wte = (t.helper.tensors.iter_mut())
        .find(|x| x.name == "transformer.wte.weight")
        .unwrap();
    wte.bytes[victim as usize * DIM * 4..(victim as usize + 1) * DIM * 4].fill(0);
    write_weights(&t.helper.dir, &t.helper.tensors, 1);
    for fallback in ["fvt", "mean"] {
        let out = t.root.join(format!("out-{fallback}"));
        let prov = t.root.join(format!("prov-{fallback}.jsonl"));
        let mut args = vec![
            "--source",
            s(&t.source.dir),
            "--helper",
            s(&t.helper.dir),
            "--out",
            s(&out),
            "--backend",
            "cpu",
            "--top-k",
            "3",
            "--match",
            "exact",
            "--provenance",
            s(&prov),
            "--json",
        ];
        if fallback == "mean" {
            args.extend(["--fallback", "mean"]);
        }
        let summary = ok_json(run("apply", &args));
        assert_eq!(summary["fallback_method"], fallback);
        let line = &provenance(&prov)[&(victim as u64)];
        assert_eq!(line["reason"], "zero_helper_row", "{line}");
        for name in ["model.embed_tokens.weight", "lm_head.weight"] {
            let want = match fallback {
                "fvt" => mean_of(&t.source, name, &[piece("▁ca"), piece("r")]),
                _ => overlap_mean(&t.source, name),
            };
            assert_row(&out, name, victim, &want, fallback);
        }
        let report = read_json(&out.join("clp_transfer.json"));
        let rows = report["fallback"]["rows"].as_array().unwrap();
        let row = rows.iter().find(|r| r["target_id"] == victim).unwrap();
        assert_eq!(row["got"], fallback);
        let kinds = &summary["fallback_rows"];
        match fallback {
            "fvt" => {
                assert_eq!(line["method"], "fallback_fvt");
                let ids: Vec<&Value> = line["sources"].as_array().unwrap().iter().collect();
                assert_eq!(ids.len(), 2);
                assert_eq!(ids[0]["id"], piece("▁ca"));
                assert_eq!(ids[1]["token"], "r");
                assert_eq!(kinds, &json!({"fvt": 1, "mean": 0}), "{summary}");
            }
            _ => {
                assert_eq!(line["method"], "fallback_mean");
                assert_eq!(kinds, &json!({"fvt": 0, "mean": 1}), "{summary}");
            }
        }
    }
}

#[test]
fn evaluate_refuses_fvt_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("none");
    let output = run(
        "evaluate",
        &[
            "--source",
            "nowhere",
            "--helper",
            "nowhere",
            "--weighting",
            "clp,fvt",
        ],
    );
    assert_fails_cleanly(
        output,
        &out,
        &["--weighting fvt", "keeps each of them whole"],
    );
}
