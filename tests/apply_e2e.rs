//! End-to-end tests of `clp-gpu apply`: tiny models built in a temp dir, the real binary run
//! with the GPU backend asked for by name (lavapipe in CI; `auto` would take the CPU path there), every output file checked against the source, the
//! helper and the CPU reference (see `check_output`).

mod fixtures;

use clp_gpu::method::{TopK, Weighting};
use clp_gpu::tensor::DType;

/// The paper's method (`--preset original`), which most runs here check against.
const ORIGINAL: Weighting = Weighting::Clp { top_k: TopK::All };
use fixtures::*;
use serde_json::Value;
use std::path::Path;

#[test]
fn gpt2_f32_tied_padded_single_file_is_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, hlp) = build_pair(
        tmp.path(),
        &ModelSpec {
            dim: 32,
            seed: 1,
            ..ModelSpec::trained(Arch::Gpt2, Lang::English, 420, 13)
        },
        &ModelSpec {
            dim: 24,
            dtype: DType::F16,
            seed: 2,
            ..ModelSpec::trained(Arch::Gpt2, Lang::German, 380, 7)
        },
    );
    let out = tmp.path().join("out");
    let started = std::time::Instant::now();
    let stdout = ok(run_apply(&src, &hlp, &out, &["--json"]));
    let wall_s = started.elapsed().as_secs_f64();
    // No flags: the default method (canonical matching, softmax over the 10 nearest) on the
    // backend `auto` picks: the CPU path where the only adapters are software renderers
    // (lavapipe in CI), else the GPU; the first notice says which and why.
    let summary: Value = serde_json::from_str(&stdout).expect("--json prints JSON");
    let adapters = clp_gpu::backend::gpu::list_adapters();
    assert!(
        !adapters.is_empty(),
        "no GPU adapter: install mesa-vulkan-drivers (lavapipe)"
    );
    let software_only = adapters.iter().all(clp_gpu::backend::is_software);
    let first_notice = summary["notices"][0].as_str().unwrap_or_default();
    assert!(first_notice.starts_with("backend auto"), "{summary}");
    if software_only {
        assert_eq!(summary["backend"], "cpu", "{summary}");
        assert!(summary["adapter"].is_null(), "{summary}");
        assert!(first_notice.contains(&adapters[0].name), "{first_notice}");
    } else {
        assert_eq!(summary["backend"], "gpu", "{summary}");
    }
    assert_eq!(summary["top_k"], "10");
    assert_eq!(summary["weighting"], "softmax k=10 T=0.1");
    assert_eq!(summary["match_mode"], "canonical");
    assert_eq!(summary["target_rows"], hlp.tokens);
    check_output(&src, &hlp, &out, clp_gpu::defaults::WEIGHTING, None);
    assert!(!out.join("model.safetensors.index.json").exists());
    check_timings(&summary, &read_json(&out.join("clp_transfer.json")), wall_s);

    // Same inputs, same bytes (clp_transfer.json holds timings and paths, so it may differ),
    // on the GPU (lavapipe in CI) asked for by name.
    let gpu_run = |out: &Path| ok(run_apply(&src, &hlp, out, &["--backend", "gpu", "--quiet"]));
    let (out, out2) = (tmp.path().join("gpu1"), tmp.path().join("gpu2"));
    gpu_run(&out);
    gpu_run(&out2);
    check_output(&src, &hlp, &out, clp_gpu::defaults::WEIGHTING, None);
    let (mut a, mut b) = (dir_bytes(&out), dir_bytes(&out2));
    a.remove("clp_transfer.json");
    b.remove("clp_transfer.json");
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, bytes) in &a {
        assert!(bytes == &b[name], "{name} differs between two runs");
    }
}

