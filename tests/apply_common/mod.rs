//! Tiny Hugging Face model directories for the `apply` tests: BPE tokenizers trained here with
//! the `tokenizers` crate (English for sources, German for helpers, so the vocabularies partly
//! overlap), seeded random safetensors (single file or sharded with an index), config.json.
//! Also the independent checker of an output directory against the CPU reference.

#![allow(dead_code)]

use clp_gpu::tensor::{DType, MatrixRef};
use clp_gpu::weights::{TopK, Weighting};
use safetensors::tensor::TensorView;
use safetensors::SafeTensors;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, TokenizerBuilder};

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_clp-gpu")
}

/// Runs `clp-gpu apply` with `args`.
pub fn run_apply(args: &[&str]) -> Output {
    Command::new(bin())
        .arg("apply")
        .args(args)
        .output()
        .expect("spawn clp-gpu")
}

/// Asserts success and returns stdout.
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "clp-gpu failed: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const EN: &[&str] = &[
    "the quick brown fox jumps over the lazy dog",
    "a model of language learns the structure of the text it reads",
    "the weather in the city was cold and wet during the winter",
    "she walked to the station and bought a ticket for the train",
    "many people enjoy reading books in the evening after work",
    "the committee will meet again next week to discuss the plan",
    "our house has a small garden with apple trees and flowers",
    "he said that the results of the experiment were surprising",
    "the children played football in the park until it was dark",
    "information about the new product is available on the website",
    "we need more time to finish the project before the deadline",
    "the river flows through the valley towards the northern sea",
    "computers process numbers faster than any human could imagine",
    "the teacher explained the problem and the students listened",
    "in the morning the market is full of fresh fruit and bread",
    "she is writing a letter to her friend who lives in london",
];

const DE: &[&str] = &[
    "der schnelle braune fuchs springt über den faulen hund",
    "ein sprachmodell lernt die struktur des textes den es liest",
    "das wetter in der stadt war im winter kalt und nass",
    "sie ging zum bahnhof und kaufte eine fahrkarte für den zug",
    "viele menschen lesen am abend nach der arbeit gerne bücher",
    "der ausschuss wird sich nächste woche wieder treffen",
    "unser haus hat einen kleinen garten mit apfelbäumen und blumen",
    "er sagte dass die ergebnisse des experiments überraschend waren",
    "die kinder spielten im park fußball bis es dunkel wurde",
    "informationen über das neue produkt gibt es auf der webseite",
    "wir brauchen mehr zeit um das projekt vor der frist zu beenden",
    "der fluss fließt durch das tal in richtung der nordsee",
    "computer verarbeiten zahlen schneller als ein mensch es könnte",
    "die lehrerin erklärte das problem und die schüler hörten zu",
    "am morgen ist der markt voll mit frischem obst und brot",
    "the park and the station are in the city of london",
];

/// Language of a test tokenizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// Source-like: English, `<|endoftext|>` as bos/eos/unk.
    English,
    /// Helper-like: German, `<s>`, `</s>`, `<unk>`, `<pad>`.
    German,
}

/// A GPT-2-style tokenizer: byte-level BPE with ByteLevel pre-tokenizer, post-processor and
/// decoder, no normaliser.
pub type ByteLevelBpe =
    tokenizers::TokenizerImpl<BPE, NormalizerWrapper, ByteLevel, ByteLevel, ByteLevel>;

/// Trains a byte-level BPE tokenizer of about `vocab_size` tokens on `lines`, with `specials`
/// first (ids 0..) and the full byte alphabet.
pub fn train_byte_level_bpe<'a>(
    lines: impl IntoIterator<Item = &'a str, IntoIter: Send>,
    vocab_size: usize,
    specials: &[&str],
) -> ByteLevelBpe {
    let mut trainer = BpeTrainerBuilder::new()
        .show_progress(false)
        .vocab_size(vocab_size)
        .min_frequency(0)
        .special_tokens(
            specials
                .iter()
                .map(|s| AddedToken::from(s.to_string(), true))
                .collect(),
        )
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let mut tok =
        TokenizerBuilder::<BPE, NormalizerWrapper, ByteLevel, ByteLevel, ByteLevel>::new()
            .with_model(BPE::default())
            .with_normalizer(None)
            .with_pre_tokenizer(Some(ByteLevel::default()))
            .with_post_processor(Some(ByteLevel::default()))
            .with_decoder(Some(ByteLevel::default()))
            .build()
            .expect("tokenizer builder");
    tok.train(&mut trainer, lines.into_iter())
        .expect("train tokenizer");
    tok
}

