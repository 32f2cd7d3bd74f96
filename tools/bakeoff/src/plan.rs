//! The workload every algorithm gets, drawn from one seed: how many
//! clients run at once, for how long, and, for each of them, the
//! sequence of client addresses it connects from and the pauses between
//! its requests. Two runs with the same seed send the same sequence.

use std::net::Ipv4Addr;
use std::time::Duration;

/// SplitMix64 (Steele, Lea and Flood, 2014): a generator of a few lines
/// whose output is fixed by its definition, so a seed means the same
/// workload in every build, whatever a crate's next version does.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// A number in `0..n` (`n` > 0), by multiply-and-shift: its bias is
    /// under n / 2^64, far below anything a chart shows.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// SplitMix64's finaliser: every bit of the input moves about half the
/// bits of the output. Also the modulo hash's hash (see `keys`).
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The first of the workload's client addresses. All of 127.0.0.0/8 is
/// the loopback interface on Linux, so a client can bind any of them
/// before connecting, and `lb` sees each as another client's IP: what
/// maglev hashes.
pub const FIRST_CLIENT: Ipv4Addr = Ipv4Addr::new(127, 2, 0, 1);

/// The first of the key-movement clients' addresses (see `keys`),
/// apart from the workload's.
pub const FIRST_KEY: Ipv4Addr = Ipv4Addr::new(127, 1, 0, 1);

/// The `index`th address from `first` on.
pub fn client_ip(first: Ipv4Addr, index: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(first).wrapping_add(index))
}

/// What every algorithm of a scenario is given.
#[derive(Clone, Debug)]
pub struct Workload {
    pub seed: u64,
    /// Clients running at once, each one request at a time.
    pub lanes: usize,
    /// How long the clients go on starting requests.
    pub duration: Duration,
    /// Distinct client addresses the requests come from.
    pub clients: u32,
    /// The longest pause a client makes between two requests.
    pub max_pause: Duration,
}

/// One client's next request: where it connects from, after what pause.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    pub from: Ipv4Addr,
    pub pause: Duration,
}

/// One client's sequence of steps.
#[derive(Clone, Debug)]
pub struct Lane {
    draws: SplitMix64,
    clients: u32,
    max_pause_us: u64,
}

impl Workload {
    /// Client `lane`'s sequence: its own generator, seeded from the
    /// workload's seed and its number, so that it does not depend on how
    /// fast the other clients go.
    pub fn lane(&self, lane: usize) -> Lane {
        Lane {
            draws: SplitMix64::new(self.seed ^ mix(lane as u64 + 1)),
            clients: self.clients.max(1),
            max_pause_us: self.max_pause.as_micros() as u64,
        }
    }
}

impl Iterator for Lane {
    type Item = Step;

    fn next(&mut self) -> Option<Step> {
        let client = self.draws.below(u64::from(self.clients)) as u32;
        let pause = self.draws.below(self.max_pause_us + 1);
        Some(Step {
            from: client_ip(FIRST_CLIENT, client),
            pause: Duration::from_micros(pause),
        })
    }
}

/// How big a bake-off is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size {
    /// Clients at once.
    pub lanes: usize,
    /// Each algorithm's run, per scenario.
    pub run: Duration,
    /// Client keys for the key-movement count.
    pub keys: u32,
    /// Time buckets of the share charts.
    pub buckets: usize,
}

impl Size {
    /// `--quick`: under a minute for the whole bake-off, once built.
    pub const QUICK: Size = Size {
        lanes: 8,
        run: Duration::from_millis(1500),
        // Half the full count: the key runs are most of a quick run's
        // time, and 5,000 still measure a fifth to within 0.6% (one
        // standard deviation), well inside the 2% that maglev may add.
        keys: 5_000,
        buckets: 20,
    };

    /// The default: longer runs, smoother curves.
    pub const FULL: Size = Size {
        lanes: 16,
        run: Duration::from_secs(8),
        keys: 10_000,
        buckets: 40,
    };

    /// For tests: enough to see a direction, not to measure it well.
    pub const SMALL: Size = Size {
        lanes: 8,
        run: Duration::from_millis(1000),
        keys: 1000,
        buckets: 10,
    };

    /// The workload of this size for `seed`.
    pub fn workload(&self, seed: u64) -> Workload {
        Workload {
            seed,
            lanes: self.lanes,
            duration: self.run,
            clients: 256,
            max_pause: Duration::from_millis(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_gives_its_published_sequence() {
        // The first outputs for seed 1234567 (from the reference code).
        let mut draws = SplitMix64::new(1234567);
        assert_eq!(draws.next_u64(), 6457827717110365317);
        assert_eq!(draws.next_u64(), 3203168211198807973);
    }

    #[test]
    fn below_stays_below_and_reaches_every_value() {
        let mut draws = SplitMix64::new(7);
        let mut seen = [0u32; 5];
        for _ in 0..10_000 {
            seen[draws.below(5) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| (1800..2200).contains(&n)), "{seen:?}");
    }

    #[test]
    fn a_lane_repeats_for_its_seed_and_differs_between_lanes() {
        let workload = Size::SMALL.workload(3);
        let first: Vec<Step> = workload.lane(0).take(50).collect();
        assert_eq!(first, workload.lane(0).take(50).collect::<Vec<_>>());
        assert_ne!(first, workload.lane(1).take(50).collect::<Vec<_>>());
        for step in &first {
            assert!(step.pause <= workload.max_pause);
            let last = client_ip(FIRST_CLIENT, workload.clients - 1);
            assert!(step.from >= FIRST_CLIENT && step.from <= last);
        }
    }

    #[test]
    fn client_addresses_count_on_from_the_first() {
        assert_eq!(client_ip(FIRST_KEY, 0), Ipv4Addr::new(127, 1, 0, 1));
        assert_eq!(client_ip(FIRST_KEY, 255), Ipv4Addr::new(127, 1, 1, 0));
        assert_eq!(client_ip(FIRST_KEY, 9_999), Ipv4Addr::new(127, 1, 39, 16));
    }
}
