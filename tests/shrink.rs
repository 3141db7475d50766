//! End-to-end tests of `clp-gpu shrink`: layered checkpoints of three families lose layers
//! (kept layers byte-identical under their new numbers, config layer counts updated, every
//! other tensor untouched), the optional width reduction is checked against its definition,
//! and bad inputs fail with one line and leave nothing at OUT.

mod fixtures;

use clp_gpu::tensor::DType;
use fixtures::*;
use serde_json::json;
use std::path::Path;

/// Checks OUT against `model` when old layers `kept` were kept under `prefix`.
fn check_layers(model: &Model, out: &Path, prefix: &str, kept: &[usize], config_key: &str) {
    let got = read_weights(out);
    let mut expected = 0;
    for t in &model.tensors {
        let rest = t.name.strip_prefix(&format!("{prefix}."));
        let new_name = match rest.and_then(|r| r.split_once('.')) {
            Some((idx, tail)) => {
                let idx: usize = idx.parse().unwrap();
                match kept.iter().position(|&k| k == idx) {
                    Some(new) => format!("{prefix}.{new}.{tail}"),
                    None => {
                        continue;
                    }
                }
            }
            None => t.name.clone(),
        };
        expected += 1;
        let (_, shape, bytes) = got
            .get(&new_name)
            .unwrap_or_else(|| panic!("{new_name} (from {}) missing", t.name));
        assert_eq!(shape, &t.shape, "{new_name}");
        assert!(
            bytes == &t.bytes,
            "{new_name} is not the bytes of {}",
            t.name
        );
    }
    assert_eq!(got.len(), expected, "no extra tensors");
    let cfg = read_json(&out.join("config.json"));
    assert_eq!(cfg[config_key], json!(kept.len()));
    let before = read_json(&model.dir.join("config.json"));
    assert_eq!(cfg["model_type"], before["model_type"], "same architecture");
}

#[test]
fn llama_keep_every_two_keeps_the_last_layer_sharded() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("llama");
    let model = build_model(
        &dir,
        &ModelSpec {
            arch: Arch::Llama,
            vocab: Vocab::Rows(50),
            dim: 8,
            layers: 6,
            dtype: DType::F16,
            shards: 2,
            config: json!({"layer_types": ["a", "b", "c", "d", "e", "f"]}),
            ..Default::default()
        },
    );
    let out = tmp.path().join("out");
    let r = ok_json(run(
        "shrink",
        &[
            "--model",
            s(&dir),
            "--keep-every",
            "2",
            "--out",
            s(&out),
            "--json",
        ],
    ));
    assert_eq!(r["layers_kept"], json!([0, 2, 4, 5]));
    assert_eq!(r["layer_prefix"], "model.layers");
    check_layers(
        &model,
        &out,
        "model.layers",
        &[0, 2, 4, 5],
        "num_hidden_layers",
    );
    let cfg = read_json(&out.join("config.json"));
    assert_eq!(cfg["layer_types"], json!(["a", "c", "e", "f"]));
    assert_eq!(cfg["hidden_size"], json!(8));
    assert!(r["params_after"].as_u64() < r["params_before"].as_u64());
    assert!(r["bytes_after"].as_u64() < r["bytes_before"].as_u64());
    let index = read_json(&out.join("model.safetensors.index.json"));
    let names: Vec<&String> = index["weight_map"].as_object().unwrap().keys().collect();
    assert!(names.iter().any(|n| n.starts_with("model.layers.3.")));
    assert!(!names.iter().any(|n| n.starts_with("model.layers.4.")));
    assert!(out.join("shrink_report.json").is_file());
}

