// finish: turns each row's weighted sum into its output row, or rejects the row.
//
// divide = 1 (clp, softmax, sparsemax): out[r][c] = numer[r][c] / numer[r][dim].
// divide = 0 (OMP, coefficients as solved): out[r][c] = numer[r][c], no division.
// A rejected row is all zeros and status[r] says why: 1 helper row all zeros, 2 helper row not
// finite (both from h_status), 3 weights cancel (divide = 1: |Σw| ≤ tolerance × scale;
// divide = 0: scale = 0, every weight zero), 4 a result would not be finite, 5 (bound_norm = 1)
// the row's L2 norm lies outside [norm_lo, norm_hi] (the overlap source rows' norms).
// The scale is guard[r] when scale_mode = 0 (top-k: Σ|w| per row) or, when scale_mode = 1
// (dense), ‖column scale_col of guard‖ over scale_count rows of stride scale_stride (‖Σ_j ĥ_j‖,
// read from the Gram matrix). No NaN or Inf is ever written.
// Bindings (group 0): 0 params (uniform), 1 numer (rows × (dim + 1) f32), 2 h_status (rows
// u32), 3 guard (f32), 4 out (rows × dim f32, write), 5 status (rows u32, write).
// Dispatch: one workgroup of WG per row; row = workgroup_id.x + workgroup_id.y *
// num_workgroups.x. Overrides (no defaults; set from Rust): WG = FINISH_WORKGROUP, a power of
// two. Precision: f32 division; norms max-abs scaled as in normalize; every reduction is a
// fixed-order tree over fixed strided partials (deterministic).
// Composed after common.wgsl (status codes, dtypes, decode_word, is_finite).

struct Params {
    rows: u32,
    dim: u32,
    scale_mode: u32,
    scale_count: u32,
    scale_stride: u32,
    scale_col: u32,
    tolerance: f32,
    divide: u32,
    bound_norm: u32,
    norm_lo: f32,
    norm_hi: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> numer: array<f32>;
@group(0) @binding(2) var<storage, read> h_status: array<u32>;
@group(0) @binding(3) var<storage, read> guard: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read_write> status: array<u32>;

override WG: u32;

var<workgroup> partial: array<f32, WG>;
var<workgroup> bad: atomic<u32>;

// The max (take_max) or sum of partial[0..WG], as a fixed tree; every invocation gets it and
// partial may be reused afterwards.
fn reduce(lid: u32, take_max: bool) -> f32 {
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        workgroupBarrier();
        if lid < s {
            if take_max {
                partial[lid] = max(partial[lid], partial[lid + s]);
            } else {
                partial[lid] = partial[lid] + partial[lid + s];
            }
        }
    }
    workgroupBarrier();
    let r = partial[0];
    workgroupBarrier();
    return r;
}

// ‖column scale_col of guard‖ over scale_count rows (max-abs scaled).
fn column_norm(lid: u32) -> f32 {
    var m = 0.0;
    for (var i = lid; i < params.scale_count; i += WG) {
        m = max(m, abs(guard[i * params.scale_stride + params.scale_col]));
    }
    partial[lid] = m;
    let max_abs = reduce(lid, true);
    let inv = select(0.0, 1.0 / max_abs, max_abs > 0.0);
    var ss = 0.0;
    for (var i = lid; i < params.scale_count; i += WG) {
        let y = guard[i * params.scale_stride + params.scale_col] * inv;
        ss += y * y;
    }
    partial[lid] = ss;
    return max_abs * sqrt(reduce(lid, false));
}

// ‖numer[row][0..dim] / d‖ (max-abs scaled; not finite when a value is not).
fn row_norm(lid: u32, base: u32, d: f32) -> f32 {
    var m = 0.0;
    for (var c = lid; c < params.dim; c += WG) {
        m = max(m, abs(numer[base + c] / d));
    }
    partial[lid] = m;
    let max_abs = reduce(lid, true);
    let inv = select(0.0, 1.0 / max_abs, max_abs > 0.0);
    var ss = 0.0;
    for (var c = lid; c < params.dim; c += WG) {
        let y = numer[base + c] / d * inv;
        ss += y * y;
    }
    partial[lid] = ss;
    return max_abs * sqrt(reduce(lid, false));
}

@compute @workgroup_size(WG)
fn finish(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = wg.x + wg.y * nwg.x;
    if row >= params.rows {
        return;
    }
    if lid == 0u {
        atomicStore(&bad, 0u);
    }
    workgroupBarrier(); // no lane may flag a bad value before the flag is cleared
    // Guard scale: per row, or the norm of a column (max-abs scaled, as in normalize).
    var scale = 0.0;
    if params.scale_mode == 0u {
        scale = guard[row];
    } else {
        scale = column_norm(lid);
    }

    let stride = params.dim + 1u;
    let base = row * stride;
    let sum = numer[base + params.dim];
    let d = select(1.0, sum, params.divide == 1u);
    var code = STATUS_OK;
    let hs = h_status[row];
    if hs == STATUS_ZERO_HELPER_ROW || hs == STATUS_NON_FINITE_HELPER_ROW {
        code = hs;
    } else if params.divide == 1u {
        if !(abs(sum) > params.tolerance * scale) || !is_finite(sum) {
            code = STATUS_WEIGHT_SUM_NEAR_ZERO;
        }
    } else if !(scale > 0.0) {
        code = STATUS_WEIGHT_SUM_NEAR_ZERO;
    }
    if code == STATUS_OK {
        for (var c = lid; c < params.dim; c += WG) {
            if !is_finite(numer[base + c] / d) {
                atomicOr(&bad, 1u);
            }
        }
    }
    workgroupBarrier();
    if code == STATUS_OK && atomicLoad(&bad) != 0u {
        code = STATUS_NON_FINITE_RESULT;
    }
    if params.bound_norm == 1u {
        let norm = row_norm(lid, base, d);
        if code == STATUS_OK && !(norm >= params.norm_lo && norm <= params.norm_hi) {
            code = STATUS_NORM_OUT_OF_RANGE;
        }
    }
    for (var c = lid; c < params.dim; c += WG) {
        var v = 0.0;
        if code == STATUS_OK {
            v = numer[base + c] / d;
        }
        out[row * params.dim + c] = v;
    }
    if lid == 0u {
        status[row] = code;
    }
}