/// Trains a byte-level BPE tokenizer and writes tokenizer.json + tokenizer_config.json +
/// special_tokens_map.json into `dir`. Returns the vocabulary size (largest id + 1).
pub fn write_tokenizer(dir: &Path, lang: Lang, vocab_size: usize) -> usize {
    let (lines, specials) = match lang {
        Lang::English => (EN, vec!["<|endoftext|>"]),
        Lang::German => (DE, vec!["<s>", "</s>", "<unk>", "<pad>"]),
    };
    // Repeat the corpus so merges have counts.
    let corpus: Vec<&str> = (0..4).flat_map(|_| lines.iter().copied()).collect();
    let tok = train_byte_level_bpe(corpus, vocab_size, &specials);
    std::fs::create_dir_all(dir).unwrap();
    tok.save(dir.join("tokenizer.json"), true)
        .expect("save tokenizer");
    let (tc, stm) = match lang {
        Lang::English => (
            json!({"tokenizer_class": "GPT2Tokenizer", "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "model_max_length": 1024}),
            json!({"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}),
        ),
        Lang::German => (
            json!({"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
                   "pad_token": "<pad>", "unk_token": {"content": "<unk>", "lstrip": false, "normalized": false, "rstrip": false, "single_word": false, "special": true}}),
            json!({"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}),
        ),
    };
    write_json(&dir.join("tokenizer_config.json"), &tc);
    write_json(&dir.join("special_tokens_map.json"), &stm);
    vocab_of(dir)
        .values()
        .map(|&i| i as usize + 1)
        .max()
        .unwrap()
}

/// token → id of `dir/tokenizer.json`, as transformers' get_vocab().
pub fn vocab_of(dir: &Path) -> HashMap<String, u32> {
    tokenizers::Tokenizer::from_file(dir.join("tokenizer.json"))
        .unwrap()
        .get_vocab(true)
}

/// Writes pretty JSON.
pub fn write_json(path: &Path, v: &Value) {
    std::fs::write(path, serde_json::to_string_pretty(v).unwrap()).unwrap();
}

/// A tensor to write.
#[derive(Debug, Clone)]
pub struct Tensor {
    /// Name.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<usize>,
    /// Little-endian bytes.
    pub bytes: Vec<u8>,
}

/// A seeded xorshift generator.
pub struct Rng(u64);

impl Rng {
    /// Seeded generator.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    /// Uniform in [-1, 1).
    pub fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// A random tensor (values in [-scale, scale)).
pub fn random(name: &str, dtype: DType, shape: &[usize], seed: u64, scale: f32) -> Tensor {
    let n: usize = shape.iter().product();
    let mut rng = Rng::new(seed);
    let v: Vec<f32> = (0..n).map(|_| rng.next_f32() * scale).collect();
    Tensor {
        name: name.into(),
        dtype,
        shape: shape.to_vec(),
        bytes: dtype.encode(&v),
    }
}

fn st_dtype(d: DType) -> safetensors::Dtype {
    match d {
        DType::F32 => safetensors::Dtype::F32,
        DType::F16 => safetensors::Dtype::F16,
        DType::BF16 => safetensors::Dtype::BF16,
    }
}

/// Writes `tensors` into `dir` as one `model.safetensors` (shards = 1) or `shards` files with
/// an index (tensors dealt round-robin in name order).
pub fn write_weights(dir: &Path, tensors: &[Tensor], shards: usize) {
    let mut sorted: Vec<&Tensor> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let meta = Some(HashMap::from([("format".to_string(), "pt".to_string())]));
    if shards <= 1 {
        let views: Vec<(String, TensorView)> = sorted
            .iter()
            .map(|t| {
                (
                    t.name.clone(),
                    TensorView::new(st_dtype(t.dtype), t.shape.clone(), &t.bytes).unwrap(),
                )
            })
            .collect();
        safetensors::serialize_to_file(views, meta, &dir.join("model.safetensors")).unwrap();
        return;
    }
    let mut weight_map = serde_json::Map::new();
    let mut total = 0usize;
    for s in 0..shards {
        let file = format!("model-{:05}-of-{:05}.safetensors", s + 1, shards);
        let views: Vec<(String, TensorView)> = sorted
            .iter()
            .enumerate()
            .filter(|(i, _)| i % shards == s)
            .map(|(_, t)| {
                weight_map.insert(t.name.clone(), json!(file));
                total += t.bytes.len();
                (
                    t.name.clone(),
                    TensorView::new(st_dtype(t.dtype), t.shape.clone(), &t.bytes).unwrap(),
                )
            })
            .collect();
        safetensors::serialize_to_file(views, meta.clone(), &dir.join(&file)).unwrap();
    }
    write_json(
        &dir.join("model.safetensors.index.json"),
        &json!({"metadata": {"total_size": total}, "weight_map": weight_map}),
    );
}

/// Architecture of a test model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// GPT-2: `transformer.wte.weight`, tied.
    Gpt2,
    /// BLOOM: `transformer.word_embeddings.weight`, tied.
    Bloom,
    /// Llama: `model.embed_tokens.weight` + `lm_head.weight`, untied.
    Llama,
    /// BERT: tied, with `cls.predictions.bias`.
    Bert,
}

/// A test model on disk and what went into it.
#[derive(Debug, Clone)]
pub struct Built {
    /// Directory.
    pub dir: PathBuf,
    /// Architecture.
    pub arch: Arch,
    /// Tokenizer size.
    pub tokens: usize,
    /// Embedding rows (tokens + padding).
    pub rows: usize,
    /// Hidden size.
    pub dim: usize,
    /// All tensors.
    pub tensors: Vec<Tensor>,
}

impl Built {
    /// Name of the input embedding.
    pub fn input_name(&self) -> &'static str {
        match self.arch {
            Arch::Gpt2 => "transformer.wte.weight",
            Arch::Bloom => "transformer.word_embeddings.weight",
            Arch::Llama => "model.embed_tokens.weight",
            Arch::Bert => "bert.embeddings.word_embeddings.weight",
        }
    }
    /// Names of the vocabulary tensors, input first (input, lm_head, bias), as apply combines them.
    pub fn vocab_tensors(&self) -> Vec<&'static str> {
        match self.arch {
            Arch::Llama => vec![self.input_name(), "lm_head.weight"],
            Arch::Bert => vec![self.input_name(), "cls.predictions.bias"],
            _ => vec![self.input_name()],
        }
    }
    /// The tensor of this name.
    pub fn tensor(&self, name: &str) -> &Tensor {
        self.tensors.iter().find(|t| t.name == name).unwrap()
    }
}

/// Builds a model directory: tokenizer of `lang` (trained to ~`vocab` tokens), `pad_rows` extra
/// embedding rows, hidden size `dim`, weights in `dtype` split into `shards` files.
#[allow(clippy::too_many_arguments)]
pub fn build_model(
    dir: &Path,
    arch: Arch,
    lang: Lang,
    vocab: usize,
    pad_rows: usize,
    dim: usize,
    dtype: DType,
    shards: usize,
    seed: u64,
) -> Built {
    std::fs::create_dir_all(dir).unwrap();
    let tokens = write_tokenizer(dir, lang, vocab);
    let rows = tokens + pad_rows;
    let (bos, eos) = match lang {
        Lang::English => (0, 0),
        Lang::German => (0, 1),
    };
    let mut t = Vec::new();
    let config = match arch {
        Arch::Gpt2 => {
            t.push(random(
                "transformer.wte.weight",
                dtype,
                &[rows, dim],
                seed,
                0.5,
            ));
            t.push(random(
                "transformer.wpe.weight",
                dtype,
                &[32, dim],
                seed + 1,
                0.5,
            ));
            t.push(random(
                "transformer.h.0.attn.c_attn.weight",
                dtype,
                &[dim, 3 * dim],
                seed + 2,
                0.5,
            ));
            t.push(random(
                "transformer.h.0.ln_1.weight",
                dtype,
                &[dim],
                seed + 3,
                1.0,
            ));
            t.push(random(
                "transformer.ln_f.bias",
                dtype,
                &[dim],
                seed + 4,
                1.0,
            ));
            json!({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_embd": dim, "n_layer": 1,
                   "n_head": 2, "n_positions": 32, "vocab_size": rows, "bos_token_id": bos, "eos_token_id": eos,
                   "torch_dtype": format!("{dtype:?}").to_lowercase()})
        }
        Arch::Bloom => {
            t.push(random(
                "transformer.word_embeddings.weight",
                dtype,
                &[rows, dim],
                seed,
                0.5,
            ));
            t.push(random(
                "transformer.word_embeddings_layernorm.weight",
                dtype,
                &[dim],
                seed + 1,
                1.0,
            ));
            t.push(random(
                "transformer.h.0.self_attention.query_key_value.weight",
                dtype,
                &[3 * dim, dim],
                seed + 2,
                0.5,
            ));
            t.push(random(
                "transformer.h.0.mlp.dense_h_to_4h.weight",
                dtype,
                &[4 * dim, dim],
                seed + 3,
                0.5,
            ));
            t.push(random(
                "transformer.ln_f.weight",
                dtype,
                &[dim],
                seed + 4,
                1.0,
            ));
            json!({"architectures": ["BloomForCausalLM"], "model_type": "bloom", "hidden_size": dim, "n_layer": 1,
                   "n_head": 2, "vocab_size": rows, "bos_token_id": bos, "eos_token_id": eos, "pad_token_id": 3})
        }
        Arch::Llama => {
            t.push(random(
                "model.embed_tokens.weight",
                dtype,
                &[rows, dim],
                seed,
                0.5,
            ));
            t.push(random("lm_head.weight", dtype, &[rows, dim], seed + 1, 0.5));
            t.push(random(
                "model.layers.0.mlp.up_proj.weight",
                dtype,
                &[2 * dim, dim],
                seed + 2,
                0.5,
            ));
            t.push(random(
                "model.layers.0.input_layernorm.weight",
                dtype,
                &[dim],
                seed + 3,
                1.0,
            ));
            t.push(random("model.norm.weight", dtype, &[dim], seed + 4, 1.0));
            std::fs::write(
                dir.join("generation_config.json"),
                serde_json::to_string_pretty(&json!({"bos_token_id": bos, "eos_token_id": eos, "transformers_version": "4.40.0"})).unwrap(),
            )
            .unwrap();
            json!({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": dim,
                   "num_hidden_layers": 1, "intermediate_size": 2 * dim, "num_attention_heads": 2,
                   "tie_word_embeddings": false, "vocab_size": rows, "bos_token_id": bos, "eos_token_id": eos})
        }
        Arch::Bert => {
            t.push(random(
                "bert.embeddings.word_embeddings.weight",
                dtype,
                &[rows, dim],
                seed,
                0.5,
            ));
            t.push(random(
                "bert.embeddings.position_embeddings.weight",
                dtype,
                &[16, dim],
                seed + 1,
                0.5,
            ));
            t.push(random(
                "cls.predictions.bias",
                dtype,
                &[rows],
                seed + 2,
                0.5,
            ));
            t.push(random(
                "cls.predictions.transform.dense.weight",
                dtype,
                &[dim, dim],
                seed + 3,
                0.5,
            ));
            json!({"architectures": ["BertForMaskedLM"], "model_type": "bert", "hidden_size": dim,
                   "num_hidden_layers": 1, "vocab_size": rows, "pad_token_id": 0})
        }
    };
    write_json(&dir.join("config.json"), &config);
    write_weights(dir, &t, shards);
    Built {
        dir: dir.to_path_buf(),
        arch,
        tokens,
        rows,
        dim,
        tensors: t,
    }
}

/// All tensors of an output directory: name → (dtype, shape, bytes).
pub fn read_weights(dir: &Path) -> BTreeMap<String, (safetensors::Dtype, Vec<usize>, Vec<u8>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    files.sort();
    let mut out = BTreeMap::new();
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        let st =
            SafeTensors::deserialize(&bytes).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        for (name, view) in st.tensors() {
            let prev = out.insert(
                name.clone(),
                (view.dtype(), view.shape().to_vec(), view.data().to_vec()),
            );
            assert!(prev.is_none(), "tensor {name} in two files");
        }
    }
    out
}

/// Units in the last place of `x` in `dtype` (for tolerances).
pub fn ulp(dtype: DType, x: f32) -> f32 {
    let a = x.abs();
    match dtype {
        DType::F32 => (a * f32::EPSILON).max(f32::MIN_POSITIVE),
        DType::F16 => (a * 2f32.powi(-10)).max(2f32.powi(-24)),
        DType::BF16 => (a * 2f32.powi(-7)).max(f32::MIN_POSITIVE),
    }
}

/// Checks an output directory independently of the implementation: matching redone from the
/// tokenizers, missing rows against `reference::clp` (rounded through the source dtype),
/// overlap/role rows bit-exact, every other tensor byte-identical, config, tokenizer files.
pub fn check_output(
    source: &Built,
    helper: &Built,
    out: &Path,
    top_k: TopK,
    pad_to: Option<usize>,
) {
    let src_vocab = vocab_of(&source.dir);
    let tgt_vocab = vocab_of(&helper.dir);
    let tgt_tokens = helper.tokens;
    let tgt_rows = pad_to.map_or(tgt_tokens, |n| tgt_tokens.next_multiple_of(n));
    let mut tgt_by_id: Vec<Option<&str>> = vec![None; tgt_tokens];
    for (t, &i) in &tgt_vocab {
        tgt_by_id[i as usize] = Some(t);
    }
    // Roles: source English `<|endoftext|>` is bos/eos/unk; target German <s>, </s>, <unk> have
    // those roles, <pad> has none in the source.
    let eot = src_vocab["<|endoftext|>"];
    let mut role_map: HashMap<u32, u32> = ["<s>", "</s>", "<unk>"]
        .iter()
        .map(|t| (tgt_vocab[*t], eot))
        .collect();
    // A source config's pad_token_id gives the source a pad role too.
    let src_cfg: Value =
        serde_json::from_slice(&std::fs::read(source.dir.join("config.json")).unwrap()).unwrap();
    if let Some(p) = src_cfg["pad_token_id"].as_u64() {
        role_map.insert(tgt_vocab["<pad>"], p as u32);
    }
    let mut overlap = Vec::new();
    let mut missing = Vec::new();
    for (t, tok) in tgt_by_id.iter().enumerate() {
        let t = t as u32;
        match tok.and_then(|s| src_vocab.get(s)) {
            Some(&s) => overlap.push((t, s)),
            None if role_map.contains_key(&t) => {}
            None => missing.push(t),
        }
    }
    assert!(
        !overlap.is_empty() && !missing.is_empty(),
        "test vocabularies must partly overlap"
    );

    // Reference: combined [input | lm_head | bias] columns, decoded to f32 (exact).
    let parts: Vec<&Tensor> = source
        .vocab_tensors()
        .iter()
        .map(|n| source.tensor(n))
        .collect();
    let widths: Vec<usize> = parts
        .iter()
        .map(|p| if p.shape.len() == 2 { p.shape[1] } else { 1 })
        .collect();
    let cols: usize = widths.iter().sum();
    let mut e = Vec::new();
    for &(_, s) in &overlap {
        for (p, &w) in parts.iter().zip(&widths) {
            for c in 0..w {
                e.push(p.dtype.decode(&p.bytes, s as usize * w + c));
            }
        }
    }
    let h = helper.tensor(helper.input_name());
    let hrow = |ids: &[u32]| -> Vec<f32> {
        ids.iter()
            .flat_map(|&i| {
                (0..helper.dim).map(move |c| h.dtype.decode(&h.bytes, i as usize * helper.dim + c))
            })
            .collect()
    };
    let (ho, hm) = (
        hrow(&overlap.iter().map(|p| p.0).collect::<Vec<_>>()),
        hrow(&missing),
    );
    let reference = clp_gpu::backend::reference::clp(
        &MatrixRef::from_f32(&hm, missing.len(), helper.dim).unwrap(),
        &MatrixRef::from_f32(&ho, overlap.len(), helper.dim).unwrap(),
        &MatrixRef::from_f32(&e, overlap.len(), cols).unwrap(),
        &Weighting::Clp { top_k },
    );
    assert!(
        reference.rejected.is_empty(),
        "random test data should not be rejected"
    );

    let got = read_weights(out);
    let mut col = 0;
    for (p, &w) in parts.iter().zip(&widths) {
        let (dt, shape, bytes) = &got[&p.name];
        assert_eq!(*dt, st_dtype(p.dtype), "{} dtype", p.name);
        let want_shape = if p.shape.len() == 2 {
            vec![tgt_rows, w]
        } else {
            vec![tgt_rows]
        };
        assert_eq!(shape, &want_shape, "{} shape", p.name);
        let rb = w * p.dtype.size_bytes();
        let row = |b: &[u8], r: usize| b[r * rb..(r + 1) * rb].to_vec();
        for &(t, s) in &overlap {
            assert_eq!(
                row(bytes, t as usize),
                row(&p.bytes, s as usize),
                "{} overlap row {t} not bit-exact",
                p.name
            );
        }
        for (&t, &s) in &role_map {
            assert_eq!(
                row(bytes, t as usize),
                row(&p.bytes, s as usize),
                "{} role row {t}",
                p.name
            );
        }
        let mut failures = 0;
        let mut worst = (0.0f32, 0u32, 0usize, 0.0f32, 0.0f32);
        for (m, &t) in missing.iter().enumerate() {
            let r = &reference.rows[m * cols + col..m * cols + col + w];
            let row_max = r.iter().fold(0.0f32, |a, x| a.max(x.abs()));
            for (c, &x) in r.iter().enumerate() {
                let want = p.dtype.decode(&p.dtype.encode(&[x]), 0);
                let have = p.dtype.decode(bytes, t as usize * w + c);
                let err = (have - want).abs();
                let tol = 1e-4 * row_max + ulp(p.dtype, want);
                if err > tol {
                    failures += 1;
                }
                if err - tol > worst.0 - 0.0 {
                    worst = (err - tol, t, c, have, want);
                }
            }
        }
        assert_eq!(
            failures, 0,
            "{}: {failures} missing-row values off; worst (excess, id, col, got, want) {worst:?}",
            p.name
        );
        for r in tgt_tokens..tgt_rows {
            assert!(
                row(bytes, r).iter().all(|&b| b == 0),
                "{} padding row {r} not zero",
                p.name
            );
        }
        col += w;
    }
    // Every other tensor byte-identical; no tensor added or lost.
    for t in &source.tensors {
        if source.vocab_tensors().contains(&t.name.as_str()) {
            continue;
        }
        let (dt, shape, bytes) = &got[&t.name];
        assert_eq!(
            (*dt, shape, bytes),
            (st_dtype(t.dtype), &t.shape, &t.bytes),
            "{} changed",
            t.name
        );
    }
    assert_eq!(got.len(), source.tensors.len(), "tensor count");

    // config.json
    let cfg: Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["vocab_size"], json!(tgt_rows));
    assert_eq!(cfg["bos_token_id"], json!(tgt_vocab["<s>"]));
    assert_eq!(cfg["eos_token_id"], json!(tgt_vocab["</s>"]));
    assert_eq!(cfg["pad_token_id"], json!(tgt_vocab["<pad>"]));
    assert_eq!(cfg["model_type"], src_cfg["model_type"]);
    if source.dir.join("generation_config.json").exists() {
        let gen: Value =
            serde_json::from_slice(&std::fs::read(out.join("generation_config.json")).unwrap())
                .unwrap();
        assert_eq!(gen["eos_token_id"], json!(tgt_vocab["</s>"]));
    }
    // Tokenizer files are the helper's.
    for f in [
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    ] {
        assert_eq!(
            std::fs::read(out.join(f)).unwrap(),
            std::fs::read(helper.dir.join(f)).unwrap(),
            "{f}"
        );
    }
    // Index, when sharded like the source.
    if source.dir.join("model.safetensors.index.json").exists() {
        let index: Value = serde_json::from_slice(
            &std::fs::read(out.join("model.safetensors.index.json")).unwrap(),
        )
        .unwrap();
        let total: usize = got.values().map(|t| t.2.len()).sum();
        assert_eq!(index["metadata"]["total_size"], json!(total));
        let map = index["weight_map"].as_object().unwrap();
        assert_eq!(map.len(), got.len());
        let src_index: Value = serde_json::from_slice(
            &std::fs::read(source.dir.join("model.safetensors.index.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(
            map,
            src_index["weight_map"].as_object().unwrap(),
            "sharded like the source"
        );
    } else {
        assert!(out.join("model.safetensors").is_file());
    }
    let report: Value =
        serde_json::from_slice(&std::fs::read(out.join("clp_transfer.json")).unwrap()).unwrap();
    assert_eq!(report["counts"]["overlap"], json!(overlap.len()));
    assert_eq!(report["counts"]["computed"], json!(missing.len()));
    assert_eq!(report["counts"]["special_by_role"], json!(role_map.len()));
}

/// All files of a directory: name → bytes.
pub fn dir_bytes(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}
