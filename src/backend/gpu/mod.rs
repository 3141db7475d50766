//! Orchestration of the kernels for one CLP problem: plan tiles from the GPU-memory budget,
//! allocate every buffer once, gather each input tile from its [`RowSet`] (memory or file) into a
//! reused host staging buffer, upload it, and hand each finished missing tile to a sink.
//!
//! Top-k mode, per missing tile: normalise it; for each overlap tile, normalise it, compute the
//! similarity tile and merge it into the running top-k; turn the selection into weights; for each
//! overlap tile, accumulate its share of the weighted source sum; divide (OMP: bound the norm)
//! and guard; read back rows, statuses and the selection. At most one similarity tile exists on
//! the device.
//!
//! Dense mode (k = all): G = Ĥ_Oᵀ [E_O | 1] is accumulated over overlap tiles once (its last
//! column is s = Σ_j ĥ_j); each missing tile is then Ĥ_M G divided by its last column
//! (Ĥ_M s = Σ_j c_mj), which is the original CLP formula without the M × O matrix.
//!
//! Every overlap tile is submitted on its own and the host waits for the submission before it,
//! so at most two tiles of uploads are queued (host memory stays bounded) while the host gathers
//! tile n+1 as the GPU works on tile n; uploads alternate between two device slots.
//! `EngineOptions::time_stages` serialises the stages instead, to time each one.
//!
//! Layout: `engine` holds the engine and its options (this file only declares and
//! re-exports); `buffers` allocates the device buffers from the plan's
//! [`crate::plan::BufferTable`]; `tile_loop` is the tile loop over missing tiles (its
//! [`tile_loop::Flow`] owns the encoder, uniform arena, submissions and timings); `dense_mode`
//! and `topk_mode` are the two ways a missing tile is combined; `ops` runs single kernels for
//! tests.

pub mod context;

mod buffers;
mod dense_mode;
mod engine;
mod faults;
mod ops;
mod tile_loop;
mod topk_mode;

pub use context::{list_adapters, quiet_mesa_device_select, AdapterSummary, Gpu, Readback};
pub use engine::{Engine, EngineOptions};
pub use faults::REQUIRED_STORAGE_BUFFERS;
