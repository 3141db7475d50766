//! Every bad input of `clp-gpu apply` fails the same way: exit code ≠ 0, one line on stderr
//! naming the file/tensor/token and the fix, and nothing at OUT (no staging directory either).

mod fixtures;

use fixtures::*;

use clp_gpu::tensor::DType;
use serde_json::json;
use std::path::{Path, PathBuf};

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    src: Model,
    hlp: Model,
    sharded: Model,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let src = build_model(
        &root.join("src"),
        &ModelSpec {
            arch: Arch::Gpt2,
            vocab: Vocab::Trained {
                lang: Lang::English,
                size: 300,
                pad_rows: 4,
            },
            dim: 16,
            dtype: DType::F32,
            shards: 1,
            seed: 1,
            ..Default::default()
        },
    );
    let hlp = build_model(
        &root.join("hlp"),
        &ModelSpec {
            arch: Arch::Gpt2,
            vocab: Vocab::Trained {
                lang: Lang::German,
                size: 280,
                pad_rows: 0,
            },
            dim: 16,
            dtype: DType::F32,
            shards: 1,
            seed: 2,
            ..Default::default()
        },
    );
    let sharded = build_model(
        &root.join("sharded"),
        &ModelSpec {
            arch: Arch::Llama,
            vocab: Vocab::Trained {
                lang: Lang::English,
                size: 300,
                pad_rows: 0,
            },
            dim: 16,
            dtype: DType::F16,
            shards: 3,
            seed: 3,
            ..Default::default()
        },
    );
    Fixture {
        _tmp: tmp,
        root,
        src,
        hlp,
        sharded,
    }
}

fn copy_dir(from: &Path, to: &Path) -> PathBuf {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
    to.to_path_buf()
}

/// Runs apply, expecting failure; checks the one-line message contains every `needles` and
/// that nothing was left at OUT or beside it.
fn fails(f: &Fixture, name: &str, source: &Path, helper: &Path, extra: &[&str], needles: &[&str]) {
    let out = f.root.join(format!("out-{name}"));
    let mut args = vec![
        "--source",
        source.to_str().unwrap(),
        "--helper",
        helper.to_str().unwrap(),
    ];
    let out_s = out.to_str().unwrap().to_string();
    if !extra.contains(&"--out") {
        args.extend(["--out", &out_s]);
    }
    args.extend(extra);
    args.extend(["--backend", "cpu-reference"]);
    let o = run("apply", &args);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{name}: expected failure, got success");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "{name}: stderr is not one line:\n{stderr}"
    );
    for n in needles {
        assert!(stderr.contains(n), "{name}: stderr lacks `{n}`: {stderr}");
    }
    assert!(!out.exists(), "{name}: OUT exists after failure");
    let leftovers: Vec<String> = std::fs::read_dir(&f.root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!(".out-{name}")))
        .collect();
    assert!(
        leftovers.is_empty(),
        "{name}: staging left behind: {leftovers:?}"
    );
}

