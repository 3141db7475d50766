//! Every bad input of `clp-gpu apply` fails the same way: exit code ≠ 0, one line on stderr
//! naming the file/tensor/token and the fix, and nothing at OUT (no staging directory either).

mod fixtures;

use clp_gpu::tensor::DType;
use fixtures::*;
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
    let (src, hlp) = build_pair(
        &root,
        &ModelSpec {
            seed: 1,
            ..ModelSpec::trained(Arch::Gpt2, Lang::English, 300, 4)
        },
        &ModelSpec {
            seed: 2,
            ..ModelSpec::trained(Arch::Gpt2, Lang::German, 280, 0)
        },
    );
    let sharded = build_model(
        &root.join("sharded"),
        &ModelSpec {
            dtype: DType::F16,
            shards: 3,
            seed: 3,
            ..ModelSpec::trained(Arch::Llama, Lang::English, 300, 0)
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

/// Runs apply, expecting failure; checks the one-line message contains every `needles` and
/// that nothing was left at OUT or beside it.
fn fails_with<'n>(
    f: &Fixture,
    name: &str,
    (source, helper): (&Path, &Path),
    extra: &[&str],
    needles: impl Iterator<Item = &'n str>,
) {
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

/// The inputs of one failing run: a source and helper directory (the fixture's unless a case
/// replaces one) and extra arguments.
struct Setup {
    source: PathBuf,
    helper: PathBuf,
    extra: Vec<String>,
    /// Needles only known once the case is built (a row id, a token).
    needles: Vec<String>,
}

impl Setup {
    fn new(f: &Fixture) -> Setup {
        Setup {
            source: f.src.dir.clone(),
            helper: f.hlp.dir.clone(),
            extra: Vec::new(),
            needles: Vec::new(),
        }
    }
    fn source(f: &Fixture, source: PathBuf) -> Setup {
        Setup {
            source,
            ..Setup::new(f)
        }
    }
    fn helper(f: &Fixture, helper: PathBuf) -> Setup {
        Setup {
            helper,
            ..Setup::new(f)
        }
    }
    fn extra(f: &Fixture, extra: &[&str]) -> Setup {
        Setup {
            extra: extra.iter().map(|a| a.to_string()).collect(),
            ..Setup::new(f)
        }
    }
}

/// One bad input: `make` builds it (in the empty case directory it is given, where it needs
/// one), `needles` are what the one-line message must name.
struct Case {
    name: &'static str,
    make: fn(&Fixture, &Path) -> Setup,
    needles: &'static [&'static str],
}

/// A copy of `from` in `to` with `file` replaced by `bytes`.
fn with_file(from: &Path, to: &Path, file: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let d = copy_dir(from, to);
    std::fs::write(d.join(file), bytes).unwrap();
    d
}

/// A copy of `from` in `to` without `file`.
fn without_file(from: &Path, to: &Path, file: &str) -> PathBuf {
    let d = copy_dir(from, to);
    std::fs::remove_file(d.join(file)).unwrap();
    d
}

/// A copy of the source model in `to` with its weights replaced by `tensors` (one file).
fn source_with_weights(f: &Fixture, to: &Path, tensors: &[Tensor]) -> PathBuf {
    let d = copy_dir(&f.src.dir, to);
    write_weights(&d, tensors, 1);
    d
}

/// The source's tensors plus a copy of its embedding under `name`.
fn embedding_twice(f: &Fixture, name: &str) -> Vec<Tensor> {
    let mut tensors = f.src.tensors.clone();
    let mut copy = f.src.tensor("transformer.wte.weight").clone();
    copy.name = name.into();
    tensors.push(copy);
    tensors
}

/// A helper whose tokenizer is word-level over strings the source does not have.
fn helper_without_overlap(f: &Fixture, to: &Path) -> Setup {
    let d = copy_dir(&f.hlp.dir, to);
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
    Setup::helper(f, d)
}

/// The sharded Llama as one file without its lm_head (while the config says untied).
fn untied_without_head(f: &Fixture, to: &Path) -> Setup {
    let d = copy_dir(&f.sharded.dir, to);
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
    Setup::source(f, d)
}

/// A helper embedding with fewer rows than its tokenizer.
fn helper_with_short_embedding(f: &Fixture, to: &Path) -> Setup {
    let d = copy_dir(&f.hlp.dir, to);
    let mut short = f.hlp.tensors.clone();
    let wte = short
        .iter_mut()
        .find(|t| t.name == "transformer.wte.weight")
        .unwrap();
    let rows = f.hlp.tokens - 5;
    wte.shape = vec![rows, 16];
    wte.bytes.truncate(rows * 16 * 4);
    write_weights(&d, &short, 1);
    Setup::helper(f, d)
}

/// A token of both tokenizers (`overlap`) or of the helper's only: (token, source id, target id).
fn pick_token(f: &Fixture, overlap: bool) -> (String, Option<u32>, u32) {
    let (src, tgt) = (vocab_of(&f.src.dir), vocab_of(&f.hlp.dir));
    let mut both: Vec<(&String, &u32)> = tgt
        .iter()
        .filter(|(t, _)| {
            src.contains_key(*t) == overlap && t.chars().count() > 1 && !t.starts_with('<')
        })
        .collect();
    both.sort();
    let (t, &id) = both[0];
    (t.clone(), src.get(t).copied(), id)
}

/// A copy of `model` in `to` with element 3 of `tensor` row `row` set to `value` (F32 weights);
/// the needles name the file, tensor, row, value and token.
fn poisoned(
    model: &Model,
    to: &Path,
    (row, token): (u32, &str),
    value: f32,
) -> (PathBuf, Vec<String>) {
    let d = copy_dir(&model.dir, to);
    let mut tensors = model.tensors.clone();
    let name = "transformer.wte.weight";
    let t = tensors.iter_mut().find(|t| t.name == name).unwrap();
    let at = (row as usize * model.dim + 3) * 4;
    t.bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
    write_weights(&d, &tensors, 1);
    let what = if value.is_nan() { "NaN" } else { "Inf" };
    let needles = [
        s(&d.join("model.safetensors")).to_string(),
        format!("`{name}` row {row} (token {token:?})"),
        format!("element 3 is {what}"),
    ];
    (d, needles.to_vec())
}

/// A NaN in the source row of an overlapping token (copied into the output until refused).
fn nan_in_source_overlap_row(f: &Fixture, to: &Path) -> Setup {
    let (token, sid, _) = pick_token(f, true);
    let (d, needles) = poisoned(&f.src, to, (sid.unwrap(), &token), f32::NAN);
    Setup {
        needles,
        ..Setup::source(f, d)
    }
}

/// A helper row with a NaN or an Inf (overlap: one every softmax reads; else a missing row).
fn bad_helper_row(f: &Fixture, to: &Path, overlap: bool, value: f32) -> Setup {
    let (token, _, tid) = pick_token(f, overlap);
    let (d, needles) = poisoned(&f.hlp, to, (tid, &token), value);
    Setup {
        needles,
        ..Setup::helper(f, d)
    }
}

fn cases() -> Vec<Case> {
    vec![
        // Missing directory.
        Case {
            name: "nodir",
            make: |f, _| Setup::source(f, f.root.join("absent")),
            needles: &["--source", "absent"],
        },
        // Missing config.json / malformed JSON.
        Case {
            name: "noconfig",
            make: |f, d| Setup::source(f, without_file(&f.src.dir, d, "config.json")),
            needles: &["config.json", "not found"],
        },
        Case {
            name: "badconfig",
            make: |f, d| {
                let bad = "{\"model_type\": \"gpt2\",";
                Setup::source(f, with_file(&f.src.dir, d, "config.json", bad))
            },
            needles: &["config.json", "malformed JSON"],
        },
        Case {
            name: "badtokcfg",
            make: |f, d| {
                let bad = with_file(&f.hlp.dir, d, "tokenizer_config.json", "[1, 2");
                Setup::helper(f, bad)
            },
            needles: &["tokenizer_config.json", "malformed JSON"],
        },
        // tokenizer.json that does not load / is missing.
        Case {
            name: "badtok",
            make: |f, d| {
                let bad = "{\"version\": \"1.0\", \"model\": {\"type\": \"Nope\"}}";
                Setup::source(f, with_file(&f.src.dir, d, "tokenizer.json", bad))
            },
            needles: &["tokenizer.json", "does not load"],
        },
        Case {
            name: "notok",
            make: |f, d| Setup::helper(f, without_file(&f.hlp.dir, d, "tokenizer.json")),
            needles: &["tokenizer.json", "not found"],
        },
        // Corrupt safetensors: bad header length, truncated data, overlapping ranges.
        Case {
            name: "hdrlen",
            make: |f, d| {
                let mut bytes = std::fs::read(f.src.dir.join("model.safetensors")).unwrap();
                bytes[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
                Setup::source(f, with_file(&f.src.dir, d, "model.safetensors", bytes))
            },
            needles: &["model.safetensors", "header length"],
        },
        Case {
            name: "short",
            make: |f, d| Setup::source(f, with_file(&f.src.dir, d, "model.safetensors", [1, 2, 3])),
            needles: &["model.safetensors", "truncated"],
        },
        Case {
            name: "trunc",
            make: |f, d| {
                let bytes = std::fs::read(f.src.dir.join("model.safetensors")).unwrap();
                let cut = &bytes[..bytes.len() - 100];
                Setup::source(f, with_file(&f.src.dir, d, "model.safetensors", cut))
            },
            needles: &["model.safetensors", "past the end"],
        },
        Case {
            name: "overlap",
            make: |f, d| {
                let d = copy_dir(&f.src.dir, d);
                raw_safetensors(
                    &d.join("model.safetensors"),
                    &json!({
                        "transformer.wte.weight": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 64]},
                        "transformer.ln_f.bias": {"dtype": "F32", "shape": [4], "data_offsets": [48, 64]},
                    }),
                    64,
                );
                Setup::source(f, d)
            },
            needles: &["model.safetensors", "transformer.ln_f.bias", "overlapping"],
        },
        // Embedding not found / ambiguous / unsupported dtype.
        Case {
            name: "noemb",
            make: |f, d| {
                let keep: Vec<Tensor> = f
                    .src
                    .tensors
                    .iter()
                    .filter(|t| t.name != "transformer.wte.weight")
                    .cloned()
                    .collect();
                Setup::source(f, source_with_weights(f, d, &keep))
            },
            needles: &[
                "source model",
                "embedding tensor not found",
                "model.safetensors",
            ],
        },
        Case {
            name: "ambig",
            make: |f, d| {
                let twice = embedding_twice(f, "wte.weight");
                Setup::source(f, source_with_weights(f, d, &twice))
            },
            needles: &["ambiguous", "transformer.wte.weight", "wte.weight"],
        },
        Case {
            name: "ambig2",
            make: |f, d| {
                let two = embedding_twice(f, "transformer.other_table.weight");
                let d = source_with_weights(f, d, &two);
                let cfg = json!({"model_type": "mystery", "hidden_size": 16});
                write_json(&d.join("config.json"), &cfg);
                Setup::source(f, d)
            },
            needles: &["ambiguous", "transformer.other_table.weight", "model_type"],
        },
        // An embedding stored 1-D; an embedding narrower than the config says.
        Case {
            name: "emb1d",
            make: |f, d| {
                let mut tensors = f.src.tensors.clone();
                let wte = tensors
                    .iter_mut()
                    .find(|t| t.name == "transformer.wte.weight")
                    .unwrap();
                wte.shape = vec![wte.shape.iter().product()];
                Setup::source(f, source_with_weights(f, d, &tensors))
            },
            needles: &["model.safetensors", "transformer.wte.weight", "shape"],
        },
        Case {
            name: "width",
            make: |f, d| {
                let d = copy_dir(&f.src.dir, d);
                let mut cfg = read_json(&d.join("config.json"));
                cfg["n_embd"] = json!(32);
                write_json(&d.join("config.json"), &cfg);
                Setup::source(f, d)
            },
            needles: &[
                "model.safetensors",
                "transformer.wte.weight",
                "16",
                "`n_embd` = 32",
            ],
        },
        Case {
            name: "dtype",
            make: |f, d| {
                let d = copy_dir(&f.src.dir, d);
                let t = f.src.tensor("transformer.wte.weight");
                raw_safetensors(
                    &d.join("model.safetensors"),
                    &json!({"transformer.wte.weight": {"dtype": "F64", "shape": t.shape, "data_offsets": [0, t.bytes.len() * 2]}}),
                    t.bytes.len() * 2,
                );
                Setup::source(f, d)
            },
            needles: &["transformer.wte.weight", "F64", "F32, F16 and BF16"],
        },
        // Index pointing at a missing shard.
        Case {
            name: "shard",
            make: |f, d| {
                let shard = "model-00002-of-00003.safetensors";
                Setup::source(f, without_file(&f.sharded.dir, d, shard))
            },
            needles: &[
                "model.safetensors.index.json",
                "model-00002-of-00003.safetensors",
            ],
        },
        // Untied config without an lm_head.
        Case {
            name: "nohead",
            make: untied_without_head,
            needles: &["tie_word_embeddings", "lm_head"],
        },
        // Helper embedding with fewer rows than its tokenizer.
        Case {
            name: "hlprows",
            make: helper_with_short_embedding,
            needles: &[
                "helper embedding",
                "transformer.wte.weight",
                "rows",
                "--helper-tokenizer",
            ],
        },
        // No overlapping tokens: a word-level tokenizer of strings the source does not have.
        Case {
            name: "nooverlap",
            make: helper_without_overlap,
            needles: &["no token of the target tokenizer", "tokenizer.json"],
        },
        // A NaN or Inf in a row the run reads: named by file, tensor, row and token.
        Case {
            name: "nansrc",
            make: nan_in_source_overlap_row,
            needles: &["corrupt"],
        },
        Case {
            name: "infhlp",
            make: |f, d| bad_helper_row(f, d, true, f32::INFINITY),
            needles: &["corrupt"],
        },
        Case {
            name: "nanmissing",
            make: |f, d| bad_helper_row(f, d, false, f32::NAN),
            needles: &["corrupt"],
        },
        // OUT not writable (its parent is a file).
        Case {
            name: "unwritable",
            make: |f, _| {
                let file = f.root.join("a-file");
                std::fs::write(&file, "x").unwrap();
                Setup::extra(f, &["--out", s(&file.join("out"))])
            },
            needles: &["--out", "a-file"],
        },
        // --provenance into a missing directory.
        Case {
            name: "prov",
            make: |f, _| {
                let prov = f.root.join("nodir").join("p.jsonl");
                Setup::extra(f, &["--provenance", s(&prov)])
            },
            needles: &["--provenance", "nodir"],
        },
    ]
}

#[test]
fn every_bad_input_fails_with_one_line_and_nothing_at_out() {
    let f = fixture();
    for case in cases() {
        let setup = (case.make)(&f, &f.root.join(format!("case-{}", case.name)));
        let extra: Vec<&str> = setup.extra.iter().map(String::as_str).collect();
        let needles = case.needles.iter().copied();
        fails_with(
            &f,
            case.name,
            (&setup.source, &setup.helper),
            &extra,
            needles.chain(setup.needles.iter().map(String::as_str)),
        );
    }
    // OUT exists: refused without --force (OUT is left as it was).
    let existing = f.root.join("existing");
    std::fs::create_dir(&existing).unwrap();
    let o = run(
        "apply",
        &[
            "--source",
            s(&f.src.dir),
            "--helper",
            s(&f.hlp.dir),
            "--out",
            s(&existing),
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
            "--preset",
            "original",
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
    check_output(
        &f.src,
        &f.hlp,
        &out,
        clp_gpu::defaults::Preset::Original.weighting(),
        None,
    );
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
