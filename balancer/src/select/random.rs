//! Random: a weighted draw. A backend of weight 5 is chosen five times as
//! often as one of weight 1, with no shared turn to keep: each client's
//! draw is independent of the others'.
//!
//! Failover draws again among the rest, still by weight (a weighted draw
//! without replacement). Taking the next backend in the list instead
//! would be simpler, but while a dead backend is not yet marked down, all
//! of its clients would then land on one neighbour; drawing again spreads
//! them over the others as their weights say.
//!
//! The first backend is one weighted draw: the usable backends lined up
//! end to end, each as long as its weight, and a random point on that
//! line (one pass). The rest, which only failover needs, come from an
//! exponential race (Efraimidis and Spirakis' weighted sampling): every
//! backend draws a finishing time, with a heavier backend running
//! faster, and the order is the order in which they finish. A backend
//! of weight `w` finishes first with probability `w / total`, and of
//! those left the next one finishes first by the same rule, so the whole
//! failover order is one sort. The race could give the first backend
//! too, but it costs a logarithm per backend, which a new client with
//! 1,000 backends would feel.

use std::sync::Mutex;

use rand::Rng;
use rand::rngs::SmallRng;
use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::{Candidate, Select, landing, lock, push_usable, usable_weight};

/// A weighted random order of the usable backends.
#[derive(Debug)]
pub struct WeightedRandom {
    /// `ThreadRng` would need no lock, but it is not `Send`, and a
    /// tokio task may move between threads. The lock is held for one
    /// draw.
    rng: Mutex<SmallRng>,
}

impl WeightedRandom {
    pub fn new(rng: SmallRng) -> WeightedRandom {
        WeightedRandom {
            rng: Mutex::new(rng),
        }
    }

    /// One client's draw, and the backend it lands on. At least two
    /// backends must be usable (with one there is nothing to draw).
    fn draw(&self, backends: &[Candidate]) -> (usize, u64) {
        let draw = lock(&self.rng).next_u64();
        // The draw scaled to `0..total` by a multiplication (Lemire's):
        // uniform to within total / 2^64.
        let total = usable_weight(backends, None);
        let point = ((u128::from(draw) * u128::from(total)) >> 64) as u64;
        (landing(backends, None, point), draw)
    }
}

impl Select for WeightedRandom {
    fn reads_loads(&self) -> bool {
        false
    }

    fn copy(&self) -> Option<Box<dyn Select>> {
        Some(Box::new(WeightedRandom::new(lock(&self.rng).clone())))
    }

    fn order(&self, backends: &[Candidate], _key: u64, order: &mut Vec<usize>) {
        order.clear();
        push_usable(backends, order);
        if order.len() < 2 {
            return;
        }
        let (first, draw) = self.draw(backends);
        // ANCHOR: weighted_random
        // The others race, each with its own random number derived from
        // the client's draw and its index by a hash, so it can be
        // computed again whenever the sort compares two backends,
        // instead of being stored in a buffer this function would have
        // to allocate.
        let finish_time = |index: usize| {
            let bits = xxh3_64_with_seed(&(index as u64).to_le_bytes(), draw);
            // 53 random bits, as a uniform number in (0, 1]; not 0, whose
            // logarithm is minus infinity.
            let uniform = ((bits >> 11) + 1) as f64 / (1u64 << 53) as f64;
            // An exponential time of rate `weight`: heavier is faster.
            -uniform.ln() / f64::from(backends[index].weight)
        };
        order.retain(|&index| index != first);
        order.sort_unstable_by(|&a, &b| {
            finish_time(a).total_cmp(&finish_time(b)).then(a.cmp(&b))
        });
        order.insert(0, first);
        // ANCHOR_END: weighted_random
    }

    fn pick(&self, backends: &[Candidate], _key: u64) -> Option<usize> {
        super::nothing_to_draw(backends)
            .unwrap_or_else(|()| Some(self.draw(backends).0))
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::select::testing::weighted;

    /// How often each backend comes first, and how often `a` comes
    /// second when `b` came first, over `draws` seeded draws.
    fn tally(
        backends: &[Candidate],
        draws: usize,
        b: usize,
        a: usize,
    ) -> (Vec<usize>, usize, usize) {
        let random = WeightedRandom::new(SmallRng::seed_from_u64(7));
        let mut order = Vec::new();
        let mut firsts = vec![0; backends.len()];
        let (mut b_first, mut then_a) = (0, 0);
        for _ in 0..draws {
            random.order(backends, 0, &mut order);
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..backends.len()).collect::<Vec<_>>());
            firsts[order[0]] += 1;
            if order[0] == b {
                b_first += 1;
                then_a += usize::from(order[1] == a);
            }
        }
        (firsts, b_first, then_a)
    }

    fn assert_near(count: usize, expected: f64, what: &str) {
        let error = (count as f64 - expected).abs() / expected;
        assert!(
            error < 0.03,
            "{what}: {count}, expected about {expected:.0} (off by {:.1}%)",
            error * 100.0
        );
    }

    #[test]
    fn draws_each_backend_in_proportion_to_its_weight() {
        let (firsts, _, _) = tally(&weighted(&[5, 1, 1]), 70_000, 1, 0);
        assert_near(firsts[0], 50_000.0, "a (weight 5) first");
        assert_near(firsts[1], 10_000.0, "b (weight 1) first");
        assert_near(firsts[2], 10_000.0, "c (weight 1) first");
    }

    #[test]
    fn failover_draws_again_by_weight_among_the_rest() {
        // When b is first, a (5) follows five times as often as c (1).
        let (_, b_first, then_a) = tally(&weighted(&[5, 1, 1]), 70_000, 1, 0);
        assert_near(then_a, b_first as f64 * 5.0 / 6.0, "a after b");
        // And with equal weights, a dead backend's clients are spread
        // evenly, not sent to its neighbour: when 0 is first, 1 and 2 are
        // second equally often.
        let (_, zero_first, then_one) =
            tally(&weighted(&[1, 1, 1]), 30_000, 0, 1);
        assert_near(then_one, zero_first as f64 / 2.0, "1 after 0");
    }

    #[test]
    fn one_seed_gives_one_sequence() {
        let backends = weighted(&[2, 1, 1, 3]);
        let orders = |seed| {
            let random = WeightedRandom::new(SmallRng::seed_from_u64(seed));
            let mut order = Vec::new();
            (0..20)
                .map(|_| {
                    random.order(&backends, 0, &mut order);
                    order.clone()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(orders(1), orders(1));
        assert_ne!(orders(1), orders(2));
    }
}
