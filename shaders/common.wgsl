// common: what several kernels share, composed in front of each kernel's own source when its
// pipeline is built (kernels::Shader::source; the naga test validates the composed sources).
// No entry point and no bindings of its own: a status code for every row outcome, the stored
// dtypes, element decoding and the finiteness test.
// Status codes match method::status::code (a test checks that the values agree): 0 ok; a helper
// row 1 all zeros or 2 not finite (normalize writes them, finish passes them on); 3 weights that
// cancel, 4 a result that would not be finite, 5 a row norm out of range (finish).
// Dtypes match DType::shader_code: rows are stored as f32 words, or two f16 / bf16 per word.
// Precision: decoding is exact (f16 and bf16 widen to f32 without rounding).

const STATUS_OK: u32 = 0u;
const STATUS_ZERO_HELPER_ROW: u32 = 1u;
const STATUS_NON_FINITE_HELPER_ROW: u32 = 2u;
const STATUS_WEIGHT_SUM_NEAR_ZERO: u32 = 3u;
const STATUS_NON_FINITE_RESULT: u32 = 4u;
const STATUS_NORM_OUT_OF_RANGE: u32 = 5u;

const DTYPE_F32: u32 = 0u;
const DTYPE_F16: u32 = 1u;
const DTYPE_BF16: u32 = 2u;

// Index of the u32 word that holds element i of data stored as dtype.
fn word_of(dtype: u32, i: u32) -> u32 {
    return select(i, i >> 1u, dtype == DTYPE_F16 || dtype == DTYPE_BF16);
}

// Element i of data stored as dtype, from the word that holds it (word_of).
fn decode_word(dtype: u32, word: u32, i: u32) -> f32 {
    if dtype == DTYPE_F16 {
        let h = unpack2x16float(word);
        return select(h.x, h.y, (i & 1u) == 1u);
    }
    if dtype == DTYPE_BF16 {
        return bitcast<f32>(select(word << 16u, word & 0xffff0000u, (i & 1u) == 1u));
    }
    return bitcast<f32>(word);
}

// Neither NaN nor ±Inf (the exponent is not all ones).
fn is_finite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}
