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