#[test]
fn gpt2_explicit_layers_and_bert_keep_every() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("gpt2");
    let model = build_model(
        &dir,
        &ModelSpec {
            arch: Arch::Gpt2,
            vocab: Vocab::Rows(40),
            dim: 8,
            layers: 4,
            dtype: DType::F32,
            shards: 1,
            ..Default::default()
        },
    );
    let out = tmp.path().join("out");
    let text = run(
        "shrink",
        &["--model", s(&dir), "--layers", "1,3", "--out", s(&out)],
    );
    assert!(
        text.status.success(),
        "{}",
        String::from_utf8_lossy(&text.stderr)
    );
    assert!(String::from_utf8_lossy(&text.stdout).contains("4 -> 2 layers"));
    check_layers(&model, &out, "transformer.h", &[1, 3], "n_layer");

    let bert_dir = tmp.path().join("bert");
    let bert = build_model(
        &bert_dir,
        &ModelSpec {
            arch: Arch::Bert,
            vocab: Vocab::Rows(30),
            dim: 8,
            layers: 4,
            dtype: DType::BF16,
            shards: 1,
            ..Default::default()
        },
    );
    let bert_out = tmp.path().join("bert_out");
    ok_json(run(
        "shrink",
        &[
            "--model",
            s(&bert_dir),
            "--keep-every",
            "3",
            "--out",
            s(&bert_out),
            "--json",
        ],
    ));
    check_layers(
        &bert,
        &bert_out,
        "bert.encoder.layer",
        &[0, 3],
        "num_hidden_layers",
    );
}

/// An f32 matrix of exact rank `rank` (rows × cols) as a tensor.
fn low_rank(name: &str, rows: usize, cols: usize, rank: usize, seed: u64) -> (Tensor, Vec<f32>) {
    let mut rng = Rng::new(seed);
    let a: Vec<f32> = (0..rows * rank).map(|_| signed_unit(&mut rng)).collect();
    let b: Vec<f32> = (0..rank * cols).map(|_| signed_unit(&mut rng)).collect();
    let mut e = vec![0.0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            e[r * cols + c] = (0..rank).map(|k| a[r * rank + k] * b[k * cols + c]).sum();
        }
    }
    let t = Tensor {
        name: name.into(),
        dtype: DType::F32,
        shape: vec![rows, cols],
        bytes: DType::F32.encode(&e),
    };
    (t, e)
}

