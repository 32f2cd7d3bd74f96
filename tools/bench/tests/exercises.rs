//! The exercise of the chapter "Comparing the steps". `cargo test`
//! leaves it out (ignored); `scripts/exercise.sh compare-chain` runs it,
//! and it fails until the exercise is done.

use std::process::Command;

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
