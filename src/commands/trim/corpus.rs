//! Streaming a text corpus through a tokenizer: a reader thread cuts the file into batches of
//! lines (at most [`BATCH_BYTES`] of text each, two batches queued), the caller's thread encodes
//! each batch with `encode_batch` (parallel on the tokenizers crate's rayon pool). Memory stays
//! at a few batches whatever the file size. Lines are tokenized one by one, without their line
//! ending and without the post-processor's special tokens; empty lines are skipped.

use crate::error::{Error, Result};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

/// Text bytes per batch.
pub const BATCH_BYTES: usize = 1 << 20;
/// Lines per batch at most.
const BATCH_LINES: usize = 8192;

/// Token counts of one corpus.
#[derive(Debug, Clone)]
pub struct CorpusCounts {
    /// The file.
    pub path: PathBuf,
    /// Non-empty lines tokenized.
    pub lines: u64,
    /// Tokens produced.
    pub tokens: u64,
    /// Occurrences of each token id.
    pub counts: Vec<u64>,
    /// The original text of every span the tokenizer turned into `unk_id` (distinct).
    pub unk_spans: BTreeSet<String>,
}

impl CorpusCounts {
    /// Relative frequency of `id` in this corpus.
    pub fn frequency(&self, id: usize) -> f64 {
        if self.tokens == 0 {
            return 0.0;
        }
        self.counts.get(id).copied().unwrap_or(0) as f64 / self.tokens as f64
    }
}

/// One batch: the non-empty lines and their line numbers (1-based).
#[derive(Default)]
struct Batch {
    numbers: Vec<u64>,
    lines: Vec<String>,
}

/// Reads `path` in batches of non-empty lines and calls `f` on each (line numbers, lines), in
/// file order. Returns the number of non-empty lines.
pub fn for_each_batch(
    path: &Path,
    mut f: impl FnMut(&[u64], &[String]) -> Result<()>,
) -> Result<u64> {
    let file = std::fs::File::open(path).map_err(|e| {
        Error::bad_file(
            path,
            format!("cannot open the corpus ({e}); pass an existing, readable text file"),
        )
    })?;
    let (tx, rx) = mpsc::sync_channel::<Result<Batch>>(2);
    let mut total = 0u64;
    std::thread::scope(|scope| {
        scope.spawn(move || read_batches(BufReader::with_capacity(1 << 20, file), path, &tx));
        for batch in rx {
            crate::cancel::check()?;
            let batch = batch?;
            total += batch.lines.len() as u64;
            f(&batch.numbers, &batch.lines)?;
        }
        Ok::<(), Error>(())
    })?;
    Ok(total)
}

/// The reader thread: sends batches until the end of the file, an error, or a closed channel.
fn read_batches(mut reader: impl BufRead, path: &Path, tx: &mpsc::SyncSender<Result<Batch>>) {
    let mut line_no = 0u64;
    let mut buf = Vec::new();
    let mut batch = Batch::default();
    let mut batch_bytes = 0usize;
    loop {
        buf.clear();
        let n = match reader.read_until(b'\n', &mut buf) {
            Ok(n) => n,
            Err(e) => {
                let _ = tx.send(Err(Error::bad_file(
                    path,
                    format!("read error after line {line_no} ({e}); check the file"),
                )));
                return;
            }
        };
        if n == 0 {
            break;
        }
        line_no += 1;
        while buf.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
            buf.pop();
        }
        if buf.is_empty() {
            continue;
        }
        let line = match String::from_utf8(std::mem::take(&mut buf)) {
            Ok(s) => s,
            Err(_) => {
                let _ = tx.send(Err(Error::bad_file(
                    path,
                    format!("line {line_no} is not valid UTF-8; convert the corpus to UTF-8 (e.g. iconv -f LATIN1 -t UTF-8)"),
                )));
                return;
            }
        };
        batch_bytes += line.len();
        batch.numbers.push(line_no);
        batch.lines.push(line);
        if batch_bytes >= BATCH_BYTES || batch.lines.len() >= BATCH_LINES {
            let full = std::mem::take(&mut batch);
            batch_bytes = 0;
            if tx.send(Ok(full)).is_err() {
                return;
            }
        }
    }
    if !batch.lines.is_empty() {
        let _ = tx.send(Ok(batch));
    }
}