#[test]
fn hidden_size_reduces_embedding_and_lm_head_by_svd() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("llama");
    let (v, d, dim) = (300, 12, 4);
    let mut model = build_model(
        &dir,
        &ModelSpec {
            arch: Arch::Llama,
            vocab: Vocab::Rows(v),
            dim: d,
            layers: 3,
            dtype: DType::F32,
            shards: 1,
            ..Default::default()
        },
    );
    // Replace the embedding by an exactly rank-4 matrix; lm_head stays random (full rank).
    let (emb, e) = low_rank("model.embed_tokens.weight", v, d, dim, 5);
    model.tensors.retain(|t| t.name != emb.name);
    model.tensors.push(emb);
    write_weights(&dir, &model.tensors, 1);
    let out = tmp.path().join("out");
    let r = ok_json(run(
        "shrink",
        &[
            "--model",
            s(&dir),
            "--keep-every",
            "2",
            "--hidden-size",
            &dim.to_string(),
            "--out",
            s(&out),
            "--json",
        ],
    ));
    let h = &r["hidden"];
    assert!(
        (h["spectrum_kept"].as_f64().unwrap() - 1.0).abs() < 1e-9,
        "{h}"
    );
    assert_eq!(h["lm_head"], "lm_head.weight");
    let lm_energy = h["lm_head_energy_kept"].as_f64().unwrap();
    assert!(lm_energy > 0.0 && lm_energy < 1.0);
    let got = read_weights(&out);
    let (_, shape, bytes) = &got["model.embed_tokens.weight"];
    assert_eq!(shape, &vec![v, dim]);
    assert_eq!(got["lm_head.weight"].1, vec![v, dim]);
    let reduced: Vec<f32> = (0..v * dim).map(|i| DType::F32.decode(bytes, i)).collect();
    // The projection file: V_Dᵀ (dim × d) with orthonormal rows, and E ≈ reduced @ projection.
    let pbytes = std::fs::read(out.join("embedding_projection.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&pbytes).unwrap();
    let p = st.tensor("projection").unwrap();
    assert_eq!(p.shape(), &[dim, d]);
    let proj: Vec<f32> = (0..dim * d)
        .map(|i| DType::F32.decode(p.data(), i))
        .collect();
    for a in 0..dim {
        for b in 0..dim {
            let dot: f32 = (0..d).map(|c| proj[a * d + c] * proj[b * d + c]).sum();
            assert!(
                (dot - if a == b { 1.0 } else { 0.0 }).abs() < 1e-5,
                "rows {a},{b}: {dot}"
            );
        }
    }
    let mut worst = 0.0f32;
    for row in 0..v {
        for c in 0..d {
            let x: f32 = (0..dim)
                .map(|k| reduced[row * dim + k] * proj[k * d + c])
                .sum();
            worst = worst.max((x - e[row * d + c]).abs());
        }
    }
    assert!(worst < 1e-3, "reconstruction error {worst}");
    // Column k of the reduced embedding has energy σ_k², descending.
    let energy: Vec<f32> = (0..dim)
        .map(|k| (0..v).map(|r| reduced[r * dim + k].powi(2)).sum())
        .collect();
    assert!(
        energy.windows(2).all(|w| w[0] >= w[1] * 0.999),
        "{energy:?}"
    );
    // Everything else: layers as with --keep-every 2 alone; config keeps the hidden size.
    let cfg = read_json(&out.join("config.json"));
    assert_eq!(cfg["hidden_size"], json!(d));
    assert_eq!(cfg["num_hidden_layers"], json!(2));
    assert_eq!(
        got["model.layers.1.self_attn.q_proj.weight"].2,
        model.tensor("model.layers.2.self_attn.q_proj.weight").bytes
    );
    assert_eq!(
        got["model.norm.weight"].2,
        model.tensor("model.norm.weight").bytes
    );
}

#[test]
fn bad_inputs_fail_with_one_line_and_nothing_at_out() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    build_model(
        &dir,
        &ModelSpec {
            arch: Arch::Llama,
            vocab: Vocab::Rows(20),
            dim: 8,
            layers: 3,
            dtype: DType::F32,
            shards: 1,
            ..Default::default()
        },
    );
    let out = tmp.path().join("out");
    let shrink = |extra: &[&str]| {
        let mut args = vec!["--model", s(&dir), "--out", s(&out)];
        args.extend_from_slice(extra);
        run("shrink", &args)
    };
    assert_fails_cleanly(
        shrink(&["--layers", "0,5"]),
        &out,
        &["--layers", "layer 5", "0..2"],
    );
    assert_fails_cleanly(shrink(&["--layers", "2,1"]), &out, &["increasing"]);
    assert_fails_cleanly(shrink(&[]), &out, &["nothing to do"]);
    assert_fails_cleanly(
        shrink(&["--hidden-size", "8"]),
        &out,
        &["--hidden-size 8", "between 1 and 7"],
    );
    // The config's layer count does not match the tensors.
    let cfg_path = dir.join("config.json");
    let mut cfg = read_json(&cfg_path);
    cfg["num_hidden_layers"] = json!(5);
    write_json(&cfg_path, &cfg);
    assert_fails_cleanly(
        shrink(&["--keep-every", "2"]),
        &out,
        &["5 layers", "model.layers.{0,1,2}"],
    );
    // No layers at all.
    let flat = tmp.path().join("flat");
    std::fs::create_dir(&flat).unwrap();
    write_json(&flat.join("config.json"), &json!({"model_type": "llama"}));
    write_weights(
        &flat,
        &[random(
            "model.embed_tokens.weight",
            DType::F32,
            &[4, 4],
            1,
            1.0,
        )],
        1,
    );
    let r = run(
        "shrink",
        &["--model", s(&flat), "--keep-every", "2", "--out", s(&out)],
    );
    assert_fails_cleanly(r, &out, &["no stack of transformer layers"]);
}
