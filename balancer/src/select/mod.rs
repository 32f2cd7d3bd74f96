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

use std::fmt;
use std::str::FromStr;

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

/// Builds `algorithm` for `members` (at least one). (Temporary: every
/// algorithm is round robin until the select slice lands.)
pub fn build(algorithm: Algorithm, members: &[Member]) -> Box<dyn Select> {
    let _ = (algorithm, members);
    Box::new(TemporaryRoundRobin::default())
}

/// The key of a client (temporary).
pub fn client_key(ip: std::net::IpAddr) -> u64 {
    match ip {
        std::net::IpAddr::V4(v4) => u64::from(u32::from(v4)),
        std::net::IpAddr::V6(v6) => u128::from(v6) as u64,
    }
}

#[derive(Debug, Default)]
struct TemporaryRoundRobin {
    next: std::sync::atomic::AtomicUsize,
}

impl Select for TemporaryRoundRobin {
    fn order(&self, backends: &[Candidate], _key: u64, order: &mut Vec<usize>) {
        order.clear();
        let n = backends.len();
        let start =
            self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % n;
        order.extend(
            (0..n)
                .map(|i| (start + i) % n)
                .filter(|&i| backends[i].usable),
        );
    }
}
