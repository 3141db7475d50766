//! End-to-end tests of `clp-gpu trim`: tiny models with tokenizers trained on English, Russian
//! and Greek are trimmed to English + Russian corpora; the trimmed tokenizer must tokenize
//! every corpus line (and new text made of corpus words) to the same token strings, every
//! embedding row must move with its token bit-exactly, and every other tensor and file must be
//! as before. Bad inputs fail with one line and leave nothing at OUT.

mod fixtures;

use clp_gpu::tensor::DType;
use fixtures::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    en: PathBuf,
    ru: PathBuf,
    en_lines: Vec<String>,
    ru_lines: Vec<String>,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let en_lines = lines(EN, 300, 1);
    let ru_lines = lines(RU, 300, 2);
    let (en, ru) = (root.join("en.txt"), root.join("ru.txt"));
    write_corpus(&en, &en_lines);
    write_corpus(&ru, &ru_lines);
    Fixture {
        _tmp: tmp,
        root,
        en,
        ru,
        en_lines,
        ru_lines,
    }
}

/// Text made of corpus words in new orders (so new neighbours, same words).
fn remixed(a: &[String], b: &[String]) -> Vec<String> {
    let words: Vec<&str> = a.iter().chain(b).flat_map(|l| l.split(' ')).collect();
    (0..60)
        .map(|i| {
            (0..9)
                .map(|j| words[(i * 7919 + j * 104_729) % words.len()])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// Checks a trimmed model against its input: tokenization of `texts`, rows moved with their
/// tokens, other tensors identical, config and tokenizer_config ids. Returns the trimmed vocab.
fn check_trimmed(model: &Model, out: &Path, texts: &[String]) -> HashMap<String, u32> {
    let before = tokenizer(&model.dir);
    let after = tokenizer(out);
    for t in texts {
        assert_eq!(
            tokens(&before, t),
            tokens(&after, t),
            "tokenization of {t:?} changed"
        );
    }
    let old = vocab_of(&model.dir);
    let new = vocab_of(out);
    let k = new.len();
    let mut ids: Vec<u32> = new.values().copied().collect();
    ids.sort();
    assert_eq!(
        ids,
        (0..k as u32).collect::<Vec<_>>(),
        "new ids are compact"
    );
    // Order-preserving: sorting kept tokens by old id gives new ids 0..k.
    let mut by_old: Vec<(&String, u32)> = new.keys().map(|t| (t, old[t])).collect();
    by_old.sort_by_key(|p| p.1);
    for (i, (t, _)) in by_old.iter().enumerate() {
        assert_eq!(new[*t], i as u32, "{t} keeps its order");
    }
    let got = read_weights(out);
    for name in model.vocab_tensors() {
        let src = model.tensor(name);
        let (_, shape, bytes) = &got[name];
        assert_eq!(shape[0], k, "{name} rows");
        let row_bytes = src.bytes.len() / src.shape[0];
        for (t, &n) in &new {
            let o = old[t] as usize;
            assert_eq!(
                &bytes[n as usize * row_bytes..(n as usize + 1) * row_bytes],
                &src.bytes[o * row_bytes..(o + 1) * row_bytes],
                "{name}: row of {t:?} did not move with its token"
            );
        }
    }
    for t in &model.tensors {
        if model.vocab_tensors().contains(&t.name.as_str()) {
            continue;
        }
        assert_eq!(got[&t.name].2, t.bytes, "{} changed", t.name);
    }
    assert_eq!(got.len(), model.tensors.len());
    let cfg = read_json(&out.join("config.json"));
    assert_eq!(cfg["vocab_size"], json!(k));
    if !model.dir.join("tokenizer_config.json").exists() {
        assert!(!out.join("tokenizer_config.json").exists());
        return new;
    }
    let tc_in = read_json(&model.dir.join("tokenizer_config.json"));
    let tc = read_json(&out.join("tokenizer_config.json"));
    if let Some(dec) = tc["added_tokens_decoder"].as_object() {
        assert_eq!(
            dec.len(),
            tc_in["added_tokens_decoder"].as_object().unwrap().len()
        );
        for (id, entry) in dec {
            let content = entry["content"].as_str().unwrap();
            assert_eq!(
                id,
                &new[content].to_string(),
                "added_tokens_decoder id of {content}"
            );
        }
    }
    new
}

#[test]
fn byte_level_bpe_gpt2_keeps_tokenization_and_rows() {
    let f = fixture();
    let dir = f.root.join("gpt2");
    write_bpe_tokenizer(&dir, 520);
    let n = token_count(&dir);
    let pad = vocab_of(&dir)["<pad>"];
    let model = build_model(
        &dir,
        &ModelSpec {
            arch: Arch::Gpt2,
            vocab: Vocab::Rows(n + 3),
            dim: 24,
            layers: 2,
            dtype: DType::F32,
            shards: 1,
            config: json!({"bos_token_id": 0, "eos_token_id": 0, "pad_token_id": pad}),
            ..Default::default()
        },
    );
    let out = f.root.join("out");
    let report = ok_json(run(
        "trim",
        &[
            "--model",
            s(&dir),
            "--corpus",
            s(&f.en),
            "--corpus",
            s(&f.ru),
            "--out",
            s(&out),
            "--json",
        ],
    ));
    let mut texts = f.en_lines.clone();
    texts.extend(f.ru_lines.clone());
    texts.extend(remixed(&f.en_lines, &f.ru_lines));
    let new = check_trimmed(&model, &out, &texts);
    // Greek was in the tokenizer's training text only: its merged tokens are gone, its bytes stay.
    assert!(new.len() < n, "something was trimmed");
    // Greek letters start with the bytes 0xCE/0xCF ('Î', 'Ï' in the byte-level alphabet).
    assert!(
        vocab_of(&dir)
            .keys()
            .any(|t| t.contains('Î') && t.chars().count() > 2),
        "the tokenizer has Greek merges to drop"
    );
    for t in new.keys() {
        assert!(
            !(t.contains('Î') || t.contains('Ï')) || t.chars().count() == 1,
            "Greek token {t:?} survived"
        );
    }
    let before = tokenizer(&dir);
    let after = tokenizer(out.as_path());
    let greek = "η γρήγορη καφέ αλεπού";
    let decoded = after
        .decode(after.encode(greek, false).unwrap().get_ids(), true)
        .unwrap();
    assert_eq!(
        decoded.trim(),
        greek,
        "byte alphabet keeps unseen text encodable"
    );
    assert!(tokens(&after, greek).len() > tokens(&before, greek).len());
    // Config ids follow their tokens.
    let cfg = read_json(&out.join("config.json"));
    assert_eq!(cfg["eos_token_id"], json!(new["<|endoftext|>"]));
    assert_eq!(cfg["pad_token_id"], json!(new["<pad>"]));
    assert_eq!(
        new["<pad>"] as usize,
        new.len() - 1,
        "added token stays last"
    );
    // Report.
    assert_eq!(report["tokens_before"], json!(n));
    assert_eq!(report["tokens_after"], json!(new.len()));
    let kept = report["kept"].as_object().unwrap();
    let sum: u64 = kept.values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(sum as usize, new.len());
    assert_eq!(kept["special"], json!(2));
    assert!(kept["byte_alphabet"].as_u64().unwrap() > 0);
    for c in tokenizers::pre_tokenizers::byte_level::ByteLevel::alphabet() {
        assert!(new.contains_key(&c.to_string()), "byte {c:?} kept");
    }
    assert!(kept["merge_closure"].as_u64().unwrap() > 0);
    assert!(report["model_bytes_after"].as_u64() < report["model_bytes_before"].as_u64());
    let share = report["embedding_params_removed_share"].as_f64().unwrap();
    assert!(share > 0.1 && share < 1.0, "{share}");
    for v in report["verification"].as_array().unwrap() {
        assert_eq!(v["identical"], v["lines"]);
        assert_eq!(v["with_dropped_tokens"], json!(0));
    }
    assert_eq!(
        read_json(&out.join("trim_report.json"))["tokens_after"],
        json!(new.len())
    );
    assert!(report["merges_after"].as_u64().unwrap() < report["merges_before"].as_u64().unwrap());
    // vocab.json and merges.txt are rewritten to match tokenizer.json.
    let tj = read_json(&out.join("tokenizer.json"));
    assert_eq!(read_json(&out.join("vocab.json")), tj["model"]["vocab"]);
    let merges = std::fs::read_to_string(out.join("merges.txt")).unwrap();
    let mut lines = merges.lines();
    assert!(lines.next().unwrap().starts_with("#version"));
    let as_text: Vec<String> = tj["model"]["merges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| match m {
            Value::String(s) => s.clone(),
            Value::Array(p) => format!("{} {}", p[0].as_str().unwrap(), p[1].as_str().unwrap()),
            _ => panic!("merge {m}"),
        })
        .collect();
    assert_eq!(lines.map(str::to_owned).collect::<Vec<_>>(), as_text);
    assert_eq!(json!(as_text.len()), report["merges_after"]);
    // The text output.
    let out2 = f.root.join("out2");
    let text = run(
        "trim",
        &["--model", s(&dir), "--corpus", s(&f.en), "--out", s(&out2)],
    );
    assert!(text.status.success());
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(
        stdout.contains("tokens") && stdout.contains("bytes"),
        "{stdout}"
    );
}

#[test]
fn wordpiece_bert_keeps_tokenization_rows_and_post_processor() {
    let f = fixture();
    let dir = f.root.join("bert");
    write_wordpiece_tokenizer(&dir, 330);
    let n = token_count(&dir);
    let model = build_model(
        &dir,
        &ModelSpec {
            arch: Arch::Bert,
            vocab: Vocab::Rows(n),
            dim: 16,
            layers: 2,
            dtype: DType::BF16,
            shards: 1,
            config: json!({"pad_token_id": 0}),
            ..Default::default()
        },
    );
    // A corpus line with a character the tokenizer never saw: the word becomes [UNK].
    let mut en = f.en_lines.clone();
    en.push("the garden☃ of books".to_string());
    write_corpus(&f.en, &en);
    let out = f.root.join("out");
    let report = ok_json(run(
        "trim",
        &[
            "--model",
            s(&dir),
            "--corpus",
            s(&f.en),
            "--corpus",
            s(&f.ru),
            "--out",
            s(&out),
            "--json",
        ],
    ));
    assert_eq!(report["tokenizer_model"], "WordPiece");
    let mut texts = en.clone();
    texts.extend(f.ru_lines.clone());
    texts.extend(remixed(&en, &f.ru_lines));
    let new = check_trimmed(&model, &out, &texts);
    assert!(new.len() < n);
    for t in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] {
        assert!(new.contains_key(t), "{t} kept");
    }
    // The post-processor's ids follow [CLS] and [SEP].
    let after = tokenizer(&out);
    let enc = after.encode("the dog", true).unwrap();
    assert_eq!(enc.get_tokens().first().unwrap(), "[CLS]");
    assert_eq!(enc.get_ids()[0], new["[CLS]"]);
    assert_eq!(*enc.get_ids().last().unwrap(), new["[SEP]"]);
    let before = tokenizer(&dir);
    assert_eq!(
        before
            .encode("the garden☃ of books", true)
            .unwrap()
            .get_tokens(),
        enc_tokens(&after, "the garden☃ of books")
    );
    // vocab.txt follows the new ids.
    let vocab_txt = std::fs::read_to_string(out.join("vocab.txt")).unwrap();
    for (i, line) in vocab_txt.lines().enumerate() {
        assert_eq!(new[line], i as u32);
    }
    assert_eq!(
        read_json(&out.join("config.json"))["pad_token_id"],
        json!(new["[PAD]"])
    );
}

fn enc_tokens(tok: &tokenizers::Tokenizer, text: &str) -> Vec<String> {
    tok.encode(text, true).unwrap().get_tokens().to_vec()
}

#[test]
fn untied_sharded_llama_min_freq_and_keep_file() {
    let f = fixture();
    let dir = f.root.join("llama");
    write_bpe_tokenizer(&dir, 700);
    let n = token_count(&dir);
    let model = build_model(
        &dir,
        &ModelSpec {
            arch: Arch::Llama,
            vocab: Vocab::Rows(n),
            dim: 16,
            layers: 2,
            dtype: DType::F16,
            shards: 3,
            config: json!({"bos_token_id": 0, "eos_token_id": 0}),
            ..Default::default()
        },
    );
    let vocab = vocab_of(&dir);
    // A Greek token forced by --keep.
    let forced = vocab
        .keys()
        .filter(|t| t.starts_with("Ġ") && t.chars().count() > 3 && t.contains('Î'))
        .min()
        .cloned()
        .expect("a Greek word token");
    let keep = f.root.join("keep.txt");
    std::fs::write(&keep, format!("{forced}\n\n")).unwrap();
    let out = f.root.join("out");
    // A threshold high enough to drop the rarest corpus tokens.
    let report = ok_json(run(
        "trim",
        &[
            "--model",
            s(&dir),
            "--corpus",
            s(&f.en),
            "--corpus",
            s(&f.ru),
            "--min-freq",
            "0.012",
            "--keep",
            s(&keep),
            "--out",
            s(&out),
            "--json",
        ],
    ));
    let new = vocab_of(&out);
    assert!(new.contains_key(&forced), "--keep token kept");
    assert_eq!(report["kept"]["keep_file"], json!(1));
    let dropped: u64 = report["verification"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["with_dropped_tokens"].as_u64().unwrap())
        .sum();
    assert!(dropped > 0, "some lines hold tokens below the threshold");
    // Lines with only kept tokens tokenize the same; every line still decodes to itself.
    let before = tokenizer(&dir);
    let after = tokenizer(&out);
    for line in f.en_lines.iter().chain(&f.ru_lines) {
        let b = tokens(&before, line);
        if b.iter().all(|t| new.contains_key(t)) {
            assert_eq!(b, tokens(&after, line));
        }
        let ids = after
            .encode(line.as_str(), false)
            .unwrap()
            .get_ids()
            .to_vec();
        assert_eq!(after.decode(&ids, false).unwrap().trim(), line);
    }
    // Rows moved, shards mirrored, index rewritten.
    let got = read_weights(&out);
    let old = vocab_of(&dir);
    for name in model.vocab_tensors() {
        let src = model.tensor(name);
        let rb = src.bytes.len() / src.shape[0];
        for (t, &i) in &new {
            let o = old[t] as usize;
            assert_eq!(
                &got[name].2[i as usize * rb..(i as usize + 1) * rb],
                &src.bytes[o * rb..(o + 1) * rb]
            );
        }
    }
    let index = read_json(&out.join("model.safetensors.index.json"));
    let total: usize = got.values().map(|t| t.2.len()).sum();
    assert_eq!(index["metadata"]["total_size"], json!(total));
    assert_eq!(
        index["weight_map"],
        read_json(&dir.join("model.safetensors.index.json"))["weight_map"]
    );
}

#[test]
fn trimmed_helper_feeds_apply() {
    let f = fixture();
    let helper = f.root.join("helper");
    write_bpe_tokenizer(&helper, 1000);
    let n = token_count(&helper);
    build_model(
        &helper,
        &ModelSpec {
            arch: Arch::Gpt2,
            vocab: Vocab::Rows(n),
            dim: 16,
            layers: 1,
            dtype: DType::F32,
            shards: 1,
            config: json!({"bos_token_id": 0, "eos_token_id": 0}),
            ..Default::default()
        },
    );
    let trimmed = f.root.join("trimmed");
    ok_json(run(
        "trim",
        &[
            "--model",
            s(&helper),
            "--corpus",
            s(&f.ru),
            "--out",
            s(&trimmed),
            "--json",
        ],
    ));
    let source = build_model(
        &f.root.join("source"),
        &ModelSpec {
            dim: 24,
            seed: 7,
            ..ModelSpec::trained(Arch::Gpt2, Lang::English, 400, 0)
        },
    );
    let out = f.root.join("target");
    let applied = run(
        "apply",
        &[
            "--source",
            s(&source.dir),
            "--helper",
            s(&trimmed),
            "--out",
            s(&out),
            "--backend",
            "cpu-reference",
            "--quiet",
        ],
    );
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let k = token_count(&trimmed);
    assert!(k < n);
    assert_eq!(
        std::fs::read(out.join("tokenizer.json")).unwrap(),
        std::fs::read(trimmed.join("tokenizer.json")).unwrap()
    );
    assert_eq!(read_json(&out.join("config.json"))["vocab_size"], json!(k));
    assert_eq!(read_weights(&out)["transformer.wte.weight"].1, vec![k, 24]);
}

#[test]
fn bad_inputs_fail_with_one_line_and_nothing_at_out() {
    let f = fixture();
    let dir = f.root.join("m");
    write_bpe_tokenizer(&dir, 600);
    let n = token_count(&dir);
    build_model(
        &dir,
        &ModelSpec {
            arch: Arch::Gpt2,
            vocab: Vocab::Rows(n),
            dim: 8,
            layers: 1,
            dtype: DType::F32,
            shards: 1,
            ..Default::default()
        },
    );
    let out = f.root.join("out");
    let trim = |extra: &[&str]| {
        let mut args = vec!["--model", s(&dir), "--out", s(&out)];
        args.extend_from_slice(extra);
        run("trim", &args)
    };
    let missing = f.root.join("missing.txt");
    assert_fails_cleanly(
        trim(&["--corpus", s(&missing)]),
        &out,
        &["missing.txt", "no such file"],
    );
    let empty = f.root.join("empty.txt");
    std::fs::write(&empty, "\n\n\r\n").unwrap();
    assert_fails_cleanly(
        trim(&["--corpus", s(&empty)]),
        &out,
        &["empty.txt", "no tokens"],
    );
    let latin1 = f.root.join("latin1.txt");
    std::fs::write(&latin1, b"fine line\ncaf\xe9\n").unwrap();
    assert_fails_cleanly(
        trim(&["--corpus", s(&latin1)]),
        &out,
        &["latin1.txt", "line 2", "UTF-8"],
    );
    let keep = f.root.join("keep.txt");
    std::fs::write(&keep, "a\nnot-a-token-xyz\n").unwrap();
    assert_fails_cleanly(
        trim(&["--corpus", s(&f.en), "--keep", s(&keep)]),
        &out,
        &["keep.txt", "line 2", "`not-a-token-xyz` is not a token"],
    );
    assert_fails_cleanly(
        trim(&["--corpus", s(&f.en), "--min-freq", "2"]),
        &out,
        &["--min-freq"],
    );
    let no_tok = f.root.join("no_tok");
    std::fs::create_dir(&no_tok).unwrap();
    for file in ["config.json", "model.safetensors"] {
        std::fs::copy(dir.join(file), no_tok.join(file)).unwrap();
    }
    let out_nt = f.root.join("out_nt");
    let r = run(
        "trim",
        &[
            "--model",
            s(&no_tok),
            "--corpus",
            s(&f.en),
            "--out",
            s(&out_nt),
        ],
    );
    assert_fails_cleanly(r, &out_nt, &["tokenizer.json", "not found"]);
    // OUT exists: refused without --force, and left as it was.
    let existing = f.root.join("existing");
    std::fs::create_dir(&existing).unwrap();
    std::fs::write(existing.join("keep-me"), "x").unwrap();
    let r = run(
        "trim",
        &[
            "--model",
            s(&dir),
            "--corpus",
            s(&f.en),
            "--out",
            s(&existing),
        ],
    );
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("--force"));
    assert!(existing.join("keep-me").exists());
    // OUT is the model directory.
    let r = run(
        "trim",
        &[
            "--model",
            s(&dir),
            "--corpus",
            s(&f.en),
            "--out",
            s(&dir),
            "--force",
        ],
    );
    assert!(!r.status.success());
    assert!(dir.join("model.safetensors").exists());
}

