// topk: merges one tile of similarity scores into each row's running list of the k best.
//
// Candidates of a row are its current list (when params.has_prev = 1; indices all smaller than
// params.col_offset) followed by the tile's scores, whose global index is col_offset + column.
// The new list holds the k candidates that are best by (score descending, index ascending), in
// that order. Selection is exact: a 4-pass radix select (8 bits a pass) over order-preserving
// u32 keys finds the k-th best key T; keys > T are all taken, and of the keys == T the ones with
// the smallest indices (candidates are visited in index order), then the k winners are sorted by
// a bitonic sort in workgroup memory.
// Bindings (group 0): 0 params (uniform), 1 scores (rows × score_stride f32, read), 2 best_score
// (rows × k f32, read_write), 3 best_index (rows × k u32, read_write).
// Dispatch: one workgroup of WG per row; row = workgroup_id.x + workgroup_id.y *
// num_workgroups.x. Requires 1 ≤ k ≤ WG and k ≤ (has_prev ? k : 0) + cols (the host checks).
// Overrides (no defaults; set from Rust): WG = MAX_TOP_K, a power of two (one invocation per
// list entry; the bitonic sort).
// Precision: scores are compared exactly as f32 (no arithmetic). Output is deterministic.
// Composed after common.wgsl (status codes, dtypes, decode_word, is_finite).

