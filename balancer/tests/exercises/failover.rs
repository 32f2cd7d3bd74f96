//! The exercise of the chapter "lb — failover".

use std::time::Duration;

use balancer::config::show_duration;
use balancer::health::{ChangeKind, HealthState};

use crate::rules;
use tokio::time::Instant;

/// Fails `failures` connections at `now`, which takes the backend out;
/// the why of its `Out` line.
fn take_out(state: &mut HealthState, now: Instant) -> String {
    let rules = rules();
    for _ in 1..rules.failures {
        state.connection_failed(&rules, now, "connect: refused");
    }
    match state.connection_failed(&rules, now, "connect: refused") {
        Some(change) if change.kind == ChangeKind::Out => change.why,
        other => panic!(
            "{} failed connections in a row should take the backend out, \
             and gave {other:?}",
            rules.failures
        ),
    }
}

/// Out for `seconds` from `now`: not usable a second before their end,
/// usable from then on.
fn assert_out_for(state: &HealthState, now: Instant, seconds: u64, time: &str) {
    let cooldown = Duration::from_secs(seconds);
    assert!(
        !state.usable(now + cooldown - Duration::from_secs(1)),
        "taken out {time}, the backend was usable again within {}: each \
         time failed connections take it out again, with no connection \
         succeeding in between, its cooldown should double (in \
         HealthState::connection_failed)",
        show_duration(cooldown)
    );
    assert!(
        state.usable(now + cooldown),
        "taken out {time}, the backend was still out {} later, when its \
         cooldown should be over",
        show_duration(cooldown)
    );
}

/// Each time a backend is taken out again, without a connection
/// succeeding in between, its cooldown doubles (Envoy's ejection time
/// grows so); a connection that succeeds starts it again from `cooldown`.
#[test]
#[ignore = "exercise lb-cooldown-backoff: scripts/exercise.sh lb-cooldown-backoff"]
fn a_backend_taken_out_again_stays_out_twice_as_long() {
    let mut state = HealthState::new();
    let start = Instant::now();
    let at = |second: u64| start + Duration::from_secs(second);

    take_out(&mut state, at(0));
    assert_out_for(&state, at(0), 10, "the first time");

    let why = take_out(&mut state, at(10));
    assert_out_for(&state, at(10), 20, "a second time");
    let twenty = show_duration(Duration::from_secs(20));
    assert!(
        why.contains(&twenty),
        "the second Out line says `out {why}`: it should give the doubled \
         cooldown, {twenty}"
    );

    take_out(&mut state, at(30));
    assert_out_for(&state, at(30), 40, "a third time");

    // Back at 70 s; a client's connection succeeds: the next time it is
    // taken out, the cooldown is the configured one again.
    state.connection_succeeded(at(70));
    take_out(&mut state, at(80));
    assert_out_for(
        &state,
        at(80),
        10,
        "after a connection succeeded, the first time",
    );
}
