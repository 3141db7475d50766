//! The safetensors weights of a model directory: one `model.safetensors`, or shards listed by
//! `model.safetensors.index.json`. Every file is memory-mapped and its header parsed and
//! validated by the `safetensors` crate (header length, JSON, offsets contiguous and
//! non-overlapping, data ending exactly at the end of the file); tensor data is only touched
//! when a caller slices it, so a 7B model costs a few header pages here.

use crate::error::{Error, Result};
use crate::json::read_optional_json_object;
use crate::tensor::{DType, MatrixRef};
use memmap2::Mmap;
use safetensors::tensor::{SafeTensorError, SafeTensors};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

/// File name of an unsharded checkpoint.
pub const SINGLE_FILE: &str = "model.safetensors";
/// File name of the shard index.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// One tensor of a checkpoint.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    /// Element type as stored.
    pub dtype: safetensors::Dtype,
    /// Shape.
    pub shape: Vec<usize>,
    /// Index into [`Weights::files`].
    pub file: usize,
    /// Absolute byte offset of the data in the file.
    pub start: u64,
    /// Data length in bytes.
    pub len_bytes: u64,
}

/// One mapped safetensors file.
#[derive(Debug)]
pub struct WeightFile {
    /// Full path.
    pub path: PathBuf,
    /// File name inside the model directory (the name used in the index).
    pub file_name: String,
    /// Size of the file in bytes.
    pub size_bytes: u64,
    /// The header's `__metadata__` (sorted).
    pub metadata: BTreeMap<String, String>,
    /// Tensor names in the order of their data in the file.
    pub tensors: Vec<String>,
    map: Mmap,
}

/// All safetensors files of a model directory.
#[derive(Debug)]
pub struct Weights {
    /// The model directory.
    pub dir: PathBuf,
    /// The files, in index order (sorted by name); one when unsharded.
    pub files: Vec<WeightFile>,
    /// Whether the checkpoint is sharded (has an index).
    pub sharded: bool,
    tensors: BTreeMap<String, TensorInfo>,
}

/// The weight file names of `dir`, the index's tensor → file map when sharded, and whether it
/// is sharded.
type Located = (Vec<String>, Option<BTreeMap<String, String>>, bool);

/// Finds the weight files of `dir`: `model.safetensors`, else the shards of the index.
fn locate_files(dir: &Path) -> Result<Located> {
    let single = dir.join(SINGLE_FILE);
    let index_path = dir.join(INDEX_FILE);
    if single.is_file() {
        return Ok((vec![SINGLE_FILE.to_string()], None, false));
    }
    if let Some(index) = read_optional_json_object(&index_path)? {
        let weight_map = read_weight_map(&index_path, &index)?;
        let mut files: Vec<String> = weight_map.values().cloned().collect();
        files.sort();
        files.dedup();
        if files.is_empty() {
            return Err(Error::bad_file(
                &index_path,
                "`weight_map` is empty; restore the original index file",
            ));
        }
        for f in &files {
            if !dir.join(f).is_file() {
                return Err(Error::bad_file(
                    &index_path,
                    format!("points at shard `{f}`, which is missing from {}; download the missing shard", dir.display()),
                ));
            }
        }
        return Ok((files, Some(weight_map), true));
    }
    let fix = if dir.join("pytorch_model.bin").exists()
        || dir.join("pytorch_model.bin.index.json").exists()
    {
        "only PyTorch .bin weights found: convert them to safetensors (save_pretrained(..., safe_serialization=True))"
    } else {
        "download the model weights into this directory"
    };
    Err(Error::bad_file(
        dir,
        format!("neither {SINGLE_FILE} nor {INDEX_FILE} found; {fix}"),
    ))
}

/// The index's `weight_map`, every entry a plain file name inside the directory.
fn read_weight_map(
    index_path: &Path,
    index: &serde_json::Map<String, Value>,
) -> Result<BTreeMap<String, String>> {
    let map = index
        .get("weight_map")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            Error::bad_file(
                index_path,
                "no `weight_map` object; restore the original index file",
            )
        })?;
    let mut weight_map = BTreeMap::new();
    for (tensor, file) in map {
        let file = file.as_str().ok_or_else(|| {
            Error::bad_file(index_path, format!("weight_map entry `{tensor}` is not a file name; restore the original index file"))
        })?;
        if file.contains('/') || file.contains('\\') || file == ".." {
            return Err(Error::bad_file(
                index_path,
                format!("weight_map entry `{tensor}` points outside the directory (`{file}`)"),
            ));
        }
        weight_map.insert(tensor.clone(), file.to_string());
    }
    Ok(weight_map)
}

