//! The exercise of the chapter "lb — when things go wrong".

use fault_suite::{Case, Ctx, cases};
use lab_common::testing::deadline;

/// The case to write: clients that send their request, close their
/// sending side (`shutdown`, as `nc -N` does), and wait for the answer.
const CASE: &str = "half-closed-clients";

/// The suite has a case `half-closed-clients` that checks something,
/// and `lb` passes it at the small size, as `tests/faults.rs` runs
/// every case.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "exercise lb-fault-case: scripts/exercise.sh lb-fault-case"]
async fn a_case_of_your_own_holds_for_lb() {
    let Some(case) = Case::from_name(CASE) else {
        panic!(
            "the fault suite has no case {CASE}: write it in \
             tools/fault-suite/src/cases/clients.rs and list it in \
             cases/mod.rs"
        );
    };
    let ctx = Ctx::small_lb(env!("CARGO_BIN_EXE_lb")).expect("a context");
    let report = deadline(CASE, cases::run(case, &ctx)).await;
    let failures = report.failures();
    assert!(
        failures.is_empty(),
        "lb fails {CASE}: {}\n{report}",
        failures.join("; ")
    );
    assert!(
        report.to_string().contains("\n  ok   "),
        "{CASE} checks nothing: a case makes its promise with \
         report.check\n{report}"
    );
}
