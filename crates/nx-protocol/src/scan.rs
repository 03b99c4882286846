//! The byte search of the hot path (issue 20): an answer's strings end, and a download URL's
//! query starts, at the first of one byte.

/// The first `needle` in `haystack`.
///
/// On x86-64, memchr's SSE2 searcher, which is the baseline there: `memchr::memchr` chooses
/// AVX2 at run time and calls it through a function pointer, which on an answer's short
/// strings costs more than the search (about 100 instructions a call against 64, callgrind,
/// over the four strings of a getMedia answer). Elsewhere `memchr::memchr`.
#[inline]
pub(crate) fn find_byte(needle: u8, haystack: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    if let Some(sse2) = memchr::arch::x86_64::sse2::memchr::One::new(needle) {
        return sse2.find(haystack);
    }
    memchr::memchr(needle, haystack)
}

#[cfg(test)]
mod tests {
    use super::find_byte;

    #[test]
    fn finds_what_memchr_finds() {
        let text: Vec<u8> = (0..300u32)
            .map(|i| b"ab\"c?&"[(i * 7 % 6) as usize])
            .collect();
        for start in 0..text.len() {
            for len in [0, 1, 7, 15, 16, 17, 31, 32, 33, 64, 65, 200] {
                let hay = &text[start..text.len().min(start + len)];
                for needle in [b'"', b'?', b'&', b'x'] {
                    assert_eq!(find_byte(needle, hay), memchr::memchr(needle, hay));
                }
            }
        }
    }
}