/// Writes a safetensors file from a raw header and data.
fn raw_safetensors(path: &Path, header: &serde_json::Value, data_len: usize) {
    let mut h = serde_json::to_vec(header).unwrap();
    h.resize(h.len().next_multiple_of(8), b' ');
    let mut bytes = (h.len() as u64).to_le_bytes().to_vec();
    bytes.extend(h);
    bytes.extend(vec![0u8; data_len]);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn every_bad_input_fails_with_one_line_and_nothing_at_out() {
    let f = fixture();
    let (src, hlp) = (&f.src.dir, &f.hlp.dir);
    let case = |name: &str| f.root.join(format!("case-{name}"));

    // Missing directory.
    fails(
        &f,
        "nodir",
        &f.root.join("absent"),
        hlp,
        &[],
        &["--source", "absent"],
    );
    // Missing config.json / malformed JSON.
    let d = copy_dir(src, &case("noconfig"));
    std::fs::remove_file(d.join("config.json")).unwrap();
    fails(&f, "noconfig", &d, hlp, &[], &["config.json", "not found"]);
    let d = copy_dir(src, &case("badconfig"));
    std::fs::write(d.join("config.json"), "{\"model_type\": \"gpt2\",").unwrap();
    fails(
        &f,
        "badconfig",
        &d,
        hlp,
        &[],
        &["config.json", "malformed JSON"],
    );
    let d = copy_dir(hlp, &case("badtokcfg"));
    std::fs::write(d.join("tokenizer_config.json"), "[1, 2").unwrap();
    fails(
        &f,
        "badtokcfg",
        src,
        &d,
        &[],
        &["tokenizer_config.json", "malformed JSON"],
    );
    // tokenizer.json that does not load.
    let d = copy_dir(src, &case("badtok"));
    std::fs::write(
        d.join("tokenizer.json"),
        "{\"version\": \"1.0\", \"model\": {\"type\": \"Nope\"}}",
    )
    .unwrap();
    fails(
        &f,
        "badtok",
        &d,
        hlp,
        &[],
        &["tokenizer.json", "does not load"],
    );
    let d = copy_dir(hlp, &case("notok"));
    std::fs::remove_file(d.join("tokenizer.json")).unwrap();
    fails(&f, "notok", src, &d, &[], &["tokenizer.json", "not found"]);

    // Corrupt safetensors: bad header length, truncated data, overlapping ranges.
    let d = copy_dir(src, &case("hdrlen"));
    let mut bytes = std::fs::read(d.join("model.safetensors")).unwrap();
    bytes[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    std::fs::write(d.join("model.safetensors"), &bytes).unwrap();
    fails(
        &f,
        "hdrlen",
        &d,
        hlp,
        &[],
        &["model.safetensors", "header length"],
    );
    let d = copy_dir(src, &case("short"));
    std::fs::write(d.join("model.safetensors"), [1u8, 2, 3]).unwrap();
    fails(
        &f,
        "short",
        &d,
        hlp,
        &[],
        &["model.safetensors", "truncated"],
    );
    let d = copy_dir(src, &case("trunc"));
    let bytes = std::fs::read(d.join("model.safetensors")).unwrap();
    std::fs::write(d.join("model.safetensors"), &bytes[..bytes.len() - 100]).unwrap();
    fails(
        &f,
        "trunc",
        &d,
        hlp,
        &[],
        &["model.safetensors", "past the end"],
    );
    let d = copy_dir(src, &case("overlap"));
    raw_safetensors(
        &d.join("model.safetensors"),
        &json!({
            "transformer.wte.weight": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 64]},
            "transformer.ln_f.bias": {"dtype": "F32", "shape": [4], "data_offsets": [48, 64]},
        }),
        64,
    );
    fails(
        &f,
        "overlap",
        &d,
        hlp,
        &[],
        &["model.safetensors", "transformer.ln_f.bias", "overlapping"],
    );

    // Embedding not found / ambiguous / unsupported dtype.
    let d = copy_dir(src, &case("noemb"));
    let keep: Vec<Tensor> = f
        .src
        .tensors
        .iter()
        .filter(|t| t.name != "transformer.wte.weight")
        .cloned()
        .collect();
    write_weights(&d, &keep, 1);
    fails(
        &f,
        "noemb",
        &d,
        hlp,
        &[],
        &[
            "source model",
            "embedding tensor not found",
            "model.safetensors",
        ],
    );
    let d = copy_dir(src, &case("ambig"));
    let mut twice = f.src.tensors.clone();
    let mut dup = f.src.tensor("transformer.wte.weight").clone();
    dup.name = "wte.weight".into();
    twice.push(dup);
    write_weights(&d, &twice, 1);
    fails(
        &f,
        "ambig",
        &d,
        hlp,
        &[],
        &["ambiguous", "transformer.wte.weight", "wte.weight"],
    );
    let d = copy_dir(src, &case("ambig2"));
    let cfg = json!({"model_type": "mystery", "hidden_size": 16});
    write_json(&d.join("config.json"), &cfg);
    let mut two = f.src.tensors.clone();
    let mut other = f.src.tensor("transformer.wte.weight").clone();
    other.name = "transformer.other_table.weight".into();
    two.push(other);
    write_weights(&d, &two, 1);
    fails(
        &f,
        "ambig2",
        &d,
        hlp,
        &[],
        &["ambiguous", "transformer.other_table.weight", "model_type"],
    );
    let d = copy_dir(src, &case("dtype"));
    let t = f.src.tensor("transformer.wte.weight");
    raw_safetensors(
        &d.join("model.safetensors"),
        &json!({"transformer.wte.weight": {"dtype": "F64", "shape": t.shape, "data_offsets": [0, t.bytes.len() * 2]}}),
        t.bytes.len() * 2,
    );
    fails(
        &f,
        "dtype",
        &d,
        hlp,
        &[],
        &["transformer.wte.weight", "F64", "F32, F16 and BF16"],
    );

    // Index pointing at a missing shard.
    let d = copy_dir(&f.sharded.dir, &case("shard"));
    std::fs::remove_file(d.join("model-00002-of-00003.safetensors")).unwrap();
    fails(
        &f,
        "shard",
        &d,
        hlp,
        &[],
        &[
            "model.safetensors.index.json",
            "model-00002-of-00003.safetensors",
        ],
    );
    // Untied config without an lm_head.
    let d = copy_dir(&f.sharded.dir, &case("nohead"));
    let keep: Vec<Tensor> = f
        .sharded
        .tensors
        .iter()
        .filter(|t| t.name != "lm_head.weight")
        .cloned()
        .collect();
    std::fs::remove_file(d.join("model.safetensors.index.json")).unwrap();
    for i in 1..=3 {
        std::fs::remove_file(d.join(format!("model-{i:05}-of-00003.safetensors"))).unwrap();
    }
    write_weights(&d, &keep, 1);
    fails(
        &f,
        "nohead",
        &d,
        hlp,
        &[],
        &["tie_word_embeddings", "lm_head"],
    );

    // Helper embedding with fewer rows than its tokenizer.
    let d = copy_dir(hlp, &case("hlprows"));
    let mut short = f.hlp.tensors.clone();
    let wte = short
        .iter_mut()
        .find(|t| t.name == "transformer.wte.weight")
        .unwrap();
    let rows = f.hlp.tokens - 5;
    wte.shape = vec![rows, 16];
    wte.bytes.truncate(rows * 16 * 4);
    write_weights(&d, &short, 1);
    fails(
        &f,
        "hlprows",
        src,
        &d,
        &[],
        &[
            "helper embedding",
            "transformer.wte.weight",
            "rows",
            "--helper-tokenizer",
        ],
    );

    // No overlapping tokens: a word-level tokenizer of strings the source does not have.
    let d = copy_dir(hlp, &case("nooverlap"));
    let vocab: std::collections::HashMap<String, u32> =
        (0..50).map(|i| (format!("⟦zz{i}⟧"), i as u32)).collect();
    let model = tokenizers::models::wordlevel::WordLevel::builder()
        .vocab(vocab.into_iter().collect())
        .unk_token("⟦zz0⟧".into())
        .build()
        .unwrap();
    tokenizers::Tokenizer::new(model)
        .save(d.join("tokenizer.json"), false)
        .unwrap();
    fails(
        &f,
        "nooverlap",
        src,
        &d,
        &[],
        &["no token of the target tokenizer", "tokenizer.json"],
    );

    // OUT exists; OUT not writable (its parent is a file).
    let existing = f.root.join("existing");
    std::fs::create_dir(&existing).unwrap();
    let o = run(
        "apply",
        &[
            "--source",
            src.to_str().unwrap(),
            "--helper",
            hlp.to_str().unwrap(),
            "--out",
            existing.to_str().unwrap(),
        ],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("already exists")
            && err.contains("--force")
            && err.trim_end().lines().count() == 1,
        "{err}"
    );
    let file = f.root.join("a-file");
    std::fs::write(&file, "x").unwrap();
    let bad_out = file.join("out");
    fails(
        &f,
        "unwritable",
        src,
        hlp,
        &["--out", bad_out.to_str().unwrap()],
        &["--out", "a-file"],
    );
    // --provenance into a missing directory.
    let prov = f.root.join("nodir").join("p.jsonl");
    fails(
        &f,
        "prov",
        src,
        hlp,
        &["--provenance", prov.to_str().unwrap()],
        &["--provenance", "nodir"],
    );
}

