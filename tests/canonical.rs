//! `--match canonical` end to end: a GPT-2-style byte-level BPE tokenizer and a Llama-style
//! SentencePiece tokenizer (BPE with a Metaspace pre-tokenizer and `<0xHH>` byte fallback),
//! both trained here with the `tokenizers` crate on texts that share words. `clp-gpu inspect`
//! (the real binary) must find almost nothing but single characters by exact string and the
//! shared words by canonical form; `clp-gpu apply --match canonical` must copy those rows
//! bit-exactly. The expected matches come from an oracle written here, independent of the
//! crate: the target token's bytes spelled with GPT-2's byte table and looked up in the source.

mod fixtures;

use clp_gpu::tensor::DType;
use fixtures::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::processors::PostProcessorWrapper;
use tokenizers::{AddedToken, TokenizerBuilder};

const SOURCE_TEXT: &[&str] = &[
    "hello world and hello again said the teacher to the students",
    "the weather in the city was cold and the river was frozen",
    "a small house with a garden stands near the old station",
    "people read books and write letters in the evening",
    "the market sells fresh bread and fruit every morning",
    "für alle ist das wetter über der stadt heute schön",
    "computers process numbers faster than people could imagine",
    "the children played in the park until the evening",
];

const TARGET_TEXT: &[&str] = &[
    "the teacher said hello to the children in the morning",
    "hello hello world the city river and the old station",
    "students read books in the garden of the small house",
    "fresh fruit and bread for the people at the market",
    "über der stadt ist das wetter für alle schön",
    "numbers and letters and books every evening in the park",
    "the cold weather was frozen until the morning again",
    "imagine computers that could write and process faster",
];

