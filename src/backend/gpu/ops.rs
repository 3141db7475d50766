//! Single kernels run alone on small inputs (tests and benches): each allocates its own
//! buffers, records one kernel, and reads the result back.

use super::context::Readback;
use super::engine::{u32_of, Engine};
use crate::error::{Error, Result};
use crate::kernels::{
    MatmulBuffers, MatmulParams, NormalizeBuffers, NormalizeParams, ParamArena, Recorder,
    TopKBuffers, TopKParams,
};
use crate::method::{selectable, RowStatus, Selection};
use crate::tensor::MatrixRef;

impl Engine {
    fn submit(&self, encoder: wgpu::CommandEncoder, arena: &mut ParamArena) -> Result<()> {
        let gpu = &self.gpu;
        gpu.checked("submitting GPU work", || {
            gpu.queue.submit([encoder.finish()])
        })?;
        arena.reset();
        Ok(())
    }

    /// Runs `normalize` alone on one tile (for tests): normalised f32 rows and statuses.
    pub fn normalize(&self, m: &MatrixRef) -> Result<(Vec<f32>, Vec<RowStatus>)> {
        let g = &self.gpu;
        let src = g.storage_buffer("normalize input", m.data.len() as u64);
        let dst = g.storage_buffer("normalize output", (m.rows * m.cols * 4) as u64);
        let status = g.storage_buffer("normalize status", (m.rows * 4) as u64);
        self.poison(&[&dst, &status]);
        let mut arena = ParamArena::new(&g.device, 1);
        g.upload(&src, m.data);
        let mut enc = self.encoder("normalize");
        let params = NormalizeParams {
            rows: u32_of(m.rows, "rows")?,
            cols: u32_of(m.cols, "cols")?,
            dtype: m.dtype.shader_code(),
            _pad: 0,
        };
        let buffers = NormalizeBuffers {
            src: &src,
            dst: &dst,
            status: &status,
        };
        let mut rec = Recorder {
            device: &g.device,
            queue: &g.queue,
            encoder: &mut enc,
            arena: &mut arena,
        };
        self.kernels.normalize.encode(&mut rec, params, buffers);
        let rows_bytes = (m.rows * m.cols * 4) as u64;
        let rb = Readback::new(g, "normalize readback", rows_bytes + m.rows as u64 * 4);
        enc.copy_buffer_to_buffer(&dst, 0, rb.buffer(), 0, rows_bytes);
        enc.copy_buffer_to_buffer(&status, 0, rb.buffer(), rows_bytes, m.rows as u64 * 4);
        self.submit(enc, &mut arena)?;
        rb.read(g, rb.size_bytes(), |bytes| {
            let (r, s) = bytes.split_at(rows_bytes as usize);
            let rows = bytemuck::pod_collect_to_vec::<u8, f32>(r);
            let st = bytemuck::pod_collect_to_vec::<u8, u32>(&s[..m.rows * 4]);
            let st: Result<Vec<RowStatus>> = st.into_iter().map(RowStatus::from_code).collect();
            Ok((rows, st?))
        })?
    }

    /// Runs `matmul` alone (for tests): returns C (params.m × params.ldc) after C (+)= A · B,
    /// with C starting as `c_init` (or poison).
    pub fn matmul(
        &self,
        params: MatmulParams,
        a: &[f32],
        b: &[u8],
        c_init: Option<&[f32]>,
    ) -> Result<Vec<f32>> {
        let g = &self.gpu;
        let c_bytes = (params.m as usize * params.ldc as usize * 4) as u64;
        let a_buf = g.storage_buffer("matmul a", (a.len() * 4) as u64);
        let b_buf = g.storage_buffer("matmul b", b.len() as u64);
        let c_buf = g.storage_buffer("matmul c", c_bytes);
        g.upload(&a_buf, bytemuck::cast_slice(a));
        g.upload(&b_buf, b);
        match c_init {
            Some(c) => g.upload(&c_buf, bytemuck::cast_slice(c)),
            None => self.poison(&[&c_buf]),
        }
        let mut arena = ParamArena::new(&g.device, 1);
        let mut enc = self.encoder("matmul");
        let buffers = MatmulBuffers {
            a: &a_buf,
            b: &b_buf,
            c: &c_buf,
        };
        let mut rec = Recorder {
            device: &g.device,
            queue: &g.queue,
            encoder: &mut enc,
            arena: &mut arena,
        };
        self.kernels.matmul.encode(&mut rec, params, buffers);
        let rb = Readback::new(g, "matmul readback", c_bytes);
        enc.copy_buffer_to_buffer(&c_buf, 0, rb.buffer(), 0, c_bytes);
        self.submit(enc, &mut arena)?;
        rb.read(g, c_bytes, bytemuck::pod_collect_to_vec::<u8, f32>)
    }

