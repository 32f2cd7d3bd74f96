//! `lb` in the algorithm bake-off (the `bakeoff` crate, behind
//! `scripts/bakeoff.sh`), at a small size, with this package's real `lb`
//! binary as a process: the directions the bake-off's report stands on,
//! not its figures, which vary with the machine.

use std::path::Path;

use bakeoff::plan::Size;
use bakeoff::progress::Progress;
use bakeoff::scenario::{self, ODD_ONE, Scenario};
use bakeoff::stats::{self, Summary};
use bakeoff::{Algorithm, keys};
use lab_common::testing::deadline;

fn lb() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_lb"))
}

async fn slow_run(algorithm: Algorithm) -> Summary {
    let workload = Size::SMALL.workload(1);
    let run = scenario::run(
        lb(),
        Scenario::Slow,
        algorithm,
        &workload,
        Progress::Quiet,
        algorithm.name(),
    );
    let run = deadline(algorithm.name(), run)
        .await
        .unwrap_or_else(|err| panic!("{algorithm}: {err}"));
    stats::summarize(&run.records, run.names.len())
}

/// With one backend 20 ms slower than the other two (which answer in a
/// millisecond or two), round robin gives it its third all the same;
/// least connections and power of two see its connections pile up and
/// send it fewer, and the clients' p90 drops with its share: to a fast
/// answer once it is under a tenth, and a little even above (p90 then
/// falls among the slow answers, but lower among them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_connections_and_power_of_two_spare_a_slow_backend() {
    let round_robin = slow_run(Algorithm::RoundRobin).await;
    assert_eq!(round_robin.errors, 0, "{round_robin:?}");
    for algorithm in [Algorithm::LeastConnections, Algorithm::PowerOfTwo] {
        let summary = slow_run(algorithm).await;
        println!("{algorithm}: {summary:?}\nround-robin: {round_robin:?}");
        assert_eq!(summary.errors, 0, "{algorithm}: {summary:?}");
        assert!(
            summary.shares[ODD_ONE] < round_robin.shares[ODD_ONE],
            "{algorithm} gave the slow backend no less than round robin: \
             {summary:?} against {round_robin:?}"
        );
        assert!(
            summary.p90 < round_robin.p90,
            "{algorithm}'s p90 is no lower than round robin's: {summary:?} \
             against {round_robin:?}"
        );
    }
}

/// Maglev's tables depend only on the backend list, so removing one of
/// five moves about its fifth of the keys; a modulo hash moves about
/// four fifths.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_one_of_five_moves_a_fifth_under_maglev() {
    let keys = Size::SMALL.keys;
    let moves = keys::measure(lb(), keys, 8, 1, Progress::Quiet);
    let moves = deadline("key movement", moves)
        .await
        .unwrap_or_else(|err| panic!("key movement: {err}"));
    let find = |name: &str| {
        moves
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no {name} in {moves:?}"))
    };
    let maglev = find("maglev");
    assert_eq!(maglev.removed.measured, keys as usize, "{maglev:?}");
    assert!(maglev.removed.fraction() <= 0.22, "{maglev:?}");
    assert!(maglev.added.fraction() <= 0.22, "{maglev:?}");
    let modulo = find("modulo hash");
    assert!(modulo.removed.fraction() > 0.7, "{modulo:?}");
    let round_robin = find("round-robin");
    assert!(round_robin.removed.fraction() > 0.5, "{round_robin:?}");
}
