//! `lb` in the algorithm bake-off (the `bakeoff` crate, behind
//! `scripts/bakeoff.sh`), at a small size, with this package's real `lb`
//! binary as a process: the directions the bake-off's report stands on,
//! not its figures, which vary with the machine.

use std::path::Path;
use std::time::Duration;

use bakeoff::plan::Size;
use bakeoff::progress::Progress;
use bakeoff::scenario::{self, ODD_ONE, Scenario};
use bakeoff::stats::{self, Summary};
use bakeoff::{Algorithm, keys};
use lab_common::testing::deadline;
use tokio::sync::Mutex;

/// One test of this file at a time: the slow backend's test compares
/// latencies, which another test's load on the machine would blur.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// How much later the slow backend answers here. The fast ones take 2 to
/// 4 ms in a debug build on a busy machine (the backends and clients
/// run in this test), so the bake-off's 20 ms would make the slow one
/// only five to ten times slower, and its share under least connections
/// sit near the tenth at which the p90 changes sides. 60 ms keeps it
/// about 20 times slower, as the bake-off's is in a release build.
const SLOW: Duration = Duration::from_millis(60);

fn lb() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_lb"))
}

async fn slow_run(algorithm: Algorithm) -> Summary {
    let workload = Size::SMALL.workload(1);
    let run = scenario::run(
        lb(),
        Scenario::Slow(SLOW),
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

/// With one backend about 20 times slower than the other two, round
/// robin gives it its third all the same; least connections and power of
/// two see its connections pile up and send it fewer, and the clients'
/// p90 drops with its share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_connections_and_power_of_two_spare_a_slow_backend() {
    let _alone = ONE_AT_A_TIME.lock().await;
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

/// Maglev's table depends only on the backend list, so removing one of
/// five moves about its fifth of the keys; a modulo hash moves about
/// four fifths, and round robin, which ignores the client, most.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_one_of_five_moves_a_fifth_under_maglev() {
    let _alone = ONE_AT_A_TIME.lock().await;
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
    // The report's bound, a fifth + 2%, is for 10,000 keys. A sample of
    // 1,000 lands within 5% of a fifth (four standard deviations): the
    // backends' ports, and so maglev's table, change from run to run.
    assert!(maglev.removed.fraction() < 0.25, "{maglev:?}");
    assert!(maglev.added.fraction() < 0.25, "{maglev:?}");
    let modulo = find("modulo hash");
    assert!(modulo.removed.fraction() > 0.7, "{modulo:?}");
    let round_robin = find("round-robin");
    assert!(round_robin.removed.fraction() > 0.5, "{round_robin:?}");
}

/// A fourth backend written into the config file, then SIGHUP: `lb`
/// reloads without a restart, the clients' requests go on without an
/// error, and the new backend answers from then on, never before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_added_by_a_reload_is_used_from_then_on() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let workload = Size::SMALL.workload(1);
    let run = scenario::run(
        lb(),
        Scenario::Added,
        Algorithm::RoundRobin,
        &workload,
        Progress::Quiet,
        "added",
    );
    let run = deadline("added", run)
        .await
        .unwrap_or_else(|err| panic!("added: {err}"));
    let (added_at, _) = run.change.expect("the scenario adds a backend");
    let errors: Vec<_> =
        run.records.iter().filter(|r| r.outcome.is_err()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    let by_the_fourth =
        |record: &&bakeoff::clients::Record| record.outcome == Ok(3);
    let first = run.records.iter().find(by_the_fourth);
    let first = first.expect("the added backend answered no one");
    assert!(first.start >= added_at, "{first:?} before {added_at:?}");
    let summary = stats::summarize(&run.records, run.names.len());
    assert!(summary.shares[3] > 0.05, "{summary:?}");
}
