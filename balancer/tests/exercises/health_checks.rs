//! The exercise of the chapter "lb — health checks".

use std::time::Duration;

use balancer::config::show_duration;
use balancer::health::{ChangeKind, HealthState};

use crate::rules;
use tokio::time::Instant;

/// Checks every 2 s: `passes_first` passed ones, failed ones until the
/// backend goes DOWN, then passed ones until it comes UP; the why of its
/// UP line.
fn up_line(
    state: &mut HealthState,
    start: Instant,
    passes_first: u32,
) -> String {
    let rules = rules();
    let at = |second: u64| start + Duration::from_secs(second);
    let mut second = 0;
    for _ in 0..passes_first {
        state.check_passed(&rules, at(second));
        second += 2;
    }
    // Fails until DOWN (one check if none ever passed, `fall` if one did).
    loop {
        let change = state.check_failed(&rules, at(second), "connect: refused");
        second += 2;
        if change.is_some_and(|c| c.kind == ChangeKind::Down) {
            break;
        }
        assert!(second < 100, "the backend never went DOWN");
    }
    loop {
        let change = state.check_passed(&rules, at(second));
        second += 2;
        if let Some(change) = change.filter(|c| c.kind == ChangeKind::Up) {
            return change.why;
        }
        assert!(second < 200, "the backend never came back UP");
    }
}

/// When a backend comes back UP, its line says how long it was DOWN:
/// from the check that took it down to the one that brought it back.
#[test]
#[ignore = "exercise lb-down-for: scripts/exercise.sh lb-down-for"]
fn the_up_line_says_how_long_the_backend_was_down() {
    let four = show_duration(Duration::from_secs(4));
    // Passed once, then failed 3 checks (DOWN at 6 s), passed at 8 s and
    // 10 s: DOWN for 4 s.
    let why = up_line(&mut HealthState::new(), Instant::now(), 1);
    assert!(
        why.contains(&four),
        "the UP line says `UP {why}`, and not how long the backend was \
         DOWN ({four} here, written by show_duration): keep when it went \
         DOWN in HealthState and say it in check_passed"
    );
    // DOWN at its first check (0 s), passed at 2 s and 4 s.
    let why = up_line(&mut HealthState::new(), Instant::now(), 0);
    assert!(
        why.contains(&four),
        "a backend whose first check failed came UP with `UP {why}`, and \
         not how long it was DOWN ({four} here): that branch of \
         check_failed takes it DOWN too"
    );
}
