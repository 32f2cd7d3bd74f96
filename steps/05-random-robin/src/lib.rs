//! Step 05 — Random robin
//!
//! Changed since step 04:
//! - each new connection goes to a backend picked at random instead of
//!   the next in turn (the article's "random robin");
//! - `--seed N` makes the sequence of picks the same on every run, which
//!   is how the tests check it and how you can replay an experiment.
//!
//! Over many connections every backend gets about a third, but not
//! exactly; over a few, the spread can be quite uneven. That is the
//! trade: no shared counter to keep, at the price of a lumpier spread.
//!
//! ```text
//! scripts/spawn-backends.sh restart
//! cargo run --bin 05-random-robin -- --seed 7
//! curl localhost:3000
//! ```

use std::future::Future;
use std::io;
use std::time::Duration;

use lab_common::{Error, HostPort};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand::seq::IndexedRandom;
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tracing::{Instrument, info, info_span, warn};

// ANCHOR: random_pick
/// Picks a backend uniformly at random for each connection.
///
/// `SmallRng` is a fast generator that is not for cryptography, which a
/// load balancer's choice does not need. Seeded, it repeats its sequence.
#[derive(Debug)]
pub struct RandomPick {
    backends: Vec<HostPort>,
    rng: SmallRng,
}

impl RandomPick {
    /// `seed: None` seeds from the operating system: a new sequence on
    /// every run. Fails on an empty list.
    pub fn new(
        backends: Vec<HostPort>,
        seed: Option<u64>,
    ) -> Result<RandomPick, Error> {
        if backends.is_empty() {
            return Err("random choice needs at least one backend".into());
        }
        let rng = match seed {
            Some(seed) => SmallRng::seed_from_u64(seed),
            None => rand::make_rng(),
        };
        Ok(RandomPick { backends, rng })
    }

    /// The backend for the next connection.
    pub fn pick_backend(&mut self) -> &HostPort {
        self.backends
            .choose(&mut self.rng)
            .expect("the list was checked to be non-empty")
    }
}
// ANCHOR_END: random_pick

// ANCHOR: run
/// Accepts clients until `shutdown` completes and proxies each one to a
/// backend picked at random (reproducibly, given a `seed`).
pub async fn run(
    listener: TcpListener,
    backends: Vec<HostPort>,
    seed: Option<u64>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let mut random_pick = RandomPick::new(backends, seed)?;
    tokio::pin!(shutdown);
    loop {
        let (client, client_addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        // Only this loop picks, one connection at a time, so the generator
        // needs no lock, and a seed fixes the backend of the n-th client.
        let backend = random_pick.pick_backend().clone();
        let span = info_span!(
            "connection",
            client = %client_addr,
            backend = %backend
        );
        let task = async move { proxy(client, &backend).await };
        tokio::spawn(task.instrument(span));
    }
}
// ANCHOR_END: run

/// Opens a TCP connection to `backend`, ready to relay through.
async fn dial(backend: &HostPort) -> io::Result<TcpStream> {
    let server = TcpStream::connect(backend.to_string()).await?;
    // Small request/response messages should leave at once, not wait for
    // Nagle's algorithm to batch them with bytes that may never come.
    server.set_nodelay(true)?;
    Ok(server)
}

/// Relays `client` through a fresh connection to `backend` until both
/// directions have finished, and logs how it went.
async fn proxy(mut client: TcpStream, backend: &HostPort) {
    let mut server = match dial(backend).await {
        Ok(server) => server,
        Err(err) => {
            warn!(phase = "dial", error = %err);
            return;
        }
    };
    let _ = client.set_nodelay(true);

    // Both directions at once, each passing on the other's end of stream
    // (half-close), as in step 02.
    match copy_bidirectional(&mut client, &mut server).await {
        Ok((up, down)) => info!("{up} bytes up, {down} bytes down"),
        Err(err) => warn!(phase = "relay", error = %err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backends(ports: &[u16]) -> Vec<HostPort> {
        ports
            .iter()
            .map(|port| format!("127.0.0.1:{port}").parse().unwrap())
            .collect()
    }

    fn picks(seed: Option<u64>, count: usize) -> Vec<u16> {
        let mut random_pick =
            RandomPick::new(backends(&[4444, 4445, 4446]), seed).unwrap();
        (0..count)
            .map(|_| random_pick.pick_backend().port())
            .collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_sequence() {
        assert_eq!(picks(Some(7), 50), picks(Some(7), 50));
        assert_ne!(picks(Some(7), 50), picks(Some(8), 50));
    }

    #[test]
    fn every_backend_gets_picked() {
        let sequence = picks(None, 300);
        for port in [4444, 4445, 4446] {
            assert!(sequence.contains(&port), "{port} never picked");
        }
    }

    #[test]
    fn refuses_an_empty_list() {
        assert!(RandomPick::new(Vec::new(), Some(1)).is_err());
    }
}
