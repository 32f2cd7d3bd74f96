//! The buffer of one direction of a relay: small while the connection
//! waits, big while bytes stream.
//!
//! Thousands of idle connections should cost little, and a bulk transfer
//! should move data in few, large reads and writes. So a direction waits
//! with `SMALL` bytes, takes `BIG` when a read fills the small buffer
//! (more is surely waiting), and gives the big one back after a read
//! that did not fill it. `scripts/bench.sh` measures both sides of the
//! trade: bytes per idle connection, and Gbit/s in bulk.

use bytes::BytesMut;

// ANCHOR: buffer
/// What a direction holds while it waits: enough for a request or a
/// small answer.
pub const SMALL: usize = 512;

/// What it borrows while bytes come faster than that. (128 KiB moved
/// about twice the Gbit/s of 64 KiB per CPU second in step 08's
/// measurements.)
pub const BIG: usize = 128 * 1024;

/// A direction's buffer: `SMALL` or `BIG` bytes of room, read into only
/// when empty. `BytesMut` is read into without being zeroed first, which
/// matters when 128 KiB are taken for every burst.
pub struct Buffer {
    bytes: BytesMut,
    /// How much room the buffer had for the last read.
    room: usize,
}

impl Buffer {
    pub fn new() -> Buffer {
        Buffer {
            bytes: BytesMut::with_capacity(SMALL),
            room: SMALL,
        }
    }

    /// The buffer to read into; empty, with `SMALL` or `BIG` bytes of
    /// room.
    pub fn for_reading(&mut self) -> &mut BytesMut {
        debug_assert!(self.bytes.is_empty());
        self.room = self.bytes.capacity();
        &mut self.bytes
    }

    /// What the last read put in.
    pub fn filled(&self) -> &[u8] {
        &self.bytes
    }

    /// Everything read has been written: empty the buffer and choose its
    /// size for the next read.
    pub fn drained(&mut self) {
        let read = self.bytes.len();
        if read == self.room && self.room < BIG {
            // The small buffer came back full: more is waiting.
            self.bytes = BytesMut::with_capacity(BIG);
        } else if read < self.room && self.room > SMALL {
            // The big one came back partly empty: the burst is over.
            self.bytes = BytesMut::with_capacity(SMALL);
        } else {
            self.bytes.clear();
        }
    }
}
// ANCHOR_END: buffer

#[cfg(test)]
mod tests {
    use super::*;

    /// Pretends a read of `n` bytes, then a drain; returns the room the
    /// next read gets.
    fn read_then_drain(buffer: &mut Buffer, n: usize) -> usize {
        let bytes = buffer.for_reading();
        assert!(n <= bytes.capacity());
        bytes.extend(std::iter::repeat_n(7u8, n));
        buffer.drained();
        buffer.for_reading().capacity()
    }

    #[test]
    fn a_full_small_read_grows_and_a_short_big_read_shrinks() {
        let mut buffer = Buffer::new();
        assert!(buffer.for_reading().capacity() >= SMALL);
        assert!(
            read_then_drain(&mut buffer, SMALL - 1) < BIG,
            "short: small"
        );
        let room = buffer.for_reading().capacity();
        assert!(read_then_drain(&mut buffer, room) >= BIG, "full: grows");
        let room = buffer.for_reading().capacity();
        assert!(read_then_drain(&mut buffer, room) >= BIG, "full big: big");
        assert!(
            read_then_drain(&mut buffer, BIG - 1) < BIG,
            "short: shrinks"
        );
    }
}
