//! End-to-end tests of `clp-gpu shrink` on encoder-decoders: the tiny T5, mT5, BART, mBART,
//! M2M100 and Whisper checkpoints of `tests/fixtures/tiny-archs` grown to several layers per
//! stack (block 0 duplicated under new indices with fresh bytes; T5's block-0-only
//! relative_attention_bias not), then shrunk: both stacks renumbered, config counts updated,
//! T5's relative bias kept for a new first block, every other tensor byte-identical.

mod fixtures;

use clp_gpu::tensor::DType;
use fixtures::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

type Weights = BTreeMap<String, (safetensors::Dtype, Vec<usize>, Vec<u8>)>;

/// An architecture's stacks and config count keys.
struct Layout {
    arch: &'static str,
    enc: &'static str,
    dec: &'static str,
    enc_key: &'static str,
    dec_key: &'static str,
}

const T5: Layout = Layout {
    arch: "t5",
    enc: "encoder.block",
    dec: "decoder.block",
    enc_key: "num_layers",
    dec_key: "num_decoder_layers",
};

fn bart_like(arch: &'static str) -> Layout {
    Layout {
        arch,
        enc: "model.encoder.layers",
        dec: "model.decoder.layers",
        enc_key: "encoder_layers",
        dec_key: "decoder_layers",
    }
}

/// Copies fixture `l.arch` into `dir` with `n_enc` encoder and `n_dec` decoder layers; returns
/// its tensors.
fn layered(l: &Layout, dir: &Path, n_enc: usize, n_dec: usize) -> Weights {
    copy_dir(&fixture_path("tiny-archs").join(l.arch), dir);
    let mut w = read_weights(dir);
    let block0: Vec<(String, Vec<usize>)> =
        w.iter().map(|(n, t)| (n.clone(), t.1.clone())).collect();
    for (prefix, n) in [(l.enc, n_enc), (l.dec, n_dec)] {
        let head = format!("{prefix}.0.");
        for (name, shape) in &block0 {
            let Some(rest) = name.strip_prefix(&head) else {
                continue;
            };
            if rest.contains("relative_attention_bias") {
                continue;
            }
            for i in 1..n {
                let new = format!("{prefix}.{i}.{rest}");
                let t = random(&new, DType::F32, shape, (i * 1000 + new.len()) as u64, 0.5);
                w.insert(new, (safetensors::Dtype::F32, t.shape, t.bytes));
            }
        }
    }
    let tensors: Vec<Tensor> = w
        .iter()
        .map(|(name, (dt, shape, bytes))| {
            assert_eq!(*dt, safetensors::Dtype::F32, "{name}");
            Tensor {
                name: name.clone(),
                dtype: DType::F32,
                shape: shape.clone(),
                bytes: bytes.clone(),
            }
        })
        .collect();
    write_weights(dir, &tensors, 1);
    let cfg_path = dir.join("config.json");
    let mut cfg = read_json(&cfg_path);
    cfg[l.enc_key] = json!(n_enc);
    cfg[l.dec_key] = json!(n_dec);
    if cfg.get("num_hidden_layers").is_some() {
        cfg["num_hidden_layers"] = json!(n_enc);
    }
    write_json(&cfg_path, &cfg);
    w
}

/// Where tensor `name` of the input should be in the output (None: dropped).
fn expected_name(l: &Layout, name: &str, enc_kept: &[usize], dec_kept: &[usize]) -> Option<String> {
    for (prefix, kept) in [(l.enc, enc_kept), (l.dec, dec_kept)] {
        let Some((idx, rest)) = name
            .strip_prefix(&format!("{prefix}."))
            .and_then(|r| r.split_once('.'))
        else {
            continue;
        };
        let idx: usize = idx.parse().unwrap();
        if idx == 0 && kept[0] != 0 && rest.contains("relative_attention_bias") {
            return Some(name.to_string());
        }
        return kept
            .iter()
            .position(|&k| k == idx)
            .map(|new| format!("{prefix}.{new}.{rest}"));
    }
    Some(name.to_string())
}

