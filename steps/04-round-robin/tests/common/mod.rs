//! What both test files of step 04 start: the step in this process, in
//! front of real backends.

use std::net::SocketAddr;

use lab_common::testing::{RunningStep, host_ports};
use step_04_round_robin::run;

pub async fn step_in_front_of(backends: &[SocketAddr]) -> RunningStep {
    let backends = host_ports(backends);
    RunningStep::start(move |listener, shutdown| {
        run(listener, backends, shutdown)
    })
    .await
}
