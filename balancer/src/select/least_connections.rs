//! Least connections: the backend with the fewest open connections per
//! unit of weight. A backend that answers slowly keeps its connections
//! open longer, so its count grows and new clients go elsewhere: unlike
//! round robin, this reacts to what the backends are doing.
//!
//! Ties are common (every backend idle, or clients that come and go
//! quickly), and always taking the first of the tied ones would load
//! that one whenever the others are no less busy. A turn counter, as in
//! round robin, takes the tied ones in turn instead.
//!
//! The failover order is the others from least to most loaded: if the
//! least loaded cannot be reached, the next least loaded is the best bet.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Candidate, Select, push_usable};

/// Fewest (active connections + 1) ÷ weight first, ties in turn.
#[derive(Debug, Default)]
pub struct LeastConnections {
    /// Which of the tied least loaded backends goes first.
    next_tie: AtomicUsize,
}

impl LeastConnections {
    pub fn new() -> LeastConnections {
        LeastConnections::default()
    }
}

impl Select for LeastConnections {
    fn copy(&self) -> Option<Box<dyn Select>> {
        let next_tie = self.next_tie.load(Ordering::Relaxed);
        Some(Box::new(LeastConnections {
            next_tie: AtomicUsize::new(next_tie),
        }))
    }

    fn order(&self, backends: &[Candidate], _key: u64, order: &mut Vec<usize>) {
        order.clear();
        push_usable(backends, order);
        if order.is_empty() {
            return;
        }
        // ANCHOR: least_connections
        // Least loaded first (`cmp_load` compares (active + 1) ÷ weight by
        // cross-multiplying, without floats); equal loads in list order,
        // so the sort is deterministic.
        order.sort_unstable_by(|&a, &b| {
            backends[a].cmp_load(&backends[b]).then(a.cmp(&b))
        });
        // The ones tied with the least loaded take turns at the front.
        let least = backends[order[0]];
        let tied = order
            .iter()
            .take_while(|&&index| backends[index].cmp_load(&least).is_eq())
            .count();
        let turn = self.next_tie.fetch_add(1, Ordering::Relaxed);
        order[..tied].rotate_left(turn % tied);
        // ANCHOR_END: least_connections
    }

    fn pick(&self, backends: &[Candidate], _key: u64) -> Option<usize> {
        // Two passes and no sort: the least load and how many tie at it,
        // then the tie this client's turn falls to (ties in list order,
        // as the sort above leaves them).
        let mut usable = backends.iter().filter(|backend| backend.usable);
        let (mut least, mut count) = (*usable.next()?, 1);
        for backend in usable {
            match backend.cmp_load(&least) {
                std::cmp::Ordering::Less => (least, count) = (*backend, 1),
                std::cmp::Ordering::Equal => count += 1,
                std::cmp::Ordering::Greater => {}
            }
        }
        let tied = |index: &usize| backends[*index].cmp_load(&least).is_eq();
        let turn = self.next_tie.fetch_add(1, Ordering::Relaxed);
        super::usable(backends).filter(tied).nth(turn % count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::select::testing::loaded;

    #[test]
    fn picks_the_emptiest_per_unit_of_weight_then_ascending_load() {
        let least = LeastConnections::new();
        let mut order = Vec::new();
        // Loads 6/3 = 2, 3/1 = 3, 1/1 = 1, 9/2 = 4.5: backend 2 has the
        // fewest connections per weight, though 0 and 1 have fewer than 3.
        let backends = loaded(&[(6, 3), (3, 1), (1, 1), (9, 2)]);
        for _ in 0..3 {
            least.order(&backends, 0, &mut order);
            assert_eq!(order, [2, 0, 1, 3]);
        }
        // Weight counts: 4 connections on weight 4 (1 each) is less
        // loaded than 2 on weight 1.
        least.order(&loaded(&[(2, 1), (4, 4)]), 0, &mut order);
        assert_eq!(order, [1, 0]);
    }

    #[test]
    fn takes_tied_backends_in_turn() {
        let least = LeastConnections::new();
        let mut order = Vec::new();
        // 0 is busier; 1, 2 and 3 tie at 3 per weight with the new
        // client counted: (2 + 1)/1, (2 + 1)/1, (5 + 1)/2.
        let backends = loaded(&[(5, 1), (2, 1), (2, 1), (5, 2)]);
        let mut firsts = Vec::new();
        for _ in 0..6 {
            least.order(&backends, 0, &mut order);
            assert_eq!(*order.last().unwrap(), 0, "{order:?}");
            firsts.push(order[0]);
        }
        assert_eq!(firsts, [1, 2, 3, 1, 2, 3]);
    }

    #[test]
    fn tied_backends_not_in_front_keep_list_order() {
        let least = LeastConnections::new();
        let mut order = Vec::new();
        let backends = loaded(&[(3, 1), (0, 1), (3, 1), (1, 1)]);
        least.order(&backends, 0, &mut order);
        assert_eq!(order, [1, 3, 0, 2]);
    }
}