/// Checks OUT: every kept tensor byte-identical under its new name, nothing else, config
/// counts updated and the rest of config.json unchanged.
fn check(
    l: &Layout,
    input: &Weights,
    dir: &Path,
    out: &Path,
    enc_kept: &[usize],
    dec_kept: &[usize],
) {
    let got = read_weights(out);
    let mut expected = BTreeMap::new();
    for (name, t) in input {
        if let Some(new) = expected_name(l, name, enc_kept, dec_kept) {
            assert!(expected.insert(new.clone(), t).is_none(), "{new} twice");
        }
    }
    let got_names: Vec<&String> = got.keys().collect();
    let want_names: Vec<&String> = expected.keys().collect();
    assert_eq!(got_names, want_names, "{}: output tensor names", l.arch);
    for (name, t) in &expected {
        assert_eq!(&got[name], *t, "{}: {name} is not byte-identical", l.arch);
    }
    let before = read_json(&dir.join("config.json"));
    let after = read_json(&out.join("config.json"));
    assert_eq!(after[l.enc_key], json!(enc_kept.len()), "{}", l.arch);
    assert_eq!(after[l.dec_key], json!(dec_kept.len()), "{}", l.arch);
    let mut a = after.as_object().unwrap().clone();
    let mut b = before.as_object().unwrap().clone();
    for k in [l.enc_key, l.dec_key, "num_hidden_layers"] {
        if b.contains_key(k) {
            assert_eq!(
                a[k],
                json!(if k == l.dec_key {
                    dec_kept.len()
                } else {
                    enc_kept.len()
                }),
                "{k}"
            );
        }
        a.remove(k);
        b.remove(k);
    }
    assert_eq!(a, b, "{}: the rest of config.json is unchanged", l.arch);
    assert!(out.join("tokenizer.json").is_file());
}

fn shrink(dir: &Path, out: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["--model", s(dir), "--out", s(out), "--json"];
    args.extend_from_slice(extra);
    ok_json(run("shrink", &args))
}

#[test]
fn keep_every_two_on_every_encoder_decoder_family() {
    let tmp = tempfile::tempdir().unwrap();
    let mut layouts = vec![T5, Layout { arch: "mt5", ..T5 }];
    for arch in ["bart", "mbart", "m2m_100", "whisper"] {
        layouts.push(bart_like(arch));
    }
    for l in &layouts {
        let dir = tmp.path().join(l.arch);
        let input = layered(l, &dir, 3, 2);
        let out = tmp.path().join(format!("{}_out", l.arch));
        let r = shrink(&dir, &out, &["--keep-every", "2"]);
        assert_eq!(r["layer_prefix"], l.enc, "{}", l.arch);
        assert_eq!(r["layers_kept"], json!([0, 2]), "{}", l.arch);
        assert_eq!(r["decoder"]["layer_prefix"], l.dec, "{}", l.arch);
        assert_eq!(r["decoder"]["layers_kept"], json!([0, 1]), "{}", l.arch);
        assert!(r.get("carried_from_block_0").is_none());
        check(l, &input, &dir, &out, &[0, 2], &[0, 1]);
        assert!(r["params_after"].as_u64() < r["params_before"].as_u64());
    }
}

#[test]
fn t5_dropping_block_0_keeps_its_relative_attention_bias() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t5");
    let input = layered(&T5, &dir, 3, 2);
    let out = tmp.path().join("out");
    let r = shrink(&dir, &out, &["--layers", "1,2", "--decoder-layers", "1"]);
    assert_eq!(r["layers_kept"], json!([1, 2]));
    assert_eq!(r["decoder"]["layers_kept"], json!([1]));
    let bias = "layer.0.SelfAttention.relative_attention_bias.weight";
    assert_eq!(
        r["carried_from_block_0"],
        json!([
            format!("encoder.block.0.{bias}"),
            format!("decoder.block.0.{bias}")
        ])
    );
    check(&T5, &input, &dir, &out, &[1, 2], &[1]);
    let got = read_weights(&out);
    let with_bias: Vec<&String> = got
        .keys()
        .filter(|n| n.contains("relative_attention_bias"))
        .collect();
    assert_eq!(
        with_bias,
        vec![
            &format!("decoder.block.0.{bias}"),
            &format!("encoder.block.0.{bias}")
        ]
    );
    // The old block 1 is the new block 0 (its own tensors, renamed).
    let q = "layer.0.SelfAttention.q.weight";
    assert_eq!(
        got[&format!("encoder.block.0.{q}")],
        input[&format!("encoder.block.1.{q}")]
    );
    // T5 with only `num_layers`: the decoder's count is written explicitly.
    let mut cfg = read_json(&dir.join("config.json"));
    cfg.as_object_mut().unwrap().remove("num_decoder_layers");
    cfg["num_layers"] = json!(3);
    let cfg_path = dir.join("config.json");
    write_json(&cfg_path, &cfg);
    // The decoder now defaults to 3 layers, but it has 2: refused in one line.
    let out2 = tmp.path().join("out2");
    let args = ["--model", s(&dir), "--keep-every", "2", "--out", s(&out2)];
    assert_fails_cleanly(
        run("shrink", &args),
        &out2,
        &["no decoder layer stack", "3 layers", "num_layers"],
    );
    let input = layered(&T5, &dir, 3, 3);
    let mut cfg = read_json(&cfg_path);
    cfg.as_object_mut().unwrap().remove("num_decoder_layers");
    write_json(&cfg_path, &cfg);
    let r = shrink(&dir, &out2, &["--layers", "0,2", "--decoder-layers", "1"]);
    assert_eq!(
        r["config_keys_updated"],
        json!(["num_layers", "num_decoder_layers"])
    );
    let after = read_json(&out2.join("config.json"));
    assert_eq!(
        (
            after["num_layers"].clone(),
            after["num_decoder_layers"].clone()
        ),
        (json!(2), json!(1))
    );
    check(&T5, &input, &dir, &out2, &[0, 2], &[1]);
}

