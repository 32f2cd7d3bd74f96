//! What `lb`'s tests share: starting `lb` in-process on a free port, and
//! configs that point it at backends started by the test.

#![allow(dead_code)] // Each test file uses its own part of this.

use std::net::SocketAddr;
use std::time::Duration;

use balancer::Drained;
use balancer::backend::Address;
use balancer::config::{BackendConfig, Config};
use lab_common::testing::RunningStep;

/// `lb` running in this process on 127.0.0.1 and a port the OS chose.
pub struct RunningLb {
    pub addr: SocketAddr,
    running: RunningStep<Drained>,
}

impl RunningLb {
    /// Starts `lb` with `config` (whose `listen` is ignored).
    pub async fn start(config: Config) -> RunningLb {
        let running = RunningStep::start(|listener, shutdown| {
            balancer::run(listener, config, shutdown)
        })
        .await;
        RunningLb {
            addr: running.addr,
            running,
        }
    }

    /// Shuts down and waits for the drain to end.
    pub async fn stop(self) -> Drained {
        self.running.stop().await.expect("lb ran without error")
    }
}

/// A config for backends at `addrs` (plain TCP), with short health-check
/// and timeout settings fit for tests.
pub fn config_for(addrs: &[SocketAddr]) -> Config {
    let backends = addrs
        .iter()
        .map(|addr| {
            let address: Address =
                addr.to_string().parse().expect("a socket address parses");
            BackendConfig::at(address)
        })
        .collect();
    let mut config = Config {
        backends,
        ..Config::default()
    };
    config.health.interval = Duration::from_millis(100);
    config.health.timeout = Duration::from_millis(500);
    config.timeouts.connect = Duration::from_millis(500);
    config.timeouts.drain = Duration::from_secs(5);
    config
}
