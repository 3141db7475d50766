//! Reading the documents to score: JSON Lines with a `"text"` field (the Hugging Face datasets
//! convention) or plain text with one document per line, and the `--max-bytes` cut.
//!
//! The format is detected from the first non-empty line: a JSON object with a string `"text"`
//! makes the file JSON Lines, anything else plain text. Bytes are the UTF-8 bytes of each
//! document as given (the decoded `"text"` string for JSON Lines, newlines inside it included;
//! the line without its line ending for plain text). Empty documents are skipped.

use crate::error::{Error, Result};
use std::path::Path;

/// How the documents were stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TextFormat {
    /// One JSON object per line with a string `"text"`.
    Jsonl,
    /// One document per line.
    Plain,
}

/// The documents of a text file, cut to the byte budget.
#[derive(Debug, Clone)]
pub struct Documents {
    /// How the file was read.
    pub format: TextFormat,
    /// The documents, in file order.
    pub docs: Vec<String>,
    /// Sum of their UTF-8 lengths.
    pub bytes: u64,
    /// Documents left out by the byte budget.
    pub dropped: usize,
}

/// Reads `path` and keeps documents while their running byte total stays within `max_bytes`
/// (stopping before the first document that would pass it).
pub fn read_documents(path: &Path, max_bytes: Option<u64>) -> Result<Documents> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let text = String::from_utf8(raw).map_err(|e| {
        Error::bad_file(
            path,
            format!(
                "not UTF-8 (first bad byte at offset {}); pass a UTF-8 text or JSON Lines file",
                e.utf8_error().valid_up_to()
            ),
        )
    })?;
    let format = detect(&text);
    let mut all = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let doc = match format {
            TextFormat::Plain => line.to_string(),
            TextFormat::Jsonl if line.trim().is_empty() => continue,
            TextFormat::Jsonl => jsonl_text(line).ok_or_else(|| {
                Error::bad_file(
                    path,
                    format!(
                        "line {}: not a JSON object with a string \"text\" field; every non-empty line of a JSON Lines file needs one",
                        i + 1
                    ),
                )
            })?,
        };
        if !doc.is_empty() {
            all.push(doc);
        }
    }
    Ok(cut_to_budget(format, all, max_bytes))
}

fn detect(text: &str) -> TextFormat {
    match text.lines().find(|l| !l.trim().is_empty()) {
        Some(first) if jsonl_text(first).is_some() => TextFormat::Jsonl,
        _ => TextFormat::Plain,
    }
}

fn jsonl_text(line: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    value.get("text")?.as_str().map(str::to_string)
}

fn cut_to_budget(format: TextFormat, all: Vec<String>, max_bytes: Option<u64>) -> Documents {
    let limit = max_bytes.unwrap_or(u64::MAX);
    let total = all.len();
    let mut bytes = 0u64;
    let mut docs = Vec::new();
    for doc in all {
        let len = doc.len() as u64;
        if bytes + len > limit {
            break;
        }
        bytes += len;
        docs.push(doc);
    }
    Documents {
        format,
        dropped: total - docs.len(),
        docs,
        bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(content: &str) -> tempfile::NamedTempFile {
        use std::io::Write;
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content.as_bytes()).unwrap();
        f
    }

    #[test]
    fn perplexity_reads_jsonl_and_plain() {
        let f = write("\n{\"text\": \"a\\nb\", \"id\": 1}\n{\"text\": \"héllo\"}\n");
        let d = read_documents(f.path(), None).unwrap();
        assert_eq!(d.format, TextFormat::Jsonl);
        assert_eq!(d.docs, vec!["a\nb", "héllo"]);
        assert_eq!(d.bytes, 3 + 6);

        let f = write("first line\n\n{\"no\": 1}\r\nthird\n");
        let d = read_documents(f.path(), None).unwrap();
        assert_eq!(d.format, TextFormat::Plain);
        assert_eq!(d.docs, vec!["first line", "{\"no\": 1}", "third"]);
    }

    #[test]
    fn perplexity_max_bytes_stops_before_the_document_that_passes() {
        let f = write("aaaa\nbbb\ncc\n");
        let d = read_documents(f.path(), Some(7)).unwrap();
        assert_eq!(d.docs, vec!["aaaa", "bbb"]);
        assert_eq!((d.bytes, d.dropped), (7, 1));
        let d = read_documents(f.path(), Some(6)).unwrap();
        assert_eq!(d.docs, vec!["aaaa"]);
        let d = read_documents(f.path(), Some(3)).unwrap();
        assert!(d.docs.is_empty());
    }

    #[test]
    fn perplexity_bad_jsonl_line_names_the_line() {
        let f = write("{\"text\": \"ok\"}\nnot json\n");
        let e = read_documents(f.path(), None).unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
    }
}
