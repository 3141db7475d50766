//! Hugging Face model directories: finding them ([`hub`]), opening one ([`dir`]), reading
//! `config.json` ([`config`]), mapping safetensors weights ([`safetensors`]), locating the
//! vocabulary-sized tensors per architecture ([`naming`]), reading a source/helper pair with
//! its checks ([`pair`]), rewriting a model's tensors ([`rewrite`]) and writing the output
//! directory ([`writer`]: safetensors shards, staging, temporary files). JSON files are
//! [`crate::json`]; the tokenizer format is [`crate::tokenizer`].

pub mod config;
pub mod dir;
pub mod hub;
pub mod naming;
pub mod pair;
pub mod rewrite;
pub mod safetensors;
pub mod writer;

pub use config::ModelConfig;
pub use dir::ModelDir;
pub use naming::VocabTensors;
pub use safetensors::Weights;

/// Tokenizer files copied from the target tokenizer's directory when present.
pub const TOKENIZER_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "vocab.txt",
    "tokenizer.model",
    "spiece.model",
    "sentencepiece.bpe.model",
    "chat_template.jinja",
    "chat_template.json",
];