struct Params {
    rows: u32,
    cols: u32,
    score_stride: u32,
    col_offset: u32,
    k: u32,
    has_prev: u32,
    sort_size: u32, // smallest power of two ≥ k
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> scores: array<f32>;
@group(0) @binding(2) var<storage, read_write> best_score: array<f32>;
@group(0) @binding(3) var<storage, read_write> best_index: array<u32>;

override WG: u32;
// Buckets of one 8-bit radix digit.
const RADIX_BINS: u32 = 256u;
const EMPTY_INDEX: u32 = 0xffffffffu;

var<workgroup> hist: array<atomic<u32>, RADIX_BINS>;
var<workgroup> scan_gt: array<u32, WG>;
var<workgroup> scan_eq: array<u32, WG>;
var<workgroup> sel_key: array<u32, WG>;
var<workgroup> sel_index: array<u32, WG>;
var<workgroup> found_prefix: u32;
var<workgroup> found_need: u32;

// Order-preserving map from f32 to u32: a > b as floats ⇔ key(a) > key(b) as integers
// (-0.0 is mapped to +0.0 so that the two compare equal, as they do as floats).
fn key_of(s: f32) -> u32 {
    let u = select(bitcast<u32>(s), 0u, bitcast<u32>(s) == 0x80000000u);
    return select(u | 0x80000000u, ~u, (u & 0x80000000u) != 0u);
}

fn score_of(key: u32) -> f32 {
    return bitcast<f32>(select(~key, key & 0x7fffffffu, (key & 0x80000000u) != 0u));
}

fn n_prev() -> u32 {
    return select(0u, params.k, params.has_prev == 1u);
}

fn cand_key(row: u32, i: u32) -> u32 {
    let np = n_prev();
    if i < np {
        return key_of(best_score[row * params.k + i]);
    }
    return key_of(scores[row * params.score_stride + (i - np)]);
}

fn cand_index(row: u32, i: u32) -> u32 {
    let np = n_prev();
    if i < np {
        return best_index[row * params.k + i];
    }
    return params.col_offset + (i - np);
}

// a comes before b in the final order.
fn before(ka: u32, ia: u32, kb: u32, ib: u32) -> bool {
    return ka > kb || (ka == kb && ia < ib);
}

@compute @workgroup_size(WG)
fn topk(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = wg.x + wg.y * nwg.x;
    if row >= params.rows {
        return;
    }
    let n = n_prev() + params.cols;
    let k = params.k;

    // 1. Radix select of the k-th largest key, 8 bits per pass from the top.
    var prefix = 0u;
    var mask = 0u;
    var need = k;
    for (var round = 0u; round < 4u; round++) {
        let shift = 24u - 8u * round;
        for (var b = lid; b < RADIX_BINS; b += WG) {
            atomicStore(&hist[b], 0u);
        }
        workgroupBarrier();
        for (var i = lid; i < n; i += WG) {
            let key = cand_key(row, i);
            if (key & mask) == prefix {
                atomicAdd(&hist[(key >> shift) & 255u], 1u);
            }
        }
        workgroupBarrier();
        if lid == 0u {
            var above = 0u;
            var digit = RADIX_BINS - 1u;
            loop {
                let h = atomicLoad(&hist[digit]);
                if above + h >= need || digit == 0u {
                    break;
                }
                above += h;
                digit -= 1u;
            }
            found_prefix = prefix | (digit << shift);
            found_need = need - above;
        }
        workgroupBarrier();
        prefix = found_prefix;
        need = found_need;
        mask = mask | (255u << shift);
        workgroupBarrier();
    }
    // prefix is now the k-th best key T; `need` candidates equal to T are to be taken.

    // 2. Compaction in index order: each invocation owns a contiguous chunk of candidates.
    let chunk = (n + WG - 1u) / WG;
    let start = min(lid * chunk, n);
    let end = min(start + chunk, n);
    var gt = 0u;
    var eq = 0u;
    for (var i = start; i < end; i++) {
        let key = cand_key(row, i);
        gt += select(0u, 1u, key > prefix);
        eq += select(0u, 1u, key == prefix);
    }
    scan_gt[lid] = gt;
    scan_eq[lid] = eq;
    workgroupBarrier();
    // Inclusive Hillis-Steele scans.
    for (var s = 1u; s < WG; s = s << 1u) {
        var add_gt = 0u;
        var add_eq = 0u;
        if lid >= s {
            add_gt = scan_gt[lid - s];
            add_eq = scan_eq[lid - s];
        }
        workgroupBarrier();
        scan_gt[lid] += add_gt;
        scan_eq[lid] += add_eq;
        workgroupBarrier();
    }
    let total_gt = k - need;
    var pos_gt = scan_gt[lid] - gt;
    var pos_eq = scan_eq[lid] - eq;
    // Keys and indices are read into registers here; the writes to best_* come after barriers.
    for (var i = start; i < end; i++) {
        let key = cand_key(row, i);
        if key > prefix {
            sel_key[pos_gt] = key;
            sel_index[pos_gt] = cand_index(row, i);
            pos_gt += 1u;
        } else if key == prefix {
            if pos_eq < need {
                sel_key[total_gt + pos_eq] = key;
                sel_index[total_gt + pos_eq] = cand_index(row, i);
            }
            pos_eq += 1u;
        }
    }
    if lid >= k && lid < params.sort_size {
        sel_key[lid] = 0u;
        sel_index[lid] = EMPTY_INDEX;
    }
    workgroupBarrier();

    // 3. Bitonic sort of sort_size entries, best first.
    for (var size = 2u; size <= params.sort_size; size = size << 1u) {
        for (var stride = size >> 1u; stride > 0u; stride = stride >> 1u) {
            let partner = lid ^ stride;
            if lid < params.sort_size && partner > lid {
                let ka = sel_key[lid];
                let ia = sel_index[lid];
                let kb = sel_key[partner];
                let ib = sel_index[partner];
                // In blocks with (lid & size) == 0 the best goes first, else last.
                let want_first = (lid & size) == 0u;
                if before(kb, ib, ka, ia) == want_first {
                    sel_key[lid] = kb;
                    sel_index[lid] = ib;
                    sel_key[partner] = ka;
                    sel_index[partner] = ia;
                }
            }
            workgroupBarrier();
        }
    }
    storageBarrier();
    if lid < k {
        best_score[row * k + lid] = score_of(sel_key[lid]);
        best_index[row * k + lid] = sel_index[lid];
    }
}