fn corpus(lines: &[&'static str]) -> Vec<&'static str> {
    (0..4).flat_map(|_| lines.iter().copied()).collect()
}

/// GPT-2's bytes_to_unicode, written out independently of the crate.
fn gpt2_char(b: u8) -> char {
    let keeps = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    if keeps(b) {
        return b as char;
    }
    let n = (0..b).filter(|&x| !keeps(x)).count() as u32;
    char::from_u32(256 + n).unwrap()
}

/// Byte-level BPE (GPT-2 style), `<|endoftext|>` as bos/eos/unk.
fn byte_level_tokenizer(dir: &Path, vocab_size: usize) {
    let tok = train_byte_level_bpe(corpus(SOURCE_TEXT), vocab_size, &["<|endoftext|>"]);
    std::fs::create_dir_all(dir).unwrap();
    tok.save(dir.join("tokenizer.json"), true).unwrap();
    write_json(
        &dir.join("tokenizer_config.json"),
        &json!({"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}),
    );
}

/// SentencePiece-style BPE (Llama style): Metaspace pre-tokenizer and decoder, `<unk>`, `<s>`,
/// `</s>` as added special tokens, then the 256 `<0xHH>` byte tokens as ordinary vocabulary
/// entries (ids 3..=258) with `byte_fallback` on.
fn sentencepiece_tokenizer(dir: &Path, vocab_size: usize) {
    let mut specials: Vec<AddedToken> = ["<unk>", "<s>", "</s>"]
        .iter()
        .map(|t| AddedToken::from(t.to_string(), true))
        .collect();
    specials.extend((0..=255u8).map(|b| AddedToken::from(format!("<0x{b:02X}>"), true)));
    let mut trainer = BpeTrainerBuilder::new()
        .show_progress(false)
        .vocab_size(vocab_size)
        .min_frequency(0)
        .special_tokens(specials)
        .build();
    let metaspace = Metaspace::new('▁', PrependScheme::Always, true);
    let mut tok = TokenizerBuilder::<
        BPE,
        NormalizerWrapper,
        Metaspace,
        PostProcessorWrapper,
        DecoderWrapper,
    >::new()
    .with_model(BPE::default())
    .with_normalizer(None)
    .with_pre_tokenizer(Some(metaspace.clone()))
    .with_post_processor(None)
    .with_decoder(Some(DecoderWrapper::Metaspace(metaspace)))
    .build()
    .unwrap();
    tok.train(&mut trainer, corpus(TARGET_TEXT).into_iter())
        .unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("tokenizer.json");
    tok.save(&path, true).unwrap();
    // As in Llama's tokenizer.json: byte tokens live in the model vocabulary, not in
    // added_tokens, and the model falls back to them.
    let mut j: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    j["added_tokens"]
        .as_array_mut()
        .unwrap()
        .retain(|t| !t["content"].as_str().unwrap().starts_with("<0x"));
    j["model"]["byte_fallback"] = json!(true);
    j["model"]["unk_token"] = json!("<unk>");
    write_json(&path, &j);
    write_json(
        &dir.join("tokenizer_config.json"),
        &json!({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}),
    );
}

fn tokens_by_id(v: &HashMap<String, u32>) -> Vec<Option<String>> {
    let mut out = vec![None; v.values().map(|&i| i as usize + 1).max().unwrap()];
    for (t, &i) in v {
        out[i as usize] = Some(t.clone());
    }
    out
}

/// What the matching must be (target id → source id): `--match exact` pairs (same string), and
/// `--match canonical` pairs by meaning, split into those spelled the same (`exact`) and those
/// spelled differently (`canonical`).
struct Oracle {
    exact_mode: BTreeMap<u32, u32>,
    exact: BTreeMap<u32, u32>,
    canonical: BTreeMap<u32, u32>,
}

fn oracle(src: &HashMap<String, u32>, tgt: &HashMap<String, u32>) -> Oracle {
    let mut o = Oracle {
        exact_mode: BTreeMap::new(),
        exact: BTreeMap::new(),
        canonical: BTreeMap::new(),
    };
    for (t, tok) in tokens_by_id(tgt).iter().enumerate() {
        let (t, tok) = (t as u32, tok.as_deref().unwrap());
        if let Some(&s) = src.get(tok) {
            o.exact_mode.insert(t, s);
        }
        if ["<unk>", "<s>", "</s>"].contains(&tok) {
            // Special tokens have no canonical form: the same string, or by role.
            if let Some(&s) = src.get(tok) {
                o.exact.insert(t, s);
            }
            continue;
        }
        // The bytes the SentencePiece token stands for, spelled as GPT-2 spells them.
        let bytes: Vec<u8> = match tok.strip_prefix("<0x").and_then(|h| h.strip_suffix('>')) {
            Some(hex) => vec![u8::from_str_radix(hex, 16).unwrap()],
            None => tok.replace('▁', " ").into_bytes(),
        };
        let spelled: String = bytes.iter().map(|&b| gpt2_char(b)).collect();
        match src.get(&spelled) {
            Some(&s) if spelled == tok => o.exact.insert(t, s),
            Some(&s) => o.canonical.insert(t, s),
            None => None,
        };
    }
    o
}

/// Source: GPT-2 (tied, bf16); helper: Llama (untied, f32). Weights random.
fn build(root: &Path) -> (std::path::PathBuf, std::path::PathBuf, usize, usize) {
    let (src, hlp) = (root.join("src"), root.join("hlp"));
    byte_level_tokenizer(&src, 500);
    sentencepiece_tokenizer(&hlp, 480);
    let (src_rows, hlp_rows) = (vocab_of(&src).len(), vocab_of(&hlp).len());
    let spec = |arch, rows, (dim, dtype), seed, config| ModelSpec {
        arch,
        vocab: Vocab::Rows(rows),
        dim,
        dtype,
        seed,
        config,
        ..Default::default()
    };
    build_pair(
        root,
        &spec(
            Arch::Gpt2,
            src_rows,
            (24, DType::BF16),
            11,
            json!({"bos_token_id": 0, "eos_token_id": 0}),
        ),
        &spec(
            Arch::Llama,
            hlp_rows,
            (16, DType::F32),
            21,
            json!({"bos_token_id": 1, "eos_token_id": 2}),
        ),
    );
    (src, hlp, src_rows, hlp_rows)
}

fn inspect_json(src: &Path, hlp: &Path, mode: &str) -> Value {
    let out = ok(run(
        "inspect",
        &[
            "--source",
            s(src),
            "--helper",
            s(hlp),
            "--match",
            mode,
            "--examples",
            "100000",
            "--json",
        ],
    ));
    serde_json::from_str(&out).expect("inspect --json prints JSON")
}

fn pairs(v: &Value) -> BTreeMap<u32, u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["target_id"].as_u64().unwrap() as u32,
                p["source_id"].as_u64().unwrap() as u32,
            )
        })
        .collect()
}

