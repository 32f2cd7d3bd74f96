//! The exercises of the chapters "Comparing the steps" and "How fast is
//! it?". `cargo test` leaves them out (ignored); `scripts/exercise.sh
//! compare-chain` and `scripts/exercise.sh bench-failed-direct` run them,
//! and each fails until its exercise is done.

use std::process::Command;

use lab_tools::bench::stats::ratio_to_neighbours;

const LAB_STEPS: &str = env!("CARGO_BIN_EXE_lab-steps");

/// Runs `lab-steps` with `args`: its exit status, stdout and stderr.
fn lab_steps(args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(LAB_STEPS)
        .args(args)
        .output()
        .expect("lab-steps runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `lab-steps --chain STEP` prints the step and every step it builds on,
/// following each `parent` back to step 01, one folder a line, oldest
/// first.
#[test]
#[ignore = "exercise compare-chain: scripts/exercise.sh compare-chain"]
fn chain_follows_the_parents_back_to_step_01() {
    let (code, chain, _) = lab_steps(&["--chain", "08"]);
    assert!(
        code == Some(0),
        "`lab-steps --chain 08` failed: lab-steps does not take --chain \
         yet, and read it as the name of a step"
    );
    assert_eq!(
        chain,
        "01-ping\n02-forward\n03-dial-helper\n04-round-robin\n\
         06-tls-front\n07-tls-back\n08-final\n",
        "`lab-steps --chain 08` must print 08 and the steps it builds on, \
         oldest first (08's parent is 07, 07's is 06, 06's is 04...)"
    );
    let (_, chain, _) = lab_steps(&["--chain", "9"]);
    assert_eq!(
        chain,
        "01-ping\n02-forward\n03-dial-helper\n04-round-robin\n\
         09-http-proxy\n",
        "`lab-steps --chain 9` must skip 05 to 08: 09 builds on 04"
    );
    let (_, chain, _) = lab_steps(&["--chain", "01"]);
    assert_eq!(chain, "01-ping\n", "step 01 builds on nothing");
    let (code, _, stderr) = lab_steps(&["--chain", "99"]);
    assert_eq!(code, Some(2), "an unknown step is exit status 2");
    assert!(
        stderr.starts_with("error: no step \"99\""),
        "an unknown step is an error that names it: {stderr}"
    );
}

/// A contender's rate is set against the direct runs just before and
/// after it. When one of those measured nothing (0 requests/s: the load
/// failed), the ratio is to the other one alone; when both ran, it is to
/// their mean, as before.
#[test]
#[ignore = "exercise bench-failed-direct: scripts/exercise.sh bench-failed-direct"]
fn a_failed_direct_run_leaves_the_ratio_to_the_other() {
    let both = ratio_to_neighbours(60_000.0, 100_000.0, 140_000.0);
    assert!(
        (both - 0.5).abs() < 1e-12,
        "60,000 req/s between direct runs of 100,000 and 140,000 should \
         still be 0.50 x direct (their mean is 120,000), not {both:.2}"
    );
    let failed_before = ratio_to_neighbours(60_000.0, 0.0, 120_000.0);
    assert!(
        (failed_before - 0.5).abs() < 1e-12,
        "60,000 req/s after a direct run that failed (0 req/s) and before \
         one of 120,000 came out at {failed_before:.2} x direct, not 0.50: \
         the failed run halved the mean; set the contender against the \
         direct run that worked"
    );
    let failed_after = ratio_to_neighbours(60_000.0, 120_000.0, 0.0);
    assert!(
        (failed_after - 0.5).abs() < 1e-12,
        "60,000 req/s after a direct run of 120,000 and before one that \
         failed (0 req/s) came out at {failed_after:.2} x direct, not 0.50"
    );
}
