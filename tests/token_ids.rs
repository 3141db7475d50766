//! Token ids of the output configs and `--pad-token`, on tiny checkpoints that transformers
//! wrote (tests/fixtures/tiny-archs, copied from the shared fixtures) and the tiny GPT-2 helper
//! (500 tokens, `<|endoftext|>` = bos = eos = unk, no pad). Every `*_token_id` of config.json,
//! its `text_config` and generation_config.json must name the target token of the role the id
//! has *in the source* (BART's decoder start is its EOS, T5's its pad); `--pad-token` picks or
//! adds the target's pad; a family that needs a pad is refused without one.

mod fixtures;

use fixtures::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The pad token the tests add.
const PAD: &str = "<pad>";
/// Rows of the helper's embedding (the target tokenizer's tokens).
const TARGET_TOKENS: u64 = 500;

fn fixture(name: &str) -> PathBuf {
    fixture_path("tiny-archs").join(name)
}

/// A copy of the helper whose BOS is another token than its EOS (the shipped one has
/// `<|endoftext|>` in both roles, which would hide a BOS/EOS mix-up). Returns the directory
/// and the BOS's id.
fn helper(tmp: &Path) -> (PathBuf, u64) {
    let from = fixture_path("helpers/gpt2-500");
    let dir = copy_dir(&from, &tmp.join("helper"));
    let bos = "!";
    let id = u64::from(tokenizer(&dir).token_to_id(bos).expect("`!` in the helper"));
    assert_ne!(id, 0);
    for f in ["tokenizer_config.json", "special_tokens_map.json"] {
        let mut v = read_json(&dir.join(f));
        v["bos_token"] = json!(bos);
        write_json(&dir.join(f), &v);
    }
    (dir, id)
}

/// Runs `apply` from `source` onto the helper's tokenizer (CPU backend), plus `extra`.
fn apply(source: &Path, helper: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "--source",
        s(source),
        "--helper",
        s(helper),
        "--out",
        s(out),
        "--backend",
        "cpu",
        "--json",
    ];
    args.extend_from_slice(extra);
    run("apply", &args)
}

/// Every `*_token_id` of a config (nested objects too) as `(dotted path, value)`.
fn token_ids(v: &Value, prefix: &str, out: &mut Vec<(String, Value)>) {
    if let Value::Object(m) = v {
        for (k, v) in m {
            let path = format!("{prefix}{k}");
            if v.is_object() {
                token_ids(v, &format!("{path}."), out);
            } else if k.ends_with("_token_id") {
                out.push((path, v.clone()));
            }
        }
    }
}

/// Asserts that the token ids of `file` in `out` are exactly `expected` (dotted path → value).
fn assert_ids(out: &Path, file: &str, expected: &[(&str, Value)]) {
    let mut got = Vec::new();
    token_ids(&read_json(&out.join(file)), "", &mut got);
    let mut want: Vec<(String, Value)> = expected
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    want.sort_by(|a, b| a.0.cmp(&b.0));
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got, want, "{file}");
}

/// Rows of `tensor` in the output.
fn rows(out: &Path, tensor: &str) -> (usize, Vec<u8>) {
    let w = read_weights(out);
    let (_, shape, bytes) = &w[tensor];
    (shape[0], bytes.clone())
}

#[test]
fn bart_decoder_start_is_the_targets_eos_and_a_new_pad_copies_the_source_pad() {
    let tmp = tempfile::tempdir().unwrap();
    let (hlp, bos) = helper(tmp.path());
    let out = tmp.path().join("out");
    let report = ok_json(apply(&fixture("bart"), &hlp, &out, &["--pad-token", PAD]));
    let (eos, pad) = (json!(0), json!(TARGET_TOKENS));
    let ids = [
        ("bos_token_id", json!(bos)),
        ("eos_token_id", eos.clone()),
        ("decoder_start_token_id", eos.clone()),
        ("forced_eos_token_id", eos.clone()),
        ("pad_token_id", pad.clone()),
    ];
    assert_ids(&out, "config.json", &ids);
    assert_ids(&out, "generation_config.json", &ids);
    assert_eq!(
        read_json(&out.join("config.json"))["vocab_size"],
        json!(501)
    );
    assert_eq!(report["target_rows"], json!(501));
    // The new pad row is the source's pad row (id 3), bit for bit.
    let src = read_weights(&fixture("bart"))["model.shared.weight"]
        .2
        .clone();
    let (n, got) = rows(&out, "model.shared.weight");
    let row = got.len() / n;
    assert_eq!(n, 501);
    assert_eq!(&got[500 * row..], &src[3 * row..4 * row]);
    let transfer = read_json(&out.join("clp_transfer.json"));
    assert_eq!(
        transfer["pad_token"],
        json!({"token": PAD, "id": 500, "added": true})
    );
}