#[test]
fn inspect_exact_vs_canonical_across_byte_level_and_sentencepiece() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, hlp, _, hlp_rows) = build(tmp.path());
    let (sv, tv) = (vocab_of(&src), vocab_of(&hlp));
    let o = oracle(&sv, &tv);
    // The shared words are really there in both spellings.
    for w in ["hello", "the", "world", "weather", "station"] {
        assert!(sv.contains_key(&format!("Ġ{w}")), "source lacks Ġ{w}");
        assert!(tv.contains_key(&format!("▁{w}")), "target lacks ▁{w}");
        assert_eq!(
            o.canonical.get(&tv[&format!("▁{w}")]),
            Some(&sv[&format!("Ġ{w}")])
        );
    }
    // Non-ASCII: "für" is c3 bc 72 bytes, "Ã¼" in GPT-2's table.
    assert_eq!(o.canonical.get(&tv["▁für"]), Some(&sv["ĠfÃ¼r"]));
    let words = o
        .canonical
        .keys()
        .filter(|&&t| {
            tokens_by_id(&tv)[t as usize]
                .as_deref()
                .unwrap()
                .starts_with('▁')
        })
        .count();
    assert!(words >= 30, "only {words} shared words");

    // Exact: only bare pieces (single characters, word-inner pieces) match; no word does.
    let exact = inspect_json(&src, &hlp, "exact");
    let c = &exact["matching"]["counts"];
    assert_eq!(c["mode"], "exact");
    assert_eq!(c["canonical"], 0);
    assert_eq!(c["exact"], json!(o.exact_mode.len()));
    assert_eq!(c["special_by_role"], 3, "<unk> <s> </s> by role");
    assert_eq!(c["target_tokens"], json!(hlp_rows));
    assert_eq!(pairs(&exact["matching"]["examples"]["exact"]), o.exact_mode);
    for p in exact["matching"]["examples"]["exact"].as_array().unwrap() {
        assert!(!p["target_token"].as_str().unwrap().contains('▁'), "{p}");
    }
    let canonical_overlap = o.exact.len() + o.canonical.len();
    assert_eq!(
        exact["canonical_would_add"],
        json!(canonical_overlap - o.exact_mode.len())
    );
    // Exact spelling matched some tokens to source tokens that mean other bytes (a
    // SentencePiece letter against a GPT-2 byte symbol); canonical mode must not keep those.
    let wrong: Vec<_> = o
        .exact_mode
        .keys()
        .filter(|t| !o.exact.contains_key(t) && !o.canonical.contains_key(t))
        .collect();
    for t in &wrong {
        let tok = tokens_by_id(&tv)[**t as usize].clone().unwrap();
        assert!(!tok.is_ascii(), "{tok} lost its exact match");
    }
    assert_eq!(exact["matching"]["source_family"]["family"], "byte_level");
    assert_eq!(
        exact["matching"]["target_family"],
        json!({"family": "sentencepiece", "replacement": "▁", "byte_fallback": true})
    );

    // Canonical: every pair by meaning (256 byte tokens included).
    let canon = inspect_json(&src, &hlp, "canonical");
    let c = &canon["matching"]["counts"];
    assert_eq!(c["mode"], "canonical");
    assert_eq!(c["exact"], json!(o.exact.len()));
    assert_eq!(c["canonical"], json!(o.canonical.len()));
    assert_eq!(c["source_collisions"], 0, "byte-level spellings are unique");
    let total: u64 = ["exact", "canonical", "special_by_role", "missing"]
        .iter()
        .map(|k| c[k].as_u64().unwrap())
        .sum();
    assert_eq!(total, hlp_rows as u64);
    assert!(o.canonical.len() >= 256 + words);
    // Exact finds only bare pieces (no word-start token, see above): a quarter of what
    // canonical adds here.
    assert!(
        o.canonical.len() > 3 * o.exact.len(),
        "exact {} canonical {}",
        o.exact.len(),
        o.canonical.len()
    );
    assert_eq!(
        pairs(&canon["matching"]["examples"]["canonical"]),
        o.canonical
    );
    assert_eq!(pairs(&canon["matching"]["examples"]["exact"]), o.exact);
    let hello = canon["matching"]["examples"]["canonical"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["target_token"] == "▁hello")
        .unwrap();
    assert_eq!(hello["source_token"], "Ġhello");
    assert_eq!(hello["canonical"], " hello");

    // Text output: counts per kind and examples with token strings.
    let text = ok(run(
        "inspect",
        &[
            "--source",
            s(&src),
            "--helper",
            s(&hlp),
            "--match",
            "canonical",
            "--examples",
            "3",
        ],
    ));
    for needle in [
        "byte-level BPE",
        "SentencePiece",
        "canonical-only",
        "special by role",
        "missing",
        "\"<0x00>\" <- ",
        &format!("first 3 of {} by target id", o.canonical.len()),
    ] {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
}

