//! Writing the output model directory.
//!
//! Everything is written into a staging directory beside OUT (`.NAME.tmp-PID`) that is renamed
//! to OUT at the very end, so a failed or interrupted run never leaves a partial model at OUT
//! (a failure removes the staging directory, and so does a cancelled run: Ctrl-C or SIGTERM in
//! the CLI, `KeyboardInterrupt` in Python, see [`crate::cancel`]; a second Ctrl-C goes through
//! [`remove_temps_and_exit`]; only SIGKILL can leave it behind, never OUT).
//!
//! Safetensors files are streamed: the header is serialised, then each tensor is either copied
//! from its source file byte range (`std::io::copy`, which uses `copy_file_range` on Linux, so
//! the bytes need not pass through user memory) or written from an owned buffer. Headers list
//! tensors in sorted key order with `{"format":"pt"}` metadata and are padded to 8 bytes, so the
//! same inputs give the same bytes.

use crate::error::{Error, Result};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Where the bytes of an output tensor come from.
#[derive(Debug, Clone, Copy)]
pub enum TensorData<'a> {
    /// A byte range of an existing file, copied verbatim.
    Copy {
        /// The file.
        path: &'a Path,
        /// Absolute offset of the first byte.
        start: u64,
        /// Number of bytes.
        len_bytes: u64,
    },
    /// Bytes held in memory.
    Owned(&'a [u8]),
    /// `len` zero bytes, left as a hole to be filled in place later (see [`write_shard`]).
    Reserved(u64),
}

impl TensorData<'_> {
    /// Length in bytes.
    pub fn len_bytes(&self) -> u64 {
        match self {
            TensorData::Copy { len_bytes, .. } => *len_bytes,
            TensorData::Owned(b) => b.len() as u64,
            TensorData::Reserved(n) => *n,
        }
    }
}

/// One tensor of an output file.
#[derive(Debug, Clone)]
pub struct OutTensor<'a> {
    /// Tensor name.
    pub name: String,
    /// Element type.
    pub dtype: safetensors::Dtype,
    /// Shape.
    pub shape: Vec<usize>,
    /// Its bytes.
    pub data: TensorData<'a>,
}

/// One output safetensors file; tensors are stored in the order given.
#[derive(Debug, Clone)]
pub struct OutShard<'a> {
    /// File name inside OUT.
    pub file_name: String,
    /// Header metadata (`format` is set to `pt`).
    pub metadata: BTreeMap<String, String>,
    /// The tensors, in data order.
    pub tensors: Vec<OutTensor<'a>>,
}

/// Writes `shard` into `dir`, calling `progress` with the bytes written after each tensor
/// (and stopping before the next one once [`crate::cancel`] was requested).
/// Returns the absolute file offset of every tensor's data (where [`TensorData::Reserved`]
/// regions are to be filled).
pub fn write_shard(
    dir: &Path,
    shard: &OutShard,
    progress: &mut dyn FnMut(u64),
) -> Result<BTreeMap<String, u64>> {
    let path = dir.join(&shard.file_name);
    let mut header = Map::new();
    let mut metadata: Map<String, Value> = shard
        .metadata
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    metadata.insert("format".into(), Value::String("pt".into()));
    header.insert("__metadata__".into(), Value::Object(metadata));
    let mut offset = 0u64;
    for t in &shard.tensors {
        let end = offset + t.data.len_bytes();
        header.insert(
            t.name.clone(),
            json!({ "dtype": t.dtype, "shape": t.shape, "data_offsets": [offset, end] }),
        );
        offset = end;
    }
    let mut header_bytes = serde_json::to_vec(&Value::Object(header))
        .map_err(|e| Error::bad_file(&path, format!("cannot serialise the header: {e}")))?;
    header_bytes.resize(header_bytes.len().next_multiple_of(8), b' ');

    let io = |e| Error::io(&path, e);
    let mut out = File::create(&path).map_err(io)?;
    out.write_all(&(header_bytes.len() as u64).to_le_bytes())
        .map_err(io)?;
    out.write_all(&header_bytes).map_err(io)?;
    let mut positions = BTreeMap::new();
    let mut at = 8 + header_bytes.len() as u64;
    for t in &shard.tensors {
        crate::cancel::check()?;
        positions.insert(t.name.clone(), at);
        at += t.data.len_bytes();
        match t.data {
            TensorData::Owned(bytes) => out.write_all(bytes).map_err(io)?,
            TensorData::Reserved(n) => {
                out.seek(SeekFrom::Current(n as i64)).map_err(io)?;
            }
            TensorData::Copy {
                path: src,
                start,
                len_bytes,
            } => {
                let mut f = File::open(src).map_err(|e| Error::io(src, e))?;
                f.seek(SeekFrom::Start(start))
                    .map_err(|e| Error::io(src, e))?;
                let copied = std::io::copy(&mut (&f).take(len_bytes), &mut out).map_err(io)?;
                if copied != len_bytes {
                    return Err(Error::bad_file(
                        src,
                        format!("tensor `{}` ended early while copying: the file changed during the run", t.name),
                    ));
                }
            }
        }
        progress(t.data.len_bytes());
    }
    out.flush().map_err(io)?;
    // A reserved region at the end is only a seek: give the file its full length.
    out.set_len(at).map_err(io)?;
    Ok(positions)
}

