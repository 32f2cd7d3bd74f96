//! The exercises of `lb`'s chapters, one module per chapter. `cargo test`
//! leaves them out (each is ignored); `scripts/exercise.sh ID` runs one,
//! and it fails until that exercise is done.

mod a_balancer_to_keep;
mod changing_it_while_it_runs;
mod choosing_a_backend;
mod failover;
mod health_checks;
mod more_than_one;
mod seeing_inside_it;
mod timeouts_limits_and_draining;
mod when_things_go_wrong;
mod which_algorithm;

use std::time::Duration;

use balancer::health::HealthRules;

/// The health rules the health checks' and failover's exercises run
/// their state machines under: `lb`'s defaults but for `hold_down`,
/// which is off here so that a verdict turns at once.
fn rules() -> HealthRules {
    HealthRules {
        rise: 2,
        fall: 3,
        failures: 3,
        cooldown: Duration::from_secs(10),
        may_eject: true,
        hold_down: Duration::ZERO,
        stable: Duration::from_secs(30),
    }
}
