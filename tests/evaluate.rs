//! `clp-gpu evaluate` end to end: tiny models whose embeddings share a latent structure per
//! token string (so neighbours in the helper space really predict source rows), scored through
//! the real binary; the informative weightings must beat the mean baseline, and bad input fails
//! with one line.

mod fixtures;

use clp_gpu::tensor::DType;
use fixtures::*;
use serde_json::Value;

/// Latent vector of a token string: the same for the same string in both models.
fn latent(token: &str, dim: usize) -> Vec<f64> {
    let seed = token.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    });
    let mut rng = Rng::new(seed);
    (0..dim).map(|_| rng.normal()).collect()
}

/// Replaces the input embedding of `model` with `A · latent(token) + noise` rows.
fn structured_embedding(model: &Model, seed: u64) {
    let vocab = vocab_of(&model.dir);
    let (rows, dim, lat) = (model.rows, model.dim, 8);
    let mut rng = Rng::new(seed);
    let a: Vec<f64> = (0..dim * lat).map(|_| rng.normal()).collect();
    let mut values = vec![0.0f32; rows * dim];
    for (tok, &id) in &vocab {
        let z = latent(tok, lat);
        for c in 0..dim {
            let x: f64 = (0..lat).map(|l| a[c * lat + l] * z[l]).sum();
            values[id as usize * dim + c] = (x + 0.3 * rng.normal()) as f32;
        }
    }
    let mut tensors = model.tensors.clone();
    let t = tensors
        .iter_mut()
        .find(|t| t.name == model.input_name())
        .unwrap();
    t.bytes = t.dtype.encode(&values);
    write_weights(&model.dir, &tensors, 1);
}

#[test]
fn informative_weightings_beat_the_mean_baseline() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, hlp) = build_pair(
        tmp.path(),
        &ModelSpec {
            dim: 48,
            seed: 1,
            ..ModelSpec::trained(Arch::Gpt2, Lang::English, 380, 0)
        },
        &ModelSpec {
            dim: 32,
            dtype: DType::F16,
            seed: 2,
            ..ModelSpec::trained(Arch::Gpt2, Lang::German, 340, 0)
        },
    );
    structured_embedding(&src, 10);
    structured_embedding(&hlp, 20);
    for backend in ["cpu", "gpu"] {
        let out = std::process::Command::new(bin())
            .args([
                "evaluate",
                "--source",
                s(&src.dir),
                "--helper",
                s(&hlp.dir),
                "--weighting",
                "clp,softmax,sparsemax,omp",
                "--top-k",
                "all,8",
                "--temperature",
                "0.1",
                "--holdout",
                "0.25",
                "--backend",
                backend,
                "--json",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        let overlap = r["overlap"].as_u64().unwrap();
        let held = r["held_out"].as_u64().unwrap();
        assert_eq!(held, (overlap as f64 * 0.25).round() as u64);
        assert_eq!(r["anchors"].as_u64().unwrap(), overlap - held);
        let scores = r["scores"].as_array().unwrap();
        let mean_of = |label: &str| {
            scores
                .iter()
                .find(|x| x["method"].as_str().unwrap() == label)
                .unwrap_or_else(|| panic!("{label} missing from {scores:?}"))["mean"]
                .as_f64()
                .unwrap()
        };
        let baseline = mean_of("baseline: mean of the anchor rows");
        let random = mean_of("baseline: random row from N(mean, sd)");
        // clp all, clp 8, softmax 8, sparsemax 8, omp 8 (sparsemax/softmax `all` are skipped).
        assert_eq!(scores.len(), 2 + 5, "{scores:?}");
        for m in ["softmax k=8 T=0.1", "sparsemax k=8", "omp k=8", "clp k=8"] {
            let v = mean_of(m);
            assert!(
                v > baseline + 0.05 && v > random,
                "{backend}: {m} scored {v:.3}, baseline {baseline:.3}, random {random:.3}"
            );
        }
        for x in scores {
            let m = x["mean"].as_f64().unwrap();
            assert!((-1.0..=1.0).contains(&m), "{x}");
            assert!(x["rejected"].as_u64().unwrap() <= held);
        }
    }
    // Bad input: one line, non-zero exit.
    let out = std::process::Command::new(bin())
        .args([
            "evaluate",
            "--source",
            s(&src.dir),
            "--helper",
            s(&hlp.dir),
            "--holdout",
            "1.5",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| !l.contains("XDG_RUNTIME_DIR"))
        .collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains("--holdout"), "{err}");
}
