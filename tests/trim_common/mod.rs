//! Tiny models for the `trim` and `shrink` tests: corpora in English, Russian and Greek made
//! from word lists with a seeded generator, a byte-level BPE (GPT-2-like) and a WordPiece
//! (BERT-like) tokenizer trained on all three languages with the `tokenizers` crate, model
//! directories around them, and layered checkpoints for `shrink`. Weights are written with
//! `apply_common`.

#![allow(dead_code)]

use crate::apply_common::{random, train_byte_level_bpe, write_json, write_weights, Rng, Tensor};
use clp_gpu::tensor::DType;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tokenizers::models::wordpiece::{WordPiece, WordPieceTrainerBuilder};
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, TokenizerBuilder};

/// Runs `clp-gpu <sub> args`.
pub fn run(sub: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clp-gpu"))
        .arg(sub)
        .args(args)
        .output()
        .expect("spawn clp-gpu")
}

/// A path as &str.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub const EN: &[&str] = &[
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dog",
    "model",
    "language",
    "learns",
    "structure",
    "text",
    "reads",
    "weather",
    "city",
    "cold",
    "winter",
    "station",
    "ticket",
    "train",
    "people",
    "enjoy",
    "reading",
    "books",
    "evening",
    "after",
    "work",
    "committee",
    "meets",
    "next",
    "week",
    "plan",
    "house",
    "garden",
    "apple",
    "trees",
    "flowers",
    "results",
    "experiment",
    "surprising",
    "children",
    "played",
    "football",
    "park",
    "until",
    "dark",
    "river",
    "valley",
    "northern",
    "sea",
    "computers",
    "numbers",
    "faster",
    "teacher",
    "students",
    "listened",
    "morning",
    "market",
    "fresh",
    "fruit",
    "bread",
    "letter",
    "friend",
];

pub const RU: &[&str] = &[
    "быстрая",
    "коричневая",
    "лиса",
    "прыгает",
    "через",
    "ленивую",
    "собаку",
    "модель",
    "языка",
    "учится",
    "структуре",
    "текста",
    "погода",
    "в",
    "городе",
    "была",
    "холодной",
    "зимой",
    "она",
    "пошла",
    "на",
    "вокзал",
    "и",
    "купила",
    "билет",
    "поезд",
    "многие",
    "люди",
    "любят",
    "читать",
    "книги",
    "вечером",
    "после",
    "работы",
    "комитет",
    "соберется",
    "неделе",
    "дом",
    "сад",
    "яблони",
    "цветы",
    "результаты",
    "эксперимента",
    "удивительными",
    "дети",
    "играли",
    "футбол",
    "парке",
    "темноты",
    "река",
    "течет",
    "долине",
    "северному",
    "морю",
    "утром",
    "рынок",
    "полон",
    "свежих",
    "фруктов",
    "хлеба",
    "письмо",
    "другу",
];

pub const EL: &[&str] = &[
    "η",
    "γρήγορη",
    "καφέ",
    "αλεπού",
    "πηδάει",
    "πάνω",
    "από",
    "τεμπέλικο",
    "σκύλο",
    "γλώσσα",
    "μαθαίνει",
    "δομή",
    "κειμένου",
    "καιρός",
    "στην",
    "πόλη",
    "ήταν",
    "κρύος",
    "χειμώνα",
    "σταθμό",
    "εισιτήριο",
    "τρένο",
    "άνθρωποι",
    "διαβάζουν",
    "βιβλία",
    "βράδυ",
    "δουλειά",
    "σπίτι",
    "κήπο",
    "μηλιές",
    "λουλούδια",
    "αποτελέσματα",
    "παιδιά",
    "έπαιξαν",
    "ποδόσφαιρο",
    "ποτάμι",
    "κοιλάδα",
    "θάλασσα",
    "αγορά",
    "φρέσκα",
    "φρούτα",
    "ψωμί",
    "γράμμα",
    "φίλο",
];