#[test]
fn t5_decoder_start_is_the_targets_pad_and_the_tokenizer_files_gain_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (hlp, bos) = helper(tmp.path());
    let out = tmp.path().join("out");
    ok_json(apply(&fixture("t5"), &hlp, &out, &["--pad-token", PAD]));
    let pad = json!(TARGET_TOKENS);
    let gen = [
        ("eos_token_id", json!(0)),
        ("decoder_start_token_id", pad.clone()),
        ("pad_token_id", pad.clone()),
    ];
    assert_ids(&out, "generation_config.json", &gen);
    let mut config = gen.to_vec();
    // The target's BOS is written even where the source config has none (as before).
    config.push(("bos_token_id", json!(bos)));
    assert_ids(&out, "config.json", &config);
    assert_eq!(rows(&out, "shared.weight").0, 501);

    // tokenizer.json: `<pad>` is a special added token with id 500; everything else encodes
    // as the helper's tokenizer does.
    let (old, new) = (tokenizer(&hlp), tokenizer(&out));
    assert_eq!(new.token_to_id(PAD), Some(500));
    assert_eq!(new.get_vocab_size(true), 501);
    let text = "the quick brown fox, jumps over 12 lazy dogs!";
    let ids = |t: &tokenizers::Tokenizer, s: &str| t.encode(s, false).unwrap().get_ids().to_vec();
    assert_eq!(ids(&new, text), ids(&old, text));
    let with_pad = ids(&new, &format!("{text}{PAD}{PAD}"));
    assert_eq!(&with_pad[with_pad.len() - 2..], &[500, 500]);
    let added = read_json(&out.join("tokenizer.json"))["added_tokens"].clone();
    assert!(
        added
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == json!(500)
                && t["content"] == json!(PAD)
                && t["special"] == json!(true)),
        "{added}"
    );
    let tc = read_json(&out.join("tokenizer_config.json"));
    assert_eq!(tc["pad_token"], json!(PAD));
    assert_eq!(tc["added_tokens_decoder"]["500"]["content"], json!(PAD));
    assert_eq!(tc["added_tokens_decoder"]["500"]["special"], json!(true));
    let stm = read_json(&out.join("special_tokens_map.json"));
    assert_eq!(stm["pad_token"], json!(PAD));
    assert_eq!(stm["eos_token"], json!("<|endoftext|>"));
}

#[test]
fn llama_ids_and_a_pad_the_target_lacks() {
    let tmp = tempfile::tempdir().unwrap();
    let (hlp, bos) = helper(tmp.path());
    let out = tmp.path().join("out");
    let report = ok_json(apply(&fixture("llama"), &hlp, &out, &[]));
    let ids = [
        ("bos_token_id", json!(bos)),
        ("eos_token_id", json!(0)),
        ("pad_token_id", Value::Null),
    ];
    assert_ids(&out, "config.json", &ids);
    assert_ids(&out, "generation_config.json", &ids);
    assert_eq!(
        read_json(&out.join("config.json"))["vocab_size"],
        json!(500)
    );
    // Both nulled pads are said, with the fix.
    let notices: Vec<&str> = report["notices"]
        .as_array()
        .expect("notices")
        .iter()
        .filter_map(Value::as_str)
        .filter(|n| n.contains("pad_token_id = 3"))
        .collect();
    assert_eq!(notices.len(), 2, "{notices:?}");
    assert!(notices.iter().all(|n| n.contains("--pad-token")));
    assert!(
        notices[0].starts_with("config.json") && notices[1].starts_with("generation_config.json")
    );
}

#[test]
fn a_null_source_id_takes_the_targets_token_of_that_role() {
    // transformers writes `"pad_token_id": null` for models without a pad; a target that has
    // one must still get its id (seen with transformers: config pad None, tokenizer pad set).
    let tmp = tempfile::tempdir().unwrap();
    let (hlp, _) = helper(tmp.path());
    let src = copy_dir(&fixture("llama"), &tmp.path().join("llama"));
    let cfg_path = src.join("config.json");
    let mut cfg = read_json(&cfg_path);
    cfg["pad_token_id"] = Value::Null;
    write_json(&cfg_path, &cfg);
    let out = tmp.path().join("out");
    ok_json(apply(&src, &hlp, &out, &["--pad-token", "<|endoftext|>"]));
    assert_eq!(
        read_json(&out.join("config.json"))["pad_token_id"],
        json!(0)
    );
}

