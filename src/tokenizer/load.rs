//! Loading a tokenizer with the `tokenizers` crate, with the one error line every command
//! gives for a file it refuses, and reading `dir/tokenizer.json` once per run together with its
//! family.

use super::family::{TokenFamily, TokenizerHeader};
use crate::error::{one_line, Error, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The fix for a model directory without a `tokenizer.json`.
pub const MISSING_FIX: &str =
    "clp-gpu needs a fast tokenizer: save one with AutoTokenizer.from_pretrained(...).save_pretrained(DIR)";

/// A `tokenizer.json` loaded once: the `tokenizers` crate's tokenizer and its family.
pub struct Loaded {
    /// The file it was read from.
    pub path: PathBuf,
    /// The tokenizer.
    pub tokenizer: tokenizers::Tokenizer,
    /// How it spells its tokens.
    pub family: TokenFamily,
}

/// Reads `dir/tokenizer.json`: the tokenizer and its family. A family that cannot be told is
/// [`TokenFamily::Unknown`] with the reason, never an error (the tokenizer loaded).
pub fn read(dir: &Path) -> Result<Loaded> {
    let path = dir.join("tokenizer.json");
    if !path.is_file() {
        return Err(Error::bad_file(
            &path,
            format!("file not found; {MISSING_FIX}"),
        ));
    }
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let tokenizer = from_bytes(&path, &bytes)?;
    let family = TokenFamily::from_header(serde_json::from_slice::<TokenizerHeader>(&bytes));
    Ok(Loaded {
        path,
        tokenizer,
        family,
    })
}

/// Loads the tokenizer file at `path` (no family).
pub fn load_file(path: &Path) -> Result<tokenizers::Tokenizer> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    from_bytes(path, &bytes)
}

/// Loads a tokenizer from the text of a tokenizer.json (`path` names it in errors).
pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<tokenizers::Tokenizer> {
    tokenizers::Tokenizer::from_bytes(bytes).map_err(|e| not_loaded(path, &e.to_string()))
}

/// Loads a tokenizer from tokenizer.json as JSON (`path` names it in errors).
pub fn from_json(path: &Path, json: &Value) -> Result<tokenizers::Tokenizer> {
    let text = serde_json::to_string(json)
        .map_err(|e| Error::bad_file(path, format!("cannot serialise: {e}")))?;
    text.parse::<tokenizers::Tokenizer>()
        .map_err(|e| not_loaded(path, &e.to_string()))
}

/// The one error of a tokenizer.json the `tokenizers` crate refuses.
fn not_loaded(path: &Path, why: &str) -> Error {
    Error::bad_file(
        path,
        format!(
            "does not load as a tokenizer ({}); restore the original file",
            one_line(why)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_gives_the_family_or_one_line_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = read(dir.path()).err().unwrap().to_string();
        assert!(
            missing.contains("tokenizer.json")
                && missing.contains("file not found; clp-gpu needs a fast tokenizer"),
            "{missing}"
        );
        let path = dir.path().join("tokenizer.json");
        std::fs::write(&path, "{\"model\": {\"type\": \"BPE\",\n \"vocab\": 3}}").unwrap();
        let bad = read(dir.path()).err().unwrap().to_string();
        assert!(!bad.contains('\n'), "{bad}");
        assert!(
            bad.contains("does not load as a tokenizer (")
                && bad.ends_with("restore the original file"),
            "{bad}"
        );
        assert_eq!(bad, load_file(&path).err().unwrap().to_string());
        let json = serde_json::json!({"version": "1.0", "added_tokens": [], "normalizer": null,
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
            "post_processor": null, "decoder": null, "truncation": null, "padding": null,
            "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                      "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                      "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}});
        std::fs::write(&path, json.to_string()).unwrap();
        let loaded = read(dir.path()).unwrap();
        assert_eq!(loaded.family, TokenFamily::ByteLevel);
        assert_eq!(loaded.tokenizer.token_to_id("ab"), Some(2));
        assert_eq!(from_json(&path, &json).unwrap().token_to_id("ab"), Some(2));
    }
}
