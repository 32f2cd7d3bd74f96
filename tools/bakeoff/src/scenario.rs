//! The scenarios, and one algorithm's run through one: fresh backends
//! in their fault modes, a fresh `lb`, the workload, the change (a
//! failure, a backend added) at its moment, then everything stopped,
//! also when something fails.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dummy_servers::Fault;
use tokio::time::Instant;

use crate::backends::Backends;
use crate::clients::{self, Record};
use crate::lb::{Health, Lb, Setup};
use crate::plan::Workload;
use crate::progress::Progress;
use crate::{Algorithm, Error};

/// How much later than the others the slow backend answers in the
/// bake-off ([`Scenario::SLOW`]). The others add no delay of their own:
/// through `lb` they answer in about a millisecond (half of one on a
/// quiet machine), what a new connection through a proxy and back
/// costs, so the slow one takes 20 to 40 times as long. A fast backend
/// at `slow/1` took 3 to 4 ms on a busy machine (a timer of 1 ms fires
/// after 1 to 2), which left the slow one only six times slower.
pub const SLOW: Duration = Duration::from_millis(20);

/// How often `lb` checks each backend in the failure scenario: often, so
/// that a run of a few seconds shows the checks at work.
pub const CHECK_INTERVAL: Duration = Duration::from_millis(200);

/// The odd one out of the slow and failure scenarios: the third.
pub const ODD_ONE: usize = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Three backends, the third answering this much later than the
    /// others.
    Slow(Duration),
    /// Three equal backends; half-way, the third starts closing every
    /// connection without an answer. `lb` checks `GET /health` every
    /// [`CHECK_INTERVAL`], which the failing backend fails too.
    Failure,
    /// Three equal backends; half-way through, a fourth joins them
    /// through a reload: `lb`'s config file rewritten, then SIGHUP.
    Added,
}

impl Scenario {
    /// The bake-off's slow scenario: [`SLOW`].
    pub const SLOW: Scenario = Scenario::Slow(SLOW);

    /// The scenarios the bake-off runs, in order.
    pub const ALL: [Scenario; 3] =
        [Scenario::SLOW, Scenario::Failure, Scenario::Added];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Slow(_) => "slow",
            Scenario::Failure => "failure",
            Scenario::Added => "added",
        }
    }

    /// What happens in it, in a sentence.
    pub fn about(self) -> String {
        match self {
            Scenario::Slow(delay) => format!(
                "three backends; b1 and b2 answer at once, b3 {} ms later \
                 (fault mode slow/{}). No health checks.",
                delay.as_millis(),
                delay.as_millis()
            ),
            Scenario::Failure => format!(
                "three backends answering at once; half-way through, b3 \
                 starts closing every connection without an answer (fault \
                 mode close), /health included. lb checks GET /health every \
                 {} ms: two failures take a backend out.",
                CHECK_INTERVAL.as_millis()
            ),
            Scenario::Added => "three backends answering at once; half-way \
                through, lb's config file gets a fourth, b4, and lb a SIGHUP \
                to read it again: a reload, with no restart. No health \
                checks."
                .to_owned(),
        }
    }

    /// The backends as the report names them.
    pub fn backend_names(self) -> Vec<String> {
        let mut names = vec!["b1".to_owned(), "b2".to_owned()];
        names.push(match self {
            Scenario::Slow(delay) => format!("b3 +{} ms", delay.as_millis()),
            Scenario::Failure => "b3 fails half-way".to_owned(),
            Scenario::Added => "b3".to_owned(),
        });
        if self == Scenario::Added {
            names.push("b4 added half-way".to_owned());
        }
        names
    }

    /// Each backend's fault mode from the start, one per backend served.
    fn faults(self) -> Vec<Fault> {
        match self {
            Scenario::Slow(delay) => {
                vec![Fault::None, Fault::None, Fault::Slow(delay)]
            }
            Scenario::Failure => vec![Fault::None; 3],
            Scenario::Added => vec![Fault::None; 4],
        }
    }

    /// How many of the backends served `lb` is told of at the start.
    fn at_start(self) -> usize {
        3
    }

    fn health(self) -> Health {
        match self {
            Scenario::Slow(_) | Scenario::Added => Health::Off,
            Scenario::Failure => Health::Http {
                interval: CHECK_INTERVAL,
            },
        }
    }

    /// What changes half-way through a run of `duration`, and when, as a
    /// chart's marker says it.
    pub fn change(
        self,
        duration: Duration,
    ) -> Option<(Duration, &'static str)> {
        match self {
            Scenario::Slow(_) => None,
            Scenario::Failure => Some((duration / 2, "b3 starts failing")),
            Scenario::Added => Some((duration / 2, "b4 added")),
        }
    }
}

/// One algorithm's run through one scenario.
#[derive(Clone, Debug)]
pub struct Run {
    pub scenario: Scenario,
    pub algorithm: Algorithm,
    /// The backends, as [`Scenario::backend_names`].
    pub names: Vec<String>,
    pub duration: Duration,
    /// When the scenario's change came, and what it was.
    pub change: Option<(Duration, &'static str)>,
    /// Every request, by start time.
    pub records: Vec<Record>,
}

/// Runs `workload` through `lb` (`program`) with `algorithm`, in
/// `scenario`. `step` heads the progress line.
pub async fn run(
    program: &Path,
    scenario: Scenario,
    algorithm: Algorithm,
    workload: &Workload,
    progress: Progress,
    step: &str,
) -> Result<Run, Error> {
    progress.step(&format!("{step}: starting"));
    let faults = scenario.faults();
    let backends = Backends::start(faults.len()).await?;
    for (index, fault) in faults.into_iter().enumerate() {
        if fault != Fault::None {
            backends.set_fault(index, fault).await?;
        }
    }
    let mut setup = Setup {
        algorithm,
        seed: workload.seed,
        backends: backends.addrs[..scenario.at_start()].to_vec(),
        health: scenario.health(),
    };
    // Dropped on the error paths below: lb is killed, the backends
    // stopped.
    let mut lb = Lb::start(program, &setup).await?;
    let lb_addr = lb.addr;

    let origin = Instant::now();
    let done = Arc::new(AtomicUsize::new(0));
    let change = scenario.change(workload.duration);
    let changed = async {
        if let Some((at, _)) = change {
            tokio::time::sleep_until(origin + at).await;
            match scenario {
                Scenario::Failure => {
                    backends.set_fault(ODD_ONE, Fault::Close).await?;
                }
                Scenario::Added => {
                    setup.backends = backends.addrs.clone();
                    lb.reload(&setup).await?;
                }
                Scenario::Slow(_) => {}
            }
        }
        Ok::<(), Error>(())
    };
    let clients =
        clients::run(lb_addr, workload, &backends.addrs, origin, done.clone());
    // Ends when the clients do, which the workload's duration bounds.
    let (records, changed) = {
        let work = async { tokio::join!(clients, changed) };
        let mut work = std::pin::pin!(work);
        let mut ticks = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                out = &mut work => break out,
                _ = ticks.tick() => progress.tick(&format!(
                    "{step}: {:.1} of {:.1} s, {} requests",
                    origin.elapsed().as_secs_f64().min(
                        workload.duration.as_secs_f64()
                    ),
                    workload.duration.as_secs_f64(),
                    done.load(Ordering::Relaxed)
                )),
            }
        }
    };
    let stopped = lb.stop().await;
    backends.stop().await;
    changed?;
    stopped?;
    Ok(Run {
        scenario,
        algorithm,
        names: scenario.backend_names(),
        duration: workload.duration,
        change,
        records,
    })
}