#[test]
fn force_replaces_an_existing_out() {
    let f = fixture();
    let out = f.root.join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("stale.txt"), "old").unwrap();
    let args = |force: bool| {
        let mut a = vec![
            "--source",
            f.src.dir.to_str().unwrap(),
            "--helper",
            f.hlp.dir.to_str().unwrap(),
        ];
        a.extend([
            "--out",
            out.to_str().unwrap(),
            "--quiet",
            "--backend",
            "cpu-reference",
        ]);
        if force {
            a.push("--force");
        }
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let a: Vec<String> = args(true);
    ok(run(
        "apply",
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    assert!(!out.join("stale.txt").exists());
    check_output(&f.src, &f.hlp, &out, clp_gpu::weights::TopK::All, None);
    // --out equal to an input directory is refused even with --force.
    let o = run(
        "apply",
        &[
            "--source",
            f.src.dir.to_str().unwrap(),
            "--helper",
            f.hlp.dir.to_str().unwrap(),
            "--out",
            f.src.dir.to_str().unwrap(),
            "--force",
            "--backend",
            "cpu-reference",
        ],
    );
    assert!(!o.status.success());
    assert!(f.src.dir.join("model.safetensors").is_file());
    assert!(String::from_utf8_lossy(&o.stderr).contains("input directory"));
}
