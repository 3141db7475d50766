//! Element types and borrowed row-major matrices as the engine receives them: raw little-endian
//! bytes (from a memory map or a host buffer) plus dtype and shape. Nothing here copies data.

use crate::error::{Error, Result};
use half::{bf16, f16};

/// Element type of a matrix as stored on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum DType {
    /// IEEE binary32.
    F32,
    /// IEEE binary16.
    F16,
    /// bfloat16 (the high half of a binary32).
    BF16,
}

impl DType {
    /// Bytes per element.
    pub fn size_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
        }
    }
    /// Code passed to the shaders (must match `decode` in the WGSL files).
    pub fn shader_code(self) -> u32 {
        match self {
            DType::F32 => 0,
            DType::F16 => 1,
            DType::BF16 => 2,
        }
    }
    /// The safetensors name of this dtype ("F32", "F16", "BF16").
    pub fn safetensors_name(self) -> &'static str {
        match self {
            DType::F32 => "F32",
            DType::F16 => "F16",
            DType::BF16 => "BF16",
        }
    }
    /// Decodes element `i` of little-endian `bytes`.
    #[inline]
    pub fn decode(self, bytes: &[u8], i: usize) -> f32 {
        match self {
            DType::F32 => {
                let o = i * 4;
                f32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]])
            }
            DType::F16 => {
                f16::from_bits(u16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]])).to_f32()
            }
            DType::BF16 => {
                bf16::from_bits(u16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]])).to_f32()
            }
        }
    }
    /// Encodes `values` (rounding to nearest even) as little-endian bytes of this dtype.
    pub fn encode(self, values: &[f32]) -> Vec<u8> {
        let mut out = Vec::with_capacity(values.len() * self.size_bytes());
        for &v in values {
            match self {
                DType::F32 => out.extend_from_slice(&v.to_le_bytes()),
                DType::F16 => out.extend_from_slice(&f16::from_f32(v).to_bits().to_le_bytes()),
                DType::BF16 => out.extend_from_slice(&bf16::from_f32(v).to_bits().to_le_bytes()),
            }
        }
        out
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.safetensors_name())
    }
}

/// A borrowed row-major matrix of `rows × cols` elements of `dtype`, stored as raw bytes.
#[derive(Debug, Clone, Copy)]
pub struct MatrixRef<'a> {
    /// Exactly `rows * cols * dtype.size_bytes()` bytes, little-endian, any alignment.
    pub data: &'a [u8],
    /// Element type.
    pub dtype: DType,
    /// Number of rows.
    pub rows: usize,
    /// Number of columns (elements per row).
    pub cols: usize,
}

impl<'a> MatrixRef<'a> {
    /// Wraps `data`, checking that its length matches the shape. `name` is used in the error.
    pub fn new(name: &str, data: &'a [u8], dtype: DType, rows: usize, cols: usize) -> Result<Self> {
        let want = rows
            .checked_mul(cols)
            .and_then(|n| n.checked_mul(dtype.size_bytes()))
            .ok_or_else(|| Error::Shape(format!("{name}: {rows} x {cols} overflows")))?;
        if data.len() != want {
            return Err(Error::Shape(format!(
                "{name}: {rows} x {cols} {dtype} needs {want} bytes, got {}",
                data.len()
            )));
        }
        Ok(MatrixRef {
            data,
            dtype,
            rows,
            cols,
        })
    }
    /// Wraps an f32 slice.
    pub fn from_f32(data: &'a [f32], rows: usize, cols: usize) -> Result<Self> {
        Self::new("matrix", bytemuck::cast_slice(data), DType::F32, rows, cols)
    }
    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        self.cols * self.dtype.size_bytes()
    }
    /// The raw bytes of rows `start..end`.
    pub fn rows_bytes(&self, start: usize, end: usize) -> &'a [u8] {
        &self.data[start * self.row_bytes()..end * self.row_bytes()]
    }
    /// Element (r, c) decoded to f32.
    #[inline]
    pub fn get(&self, r: usize, c: usize) -> f32 {
        self.dtype.decode(self.data, r * self.cols + c)
    }
    /// Row `r` decoded to f64.
    pub fn row_f64(&self, r: usize) -> Vec<f64> {
        (0..self.cols).map(|c| self.get(r, c) as f64).collect()
    }
}