#[test]
fn an_existing_pad_token_and_a_generation_config_without_pad() {
    let tmp = tempfile::tempdir().unwrap();
    let (hlp, bos) = helper(tmp.path());
    let src = copy_dir(&fixture("llama"), &tmp.path().join("llama"));
    let gen_path = src.join("generation_config.json");
    let mut gen = read_json(&gen_path);
    gen.as_object_mut().unwrap().remove("pad_token_id");
    write_json(&gen_path, &gen);
    let out = tmp.path().join("out");
    let eot = "<|endoftext|>";
    let report = ok_json(apply(&src, &hlp, &out, &["--pad-token", eot]));
    let ids = [
        ("bos_token_id", json!(bos)),
        ("eos_token_id", json!(0)),
        ("pad_token_id", json!(0)),
    ];
    assert_ids(&out, "config.json", &ids);
    // generation_config.json gets the config's pad (transformers warns on `generate` without).
    assert_ids(&out, "generation_config.json", &ids);
    assert!(report.get("notices").is_none(), "{report}");
    assert_eq!(rows(&out, "model.embed_tokens.weight").0, 500);
    assert_eq!(
        read_json(&out.join("tokenizer_config.json"))["pad_token"],
        json!(eot)
    );
    // tokenizer.json is the helper's, untouched.
    assert_eq!(
        std::fs::read(out.join("tokenizer.json")).unwrap(),
        std::fs::read(hlp.join("tokenizer.json")).unwrap()
    );
}

#[test]
fn a_new_pad_without_a_source_pad_gets_a_zero_row() {
    let tmp = tempfile::tempdir().unwrap();
    let (hlp, _) = helper(tmp.path());
    let src = copy_dir(&fixture("llama"), &tmp.path().join("llama"));
    for f in [
        "config.json",
        "generation_config.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    ] {
        let mut v = read_json(&src.join(f));
        let m = v.as_object_mut().unwrap();
        m.remove("pad_token_id");
        m.remove("pad_token");
        write_json(&src.join(f), &v);
    }
    let out = tmp.path().join("out");
    ok_json(apply(&src, &hlp, &out, &["--pad-token", PAD]));
    for t in ["model.embed_tokens.weight", "lm_head.weight"] {
        let (n, bytes) = rows(&out, t);
        assert_eq!(n, 501, "{t}");
        let row = bytes.len() / n;
        assert!(
            bytes[500 * row..].iter().all(|&b| b == 0),
            "{t}: pad row not zero"
        );
    }
    assert_eq!(
        read_json(&out.join("config.json"))["pad_token_id"],
        json!(500)
    );
    assert_eq!(
        read_json(&out.join("generation_config.json"))["pad_token_id"],
        json!(500)
    );
}

#[test]
fn gemma3_multimodal_ids_and_vocab_size_live_in_text_config() {
    let tmp = tempfile::tempdir().unwrap();
    let (hlp, bos) = helper(tmp.path());
    let out = tmp.path().join("out");
    ok_json(apply(&fixture("gemma3"), &hlp, &out, &[]));
    let cfg = read_json(&out.join("config.json"));
    assert_ids(
        &out,
        "config.json",
        &[
            ("bos_token_id", json!(bos)),
            ("eos_token_id", json!(0)),
            ("pad_token_id", Value::Null),
            ("text_config.bos_token_id", json!(bos)),
            ("text_config.eos_token_id", json!(0)),
            ("text_config.pad_token_id", Value::Null),
        ],
    );
    assert_eq!(cfg["text_config"]["vocab_size"], json!(500));
    // The source keeps vocab_size only in text_config; none is invented at the top level.
    assert!(cfg.get("vocab_size").is_none(), "{cfg}");
    assert!(cfg["vision_config"].get("vocab_size").is_none());
}

