//! The corpora of `extend`: every non-empty line of each file (one document per line), split
//! into the lines the tokens are learnt from and an evenly spread held-out share that only the
//! final check sees.

use crate::commands::trim::corpus::for_each_batch;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// One corpus, split.
pub struct Corpus {
    /// The file.
    pub path: PathBuf,
    /// Lines the tokens are learnt from.
    pub train: Vec<String>,
    /// Lines only the check sees.
    pub heldout: Vec<String>,
}

/// Reads every corpus and holds out `holdout` (a share in `[0, 1)`) of each one's lines:
/// line `i` is held out when `⌊(i + 1)·h⌋ > ⌊i·h⌋`, so `⌊n·h⌋` lines spread evenly over the file.
pub fn read(paths: &[PathBuf], holdout: f64) -> Result<Vec<Corpus>> {
    if paths.is_empty() {
        return Err(Error::Argument(
            "--corpus FILE: give at least one text file (one document per line)".into(),
        ));
    }
    if !(0.0..1.0).contains(&holdout) {
        return Err(Error::Argument(format!(
            "--holdout {holdout}: give a share of lines in [0, 1), e.g. 0.1"
        )));
    }
    paths.iter().map(|p| read_one(p, holdout)).collect()
}

fn read_one(path: &Path, holdout: f64) -> Result<Corpus> {
    let mut corpus = Corpus {
        path: path.to_path_buf(),
        train: Vec::new(),
        heldout: Vec::new(),
    };
    let mut i = 0u64;
    for_each_batch(path, |_, lines| {
        for line in lines {
            let held = ((i + 1) as f64 * holdout).floor() > (i as f64 * holdout).floor();
            if held {
                corpus.heldout.push(line.clone());
            } else {
                corpus.train.push(line.clone());
            }
            i += 1;
        }
        Ok(())
    })?;
    if corpus.train.is_empty() {
        return Err(Error::bad_file(
            path,
            "has no line to learn from (empty, or only blank lines); pass a text file with one document per line",
        ));
    }
    Ok(corpus)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_held_out_share_is_spread_evenly() {
        let dir = std::env::temp_dir().join(format!("clp-extend-corpora-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c.txt");
        let text: String = (0..100).map(|i| format!("line {i}\n\n")).collect();
        std::fs::write(&p, text).unwrap();
        let c = &super::read(std::slice::from_ref(&p), 0.1).unwrap()[0];
        assert_eq!((c.train.len(), c.heldout.len()), (90, 10));
        assert_eq!(c.heldout[0], "line 9");
        assert_eq!(c.heldout[9], "line 99");
        let none = &super::read(std::slice::from_ref(&p), 0.0).unwrap()[0];
        assert_eq!((none.train.len(), none.heldout.len()), (100, 0));
        std::fs::write(&p, "\n\n").unwrap();
        let e = super::read(std::slice::from_ref(&p), 0.1)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("c.txt") && e.contains("no line"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
