//! Stage 3, **lay out the output**: every output shard is written like the source's (same
//! files, same tensor order), every tensor copied byte-for-byte except the rebuilt vocabulary
//! tensors, which are reserved at their new size and opened for in-place row writes
//! ([`OutPart`]). The overlap and by-role rows are then copied bit-exactly from the source.

use super::configs::ShiftedPositions;
use super::read::Part;
use crate::error::{Error, Result};
use crate::model::writer::{self, OutShard, OutTensor, TensorData};
use crate::model::Weights;
use crate::progress::{Progress, Unit};
use crate::rows::Stored;
use crate::tensor::DType;
use crate::vocab::Matching;
use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// A rebuilt tensor inside an output file: rows are written in place.
pub(super) struct OutPart {
    file: File,
    path: PathBuf,
    offset: u64,
    row_bytes: usize,
    /// Dtype of the rows.
    pub dtype: DType,
    /// First column of this tensor in the combined matrix.
    pub col: usize,
    /// Its columns.
    pub cols: usize,
}

impl OutPart {
    /// Writes the encoded row of `target_id`.
    pub fn write_row(&self, target_id: u32, bytes: &[u8]) -> Result<()> {
        self.file
            .write_all_at(
                bytes,
                self.offset + target_id as u64 * self.row_bytes as u64,
            )
            .map_err(|e| Error::io(&self.path, e))
    }

    /// Flushes the rows to disk.
    pub fn sync(&self) -> Result<()> {
        self.file.sync_data().map_err(|e| Error::io(&self.path, e))
    }
}

/// Writes every shard of the output into `out_dir` (and the index when the source is sharded);
/// returns the rebuilt tensors, one per part, opened for row writes.
pub(super) fn write_tensors(
    out_dir: &Path,
    source: &Weights,
    parts: &[Part],
    target_rows: usize,
    positions: Option<&ShiftedPositions>,
    progress: &Progress,
) -> Result<Vec<OutPart>> {
    let shards = plan_shards(source, parts, target_rows, positions);
    let total_bytes: u64 = shards
        .iter()
        .flat_map(|s| &s.tensors)
        .map(|t| t.data.len_bytes())
        .sum();
    let bar = progress.bar("copying tensors", total_bytes, Unit::Bytes);
    let mut placed: Vec<Option<OutPart>> = parts.iter().map(|_| None).collect();
    for shard in &shards {
        let positions = writer::write_shard(out_dir, shard, &mut |n| bar.inc(n))?;
        for (p, slot) in parts.iter().zip(placed.iter_mut()) {
            if let Some(&offset) = positions.get(&p.name) {
                *slot = Some(open_part(&out_dir.join(&shard.file_name), offset, p)?);
            }
        }
    }
    bar.finish();
    let targets: Vec<OutPart> = placed.into_iter().flatten().collect();
    if targets.len() != parts.len() {
        return Err(Error::Model(
            "a rebuilt tensor was not placed in any output shard (a bug in clp-gpu; please report it)".into(),
        ));
    }
    if source.sharded {
        writer::write_index(out_dir, &shards)?;
    }
    Ok(targets)
}

/// The output shards: the source's, with the rebuilt tensors reserved at `target_rows` rows
/// and a shifted position table in place of the source's.
fn plan_shards<'a>(
    source: &'a Weights,
    parts: &[Part],
    target_rows: usize,
    positions: Option<&'a ShiftedPositions>,
) -> Vec<OutShard<'a>> {
    let rebuilt: BTreeMap<&str, &Part> = parts.iter().map(|p| (p.name.as_str(), p)).collect();
    source
        .files
        .iter()
        .map(|f| OutShard {
            file_name: f.file_name.clone(),
            metadata: f.metadata.clone(),
            tensors: f
                .tensors
                .iter()
                .filter_map(|name| {
                    let t = source.info(name)?;
                    let shifted = positions.filter(|p| &p.name == name);
                    Some(match (rebuilt.get(name.as_str()), shifted) {
                        (Some(p), _) => reserved_tensor(p, target_rows),
                        (None, Some(p)) => OutTensor {
                            name: name.clone(),
                            dtype: t.dtype,
                            shape: p.shape.clone(),
                            data: TensorData::Owned(&p.bytes),
                        },
                        (None, None) => OutTensor {
                            name: name.clone(),
                            dtype: t.dtype,
                            shape: t.shape.clone(),
                            data: TensorData::Copy {
                                path: &f.path,
                                start: t.start,
                                len_bytes: t.len_bytes,
                            },
                        },
                    })
                })
                .collect(),
        })
        .collect()
}

/// A rebuilt tensor's place in its shard: `target_rows` rows, filled later.
fn reserved_tensor<'a>(p: &Part, target_rows: usize) -> OutTensor<'a> {
    OutTensor {
        name: p.name.clone(),
        dtype: p.safetensors_dtype,
        shape: p.layout.shape(target_rows, p.m.cols),
        data: TensorData::Reserved((target_rows * p.m.row_bytes()) as u64),
    }
}

fn open_part(path: &Path, offset: u64, p: &Part) -> Result<OutPart> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    Ok(OutPart {
        file,
        path: path.to_path_buf(),
        offset,
        row_bytes: p.m.row_bytes(),
        dtype: p.m.dtype,
        col: p.col,
        cols: p.m.cols,
    })
}

/// Overlap and by-role rows, and the `extra` `(target id, source id)` copies: the source bytes,
/// copied bit-exactly; a NaN or Inf among them is refused ([`Error::NonFiniteRow`]).
pub(super) fn copy_matched_rows(
    targets: &[OutPart],
    stored: &[Stored],
    parts: &[Part],
    matching: &Matching,
    extra: &[(u32, u32)],
) -> Result<()> {
    let copies: Vec<(u32, u32)> = matching
        .overlap
        .iter()
        .copied()
        .chain(matching.by_role.iter().map(|r| (r.target_id, r.source_id)))
        .chain(extra.iter().copied())
        .collect();
    let mut row = Vec::new();
    for ((t, stored), part) in targets.iter().zip(stored).zip(parts) {
        for &(tid, sid) in &copies {
            crate::cancel::check()?;
            stored.read_row(sid as usize, &mut row)?;
            stored.check_rows(&part.name, sid as usize, &row)?;
            t.write_row(tid, &row)?;
        }
    }
    Ok(())
}