/// Writes `model.safetensors.index.json` for `shards` (`total_size` = sum of tensor bytes).
pub fn write_index(dir: &Path, shards: &[OutShard]) -> Result<()> {
    let mut weight_map = Map::new();
    let mut total = 0u64;
    let mut names: Vec<(&str, &str)> = Vec::new();
    for s in shards {
        for t in &s.tensors {
            total += t.data.len_bytes();
            names.push((&t.name, &s.file_name));
        }
    }
    names.sort();
    for (t, f) in names {
        weight_map.insert(t.to_string(), Value::String(f.to_string()));
    }
    let index =
        json!({ "metadata": { "total_size": total }, "weight_map": Value::Object(weight_map) });
    crate::json::write_json(&dir.join(crate::model::safetensors::INDEX_FILE), &index)
}

/// The staging directory of an output; removed on drop unless committed. While it lives, the
/// process holds an exclusive advisory lock on [`LOCK_FILE`] inside it: a staging directory
/// whose lock nobody holds was left by a killed run and is removed by the next run into the same
/// parent ([`sweep_abandoned`]).
#[derive(Debug)]
pub struct Staging {
    out: PathBuf,
    tmp: PathBuf,
    force: bool,
    committed: bool,
    lock: Option<File>,
}

/// The lock file inside a staging directory (removed before the directory becomes OUT).
pub const LOCK_FILE: &str = ".clp-gpu.lock";

/// Temporary paths of this process that must not outlive it (staging directories, provenance
/// files before their rename).
static TEMPS: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Registers a temporary path for [`remove_temps`].
pub fn track_temp(path: &Path) {
    TEMPS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(path.to_path_buf());
}

/// Forgets a temporary path (committed, renamed or already removed).
pub fn untrack_temp(path: &Path) {
    TEMPS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|p| p != path);
}

/// Removes every registered temporary path and exits. The CLI calls this on a second Ctrl-C /
/// SIGTERM (or when a run has not stopped in time after the first), so an interrupted run
/// leaves neither OUT nor its staging directory behind. The
/// lock stays held until the process exits, so no new path is registered meanwhile.
pub fn remove_temps_and_exit(code: i32) -> ! {
    let temps = TEMPS.lock().unwrap_or_else(|p| p.into_inner());
    for p in temps.iter() {
        if p.is_dir() {
            let _ = std::fs::remove_dir_all(p);
        } else {
            let _ = std::fs::remove_file(p);
        }
    }
    std::process::exit(code)
}

/// Refuses an existing OUT unless `force`, and an OUT whose parent directory is missing.
pub fn check_out(out: &Path, force: bool) -> Result<()> {
    if out.symlink_metadata().is_ok() && !force {
        return Err(Error::Argument(format!(
            "--out {}: already exists; pass --force to replace it or choose another directory",
            out.display()
        )));
    }
    let parent = parent_of(out);
    if !parent.is_dir() {
        return Err(Error::Argument(format!(
            "--out {}: parent directory {} does not exist or is not a directory; create it first",
            out.display(),
            parent.display()
        )));
    }
    Ok(())
}

/// OUT must not be one of the input directories (with --force that would delete an input).
pub fn refuse_out_over_input(out: &Path, inputs: &[&Path]) -> Result<()> {
    let Ok(out_c) = out.canonicalize() else {
        return Ok(());
    };
    for dir in inputs {
        if dir.canonicalize().is_ok_and(|d| d == out_c) {
            return Err(Error::Argument(format!(
                "--out {} is an input directory; choose a different output directory",
                out.display()
            )));
        }
    }
    Ok(())
}

fn parent_of(out: &Path) -> PathBuf {
    match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn sibling(out: &Path, tag: &str) -> Result<PathBuf> {
    let name = out.file_name().ok_or_else(|| {
        Error::Argument(format!(
            "--out {}: not a directory name; give a path like ./my-model",
            out.display()
        ))
    })?;
    Ok(parent_of(out).join(format!(
        ".{}.{tag}-{}",
        name.to_string_lossy(),
        std::process::id()
    )))
}

/// Is `name` a staging directory name (`.NAME.tmp-PID`)?
fn is_staging_name(name: &str) -> bool {
    name.starts_with('.')
        && name.rsplit_once(".tmp-").is_some_and(|(head, pid)| {
            head.len() > 1 && !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())
        })
}

