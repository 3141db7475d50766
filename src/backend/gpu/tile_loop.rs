//! The tile loop of one run: [`Flow`] owns the open encoder, the uniform arena, the submission
//! in flight, the host staging buffers and the stage timings; [`Run`] holds what every stage of
//! a run reads (problem, buffers, inputs, overlap tiles) beside the flow, and walks the missing
//! tiles: gather + upload, normalise, combine (`dense_mode` or `topk_mode`), read back, hand to the sink.

use super::buffers::Buffers;
use super::engine::{u32_of, Engine};
use crate::backend::api::{self, stage, ClpBackend, Stats, TileOut};
use crate::error::Result;
use crate::kernels::{NormalizeBuffers, NormalizeParams, ParamArena, Recorder};
use crate::method::{FinishRule, Weighting};
use crate::plan::{BufferTable, Problem, TilePlan};
use crate::rows::RowSet;
use std::time::Instant;

impl ClpBackend for Engine {
    fn describe(&self) -> String {
        self.gpu.adapter().to_string()
    }
    fn tile_plan(&self, problem: &Problem) -> Result<TilePlan> {
        Engine::tile_plan(self, problem)
    }
    fn run(
        &self,
        h_missing: &RowSet,
        h_overlap: &RowSet,
        e_overlap: &RowSet,
        weighting: &Weighting,
        sink: &mut dyn FnMut(&TileOut) -> Result<()>,
    ) -> Result<Stats> {
        let inputs = Inputs {
            hm: h_missing,
            ho: h_overlap,
            eo: e_overlap,
            weighting,
        };
        self.run_streamed(inputs, sink)
    }
}

/// The inputs of one run.
#[derive(Clone, Copy)]
pub(super) struct Inputs<'r> {
    /// Helper rows of the missing tokens.
    pub hm: &'r RowSet<'r>,
    /// Helper rows of the overlapping tokens.
    pub ho: &'r RowSet<'r>,
    /// Source rows of the overlapping tokens.
    pub eo: &'r RowSet<'r>,
    /// How selections become weights.
    pub weighting: &'r Weighting,
}

/// Which host staging buffer a gather goes through.
#[derive(Clone, Copy)]
pub(super) enum Host {
    Missing,
    Overlap,
    Source,
}

/// Host staging buffers of one run, reused for every tile.
#[derive(Default)]
struct Staging {
    hm: Vec<u8>,
    ho: Vec<u8>,
    eo: Vec<u8>,
}

/// Uniform slots per submission: the most dispatches recorded between two submits (a missing
/// tile's normalisation plus the first overlap tile's normalise, similarity and top-k).
const ARENA_SLOTS: u32 = 8;

/// Encoding state of one run: the open encoder, the uniform arena, the last submission, the
/// staging buffers and the stage timings.
pub(super) struct Flow<'e> {
    engine: &'e Engine,
    enc: wgpu::CommandEncoder,
    arena: ParamArena,
    in_flight: Option<wgpu::SubmissionIndex>,
    staging: Staging,
    pub stats: Stats,
}

impl<'e> Flow<'e> {
    fn new(engine: &'e Engine) -> Flow<'e> {
        Flow {
            engine,
            enc: engine.encoder("clp"),
            arena: ParamArena::new(&engine.gpu.device, ARENA_SLOTS),
            in_flight: None,
            staging: Staging::default(),
            stats: Stats::default(),
        }
    }

    /// Where the next kernel records.
    pub fn rec(&mut self) -> Recorder<'_> {
        Recorder {
            device: &self.engine.gpu.device,
            queue: &self.engine.gpu.queue,
            encoder: &mut self.enc,
            arena: &mut self.arena,
        }
    }

    /// The open encoder (for copies).
    pub fn encoder(&mut self) -> &mut wgpu::CommandEncoder {
        &mut self.enc
    }

    /// Gathers rows `start..end` of `set` through staging buffer `host` and queues them into
    /// `buffer`.
    pub fn load(
        &mut self,
        set: &RowSet,
        (start, end): (usize, usize),
        host: Host,
        buffer: &wgpu::Buffer,
    ) -> Result<()> {
        let staging = match host {
            Host::Missing => &mut self.staging.hm,
            Host::Overlap => &mut self.staging.ho,
            Host::Source => &mut self.staging.eo,
        };
        self.stats
            .time(stage::GATHER, || set.gather(start, end, staging))?;
        self.stats.gathered_bytes += staging.len() as u64;
        let gpu = &self.engine.gpu;
        self.stats
            .time(stage::UPLOAD, || gpu.upload(buffer, staging));
        self.stats.uploaded_bytes += staging.len() as u64;
        Ok(())
    }

