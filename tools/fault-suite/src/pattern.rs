//! The bytes the suite sends and checks: the lab's pattern
//! ([`lab_common::pattern`]), served from one precomputed block so that
//! hundreds of megabytes cost a copy, not a computation per byte.

use std::sync::OnceLock;

/// The pattern repeats every 251 bytes (`lab_common::pattern::byte_at`;
/// the test below holds the two together).
const PERIOD: u64 = 251;

/// Room for the longest chunk handed out, from any phase of the pattern.
const BLOCK: usize = PERIOD as usize * 262;

/// The most bytes one [`chunk`] holds.
pub const MAX_CHUNK: usize = BLOCK - PERIOD as usize;

fn block() -> &'static [u8] {
    static BLOCK_BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BLOCK_BYTES.get_or_init(|| lab_common::pattern::bytes(0, BLOCK))
}

/// The pattern's bytes from `offset`, at most `len` (and [`MAX_CHUNK`]).
pub fn chunk(offset: u64, len: usize) -> &'static [u8] {
    let start = (offset % PERIOD) as usize;
    &block()[start..start + len.min(MAX_CHUNK)]
}

/// Whether `bytes`, found at `offset` of a stream, are the pattern's.
pub fn matches(offset: u64, bytes: &[u8]) -> bool {
    let mut at = offset;
    bytes.chunks(MAX_CHUNK).all(|piece| {
        let ok = piece == chunk(at, piece.len());
        at += piece.len() as u64;
        ok
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_the_lab_pattern_from_any_offset() {
        for offset in [0, 1, 250, 251, 1_000_003] {
            let want = lab_common::pattern::bytes(offset, 600);
            assert_eq!(chunk(offset, 600), &want[..]);
            assert!(matches(offset, &want));
            assert!(!matches(offset + 1, &want));
        }
        assert_eq!(chunk(7, usize::MAX).len(), MAX_CHUNK);
        let long = lab_common::pattern::bytes(3, 3 * MAX_CHUNK + 5);
        assert!(matches(3, &long));
    }
}
