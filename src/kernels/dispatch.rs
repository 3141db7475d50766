//! Dispatch helpers every kernel shares: the uniform arena a submission's parameter blocks go
//! into, and the 2-D grid that covers more rows than one dispatch dimension allows. They take
//! the device or queue they need as arguments, so kernels never reach into the backend.

use crate::plan::MAX_WORKGROUPS_PER_DIMENSION;

/// Uniform parameter blocks for the dispatches of one submission, one 256-byte slot each.
///
/// A single uniform rewritten between dispatches would be wrong: queued writes land before the
/// whole submission runs, so every dispatch would see the last value. Slots restart at 0 after
/// every submit (queue order makes the reuse safe).
pub struct ParamArena {
    buffer: wgpu::Buffer,
    slots: u32,
    next: u32,
}

/// Alignment of a uniform binding offset that every adapter accepts.
const PARAM_SLOT_BYTES: u64 = 256;

impl ParamArena {
    /// An arena of `slots` parameter blocks.
    pub fn new(device: &wgpu::Device, slots: u32) -> ParamArena {
        let buffer = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("params arena"),
            size: PARAM_SLOT_BYTES * slots as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        ParamArena {
            buffer,
            slots,
            next: 0,
        }
    }

    /// Queues `params` into the next slot and returns its binding.
    pub fn push<P: bytemuck::Pod>(
        &mut self,
        queue: &wgpu::Queue,
        params: &P,
    ) -> wgpu::BufferBinding<'_> {
        assert!(
            self.next < self.slots,
            "more dispatches in one submission than arena slots"
        );
        let bytes = bytemuck::bytes_of(params);
        assert!(bytes.len() as u64 <= PARAM_SLOT_BYTES);
        let offset = self.next as u64 * PARAM_SLOT_BYTES;
        queue.write_buffer(&self.buffer, offset, bytes);
        self.next += 1;
        wgpu::BufferBinding {
            buffer: &self.buffer,
            offset,
            size: std::num::NonZeroU64::new(bytes.len() as u64),
        }
    }

    /// Marks the submission done: slots may be reused.
    pub fn reset(&mut self) {
        self.next = 0;
    }
}

/// Workgroup counts `(x, y)` covering `n` one-dimensional items within the 65,535-per-dimension
/// limit; shaders recover the item as `x + y * num_workgroups.x`. `n = 0` gives `(0, 0)`, which
/// the dispatch helper skips.
pub fn grid_2d(n: u32) -> (u32, u32) {
    const MAX: u32 = MAX_WORKGROUPS_PER_DIMENSION;
    if n <= MAX {
        (n, (n > 0) as u32)
    } else {
        (MAX, n.div_ceil(MAX))
    }
}
