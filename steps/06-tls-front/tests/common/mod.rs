//! What both test files of step 06 start: the step in this process, in
//! front of real backends, with the test's certificate.

use std::net::SocketAddr;

use lab_common::testing::{RunningStep, TestCerts, host_ports};
use step_06_tls_front::run;

pub async fn step_in_front_of(
    backends: &[SocketAddr],
    certs: &TestCerts,
) -> RunningStep {
    let backends = host_ports(backends);
    let tls = certs.server_config();
    RunningStep::start(move |listener, shutdown| {
        run(listener, backends, tls, shutdown)
    })
    .await
}
