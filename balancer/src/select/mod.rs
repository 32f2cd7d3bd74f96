//! Choosing backends: which backend a new client goes to, and which ones
//! to try after it if that one cannot be reached.
//!
//! Every algorithm is a pure type, one file each, with no I/O: it sees the
//! backends as [`Candidate`]s (weight, open connections, usable or not),
//! a key for the client and, for the random ones, its own generator, and
//! it writes the order in which to try them. The caller (`proxy`) walks
//! that order: the first entry is the client's backend, the rest are the
//! failover order (pingora's `select_with`). Health, limits and draining
//! are decided elsewhere and arrive here as `usable`.
//!
//! - `round_robin.rs`: each backend in turn;
//! - `weighted_round_robin.rs`: in turn by weight, interleaved (nginx);
//! - `random.rs`: a weighted draw;
//! - `least_connections.rs`: the fewest open connections per weight;
//! - `power_of_two.rs`: the less loaded of two random ones;
//! - `maglev.rs`: one client, one backend, by a hash of its address
//!   ([`client_key`]).
//!
//! Every algorithm skips the backends that are not usable, and spreads
//! their share over the others rather than over one neighbour. `pick`
//! runs for every new client: at most a pass over the N candidates
//! (Maglev: a few slots), and a lock, where there is one, only for a
//! draw or, in weighted round robin, one pass. `order` runs for a client
//! whose first backend failed it: it allocates nothing itself (it fills
//! the caller's vector) and costs about a sort of the N backends
//! (Maglev: a walk of about N ln N slots).

mod least_connections;
mod maglev;
mod power_of_two;
mod random;
mod round_robin;
mod weighted_round_robin;

use std::cmp::Ordering;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::{Mutex, MutexGuard, PoisonError};

use rand::SeedableRng;
use rand::rngs::SmallRng;
use xxhash_rust::xxh3::xxh3_64;

pub use least_connections::LeastConnections;
pub use maglev::Maglev;
pub use power_of_two::PowerOfTwo;
pub use random::WeightedRandom;
pub use round_robin::RoundRobin;
pub use weighted_round_robin::SmoothWeighted;

// ANCHOR: candidate
/// What an algorithm may know of one backend at the moment it chooses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Its share of clients relative to the others: at least 1.
    pub weight: u32,
    /// Client connections open to it now.
    pub active: u32,
    /// Whether it may take a new client now: up, not cooling down after
    /// failed connections, not full. An unusable backend is never listed.
    pub usable: bool,
}

/// An algorithm: the order in which to try the backends for one client.
pub trait Select: Send + Sync + fmt::Debug {
    /// Fills `order` (cleared first) with the indices into `backends` of
    /// the usable ones, each at most once, best first. `key` identifies
    /// the client (a hash of its IP address); only algorithms that keep a
    /// client on one backend read it.
    ///
    /// `backends` always has the length and the order of the list the
    /// algorithm was built for.
    fn order(&self, backends: &[Candidate], key: u64, order: &mut Vec<usize>);

    /// The client's backend: what `order` would list first, taking the
    /// same turn. A new client needs one backend, and only failover the
    /// others, so the six algorithms here find it without ordering the
    /// rest; this default, for any other, orders them all. `None` when
    /// no backend is usable.
    fn pick(&self, backends: &[Candidate], key: u64) -> Option<usize> {
        let mut order = Vec::with_capacity(backends.len());
        self.order(backends, key, &mut order);
        order.first().copied()
    }

    /// The client's backend if it is usable, found without looking at
    /// the others: what `pick` gives, and the same turn taken, when
    /// every backend is usable. The caller checks that one backend and
    /// calls `pick` only if it is not usable, so with many backends a
    /// client costs one look instead of one per backend. `None` from the
    /// algorithms whose choice depends on all of them (loads, weights,
    /// turns shared among the usable ones).
    fn probe(&self, _count: usize, _key: u64) -> Option<usize> {
        None
    }

    /// Whether it reads [`Candidate::active`]. While every backend is
    /// usable the pool hands those that do not the same candidates
    /// each time instead of reading every backend's open connections.
    /// Yes unless an algorithm says no.
    fn reads_loads(&self) -> bool {
        true
    }

    /// A copy of its state (a turn, a generator, current weights), on
    /// which `order` tells what the next client would get without
    /// taking that client's turn (`/api/explain`). `None` for an
    /// algorithm whose `order` changes nothing.
    fn copy(&self) -> Option<Box<dyn Select>> {
        None
    }
}
// ANCHOR_END: candidate

