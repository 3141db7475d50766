//! JSON files, shared by every reader and writer of model and tokenizer files: read a file that
//! must hold a JSON object (required or optional), write pretty JSON the way `transformers`
//! does, and [`Ordered`], an object whose entries are written in a given order (serde_json's
//! `Map` sorts its keys). A leaf module: it imports nothing of the crate but the error type.

use crate::error::{Error, Result};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};
use std::path::Path;

/// Reads a JSON file that must hold an object. `missing_fix` is appended when it does not exist.
pub fn read_json_object(path: &Path, missing_fix: &str) -> Result<Map<String, Value>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::bad_file(
                path,
                format!("file not found; {missing_fix}"),
            ))
        }
        Err(e) => {
            return Err(Error::bad_file(
                path,
                format!("cannot read: {e}; check the file's permissions"),
            ))
        }
    };
    parse_json_object(path, &text)
}

/// Reads a JSON object file if it exists (`Ok(None)` when absent; malformed content is an error).
pub fn read_optional_json_object(path: &Path) -> Result<Option<Map<String, Value>>> {
    match std::fs::read_to_string(path) {
        Ok(t) => parse_json_object(path, &t).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::bad_file(
            path,
            format!("cannot read: {e}; check the file's permissions"),
        )),
    }
}

/// Parses `text` (read from `path`) as a JSON object.
pub fn parse_json_object(path: &Path, text: &str) -> Result<Map<String, Value>> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Error::bad_file(
            path,
            "expected a JSON object at the top level; restore the original file",
        )),
        Err(e) => Err(Error::bad_file(
            path,
            format!("malformed JSON ({e}); restore the original file"),
        )),
    }
}

/// Writes `value` as pretty JSON (2-space indent, trailing newline), the way `transformers` does.
pub fn write_json(path: &Path, value: &Value) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::bad_file(path, format!("cannot serialise JSON: {e}")))?;
    text.push('\n');
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// A JSON object whose entries are serialised in the order given (serde_json's `Map` would
/// sort them): tokenizer vocabularies in id order, `added_tokens_decoder` in numeric order.
pub struct Ordered<'a, V>(pub Vec<(&'a str, V)>);

impl<V: Serialize> Serialize for Ordered<'_, V> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}
