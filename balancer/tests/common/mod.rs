//! What `lb`'s tests share: starting `lb` in-process on a free port, and
//! configs that point it at backends started by the test.

#![allow(dead_code)] // Each test file uses its own part of this.

use std::net::SocketAddr;
use std::time::Duration;

use balancer::Drained;
use balancer::backend::Address;
use balancer::config::{BackendConfig, Config};
use lab_common::Error;
use lab_common::testing::deadline;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// `lb` running in this process on 127.0.0.1 and a port the OS chose.
pub struct RunningLb {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<Drained, Error>>,
}

impl RunningLb {
    /// Starts `lb` with `config` (whose `listen` is ignored).
    pub async fn start(config: Config) -> RunningLb {
        let listen = "127.0.0.1:0".parse().expect("a valid address");
        let listener = balancer::bind(&listen, config.limits.backlog)
            .await
            .expect("binding 127.0.0.1:0 works");
        let addr = listener.local_addr().expect("bound");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(balancer::run(listener, config, async {
            let _ = stopped.await;
        }));
        RunningLb {
            addr,
            stop: Some(stop),
            task,
        }
    }

    /// Starts the shutdown (as SIGTERM does) without waiting for it.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Shuts down and waits for the drain to end.
    pub async fn stop(mut self) -> Drained {
        self.begin_shutdown();
        deadline("lb to stop", &mut self.task)
            .await
            .expect("lb's task did not panic")
            .expect("lb ran without error")
    }
}

impl Drop for RunningLb {
    fn drop(&mut self) {
        self.task.abort();
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
