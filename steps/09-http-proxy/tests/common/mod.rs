//! What both test files of step 09 start: the step in this process, in
//! front of real backends.

use std::net::SocketAddr;

use lab_common::testing::{RunningStep, host_ports};
use step_09_http_proxy::Config;

/// Step 09 in this process, in front of `backends`, with its default
/// limits.
pub async fn proxy(backends: &[SocketAddr]) -> RunningStep {
    proxy_with(backends, |_| {}).await
}

/// The same with `config`'s limits changed by `adjust` (the tests set
/// the timeouts to a few hundred milliseconds).
pub async fn proxy_with(
    backends: &[SocketAddr],
    adjust: impl FnOnce(&mut Config),
) -> RunningStep {
    let mut config = Config::new(host_ports(backends));
    adjust(&mut config);
    RunningStep::start(move |listener, shutdown| {
        step_09_http_proxy::run(listener, config, shutdown)
    })
    .await
}
