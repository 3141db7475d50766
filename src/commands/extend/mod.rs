//! `clp-gpu extend`: grow a model's own tokenizer with tokens learned from target-language text
//! and give the new rows a start. [`learn`] is the tokenizer side (training, extension, checks).

pub mod learn;
