//! The buffer of one direction of a relay: small while the connection
//! waits, big while bytes stream.
//!
//! Thousands of idle connections should cost little, and a bulk transfer
//! should move data in few, large reads and writes. So a direction reads
//! into `SMALL` bytes, takes `BIG` when a read fills the small buffer
//! (more is surely waiting), and gives the big one back after a read
//! that did not fill it. Between two exchanges it holds no buffer at
//! all: the small one is made when there is something to read (a plain
//! socket is waited on without one) and freed once written out. `scripts/bench.sh` measures both sides of the
//! trade: bytes per idle connection, and Gbit/s in bulk.
//!
//! The big buffers of all connections together draw on one [`Budget`]
//! (`[limits] buffer_budget`): a direction that finds it spent keeps its
//! small buffer and relays on, in smaller steps. So the relay's memory
//! has a bound a user can compute, `max_connections × 2 × SMALL +
//! buffer_budget`, however many slow readers hold big buffers full.
//!
//! The budget also holds the splice pipes (`splice.rs`), the kernel's
//! own big buffers, which a direction between two plain TCP sockets
//! borrows instead on Linux.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::BytesMut;

use super::splice::Pipes;

/// What a direction reads into first: enough for a request or a small
/// answer.
pub const SMALL: usize = 512;

/// What it borrows while bytes come faster than that. (128 KiB moved
/// about twice the Gbit/s of 64 KiB per CPU second in step 08's
/// measurements.)
pub const BIG: usize = 128 * 1024;

/// The bytes of big buffers that may be out at once, over every
/// connection of a balancer, and the splice pipes.
#[derive(Debug)]
pub struct Budget {
    left: AtomicUsize,
    pipes: Arc<Pipes>,
}

impl Budget {
    /// `bytes` of big buffers, and no splice pipes.
    pub fn new(bytes: usize) -> Arc<Budget> {
        Budget::with_pipes(bytes, 0)
    }

    /// `bytes` of big buffers, and up to `pipes` splice pipes.
    pub fn with_pipes(bytes: usize, pipes: usize) -> Arc<Budget> {
        Arc::new(Budget {
            left: AtomicUsize::new(bytes),
            pipes: Arc::new(Pipes::new(pipes)),
        })
    }

    /// The splice pipes.
    pub fn pipes(&self) -> &Arc<Pipes> {
        &self.pipes
    }

    /// Takes what a big buffer needs beyond a small one, if that is left.
    fn take(&self) -> bool {
        self.left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                left.checked_sub(BIG - SMALL)
            })
            .is_ok()
    }

    fn give_back(&self) {
        self.left.fetch_add(BIG - SMALL, Ordering::AcqRel);
    }

    /// Bytes left now.
    pub fn left(&self) -> usize {
        self.left.load(Ordering::Acquire)
    }
}

/// A direction's buffer: none, `SMALL` or `BIG` bytes of room, read
/// into only when empty. `BytesMut` is read into without being zeroed first, which
/// matters when 128 KiB are taken for every burst.
pub struct Buffer {
    bytes: BytesMut,
    /// How much room the buffer had for the last read.
    room: usize,
    /// Where its big buffer comes from, and goes back to.
    budget: Arc<Budget>,
}

impl Buffer {
    pub fn new(budget: Arc<Budget>) -> Buffer {
        Buffer {
            bytes: BytesMut::new(),
            room: SMALL,
            budget,
        }
    }

    /// Whether it holds no memory: a direction between two exchanges.
    pub fn is_none(&self) -> bool {
        self.bytes.capacity() == 0
    }

    /// Starts with `bytes` in it, to be written before anything is read
    /// (what a client sent while it waited in line).
    pub fn start_with(&mut self, bytes: BytesMut) {
        if !bytes.is_empty() {
            self.room = bytes.capacity();
            self.bytes = bytes;
        }
    }

    fn is_big(&self) -> bool {
        self.bytes.capacity() >= BIG
    }

    /// The buffer to read into; empty, with `SMALL` or `BIG` bytes of
    /// room.
    pub fn for_reading(&mut self) -> &mut BytesMut {
        debug_assert!(self.bytes.is_empty());
        if self.is_none() {
            self.bytes = BytesMut::with_capacity(SMALL);
        }
        self.room = self.bytes.capacity();
        &mut self.bytes
    }

    /// What the last read put in.
    pub fn filled(&self) -> &[u8] {
        &self.bytes
    }

    /// Whether the last read filled all the room it had: more is surely
    /// waiting.
    pub fn came_full(&self) -> bool {
        !self.bytes.is_empty() && self.bytes.len() == self.room
    }

    /// Where its big buffer comes from, and the splice pipes.
    pub fn budget(&self) -> &Arc<Budget> {
        &self.budget
    }

    /// Everything read has been written, and a splice pipe carries the
    /// stream from here: the buffer goes, for when the stream pauses and
    /// the direction waits without one.
    pub fn emptied_for_pipe(&mut self) {
        if self.is_big() {
            self.budget.give_back();
        }
        self.bytes = BytesMut::new();
    }

    // ANCHOR: drained
    /// Everything read has been written: empty the buffer and choose its
    /// size for the next read.
    pub fn drained(&mut self) {
        let read = self.bytes.len();
        if read == self.room && self.room < BIG && self.budget.take() {
            // The small buffer came back full: more is waiting.
            self.bytes = BytesMut::with_capacity(BIG);
        } else if read == self.room && self.is_big() {
            // The big one came back full: the burst goes on.
            self.bytes.clear();
        } else {
            // The exchange is over (or the budget is spent): no buffer
            // until the next one.
            if self.is_big() {
                self.budget.give_back();
            }
            self.bytes = BytesMut::new();
        }
    }
    // ANCHOR_END: drained
}

impl Drop for Buffer {
    fn drop(&mut self) {
        if self.is_big() {
            self.budget.give_back();
        }
    }
}

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
        let mut buffer = Buffer::new(Budget::new(BIG));
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

    #[test]
    fn between_two_exchanges_it_holds_no_memory() {
        let budget = Budget::new(BIG);
        let mut buffer = Buffer::new(budget.clone());
        assert!(buffer.is_none(), "before the first read");
        buffer
            .for_reading()
            .extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        buffer.drained();
        assert!(buffer.is_none(), "after a request");
        // A burst: the small buffer comes back full, then the big one.
        let room = buffer.for_reading().capacity();
        buffer.for_reading().extend(std::iter::repeat_n(7u8, room));
        buffer.drained();
        assert!(buffer.is_big(), "streaming");
        buffer.for_reading().extend_from_slice(b"the end");
        buffer.drained();
        assert!(buffer.is_none(), "after the burst");
        assert_eq!(budget.left(), BIG, "the big one given back");
    }

    #[test]
    fn big_buffers_draw_on_the_budget_and_give_it_back() {
        let budget = Budget::new(BIG - SMALL);
        let mut one = Buffer::new(budget.clone());
        let mut two = Buffer::new(budget.clone());
        assert!(read_then_drain(&mut one, SMALL) >= BIG, "one grows");
        assert_eq!(budget.left(), 0);
        assert!(read_then_drain(&mut two, SMALL) < BIG, "spent: stays small");
        assert!(read_then_drain(&mut one, 1) < BIG, "one shrinks");
        assert_eq!(budget.left(), BIG - SMALL, "given back");
        assert!(read_then_drain(&mut two, SMALL) >= BIG, "two grows now");
        drop(two);
        assert_eq!(budget.left(), BIG - SMALL, "given back when dropped");
    }
}