#[test]
fn apply_canonical_copies_matched_rows_bit_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, hlp, src_rows, hlp_rows) = build(tmp.path());
    let o = oracle(&vocab_of(&src), &vocab_of(&hlp));
    let out = tmp.path().join("out");
    let prov = tmp.path().join("prov.jsonl");
    let stdout = ok(run(
        "apply",
        &[
            "--source",
            s(&src),
            "--helper",
            s(&hlp),
            "--out",
            s(&out),
            "--match",
            "canonical",
            "--backend",
            "cpu-reference",
            "--top-k",
            "8",
            "--provenance",
            s(&prov),
            "--json",
        ],
    ));
    let summary: Value = serde_json::from_str(&stdout).unwrap();
    let m = &summary["matching"];
    assert_eq!(m["mode"], "canonical");
    assert_eq!(m["exact"], json!(o.exact.len()));
    assert_eq!(m["canonical"], json!(o.canonical.len()));
    assert_eq!(summary["overlap"], json!(o.exact.len() + o.canonical.len()));

    let dim = 24;
    let rb = dim * 2;
    let src_bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let src_st = safetensors::SafeTensors::deserialize(&src_bytes).unwrap();
    let src_wte = src_st.tensor("transformer.wte.weight").unwrap();
    assert_eq!(src_wte.shape(), &[src_rows, dim]);
    let got = read_weights(&out);
    let (dt, shape, bytes) = &got["transformer.wte.weight"];
    assert_eq!(*dt, safetensors::Dtype::BF16);
    assert_eq!(shape, &vec![hlp_rows, dim]);
    let row = |b: &[u8], r: u32| b[r as usize * rb..(r as usize + 1) * rb].to_vec();
    for (kind, map) in [("exact", &o.exact), ("canonical", &o.canonical)] {
        for (&t, &s) in map {
            assert_eq!(
                row(bytes, t),
                row(src_wte.data(), s),
                "{kind} target row {t} is not source row {s}"
            );
        }
    }
    // Untouched tensor.
    assert_eq!(
        got["transformer.ln_f.bias"].2,
        src_st.tensor("transformer.ln_f.bias").unwrap().data()
    );

    // The report records the rule and the per-kind counts and examples.
    let report: Value =
        serde_json::from_slice(&std::fs::read(out.join("clp_transfer.json")).unwrap()).unwrap();
    assert!(report["method"]["overlap_rule"]
        .as_str()
        .unwrap()
        .contains("canonical form"));
    assert_eq!(report["matching"]["counts"], summary["matching"]);
    assert_eq!(
        report["counts"]["overlap"],
        json!(o.exact.len() + o.canonical.len())
    );
    assert!(!report["matching"]["examples"]["canonical"]
        .as_array()
        .unwrap()
        .is_empty());

    // Canonically matched tokens serve as CLP anchors for the missing ones.
    let text = std::fs::read_to_string(&prov).unwrap();
    let canonical_anchor = text.lines().any(|l| {
        let v: Value = serde_json::from_str(l).unwrap();
        v["sources"].as_array().is_some_and(|srcs| {
            srcs.iter()
                .any(|s| s["token"].as_str().is_some_and(|t| t.starts_with('▁')))
        }) && v["method"] == "softmax_top_k"
    });
    assert!(canonical_anchor, "no computed row used a ▁ anchor");
}

