// combine: accumulates one overlap tile's share of each missing row's weighted source sum.
//
// numer[r][c] (+)= Σ_t w[r][t] · E[index[r][t] - row_offset][c] over the selected t whose index
// falls in this tile (row_offset ≤ index < row_offset + tile_rows), for c < dim; the extra
// column c = dim accumulates Σ_t w[r][t] over the same t (the normaliser).
// Bindings (group 0): 0 params (uniform), 1 best_index (rows × k u32), 2 weight (rows × k f32),
// 3 source (tile_rows × dim elements of params.dtype packed in u32 words), 4 numer (rows ×
// (dim + 1) f32, read_write).
// Dispatch: workgroups (ceil((dim + 1) / WG), rows); one invocation per output column.
// Overrides (no defaults; set from Rust): WG = COMBINE_WORKGROUP, at least k (each invocation
// stages one selection).
// Precision: source decoded to f32, f32 multiply-add in t order, tiles in order (deterministic).
// Bounds: columns > dim and rows ≥ params.rows skip; accumulate = 0 overwrites numer.

struct Params {
    rows: u32,
    k: u32,
    dim: u32,
    dtype: u32, // 0 f32, 1 f16, 2 bf16
    row_offset: u32,
    tile_rows: u32,
    accumulate: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> best_index: array<u32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> source: array<u32>;
@group(0) @binding(4) var<storage, read_write> numer: array<f32>;

override WG: u32;

var<workgroup> local_row: array<u32, WG>;
var<workgroup> local_w: array<f32, WG>;

fn decode(i: u32) -> f32 {
    switch params.dtype {
        case 1u: {
            let h = unpack2x16float(source[i >> 1u]);
            return select(h.x, h.y, (i & 1u) == 1u);
        }
        case 2u: {
            let w = source[i >> 1u];
            return bitcast<f32>(select(w << 16u, w & 0xffff0000u, (i & 1u) == 1u));
        }
        default: {
            return bitcast<f32>(source[i]);
        }
    }
}

@compute @workgroup_size(WG)
fn combine(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = wg.y;
    if row >= params.rows {
        return;
    }
    // Stage this row's selections; local_row = tile-relative row or 0xffffffff if elsewhere.
    if lid < params.k {
        let idx = best_index[row * params.k + lid];
        let inside = idx >= params.row_offset && idx - params.row_offset < params.tile_rows;
        local_row[lid] = select(0xffffffffu, idx - params.row_offset, inside);
        local_w[lid] = weight[row * params.k + lid];
    }
    workgroupBarrier();
    let col = wg.x * WG + lid;
    if col > params.dim {
        return;
    }
    var acc = 0.0;
    for (var t = 0u; t < params.k; t++) {
        let r = local_row[t];
        if r != 0xffffffffu {
            var e = 1.0;
            if col < params.dim {
                e = decode(r * params.dim + col);
            }
            acc = fma(local_w[t], e, acc);
        }
    }
    let out = row * (params.dim + 1u) + col;
    if params.accumulate == 1u {
        acc = numer[out] + acc;
    }
    numer[out] = acc;
}
