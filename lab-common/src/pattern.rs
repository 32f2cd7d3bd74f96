//! The deterministic bytes that `/bytes/{n}` streams and the tests check.

/// The byte at `offset`: a repeating ramp of 251 values (a prime, so it
/// never lines up with a buffer size and a dropped or repeated chunk
/// shows up as a mismatch).
pub fn byte_at(offset: u64) -> u8 {
    (offset % 251) as u8
}

/// `len` bytes of the pattern starting at `offset`.
pub fn bytes(offset: u64, len: usize) -> Vec<u8> {
    (offset..offset + len as u64).map(byte_at).collect()
}

/// Where `chunk`, expected at `offset`, first differs from the pattern.
pub fn first_mismatch(offset: u64, chunk: &[u8]) -> Option<u64> {
    chunk
        .iter()
        .zip(offset..)
        .find(|&(&byte, at)| byte != byte_at(at))
        .map(|(_, at)| at)
}