#[test]
fn inspect_bad_input_is_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, hlp, _, _) = build(tmp.path());
    let fails = |args: &[&str], needles: &[&str]| {
        let out = run("inspect", args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
        for n in needles {
            assert!(err.contains(n), "{n:?} not in {err}");
        }
    };
    // A directory without tokenizer.json.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    fails(
        &["--source", s(&src), "--helper", s(&empty)],
        &["tokenizer.json", "not found", "empty"],
    );
    // No such directory.
    fails(
        &["--source", s(&tmp.path().join("nope")), "--helper", s(&hlp)],
        &["--source", "no such directory"],
    );
    // Canonical matching with a tokenizer whose family cannot be told (word level).
    let wl = tmp.path().join("wordlevel");
    std::fs::create_dir(&wl).unwrap();
    let model = tokenizers::models::wordlevel::WordLevel::builder()
        .vocab([("hello".to_string(), 0), ("[UNK]".to_string(), 1)].into())
        .unk_token("[UNK]".into())
        .build()
        .unwrap();
    tokenizers::Tokenizer::new(model)
        .save(wl.join("tokenizer.json"), false)
        .unwrap();
    // It falls back to exact matching and says so in one notice line.
    let out = run(
        "inspect",
        &[
            "--source",
            s(&src),
            "--helper",
            s(&wl),
            "--match",
            "canonical",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    let notices: Vec<&str> = err.lines().filter(|l| l.starts_with("notice:")).collect();
    assert_eq!(notices.len(), 1, "{err}");
    for n in ["--match canonical", "WordLevel", "exact token string"] {
        assert!(notices[0].contains(n), "{n:?} not in {}", notices[0]);
    }
    let json: Value = serde_json::from_str(&ok(run(
        "inspect",
        &[
            "--source",
            s(&src),
            "--helper",
            s(&wl),
            "--match",
            "canonical",
            "--json",
        ],
    )))
    .unwrap();
    assert_eq!(json["matching"]["counts"]["mode"], "exact");
    assert!(json["matching"]["notice"]
        .as_str()
        .unwrap()
        .contains("WordLevel"));
    // Exact matching works there.
    let json: Value = serde_json::from_str(&ok(run(
        "inspect",
        &["--source", s(&src), "--helper", s(&wl), "--json"],
    )))
    .unwrap();
    assert_eq!(json["matching"]["counts"]["target_tokens"], 2);
    assert_eq!(json["matching"]["target_family"]["family"], "unknown");
    assert_eq!(json["canonical_would_add"], Value::Null);
    // A bad --match value (clap's usage error).
    let out = run(
        "inspect",
        &["--source", s(&src), "--helper", s(&hlp), "--match", "fuzzy"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("fuzzy") && err.contains("exact or canonical"),
        "{err}"
    );
}