/// Every tensor of the index must be in the shard the index names.
fn check_weight_map(
    dir: &Path,
    weight_map: &BTreeMap<String, String>,
    files: &[WeightFile],
    tensors: &BTreeMap<String, TensorInfo>,
) -> Result<()> {
    for (tensor, file) in weight_map {
        let found = tensors
            .get(tensor)
            .map(|t| files[t.file].file_name.as_str());
        if found != Some(file.as_str()) {
            return Err(Error::bad_file(
                dir.join(INDEX_FILE),
                format!("maps tensor `{tensor}` to `{file}`, which does not contain it; restore the matching index and shards"),
            ));
        }
    }
    Ok(())
}

/// The engine's dtype of a safetensors dtype, if it is one clp-gpu can compute with.
pub fn engine_dtype(dtype: safetensors::Dtype) -> Option<DType> {
    match dtype {
        safetensors::Dtype::F32 => Some(DType::F32),
        safetensors::Dtype::F16 => Some(DType::F16),
        safetensors::Dtype::BF16 => Some(DType::BF16),
        _ => None,
    }
}

impl Weights {
    /// Finds, maps and validates the safetensors files of `dir`.
    pub fn open(dir: &Path) -> Result<Weights> {
        let (file_names, weight_map, sharded) = locate_files(dir)?;
        let mut files = Vec::with_capacity(file_names.len());
        let mut tensors: BTreeMap<String, TensorInfo> = BTreeMap::new();
        for (fi, name) in file_names.iter().enumerate() {
            let (file, n, meta) = map_file(&dir.join(name), name)?;
            for t in &file.tensors {
                if tensors.contains_key(t) {
                    return Err(Error::bad_file(
                        &file.path,
                        format!(
                            "tensor `{t}` is also stored in another shard; remove the duplicate"
                        ),
                    ));
                }
            }
            let data_start = 8 + n as u64;
            for (tname, info) in meta.tensors() {
                let (s, e) = info.data_offsets;
                tensors.insert(
                    tname,
                    TensorInfo {
                        dtype: info.dtype,
                        shape: info.shape.clone(),
                        file: fi,
                        start: data_start + s as u64,
                        len_bytes: (e - s) as u64,
                    },
                );
            }
            files.push(file);
        }
        if let Some(weight_map) = &weight_map {
            check_weight_map(dir, weight_map, &files, &tensors)?;
        }
        Ok(Weights {
            dir: dir.to_path_buf(),
            files,
            sharded,
            tensors,
        })
    }

    /// Whether a tensor of this name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// The tensor of this name.
    pub fn info(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.get(name)
    }

    /// All tensor names, sorted.
    pub fn tensor_names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// Sum of the data bytes of all tensors (the index's `total_size`).
    pub fn total_bytes(&self) -> u64 {
        self.tensors.values().map(|t| t.len_bytes).sum()
    }

    /// "DIR/model.safetensors" or "DIR/model.safetensors.index.json (N shards)", for messages.
    pub fn describe(&self) -> String {
        if self.sharded {
            format!(
                "{} ({} shards)",
                self.dir.join(INDEX_FILE).display(),
                self.files.len()
            )
        } else {
            self.dir.join(SINGLE_FILE).display().to_string()
        }
    }

    /// The path of the file holding `name`.
    pub fn file_of(&self, name: &str) -> Option<&Path> {
        self.info(name).map(|t| self.files[t.file].path.as_path())
    }

    /// The raw bytes of tensor `name` (from the map; pages are read on first touch).
    pub fn bytes(&self, name: &str) -> Result<&[u8]> {
        let t = self.info(name).ok_or_else(|| {
            Error::Model(format!("tensor `{name}` not found in {}", self.describe()))
        })?;
        let (s, e) = (t.start as usize, (t.start + t.len_bytes) as usize);
        Ok(&self.files[t.file].map[s..e])
    }

