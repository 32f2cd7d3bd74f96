//! The algorithm bake-off: `lb`'s six algorithms, one after the other,
//! against the same seeded workload, and what each did to the clients.
//!
//! ```text
//! scripts/bakeoff.sh --quick
//! ```
//!
//! Three scenarios, each with backends served in this process by
//! `dummy-servers`' library ([`backends`]): in "slow" one of three
//! answers 20 ms later than the other two; in "failure" one starts
//! closing every connection half-way through; in "added" a fourth joins
//! the three half-way, through a reload. For each scenario and algorithm a
//! fresh `lb` process ([`lb`], the real binary) gets the same workload
//! ([`plan`], [`clients`]): 8 or more clients, one request per
//! connection, every request recorded. [`stats`] turns the records into
//! shares over time and latency percentiles, [`keys`] counts the client
//! keys that move when a backend comes or goes, [`chart`] draws SVGs and
//! [`report`] writes the table and the Markdown.
//!
//! A tool never tests `lb` with `lb`'s own code: nothing here depends on
//! the `balancer` crate. `lb` is a program at a path, reached over TCP.

pub mod backends;
pub mod chart;
pub mod clients;
pub mod keys;
pub mod lb;
pub mod plan;
pub mod progress;
pub mod report;
pub mod scenario;
pub mod stats;

use std::fmt;
use std::str::FromStr;

pub use lab_common::Error;

/// `lb`'s algorithms, by the names its `--algorithm` and config take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    RoundRobin,
    WeightedRoundRobin,
    Random,
    LeastConnections,
    PowerOfTwo,
    Maglev,
}

impl Algorithm {
    /// Every one, in the order `lb`'s docs list them.
    pub const ALL: [Algorithm; 6] = [
        Algorithm::RoundRobin,
        Algorithm::WeightedRoundRobin,
        Algorithm::Random,
        Algorithm::LeastConnections,
        Algorithm::PowerOfTwo,
        Algorithm::Maglev,
    ];

    /// `least-connections`.
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
                    "unknown algorithm {name:?}: one of {}",
                    names.join(", ")
                )
            })
    }
}

/// Runs the whole bake-off with `lb` at `program`: every scenario with
/// every algorithm, then the key movement.
pub async fn bake(
    program: &std::path::Path,
    size: plan::Size,
    mode: &'static str,
    seed: u64,
    progress: progress::Progress,
) -> Result<report::Bakeoff, Error> {
    let workload = size.workload(seed);
    let mut runs = Vec::new();
    for scenario in scenario::Scenario::ALL {
        for (number, algorithm) in Algorithm::ALL.into_iter().enumerate() {
            let step = format!(
                "{} {}/{}: {algorithm}",
                scenario.name(),
                number + 1,
                Algorithm::ALL.len()
            );
            let run = scenario::run(
                program, scenario, algorithm, &workload, progress, &step,
            )
            .await
            .map_err(|err| format!("{step}: {err}"))?;
            runs.push(run);
        }
    }
    let keys = keys::measure(program, size.keys, 16, seed, progress).await?;
    progress.finish();
    Ok(report::Bakeoff {
        seed,
        size,
        mode,
        lb: program.to_owned(),
        runs,
        keys,
    })
}