/// A WordPiece vocabulary where greedy matching fails on a word although a shorter first piece
/// would succeed: "abc" takes "ab", then finds no "##c" and becomes [UNK]. If "ab" were dropped
/// (it is never output), the trimmed tokenizer would split "abc" into "a" "##bc" instead.
#[test]
fn wordpiece_keeps_the_greedy_path_of_unknown_words() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    std::fs::create_dir(&dir).unwrap();
    let vocab = json!({"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "ab": 4, "a": 5, "##bc": 6, "x": 7, "zz": 8, "##b": 9});
    let added: Vec<Value> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"id": i, "content": t, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}))
        .collect();
    write_json(
        &dir.join("tokenizer.json"),
        &json!({"version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
                "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": null, "lowercase": true},
                "pre_tokenizer": {"type": "BertPreTokenizer"}, "post_processor": null, "decoder": null,
                "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                          "max_input_chars_per_word": 100, "vocab": vocab}}),
    );
    let model = build_model(
        &dir,
        &ModelSpec {
            arch: Arch::Bert,
            vocab: Vocab::Rows(10),
            dim: 4,
            layers: 1,
            dtype: DType::F32,
            shards: 1,
            ..Default::default()
        },
    );
    let corpus = tmp.path().join("c.txt");
    std::fs::write(&corpus, "abc a xbc\n").unwrap();
    let before = tokenizer(&dir);
    assert_eq!(
        tokens(&before, "abc a xbc"),
        vec!["[UNK]", "a", "x", "##bc"]
    );
    let out = tmp.path().join("out");
    let report = clp_gpu::commands::trim::trim(&clp_gpu::commands::trim::TrimOptions {
        model: s(&dir).to_string(),
        corpora: vec![corpus],
        min_freq: 1e-6,
        keep: None,
        out: out.clone(),
        force: false,
        verify: true,
        progress: clp_gpu::progress::Progress::Hidden,
    })
    .unwrap();
    assert_eq!(report.kept.unk_path, 1);
    let new = check_trimmed(&model, &out, &["abc a xbc".to_string()]);
    assert!(new.contains_key("ab") && !new.contains_key("zz") && !new.contains_key("##b"));
}