/// The algorithms `lb` offers, by the names used in the config file and
/// on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Algorithm {
    /// Each backend in turn.
    #[default]
    RoundRobin,
    /// In turn, each as often as its weight says, interleaved (nginx's
    /// smooth weighted round robin).
    WeightedRoundRobin,
    /// A weighted random draw.
    Random,
    /// The backend with the fewest open connections per unit of weight.
    LeastConnections,
    /// Two backends at random, the less loaded of the two.
    PowerOfTwo,
    /// Consistent hashing of the client's IP address over Maglev's
    /// lookup table: one client, one backend, across restarts and
    /// across `lb` instances.
    Maglev,
}

impl Algorithm {
    /// Every algorithm, in the order the docs list them.
    pub const ALL: [Algorithm; 6] = [
        Algorithm::RoundRobin,
        Algorithm::WeightedRoundRobin,
        Algorithm::Random,
        Algorithm::LeastConnections,
        Algorithm::PowerOfTwo,
        Algorithm::Maglev,
    ];

    /// The name in the config file and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::RoundRobin => "round-robin",
            Algorithm::WeightedRoundRobin => "weighted-round-robin",
            Algorithm::Random => "random",
            Algorithm::LeastConnections => "least-connections",
            Algorithm::PowerOfTwo => "power-of-two",
            Algorithm::Maglev => "maglev",
        }
    }

    /// Whether the algorithm reads weights. `round-robin` does not, and
    /// the config refuses a weight other than 1 with it rather than
    /// ignore it.
    pub fn uses_weights(self) -> bool {
        self != Algorithm::RoundRobin
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = String;

    fn from_str(name: &str) -> Result<Algorithm, String> {
        Algorithm::ALL
            .into_iter()
            .find(|algorithm| algorithm.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> =
                    Algorithm::ALL.iter().map(|a| a.name()).collect();
                format!(
                    "unknown algorithm `{name}`; choose one of {}",
                    names.join(", ")
                )
            })
    }
}

/// What an algorithm is built from: each backend's stable id and weight,
/// in the order of the config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    pub weight: u32,
}

/// Builds `algorithm` for `members` (at least one). The random ones
/// (`random`, `power-of-two`) seed their generator from `seed`, or from
/// the operating system when there is none.
pub fn build(
    algorithm: Algorithm,
    members: &[Member],
    seed: Option<u64>,
) -> Box<dyn Select> {
    let rng = match seed {
        Some(seed) => SmallRng::seed_from_u64(seed),
        None => rand::make_rng(),
    };
    build_with(algorithm, members, rng)
}

fn build_with(
    algorithm: Algorithm,
    members: &[Member],
    rng: SmallRng,
) -> Box<dyn Select> {
    let count = members.len();
    match algorithm {
        Algorithm::RoundRobin => Box::new(RoundRobin::new()),
        Algorithm::WeightedRoundRobin => Box::new(SmoothWeighted::new(count)),
        Algorithm::Random => Box::new(WeightedRandom::new(rng)),
        Algorithm::LeastConnections => Box::new(LeastConnections::new()),
        Algorithm::PowerOfTwo => Box::new(PowerOfTwo::new(rng)),
        Algorithm::Maglev => Box::new(Maglev::new(members)),
    }
}

/// The key `proxy` passes to [`Select::order`] for a client: a hash of
/// its IP address (not the port, which changes with every connection).
///
/// The hash is XXH3-64 with seed 0 over the address's bytes (4 for IPv4,
/// 16 for IPv6): a fixed function with a published specification, so two
/// `lb` processes, two builds, and two machines compute the same key for
/// one client, and Maglev sends it to the same backend. Rust's own
/// `HashMap` hasher would not do: it is seeded at random in every process.
///
/// An IPv4 client that reaches an IPv6 socket shows up as
/// `::ffff:a.b.c.d`; `to_canonical` turns it back into `a.b.c.d`, so it
/// gets one key whichever way it came in.
pub fn client_key(ip: IpAddr) -> u64 {
    match ip.to_canonical() {
        IpAddr::V4(v4) => xxh3_64(&v4.octets()),
        IpAddr::V6(v6) => xxh3_64(&v6.octets()),
    }
}

impl Candidate {
    // ANCHOR: cmp_load
    /// Compares two backends' load as nginx does: the connections each
    /// would hold with this client, per unit of weight, `(active + 1) /
    /// weight`. The `+ 1` matters when a backend is empty: by `active /
    /// weight` every empty backend weighs 0 and a backend in its slow
    /// start (a small weight) would tie with the others, and win its turn
    /// of every tie, however small its weight.
    ///
    /// Without floats: `a / wa < b / wb` exactly when `a * wb < b * wa`
    /// (weights are positive). `u64` holds the product of a `u32` + 1 and
    /// a `u32`, so it cannot overflow, and there is no rounding to make
    /// two loads look equal.
    fn cmp_load(&self, other: &Candidate) -> Ordering {
        let with_me = |c: &Candidate| u64::from(c.active) + 1;
        let mine = with_me(self) * u64::from(other.weight);
        let theirs = with_me(other) * u64::from(self.weight);
        mine.cmp(&theirs)
    }
    // ANCHOR_END: cmp_load
}

