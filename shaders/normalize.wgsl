// normalize: L2-normalises each row of a matrix and records the row's status.
//
// Bindings (group 0): 0 params (uniform), 1 src (rows × cols elements of params.dtype, packed in
// u32 words), 2 dst (rows × cols f32, the normalised rows), 3 status (rows u32: 0 ok, 1 all
// zeros, 2 contains NaN/Inf).
// Dispatch: one workgroup of WG per row; row = workgroup_id.x + workgroup_id.y *
// num_workgroups.x. Overrides (no defaults; set from Rust): WG = NORMALIZE_WORKGROUP, a power
// of two.
// Precision: inputs decoded to f32; the row is scaled by its max-abs before squaring, so the sum
// of squares neither overflows nor underflows; reductions are fixed-order trees (deterministic).
// Bounds: rows ≥ params.rows return at once; zero and non-finite rows are written as zeros.
// Composed after common.wgsl (status codes, dtypes, decode_word, is_finite).

struct Params {
    rows: u32,
    cols: u32,
    dtype: u32, // 0 f32, 1 f16, 2 bf16
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<storage, read_write> status: array<u32>;

override WG: u32;

var<workgroup> partial: array<f32, WG>;
var<workgroup> bad: atomic<u32>;

fn decode(i: u32) -> f32 {
    return decode_word(params.dtype, src[word_of(params.dtype, i)], i);
}

// Tree reduction of partial[0..WG] with op 0 = max, 1 = sum; result in partial[0].
fn reduce(lid: u32, op: u32) {
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        workgroupBarrier();
        if lid < s {
            if op == 0u {
                partial[lid] = max(partial[lid], partial[lid + s]);
            } else {
                partial[lid] = partial[lid] + partial[lid + s];
            }
        }
    }
    workgroupBarrier();
}

@compute @workgroup_size(WG)
fn normalize(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = wg.x + wg.y * nwg.x;
    if row >= params.rows {
        return;
    }
    let base = row * params.cols;
    if lid == 0u {
        atomicStore(&bad, 0u);
    }
    var m = 0.0;
    var nonfinite = 0u;
    for (var c = lid; c < params.cols; c += WG) {
        let x = decode(base + c);
        if is_finite(x) {
            m = max(m, abs(x));
        } else {
            nonfinite = 1u;
        }
    }
    partial[lid] = m;
    workgroupBarrier();
    if nonfinite != 0u {
        atomicOr(&bad, 1u);
    }
    reduce(lid, 0u);
    let max_abs = partial[0];
    let any_bad = atomicLoad(&bad);
    workgroupBarrier();

    // No early return past this point: every invocation must reach the barriers in reduce().
    var code = STATUS_OK;
    if any_bad != 0u {
        code = STATUS_NON_FINITE_HELPER_ROW;
    } else if max_abs == 0.0 {
        code = STATUS_ZERO_HELPER_ROW;
    }
    let inv_max = select(0.0, 1.0 / max_abs, code == STATUS_OK);
    var ss = 0.0;
    for (var c = lid; c < params.cols && code == STATUS_OK; c += WG) {
        let y = decode(base + c) * inv_max;
        ss += y * y;
    }
    partial[lid] = ss;
    reduce(lid, 1u);
    let inv_norm = select(0.0, inverseSqrt(partial[0]), code == STATUS_OK);
    for (var c = lid; c < params.cols; c += WG) {
        dst[base + c] = select(0.0, (decode(base + c) * inv_max) * inv_norm, code == STATUS_OK);
    }
    if lid == 0u {
        status[row] = code;
    }
}