#[test]
fn pad_needing_families_are_refused_without_pad_token() {
    let tmp = tempfile::tempdir().unwrap();
    let (hlp, _) = helper(tmp.path());
    for name in ["roberta", "t5", "m2m_100"] {
        let out = tmp.path().join(format!("out-{name}"));
        assert_fails_cleanly(
            apply(&fixture(name), &hlp, &out, &[]),
            &out,
            &["--pad-token", "pad token", name],
        );
    }
    // With --pad-token, RoBERTa runs, and says that its positions move with the pad id.
    let out = tmp.path().join("out-roberta-pad");
    let report = ok_json(apply(
        &fixture("roberta"),
        &hlp,
        &out,
        &["--pad-token", PAD],
    ));
    assert_eq!(
        read_json(&out.join("config.json"))["pad_token_id"],
        json!(500)
    );
    let notices = report["notices"].to_string();
    assert!(
        notices.contains("position ids") && notices.contains("shifted from pad 3 to pad 500"),
        "{notices}"
    );
    let out = tmp.path().join("out-empty");
    assert_fails_cleanly(
        apply(&fixture("t5"), &hlp, &out, &["--pad-token", ""]),
        &out,
        &["--pad-token"],
    );
}

#[test]
fn whisper_generation_ids_name_the_same_tokens_and_what_cannot_be_produced_drops_quietly() {
    // Whisper's generation_config.json names tokens outside `*_token_id`: ids to suppress, a
    // forced prefix of [position, id] pairs and name → id tables. `ĠĠ` is a source token the
    // target lacks; `</s>` (id 2) is the source's EOS, the target's is id 0.
    let tmp = tempfile::tempdir().unwrap();
    let (hlp, _) = helper(tmp.path());
    let src = copy_dir(&fixture("whisper"), &tmp.path().join("whisper"));
    let (stok, ttok) = (tokenizer(&src), tokenizer(&hlp));
    let sid = |t: &str| {
        json!(stok
            .token_to_id(t)
            .unwrap_or_else(|| panic!("source lacks {t}")))
    };
    let tid = |t: &str| {
        json!(ttok
            .token_to_id(t)
            .unwrap_or_else(|| panic!("target lacks {t}")))
    };
    assert!(ttok.token_to_id("ĠĠ").is_none());
    let gen_path = src.join("generation_config.json");
    let mut gen = read_json(&gen_path);
    gen["suppress_tokens"] = json!([sid("#"), sid("ĠĠ"), sid("ab")]);
    gen["begin_suppress_tokens"] = json!([sid("ĠĠ"), 2]);
    gen["bad_words_ids"] = json!([[sid("#"), sid("ab")], [sid("ĠĠ")]]);
    gen["forced_decoder_ids"] = json!([[1, null], [2, sid("ab")], [3, sid("ĠĠ")]]);
    gen["lang_to_id"] = json!({"<|ab|>": sid("ab"), "<|xx|>": sid("ĠĠ")});
    gen["task_to_id"] = json!({"transcribe": sid("#")});
    write_json(&gen_path, &gen);
    let out = tmp.path().join("out");
    let report = ok_json(apply(&src, &hlp, &out, &["--pad-token", PAD]));
    let got = read_json(&out.join("generation_config.json"));
    let keys = [
        "suppress_tokens",
        "begin_suppress_tokens",
        "bad_words_ids",
        "forced_decoder_ids",
        "lang_to_id",
        "task_to_id",
    ];
    let want = json!({
        "suppress_tokens": [tid("#"), tid("ab")],
        "begin_suppress_tokens": [0],
        "bad_words_ids": [[tid("#"), tid("ab")]],
        "forced_decoder_ids": [[1, null], [2, tid("ab")]],
        "lang_to_id": {"<|ab|>": tid("ab")},
        "task_to_id": {"transcribe": tid("#")},
    });
    for k in keys {
        assert_eq!(got[k], want[k], "{k}");
    }
    // The forced pair and the table entry that lost their token are said; the suppressed ids
    // are not (a token the target lacks cannot be produced).
    let notices: Vec<&str> = report["notices"]
        .as_array()
        .expect("notices")
        .iter()
        .filter_map(Value::as_str)
        .filter(|n| n.starts_with("generation_config.json") && n.contains("`ĠĠ`"))
        .collect();
    assert_eq!(notices.len(), 2, "{notices:?}");
    assert!(
        notices[0].contains("forced_decoder_ids contains") && notices[0].contains("pair removed")
    );
    assert!(notices[1].contains("lang_to_id[\"<|xx|>\"]") && notices[1].contains("entry removed"));
}