/// Locks `mutex` even if a thread panicked while holding it. The
/// algorithms' state (current weights, a generator) is plain numbers that
/// any values leave valid, so there is no reason for every later client to
/// fail with the one that panicked.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The indices of the usable backends, in list order.
fn usable(backends: &[Candidate]) -> impl Iterator<Item = usize> + Clone + '_ {
    backends
        .iter()
        .enumerate()
        .filter(|(_, backend)| backend.usable)
        .map(|(index, _)| index)
}

/// The one usable backend, when there is only one: `Ok(None)` with none,
/// `Ok(Some(index))` with one, `Err(())` with two or more. The random
/// algorithms draw only in the last case, as their `order` does.
fn nothing_to_draw(backends: &[Candidate]) -> Result<Option<usize>, ()> {
    let mut usable = usable(backends);
    match (usable.next(), usable.next()) {
        (None, _) => Ok(None),
        (Some(only), None) => Ok(Some(only)),
        (Some(_), Some(_)) => Err(()),
    }
}

/// The total weight of the usable backends, `skip` left out.
fn usable_weight(backends: &[Candidate], skip: Option<usize>) -> u64 {
    usable(backends)
        .filter(|&index| Some(index) != skip)
        .map(|index| u64::from(backends[index].weight))
        .sum()
}

/// The usable backend (not `skip`) that the weighted draw `point`, in
/// `0..` their [`usable_weight`], lands on: the usable backends lined up
/// end to end in list order, each as long as its weight.
fn landing(
    backends: &[Candidate],
    skip: Option<usize>,
    mut point: u64,
) -> usize {
    for index in usable(backends).filter(|&index| Some(index) != skip) {
        let weight = u64::from(backends[index].weight);
        if point < weight {
            return index;
        }
        point -= weight;
    }
    unreachable!("the draw is below the total of the weights")
}

/// Appends to `order` the indices of the usable backends, in list order.
fn push_usable(backends: &[Candidate], order: &mut Vec<usize>) {
    order.extend(usable(backends));
}

#[cfg(test)]
mod tests {
    use rand::{Rng, RngExt};

    use super::*;

    /// Like [`build`], with the random ones' generator seeded from
    /// `seed`, so that a test sees the same draws on every run.
    fn build_seeded(
        algorithm: Algorithm,
        members: &[Member],
        seed: u64,
    ) -> Box<dyn Select> {
        build_with(algorithm, members, SmallRng::seed_from_u64(seed))
    }

    fn members(count: usize) -> Vec<Member> {
        (0..count)
            .map(|index| Member {
                id: format!("127.0.0.1:{}", 4444 + index),
                weight: 1,
            })
            .collect()
    }

