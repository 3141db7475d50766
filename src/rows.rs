//! Row sets: the matrices a CLP run streams (`H_M`, `H_O`, `E_O`), described instead of
//! materialised. A row set is a list of row ids into stored matrices ("parts") that sit side by
//! side as column blocks; a tile of logical rows is gathered on demand into a reused staging
//! buffer.
//!
//! Storage is either bytes in memory (a host buffer, or a memory map for small inputs) or a
//! byte range of a file read with positioned reads (`pread`). File-backed sets keep the host
//! footprint at a few tiles whatever the model size: pages read this way sit in the kernel's
//! page cache, not in the process (a memory map would count every touched page of a 2 GB
//! embedding in the resident set). Runs of consecutive row ids are read with one call.
//!
//! When every part has the same dtype, gathered rows keep it (f16 stays f16 on the way to the
//! GPU); when they differ, rows are decoded to f32.

use crate::error::{Error, Result};
use crate::tensor::{DType, MatrixRef};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Rows per chunk when a whole set is streamed ([`RowSet::for_each_chunk`]): the column
/// means and deviations, FVT rows, OMP's norm range and the reference's streamed passes.
pub const CHUNK_ROWS: usize = 4096;

/// Where the bytes of one stored matrix are.
#[derive(Debug, Clone, Copy)]
pub enum Storage<'a> {
    /// In memory (any alignment).
    Memory(&'a [u8]),
    /// A byte range of an open file, starting at `offset`.
    File {
        /// The open file.
        file: &'a File,
        /// Its path (for error messages).
        path: &'a Path,
        /// Offset of row 0.
        offset: u64,
    },
}

/// One stored row-major matrix.
#[derive(Debug, Clone, Copy)]
pub struct Stored<'a> {
    /// Where its bytes are.
    pub storage: Storage<'a>,
    /// Element type.
    pub dtype: DType,
    /// Rows stored.
    pub rows: usize,
    /// Elements per row.
    pub cols: usize,
}

impl<'a> Stored<'a> {
    /// A matrix already in memory.
    pub fn memory(m: &MatrixRef<'a>) -> Stored<'a> {
        Stored {
            storage: Storage::Memory(m.data),
            dtype: m.dtype,
            rows: m.rows,
            cols: m.cols,
        }
    }

    fn row_bytes(&self) -> usize {
        self.cols * self.dtype.size_bytes()
    }

    /// The file the matrix is read from (`None` in memory).
    pub fn path(&self) -> Option<&'a Path> {
        match self.storage {
            Storage::File { path, .. } => Some(path),
            Storage::Memory(_) => None,
        }
    }

    /// Stored rows from `first` on, as read (`bytes`) from tensor `tensor`: an
    /// [`Error::NonFiniteRow`] at the first NaN or Inf.
    pub fn check_rows(&self, tensor: &str, first: usize, bytes: &[u8]) -> Result<()> {
        let Some(at) = first_non_finite(self.dtype, bytes) else {
            return Ok(());
        };
        let value = self.dtype.decode(bytes, at);
        Err(Error::NonFiniteRow {
            path: self.path().map(Path::to_path_buf),
            tensor: tensor.to_string(),
            row: first + at / self.cols.max(1),
            column: at % self.cols.max(1),
            value: if value.is_nan() { "NaN" } else { "Inf" },
            token: None,
        })
    }

    /// Stored row `r`'s raw bytes into `dst` (resized).
    pub fn read_row(&self, r: usize, dst: &mut Vec<u8>) -> Result<()> {
        let mut scratch = Vec::new();
        self.with_rows(r, 1, &mut scratch, |b| {
            dst.clear();
            dst.extend_from_slice(b);
        })
    }

    /// Reads stored rows `start..start + n` (contiguous) and hands their bytes to `f`.
    fn with_rows<T>(
        &self,
        start: usize,
        n: usize,
        scratch: &mut Vec<u8>,
        f: impl FnOnce(&[u8]) -> T,
    ) -> Result<T> {
        let rb = self.row_bytes();
        match self.storage {
            Storage::Memory(bytes) => Ok(f(&bytes[start * rb..(start + n) * rb])),
            Storage::File { file, path, offset } => {
                scratch.resize(n * rb, 0);
                file.read_exact_at(scratch, offset + (start * rb) as u64)
                    .map_err(|e| {
                        Error::bad_file(
                            path,
                            format!(
                                "reading rows {start}..{} failed: {e}; the file is truncated or changed during the run",
                                start + n
                            ),
                        )
                    })?;
                Ok(f(scratch))
            }
        }
    }
}

/// A logical matrix: row `i` is the concatenation of `parts[p]` row `index[i]` for every part.
#[derive(Debug, Clone)]
pub struct RowSet<'a> {
    name: String,
    parts: Vec<Stored<'a>>,
    index: Option<Vec<u32>>,
    rows: usize,
    cols: usize,
    dtype: DType,
    /// Tensor name of each part (for errors); the set's name until [`RowSet::tensors`].
    tensors: Vec<String>,
    /// Refuse a NaN or Inf while gathering (sets read from a checkpoint; see [`RowSet::new`]).
    check_finite: bool,
}

