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
    // The tokenizer loaded, so the header parses too; should it not, canonical matching is
    // off for this tokenizer rather than the whole run failing.
    let family = match serde_json::from_slice::<TokenizerHeader>(&bytes) {
        Ok(h) => TokenFamily::detect(&h),
        Err(e) => TokenFamily::Unknown {
            reason: format!("tokenizer.json header: {}", one_line(&e.to_string())),
        },
    };
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