/// `n` lines of 4–11 words drawn from `words` with a seeded generator.
pub fn lines(words: &[&str], n: usize, seed: u64) -> Vec<String> {
    let mut rng = Rng::new(seed);
    let mut pick = |m: usize| ((rng.next_f32() + 1.0) * 0.5 * m as f32) as usize % m;
    (0..n)
        .map(|_| {
            let len = 4 + pick(8);
            (0..len)
                .map(|_| words[pick(words.len())])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// Writes lines (with a few blank lines and a CRLF) to `path`.
pub fn write_corpus(path: &Path, lines: &[String]) {
    let mut text = String::new();
    for (i, l) in lines.iter().enumerate() {
        text.push_str(l);
        text.push_str(if i % 50 == 7 { "\r\n\n" } else { "\n" });
    }
    std::fs::write(path, text).unwrap();
}

/// Training text: the three languages, each word list in many combinations.
fn training_text() -> Vec<String> {
    let mut t = lines(EN, 300, 11);
    t.extend(lines(RU, 300, 12));
    t.extend(lines(EL, 300, 13));
    t
}

/// Trains a byte-level BPE tokenizer (GPT-2-like: `<|endoftext|>` at id 0 as bos/eos/unk,
/// plus an added `<pad>` after the vocabulary) into `dir`.
pub fn write_bpe_tokenizer(dir: &Path, vocab_size: usize) {
    let text = training_text();
    let mut tok = train_byte_level_bpe(
        text.iter().map(String::as_str),
        vocab_size,
        &["<|endoftext|>"],
    );
    tok.add_special_tokens(&[AddedToken::from("<pad>", true)]);
    std::fs::create_dir_all(dir).unwrap();
    tok.save(dir.join("tokenizer.json"), true).unwrap();
    // The slow-tokenizer vocab.json and merges.txt, as GPT-2 checkpoints ship them.
    tokenizers::Model::save(tok.get_model(), dir, None).unwrap();
    let vocab = vocab_of(dir);
    let pad = vocab["<pad>"];
    write_json(
        &dir.join("tokenizer_config.json"),
        &json!({"tokenizer_class": "GPT2Tokenizer", "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>",
                "unk_token": "<|endoftext|>", "pad_token": "<pad>", "model_max_length": 1024,
                "added_tokens_decoder": {
                    "0": {"content": "<|endoftext|>", "lstrip": false, "normalized": false, "rstrip": false, "single_word": false, "special": true},
                    pad.to_string(): {"content": "<pad>", "lstrip": false, "normalized": false, "rstrip": false, "single_word": false, "special": true}}}),
    );
    write_json(
        &dir.join("special_tokens_map.json"),
        &json!({"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "pad_token": "<pad>"}),
    );
}

/// Trains a WordPiece tokenizer (BERT-like: lowercasing normalizer, `[CLS] $A [SEP]`
/// post-processor, `[PAD] [UNK] [CLS] [SEP] [MASK]` at ids 0–4) into `dir`.
pub fn write_wordpiece_tokenizer(dir: &Path, vocab_size: usize) {
    let specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
    let mut trainer = WordPieceTrainerBuilder::new()
        .show_progress(false)
        .vocab_size(vocab_size)
        .min_frequency(0)
        .special_tokens(
            specials
                .iter()
                .map(|t| AddedToken::from(*t, true))
                .collect(),
        )
        .build();
    let mut tok = TokenizerBuilder::<
        WordPiece,
        BertNormalizer,
        BertPreTokenizer,
        TemplateProcessing,
        tokenizers::decoders::wordpiece::WordPiece,
    >::new()
    .with_model(WordPiece::default())
    .with_normalizer(Some(BertNormalizer::default()))
    .with_pre_tokenizer(Some(BertPreTokenizer))
    .with_decoder(Some(tokenizers::decoders::wordpiece::WordPiece::default()))
    .build()
    .unwrap();
    tok.train(&mut trainer, training_text().into_iter())
        .unwrap();
    let cls = tok.token_to_id("[CLS]").unwrap();
    let sep = tok.token_to_id("[SEP]").unwrap();
    tok.with_post_processor(Some(
        TemplateProcessing::builder()
            .try_single("[CLS] $A [SEP]")
            .unwrap()
            .try_pair("[CLS] $A [SEP] $B:1 [SEP]:1")
            .unwrap()
            .special_tokens(vec![("[CLS]", cls), ("[SEP]", sep)])
            .build()
            .unwrap(),
    ));
    std::fs::create_dir_all(dir).unwrap();
    tok.save(dir.join("tokenizer.json"), true).unwrap();
    write_json(
        &dir.join("tokenizer_config.json"),
        &json!({"tokenizer_class": "BertTokenizer", "do_lower_case": true, "unk_token": "[UNK]", "sep_token": "[SEP]",
                "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]"}),
    );
    // A slow-tokenizer vocab.txt, as BERT checkpoints ship one.
    let vocab = vocab_of(dir);
    let mut by_id: Vec<(&String, &u32)> = vocab.iter().collect();
    by_id.sort_by_key(|p| *p.1);
    let text: String = by_id.iter().map(|(t, _)| format!("{t}\n")).collect();
    std::fs::write(dir.join("vocab.txt"), text).unwrap();
}

/// token → id of `dir/tokenizer.json` (added tokens included).
pub fn vocab_of(dir: &Path) -> HashMap<String, u32> {
    tokenizers::Tokenizer::from_file(dir.join("tokenizer.json"))
        .unwrap()
        .get_vocab(true)
}

/// Loads `dir/tokenizer.json`.
pub fn tokenizer(dir: &Path) -> tokenizers::Tokenizer {
    tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).unwrap()
}

/// Token strings of `text` (without special tokens).
pub fn tokens(tok: &tokenizers::Tokenizer, text: &str) -> Vec<String> {
    tok.encode(text, false).unwrap().get_tokens().to_vec()
}

/// Architecture of a test model around a trained tokenizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// transformer.wte (tied), transformer.h.N, n_layer.
    Gpt2,
    /// model.embed_tokens + lm_head (untied), model.layers.N, num_hidden_layers.
    Llama,
    /// bert.embeddings.word_embeddings + cls.predictions.bias (tied), bert.encoder.layer.N.
    Bert,
}

/// A model on disk.
#[derive(Debug, Clone)]
pub struct Model {
    /// Directory.
    pub dir: PathBuf,
    /// Tensors written.
    pub tensors: Vec<Tensor>,
    /// Vocabulary tensors (input first).
    pub vocab_tensors: Vec<String>,
    /// Hidden size.
    pub dim: usize,
    /// Layers.
    pub layers: usize,
}

impl Model {
    /// The tensor of this name.
    pub fn tensor(&self, name: &str) -> &Tensor {
        self.tensors.iter().find(|t| t.name == name).unwrap()
    }
}

/// Writes weights and config.json of `arch` into `dir` (which may already hold a tokenizer of
/// `rows` tokens; `rows` embedding rows are written). `layers` transformer layers, `shards` files.
pub fn write_model(
    dir: &Path,
    arch: Arch,
    rows: usize,
    dim: usize,
    layers: usize,
    dtype: DType,
    shards: usize,
    extra_config: Value,
) -> Model {
    std::fs::create_dir_all(dir).unwrap();
    let mut t = Vec::new();
    let mut seed = 100;
    let mut add = |t: &mut Vec<Tensor>, name: String, shape: &[usize]| {
        seed += 1;
        t.push(random(&name, dtype, shape, seed, 0.5));
    };
    let (vocab_tensors, mut config) = match arch {
        Arch::Gpt2 => {
            add(&mut t, "transformer.wte.weight".into(), &[rows, dim]);
            add(&mut t, "transformer.wpe.weight".into(), &[16, dim]);
            for l in 0..layers {
                add(
                    &mut t,
                    format!("transformer.h.{l}.attn.c_attn.weight"),
                    &[dim, 3 * dim],
                );
                add(&mut t, format!("transformer.h.{l}.ln_1.weight"), &[dim]);
                add(
                    &mut t,
                    format!("transformer.h.{l}.mlp.c_fc.bias"),
                    &[4 * dim],
                );
            }
            add(&mut t, "transformer.ln_f.bias".into(), &[dim]);
            (
                vec!["transformer.wte.weight".to_string()],
                json!({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_embd": dim, "n_layer": layers,
                       "n_head": 2, "n_positions": 16, "vocab_size": rows}),
            )
        }
        Arch::Llama => {
            add(&mut t, "model.embed_tokens.weight".into(), &[rows, dim]);
            add(&mut t, "lm_head.weight".into(), &[rows, dim]);
            for l in 0..layers {
                add(
                    &mut t,
                    format!("model.layers.{l}.self_attn.q_proj.weight"),
                    &[dim, dim],
                );
                add(
                    &mut t,
                    format!("model.layers.{l}.mlp.up_proj.weight"),
                    &[2 * dim, dim],
                );
                add(
                    &mut t,
                    format!("model.layers.{l}.input_layernorm.weight"),
                    &[dim],
                );
            }
            add(&mut t, "model.norm.weight".into(), &[dim]);
            (
                vec![
                    "model.embed_tokens.weight".to_string(),
                    "lm_head.weight".to_string(),
                ],
                json!({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": dim,
                       "num_hidden_layers": layers, "intermediate_size": 2 * dim, "num_attention_heads": 2,
                       "tie_word_embeddings": false, "vocab_size": rows}),
            )
        }
        Arch::Bert => {
            add(
                &mut t,
                "bert.embeddings.word_embeddings.weight".into(),
                &[rows, dim],
            );
            add(
                &mut t,
                "bert.embeddings.position_embeddings.weight".into(),
                &[16, dim],
            );
            for l in 0..layers {
                add(
                    &mut t,
                    format!("bert.encoder.layer.{l}.attention.self.query.weight"),
                    &[dim, dim],
                );
                add(
                    &mut t,
                    format!("bert.encoder.layer.{l}.output.dense.bias"),
                    &[dim],
                );
            }
            add(&mut t, "cls.predictions.bias".into(), &[rows]);
            add(
                &mut t,
                "cls.predictions.transform.dense.weight".into(),
                &[dim, dim],
            );
            (
                vec![
                    "bert.embeddings.word_embeddings.weight".to_string(),
                    "cls.predictions.bias".to_string(),
                ],
                json!({"architectures": ["BertForMaskedLM"], "model_type": "bert", "hidden_size": dim,
                       "num_hidden_layers": layers, "vocab_size": rows}),
            )
        }
    };
    if let (Value::Object(c), Value::Object(extra)) = (&mut config, extra_config) {
        c.extend(extra);
    }
    write_json(&dir.join("config.json"), &config);
    write_weights(dir, &t, shards);
    Model {
        dir: dir.to_path_buf(),
        tensors: t,
        vocab_tensors,
        dim,
        layers,
    }
}

/// Tokenizer size (largest id + 1) of `dir`.
pub fn token_count(dir: &Path) -> usize {
    vocab_of(dir)
        .values()
        .map(|&i| i as usize + 1)
        .max()
        .unwrap()
}

/// Reads a JSON file.
pub fn read_json(path: &Path) -> Value {
    serde_json::from_slice(
        &std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

/// Asserts a failed run: non-zero exit, exactly one line on stderr containing every `needles`,
/// and nothing at `out` or beside it (no staging directory).
pub fn assert_fails_cleanly(output: Output, out: &Path, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "expected failure; stderr: {stderr}"
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line on stderr, got: {stderr}");
    for n in needles {
        assert!(
            lines[0].contains(n),
            "stderr should mention `{n}`: {stderr}"
        );
    }
    assert!(!out.exists(), "{} must not exist", out.display());
    let name = out.file_name().unwrap().to_string_lossy().into_owned();
    let parent = out.parent().unwrap();
    for e in std::fs::read_dir(parent).unwrap() {
        let f = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            !f.starts_with(&format!(".{name}.")),
            "staging left behind: {f}"
        );
    }
}
