//! The exercise of the chapter "lb — changing it while it runs".

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use balancer::backend::Address;
use balancer::config::{BackendConfig, CheckKind, Config};
use balancer::reload::Reloader;
use balancer::{Balancer, status};
use dummy_servers::testing::RunningBackend;
use lab_common::testing::RunningStep;
use lab_common::testing::http::fresh_client;

/// Round robin over backends `a`, `b`, `c` at `addrs`, without health
/// checks (every backend is up from the start).
fn round_robin(addrs: &[SocketAddr]) -> Config {
    let backends = addrs
        .iter()
        .zip(["a", "b", "c"])
        .map(|(addr, id)| {
            let address: Address =
                addr.to_string().parse().expect("a socket address parses");
            BackendConfig {
                id: id.to_owned(),
                ..BackendConfig::at(address)
            }
        })
        .collect();
    let mut config = Config {
        backends,
        ..Config::default()
    };
    config.health.kind = CheckKind::Off;
    config
}

/// Which backend the next client gets (`/api/explain`, which takes no
/// turn).
fn next_backend(balancer: &Balancer) -> String {
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    status::explain(balancer, ip)["backend"]
        .as_str()
        .expect("explain names a backend")
        .to_owned()
}

/// With `watch = true`, saving the file reloads it, even when only a
/// comment changed. Such a reload changes nothing, and should leave the
/// running pool alone: here, the rotation goes on where it was.
#[tokio::test]
#[ignore = "exercise lb-quiet-reload: scripts/exercise.sh lb-quiet-reload"]
async fn a_reload_that_changes_nothing_keeps_the_rotation() {
    let backends = RunningBackend::start_many(3).await;
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
    let config = round_robin(&addrs);
    let balancer =
        Arc::new(Balancer::new(config.clone()).expect("the config is usable"));
    let file = config.clone();
    let reloader =
        Reloader::new(balancer.clone(), Arc::new(move || Ok(file.clone())));
    let serving = balancer.clone();
    let lb = RunningStep::start(move |listener, shutdown| {
        balancer::serve(listener, serving, shutdown)
    })
    .await;
    fresh_client()
        .get(format!("http://{}/", lb.addr))
        .send()
        .await
        .expect("the first client is served");
    assert_eq!(next_backend(&balancer), "b", "a took the first turn");
    let changed = reloader.reload("the exercise").await;
    assert_eq!(changed, Ok(Vec::new()), "the reload changed nothing");
    let next = next_backend(&balancer);
    assert!(
        next == "b",
        "after a reload that changed nothing, the next client goes to \
         {next} instead of b: the reload swapped in a new pool, and the \
         rotation started again from the first backend"
    );
}