    /// Submits the open encoder. The call is timed as GPU time: some drivers (lavapipe) run
    /// the work inside the submit call itself.
    fn submit(&mut self) -> Result<wgpu::SubmissionIndex> {
        let t = Instant::now();
        let enc = std::mem::replace(&mut self.enc, self.engine.encoder("clp"));
        let gpu = &self.engine.gpu;
        let idx = gpu.checked("submitting GPU work", || gpu.queue.submit([enc.finish()]))?;
        self.arena.reset();
        if !self.engine.options.time_stages {
            self.stats.add(stage::GPU, t.elapsed());
        }
        Ok(idx)
    }

    fn wait(&mut self, idx: Option<wgpu::SubmissionIndex>, stage: &str) -> Result<()> {
        let t = Instant::now();
        self.engine.gpu.wait_for(idx)?;
        self.stats.add(stage, t.elapsed());
        Ok(())
    }

    /// With `time_stages`, submits and waits, charging the GPU time to `stage`; otherwise keeps
    /// encoding.
    pub fn stage_end(&mut self, stage: &str) -> Result<()> {
        if !self.engine.options.time_stages {
            return Ok(());
        }
        let t = Instant::now();
        let idx = self.submit()?;
        self.engine.gpu.wait_for(Some(idx))?;
        self.in_flight = None;
        self.stats.add(stage, t.elapsed());
        Ok(())
    }

    /// Submits the open encoder, then waits for the one before it: at most two submissions
    /// (and their queued uploads) are in flight, and the host gathers tile n+1 while the GPU
    /// works on tile n.
    pub fn submit_bounded(&mut self) -> Result<()> {
        let idx = self.submit()?;
        if let Some(prev) = self.in_flight.replace(idx) {
            self.wait(Some(prev), stage::GPU)?;
        }
        Ok(())
    }

    /// Submits the open encoder and waits for all work.
    pub fn submit_and_drain(&mut self) -> Result<()> {
        let idx = self.submit()?;
        self.in_flight = None;
        self.wait(Some(idx), stage::GPU)
    }
}

/// One run: what every stage reads, and the flow it records into.
pub(super) struct Run<'r> {
    pub engine: &'r Engine,
    pub p: Problem,
    pub b: Buffers,
    pub inputs: Inputs<'r>,
    /// How finished rows are divided and bounded (computed once, before the first tile).
    pub rule: FinishRule,
    /// Overlap tiles `(start, end)`.
    pub o_tiles: Vec<(usize, usize)>,
    pub flow: Flow<'r>,
}

/// Host copies of one missing tile's results, reused for every tile.
struct HostTile {
    dim: usize,
    k: usize,
    rows: Vec<f32>,
    status: Vec<u32>,
    scores: Vec<f32>,
    indices: Vec<u32>,
    weights: Vec<f32>,
}

impl HostTile {
    fn new(m_rows: usize, dim: usize, k: usize) -> HostTile {
        HostTile {
            dim,
            k,
            rows: vec![0.0; m_rows * dim],
            status: vec![0; m_rows],
            scores: vec![0.0; m_rows * k],
            indices: vec![0; m_rows * k],
            weights: vec![0.0; m_rows * k],
        }
    }

    /// The first `mt` rows, as a tile starting at missing row `start`.
    fn out(&self, start: usize, mt: usize) -> TileOut<'_> {
        let (dim, k) = (self.dim, self.k);
        TileOut {
            start,
            dim,
            rows: &self.rows[..mt * dim],
            status: &self.status[..mt],
            k,
            scores: &self.scores[..mt * k],
            indices: &self.indices[..mt * k],
            weights: &self.weights[..mt * k],
        }
    }
}

/// Byte sizes of one tile's readback regions, laid out as
/// rows | status | top-k scores | top-k indices | weights.
struct ReadbackLayout {
    rows: u64,
    status: u64,
    sel: u64,
}

impl ReadbackLayout {
    fn new(mt: usize, dim: usize, k: usize) -> ReadbackLayout {
        ReadbackLayout {
            rows: (mt * dim * 4) as u64,
            status: (mt * 4) as u64,
            sel: (mt * k * 4) as u64,
        }
    }

    fn total(&self) -> u64 {
        self.rows + self.status + 3 * self.sel
    }
}

/// Copies little-endian 4-byte words into `dst`.
fn copy_words<T: bytemuck::Pod>(bytes: &[u8], dst: &mut [T]) {
    bytemuck::cast_slice_mut::<T, u8>(dst).copy_from_slice(bytes);
}