/// Removes the staging directories in `parent` whose owner is gone: those holding a
/// [`LOCK_FILE`] that nobody has locked. A directory without a lock file (being created or
/// committed, or not ours) and one whose lock is held are left alone. Says so on stderr, once
/// per directory removed (a notice about the user's disk, shown even with `--quiet`); returns
/// the removed paths.
pub fn sweep_abandoned(parent: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if !is_dir || !is_staging_name(&name.to_string_lossy()) {
            continue;
        }
        let dir = entry.path();
        if owner_is_gone(&dir.join(LOCK_FILE)) && std::fs::remove_dir_all(&dir).is_ok() {
            eprintln!(
                "notice: removed {}, the staging directory of a run that was killed",
                dir.display()
            );
            removed.push(dir);
        }
    }
    removed.sort();
    removed
}

/// Whether the lock file `lock` exists and nobody holds its lock (checked on the very file
/// still at that path, so a lock file unlinked by a committing owner does not count).
fn owner_is_gone(lock: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(f) = File::open(lock) else {
        return false;
    };
    if f.try_lock().is_err() {
        return false;
    }
    let (Ok(open), Ok(now)) = (f.metadata(), std::fs::metadata(lock)) else {
        return false;
    };
    open.dev() == now.dev() && open.ino() == now.ino()
}

/// Creates the lock file in `tmp` and takes its exclusive lock (held until the file is closed).
fn lock_staging(tmp: &Path) -> Result<File> {
    let path = tmp.join(LOCK_FILE);
    let f = File::create(&path).map_err(|e| Error::io(&path, e))?;
    f.try_lock().map_err(|e| {
        Error::io(
            &path,
            std::io::Error::other(format!("cannot lock the staging directory: {e}")),
        )
    })?;
    Ok(f)
}

impl Staging {
    /// Creates the staging directory beside `out` (this is where an unwritable OUT is found),
    /// after removing the staging directories of killed runs in the same parent.
    pub fn create(out: &Path, force: bool) -> Result<Staging> {
        check_out(out, force)?;
        let tmp = sibling(out, "tmp")?;
        sweep_abandoned(&parent_of(out));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        }
        std::fs::create_dir(&tmp).map_err(|e| {
            Error::Argument(format!(
                "--out {}: cannot write in {} ({e}); choose a writable location",
                out.display(),
                parent_of(out).display()
            ))
        })?;
        track_temp(&tmp);
        let mut staging = Staging {
            out: out.to_path_buf(),
            tmp,
            force,
            committed: false,
            lock: None,
        };
        staging.lock = Some(lock_staging(&staging.tmp)?);
        Ok(staging)
    }

    /// The directory to write into.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// Moves the staging directory to OUT (replacing an existing OUT when forced), unless a
    /// stop was requested ([`crate::cancel`]: then the directory is removed and this fails with
    /// [`Error::Cancelled`]). The lock file is unlinked first, its lock held until the rename
    /// is done.
    pub fn commit(mut self) -> Result<()> {
        crate::cancel::check()?;
        let io = |p: &Path, e| Error::io(p, e);
        let lock = self.tmp.join(LOCK_FILE);
        std::fs::remove_file(&lock).map_err(|e| io(&lock, e))?;
        if self.out.symlink_metadata().is_ok() {
            if !self.force {
                return Err(Error::Argument(format!(
                    "--out {}: appeared while running; pass --force to replace it",
                    self.out.display()
                )));
            }
            if self.out.is_dir() && !self.out.is_symlink() {
                let old = sibling(&self.out, "old")?;
                std::fs::rename(&self.out, &old).map_err(|e| io(&self.out, e))?;
                std::fs::rename(&self.tmp, &self.out).map_err(|e| io(&self.out, e))?;
                self.committed = true;
                untrack_temp(&self.tmp);
                std::fs::remove_dir_all(&old).map_err(|e| io(&old, e))?;
                return Ok(());
            }
            std::fs::remove_file(&self.out).map_err(|e| io(&self.out, e))?;
        }
        std::fs::rename(&self.tmp, &self.out).map_err(|e| io(&self.out, e))?;
        self.committed = true;
        untrack_temp(&self.tmp);
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            // Best effort: the run has already failed; the error that matters is being returned.
            let _ = std::fs::remove_dir_all(&self.tmp);
            untrack_temp(&self.tmp);
        }
    }
}