    /// Runs `topk` alone over a score matrix (rows × cols) fed in column tiles of `tile_cols`
    /// (for tests: exact ties, tile boundaries).
    pub fn top_k_scores(
        &self,
        scores: &[f32],
        rows: usize,
        cols: usize,
        k: usize,
        tile_cols: usize,
    ) -> Result<Selection> {
        if !selectable(k) || k > cols || tile_cols < k || scores.len() != rows * cols {
            return Err(Error::Argument(format!(
                "top_k_scores: rows {rows}, cols {cols}, k {k}, tile {tile_cols}"
            )));
        }
        let g = &self.gpu;
        let tile = g.storage_buffer("topk scores", (rows * tile_cols * 4) as u64);
        let best_score = g.storage_buffer("topk best scores", (rows * k * 4) as u64);
        let best_index = g.storage_buffer("topk best indices", (rows * k * 4) as u64);
        self.poison(&[&best_score, &best_index]);
        let mut arena = ParamArena::new(&g.device, 1);
        for c0 in (0..cols).step_by(tile_cols) {
            let c1 = (c0 + tile_cols).min(cols);
            let packed: Vec<f32> = (0..rows)
                .flat_map(|r| scores[r * cols + c0..r * cols + c1].iter().copied())
                .collect();
            g.upload(&tile, bytemuck::cast_slice(&packed));
            let mut enc = self.encoder("topk tile");
            let params =
                TopKParams::new(rows as u32, (c1 - c0) as u32, c0 as u32, k as u32, c0 > 0);
            let buffers = TopKBuffers {
                scores: &tile,
                best_score: &best_score,
                best_index: &best_index,
            };
            let mut rec = Recorder {
                device: &g.device,
                queue: &g.queue,
                encoder: &mut enc,
                arena: &mut arena,
            };
            self.kernels.topk.encode(&mut rec, params, buffers);
            self.submit(enc, &mut arena)?;
        }
        self.read_selection(&best_score, &best_index, rows * k, k)
    }

    /// Reads `n` best scores and indices back as a selection of `k` per row (weights = scores).
    fn read_selection(
        &self,
        best_score: &wgpu::Buffer,
        best_index: &wgpu::Buffer,
        n: usize,
        k: usize,
    ) -> Result<Selection> {
        let g = &self.gpu;
        let n = (n * 4) as u64;
        let rb = Readback::new(g, "topk readback", 2 * n);
        let mut enc = self.encoder("topk readback");
        enc.copy_buffer_to_buffer(best_score, 0, rb.buffer(), 0, n);
        enc.copy_buffer_to_buffer(best_index, 0, rb.buffer(), n, n);
        g.checked("submitting GPU work", || g.queue.submit([enc.finish()]))?;
        rb.read(g, 2 * n, |bytes| {
            let (s, i) = bytes.split_at(n as usize);
            let scores: Vec<f32> = bytemuck::pod_collect_to_vec(s);
            Selection {
                k,
                weights: scores.clone(),
                scores,
                indices: bytemuck::pod_collect_to_vec(i),
            }
        })
    }
}
