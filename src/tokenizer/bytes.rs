//! How tokenizers write single bytes: GPT-2's byte-level table (`bytes_to_unicode`: printable
//! Latin-1 maps to itself, the other 68 bytes to U+0100..U+0143, so the space is `Ġ` and the
//! newline `Ċ`) and SentencePiece's byte-fallback tokens `<0xHH>`.

/// Whether GPT-2's `bytes_to_unicode` maps byte `b` to the character of the same code.
const fn byte_level_keeps(b: u8) -> bool {
    matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF)
}

/// The 68 bytes `bytes_to_unicode` moves to U+0100.., in order.
const BYTE_LEVEL_MOVED: [u8; 68] = {
    let mut t = [0u8; 68];
    let mut n = 0;
    let mut b = 0;
    while b < 256 {
        if !byte_level_keeps(b as u8) {
            t[n] = b as u8;
            n += 1;
        }
        b += 1;
    }
    t
};

/// The byte a byte-level BPE character stands for.
pub fn byte_level_byte(c: char) -> Option<u8> {
    let u = c as u32;
    if u < 256 && byte_level_keeps(u as u8) {
        return Some(u as u8);
    }
    let n = u.checked_sub(256)? as usize;
    BYTE_LEVEL_MOVED.get(n).copied()
}

/// The byte-level BPE character of byte `b`.
pub fn byte_level_char(b: u8) -> char {
    if byte_level_keeps(b) {
        b as char
    } else {
        let n = BYTE_LEVEL_MOVED.iter().position(|&m| m == b).unwrap_or(0);
        char::from_u32(256 + n as u32).unwrap_or('\u{FFFD}')
    }
}

/// The byte-level BPE spelling of `bytes` (GPT-2's `bytes_to_unicode`).
pub fn byte_level_spelling(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| byte_level_char(b)).collect()
}

/// The 256 characters of the byte-level alphabet, sorted by code point.
pub fn byte_level_alphabet() -> Vec<char> {
    let mut chars: Vec<char> = (0..=255u8).map(byte_level_char).collect();
    chars.sort_unstable();
    chars
}

/// The SentencePiece byte-fallback token of byte `b`: `<0xHH>` (upper-case hex).
pub fn byte_token(b: u8) -> String {
    format!("<0x{b:02X}>")
}

/// `HH` of a byte-fallback token `<0xHH>` (exactly two hex digits, either case).
pub fn parse_byte_token(token: &str) -> Option<u8> {
    let hex = token.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_table_is_gpt2s() {
        // Every byte round-trips, the table is a bijection onto 256 distinct characters.
        let chars: Vec<char> = (0..=255u8).map(byte_level_char).collect();
        for (b, &c) in chars.iter().enumerate() {
            assert_eq!(byte_level_byte(c), Some(b as u8), "byte {b} via {c:?}");
        }
        assert_eq!(byte_level_spelling(b" \n"), "ĠĊ");
        let mut sorted = chars.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 256);
        // Well-known points of GPT-2's table.
        assert_eq!(chars[b' ' as usize], 'Ġ');
        assert_eq!(chars[b'\n' as usize], 'Ċ');
        assert_eq!(chars[b'\t' as usize], 'ĉ');
        assert_eq!(chars[0], 'Ā');
        assert_eq!(chars[0x7F], 'ġ');
        assert_eq!(chars[0xAD], 'Ń');
        assert_eq!(chars[b'A' as usize], 'A');
        assert_eq!(chars[0xE9], 'é');
        assert_eq!(byte_level_byte('Ņ'), None, "U+0145 is past the table");
        assert_eq!(byte_level_byte('▁'), None);
        // The same alphabet as the tokenizers crate's ByteLevel pre-tokenizer.
        let mut theirs: Vec<char> = tokenizers::pre_tokenizers::byte_level::ByteLevel::alphabet()
            .into_iter()
            .collect();
        theirs.sort_unstable();
        assert_eq!(byte_level_alphabet(), theirs);
    }

    #[test]
    fn byte_tokens_round_trip() {
        for b in 0..=255u8 {
            assert_eq!(parse_byte_token(&byte_token(b)), Some(b));
        }
        assert_eq!(byte_token(0x0A), "<0x0A>");
        assert_eq!(parse_byte_token("<0xc3>"), Some(0xC3));
        assert_eq!(parse_byte_token("<0x0A0>"), None);
        assert_eq!(parse_byte_token("<0xZZ>"), None);
        assert_eq!(parse_byte_token("0x0A"), None);
    }
}