#[test]
fn hidden_size_on_encoder_decoders_reduces_the_shared_embedding() {
    let tmp = tempfile::tempdir().unwrap();
    for (l, head) in [
        (T5, None),
        (Layout { arch: "mt5", ..T5 }, Some("lm_head.weight")),
        (bart_like("bart"), None),
    ] {
        let dir = tmp.path().join(l.arch);
        let mut input = layered(&l, &dir, 2, 2);
        let copies = ["encoder.embed_tokens.weight", "decoder.embed_tokens.weight"];
        if l.arch == "t5" {
            // Tied copies stored beside `shared.weight` follow it.
            for c in copies {
                input.insert(c.to_string(), input["shared.weight"].clone());
            }
            let tensors: Vec<Tensor> = input
                .iter()
                .map(|(name, (_, shape, bytes))| Tensor {
                    name: name.clone(),
                    dtype: DType::F32,
                    shape: shape.clone(),
                    bytes: bytes.clone(),
                })
                .collect();
            write_weights(&dir, &tensors, 1);
        }
        let out = tmp.path().join(format!("{}_out", l.arch));
        let r = shrink(&dir, &out, &["--hidden-size", "4"]);
        let shared = if l.arch == "bart" {
            "model.shared.weight"
        } else {
            "shared.weight"
        };
        assert_eq!(r["hidden"]["embedding"], shared);
        assert_eq!(
            r["hidden"]["lm_head"],
            head.map_or(Value::Null, |h| json!(h))
        );
        let got = read_weights(&out);
        assert_eq!(got[shared].1, vec![700, 4]);
        if let Some(h) = head {
            assert_eq!(got[h].1, vec![700, 4]);
        }
        if l.arch == "t5" {
            for c in copies {
                assert_eq!(got[c], got[shared], "{c} follows {shared}");
            }
        }
        for (name, t) in &input {
            if name != shared && Some(name.as_str()) != head && !copies.contains(&name.as_str()) {
                assert_eq!(&got[name], t, "{}: {name}", l.arch);
            }
        }
        assert!(out.join("embedding_projection.safetensors").is_file());
    }
}

#[test]
fn encoder_decoder_bad_layer_lists_fail_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bart");
    layered(&bart_like("bart"), &dir, 3, 2);
    let out = tmp.path().join("out");
    let run_with = |extra: &[&str]| {
        let mut args = vec!["--model", s(&dir), "--out", s(&out)];
        args.extend_from_slice(extra);
        run("shrink", &args)
    };
    assert_fails_cleanly(
        run_with(&["--layers", "0,2"]),
        &out,
        &["--layers 0,2", "layer 2", "decoder", "--decoder-layers"],
    );
    assert_fails_cleanly(
        run_with(&["--layers", "0", "--decoder-layers", "2"]),
        &out,
        &["--decoder-layers 2", "0..1"],
    );
    // --decoder-layers on a one-stack model.
    let llama = tmp.path().join("llama");
    build_model(
        &llama,
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
    let args = [
        "--model",
        s(&llama),
        "--decoder-layers",
        "0",
        "--out",
        s(&out),
    ];
    assert_fails_cleanly(
        run("shrink", &args),
        &out,
        &["--decoder-layers", "one layer stack", "model.layers"],
    );
}