    /// Tensor `name` as a matrix of `rows × cols` (a 1-D tensor is `len × 1`), checking that its
    /// dtype is one the engine computes with.
    pub fn matrix(&self, name: &str) -> Result<MatrixRef<'_>> {
        let t = self.info(name).ok_or_else(|| {
            Error::Model(format!("tensor `{name}` not found in {}", self.describe()))
        })?;
        let path = &self.files[t.file].path;
        let dtype = engine_dtype(t.dtype).ok_or_else(|| {
            Error::bad_file(
                path,
                format!(
                    "tensor `{name}` has dtype {:?}; clp-gpu supports F32, F16 and BF16: convert the model (e.g. model.to(torch.bfloat16).save_pretrained(...))",
                    t.dtype
                ),
            )
        })?;
        let (rows, cols) = match t.shape.as_slice() {
            [r, c] => (*r, *c),
            [r] => (*r, 1),
            other => {
                return Err(Error::bad_file(
                    path,
                    format!("tensor `{name}` has shape {other:?}, expected a matrix or a vector; this is not a vocabulary tensor"),
                ))
            }
        };
        MatrixRef::new(name, self.bytes(name)?, dtype, rows, cols)
    }
}

/// Absolute offset of the tensor data of the safetensors file `file` (at `path`): 8 + the
/// header length its first 8 bytes store, read with a positioned read (the cursor does not
/// move). For callers that read one single-tensor file with positioned reads instead of mapping
/// a model directory ([`Weights::open`] maps and validates whole checkpoints): `bench` on disk,
/// the file-backed backend tests and benches.
pub fn data_offset(file: &File, path: &Path) -> Result<u64> {
    use std::os::unix::fs::FileExt;
    let mut n = [0u8; 8];
    file.read_exact_at(&mut n, 0)
        .map_err(|e| Error::io(path, e))?;
    8u64.checked_add(u64::from_le_bytes(n)).ok_or_else(|| {
        Error::bad_file(
            path,
            "bad header length (the file is not a safetensors file); re-download or re-convert it",
        )
    })
}

/// Opens and maps one file, checking its header; also returns the header length and metadata.
fn map_file(
    path: &Path,
    file_name: &str,
) -> Result<(WeightFile, usize, safetensors::tensor::Metadata)> {
    let file = File::open(path).map_err(|e| {
        Error::bad_file(
            path,
            format!("cannot open: {e}; check that it exists and is readable"),
        )
    })?;
    let size_bytes = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if size_bytes < 8 {
        return Err(Error::bad_file(
            path,
            format!("truncated safetensors file ({size_bytes} bytes, shorter than the 8-byte header length); re-download it"),
        ));
    }
    // SAFETY: the file is opened read-only and only read through the map. As with every
    // safetensors loader, another process truncating it while we run would fault; we accept that.
    let map = unsafe { Mmap::map(&file) }
        .map_err(|e| Error::bad_file(path, format!("cannot map: {e}")))?;
    let (n, meta) = parse_header(&map, path)?;
    let metadata = meta
        .metadata()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let file = WeightFile {
        path: path.to_path_buf(),
        file_name: file_name.to_string(),
        size_bytes,
        metadata,
        tensors: meta.offset_keys(),
        map,
    };
    Ok((file, n, meta))
}

fn parse_header(map: &[u8], path: &Path) -> Result<(usize, safetensors::tensor::Metadata)> {
    SafeTensors::read_metadata(map).map_err(|e| {
        let what = match e {
            SafeTensorError::HeaderTooSmall | SafeTensorError::InvalidHeaderLength | SafeTensorError::HeaderTooLarge => {
                "bad header length (the file is truncated or not a safetensors file)".to_string()
            }
            SafeTensorError::InvalidOffset(name) => {
                format!("tensor `{name}` has invalid data offsets (overlapping or non-contiguous byte ranges)")
            }
            SafeTensorError::MetadataIncompleteBuffer => {
                "tensor data does not end at the end of the file (offsets past the end, or a truncated file)".to_string()
            }
            SafeTensorError::TensorInvalidInfo => {
                "a tensor's byte range does not match its shape and dtype".to_string()
            }
            other => format!("corrupt header: {other}"),
        };
        Error::bad_file(path, format!("{what}; re-download or re-convert the file"))
    })
}