impl Engine {
    /// Streams one CLP problem tile by tile, handing each finished missing tile to `sink`.
    pub(super) fn run_streamed(
        &self,
        inputs: Inputs,
        sink: &mut dyn FnMut(&TileOut) -> Result<()>,
    ) -> Result<Stats> {
        let p = api::problem(inputs.hm, inputs.ho, inputs.eo, inputs.weighting)?;
        if p.missing == 0 {
            return Ok(Stats::default());
        }
        let tp = self.tile_plan(&p)?;
        let rule = FinishRule::for_run(inputs.weighting, inputs.eo)?;
        let buffers = BufferTable::new(&p, tp.m_rows, tp.o_rows);
        let (b, mut flow) = self.gpu.checked("allocating the tile buffers", || {
            (Buffers::new(&self.gpu, &buffers), Flow::new(self))
        })?;
        flow.stats.tiles = (tp.m_rows, tp.o_rows);
        flow.stats.buffer_bytes = tp.gpu_bytes;
        let mut run = Run {
            engine: self,
            p,
            b,
            inputs,
            rule,
            o_tiles: api::tiles(p.overlap, tp.o_rows),
            flow,
        };
        if p.k.is_none() {
            run.accumulate_gram()?;
        }
        let mut host = HostTile::new(tp.m_rows, p.source_dim, p.k.unwrap_or(0));
        for (m0, m1) in api::tiles(p.missing, tp.m_rows) {
            run.missing_tile((m0, m1))?;
            run.read_tile(m1 - m0, &mut host)?;
            let t = Instant::now();
            sink(&host.out(m0, m1 - m0))?;
            run.flow.stats.add(stage::WRITE, t.elapsed());
        }
        Ok(run.flow.stats)
    }
}

impl Run<'_> {
    /// Normalises the overlap helper rows uploaded into `slot` (`ot` rows) into `ho_hat`.
    pub(super) fn normalize_overlap(&mut self, slot: usize, ot: u32) -> Result<()> {
        let (e, b) = (self.engine, &self.b);
        let norm = NormalizeParams {
            rows: ot,
            cols: self.p.helper_dim as u32,
            dtype: self.inputs.ho.dtype().shader_code(),
            _pad: 0,
        };
        let norm_buffers = NormalizeBuffers {
            src: &b.ho_raw[slot],
            dst: &b.ho_hat,
            status: &b.ho_status,
        };
        e.kernels
            .normalize
            .encode(&mut self.flow.rec(), norm, norm_buffers);
        self.flow.stage_end(stage::NORMALISE)
    }

    /// Uploads and normalises missing rows `m0..m1`, then combines them into output rows.
    fn missing_tile(&mut self, (m0, m1): (usize, usize)) -> Result<()> {
        let (e, b) = (self.engine, &self.b);
        e.poison(&[&b.hm_hat, &b.hm_status, &b.numer, &b.out, &b.status]);
        self.flow
            .load(self.inputs.hm, (m0, m1), Host::Missing, &b.hm_raw)?;
        let params = NormalizeParams {
            rows: u32_of(m1 - m0, "rows")?,
            cols: u32_of(self.p.helper_dim, "helper dim")?,
            dtype: self.inputs.hm.dtype().shader_code(),
            _pad: 0,
        };
        let buffers = NormalizeBuffers {
            src: &b.hm_raw,
            dst: &b.hm_hat,
            status: &b.hm_status,
        };
        e.kernels
            .normalize
            .encode(&mut self.flow.rec(), params, buffers);
        self.flow.stage_end(stage::NORMALISE)?;
        match self.p.k {
            Some(k) => {
                let b = &self.b;
                e.poison(&[&b.scores, &b.best_score, &b.best_index, &b.weight, &b.guard]);
                self.select_and_combine((m0, m1), k)?;
            }
            None => self.dense_rows(m1 - m0),
        }
        self.flow.stage_end(stage::COMBINE)
    }

    /// Copies the tile's results to the readback buffer, submits, waits and reads them into
    /// `host`.
    fn read_tile(&mut self, mt: usize, host: &mut HostTile) -> Result<()> {
        let (ds, k) = (host.dim, host.k);
        let len = ReadbackLayout::new(mt, ds, k);
        let b = &self.b;
        let rb = b.readback.buffer();
        let enc = self.flow.encoder();
        enc.copy_buffer_to_buffer(&b.out, 0, rb, 0, len.rows);
        enc.copy_buffer_to_buffer(&b.status, 0, rb, len.rows, len.status);
        if k > 0 {
            let off = len.rows + len.status;
            enc.copy_buffer_to_buffer(&b.best_score, 0, rb, off, len.sel);
            enc.copy_buffer_to_buffer(&b.best_index, 0, rb, off + len.sel, len.sel);
            enc.copy_buffer_to_buffer(&b.weight, 0, rb, off + 2 * len.sel, len.sel);
        }
        self.flow.submit_and_drain()?;
        let t = Instant::now();
        b.readback.read(&self.engine.gpu, len.total(), |bytes| {
            let (r, rest) = bytes.split_at(len.rows as usize);
            let (st, rest) = rest.split_at(len.status as usize);
            let (sc, rest) = rest.split_at(len.sel as usize);
            let (ix, wt) = rest.split_at(len.sel as usize);
            copy_words(r, &mut host.rows[..mt * ds]);
            copy_words(st, &mut host.status[..mt]);
            copy_words(sc, &mut host.scores[..mt * k]);
            copy_words(ix, &mut host.indices[..mt * k]);
            copy_words(wt, &mut host.weights[..mt * k]);
        })?;
        self.flow.stats.add(stage::READBACK, t.elapsed());
        self.flow.stats.readback_bytes += len.total();
        Ok(())
    }
}