/// `timings_s` of an apply run: one key per stage in the order they run (`write` is timed in
/// two laps, the tensors before `compute` and the metadata after, and holds their sum), plus
/// the compute stage's parts as `compute: <part>`; seconds finite and not negative, the stages
/// adding up to no more than the process took; clp_transfer.json holds what `--json` printed.
fn check_timings(summary: &Value, report: &Value, wall_s: f64) {
    let timings = summary["timings_s"].as_object().expect("timings_s");
    assert_eq!(&report["timings_s"], &summary["timings_s"]);
    let stages: Vec<&str> = timings
        .keys()
        .map(String::as_str)
        .filter(|k| !k.starts_with("compute: "))
        .collect();
    assert_eq!(stages, ["compute", "gather", "match", "read", "write"]);
    let secs = |k: &str| timings[k].as_f64().unwrap_or(f64::NAN);
    for k in timings.keys() {
        assert!(secs(k).is_finite() && secs(k) >= 0.0, "{k}: {}", timings[k]);
    }
    let total: f64 = stages.iter().map(|k| secs(k)).sum();
    assert!(total <= wall_s, "stages {total} s, the process {wall_s} s");
}

#[test]
fn bloom_bf16_tied_padded_sharded() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, hlp) = build_pair(
        tmp.path(),
        &ModelSpec {
            dim: 48,
            dtype: DType::BF16,
            shards: 3,
            seed: 3,
            ..ModelSpec::trained(Arch::Bloom, Lang::English, 400, 20)
        },
        &ModelSpec {
            dtype: DType::BF16,
            shards: 2,
            seed: 4,
            ..ModelSpec::trained(Arch::Bloom, Lang::German, 360, 40)
        },
    );
    let out = tmp.path().join("out");
    ok(run_apply(
        &src,
        &hlp,
        &out,
        &[
            "--backend",
            "gpu",
            "--pad-to-multiple",
            "64",
            "--preset",
            "original",
            "--quiet",
        ],
    ));
    check_output(&src, &hlp, &out, ORIGINAL, Some(64));
    for i in 1..=3 {
        assert!(out
            .join(format!("model-{i:05}-of-00003.safetensors"))
            .is_file());
    }
    let report: Value =
        serde_json::from_slice(&std::fs::read(out.join("clp_transfer.json")).unwrap()).unwrap();
    assert_eq!(
        report["source"]["input_embedding"],
        "transformer.word_embeddings.weight"
    );
    assert!(report["adapter"].is_string(), "GPU adapter recorded");
}

#[test]
fn llama_f16_untied_lm_head_top_k_with_provenance() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, hlp) = build_pair(
        tmp.path(),
        &ModelSpec {
            dim: 40,
            dtype: DType::F16,
            shards: 2,
            seed: 5,
            ..ModelSpec::trained(Arch::Llama, Lang::English, 400, 0)
        },
        &ModelSpec {
            dim: 32,
            seed: 6,
            ..ModelSpec::trained(Arch::Llama, Lang::German, 350, 10)
        },
    );
    for backend in ["gpu", "cpu"] {
        let out = tmp.path().join(format!("out-{backend}"));
        let prov = tmp.path().join(format!("prov-{backend}.jsonl"));
        ok(run_apply(
            &src,
            &hlp,
            &out,
            &[
                "--backend",
                backend,
                "--top-k",
                "8",
                "--weighting",
                "clp",
                "--provenance",
                s(&prov),
                "--quiet",
            ],
        ));
        check_provenance_run(&src, &hlp, &out, &prov);
    }
}