impl<'a> RowSet<'a> {
    /// All rows of `parts` side by side (every part must have the same row count). Rows of
    /// such a set are input data: a NaN or Inf in a gathered row is an
    /// [`Error::NonFiniteRow`] naming the file, tensor and stored row.
    pub fn new(name: &str, parts: Vec<Stored<'a>>) -> Result<RowSet<'a>> {
        let Some(first) = parts.first() else {
            return Err(Error::Shape(format!("{name}: a row set needs a matrix")));
        };
        if let Some(p) = parts.iter().find(|p| p.rows != first.rows) {
            return Err(Error::Shape(format!(
                "{name}: parts have {} and {} rows; side-by-side parts must have the same rows",
                first.rows, p.rows
            )));
        }
        let dtype = if parts.iter().all(|p| p.dtype == first.dtype) {
            first.dtype
        } else {
            DType::F32
        };
        Ok(RowSet {
            name: name.to_string(),
            rows: first.rows,
            cols: parts.iter().map(|p| p.cols).sum(),
            dtype,
            tensors: vec![name.to_string(); parts.len()],
            check_finite: true,
            parts,
            index: None,
        })
    }

    /// Names the tensor of each part (in errors), in the order of the parts.
    pub fn tensors<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> RowSet<'a> {
        for (slot, n) in self.tensors.iter_mut().zip(names) {
            *slot = n.into();
        }
        self
    }

    /// A matrix in memory, all rows. Its values are not checked (the backends' guards reject
    /// non-finite rows of such sets: the kernels' tests rely on it).
    pub fn from_matrix(name: &str, m: &MatrixRef<'a>) -> RowSet<'a> {
        RowSet {
            name: name.to_string(),
            tensors: vec![name.to_string()],
            check_finite: false,
            parts: vec![Stored::memory(m)],
            index: None,
            rows: m.rows,
            cols: m.cols,
            dtype: m.dtype,
        }
    }

    /// The rows `ids` of this set (ids index the stored rows), in that order.
    pub fn select(mut self, ids: Vec<u32>) -> Result<RowSet<'a>> {
        let stored = self.parts[0].rows;
        if let Some(&bad) = ids.iter().find(|&&i| i as usize >= stored) {
            return Err(Error::Shape(format!(
                "{}: row {bad} requested but only {stored} rows are stored",
                self.name
            )));
        }
        self.rows = ids.len();
        self.index = Some(ids);
        Ok(self)
    }

    /// Name used in messages.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Logical rows.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Elements per logical row (all parts).
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Element type of gathered rows.
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    /// Bytes per gathered row.
    pub fn row_bytes(&self) -> usize {
        self.cols * self.dtype.size_bytes()
    }
    /// Bytes all logical rows take when gathered.
    pub fn total_bytes(&self) -> u64 {
        self.rows as u64 * self.row_bytes() as u64
    }
    /// Files the set reads from (for reports).
    pub fn files(&self) -> Vec<PathBuf> {
        self.parts
            .iter()
            .filter_map(|p| match p.storage {
                Storage::File { path, .. } => Some(path.to_path_buf()),
                Storage::Memory(_) => None,
            })
            .collect()
    }

    /// Streams the whole set through `f` in chunks of at most [`CHUNK_ROWS`] rows, in row order
    /// (`f` gets each chunk's first row and its rows), through one reused buffer: never the
    /// whole set at once. The first error stops the stream, and so does a requested stop
    /// (checked by [`RowSet::gather`] before every chunk).
    pub fn for_each_chunk(&self, f: impl FnMut(usize, &MatrixRef) -> Result<()>) -> Result<()> {
        self.for_chunks(0..self.rows().div_ceil(CHUNK_ROWS), f)
    }

    /// [`RowSet::for_each_chunk`] over the chunks numbered `chunks` only (chunk `c` holds rows
    /// `c × CHUNK_ROWS..`), in the order given.
    pub fn for_chunks(
        &self,
        chunks: impl IntoIterator<Item = usize>,
        mut f: impl FnMut(usize, &MatrixRef) -> Result<()>,
    ) -> Result<()> {
        let mut bytes = Vec::new();
        for c in chunks {
            let r0 = c * CHUNK_ROWS;
            let r1 = (r0 + CHUNK_ROWS).min(self.rows());
            self.gather(r0, r1, &mut bytes)?;
            f(
                r0,
                &MatrixRef::new(self.name(), &bytes, self.dtype(), r1 - r0, self.cols())?,
            )?;
        }
        Ok(())
    }