/// Encodes `lines` (without special tokens), naming the lines in an error.
pub fn encode(
    tokenizer: &tokenizers::Tokenizer,
    path: &Path,
    numbers: &[u64],
    lines: &[String],
) -> Result<Vec<tokenizers::Encoding>> {
    let inputs: Vec<&str> = lines.iter().map(String::as_str).collect();
    tokenizer.encode_batch(inputs, false).map_err(|e| {
        Error::bad_file(
            path,
            format!(
                "the tokenizer failed on lines {}..{} ({}); check the corpus text",
                numbers.first().unwrap_or(&0),
                numbers.last().unwrap_or(&0),
                e.to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        )
    })
}

/// Counts every token id of `path` under `tokenizer`. `vocab_len` sizes the counts; spans that
/// become `unk_id` are collected (for WordPiece, whose unknown words need their greedy path).
/// `progress` gets the lines done after each batch.
pub fn count(
    tokenizer: &tokenizers::Tokenizer,
    path: &Path,
    vocab_len: usize,
    unk_id: Option<u32>,
    progress: &dyn Fn(u64),
) -> Result<CorpusCounts> {
    let mut c = CorpusCounts {
        path: path.to_path_buf(),
        lines: 0,
        tokens: 0,
        counts: vec![0; vocab_len],
        unk_spans: BTreeSet::new(),
    };
    let lines = for_each_batch(path, |numbers, lines| {
        let encodings = encode(tokenizer, path, numbers, lines)?;
        for (line, enc) in lines.iter().zip(&encodings) {
            for (i, &id) in enc.get_ids().iter().enumerate() {
                match c.counts.get_mut(id as usize) {
                    Some(n) => *n += 1,
                    None => {
                        return Err(Error::Model(format!(
                            "{}: the tokenizer produced id {id}, beyond its vocabulary of {vocab_len}; restore the original tokenizer.json",
                            path.display()
                        )))
                    }
                }
                if Some(id) == unk_id {
                    let (s, e) = enc.get_offsets()[i];
                    if let Some(span) = line.get(s..e) {
                        c.unk_spans.insert(span.to_string());
                    }
                }
            }
            c.tokens += enc.get_ids().len() as u64;
        }
        c.lines += lines.len() as u64;
        progress(c.lines);
        Ok(())
    })?;
    debug_assert_eq!(lines, c.lines);
    if c.tokens == 0 {
        return Err(Error::bad_file(
            path,
            "the corpus has no tokens (it is empty or holds only empty lines); pass a text file in the language to keep",
        ));
    }
    Ok(c)
}

/// How the trimmed tokenizer did on one corpus.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Verification {
    /// The file.
    pub path: PathBuf,
    /// Non-empty lines compared.
    pub lines: u64,
    /// Lines tokenized to the same tokens (same strings, ids renumbered).
    pub identical: u64,
    /// Lines that hold a token dropped by the frequency threshold, so they may tokenize
    /// differently (in smaller pieces).
    pub with_dropped_tokens: u64,
}

/// Compares `trimmed` with `original` on every line of `path`. `new_id[old]` is the new id of
/// each kept old id. A line whose original tokens were all kept must give exactly the renumbered
/// ids; anything else is an error (a bug in the trimming).
pub fn verify(
    original: &tokenizers::Tokenizer,
    trimmed: &tokenizers::Tokenizer,
    path: &Path,
    new_id: &[Option<u32>],
    progress: &dyn Fn(u64),
) -> Result<Verification> {
    let mut v = Verification {
        path: path.to_path_buf(),
        ..Default::default()
    };
    for_each_batch(path, |numbers, lines| {
        let before = encode(original, path, numbers, lines)?;
        let after = encode(trimmed, path, numbers, lines)?;
        for (i, (b, a)) in before.iter().zip(&after).enumerate() {
            let mapped: Option<Vec<u32>> = b
                .get_ids()
                .iter()
                .map(|&id| new_id.get(id as usize).copied().flatten())
                .collect();
            match mapped {
                Some(ids) if ids == a.get_ids() => v.identical += 1,
                Some(_) => {
                    return Err(Error::Model(format!(
                        "{}: line {} tokenizes differently after trimming ({:?} became {:?}) although all its tokens were kept (a bug in clp-gpu; please report it)",
                        path.display(),
                        numbers[i],
                        b.get_tokens(),
                        a.get_tokens()
                    )))
                }
                None => v.with_dropped_tokens += 1,
            }
        }
        v.lines += lines.len() as u64;
        progress(v.lines);
        Ok(())
    })?;
    Ok(v)
}
