// weights: turns each row's selected similarities into combination weights.
//
// CLP weighting (the only one so far): w = cos, unnormalised; the combine stage accumulates
// Σ w·e together with Σ w, and finish divides. This stage also records Σ|w|, the scale the
// finish stage's cancellation guard compares |Σ w| with.
// Bindings (group 0): 0 params (uniform), 1 best_score (rows × k f32, read), 2 weight (rows × k
// f32, write), 3 guard_scale (rows f32, write).
// Dispatch: ceil(rows / 64) workgroups of 64, one invocation per row (k ≤ 256 terms each).
// Precision: f32, summed in index order (deterministic). Bounds: rows ≥ params.rows skip.

struct Params {
    rows: u32,
    k: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> best_score: array<f32>;
@group(0) @binding(2) var<storage, read_write> weight: array<f32>;
@group(0) @binding(3) var<storage, read_write> guard_scale: array<f32>;

@compute @workgroup_size(64)
fn weights(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = gid.x;
    if row >= params.rows {
        return;
    }
    var abs_sum = 0.0;
    for (var t = 0u; t < params.k; t++) {
        let w = best_score[row * params.k + t];
        weight[row * params.k + t] = w;
        abs_sum += abs(w);
    }
    guard_scale[row] = abs_sum;
}
