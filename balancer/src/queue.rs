//! Waiting for a full backend: the line of clients that found every
//! usable backend at its `max_connections`.
//!
//! First come, first served: a client that has waited is not overtaken
//! by one that just arrived (a newcomer that finds clients waiting joins
//! the line behind them, even if a place is free at that instant: that
//! place is being handed to the first in line). A freed place wakes one
//! waiter, not all of them; a backend that comes back up, or a reload
//! that adds room, wakes the whole line, and those who find no room take
//! their old places again, in their old order.
//!
//! The line holds tickets in arrival order. A client that gives up (its
//! `queue_timeout` ran out, or it went away) leaves the line at once, and
//! one that was woken but did not use its turn passes it on.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

/// The line of waiting clients.
#[derive(Debug, Default)]
pub struct Queue {
    line: Mutex<VecDeque<Waiter>>,
    /// The line's length, read without the lock: a connection that ends
    /// looks here on every close, and an empty line costs it nothing more.
    waiting: AtomicUsize,
    next_ticket: AtomicU64,
    /// Waiters woken since start: one per freed place, so a test can
    /// count that a place wakes one.
    woken: AtomicU64,
}

#[derive(Debug)]
struct Waiter {
    ticket: u64,
    wake: oneshot::Sender<()>,
}

/// A client's place in the line. Dropped, it leaves the line (or, if
/// it had been woken and did not say it was served, passes its turn on).
#[derive(Debug)]
pub struct Ticket {
    queue: Arc<Queue>,
    number: u64,
    woken: Option<oneshot::Receiver<()>>,
    /// Whether its turn came and was not used yet.
    has_turn: bool,
}

impl Queue {
    pub fn new() -> Arc<Queue> {
        Arc::new(Queue::default())
    }

    /// Clients waiting now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// Waiters woken so far.
    pub fn woken(&self) -> u64 {
        self.woken.load(Ordering::Relaxed)
    }

    /// Joins the line at its back.
    pub fn join(self: &Arc<Queue>) -> Ticket {
        let number = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        let mut ticket = Ticket {
            queue: self.clone(),
            number,
            woken: None,
            has_turn: false,
        };
        ticket.enter();
        ticket
    }

    /// A place was freed: wakes the first in line, if anyone waits.
    pub fn place_freed(&self) {
        if self.waiting() > 0 {
            self.wake(1);
        }
    }

    /// Room came that may fit many (a backend back up, a reload): wakes
    /// the whole line.
    pub fn wake_all(&self) {
        if self.waiting() > 0 {
            self.wake(usize::MAX);
        }
    }

    /// Wakes up to `count` waiters, first in line first. A waiter that is
    /// gone (its ticket dropped as it was being woken) does not count.
    fn wake(&self, count: usize) {
        let mut line = self.lock();
        let mut woken = 0;
        while woken < count {
            let Some(waiter) = line.pop_front() else {
                break;
            };
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            if waiter.wake.send(()).is_ok() {
                woken += 1;
                self.woken.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Waiter>> {
        self.line.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Ticket {
    /// Puts this ticket in the line at the place its number gives it:
    /// the back for a newcomer, its old place for a waiter that was woken
    /// and found no room.
    fn enter(&mut self) {
        let (wake, woken) = oneshot::channel();
        let mut line = self.queue.lock();
        let at = line.partition_point(|waiter| waiter.ticket < self.number);
        line.insert(
            at,
            Waiter {
                ticket: self.number,
                wake,
            },
        );
        self.queue.waiting.fetch_add(1, Ordering::AcqRel);
        self.woken = Some(woken);
        self.has_turn = false;
    }

    /// Waits for this ticket's turn.
    pub async fn turn(&mut self) {
        if let Some(woken) = &mut self.woken {
            // Borrowed, not taken: if this wait is cancelled (a timeout),
            // the ticket still knows it is in the line. An error means the
            // sender was dropped without a send, which only `wake` does
            // after taking it out of the line: a turn all the same.
            let _ = woken.await;
            self.woken = None;
        }
        self.has_turn = true;
    }

    /// Its turn came but there was no room after all (another client's
    /// place was taken by a connection in flight): back to its old place.
    /// A ticket still in line (it looked again without its turn) stays.
    pub fn wait_again(&mut self) {
        if self.woken.is_none() {
            self.enter();
        }
    }

    /// Its turn came and it found room: done with the line. (If more room
    /// came than it took, its client wakes the next: see `proxy`.)
    pub fn served(mut self) {
        self.has_turn = false;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.has_turn {
            // Woken for a place it will not take: the next one may.
            self.queue.place_freed();
            return;
        }
        if self.woken.is_some() {
            let mut line = self.queue.lock();
            if let Some(at) =
                line.iter().position(|waiter| waiter.ticket == self.number)
            {
                line.remove(at);
                self.queue.waiting.fetch_sub(1, Ordering::AcqRel);
            } else {
                // Woken just now, between its last look and this drop:
                // pass the turn on.
                drop(line);
                self.queue.place_freed();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Whether `ticket`'s turn has come, without waiting for it.
    async fn has_turn(ticket: &mut Ticket) -> bool {
        tokio::time::timeout(Duration::from_millis(1), ticket.turn())
            .await
            .is_ok()
    }

    #[tokio::test(start_paused = true)]
    async fn one_freed_place_wakes_the_first_in_line_only() {
        let queue = Queue::new();
        let mut tickets: Vec<Ticket> = (0..20).map(|_| queue.join()).collect();
        assert_eq!(queue.waiting(), 20);
        for served in 0..20 {
            let woken = queue.woken();
            queue.place_freed();
            assert_eq!(queue.woken(), woken + 1, "one place, one waiter");
            for (index, ticket) in tickets.iter_mut().enumerate() {
                let turn = has_turn(ticket).await;
                assert_eq!(turn, index == 0, "place {served}: ticket {index}");
            }
            tickets.remove(0).served();
            assert_eq!(queue.waiting(), 19 - served);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_without_room_keeps_its_place() {
        let queue = Queue::new();
        let mut first = queue.join();
        let mut second = queue.join();
        queue.wake_all();
        assert!(has_turn(&mut first).await && has_turn(&mut second).await);
        // Both found no room: back in the same order.
        second.wait_again();
        first.wait_again();
        queue.place_freed();
        assert!(has_turn(&mut first).await);
        assert!(!has_turn(&mut second).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_leaves_gives_its_place_up() {
        let queue = Queue::new();
        let leaver = queue.join();
        let mut stayer = queue.join();
        drop(leaver);
        assert_eq!(queue.waiting(), 1);
        queue.place_freed();
        assert!(has_turn(&mut stayer).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_turn_not_taken_passes_to_the_next() {
        let queue = Queue::new();
        let mut first = queue.join();
        let mut second = queue.join();
        queue.place_freed();
        assert!(has_turn(&mut first).await);
        drop(first);
        assert!(has_turn(&mut second).await);
    }
}
