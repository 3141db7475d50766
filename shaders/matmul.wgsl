// matmul: C (m × n) = A (m × k) · B (k × n), or C += A · B when params.accumulate = 1.
//
// Used three ways by the engine: cosine similarity of a missing tile against an overlap tile
// (A = Ĥ_M, B = Ĥ_Oᵀ), the dense-mode Gram product G = Ĥ_Oᵀ [E_O | 1] accumulated over overlap
// tiles, and the dense-mode numerator Ĥ_M · G.
// Bindings (group 0): 0 params (uniform), 1 a (f32, stored row-major, transposed when a_trans),
// 2 b (elements of params.b_dtype packed in u32 words, stored row-major, transposed when
// b_trans), 3 c (f32, row-major with row stride ldc).
// Logical element A[r][t] = a[t * lda + r] if a_trans else a[r * lda + t]; B[t][j] likewise
// with ldb and b_trans. When ones_col = 1, logical column j == b_cols of B reads 1.0 (so the
// last column of C holds the row sums of A), and n = b_cols + 1.
// Dispatch: workgroups (ceil(n / TILE), ceil(m / TILE)); WG_SIDE × WG_SIDE invocations
// (WG_SIDE = TILE / BLOCK), each a BLOCK × BLOCK block of C at rows ty + WG_SIDE i, columns
// tx + WG_SIDE j of the workgroup's TILE × TILE tile; k in steps of TK = WG_SIDE through
// workgroup memory (so each invocation stages BLOCK elements of each tile).
// Overrides (no defaults; set from Rust): TILE = MATMUL_TILE, a multiple of BLOCK; K_BLOCK =
// OVERLAP_BLOCK_ROWS, a multiple of TK; the others derive from TILE.
// Precision: f32 multiply-add in a fixed order (deterministic). K is summed in blocks of
// K_BLOCK counted from t = 0: each block's products are accumulated from zero and then added, in
// order, to a running total that starts at C when accumulate = 1 (else at 0). So a sum over K
// split into dispatches at multiples of K_BLOCK has the same bits as one dispatch over all of K
// (dense mode's G over overlap tiles). Bounds: out-of-range elements of A and B load as 0; C is
// read and written only inside m × n.
// Composed after common.wgsl (status codes, dtypes, decode_word, is_finite).

struct Params {
    m: u32,
    n: u32,
    k: u32,
    lda: u32,
    ldb: u32,
    ldc: u32,
    a_trans: u32,
    b_trans: u32,
    b_dtype: u32, // 0 f32, 1 f16, 2 bf16
    b_cols: u32,
    ones_col: u32,
    accumulate: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<u32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

override TILE: u32;
override K_BLOCK: u32;
const BLOCK: u32 = 4u;
override WG_SIDE: u32 = TILE / BLOCK;
override TK: u32 = WG_SIDE;
override TILE_ELEMS: u32 = TK * TILE;

var<workgroup> a_tile: array<f32, TILE_ELEMS>; // [TK][TILE]
var<workgroup> b_tile: array<f32, TILE_ELEMS>; // [TK][TILE]

fn decode_b(i: u32) -> f32 {
    return decode_word(params.b_dtype, b[word_of(params.b_dtype, i)], i);
}

fn load_a(r: u32, t: u32) -> f32 {
    if r >= params.m || t >= params.k {
        return 0.0;
    }
    if params.a_trans == 1u {
        return a[t * params.lda + r];
    }
    return a[r * params.lda + t];
}

fn load_b(t: u32, j: u32) -> f32 {
    if t >= params.k || j >= params.n {
        return 0.0;
    }
    if j >= params.b_cols {
        return select(0.0, 1.0, params.ones_col == 1u && j == params.b_cols);
    }
    if params.b_trans == 1u {
        return decode_b(j * params.ldb + t);
    }
    return decode_b(t * params.ldb + j);
}

@compute @workgroup_size(WG_SIDE, WG_SIDE)
fn matmul(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid3: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row0 = wg.y * TILE;
    let col0 = wg.x * TILE;
    let tx = lid3.x;
    let ty = lid3.y;
    // acc: the current K block's products; total: C so far plus the finished blocks.
    var acc: array<f32, BLOCK * BLOCK>;
    var total: array<f32, BLOCK * BLOCK>;
    for (var i = 0u; i < BLOCK; i++) {
        for (var j = 0u; j < BLOCK; j++) {
            acc[i * BLOCK + j] = 0.0;
            total[i * BLOCK + j] = 0.0;
            let r = row0 + ty + WG_SIDE * i;
            let col = col0 + tx + WG_SIDE * j;
            if params.accumulate == 1u && r < params.m && col < params.n {
                total[i * BLOCK + j] = c[r * params.ldc + col];
            }
        }
    }
    for (var t0 = 0u; t0 < params.k; t0 += TK) {
        // Each invocation stages 4 elements of each tile; the index order follows the stored
        // layout so neighbouring invocations read neighbouring addresses.
        for (var q = 0u; q < BLOCK; q++) {
            let e = lid + q * (WG_SIDE * WG_SIDE);
            var r: u32;
            var t: u32;
            if params.a_trans == 1u {
                t = e / TILE;
                r = e % TILE;
            } else {
                r = e / TK;
                t = e % TK;
            }
            a_tile[t * TILE + r] = load_a(row0 + r, t0 + t);
            var j: u32;
            var tb: u32;
            if params.b_trans == 1u {
                j = e / TK;
                tb = e % TK;
            } else {
                tb = e / TILE;
                j = e % TILE;
            }
            b_tile[tb * TILE + j] = load_b(t0 + tb, col0 + j);
        }
        workgroupBarrier();
        for (var t = 0u; t < TK; t++) {
            var av: array<f32, BLOCK>;
            var bv: array<f32, BLOCK>;
            for (var i = 0u; i < BLOCK; i++) {
                av[i] = a_tile[t * TILE + ty + WG_SIDE * i];
                bv[i] = b_tile[t * TILE + tx + WG_SIDE * i];
            }
            for (var i = 0u; i < BLOCK; i++) {
                for (var j = 0u; j < BLOCK; j++) {
                    acc[i * BLOCK + j] = fma(av[i], bv[j], acc[i * BLOCK + j]);
                }
            }
        }
        workgroupBarrier();
        if (t0 + TK) % K_BLOCK == 0u || t0 + TK >= params.k {
            for (var i = 0u; i < BLOCK * BLOCK; i++) {
                total[i] = total[i] + acc[i];
                acc[i] = 0.0;
            }
        }
    }
    for (var i = 0u; i < BLOCK; i++) {
        let r = row0 + ty + WG_SIDE * i;
        if r < params.m {
            for (var j = 0u; j < BLOCK; j++) {
                let col = col0 + tx + WG_SIDE * j;
                if col < params.n {
                    c[r * params.ldc + col] = total[i * BLOCK + j];
                }
            }
        }
    }
}
