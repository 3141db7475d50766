//! `extend`'s tokenizer side (`clp_gpu::commands::extend::learn`) on every family it grows:
//! byte-level BPE (a tokenizer trained here, the shared tiny-archs tokenizer, the Qwen3 extract),
//! SentencePiece BPE with byte fallback (a Llama-2-like tokenizer trained here, the Gemma 3
//! extract), Unigram (a T5-like tokenizer trained here) and WordPiece (a BERT-like one). Each is
//! extended with tokens learned from a generated German-like text and checked independently of
//! the code under test: existing tokens, ids, added tokens and pipeline unchanged; BPE merges
//! only appended; new ids after the largest one; every new token reachable; on the training
//! text and on English text no line longer and every line decoding as before; two runs give
//! the same bytes. Plus the refusals.

mod fixtures;

use clp_gpu::commands::extend::learn::{check, learn, Extension, LearnOptions};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use tokenizers::models::bpe::BpeTrainerBuilder;
use tokenizers::models::unigram::{Unigram, UnigramTrainerBuilder};
use tokenizers::{AddedToken, Tokenizer};

/// A made-up language with recurring words (umlauts and ß included), `n` lines, seeded.
fn german_like(n: usize, seed: u64) -> Vec<String> {
    const STEMS: &[&str] = &[
        "haus", "kraft", "wald", "stra", "bäum", "grün", "schön", "fluß", "größ", "über", "mäd",
        "küch", "wört", "spiel", "zeit", "land", "blum", "stadt", "früh", "nacht",
    ];
    const ENDS: &[&str] = &[
        "", "en", "er", "chen", "lich", "ung", "ße", "es", "ig", "ern",
    ];
    let mut rng = fixtures::Rng::new(seed);
    let mut pick =
        |m: usize| ((fixtures::signed_unit(&mut rng) + 1.0) * 0.5 * m as f32) as usize % m;
    (0..n)
        .map(|_| {
            let len = 5 + pick(8);
            (0..len)
                .map(|_| format!("{}{}", STEMS[pick(STEMS.len())], ENDS[pick(ENDS.len())]))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// English lines from the fixtures' word list.
fn english() -> Vec<String> {
    fixtures::lines(fixtures::EN, 60, 5)
}

fn temp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn write(dir: &Path, v: &Value) -> PathBuf {
    let p = dir.join("tokenizer.json");
    std::fs::write(&p, serde_json::to_vec_pretty(v).unwrap()).unwrap();
    p
}

fn ids(tok: &Tokenizer, text: &str) -> Vec<u32> {
    tok.encode(text, false).unwrap().get_ids().to_vec()
}

/// Every property of an extension, checked with the tokenizers crate; returns it.
fn verify(path: &Path, corpus: &[String], add: usize) -> Extension {
    let opts = LearnOptions { add, min_freq: 2 };
    let ext = learn(path, corpus, &opts).unwrap();
    let again = learn(path, corpus, &opts).unwrap();
    assert!(
        ext.tokenizer_json == again.tokenizer_json,
        "two runs, other bytes"
    );
    if let Ok(dump) = std::env::var("EXTEND_LEARN_DUMP") {
        // Named by a hash of the input, so runs in other processes can be compared.
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::fs::read(path).unwrap().hash(&mut h);
        let name = format!("{dump}/{:016x}-{add}.json", h.finish());
        std::fs::write(name, &ext.tokenizer_json).unwrap();
    }
    assert!(!ext.tokens.is_empty(), "nothing learned: {:?}", ext.notes);
    assert!(ext.tokens.len() <= add);
    let before: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let after: Value = serde_json::from_slice(&ext.tokenizer_json).unwrap();
    for key in [
        "added_tokens",
        "normalizer",
        "pre_tokenizer",
        "post_processor",
        "decoder",
    ] {
        assert_eq!(before[key], after[key], "{key} changed");
    }
    if let Some(old) = before["model"]["merges"].as_array() {
        let new = after["model"]["merges"].as_array().unwrap();
        assert_eq!(&new[..old.len()], &old[..], "existing merges changed");
    }
    let orig = Tokenizer::from_file(path).unwrap();
    let extended = Tokenizer::from_bytes(&ext.tokenizer_json).unwrap();
    let (ov, ev) = (orig.get_vocab(true), extended.get_vocab(true));
    for (t, id) in &ov {
        assert_eq!(ev.get(t), Some(id), "existing token {t:?} moved");
    }
    assert_eq!(ev.len(), ov.len() + ext.tokens.len());
    let first = ov.values().max().unwrap() + 1;
    let wordpiece = after["model"]["type"] == "WordPiece";
    for (i, t) in ext.tokens.iter().enumerate() {
        assert_eq!(t.id, first + i as u32, "ids not after the largest one");
        assert_eq!(ev.get(&t.content), Some(&t.id));
        assert!(t.frequency >= 2, "{t:?} below min_freq");
        if wordpiece && t.content.starts_with("##") {
            continue;
        }
        let model_ids: Vec<u32> = tokenizers::Model::tokenize(extended.get_model(), &t.content)
            .unwrap()
            .iter()
            .map(|x| x.id)
            .collect();
        assert_eq!(model_ids, vec![t.id], "{t:?} not reachable");
        let before_ids: Vec<u32> = tokenizers::Model::tokenize(orig.get_model(), &t.content)
            .unwrap()
            .iter()
            .map(|x| x.id)
            .collect();
        assert_eq!(t.pieces_before, before_ids);
        // Through the whole pipeline, with or without the word-start space (SentencePiece and
        // Unigram tokenizers mark a word start themselves: only word-start tokens stand alone).
        let alone = t.content.starts_with('▁') || t.content.starts_with('Ġ') || wordpiece;
        if alone && !t.text.contains('\u{FFFD}') {
            let texts = [t.text.as_str(), t.text.trim_start_matches(' ')];
            assert!(
                texts.iter().any(|x| ids(&extended, x) == vec![t.id]),
                "{t:?}: its text is not that one token"
            );
        }
    }
    for (name, lines) in [("training", corpus.to_vec()), ("English", english())] {
        let mut before_tokens = 0;
        let mut after_tokens = 0;
        for l in &lines {
            let (o, e) = (ids(&orig, l), ids(&extended, l));
            assert!(e.len() <= o.len(), "{name} line longer: {l:?}");
            let od = orig.decode(&o, false).unwrap();
            let ed = extended.decode(&e, false).unwrap();
            assert!(same_or_spelled(&od, &ed), "{name}: {l:?}\n{od:?}\n{ed:?}");
            before_tokens += o.len();
            after_tokens += e.len();
        }
        let f = check(&orig, &extended, &lines);
        assert_eq!((f.longer, f.roundtrip_failures), (0, 0), "{name}: {f:?}");
        assert_eq!(
            (f.tokens_before, f.tokens_after),
            (before_tokens as u64, after_tokens as u64)
        );
        if name == "training" {
            assert!(after_tokens < before_tokens, "no gain: {f:?}");
        }
    }
    ext
}

/// `ext` decodes like `orig`, or spells out text where `orig` had an unknown token.
fn same_or_spelled(orig: &str, ext: &str) -> bool {
    if orig == ext {
        return true;
    }
    let Some(unk) = ["[UNK]", "<unk>"].into_iter().find(|u| orig.contains(u)) else {
        return false;
    };
    let parts: Vec<&str> = orig.split(unk).collect();
    let (head, tail) = (parts[0], parts[parts.len() - 1]);
    if !ext.starts_with(head) || !ext.ends_with(tail) || ext.len() < head.len() + tail.len() {
        return false;
    }
    let mut rest = &ext[head.len()..ext.len() - tail.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(p) => rest = &rest[p + mid.len()..],
            None => return false,
        }
    }
    true
}

#[test]
fn byte_level_bpe_trained_here() {
    let dir = temp();
    fixtures::write_bpe_tokenizer(dir.path(), 400);
    let ext = verify(&dir.path().join("tokenizer.json"), &german_like(300, 1), 60);
    assert_eq!(ext.family, "byte-level BPE");
    assert_eq!(ext.tokens.len(), 60, "the budget is filled");
    // Round-trip to the text itself (a byte-level tokenizer round-trips everything; this one
    // adds a prefix space).
    let extended = Tokenizer::from_bytes(&ext.tokenizer_json).unwrap();
    for l in german_like(20, 9) {
        assert_eq!(
            extended.decode(&ids(&extended, &l), false).unwrap(),
            format!(" {l}")
        );
    }
}

#[test]
fn byte_level_bpe_fixtures() {
    // All tiny-archs share one byte-level BPE tokenizer (README); the real Qwen3 extract has
    // a regex pre-tokenizer, NFC and added tokens after the vocabulary.
    let shared = std::fs::read("tests/fixtures/tiny-archs/gpt2/tokenizer.json").unwrap();
    for arch in ["qwen2", "llama", "gemma", "t5", "xlm-roberta", "bert"] {
        let other = std::fs::read(format!("tests/fixtures/tiny-archs/{arch}/tokenizer.json"));
        assert_eq!(
            other.unwrap(),
            shared,
            "{arch} has another tokenizer: test it too"
        );
    }
    let corpus = german_like(200, 2);
    let ext = verify(
        Path::new("tests/fixtures/tiny-archs/gpt2/tokenizer.json"),
        &corpus,
        40,
    );
    assert_eq!(ext.family, "byte-level BPE");
    let ext = verify(
        Path::new("tests/fixtures/real-tokenizers/qwen3/tokenizer.json"),
        &corpus,
        40,
    );
    assert_eq!(ext.tokens[0].id, 321, "after Qwen3's added tokens");
}

/// A Llama-2-like tokenizer: BPE with byte fallback, `▁` prepended and for spaces, no
/// pre-tokenizer, trained on English only (umlauts and ß fall back to bytes).
fn llama2_like(dir: &Path) -> PathBuf {
    let mut specials: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    specials.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
    let trainer = BpeTrainerBuilder::new()
        .show_progress(false)
        .vocab_size(400)
        .special_tokens(
            specials
                .iter()
                .map(|s| AddedToken::from(s.clone(), true))
                .collect(),
        )
        .build();
    let mut tok = Tokenizer::new(tokenizers::models::bpe::BPE::default());
    tok.with_pre_tokenizer(Some(
        tokenizers::pre_tokenizers::metaspace::Metaspace::default(),
    ));
    let text = fixtures::lines(fixtures::EN, 300, 3);
    let mut trainer = tokenizers::models::TrainerWrapper::from(trainer);
    tok.train(&mut trainer, text.iter()).unwrap();
    let mut v: Value = serde_json::from_str(&tok.to_string(false).unwrap()).unwrap();
    v["added_tokens"] = Value::Array(v["added_tokens"].as_array().unwrap()[..3].to_vec());
    v["normalizer"] = json!({"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]});
    v["pre_tokenizer"] = Value::Null;
    v["decoder"] = json!({"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"},
        {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]});
    v["model"]["byte_fallback"] = json!(true);
    v["model"]["fuse_unk"] = json!(true);
    v["model"]["unk_token"] = json!("<unk>");
    write(dir, &v)
}

#[test]
fn sentencepiece_bpe_trained_here() {
    let dir = temp();
    let path = llama2_like(dir.path());
    let ext = verify(&path, &german_like(300, 3), 60);
    assert_eq!(ext.family, "SentencePiece BPE");
    // Characters the vocabulary lacked (byte fallback) became tokens for the merges using them.
    assert!(ext
        .tokens
        .iter()
        .any(|t| t.content == "ä" || t.content == "ß"));
    // No new token crosses a word boundary.
    for t in &ext.tokens {
        assert!(
            !t.content.chars().skip(1).any(|c| c == '▁'),
            "{t:?} crosses a word start"
        );
    }
}

#[test]
fn sentencepiece_bpe_gemma3_extract() {
    let path = Path::new("tests/fixtures/real-tokenizers/gemma3/tokenizer.json");
    let ext = verify(path, &german_like(200, 4), 40);
    assert_eq!(ext.family, "SentencePiece BPE");
}

/// A T5-like Unigram tokenizer (NFKC, Metaspace), trained on English only.
fn t5_like(dir: &Path) -> PathBuf {
    let trainer = UnigramTrainerBuilder::default()
        .show_progress(false)
        .vocab_size(150)
        .special_tokens(vec![
            AddedToken::from("<pad>", true),
            AddedToken::from("</s>", true),
            AddedToken::from("<unk>", true),
        ])
        .unk_token(Some("<unk>".into()))
        .build()
        .unwrap();
    let mut tok = Tokenizer::new(Unigram::default());
    tok.with_normalizer(Some(tokenizers::normalizers::unicode::NFKC));
    tok.with_pre_tokenizer(Some(
        tokenizers::pre_tokenizers::metaspace::Metaspace::default(),
    ));
    tok.with_decoder(Some(tokenizers::decoders::metaspace::Metaspace::default()));
    let text = fixtures::lines(fixtures::EN, 300, 6);
    let mut trainer = tokenizers::models::TrainerWrapper::from(trainer);
    tok.train(&mut trainer, text.iter()).unwrap();
    let v: Value = serde_json::from_str(&tok.to_string(false).unwrap()).unwrap();
    write(dir, &v)
}

#[test]
fn unigram_trained_here() {
    let dir = temp();
    let path = t5_like(dir.path());
    let ext = verify(&path, &german_like(300, 5), 60);
    assert_eq!(ext.family, "Unigram");
    assert!(ext.notes[0].contains("scale"), "{:?}", ext.notes);
    // New scores are on the model's scale: within its range.
    let v: Value = serde_json::from_slice(&ext.tokenizer_json).unwrap();
    let pieces = v["model"]["vocab"].as_array().unwrap();
    let n_old = pieces.len() - ext.tokens.len();
    let old_min = pieces[..n_old]
        .iter()
        .map(|p| p[1].as_f64().unwrap())
        .fold(f64::INFINITY, f64::min);
    for p in &pieces[n_old..] {
        let s = p[1].as_f64().unwrap();
        assert!(s.is_finite() && s >= old_min && s <= 0.0, "{p}");
    }
}

#[test]
fn wordpiece_trained_here() {
    let dir = temp();
    fixtures::write_wordpiece_tokenizer(dir.path(), 300);
    let ext = verify(&dir.path().join("tokenizer.json"), &german_like(300, 7), 60);
    assert_eq!(ext.family, "WordPiece");
    // On this small text whole words win; continuation entries that would cut words the
    // original spells in fewer pieces are dropped by the repair loop.
    assert!(
        ext.notes.iter().any(|n| n.contains("longer")),
        "{:?}",
        ext.notes
    );
}

#[test]
fn budget_counts_intermediate_tokens_and_min_freq_drops() {
    let dir = temp();
    fixtures::write_bpe_tokenizer(dir.path(), 400);
    let path = dir.path().join("tokenizer.json");
    let corpus = german_like(300, 8);
    let small = learn(
        &path,
        &corpus,
        &LearnOptions {
            add: 7,
            min_freq: 2,
        },
    )
    .unwrap();
    assert_eq!(small.tokens.len(), 7);
    let big = learn(
        &path,
        &corpus,
        &LearnOptions {
            add: 60,
            min_freq: 2,
        },
    )
    .unwrap();
    // The small extension is the start of the big one (tokens in order of usefulness).
    for (a, b) in small.tokens.iter().zip(&big.tokens) {
        assert_eq!((a.id, &a.content, a.rank), (b.id, &b.content, b.rank));
    }
    let rare = learn(
        &path,
        &corpus,
        &LearnOptions {
            add: 60,
            min_freq: 200,
        },
    )
    .unwrap();
    assert!(rare.tokens.len() < big.tokens.len());
    assert!(
        rare.tokens.iter().all(|t| t.frequency >= 200),
        "{:?}",
        rare.tokens
    );
}

#[test]
fn refusals_are_one_line() {
    let dir = temp();
    let word_level = write(
        dir.path(),
        &json!({"version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
                "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
                "decoder": null, "model": {"type": "WordLevel", "vocab": {"a": 0, "[UNK]": 1}, "unk_token": "[UNK]"}}),
    );
    let lines = german_like(10, 1);
    let opts = LearnOptions {
        add: 5,
        min_freq: 0,
    };
    let e = learn(&word_level, &lines, &opts).unwrap_err().to_string();
    assert!(e.contains("WordLevel") && !e.contains('\n'), "{e}");
    let plain_bpe = write(
        dir.path(),
        &json!({"version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
                "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
                "decoder": null, "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"],
                "byte_fallback": false, "unk_token": null}}),
    );
    let e = learn(&plain_bpe, &lines, &opts).unwrap_err().to_string();
    assert!(
        e.contains("BPE") && e.contains("byte fallback") && !e.contains('\n'),
        "{e}"
    );
    let gpt2 = Path::new("tests/fixtures/tiny-archs/gpt2/tokenizer.json");
    let e = learn(
        gpt2,
        &lines,
        &LearnOptions {
            add: 0,
            min_freq: 0,
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("--add"), "{e}");
    let e = learn(gpt2, &["  ".to_string()], &opts).unwrap_err();
    assert!(e.to_string().contains("empty"), "{e}");
    let e = learn(&dir.path().join("missing.json"), &lines, &opts).unwrap_err();
    assert!(e.to_string().contains("missing.json"), "{e}");
}
