//! Round robin: each usable backend in turn, weights ignored.
//!
//! The turn is one counter shared by every connection task; each client
//! takes the next number. The counter picks a position among the backends
//! that are usable *now*, not among all of them: when one is down, its
//! turn is spread over the others instead of always falling to the one
//! listed after it (which would then carry two shares).

use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Candidate, Select, push_usable};

/// Round robin over the usable backends.
#[derive(Debug, Default)]
pub struct RoundRobin {
    /// How many clients have been placed so far. Only its value matters,
    /// not its order with other memory, hence `Relaxed` below.
    next: AtomicUsize,
}

impl RoundRobin {
    pub fn new() -> RoundRobin {
        RoundRobin::default()
    }
}

impl Select for RoundRobin {
    fn reads_loads(&self) -> bool {
        false
    }

    fn copy(&self) -> Option<Box<dyn Select>> {
        let next = self.next.load(Ordering::Relaxed);
        Some(Box::new(RoundRobin {
            next: AtomicUsize::new(next),
        }))
    }

    // ANCHOR: round_robin
    fn order(&self, backends: &[Candidate], _key: u64, order: &mut Vec<usize>) {
        order.clear();
        push_usable(backends, order);
        if order.is_empty() {
            return;
        }
        // One atomic add, no lock: tasks on several threads each get
        // their own number. It wraps at `usize::MAX`, which only makes
        // one turn out of 2^64 land early.
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        // Start at this client's turn among the usable ones; the others
        // follow in list order, so failover goes to the next in turn.
        let usable = order.len();
        order.rotate_left(turn % usable);
    }
    // ANCHOR_END: round_robin

    fn pick(&self, backends: &[Candidate], _key: u64) -> Option<usize> {
        let usable = super::usable(backends).count();
        if usable == 0 {
            return None;
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        super::usable(backends).nth(turn % usable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::select::testing::up;

    #[test]
    fn takes_each_backend_in_turn_with_the_rest_as_failover() {
        let round_robin = RoundRobin::new();
        let backends = up(3);
        let mut order = Vec::new();
        let mut orders = Vec::new();
        for _ in 0..4 {
            round_robin.order(&backends, 0, &mut order);
            orders.push(order.clone());
        }
        assert_eq!(
            orders,
            [[0, 1, 2], [1, 2, 0], [2, 0, 1], [0, 1, 2]].map(Vec::from)
        );
    }

    #[test]
    fn rotates_over_the_usable_ones_only() {
        let round_robin = RoundRobin::new();
        let mut backends = up(4);
        backends[1].usable = false;
        let mut order = Vec::new();
        let mut firsts = Vec::new();
        for _ in 0..6 {
            round_robin.order(&backends, 0, &mut order);
            assert!(!order.contains(&1), "{order:?} lists the unusable 1");
            firsts.push(order[0]);
        }
        // Backend 1's turn goes to each of the others alike, not to 2.
        assert_eq!(firsts, [0, 2, 3, 0, 2, 3]);
    }
}
