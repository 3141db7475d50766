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
// Precision: source decoded to f32; one f32 multiply-add chain per element that starts at numer
// (accumulate = 1) or 0 and takes the tile's selections in ascending index order, so over tiles
// in order every row's selections are added in ascending index order whatever the tiling.
// Bounds: columns > dim and rows ≥ params.rows skip; accumulate = 0 overwrites numer.
// Composed after common.wgsl (status codes, dtypes, decode_word, is_finite).

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

const NONE: u32 = 0xffffffffu;

// The row's selections as stored (tile-relative row, or NONE when outside the tile)…
var<workgroup> staged_row: array<u32, WG>;
var<workgroup> staged_w: array<f32, WG>;
// …and the ones inside the tile in ascending index order, then NONE.
var<workgroup> local_row: array<u32, WG>;
var<workgroup> local_w: array<f32, WG>;

fn decode(i: u32) -> f32 {
    return decode_word(params.dtype, source[word_of(params.dtype, i)], i);
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
    // Stage this row's selections, then place each one of this tile at its rank by index
    // (the indices of a row are distinct).
    if lid < params.k {
        let idx = best_index[row * params.k + lid];
        let inside = idx >= params.row_offset && idx - params.row_offset < params.tile_rows;
        staged_row[lid] = select(NONE, idx - params.row_offset, inside);
        staged_w[lid] = weight[row * params.k + lid];
        local_row[lid] = NONE;
    }
    workgroupBarrier();
    if lid < params.k {
        let r = staged_row[lid];
        if r != NONE {
            var rank = 0u;
            for (var t = 0u; t < params.k; t++) {
                rank += select(0u, 1u, staged_row[t] < r);
            }
            local_row[rank] = r;
            local_w[rank] = staged_w[lid];
        }
    }
    workgroupBarrier();
    let col = wg.x * WG + lid;
    if col > params.dim {
        return;
    }
    let out = row * (params.dim + 1u) + col;
    var acc = 0.0;
    if params.accumulate == 1u {
        acc = numer[out];
    }
    for (var t = 0u; t < params.k; t++) {
        let r = local_row[t];
        if r == NONE {
            break;
        }
        var e = 1.0;
        if col < params.dim {
            e = decode(r * params.dim + col);
        }
        acc = fma(local_w[t], e, acc);
    }
    numer[out] = acc;
}