fn check_provenance_run(src: &Model, hlp: &Model, out: &Path, prov: &Path) {
    check_output(src, hlp, out, Weighting::Clp { top_k: TopK::K(8) }, None);
    let report: Value =
        serde_json::from_slice(&std::fs::read(out.join("clp_transfer.json")).unwrap()).unwrap();
    assert_eq!(report["source"]["output_embedding"], "lm_head.weight");
    let text = std::fs::read_to_string(prov).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let computed = report["counts"]["computed"].as_u64().unwrap() as usize;
    let by_role = report["counts"]["special_by_role"].as_u64().unwrap() as usize;
    assert_eq!(lines.len(), computed + by_role);
    for l in &lines {
        match l["method"].as_str().unwrap() {
            "clp_top_k" => {
                let srcs = l["sources"].as_array().unwrap();
                assert_eq!(srcs.len(), 8);
                let sum: f64 = srcs.iter().map(|x| x["weight"].as_f64().unwrap()).sum();
                assert!((sum - 1.0).abs() < 1e-6, "weights sum to {sum}");
            }
            "special_role" => assert_eq!(l["sources"][0]["token"], "<|endoftext|>"),
            other => panic!("unexpected method {other}"),
        }
    }
}

#[test]
fn bert_output_bias_on_every_backend_and_a_tiny_budget() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, hlp) = build_pair(
        tmp.path(),
        &ModelSpec {
            dim: 24,
            seed: 27,
            ..ModelSpec::trained(Arch::Bert, Lang::English, 380, 5)
        },
        &ModelSpec {
            dtype: DType::F16,
            seed: 28,
            ..ModelSpec::trained(Arch::Bert, Lang::German, 340, 0)
        },
    );
    // 256 KiB forces many tiles on both sides; the output must not change beyond rounding.
    for (backend, budget) in [
        ("gpu", "1GiB"),
        ("gpu", "256KiB"),
        ("cpu", "1GiB"),
        ("cpu", "256KiB"),
        ("cpu-reference", "1GiB"),
    ] {
        let out = tmp.path().join(format!("out-{backend}-{budget}"));
        ok(run_apply(
            &src,
            &hlp,
            &out,
            &[
                "--backend",
                backend,
                "--gpu-memory",
                budget,
                "--preset",
                "original",
                "--quiet",
            ],
        ));
        check_output(&src, &hlp, &out, ORIGINAL, None);
    }
}

#[test]
fn hub_ids_resolve_offline_in_the_cache_and_helper_tokenizer_override() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("hub");
    let snap = |id: &str| {
        let repo = cache.join(format!("models--{}", id.replace('/', "--")));
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), "0123abcd\n").unwrap();
        repo.join("snapshots/0123abcd")
    };
    let (src_spec, hlp_spec) = gpt2_specs((9, 10));
    let src = build_model(&snap("org/src"), &src_spec);
    let hlp = build_model(&snap("org/hlp"), &hlp_spec);
    let out = tmp.path().join("out");
    let run = |extra: &[&str]| {
        let mut cmd = std::process::Command::new(bin());
        cmd.env("HF_HUB_CACHE", &cache).args([
            "apply", "--source", "org/src", "--helper", "org/hlp", "--quiet", "--preset",
            "original",
        ]);
        cmd.args(extra).output().unwrap()
    };
    ok(run(&["--out", s(&out), "--backend", "cpu-reference"]));
    check_output(&src, &hlp, &out, ORIGINAL, None);
    // --helper-tokenizer: the target tokenizer comes from another directory (here a copy).
    let tokdir = tmp.path().join("tok");
    std::fs::create_dir(&tokdir).unwrap();
    for f in [
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    ] {
        std::fs::copy(hlp.dir.join(f), tokdir.join(f)).unwrap();
    }
    let out2 = tmp.path().join("out2");
    ok(run(&[
        "--out",
        s(&out2),
        "--backend",
        "cpu-reference",
        "--helper-tokenizer",
        s(&tokdir),
    ]));
    check_output(&src, &hlp, &out2, ORIGINAL, None);
    // Not in the cache: one line naming the id and the fix.
    let o = std::process::Command::new(bin())
        .env("HF_HUB_CACHE", &cache)
        .args([
            "apply",
            "--source",
            "org/absent",
            "--helper",
            "org/hlp",
            "--out",
            s(&tmp.path().join("x")),
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("org/absent") && err.contains("huggingface-cli download"),
        "{err}"
    );
}

