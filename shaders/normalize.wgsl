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
    switch params.dtype {
        case 1u: {
            let h = unpack2x16float(src[i >> 1u]);
            return select(h.x, h.y, (i & 1u) == 1u);
        }
        case 2u: {
            let w = src[i >> 1u];
            return bitcast<f32>(select(w << 16u, w & 0xffff0000u, (i & 1u) == 1u));
        }
        default: {
            return bitcast<f32>(src[i]);
        }
    }
}

fn is_finite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
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
    var code = 0u;
    if any_bad != 0u {
        code = 2u;
    } else if max_abs == 0.0 {
        code = 1u;
    }
    let inv_max = select(0.0, 1.0 / max_abs, code == 0u);
    var ss = 0.0;
    for (var c = lid; c < params.cols && code == 0u; c += WG) {
        let y = decode(base + c) * inv_max;
        ss += y * y;
    }
    partial[lid] = ss;
    reduce(lid, 1u);
    let inv_norm = select(0.0, inverseSqrt(partial[0]), code == 0u);
    for (var c = lid; c < params.cols; c += WG) {
        dst[base + c] = select(0.0, (decode(base + c) * inv_max) * inv_norm, code == 0u);
    }
    if lid == 0u {
        status[row] = code;
    }
}