    /// Gathers logical rows `start..end` into `dst` (resized to exactly their bytes). Fails
    /// with [`crate::Error::Cancelled`] once a stop was requested ([`crate::cancel`]): every
    /// backend gathers tile by tile, so this is where a run stops between tiles.
    pub fn gather(&self, start: usize, end: usize, dst: &mut Vec<u8>) -> Result<()> {
        crate::cancel::check()?;
        let rb = self.row_bytes();
        dst.resize((end - start) * rb, 0);
        let mut scratch = Vec::new();
        let mut col_byte = 0;
        for (p, part) in self.parts.iter().enumerate() {
            let prb = part.row_bytes();
            let convert = part.dtype != self.dtype;
            let out_rb = part.cols * self.dtype.size_bytes();
            // Runs of consecutive stored rows are read at once.
            let mut i = start;
            while i < end {
                let s = self.stored_row(i);
                let mut n = 1;
                while i + n < end && self.stored_row(i + n) == s + n {
                    n += 1;
                }
                part.with_rows(s, n, &mut scratch, |bytes| {
                    if self.check_finite {
                        self.check_rows(p, s, bytes)?;
                    }
                    for r in 0..n {
                        let at = (i - start + r) * rb + col_byte;
                        let src = &bytes[r * prb..(r + 1) * prb];
                        if convert {
                            for c in 0..part.cols {
                                let v = part.dtype.decode(src, c);
                                dst[at + 4 * c..at + 4 * c + 4].copy_from_slice(&v.to_le_bytes());
                            }
                        } else {
                            dst[at..at + prb].copy_from_slice(src);
                        }
                    }
                    Ok(())
                })??;
                i += n;
            }
            col_byte += out_rb;
        }
        Ok(())
    }

    /// Logical row `i` decoded to f64 (for references and verification).
    pub fn row_f64(&self, i: usize) -> Result<Vec<f64>> {
        let mut bytes = Vec::new();
        self.gather(i, i + 1, &mut bytes)?;
        Ok((0..self.cols)
            .map(|c| self.dtype.decode(&bytes, c) as f64)
            .collect())
    }

    /// Part `p`'s stored rows from `first` on, as read (`bytes`): an error at the first NaN/Inf.
    fn check_rows(&self, p: usize, first: usize, bytes: &[u8]) -> Result<()> {
        self.parts[p].check_rows(&self.tensors[p], first, bytes)
    }

    fn stored_row(&self, i: usize) -> usize {
        match &self.index {
            Some(ix) => ix[i] as usize,
            None => i,
        }
    }
}

/// Index of the first NaN or ±Inf element of little-endian `bytes` of `dtype`, by the
/// exponent bits alone (all ones), without decoding.
pub fn first_non_finite(dtype: DType, bytes: &[u8]) -> Option<usize> {
    match dtype {
        DType::F32 => bytes.chunks_exact(4).position(|b| {
            u32::from_le_bytes([b[0], b[1], b[2], b[3]]) & 0x7f80_0000 == 0x7f80_0000
        }),
        DType::F16 => bytes
            .chunks_exact(2)
            .position(|b| u16::from_le_bytes([b[0], b[1]]) & 0x7c00 == 0x7c00),
        DType::BF16 => bytes
            .chunks_exact(2)
            .position(|b| u16::from_le_bytes([b[0], b[1]]) & 0x7f80 == 0x7f80),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn gather_matches_direct_rows_for_memory_file_and_mixed_parts() {
        let a: Vec<f32> = (0..40).map(|x| x as f32 * 0.5).collect();
        let b: Vec<f32> = (0..20).map(|x| -(x as f32)).collect();
        let a16 = DType::F16.encode(&a);
        let b32 = DType::F32.encode(&b);
        let ma = MatrixRef::new("a", &a16, DType::F16, 10, 4).unwrap();
        let mb = MatrixRef::new("b", &b32, DType::F32, 10, 2).unwrap();
        let mut tmp = tempfile::NamedTempFile::new().unwrap();
        tmp.write_all(&[7u8; 3]).unwrap();
        tmp.write_all(&a16).unwrap();
        let file = File::open(tmp.path()).unwrap();
        let on_disk = Stored {
            storage: Storage::File {
                file: &file,
                path: tmp.path(),
                offset: 3,
            },
            dtype: DType::F16,
            rows: 10,
            cols: 4,
        };
        let ids = vec![3, 4, 5, 9, 0, 1];
        // Same dtype: bytes pass through.
        let set = RowSet::new("disk", vec![on_disk])
            .unwrap()
            .select(ids.clone())
            .unwrap();
        let mut got = Vec::new();
        set.gather(1, 5, &mut got).unwrap();
        let want: Vec<u8> = ids[1..5]
            .iter()
            .flat_map(|&r| ma.rows_bytes(r as usize, r as usize + 1).to_vec())
            .collect();
        assert_eq!(got, want);
        // Mixed dtypes side by side: f32 rows a | b.
        let set = RowSet::new("mixed", vec![Stored::memory(&ma), Stored::memory(&mb)])
            .unwrap()
            .select(ids.clone())
            .unwrap();
        assert_eq!((set.dtype(), set.cols()), (DType::F32, 6));
        for (i, &r) in ids.iter().enumerate() {
            let row = set.row_f64(i).unwrap();
            let mut want = ma.row_f64(r as usize);
            want.extend(mb.row_f64(r as usize));
            assert_eq!(row, want);
        }
        assert!(RowSet::new("x", vec![Stored::memory(&ma)])
            .unwrap()
            .select(vec![10])
            .is_err());
    }
}