#[test]
fn zero_helper_row_gets_the_stated_fallback() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, mut hlp) = gpt2_pair(tmp.path(), (11, 12));
    let (sv, tv) = (vocab_of(&src.dir), vocab_of(&hlp.dir));
    let mut missing: Vec<(u32, String)> = tv
        .iter()
        .filter(|(t, _)| !sv.contains_key(*t) && !t.starts_with('<'))
        .map(|(t, &i)| (i, t.clone()))
        .collect();
    missing.sort();
    let (victim, victim_token) = missing[0].clone();
    let wte = hlp
        .tensors
        .iter_mut()
        .find(|t| t.name == "transformer.wte.weight")
        .unwrap();
    let rb = 16 * 4;
    wte.bytes[victim as usize * rb..(victim as usize + 1) * rb].fill(0);
    write_weights(&hlp.dir, &hlp.tensors, 1);
    let out = tmp.path().join("out");
    ok(run_apply(
        &src,
        &hlp,
        &out,
        &["--fallback", "mean", "--quiet"],
    ));

    let report: Value =
        serde_json::from_slice(&std::fs::read(out.join("clp_transfer.json")).unwrap()).unwrap();
    assert_eq!(report["counts"]["fallback"], 1);
    assert_eq!(report["fallback"]["method"], "mean");
    let row = &report["fallback"]["rows"][0];
    assert_eq!(row["target_id"], victim);
    assert_eq!(row["token"], victim_token.as_str());
    assert_eq!(row["reason"], "zero_helper_row");
    assert_eq!(row["got"], "mean");
    // The fallback is the mean of the overlapping source rows.
    let e = src.tensor("transformer.wte.weight");
    let overlap: Vec<u32> = tv.keys().filter_map(|t| sv.get(t).copied()).collect();
    let got = read_weights(&out);
    let bytes = &got["transformer.wte.weight"].2;
    for c in 0..16 {
        let mean = overlap
            .iter()
            .map(|&s| e.dtype.decode(&e.bytes, s as usize * 16 + c) as f64)
            .sum::<f64>()
            / overlap.len() as f64;
        let have = DType::F32.decode(bytes, victim as usize * 16 + c);
        assert!(
            (have as f64 - mean).abs() < 1e-6,
            "col {c}: {have} vs {mean}"
        );
    }
}

#[test]
fn gpt2_hub_names_without_prefix_and_extra_tokenizer_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut src, hlp) = build_pair(
        tmp.path(),
        &ModelSpec {
            dtype: DType::F16,
            seed: 13,
            ..ModelSpec::trained(Arch::Gpt2, Lang::English, 300, 3)
        },
        &ModelSpec {
            seed: 14,
            ..ModelSpec::trained(Arch::Gpt2, Lang::German, 280, 0)
        },
    );
    // The `gpt2` hub checkpoint is saved from the base model: no `transformer.` prefix.
    for t in &mut src.tensors {
        t.name = t.name.trim_start_matches("transformer.").to_string();
    }
    write_weights(&src.dir, &src.tensors, 1);
    std::fs::write(hlp.dir.join("vocab.json"), "{}").unwrap();
    std::fs::write(hlp.dir.join("merges.txt"), "#version: 0.2\n").unwrap();
    let out = tmp.path().join("out");
    ok(run_apply(&src, &hlp, &out, &["--quiet"]));
    let got = read_weights(&out);
    assert_eq!(got.keys().cloned().collect::<Vec<_>>(), {
        let mut names: Vec<String> = src.tensors.iter().map(|t| t.name.clone()).collect();
        names.sort();
        names
    });
    assert_eq!(got["wte.weight"].1, vec![hlp.tokens, 16]);
    for f in ["vocab.json", "merges.txt"] {
        assert_eq!(
            std::fs::read(out.join(f)).unwrap(),
            std::fs::read(hlp.dir.join(f)).unwrap()
        );
    }
}