    #[test]
    fn every_algorithm_lists_exactly_the_usable_backends() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut order = Vec::new();
        for algorithm in Algorithm::ALL {
            let select = build_seeded(algorithm, &members(6), 1);
            for round in 0..200 {
                // Random weights, loads and usable backends; every
                // subset, the empty one included, comes up.
                let backends: Vec<Candidate> = (0..6)
                    .map(|_| Candidate {
                        weight: rng.random_range(1..=4),
                        active: rng.random_range(0..5),
                        usable: rng.random_bool(0.5),
                    })
                    .collect();
                select.order(&backends, rng.next_u64(), &mut order);
                let usable: Vec<usize> =
                    (0..6).filter(|&index| backends[index].usable).collect();
                let mut listed = order.clone();
                listed.sort_unstable();
                assert_eq!(
                    listed, usable,
                    "{algorithm}, round {round}: {order:?} for {backends:?}"
                );
            }
            // None usable: nothing to try.
            let down = [Candidate {
                weight: 1,
                active: 0,
                usable: false,
            }; 6];
            select.order(&down, 7, &mut order);
            assert!(order.is_empty(), "{algorithm}: {order:?}");
        }
    }

    /// `pick` is what `order` lists first, and takes the same turn: two
    /// copies of an algorithm, one asked for the whole order and one
    /// for the first only, agree client after client, over random
    /// weights, loads, keys and usable sets, from 1 to 40 backends.
    #[test]
    fn pick_is_the_head_of_the_order_and_takes_the_same_turn() {
        let mut rng = SmallRng::seed_from_u64(3);
        let mut order = Vec::new();
        for algorithm in Algorithm::ALL {
            for count in [1, 2, 3, 7, 40] {
                let whole = build_seeded(algorithm, &members(count), 3);
                let head = build_seeded(algorithm, &members(count), 3);
                for round in 0..300 {
                    let backends: Vec<Candidate> = (0..count)
                        .map(|_| Candidate {
                            weight: rng.random_range(1..=4),
                            active: rng.random_range(0..3),
                            usable: rng.random_bool(0.7),
                        })
                        .collect();
                    let key = rng.next_u64();
                    whole.order(&backends, key, &mut order);
                    assert_eq!(
                        head.pick(&backends, key),
                        order.first().copied(),
                        "{algorithm}, {count} backends, round {round}: \
                         {backends:?}"
                    );
                }
            }
        }
    }

    /// `probe`, where an algorithm has one, is `pick` when every backend
    /// is usable, turn for turn.
    #[test]
    fn a_probe_is_the_first_choice_while_every_backend_is_usable() {
        let mut rng = SmallRng::seed_from_u64(4);
        let mut probed = 0;
        for algorithm in Algorithm::ALL {
            for count in [1, 2, 3, 40] {
                let whole = build_seeded(algorithm, &members(count), 4);
                let probe = build_seeded(algorithm, &members(count), 4);
                let backends = testing::up(count);
                for _ in 0..100 {
                    let key = rng.next_u64();
                    let Some(index) = probe.probe(count, key) else {
                        break;
                    };
                    probed += 1;
                    assert_eq!(
                        Some(index),
                        whole.pick(&backends, key),
                        "{algorithm}, {count} backends"
                    );
                }
            }
        }
        // Maglev has one. (Round robin has none: the turn's backend in
        // the whole list, when it is down, would hand its turn on in an
        // order other than the rotation over the usable ones.)
        assert_eq!(probed, 4 * 100);
    }

    /// With backend 1 of 4 down, each of the other three gets a third of
    /// the clients: the unusable one's share is spread, not handed to the
    /// backend listed after it.
    #[test]
    fn every_algorithm_spreads_a_down_backends_share() {
        let mut keys = SmallRng::seed_from_u64(2);
        let mut backends = [Candidate {
            weight: 1,
            active: 0,
            usable: true,
        }; 4];
        backends[1].usable = false;
        let mut order = Vec::new();
        for algorithm in Algorithm::ALL {
            let select = build_seeded(algorithm, &members(4), 2);
            let mut firsts = [0u32; 4];
            for _ in 0..30_000 {
                select.order(&backends, keys.next_u64(), &mut order);
                firsts[order[0]] += 1;
            }
            assert_eq!(firsts[1], 0, "{algorithm}");
            for index in [0, 2, 3] {
                let share = f64::from(firsts[index]) / 30_000.0;
                assert!(
                    (share - 1.0 / 3.0).abs() < 0.02,
                    "{algorithm}: {firsts:?}"
                );
            }
        }
    }

    #[test]
    fn client_key_is_one_per_address_whichever_way_it_came() {
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        assert_eq!(client_key(v4), client_key(mapped));
        assert_ne!(client_key(v4), client_key(other));
    }

    /// One seed, one sequence of picks: what `--seed` promises.
    #[test]
    fn a_seed_repeats_the_random_algorithms_picks() {
        let backends = testing::up(5);
        let picks = |algorithm: Algorithm, seed: Option<u64>| {
            let select = build(algorithm, &members(5), seed);
            let mut order = Vec::new();
            (0..50)
                .map(|_| {
                    select.order(&backends, 0, &mut order);
                    order[0]
                })
                .collect::<Vec<usize>>()
        };
        for algorithm in [Algorithm::Random, Algorithm::PowerOfTwo] {
            assert_eq!(
                picks(algorithm, Some(7)),
                picks(algorithm, Some(7)),
                "{algorithm}"
            );
            assert_ne!(
                picks(algorithm, Some(7)),
                picks(algorithm, Some(8)),
                "{algorithm}"
            );
        }
    }

    #[test]
    fn names_parse_back() {
        for algorithm in Algorithm::ALL {
            assert_eq!(algorithm.name().parse(), Ok(algorithm));
        }
        let error = "fastest".parse::<Algorithm>().unwrap_err();
        assert!(
            error.contains("round-robin, weighted-round-robin"),
            "{error}"
        );
    }
}

/// Candidates for the algorithms' unit tests.
#[cfg(test)]
mod testing {
    use super::Candidate;

    /// Usable backends with these (active connections, weight).
    pub fn loaded(loads: &[(u32, u32)]) -> Vec<Candidate> {
        loads
            .iter()
            .map(|&(active, weight)| Candidate {
                weight,
                active,
                usable: true,
            })
            .collect()
    }

    /// Idle usable backends with these weights.
    pub fn weighted(weights: &[u32]) -> Vec<Candidate> {
        let loads: Vec<(u32, u32)> = weights.iter().map(|&w| (0, w)).collect();
        loaded(&loads)
    }

    /// `count` idle usable backends of weight 1.
    pub fn up(count: usize) -> Vec<Candidate> {
        weighted(&vec![1; count])
    }
}
