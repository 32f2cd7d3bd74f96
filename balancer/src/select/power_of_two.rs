//! Power of two random choices: draw two backends at random and take the
//! less loaded of the two (Envoy's default for least-request balancing,
//! nginx's `random two least_conn`).
//!
//! Why not always the least loaded of all? Several `lb` instances, or
//! one instance between two updates of the counts, would all see the same
//! backend as the emptiest and send it every new client at once. Two
//! random choices rarely agree, yet avoiding the busier of two is enough
//! to keep loads far more even than one random choice (Mitzenmacher's
//! result: placing n clients on n backends, the busiest ends up with
//! about `log n / log log n` of them with one random choice, and about
//! `log log n` with the better of two).
//!
//! The draws are weighted (as in nginx), so at equal loads a backend of
//! weight 2 is in the pair twice as often; loads compare as (active
//! connections + 1) ÷ weight, as in least connections. The failover order is
//! the two drawn, better first, then the rest from least to most loaded.

use std::sync::Mutex;

use rand::RngExt;
use rand::rngs::SmallRng;

use super::{Candidate, Select, landing, lock, push_usable, usable_weight};

/// Two weighted random choices, the less loaded first.
#[derive(Debug)]
pub struct PowerOfTwo {
    /// Locked for one draw at a time (see `random.rs` on why not
    /// `ThreadRng`).
    rng: Mutex<SmallRng>,
}

impl PowerOfTwo {
    pub fn new(rng: SmallRng) -> PowerOfTwo {
        PowerOfTwo {
            rng: Mutex::new(rng),
        }
    }

    /// The two drawn, the less loaded first. At least two backends must
    /// be usable.
    fn pair(&self, backends: &[Candidate]) -> (usize, usize) {
        // ANCHOR: power_of_two
        let weight = |index: usize| u64::from(backends[index].weight);
        let total = usable_weight(backends, None);
        // Two distinct backends: the second is drawn from the others
        // only, so it is never the first again.
        let one = landing(backends, None, self.draw_below(total));
        let two =
            landing(backends, Some(one), self.draw_below(total - weight(one)));
        // ANCHOR_END: power_of_two
        // The less loaded first; on equal loads the first drawn, itself a
        // fair weighted choice.
        if backends[two].cmp_load(&backends[one]).is_lt() {
            (two, one)
        } else {
            (one, two)
        }
    }

    /// A number drawn uniformly from `0..bound`.
    fn draw_below(&self, bound: u64) -> u64 {
        lock(&self.rng).random_range(0..bound)
    }
}

impl Select for PowerOfTwo {
    fn copy(&self) -> Option<Box<dyn Select>> {
        Some(Box::new(PowerOfTwo::new(lock(&self.rng).clone())))
    }

    fn order(&self, backends: &[Candidate], _key: u64, order: &mut Vec<usize>) {
        order.clear();
        push_usable(backends, order);
        if order.len() < 2 {
            return;
        }
        let (better, worse) = self.pair(backends);
        // The others by ascending load, then the two in front. Taking
        // two out and putting two back stays within the capacity the
        // vector has: nothing is allocated.
        order.retain(|&index| index != better && index != worse);
        order.sort_unstable_by(|&a, &b| {
            backends[a].cmp_load(&backends[b]).then(a.cmp(&b))
        });
        order.insert(0, worse);
        order.insert(0, better);
    }

    fn pick(&self, backends: &[Candidate], _key: u64) -> Option<usize> {
        super::nothing_to_draw(backends)
            .unwrap_or_else(|()| Some(self.pair(backends).0))
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::select::testing::loaded;

    /// How often each backend comes first over `draws` seeded draws,
    /// checking every order on the way.
    fn firsts(backends: &[Candidate], draws: usize) -> Vec<usize> {
        let two = PowerOfTwo::new(SmallRng::seed_from_u64(11));
        let mut order = Vec::new();
        let mut firsts = vec![0; backends.len()];
        for _ in 0..draws {
            two.order(backends, 0, &mut order);
            let [first, second, rest @ ..] = order.as_slice() else {
                panic!("fewer than two in {order:?}");
            };
            // The better of the two drawn goes first ...
            assert!(
                backends[*first].cmp_load(&backends[*second]).is_le(),
                "{order:?}: the busier of the two is first"
            );
            // ... and the rest follow from least to most loaded.
            assert!(
                rest.is_sorted_by(|&a, &b| backends[a]
                    .cmp_load(&backends[b])
                    .is_le()),
                "{order:?}: the rest are not by ascending load"
            );
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..backends.len()).collect::<Vec<_>>());
            firsts[*first] += 1;
        }
        firsts
    }

    #[test]
    fn never_picks_the_busier_of_its_two() {
        // Loads 0, 5, 10: the busiest loses whichever pair it is in.
        let counts = firsts(&loaded(&[(0, 1), (5, 1), (10, 1)]), 30_000);
        assert_eq!(counts[2], 0, "{counts:?}");
        // 1 wins only when drawn with 2: a third of the pairs.
        let share = counts[1] as f64 / 30_000.0;
        assert!((share - 1.0 / 3.0).abs() < 0.01, "{counts:?}");

        // Five backends: the busiest (2) never wins, the idlest (0) wins
        // whenever it is drawn, in 2 pairs of 5; the others' failover
        // order is checked in `firsts`.
        let counts =
            firsts(&loaded(&[(0, 1), (5, 1), (10, 1), (3, 1), (7, 1)]), 20_000);
        assert_eq!(counts[2], 0, "{counts:?}");
        let share = counts[0] as f64 / 20_000.0;
        assert!((share - 0.4).abs() < 0.01, "{counts:?}");
    }

    #[test]
    fn with_two_backends_the_idle_one_always_wins() {
        let counts = firsts(&loaded(&[(3, 1), (0, 1)]), 1_000);
        assert_eq!(counts, [0, 1_000]);
        // Per unit of weight: 3 on weight 4 is less than 1 on weight 1.
        let counts = firsts(&loaded(&[(3, 4), (1, 1)]), 1_000);
        assert_eq!(counts, [1_000, 0]);
    }

    #[test]
    fn draws_by_weight_when_loads_are_equal() {
        // Weights 3 and 1, equal loads with the new client counted
        // ((5 + 1)/3 = (1 + 1)/1): the pair is always both; the first
        // drawn goes first, and it is 0 three times in four.
        let counts = firsts(&loaded(&[(5, 3), (1, 1)]), 40_000);
        let share = counts[0] as f64 / 40_000.0;
        assert!((share - 0.75).abs() < 0.01, "{counts:?}");
    }
}
