// weights: turns each row's selected similarities (best first) into combination weights.
//
// mode 0, CLP: w = cos (negative cosines kept).
// mode 1, softmax: w = exp((cos - cos_max) / temperature) (cos_max is the first entry).
// mode 2, sparsemax: w = max(cos - tau, 0), tau from the longest prefix j (entries sorted
//         descending) with 1 + j * cos_j > sum_{i <= j} cos_i.
// mode 3: weights were written by the host (OMP); only the guard scale is computed.
// The combine stage accumulates Σ w·e together with Σ w, and finish divides (modes 0-2; OMP's
// rows are kept as solved). This stage also records Σ|w|, the scale the finish stage's
// cancellation guard compares |Σ w| with (OMP: a zero Σ|w| means no atoms).
// Bindings (group 0): 0 params (uniform), 1 best_score (rows × k f32, read), 2 weight (rows × k
// f32, read_write), 3 guard_scale (rows f32, write).
// Dispatch: ceil(rows / WG) workgroups of WG, one invocation per row (k ≤ MAX_TOP_K terms
// each). Overrides (no defaults; set from Rust): WG = WEIGHTS_WORKGROUP.
// Precision: f32, summed in index order (deterministic). Bounds: rows ≥ params.rows skip.
// Composed after common.wgsl (status codes, dtypes, decode_word, is_finite).

struct Params {
    rows: u32,
    k: u32,
    mode: u32,
    temperature: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> best_score: array<f32>;
@group(0) @binding(2) var<storage, read_write> weight: array<f32>;
@group(0) @binding(3) var<storage, read_write> guard_scale: array<f32>;

override WG: u32;

@compute @workgroup_size(WG)
fn weights(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = gid.x;
    if row >= params.rows {
        return;
    }
    let base = row * params.k;
    var tau = 0.0;
    if params.mode == 2u {
        var cum = 0.0;
        for (var t = 0u; t < params.k; t++) {
            let z = best_score[base + t];
            cum += z;
            let n = f32(t + 1u);
            if 1.0 + n * z > cum {
                tau = (cum - 1.0) / n;
            }
        }
    }
    let top = best_score[base];
    var abs_sum = 0.0;
    for (var t = 0u; t < params.k; t++) {
        let s = best_score[base + t];
        var w = s;
        switch params.mode {
            case 1u: {
                w = exp((s - top) / params.temperature);
            }
            case 2u: {
                w = max(s - tau, 0.0);
            }
            case 3u: {
                w = weight[base + t];
            }
            default: {}
        }
        weight[base + t] = w;
        abs_sum += abs(w);
    }
    guard_scale[row] = abs_sum;
}
